"""When to send (SPEC §11): send windows per channel, send days, cantonal holidays. Walks
with ``--as-of`` across an evening, a weekend and 25 December, on the four backends: nothing
is claimed outside, nothing ages out because of it, the next run in the window sends."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli
from ledger_rows import ledger_rows
from pytest_httpserver import HTTPServer
from scenario import shop
from sms_gateways import AspsmsGateway, sms_settings
from smtp_server import SmtpServer, email_section

from proit_notify.clock import SendDays, parse_days
from proit_notify.errors import ConfigError
from proit_notify.settings import load_settings

CHRISTMAS_EVE = datetime(2026, 12, 24, 19, 30)  # a Thursday, printed half an hour before 20:00


def test_a_note_printed_before_christmas_goes_on_the_next_send_day_and_never_ages_out(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(email="anna@example.ch")), CHRISTMAS_EVE, number="LS-1")
    config = write_config(
        email=email_section(smtp_server),
        service={"send_window": "07:00-20:00", "send_days": "Mo-Fr", "holidays": "CH-ZH"},
        # one send day of catch-up: Thursday 24th is the due day, Friday to Sunday are closed
        shipping={"max_age_days": 1},
    )
    closed = {
        "2026-12-24T21:00": "outside service.send_window 07:00-20:00 (now 21:00)",
        "2026-12-25T10:00": "25.12.2026 is a public holiday in CH-ZH",
        "2026-12-26T10:00": "Saturday is not in service.send_days",
        "2026-12-27T10:00": "Sunday is not in service.send_days",
        "2026-12-28T06:59": "outside service.send_window",
    }
    for moment, why in closed.items():
        result = cli("-c", config, "shipping-confirmations", "--as-of", moment)
        assert result.exit_code == 0, (moment, result.stderr)
        assert why in result.stderr, (moment, result.stderr)
        assert "nothing was sent" in result.stderr
        assert smtp_server.messages == []
        assert ledger_rows(config) == [], moment  # nothing claimed, nothing aged out

    monday = cli("-c", config, "shipping-confirmations", "--as-of", "2026-12-28T07:00")

    assert monday.exit_code == 0, monday.stderr
    assert [m.rcpt_tos for m in smtp_server.messages] == [("anna@example.ch",)]
    assert [r.status for r in ledger_rows(config)] == ["sent"]


def test_sms_window_holds_the_sms_customer_while_email_goes_in_its_own(
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    httpserver: HTTPServer,
    cli: Cli,
) -> None:
    gateway = AspsmsGateway(httpserver)
    s = shop(erp_backend)
    by_email = s.customer(email="mail@example.ch", info_type="email")
    both = s.customer(email="both@example.ch", info_type="email_sms", phone="079 123 45 67")
    s.delivery_note(s.order(by_email), datetime(2026, 11, 26, 15, 0), number="LS-1")
    s.delivery_note(s.order(both), datetime(2026, 11, 26, 15, 0), number="LS-2")
    config = write_config(
        email={**email_section(smtp_server), "send_window": "07:00-21:30"},
        sms=sms_settings(httpserver, send_window="08:00-20:00"),
        service={"send_window": "09:00-17:00"},  # each channel has its own: not used
    )

    evening = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-26T21:00")

    assert evening.exit_code == 0, evening.stderr
    assert "1 sent" in evening.stdout
    assert "2 waiting" in evening.stdout  # the email+SMS customer's two messages
    assert [m.rcpt_tos for m in smtp_server.messages] == [("mail@example.ch",)]
    assert gateway.sent == []
    assert [r.recipient for r in ledger_rows(config)] == ["mail@example.ch"]

    morning = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T08:00")

    assert morning.exit_code == 0, morning.stderr
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "both@example.ch", "mail@example.ch"
    ]
    assert gateway.numbers == ["+41791234567"]
    assert len(ledger_rows(config)) == 3


def test_send_days_read_as_people_write_them() -> None:
    assert parse_days("Mon-Sat") == frozenset(range(6))
    assert parse_days("Mo-Fr") == frozenset(range(5))
    assert parse_days("Mon, Wed ,Fri") == frozenset({0, 2, 4})
    assert parse_days("Sa-Mo") == frozenset({5, 6, 0})  # a range may wrap
    zurich = SendDays(parse_days("Mon-Sat"), "CH-ZH")
    assert zurich.closed(date(2026, 8, 1)) is not None  # Swiss National Day
    assert zurich.closed(date(2026, 4, 6)) is not None  # Easter Monday
    assert zurich.closed(date(2026, 12, 2)) is None
    geneva = SendDays(holidays="CH-GE")
    assert geneva.closed(date(2026, 12, 31)) is not None  # Restauration genevoise
    assert SendDays(holidays="CH-ZH").closed(date(2026, 12, 31)) is None


def test_send_days_holidays_and_windows_are_checked_all_at_once(tmp_path: Path) -> None:
    config = tmp_path / "proit-notify.toml"
    config.write_text(
        'erp = { sqlite = "erp.sqlite" }\nledger = { sqlite = "ledger.sqlite" }\n'
        '[service]\nsend_days = "Mon-Funday"\nholidays = "CH-XY"\n'
        '[email]\nsend_window = "7 bis 20"\n'
        '[email.accounts.default]\ntransport = "file"\ndirectory = "out"\n'
        'from = "Shop <shop@example.ch>"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    said = "\n".join(caught.value.problems)
    assert "service.send_days" in said
    assert "'Mon-Sat', 'Mo-Fr'" in said
    assert "service.holidays" in said
    assert "CH-XY" in said
    assert "email.send_window" in said
