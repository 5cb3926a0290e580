"""Who gets what, end to end: info type × SMS fallback × mobile number (SPEC §4, issue 6).

shipping-confirmations through the CLI against the German test ERP, a local SMS gateway
(pytest-httpserver speaking the ASPSMS JSON API or the seven.io REST API, reached through
``sms.url``) and the real SMTP server. Assertions are on what reached the gateway and the
mail server, the exit code, ``--json`` and the ledger rows. The tests of ``test-send --sms``
and ``check`` (provider balance calls) are at the end.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cli_runner import Cli, CliResult
from ledger_rows import LedgerRow, ledger_rows
from pytest_httpserver import HTTPServer
from scenario import shop
from sms_gateways import SECRET, SECRET_FORMS, AspsmsGateway, json_response, sms_settings
from smtp_server import SmtpServer, email_section
from werkzeug import Request, Response

from proit_notify.channels.sms.base import ECHO_WITHHELD

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 15, 30)


# --- the local gateways -----------------------------------------------------------------------


def ledger(config: Path) -> list[LedgerRow]:
    return ledger_rows(config)


def assert_no_secret(config: Path, *results: CliResult) -> None:
    """No form of sms.password in stdout, stderr (and so --json) or any ledger column."""
    with sqlite3.connect(config.parent / "ledger.sqlite") as conn:
        dump = "\n".join(conn.iterdump())
    for form in SECRET_FORMS:
        for result in results:
            assert form not in result.stdout
            assert form not in result.stderr
        assert form not in dump


# --- the table: info type × fallback × number ---------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One customer, and what reaches them with sms.fallback_to_email on and off."""

    label: str
    info_type: str | None  # logical name, stored as the ERP's code; "" / "X" / None as given
    phone: str | None
    country: str | None
    on: dict[str, str]  # fallback on: ledger channel -> status
    off: dict[str, str]  # fallback off
    sms_to: str | None = None  # the number the gateway receives (both settings)


SENT_EMAIL = {"email": "sent"}
SENT_SMS = {"sms": "sent"}
FELL_BACK = {"email": "sent", "sms": "skipped"}
SMS_FAILED = {"sms": "failed"}

# service.default_info_type is "sms" in these tests, so that empty/unknown codes show it
CASES = [
    Case("email", "email", "079 123 45 67", "CH", SENT_EMAIL, SENT_EMAIL),
    Case("sms-mobile", "sms", "079 123 45 67", "CH", SENT_SMS, SENT_SMS, "+41791234567"),
    Case("sms-landline", "sms", "044 668 18 00", "CH", FELL_BACK, SMS_FAILED),
    Case("sms-empty", "sms", None, "CH", FELL_BACK, SMS_FAILED),
    Case("sms-garbage", "sms", "bitte anrufen", "CH", FELL_BACK, SMS_FAILED),
    Case(
        "both",
        "email_sms",
        "078 765 43 21",
        "CH",
        {"email": "sent", "sms": "sent"},
        {"email": "sent", "sms": "sent"},
        "+41787654321",
    ),
    Case(
        "both-landline",
        "email_sms",
        "044 668 18 00",
        "CH",
        {"email": "sent", "sms": "skipped"},
        {"email": "sent", "sms": "failed"},
    ),
    Case("none", "none", "079 111 22 33", "CH", {"none": "skipped"}, {"none": "skipped"}),
    Case("code-empty", "", "079 222 33 44", "CH", SENT_SMS, SENT_SMS, "+41792223344"),
    Case("code-null", None, "079 555 66 77", "CH", SENT_SMS, SENT_SMS, "+41795556677"),
    Case("code-unknown", "X", "079 333 44 55", "CH", SENT_SMS, SENT_SMS, "+41793334455"),
    Case("germany", "sms", "0176 12345678", "DE", SENT_SMS, SENT_SMS, "+4917612345678"),
    # countries as the ERP stored them: a name, a licence-plate code
    Case(
        "germany-name", "sms", "0151 23456789", "Deutschland", SENT_SMS, SENT_SMS, "+4915123456789"
    ),
    Case("austria-plate", "sms", "0664 1234567", " A ", SENT_SMS, SENT_SMS, "+436641234567"),
    Case("no-country", "sms", "079 444 55 66", None, SENT_SMS, SENT_SMS, "+41794445566"),
]


