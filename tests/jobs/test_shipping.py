"""shipping-confirmations end to end: ERP (four backends) → CLI → real SMTP server → ledger."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli
from ledger_rows import ledger_rows
from pytest_httpserver import HTTPServer
from scenario import shop
from sms_gateways import AspsmsGateway, sms_settings
from smtp_server import DROP, SmtpServer, email_section

from proit_notify import cli as cli_module
from proit_notify.ledger import Row, RunLock

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 15, 30)


def test_confirms_each_printed_note_once_from_the_shop_account(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    web = s.customer(name="Jürg Müller", email="juerg@example.ch")
    phone = s.customer(name="Anna Käser", email="anna@example.de", language="en", country="DE")
    o1 = s.order(web, lines=2, shop="SHOP-CH", number="A-100")
    o2 = s.order(phone, number="A-200")
    n1 = s.delivery_note(o1, PRINTED, lines=2, number="LS-100")
    s.delivery_note(o2, PRINTED, number="LS-200")
    s.delivery_note(o2, None, number="LS-201")  # not printed: nothing yet
    config = write_config(
        email={
            **email_section(smtp_server, webshop={"from": "Webshop <web@example.ch>"}),
            "shop_accounts": {"SHOP-CH": "webshop"},
        }
    )

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert (
        "shipping-confirmations: 2 sent, 0 failed, 0 skipped, 0 deferred, 0 unknown"
        in result.stdout
    )
    by_rcpt = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    assert set(by_rcpt) == {"juerg@example.ch", "anna@example.de"}
    web_mail = by_rcpt["juerg@example.ch"]
    assert web_mail.mail_from == "web@example.ch"  # the shop's account
    assert by_rcpt["anna@example.de"].mail_from == "shop@example.ch"  # default account
    assert "LS-100" in web_mail.message["Subject"]
    assert "A-100" in web_mail.message["Subject"]
    assert "Jürg Müller" in str(web_mail.message["To"])
    text = web_mail.message.get_body(("plain",)).get_content()
    html = web_mail.message.get_body(("html",)).get_content()
    assert "Artikel 2 – Größe M" in text
    assert "<table" in html
    assert "Artikel 2 – Größe M" in html
    assert "LS-200" in by_rcpt["anna@example.de"].message["Subject"]
    assert "Delivery" in by_rcpt["anna@example.de"].message["Subject"] or "shipped" in (
        by_rcpt["anna@example.de"].message.get_body(("plain",)).get_content()
    )
    rows = ledger_rows(config)
    assert [(k, c, st) for k, c, st, *_ in rows] == [
        (f"shipping:{n1}", "email", "sent"),
        (f"shipping:{n1 + 1}", "email", "sent"),
    ]
    assert all(r.detail.startswith("250") for r in rows)

    again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert again.exit_code == 0
    assert "0 sent" in again.stdout
    assert len(smtp_server.messages) == 2


def test_dry_run_sends_nothing_and_writes_nothing(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), PRINTED)
    config = write_config(email=email_section(smtp_server))

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF, "--dry-run", "--preview")

    assert result.exit_code == 0
    assert "1 would be sent" in result.stdout
    assert "Subject:" in result.stdout  # --preview prints the rendered message
    assert smtp_server.messages == []
    assert not (config.parent / "ledger.sqlite").exists()
    assert not (config.parent / "ledger.sqlite.lock").exists()


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_invalid_address_and_550_fail_only_their_row(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    bad = s.customer(email="hans.muster@")
    rejected = s.customer(email="gone@example.ch")
    good = s.customer(email="ok@example.ch")
    for customer in (bad, rejected, good):
        s.delivery_note(s.order(customer), PRINTED)
    smtp_server.handler.rcpt_answers["gone@example.ch"] = (
        "550 5.1.1 <gone@example.ch>: unknown user"
    )
    config = write_config(email=email_section(smtp_server))

    result = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 1
    [report] = result.json()
    assert report["job"] == "shipping-confirmations"
    assert report["dry_run"] is False
    assert report["counts"] == {
        "sent": 1,
        "failed": 2,
        "skipped": 0,
        "deferred": 0,
        "unknown": 0,
        "planned": 0,
    }
    assert set(report["items"][0]) == {
        "key",
        "document",
        "channel",
        "recipient",
        "account",
        "status",
        "reason",
    }
    reasons = {i["recipient"]: (i["status"], i["reason"]) for i in report["items"]}
    assert reasons["hans.muster@"][0] == "failed"
    assert "invalid email address" in reasons["hans.muster@"][1]
    assert reasons["gone@example.ch"][0] == "failed"
    assert "550" in reasons["gone@example.ch"][1]
    assert reasons["ok@example.ch"] == ("sent", "")
    assert [m.rcpt_tos for m in smtp_server.messages] == [("ok@example.ch",)]
    # failed is final: the next run does not try again
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql"], indirect=True)
def test_451_defers_and_a_later_run_retries_after_the_back_off(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(email="later@example.ch")), PRINTED)
    smtp_server.handler.data_answers["later@example.ch"] = "451 4.3.0 try again later"
    config = write_config(email=email_section(smtp_server), retry={"first_delay_minutes": 30})

    first = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert first.exit_code == 1
    assert "1 deferred" in first.stdout
    assert [r[2] for r in ledger_rows(config)] == ["deferred"]

    del smtp_server.handler.data_answers["later@example.ch"]
    too_early = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T08:10")
    assert "0 sent" in too_early.stdout
    assert smtp_server.messages == []

    retried = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T08:31")
    assert retried.exit_code == 0
    assert "1 sent" in retried.stdout
    assert len(smtp_server.messages) == 1
    assert [r[2] for r in ledger_rows(config)] == ["sent"]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_connection_lost_after_data_is_unknown_and_never_resent_until_resolved(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    note = s.delivery_note(s.order(s.customer(email="lost@example.ch")), PRINTED)
    smtp_server.handler.data_answers["lost@example.ch"] = DROP
    config = write_config(email=email_section(smtp_server))

    first = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert first.exit_code == 1
    assert "1 unknown" in first.stdout
    del smtp_server.handler.data_answers["lost@example.ch"]
    assert "0 sent" in cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).stdout
    assert smtp_server.messages == []

    resolved = cli("-c", config, "ledger", "resolve", f"shipping:{note}", "--resend")
    assert resolved.exit_code == 0, resolved.stderr
    after = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert "1 sent" in after.stdout
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_sending_row_left_by_a_crash_becomes_unknown_not_resent(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    note = s.delivery_note(s.order(s.customer()), PRINTED)
    config = write_config(email=email_section(smtp_server))
    # a run claimed the note, then died before SMTP answered
    from proit_notify.assembly import open_ledger
    from proit_notify.clock import Clock
    from proit_notify.settings import load_settings

    settings = load_settings(config)
    ledger = open_ledger(settings)
    now = Clock.parse(AS_OF, settings.service.tz).utc
    assert ledger.claim(Row(f"shipping:{note}", "email", "shipping", "LS", "x", "default"), now)
    ledger.close()

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert smtp_server.messages == []
    assert [r[2] for r in ledger_rows(config)] == ["unknown"]
    assert result.exit_code == 1
    assert "history --status unknown" in result.stderr
    history = cli("-c", config, "history", "--status", "unknown")
    assert f"shipping:{note}" in history.stdout


def test_to_contact_uses_the_contacts_address_and_falls_back_to_the_customer(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    customer = s.customer(email="firma@example.ch")
    with_mail = erp_backend.insert(
        "contacts", customer_id=customer, name="Zuhanden Frau Bühler", email="buehler@example.ch"
    )
    without_mail = erp_backend.insert("contacts", customer_id=customer, name="Herr Ohne")
    s.delivery_note(s.order(customer, contact_id=with_mail), PRINTED)
    s.delivery_note(s.order(customer, contact_id=without_mail), PRINTED)
    config = write_config(email=email_section(smtp_server), shipping={"to_contact": True})

    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0

    received = sorted(m.rcpt_tos[0] for m in smtp_server.messages)
    assert received == ["buehler@example.ch", "firma@example.ch"]
    to_contact = next(m for m in smtp_server.messages if m.rcpt_tos[0] == "buehler@example.ch")
    assert "Bühler" in str(to_contact.message["To"])


def test_without_print_trigger_only_named_notes_are_confirmed(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    customer = s.customer()
    s.delivery_note(s.order(customer), PRINTED, number="LS-1")
    s.delivery_note(s.order(customer), PRINTED, number="LS-2")
    config = write_config(
        email=email_section(smtp_server), shipping={"on_delivery_note_print": False}
    )

    batch = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert batch.exit_code == 0
    assert smtp_server.messages == []

    named = cli("-c", config, "shipping-confirmations", "--delivery-note", "LS-2", "--as-of", AS_OF)
    assert named.exit_code == 0
    assert [("LS-2" in m.message["Subject"]) for m in smtp_server.messages] == [True]

    unknown = cli(
        "-c", config, "shipping-confirmations", "--delivery-note", "LS-99", "--as-of", AS_OF
    )
    assert unknown.exit_code == 2
    assert "LS-99" in unknown.stderr


@pytest.mark.parametrize("erp_backend", ["sqlite", "mariadb"], indirect=True)
def test_catch_up_window_and_rows_after_as_of(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    customer = s.customer()
    s.delivery_note(s.order(customer), datetime(2026, 11, 23, 23, 59), number="LS-IN")  # 4 days
    s.delivery_note(s.order(customer), datetime(2026, 11, 22, 23, 59), number="LS-OLD")  # aged out
    s.delivery_note(s.order(customer), datetime(2026, 11, 27, 9, 0), number="LS-LATER")  # future
    config = write_config(email=email_section(smtp_server), shipping={"max_age_days": 4})

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 0
    assert ["LS-IN" in m.message["Subject"] for m in smtp_server.messages] == [True]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_cr_lf_in_a_customer_name_adds_no_header(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(email="clean1@example.ch")), PRINTED)
    evil = s.customer(name="Evil\r\nBcc: victim@example.org", email="evil@example.ch")
    s.delivery_note(s.order(evil), PRINTED)
    s.delivery_note(s.order(s.customer(email="clean2@example.ch")), PRINTED)
    config = write_config(email=email_section(smtp_server))

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 1  # the hostile row failed; the batch went on
    assert "1 failed" in result.stdout
    assert len(smtp_server.messages) == 2
    assert sorted(m.rcpt_tos for m in smtp_server.messages) == [
        ("clean1@example.ch",), ("clean2@example.ch",)
    ]
    for received in smtp_server.messages:
        assert received.message.get_all("Bcc") is None
        assert b"victim" not in received.raw


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_limit_info_type_none_and_disabled_service(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for _ in range(3):
        s.delivery_note(s.order(s.customer()), PRINTED)
    s.delivery_note(s.order(s.customer(info_type="none")), PRINTED)

    disabled = write_config(email=email_section(smtp_server), service={"enabled": False})
    off = cli("-c", disabled, "shipping-confirmations", "--as-of", AS_OF)
    assert off.exit_code == 0
    assert "service.enabled = false" in off.stderr
    assert smtp_server.messages == []

    config = write_config(email=email_section(smtp_server))
    limited = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF, "--limit", "2")
    assert limited.exit_code == 0
    assert len(smtp_server.messages) == 2
    rest = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert "1 sent" in rest.stdout
    assert "1 skipped" in rest.stdout
    assert len(smtp_server.messages) == 3
    assert sorted(r[2] for r in ledger_rows(config)) == ["sent", "sent", "sent", "skipped"]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_broken_template_is_exit_3_before_anything_is_sent(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), PRINTED)
    overrides = tmp_path / "templates" / "de"
    overrides.mkdir(parents=True)
    (overrides / "shipping.txt").write_text(
        "Guten Tag {{ kundenname_gibts_nicht }}\n", encoding="utf-8"
    )
    config = write_config(
        email=email_section(smtp_server), templates={"dir": str(tmp_path / "templates")}
    )

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 3
    assert "kundenname_gibts_nicht" in result.stderr
    assert "shipping.txt" in result.stderr
    assert smtp_server.messages == []
    assert ledger_rows(config) == []


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_second_run_exits_5_while_the_lock_is_held(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), PRINTED)
    config = write_config(email=email_section(smtp_server))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with RunLock(config.parent / "ledger.sqlite.lock"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    finally:
        release.set()
        holder.join()

    assert result.exit_code == 5
    assert "lock" in result.stderr
    assert smtp_server.messages == []
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_untrusted_certificate_stops_the_run_with_exit_4_before_auth(
    erp_backend: Any, write_config: Any, tls_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), PRINTED)
    config = write_config(
        email={
            "accounts": {
                "default": {
                    "transport": "smtp",
                    "directory": None,
                    "host": "localhost",
                    "port": tls_server.port,
                    "security": "starttls",
                    "username": "shop",
                    "password": "secret",
                    "timeout": 5,
                }
            }
        }
    )

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 4
    assert f"localhost:{tls_server.port}" in result.stderr
    assert "secret" not in result.stderr + result.stdout
    assert tls_server.handler.auth_attempts == []
    assert tls_server.messages == []


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_send_window_keeps_runs_outside_it_from_sending(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), PRINTED)
    config = write_config(email=email_section(smtp_server), service={"send_window": "07:00-20:00"})

    early = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T06:30")
    assert early.exit_code == 0
    assert "outside service.send_window" in early.stderr
    assert smtp_server.messages == []
    assert ledger_rows(config) == []
    preview = cli(
        "-c", config, "shipping-confirmations", "--as-of", "2026-11-27T06:30", "--dry-run"
    )
    assert "1 would be sent" in preview.stdout  # a dry run still previews

    assert cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T07:00").exit_code == 0
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_max_per_day_holds_the_rest_until_the_next_day(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for _ in range(3):
        s.delivery_note(s.order(s.customer()), PRINTED)
    email = email_section(smtp_server)
    email["accounts"]["default"]["max_per_day"] = 2
    config = write_config(email=email)

    first = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T08:00")
    assert first.exit_code == 1
    assert "2 sent" in first.stdout
    assert "1 deferred" in first.stdout
    later = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T18:00")
    assert "0 sent" in later.stdout
    assert len(smtp_server.messages) == 2
    next_day = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-28T08:00")
    assert next_day.exit_code == 0
    assert "1 sent" in next_day.stdout
    assert len(smtp_server.messages) == 3
    assert sorted(r[2] for r in ledger_rows(config)) == ["sent", "sent", "sent"]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_confirmation_is_not_sent_again_on_a_channel_added_later(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    customer = s.customer(info_type="none", email="opted-in-later@example.ch")
    s.delivery_note(s.order(customer), PRINTED)
    config = write_config(email=email_section(smtp_server))
    first = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert "1 skipped" in first.stdout

    # the customer opts in to email the next day; the note is still in the window
    erp_backend.update("customers", customer, info_type="email")
    later = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-28T08:00")

    assert later.exit_code == 0
    assert smtp_server.messages == []
    assert [(r[1], r[2]) for r in ledger_rows(config)] == [("none", "skipped")]


class _SlowCountingHandler:
    """Takes a while per message and counts how many sessions deliver at the same time."""

    def __init__(self) -> None:
        self.active = 0
        self.most = 0
        self.rcpts: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        self.active += 1
        self.most = max(self.most, self.active)
        await asyncio.sleep(0.05)
        self.active -= 1
        self.rcpts.extend(envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"


@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql"], indirect=True)
def test_parallel_connections_send_each_message_once(
    erp_backend: Any, write_config: Any, cli: Cli
) -> None:
    from aiosmtpd.controller import Controller
    from smtp_server import HOST, free_port

    s = shop(erp_backend)
    addresses = [f"parallel{i}@example.ch" for i in range(12)]
    for address in addresses:
        s.delivery_note(s.order(s.customer(email=address)), PRINTED)
    handler = _SlowCountingHandler()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, server_hostname="localhost")
    controller.start()
    try:
        account = {
            "transport": "smtp",
            "directory": None,
            "host": HOST,
            "port": port,
            "security": "none",
            "timeout": 5,
            "connections": 3,
        }
        config = write_config(email={"accounts": {"default": account}})
        result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    finally:
        controller.stop()

    assert result.exit_code == 0, result.stderr
    assert "12 sent" in result.stdout
    assert "0 sent" in again.stdout
    assert sorted(handler.rcpts) == sorted(addresses)
    assert handler.most == 3  # three conversations at once, never more
    assert [r[2] for r in ledger_rows(config)] == ["sent"] * 12


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_run_stopped_by_tls_leaves_no_claim_behind(
    erp_backend: Any, write_config: Any, tls_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for _ in range(5):
        s.delivery_note(s.order(s.customer()), PRINTED)
    account = {
        "transport": "smtp",
        "directory": None,
        "host": "localhost",
        "port": tls_server.port,
        "security": "starttls",
        "username": "shop",
        "password": "secret",
        "timeout": 5,
        "connections": 2,
    }
    config = write_config(email={"accounts": {"default": account}})

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 4
    # TLS fails when the account is prepared, before anything is claimed
    assert ledger_rows(config) == []
    assert f"localhost:{tls_server.port}" in result.stderr
    assert tls_server.messages == []


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_erp_text_with_rich_markup_is_shown_as_typed_in_the_dry_run_and_history(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(), number="A-[/]1"), PRINTED, number="LS-[bold]7")
    config = write_config(email=email_section(smtp_server))

    dry = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "LS-[bold]7" in dry.stdout  # a markup tag would vanish, [/] would crash (exit 70)
    sent = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert sent.exit_code == 0, sent.stderr
    history = cli("-c", config, "history")
    assert history.exit_code == 0, history.stderr
    assert "A-[/]1" in history.stdout


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_erp_text_with_rich_markup_on_a_terminal_preview_progress_and_tables(
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for console in (cli_module.out, cli_module.err):
        monkeypatch.setattr(console, "_force_terminal", True)  # a person at a terminal
    s = shop(erp_backend)
    hostile = "[/][link=https://evil.example]Klick[/link] [bold]"
    customer = s.customer(name=f"Kunde {hostile}")
    s.delivery_note(s.order(customer, number=f"A-{hostile}"), PRINTED, number="LS-[/]7")
    clean = s.delivery_note(s.order(s.customer()), PRINTED)
    config = write_config(email=email_section(smtp_server))

    dry = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF, "--dry-run", "--preview")
    assert dry.exit_code == 0, dry.stderr
    assert "LS-[/]7" in dry.stdout
    assert "[link=https://evil.example]Klick[/link]" in dry.stdout
    sent = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert sent.exit_code == 0, sent.stderr
    assert len(smtp_server.messages) == 2
    for command in (["history"], ["status", "--as-of", AS_OF], ["drafts", "list"]):
        shown = cli("-c", config, *command)
        assert shown.exit_code in (0, 1), shown.stderr
        assert "internal error" not in shown.stderr
    assert "LS-[/]7" in cli("-c", config, "history").stdout
    assert cli("-c", config, "history").stdout.endswith("2 row(s)\n")
    assert clean


def test_tracking_links_per_parcel_in_text_html_and_sms_nothing_without(
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    httpserver: HTTPServer,
    cli: Cli,
) -> None:
    gateway = AspsmsGateway(httpserver)
    s = shop(erp_backend)
    two = s.customer(email="two@example.ch", info_type="email_sms", phone="079 123 45 67")
    none = s.customer(email="none@example.ch", language="fr")
    own = s.customer(email="own@example.ch", language="en")
    s.delivery_note(s.order(two), PRINTED, number="LS-1",
                    tracking_number="99.60.123456.12345678; 99.60.123456.12345679",
                    carrier=" PostPac ")  # fmt: skip
    s.delivery_note(s.order(none), PRINTED, number="LS-2")
    s.delivery_note(s.order(own), PRINTED, number="LS-3", tracking_number="A/B 7", carrier="Kurier")
    config = write_config(
        email=email_section(smtp_server),
        sms=sms_settings(httpserver, max_segments=4),
        erp={"carrier_codes": {"post": ["PostPac"]}},
        shipping={"carriers": {"kurier": "https://kurier.example/t?n={number}"}},
    )

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 3
    by_rcpt = {m.rcpt_tos[0]: m.message for m in smtp_server.messages}
    post = "https://service.post.ch/ekp-web/ui/entry/search/99.60.123456.1234567"
    text = by_rcpt["two@example.ch"].get_body(("plain",)).get_content()
    html_part = by_rcpt["two@example.ch"].get_body(("html",)).get_content()
    for last in ("8", "9"):
        assert f"{post}{last}" in text
        assert f'href="{post}{last}"' in html_part
    [(number, sms)] = gateway.sent
    assert number == "+41791234567"
    assert f"{post}8" in sms
    plain_fr = by_rcpt["none@example.ch"].get_body(("plain",)).get_content()
    assert "http" not in plain_fr  # no number: no tracking block at all
    own_text = by_rcpt["own@example.ch"].get_body(("plain",)).get_content()
    assert "https://kurier.example/t?n=A%2FB" in own_text  # split at the blank, encoded


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_named_note_that_failed_says_why_and_the_way_back_then_goes_after_the_fix(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    customer = s.customer(email="hans.muster@")  # typed wrong in the ERP
    note = s.delivery_note(s.order(customer), PRINTED, number="LS-7")
    config = write_config(email=email_section(smtp_server))
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 1

    again = cli("-c", config, "shipping-confirmations", "--delivery-note", "LS-7", "--as-of", AS_OF)

    assert again.exit_code == 0, again.stderr
    assert "1 skipped" in again.stdout
    assert f"ledger resolve shipping:{note} --resend" in again.stdout + again.stderr
    erp_backend.update("customers", customer, email="hans.muster@example.ch")
    resolved = cli("-c", config, "ledger", "resolve", f"shipping:{note}", "--resend")
    assert resolved.exit_code == 0, resolved.stderr
    sent = cli("-c", config, "shipping-confirmations", "--delivery-note", "LS-7", "--as-of", AS_OF)
    assert sent.exit_code == 0, sent.stderr
    assert [m.rcpt_tos for m in smtp_server.messages] == [("hans.muster@example.ch",)]
