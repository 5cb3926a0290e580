"""After the hand-over (SPEC §10): delivery reports read back from a real IMAP server.

Confirmations go out through the CLI to the real SMTP server of the tests; the delivery
reports real mail servers would write about them (``tests/delivery_reports.py``) are put
into the sending mailbox of a real dovecot (``tests/imap_server.py``) with IMAP APPEND;
then ``proit-notify bounces`` / ``run-all`` read them. Assertions are on ledger rows, the
flags and folders of the mailbox, the SMS at the local gateway, alerts and exit codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trustme
from cli_runner import Cli, cli
from delivery_reports import (
    FOREIGN_MESSAGE,
    customer_reply,
    exchange_online_ndr,
    gmail_failure,
    out_of_office,
    postfix_delayed,
    postfix_failed,
    qmail_failure,
)
from erp_backends import ErpBackend
from identity import Authority, test_authority, test_ca_tls
from imap_server import ImapServer, imap_ca, imap_server, start_dovecot, stop_dovecot
from pytest_httpserver import HTTPServer
from scenario import shop
from sms_gateways import AspsmsGateway, sms_settings
from smtp_server import Received, SmtpServer, email_section, free_port, smtp_server

from proit_notify.bounces import read_report
from proit_notify.db import connect, connect_sqlite
from proit_notify.settings import load_settings

__all__ = ["cli", "imap_ca", "imap_server", "smtp_server", "test_authority", "test_ca_tls"]

AS_OF = "2026-11-27T08:00"
LATER = "2026-11-27T12:00"
PRINTED = datetime(2026, 11, 26, 9, 0)
ALERT_TO = "it@shop.example"
TYPO = "hans.muster@bluewin.cj"  # typed for hans.muster@bluewin.ch
PROCESSED = "proit-notify-bounces"
SERVERS = ["sqlite", "sqlite-odbc", "postgresql", "mariadb"]


@dataclass
class Sent:
    """Three confirmations that went out, and where their bounces arrive."""

    config: Path
    mailbox: str  # the IMAP user of the sending account
    notes: dict[str, int]  # customer's address -> delivery note id
    messages: dict[str, Received]  # customer's address -> the message the relay took
    customers: dict[str, int]


def imap_section(server: ImapServer, mailbox: str, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1", "port": server.port, "security": "none", "username": mailbox,
        "password": server.passwords[mailbox], **extra,
    }  # fmt: skip


def write_bounce_config(
    write_config: Any, erp_backend: ErpBackend, smtp: SmtpServer, imap: dict[str, Any],
    **sections: Any,
) -> Path:  # fmt: skip
    email = email_section(smtp)
    email["accounts"]["default"]["imap"] = imap
    server = erp_backend.name in {"postgresql", "mariadb"}
    ledger = {"erp": True, "sqlite": None} if server else {}
    path: Path = write_config(email=email, ledger=ledger, alerts={"to": [ALERT_TO]},
                              **sections)  # fmt: skip
    return path


@pytest.fixture
def sent(
    erp_backend: ErpBackend,
    write_config: Any,
    smtp_server: SmtpServer,
    imap_server: ImapServer,
    cli: Cli,
) -> Iterator[Sent]:
    s = shop(erp_backend)
    addresses = {TYPO: "+41791234567", "rosa@example.ch": None, "otto@example.ch": None}
    customers = {a: s.customer(email=a, name=f"Kunde {a.split('@')[0]}", phone=p)
                 for a, p in addresses.items()}  # fmt: skip
    notes = {a: s.delivery_note(s.order(c), PRINTED) for a, c in customers.items()}
    mailbox = imap_server.mailbox()
    config = write_bounce_config(write_config, erp_backend, smtp_server,
                                 imap_section(imap_server, mailbox))  # fmt: skip
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert len(smtp_server.messages) == 3
    messages = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    yield Sent(config, mailbox, notes, messages, customers)
    if erp_backend.name in {"postgresql", "mariadb"}:
        for suffix in ("", "_runs", "_optout", "_bounces", "_meta"):
            table = erp_backend.dialect.quote("proit_notify_ledger" + suffix)
            erp_backend.admin.execute(f"DROP TABLE IF EXISTS {table}")
        erp_backend.admin.commit()


def rows(config: Path) -> dict[tuple[str, str], tuple[str, str, dict[str, Any]]]:
    """(key, channel) -> (status, detail, info) of every ledger row, on any backend."""
    settings = load_settings(config)
    db = connect(settings.erp) if settings.ledger.erp else connect_sqlite(settings.ledger_path)
    with closing(db):
        found = db.stream(f"SELECT key_, channel, status, detail, info FROM "
                          f"{db.dialect.quote('proit_notify_ledger')}")  # fmt: skip
        return {
            (r["key_"], r["channel"]): (r["status"], r["detail"] or "", json.loads(r["info"]))
            for r in found
        }


@pytest.mark.parametrize("erp_backend", SERVERS, indirect=True)
def test_a_hard_bounce_marks_the_row_and_nothing_else_is_touched(
    sent: Sent, imap_server: ImapServer, smtp_server: SmtpServer, cli: Cli
) -> None:
    typo, rosa, otto = (sent.messages[a].raw for a in (TYPO, "rosa@example.ch", "otto@example.ch"))
    box = sent.mailbox
    imap_server.append(box, postfix_failed(typo, TYPO))  # ours, final
    imap_server.append(box, postfix_delayed(rosa, "rosa@example.ch"))  # ours, not final
    imap_server.append(box, out_of_office(otto, "otto@example.ch"))  # quotes our id
    imap_server.append(box, customer_reply(otto, "otto@example.ch"))  # quotes our id too
    imap_server.append(box, postfix_failed(FOREIGN_MESSAGE, "lieferant@example.net"))
    key = f"shipping:{sent.notes[TYPO]}"

    dry = cli("-c", sent.config, "--json", "bounces", "--dry-run", "--as-of", LATER)
    assert dry.exit_code == 0, dry.stderr
    [report] = dry.json()
    assert report["counts"] == {"read": 5, "bounced": 1, "delayed": 1}
    assert rows(sent.config)[(key, "email")][0] == "sent"  # a dry run changes nothing
    assert len(imap_server.contents(box)) == 5

    run = cli("-c", sent.config, "--json", "bounces", "--as-of", LATER)
    assert run.exit_code == 1, run.stderr  # an address waits for a person
    [report] = run.json()
    assert report["counts"] == {"read": 5, "bounced": 1, "delayed": 1}
    [item] = report["items"]
    assert (item["key"], item["status"], item["recipient"]) == (key, "bounced", TYPO)
    status, detail, _ = rows(sent.config)[(key, "email")]
    assert status == "bounced"
    assert "550 5.1.1" in detail
    assert "User unknown" in detail
    # the customer and the ERP field to fix, by the ERP's own names
    assert "Kunde hans.muster (customer " in detail
    assert "fix customers.email" in detail
    assert "column 'EMail' of table 'Kunden'" in detail
    # the delayed report is noted with its row, which stays sent
    status, _, info = rows(sent.config)[(f"shipping:{sent.notes['rosa@example.ch']}", "email")]
    assert status == "sent"
    assert info["delivery_reports"][0]["action"] == "delayed"
    # the two reports of ours were moved; the rest stays where it was, unread
    left = imap_server.contents(box)
    assert len(left) == 3
    assert all(b"\\Seen" not in flags for flags, _ in left)
    subjects = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for _, m in left)
    assert subjects == [
        b"Automatische Antwort: Versandbestaetigung",
        b"Re: Versandbestaetigung",
        b"Undelivered Mail Returned to Sender",
    ]
    moved = imap_server.contents(box, PROCESSED)
    assert len(moved) == 2

    again = cli("-c", sent.config, "bounces", "--as-of", LATER)  # nothing new: nothing changes
    assert again.exit_code == 0, again.stderr
    assert "0 bounced" in again.stdout
    customers = [m for m in smtp_server.messages if m.rcpt_tos != (ALERT_TO,)]
    assert len(customers) == 3  # a bounce sends nothing by email


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "write_report", [postfix_failed, exchange_online_ndr, gmail_failure, qmail_failure]
)
def test_every_kind_of_report_finds_its_row(
    sent: Sent, imap_server: ImapServer, cli: Cli, write_report: Any
) -> None:
    imap_server.append(sent.mailbox, write_report(sent.messages[TYPO].raw, TYPO))
    run = cli("-c", sent.config, "--json", "bounces", "--as-of", LATER)
    assert run.exit_code == 1, run.stderr
    [report] = run.json()
    assert [i["key"] for i in report["items"]] == [f"shipping:{sent.notes[TYPO]}"]
    assert imap_server.contents(sent.mailbox) == []
    assert len(imap_server.contents(sent.mailbox, PROCESSED)) == 1


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_bounce_of_the_bcc_copy_is_not_the_customers(
    sent: Sent, imap_server: ImapServer, cli: Cli
) -> None:
    imap_server.append(sent.mailbox, postfix_failed(sent.messages[TYPO].raw, "archiv@example.ch"))
    run = cli("-c", sent.config, "bounces", "--as-of", LATER)
    assert run.exit_code == 0, run.stderr
    assert "not for the customer" in run.stderr
    assert rows(sent.config)[(f"shipping:{sent.notes[TYPO]}", "email")][0] == "sent"
    assert len(imap_server.contents(sent.mailbox)) == 1  # left where it was


@pytest.mark.parametrize("erp_backend", SERVERS, indirect=True)
def test_on_hard_sms_the_notice_goes_once_by_sms_and_the_address_gets_no_more_email(
    sent: Sent,
    imap_server: ImapServer,
    smtp_server: SmtpServer,
    erp_backend: ErpBackend,
    write_config: Any,
    httpserver: HTTPServer,
    cli: Cli,
) -> None:
    gateway = AspsmsGateway(httpserver)
    config = write_bounce_config(
        write_config, erp_backend, smtp_server, imap_section(imap_server, sent.mailbox),
        sms=sms_settings(httpserver), bounces={"on_hard": "sms"},
    )  # fmt: skip
    imap_server.append(sent.mailbox, gmail_failure(sent.messages[TYPO].raw, TYPO))
    key = f"shipping:{sent.notes[TYPO]}"

    first = cli("-c", config, "run-all", "--as-of", LATER)  # bounces first, then the jobs
    assert first.exit_code == 1, first.stderr
    assert gateway.numbers == ["+41791234567"]
    found = rows(config)
    assert found[(key, "email")][0] == "bounced"
    assert found[(key, "sms")][0] == "sent"
    # the alert names the customer and the field to fix
    [alert] = [m for m in smtp_server.messages if m.rcpt_tos == (ALERT_TO,)]
    text = alert.message.get_body(("plain",)).get_content()
    assert "bounced" in text
    assert "Kunde hans.muster" in text
    assert "customers.email" in text

    second = cli("-c", config, "run-all", "--as-of", LATER)
    assert second.exit_code == 0, second.stderr
    assert gateway.numbers == ["+41791234567"]  # once
    assert len([m for m in smtp_server.messages if m.rcpt_tos == (TYPO,)]) == 1

    # a later notice to the same address: no email (skipped, with the reason), the SMS
    s = shop(erp_backend)
    order = s.order(sent.customers[TYPO])
    later_note = s.delivery_note(order, datetime(2026, 11, 27, 10, 0))
    third = cli("-c", config, "run-all", "--as-of", LATER)
    assert third.exit_code == 0, third.stderr
    found = rows(config)
    status, detail, _ = found[(f"shipping:{later_note}", "email")]
    assert status == "skipped"
    assert f"{TYPO} bounced on 27.11.2026" in detail
    assert "customers.email" in detail
    assert found[(f"shipping:{later_note}", "sms")][0] == "sent"
    assert len([m for m in smtp_server.messages if m.rcpt_tos == (TYPO,)]) == 1

    # history and status name it
    history = cli("-c", config, "history", "--status", "bounced")
    assert key in history.stdout
    assert "Kunde hans.muster" in history.stdout
    status_run = cli("-c", config, "status", "--as-of", LATER)
    assert status_run.exit_code == 1
    assert f"bounced {key}" in status_run.stdout


@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql"], indirect=True)
def test_the_corrected_address_gets_the_resent_notice(
    sent: Sent, imap_server: ImapServer, smtp_server: SmtpServer, erp_backend: ErpBackend,
    cli: Cli,
) -> None:  # fmt: skip
    imap_server.append(sent.mailbox, postfix_failed(sent.messages[TYPO].raw, TYPO))
    assert cli("-c", sent.config, "bounces", "--as-of", LATER).exit_code == 1
    key = f"shipping:{sent.notes[TYPO]}"
    # the address is corrected in the ERP, then the operator releases the bounced row
    erp_backend.update("customers", sent.customers[TYPO], email="hans.muster@bluewin.ch")
    resend = cli("-c", sent.config, "ledger", "resolve", key, "--resend")
    assert resend.exit_code == 0, resend.stderr
    run = cli("-c", sent.config, "shipping-confirmations", "--as-of", LATER)
    assert run.exit_code == 0, run.stderr
    resent = [m.rcpt_tos for m in smtp_server.messages[3:] if m.rcpt_tos != (ALERT_TO,)]
    assert resent == [("hans.muster@bluewin.ch",)]
    assert rows(sent.config)[(key, "email")][0] == "sent"


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_an_unreadable_mailbox_is_exit_4_and_blocks_no_sending(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(email="a@example.ch")), PRINTED)
    imap = {"host": "127.0.0.1", "port": free_port(), "security": "none",
            "username": "x@contoso.example", "password": "pw"}  # fmt: skip
    config = write_bounce_config(write_config, erp_backend, smtp_server, imap)
    alone = cli("-c", config, "bounces", "--as-of", AS_OF)
    assert alone.exit_code == 4
    assert "bounce mailbox of account 'default' at 127.0.0.1:" in alone.stderr
    assert "email.accounts.default.imap" in alone.stderr
    both = cli("-c", config, "run-all", "--as-of", AS_OF)
    assert both.exit_code == 4
    assert [m.rcpt_tos for m in smtp_server.messages if m.rcpt_tos != (ALERT_TO,)] == [
        ("a@example.ch",)
    ]  # fmt: skip


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_refused_imap_login_names_the_key(
    sent: Sent, imap_server: ImapServer, erp_backend: ErpBackend, write_config: Any,
    smtp_server: SmtpServer, cli: Cli,
) -> None:  # fmt: skip
    imap = imap_section(imap_server, sent.mailbox, password="Falsch-9x!")
    config = write_bounce_config(write_config, erp_backend, smtp_server, imap)
    run = cli("-c", config, "bounces", "--as-of", LATER)
    assert run.exit_code == 4
    assert "the login was refused" in run.stderr
    assert "email.accounts.default.imap.username and password" in run.stderr
    assert "Falsch-9x!" not in run.stderr


# --- IMAP with TLS and with an OAuth2 token ---------------------------------------------------


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_imaps_with_a_private_ca(
    sent: Sent, imap_server: ImapServer, imap_ca: trustme.CA, erp_backend: ErpBackend,
    write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path,
) -> None:  # fmt: skip
    imap = imap_section(imap_server, sent.mailbox, security="ssl", port=imap_server.ssl_port)
    config = write_bounce_config(write_config, erp_backend, smtp_server, imap)
    untrusted = cli("-c", config, "bounces", "--as-of", LATER)
    assert untrusted.exit_code == 4
    assert "is not trusted" in untrusted.stderr
    assert "ca_file" in untrusted.stderr
    ca_file = tmp_path / "imap-ca.pem"
    imap_ca.cert_pem.write_to_path(str(ca_file))
    imap_server.append(sent.mailbox, postfix_failed(sent.messages[TYPO].raw, TYPO))
    email = email_section(smtp_server)
    email["accounts"]["default"] |= {"imap": imap, "ca_file": str(ca_file)}
    config = write_config(email=email)
    trusted = cli("-c", config, "bounces", "--as-of", LATER)
    assert trusted.exit_code == 1, trusted.stderr
    assert "1 bounced" in trusted.stdout


@pytest.fixture
def oauth2_imap(
    test_ca_tls: tuple[trustme.CA, Path], test_authority: Authority
) -> Iterator[ImapServer]:
    """Dovecot taking XOAUTH2 only, each token checked at the identity provider."""
    ca, _ = test_ca_tls
    server = start_dovecot(ca, introspection_url=f"{test_authority.url}/introspect")
    yield server
    stop_dovecot(server)


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_the_bounce_mailbox_by_the_accounts_oauth2_token(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli,
    oauth2_imap: ImapServer, test_authority: Authority,
) -> None:  # fmt: skip
    mailbox = test_authority.imap_mailbox
    email = email_section(smtp_server)
    email["accounts"]["default"] |= {
        "ca_file": str(test_authority.ca_file),
        "oauth2": test_authority.microsoft_settings(),
        "imap": {"host": "localhost", "port": oauth2_imap.ssl_port, "security": "ssl",
                 "username": mailbox, "auth": "oauth2"},
    }
    config = write_config(email=email)
    test_authority.roles = ("SMTP.SendAsApp",)  # IMAP.AccessAsApp is missing
    refused = cli("-c", config, "bounces", "--as-of", AS_OF)
    assert refused.exit_code == 4, refused.stderr
    assert "IMAP.AccessAsApp" in refused.stderr
    test_authority.roles = ("SMTP.SendAsApp", "IMAP.AccessAsApp")
    run = cli("-c", config, "--json", "bounces", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert run.json()[0]["counts"] == {"read": 0, "bounced": 0, "delayed": 0}
    assert test_authority.introspected >= 1


# --- what a report says, and what it is not ---------------------------------------------------


ORIGINAL = (
    b"From: Contoso Shop <shop@contoso.example>\r\nTo: Hans <hans.muster@bluewin.cj>\r\n"
    b"Subject: Versand\r\nMessage-ID: <proit-notify.abc@contoso.example>\r\n"
    b"Date: Fri, 27 Nov 2026 08:00:00 +0100\r\n\r\nHallo\r\n"
)


@pytest.mark.parametrize(
    ("write_report", "final"),
    [(postfix_failed, True), (exchange_online_ndr, True), (gmail_failure, True),
     (qmail_failure, True), (postfix_delayed, False)],
)  # fmt: skip
def test_reports_as_mail_servers_write_them(write_report: Any, final: bool) -> None:
    found = read_report(write_report(ORIGINAL, TYPO))
    assert found is not None
    assert found.final is final
    assert found.recipients == {TYPO}
    assert "<proit-notify.abc@contoso.example>" in found.message_ids[:2]
    assert found.diagnostic


@pytest.mark.parametrize("write_mail", [out_of_office, customer_reply])
def test_replies_are_no_reports_even_when_they_quote_our_message_id(write_mail: Any) -> None:
    assert read_report(write_mail(ORIGINAL, TYPO)) is None


def test_a_success_notice_and_garbage_are_no_reports() -> None:
    delivered = postfix_failed(ORIGINAL, TYPO).replace(b"Action: failed", b"Action: delivered")
    assert read_report(delivered) is None
    assert read_report(b"\x00\xff not a mail at all \r\n\r\n") is None
    assert read_report(b"") is None


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_check_logs_in_to_the_bounce_mailbox(
    sent: Sent, imap_server: ImapServer, erp_backend: ErpBackend, write_config: Any,
    smtp_server: SmtpServer, cli: Cli,
) -> None:  # fmt: skip
    ok = cli("-c", sent.config, "check")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert f"bounce mailbox of default: 127.0.0.1:{imap_server.port} as {sent.mailbox}" in ok.stdout
    imap = imap_section(imap_server, sent.mailbox, folder="Posteingang")
    config = write_bounce_config(write_config, erp_backend, smtp_server, imap)
    wrong = cli("-c", config, "check")
    assert wrong.exit_code == 3
    assert "cannot open the folder 'Posteingang'" in wrong.stdout + wrong.stderr


@pytest.mark.parametrize("erp_backend", ["sqlite", "mariadb"], indirect=True)
def test_a_bounced_confirmation_does_not_start_the_review_clock(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer,
    imap_server: ImapServer, cli: Cli,
) -> None:  # fmt: skip
    s = shop(erp_backend)
    bounced_order = s.order(s.customer(email=TYPO), review_mail=1)
    good_order = s.order(s.customer(email="gut@example.ch"), review_mail=1)
    for order in (bounced_order, good_order):
        s.delivery_note(order, PRINTED)
    mailbox = imap_server.mailbox()
    config = write_bounce_config(
        write_config, erp_backend, smtp_server, imap_section(imap_server, mailbox),
        review={"delay_days": 7, "portal_url": "https://shop.example/bewerten"},
    )  # fmt: skip
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    [typo] = [m for m in smtp_server.messages if m.rcpt_tos == (TYPO,)]
    imap_server.append(mailbox, postfix_failed(typo.raw, TYPO))
    assert cli("-c", config, "bounces", "--as-of", LATER).exit_code == 1

    week = cli("-c", config, "--json", "review-requests", "--as-of", "2026-12-04T08:00")
    assert week.exit_code == 0, week.stderr
    [report] = week.json()
    # the good customer's request; none for the order whose confirmation never arrived
    assert [i["key"] for i in report["items"]] == [f"review:{good_order}"]
    assert f"review:{bounced_order}" not in {k for k, _ in rows(config)}