def run_table(
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    httpserver: HTTPServer,
    cli: Cli,
    fallback: bool,
) -> None:
    gateway = AspsmsGateway(httpserver)
    s = shop(erp_backend)
    keys: dict[str, str] = {}
    notes: dict[str, str] = {}
    for case in CASES:
        customer = s.customer(
            email=f"{case.label}@example.ch",
            info_type=case.info_type,
            phone=case.phone,
            country=case.country,
            language="de",
        )
        notes[case.label] = f"LS-{case.label}"
        note = s.delivery_note(s.order(customer), PRINTED, number=notes[case.label])
        keys[case.label] = f"shipping:{note}"
    config = write_config(
        service={"default_info_type": "sms"},
        email=email_section(smtp_server),
        sms=sms_settings(httpserver, fallback_to_email=fallback),
    )

    result = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)

    expected = {
        (keys[c.label], channel, status)
        for c in CASES
        for channel, status in (c.on if fallback else c.off).items()
    }
    assert result.exit_code == (0 if fallback else 1), result.stderr
    [report] = result.json()
    assert {(i["key"], i["channel"], i["status"]) for i in report["items"]} == expected
    rows = ledger(config)
    assert {(r.key, r.channel, r.status) for r in rows} == expected
    assert len(rows) == len(expected)  # email_sms: two rows, one per channel

    # the gateway got each valid mobile once, as E.164, with the text naming the note
    texted = {c.sms_to: notes[c.label] for c in CASES if c.sms_to}
    assert gateway.numbers == sorted(texted)
    for number, text in gateway.sent:
        assert texted[number] in text
    assert {b["UserName"] for b in gateway.bodies} == {"userkey-1"}
    assert {b["Originator"] for b in gateway.bodies} == {"MusterShop"}
    # the ledger names the E.164 number and keeps the gateway's answer
    by_key = {(r.key, r.channel): r for r in rows}
    for case in CASES:
        if case.sms_to:
            row = by_key[(keys[case.label], "sms")]
            assert row.recipient == case.sms_to
            assert "StatusCode 1" in row.detail
    # the mail server got exactly the customers whose table row says email
    mailed = {f"{c.label}@example.ch" for c in CASES if "email" in (c.on if fallback else c.off)}
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(mailed)
    # reasons a user can act on
    landline = by_key[(keys["sms-landline"], "sms")]
    assert "not a mobile number: 044 668 18 00" in landline.detail
    assert "no mobile number" in by_key[(keys["sms-empty"], "sms")].detail
    assert "not a valid phone number" in by_key[(keys["sms-garbage"], "sms")].detail
    if fallback:
        assert "by email instead" in landline.detail
    assert landline.recipient == "044 668 18 00"

    again = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)
    assert again.exit_code == 0, again.stderr
    assert again.json()[0]["items"] == []
    assert len(gateway.sent) == len(texted)  # no SMS twice
    assert len(smtp_server.messages) == len(mailed)
    assert_no_secret(config, result, again)


def test_info_type_and_number_decide_the_channel_with_fallback_to_email(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, httpserver: HTTPServer, cli: Cli
) -> None:
    run_table(erp_backend, write_config, smtp_server, httpserver, cli, fallback=True)


@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql"], indirect=True)
def test_without_fallback_a_customer_without_a_valid_mobile_is_failed(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, httpserver: HTTPServer, cli: Cli
) -> None:
    run_table(erp_backend, write_config, smtp_server, httpserver, cli, fallback=False)


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_no_provider_configured_falls_back_or_fails(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(info_type="sms", phone="079 123 45 67")), PRINTED)
    config = write_config(email=email_section(smtp_server), sms={"fallback_to_email": False})

    result = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 1
    [item] = result.json()[0]["items"]
    assert (item["channel"], item["status"]) == ("sms", "failed")
    assert "no SMS provider configured (set sms.provider)" in item["reason"]
    assert item["recipient"] == "+41791234567"
    assert smtp_server.messages == []

    fallback = write_config(email=email_section(smtp_server), sms={"fallback_to_email": True})
    (config.parent / "ledger.sqlite").unlink()
    assert cli("-c", fallback, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    assert [m.rcpt_tos for m in smtp_server.messages] == [("kunde1@example.ch",)]


# --- the second provider, and the contact's mobile -----------------------------------------------


@pytest.mark.parametrize("erp_backend", ["sqlite", "mariadb"], indirect=True)
def test_seven_texts_the_contacts_mobile_and_stores_the_message_id(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, httpserver: HTTPServer, cli: Cli
) -> None:
    received: list[tuple[dict[str, str], str | None]] = []

    def seven(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        received.append((form, request.headers.get("X-Api-Key")))
        message = {"id": f"7700{len(received)}", "recipient": form["to"], "success": True}
        return json_response({"success": "100", "messages": [message]})

    httpserver.expect_request("/api/sms", method="POST").respond_with_handler(seven)
    s = shop(erp_backend)
    customer = s.customer(info_type="sms", phone="0176 11111111", country="DE", language="de")
    with_mobile = erp_backend.insert(
        "contacts", customer_id=customer, name="Frau Keller", mobile="0151 23456789"
    )
    without_mobile = erp_backend.insert("contacts", customer_id=customer, name="Herr Ohne")
    n1 = s.delivery_note(s.order(customer, contact_id=with_mobile), PRINTED, number="LS-K1")
    n2 = s.delivery_note(s.order(customer, contact_id=without_mobile), PRINTED, number="LS-K2")
    config = write_config(
        email=email_section(smtp_server),
        sms=sms_settings(httpserver, "seven"),
        shipping={"to_contact": True},
    )

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert "2 sent" in result.stdout
    # the contact's mobile; a contact without one falls back to the customer's (SPEC §4)
    assert [(f["to"], f["from"], key) for f, key in received] == [
        ("+4915123456789", "MusterShop", SECRET),
        ("+4917611111111", "MusterShop", SECRET),
    ]
    assert "LS-K1" in received[0][0]["text"]
    rows = {r.key: r for r in ledger(config)}
    assert rows[f"shipping:{n1}"].recipient == "+4915123456789"
    assert rows[f"shipping:{n1}"].detail == "seven: message id 77001"
    assert rows[f"shipping:{n2}"].detail == "seven: message id 77002"
    assert smtp_server.messages == []
    assert_no_secret(config, result)


# --- gateway errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_error_inside_http_200_fails_that_sms_and_the_batch_goes_on(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, httpserver: HTTPServer, cli: Cli
) -> None:
    gateway = AspsmsGateway(httpserver)
    gateway.answers["+41792223344"] = json_response(
        {"StatusCode": "7", "StatusInfo": "Invalid recipient"}
    )
    s = shop(erp_backend)
    notes = [
        s.delivery_note(s.order(s.customer(info_type="sms", phone=phone)), PRINTED)
        for phone in ("079 123 45 67", "079 222 33 44", "079 333 44 55")
    ]
    config = write_config(email=email_section(smtp_server), sms=sms_settings(httpserver))

    result = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 1
    [report] = result.json()
    assert report["counts"]["sent"] == 2
    assert report["counts"]["failed"] == 1
    assert gateway.numbers == ["+41791234567", "+41792223344", "+41793334455"]
    failed = ledger(config)[1]
    assert (failed.key, failed.status) == (f"shipping:{notes[1]}", "failed")
    assert failed.detail == "aspsms: StatusCode 7 Invalid recipient"
    assert report["items"][1]["reason"] == "aspsms: StatusCode 7 Invalid recipient"
    # a refused SMS is not an invalid number: no email instead, and failed is final
    assert smtp_server.messages == []
    again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert again.exit_code == 0
    assert len(gateway.sent) == 3
    assert_no_secret(config, result, again)


@pytest.mark.parametrize("erp_backend", ["sqlite", "mariadb"], indirect=True)
def test_http_503_defers_and_a_later_run_sends_it_once(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, httpserver: HTTPServer, cli: Cli
) -> None:
    gateway = AspsmsGateway(httpserver)
    # a gateway that echoes the request in its error page: the password must not get through
    gateway.answers["+41791234567"] = Response(
        f"Service Unavailable (Password={SECRET})", status=503
    )
    s = shop(erp_backend)
    note = s.delivery_note(s.order(s.customer(info_type="sms", phone="079 123 45 67")), PRINTED)
    config = write_config(
        email=email_section(smtp_server),
        sms=sms_settings(httpserver),
        retry={"first_delay_minutes": 30},
    )

    first = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)
    assert first.exit_code == 1
    assert first.json()[0]["counts"]["deferred"] == 1
    [row] = ledger(config)
    assert (row.key, row.status, row.recipient) == (f"shipping:{note}", "deferred", "+41791234567")
    assert "HTTP 503" in row.detail
    # an answer that echoes the login is not shown (issue 21: decode, then compare)
    assert ECHO_WITHHELD in row.detail
    assert SECRET not in row.detail

    del gateway.answers["+41791234567"]
    too_early = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T08:10")
    assert too_early.exit_code == 0
    assert len(gateway.sent) == 1

    retried = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T08:31")
    assert retried.exit_code == 0, retried.stderr
    assert "1 sent" in retried.stdout
    assert [r.status for r in ledger(config)] == ["sent"]
    done = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-28T08:00")
    assert "0 sent" in done.stdout
    assert gateway.numbers == ["+41791234567", "+41791234567"]  # the 503, then the one SMS
    assert smtp_server.messages == []
    assert_no_secret(config, first, too_early, retried, done)


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_refused_login_stops_the_run_with_exit_4_without_the_password(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, httpserver: HTTPServer, cli: Cli
) -> None:
    gateway = AspsmsGateway(httpserver)
    refused = json_response({"StatusCode": "3", "StatusInfo": "Authorization failed."})
    gateway.answers["+41791234567"] = refused
    gateway.answers["+41792223344"] = refused
    s = shop(erp_backend)
    for phone in ("079 123 45 67", "079 222 33 44"):
        s.delivery_note(s.order(s.customer(info_type="sms", phone=phone)), PRINTED)
    config = write_config(email=email_section(smtp_server), sms=sms_settings(httpserver))

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 4
    assert "check sms.username / sms.password" in result.stderr
    assert len(gateway.sent) == 1  # stopped at the first refusal, not once per customer
    assert ledger(config) == []  # the claim is undone: nothing was handed over
    assert_no_secret(config, result)


# --- test-send --sms and check --------------------------------------------------------------


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_test_send_sms_normalises_with_service_country(
    erp_backend: Any, write_config: Any, httpserver: HTTPServer, cli: Cli
) -> None:
    gateway = AspsmsGateway(httpserver)
    gateway.answers["+41792223344"] = json_response(
        {"StatusCode": "7", "StatusInfo": "Invalid recipient"}
    )
    config = write_config(sms=sms_settings(httpserver))

    sent = cli("-c", config, "test-send", "--sms", "079 123 45 67")
    assert sent.exit_code == 0, sent.stderr
    assert "+41791234567" in sent.stdout
    assert "sent" in sent.stdout
    assert gateway.numbers == ["+41791234567"]
    assert "proit-notify" in gateway.sent[0][1]

    refused = cli("-c", config, "test-send", "--sms", "+41 79 222 33 44")
    assert refused.exit_code == 1
    assert "failed" in refused.stdout
    assert "StatusCode 7 Invalid recipient" in refused.stdout

    landline = cli("-c", config, "test-send", "--sms", "044 668 18 00")
    assert landline.exit_code == 2
    assert "not a mobile number" in landline.stderr
    assert len(gateway.sent) == 2

    german = write_config(service={"country": "DE"}, sms=sms_settings(httpserver))
    assert cli("-c", german, "test-send", "--sms", "0176 12345678").exit_code == 0
    assert gateway.sent[-1][0] == "+4917612345678"
    for result in (sent, refused, landline):
        for form in SECRET_FORMS:
            assert form not in result.stdout + result.stderr

    no_provider = write_config(sms={"provider": None})
    missing = cli("-c", no_provider, "test-send", "--sms", "079 123 45 67")
    assert missing.exit_code == 3
    assert "sms.provider" in missing.stderr


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_check_logs_in_to_the_sms_provider_unless_no_network(
    erp_backend: Any, write_config: Any, httpserver: HTTPServer, cli: Cli
) -> None:
    credits: list[dict[str, Any]] = []
    balance = {"Credits": "12.5", "StatusCode": "1", "StatusInfo": "OK"}

    def check_credits(request: Request) -> Response:
        credits.append(json.loads(request.get_data(as_text=True)))
        return json_response(balance)

    httpserver.expect_request("/CheckCredits", method="POST").respond_with_handler(check_credits)
    config = write_config(sms=sms_settings(httpserver))

    ok = cli("-c", config, "check")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "sms (aspsms): ok" in ok.stdout
    assert credits == [{"UserName": "userkey-1", "Password": SECRET}]

    balance.update(Credits="0")
    empty = cli("-c", config, "check")
    assert empty.exit_code == 3
    assert "aspsms: no credits left (0)" in empty.stderr

    balance.update(StatusCode="3", StatusInfo="Authorization failed.")
    refused = cli("-c", config, "check")
    assert refused.exit_code == 3
    assert "check sms.username / sms.password" in refused.stderr

    offline = cli("-c", config, "check", "--no-network")
    assert offline.exit_code == 0
    assert "sms (aspsms): not contacted (--no-network)" in offline.stdout
    assert len(credits) == 3  # --no-network did not call the gateway
    for result in (ok, empty, refused, offline):
        for form in SECRET_FORMS:
            assert form not in result.stdout + result.stderr

    no_key = write_config(sms=sms_settings(httpserver, password=""))
    missing = cli("-c", no_key, "check", "--no-network")
    assert missing.exit_code == 3
    assert "sms.password" in missing.stderr


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_check_asks_seven_for_its_balance(
    erp_backend: Any, write_config: Any, httpserver: HTTPServer, cli: Cli
) -> None:
    httpserver.expect_request(
        "/api/balance", method="GET", headers={"X-Api-Key": SECRET}
    ).respond_with_data("9.45")
    config = write_config(sms=sms_settings(httpserver, "seven"))

    result = cli("-c", config, "check")

    assert result.exit_code == 0, result.stdout + result.stderr
    assert "sms (seven): ok" in result.stdout
    assert len(httpserver.log) == 1
