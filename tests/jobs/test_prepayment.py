"""prepayment-reminders end to end: ERP (four backends) → CLI → real SMTP server → ledger."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, day_runner
from erp_backends import ErpBackend
from ledger_rows import ledger_rows as read_ledger
from scenario import shop
from smtp_server import Received, RecordingHandler, SmtpServer, email_section

from proit_notify.db import connect_odbc, connect_sqlite

INVOICE_NUMBER = re.compile(r"Rechnung (R-\d+)")
NBSP = "\u00a0"


def prepayment_config(
    write_config: Any, server: SmtpServer, *, delay: int, repeat: int, max_mails: int, **more: Any
) -> Path:
    path: Path = write_config(
        email=email_section(server),
        prepayment={"delay_days": delay, "repeat_days": repeat, "max_mails": max_mails},
        **more,
    )
    return path


def ledger_rows(config: Path) -> list[tuple[str, str, str]]:
    """(key, channel, status) of every ledger row, by key."""
    return read_ledger(config, "key", "channel", "status")


def invoice_of(mail: Received) -> str:
    found = INVOICE_NUMBER.search(str(mail.message["Subject"]))
    assert found, mail.message["Subject"]
    return found.group(1)


def text_of(mail: Received) -> str:
    part = mail.message.get_body(("plain",))
    assert part is not None, "every email has a plain-text part"
    content: str = part.get_content()
    return content


def html_of(mail: Received) -> str:
    """The HTML part with entities resolved ("'" arrives as &#39;), as a browser shows it."""
    part = mail.message.get_body(("html",))
    assert part is not None, "every email has an HTML part"
    return html.unescape(str(part.get_content()))


def walk(
    cli: Cli, config: Path, server: SmtpServer, first: date, days: int
) -> dict[str, list[date]]:
    """One run a day at 00:00 local (``--as-of`` a bare date): invoice → days a mail arrived."""
    arrived: dict[str, list[date]] = {}
    for offset in range(days):
        day = first + timedelta(days=offset)
        seen = len(server.messages)
        result = cli("-c", config, "prepayment-reminders", "--as-of", day.isoformat())
        assert result.exit_code == 0, (day, result.stdout, result.stderr)
        for mail in server.messages[seen:]:
            arrived.setdefault(invoice_of(mail), []).append(day)
    return arrived


def offsets(invoice_day: date, days: list[date]) -> list[int]:
    return [(d - invoice_day).days for d in days]


# --- the 60-day walk ---------------------------------------------------------------------

WALK_START = date(2026, 10, 20)  # the walk crosses the end of summer time (25 Oct)
LATER_INVOICE = date(2026, 11, 5)

WALKS = {
    # (delay, repeat, max) -> days after the invoice date the reminders arrive
    "defaults 7/7/3": ((7, 7, 3), [7, 14, 21]),
    "at once, daily": ((0, 1, 3), [0, 1, 2]),
    "max 0 = none": ((3, 10, 0), []),
    "series cut by the walk's end": ((2, 20, 5), [2, 22, 42]),
}


def _walk_and_check(
    erp_backend: ErpBackend,
    write_config: Any,
    server: SmtpServer,
    cli: Cli,
    rule: tuple[int, int, int],
    expected: list[int],
    days: int = 60,
) -> None:
    delay, repeat, max_mails = rule
    s = shop(erp_backend)
    customer = s.customer()
    early = s.invoice(s.order(customer), customer, number="R-10", invoice_date=WALK_START)
    s.invoice(None, s.customer(), number="R-20", invoice_date=LATER_INVOICE)
    config = prepayment_config(
        write_config, server, delay=delay, repeat=repeat, max_mails=max_mails
    )

    arrived = walk(cli, config, server, WALK_START, days)

    assert offsets(WALK_START, arrived.get("R-10", [])) == expected
    # the later invoice (no order) runs the same series, cut by the walk's end
    its_days = (WALK_START + timedelta(days=days) - LATER_INVOICE).days
    assert offsets(LATER_INVOICE, arrived.get("R-20", [])) == [d for d in expected if d < its_days]
    # each mail says which reminder it is: "Erinnerung: n von max"
    numbers = [
        re.findall(r"Erinnerung:\s+(\d+) von (\d+)", text_of(m))
        for m in server.messages
        if invoice_of(m) == "R-10"
    ]
    assert numbers == [[(str(n), str(max_mails))] for n in range(1, len(expected) + 1)]
    keys = [k for k, _, st in ledger_rows(config) if k.startswith(f"prepayment:{early}:")]
    assert keys == [f"prepayment:{early}:{n}" for n in range(1, len(expected) + 1)]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("rule", "expected"), list(WALKS.values()), ids=list(WALKS))
def test_sixty_day_walk_sends_on_exactly_these_days(
    erp_backend: ErpBackend,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    rule: tuple[int, int, int],
    expected: list[int],
) -> None:
    _walk_and_check(erp_backend, write_config, smtp_server, cli, rule, expected)


@pytest.mark.parametrize("erp_backend", ["sqlite-odbc", "postgresql", "mariadb"], indirect=True)
def test_sixty_day_walk_on_the_odbc_backends(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    # the same SQL and ledger paths as the walks above, on fewer days to keep the suite fast
    _walk_and_check(erp_backend, write_config, smtp_server, cli, (2, 3, 4), [2, 5, 8, 11], days=24)


# --- payments, cancellations, formats ---------------------------------------------------


def test_payment_or_cancellation_between_runs_ends_the_series(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    day = date(2026, 11, 2)
    paid_later = s.invoice(s.order(s.customer()), s.customer(), number="R-1", invoice_date=day)
    cancelled_later = s.invoice(None, s.customer(), number="R-2", invoice_date=day)
    s.invoice(None, s.customer(), number="R-3", invoice_date=day)  # stays open
    s.invoice(None, s.customer(), number="R-4", invoice_date=day, cancelled=1)
    s.invoice(None, s.customer(), number="R-5", invoice_date=day, is_prepayment=False)
    s.invoice(None, s.customer(), number="R-6", invoice_date=day, open_amount=Decimal("0.00"))
    config = prepayment_config(write_config, smtp_server, delay=1, repeat=2, max_mails=3)

    first = cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-03T08:00")
    assert first.exit_code == 0, first.stderr
    assert sorted(invoice_of(m) for m in smtp_server.messages) == ["R-1", "R-2", "R-3"]

    erp_backend.update("invoices", paid_later, open_amount=Decimal("0.00"))
    erp_backend.update("invoices", cancelled_later, cancelled=1)
    second = cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-05T08:00")

    assert second.exit_code == 0
    assert "1 sent" in second.stdout
    assert [invoice_of(m) for m in smtp_server.messages[3:]] == ["R-3"]
    assert "2. Zahlungserinnerung" in str(smtp_server.messages[3].message["Subject"])


def test_part_payment_is_reminded_of_the_open_amount_in_the_customers_format(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    swiss = s.customer(email="kunde@example.ch", country="CH", language="de")
    german = s.customer(email="kunde@example.de", country="DE", language="de")
    day = date(2026, 11, 2)
    s.invoice(
        s.order(swiss, number="A-CH"), swiss, number="R-1", invoice_date=day,
        amount=Decimal("1500.00"), open_amount=Decimal("1234.50"), currency="CHF",
    )  # fmt: skip
    s.invoice(
        s.order(german, number="A-DE"), german, number="R-2", invoice_date=day,
        amount=Decimal("2000.00"), open_amount=Decimal("1234.50"), currency="EUR",
    )  # fmt: skip
    config = prepayment_config(write_config, smtp_server, delay=3, repeat=7, max_mails=3)

    result = cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-05")

    assert result.exit_code == 0, result.stderr
    by_rcpt = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    ch_text = text_of(by_rcpt["kunde@example.ch"])
    assert f"Davon sind noch CHF{NBSP}1'234.50 offen" in ch_text
    assert f"über CHF{NBSP}1'500.00" in ch_text
    assert "Rechnung:       R-1 vom 02.11.2026" in ch_text
    assert "A-CH" in ch_text
    assert "Erinnerung:     1 von 3" in ch_text
    assert f"CHF{NBSP}1'234.50" in html_of(by_rcpt["kunde@example.ch"])
    de_text = text_of(by_rcpt["kunde@example.de"])
    assert f"Davon sind noch 1.234,50{NBSP}€ offen" in de_text
    assert f"über 2.000,00{NBSP}€" in de_text
    assert "Freundliche Grüße" in de_text  # not the Swiss "Grüsse"
    assert f"1.234,50{NBSP}€" in html_of(by_rcpt["kunde@example.de"])


# --- payment arriving between selection and send ---------------------------------------


@dataclass
class HookedHandler(RecordingHandler):
    """Records like :class:`RecordingHandler`, and runs ``on_message`` once a message is in."""

    on_message: list[Callable[[Received], None]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer: str = await super().handle_DATA(server, session, envelope)
        for hook in self.on_message:
            hook(self.messages[-1])
        return answer


@pytest.fixture
def hooked_server() -> Any:
    server = SmtpServer(HookedHandler())
    server.start()
    yield server
    server.stop()


def book_payment(backend: ErpBackend, invoice_id: int, open_amount: Decimal) -> None:
    """Book a payment as the ERP would, on a connection of its own (we are on the SMTP
    server's thread, which must not use the test's connections)."""
    if backend.name == "sqlite":
        db = connect_sqlite(Path(backend.connection["sqlite"]))
    else:
        db = connect_odbc(backend.connection["odbc"], login_timeout=5)
    try:
        ErpBackend(backend.name, backend.dialect, db, backend.connection).update(
            "invoices", invoice_id, open_amount=open_amount
        )
    finally:
        db.close()


# sqlite-odbc: the tool's ODBC connection holds the SQLite file's read lock while it
# streams, so the ERP could not book a payment at that moment anyway
@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_payment_booked_while_the_batch_is_sending_is_seen_before_each_send(
    erp_backend: ErpBackend, write_config: Any, hooked_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    day = date(2026, 11, 2)
    first = s.invoice(None, s.customer(email="first@example.ch"), number="R-1", invoice_date=day)
    paid = s.invoice(None, s.customer(email="paid@example.ch"), number="R-2", invoice_date=day)
    part = s.invoice(None, s.customer(email="part@example.ch"), number="R-3", invoice_date=day)
    config = prepayment_config(write_config, hooked_server, delay=1, repeat=7, max_mails=3)

    def pay_while_the_first_mail_arrives(mail: Received) -> None:
        if mail.rcpt_tos == ("first@example.ch",):
            # the selection has read all three invoices as open (100.00) by now
            book_payment(erp_backend, paid, Decimal("0.00"))
            book_payment(erp_backend, part, Decimal("25.50"))

    assert isinstance(hooked_server.handler, HookedHandler)
    hooked_server.handler.on_message.append(pay_while_the_first_mail_arrives)

    result = cli("-c", config, "--json", "prepayment-reminders", "--as-of", "2026-11-03T08:00")

    assert result.exit_code == 0, result.stderr
    assert [m.rcpt_tos[0] for m in hooked_server.messages] == [
        "first@example.ch",
        "part@example.ch",
    ]
    [report] = result.json()
    assert [i["key"] for i in report["items"]] == [f"prepayment:{i}:1" for i in (first, part)]
    part_text = text_of(hooked_server.messages[1])
    assert f"Davon sind noch CHF{NBSP}25.50 offen" in part_text
    assert f"Noch offen:     CHF{NBSP}25.50" in part_text
    assert f"CHF{NBSP}100.00 offen" not in part_text
    # the paid invoice got nothing and has no ledger row: nothing was sent for it
    assert [k for k, _, _ in ledger_rows(config)] == [
        f"prepayment:{i}:1" for i in sorted((first, part))
    ]


# --- catch-up, crashes, retries, failures ------------------------------------------------


def stepper(cli: Cli, config: Path, server: SmtpServer) -> Callable[[str], list[str]]:
    """``run(as_of)``: one prepayment-reminders run, the invoice numbers it mailed."""
    run = day_runner(cli, config, server, "prepayment-reminders")
    return lambda as_of: [invoice_of(m) for m in run(as_of)]


def test_runs_skipped_for_days_send_one_reminder_and_a_long_pause_never_ends_a_series(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.invoice(None, s.customer(), number="R-1", invoice_date=date(2026, 11, 1))
    config = prepayment_config(write_config, smtp_server, delay=2, repeat=3, max_mails=6)
    run = stepper(cli, config, smtp_server)

    assert run("2026-11-03") == ["R-1"]  # reminder 1
    # no runs from 4 to 11 November: reminders 2 (due 6th) and 3 would have been due
    assert run("2026-11-12") == ["R-1"]  # one reminder, not two
    assert run("2026-11-12T18:00") == []
    assert run("2026-11-14") == []  # 3 days after the 12th, not after the 6th
    assert run("2026-11-15") == ["R-1"]
    # stopped 20 days (reminder 4 was due the 18th): the first run after the pause sends it
    assert run("2026-12-05") == ["R-1"]
    assert run("2026-12-07") == []
    assert run("2026-12-08") == ["R-1"]  # reminder 5, repeat_days after the late one
    subjects = [str(m.message["Subject"]) for m in smtp_server.messages]
    assert [s.split(" Zahlungserinnerung")[0] for s in subjects] == [
        "Zahlungserinnerung: Vorauszahlung Rechnung R-1",
        "2.",
        "3.",
        "4.",
        "5.",
    ]


def test_an_invoice_30_days_old_at_the_first_run_gets_reminder_1_at_once(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.invoice(None, s.customer(), number="R-30", invoice_date=date(2026, 11, 2))
    config = prepayment_config(write_config, smtp_server, delay=5, repeat=7, max_mails=3)
    run = stepper(cli, config, smtp_server)

    # reminder 1 was due 7 November, 25 days before the first run: within 60 days
    assert run("2026-12-02T08:00") == ["R-30"]
    assert run("2026-12-08") == []
    assert run("2026-12-09") == ["R-30"]  # reminder 2, repeat_days after reminder 1
    assert [st for _, _, st in ledger_rows(config)] == ["sent", "sent"]


def test_a_first_reminder_due_more_than_60_days_ago_ages_out_with_a_row(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    # due 2 October (delay 1): 61 days before 2 December; the other one 60 days
    old = s.invoice(None, s.customer(), number="R-61", invoice_date=date(2026, 10, 1))
    edge = s.invoice(None, s.customer(), number="R-60", invoice_date=date(2026, 10, 2))
    config = prepayment_config(write_config, smtp_server, delay=1, repeat=7, max_mails=3)
    run = stepper(cli, config, smtp_server)

    result = cli("-c", config, "--json", "prepayment-reminders", "--as-of", "2026-12-02T08:00")
    assert result.exit_code == 0, result.stderr
    [report] = result.json()
    items = {i["key"]: (i["status"], i["reason"]) for i in report["items"]}
    assert items[f"prepayment:{edge}:1"] == ("sent", "")
    status, reason = items[f"prepayment:{old}:1"]
    assert status == "skipped"
    assert reason.startswith("aged out: reminder 1 was due on 02.10.2026")
    assert "max_age_days (60)" in reason
    assert [invoice_of(m) for m in smtp_server.messages] == ["R-60"]
    assert ledger_rows(config) == sorted(
        [(f"prepayment:{old}:1", "none", "skipped"), (f"prepayment:{edge}:1", "email", "sent")]
    )
    # the aged-out invoice never starts a series, however many runs follow
    assert run("2026-12-09") == ["R-60"]
    assert run("2026-12-30") == ["R-60"]
    assert run("2027-01-30") == []
    assert len(ledger_rows(config)) == 4


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_run_killed_after_the_claim_counts_toward_max_and_is_never_resent(
    erp_backend: ErpBackend, write_config: Any, hooked_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    invoice = s.invoice(None, s.customer(), number="R-1", invoice_date=date(2026, 11, 1))
    config = prepayment_config(write_config, hooked_server, delay=1, repeat=3, max_mails=2)
    command = [
        sys.executable, "-c", "import sys; from proit_notify.cli import main; main()",
        "-c", str(config), "prepayment-reminders", "--as-of", "2026-11-02T08:00",
    ]  # fmt: skip
    running: list[subprocess.Popen[bytes]] = []

    def kill_the_sender(mail: Received) -> None:
        # the message is in, the sender waits for the answer: it dies now
        running[0].kill()
        running[0].wait(10)

    assert isinstance(hooked_server.handler, HookedHandler)
    hooked_server.handler.on_message.append(kill_the_sender)
    running.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    running[0].communicate(timeout=60)
    hooked_server.handler.on_message.clear()

    assert running[0].returncode != 0
    assert len(hooked_server.messages) == 1  # it did arrive; the tool cannot know that
    assert ledger_rows(config) == [(f"prepayment:{invoice}:1", "email", "sending")]

    after = cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-02T09:00")
    assert after.exit_code == 1
    assert "unknown" in after.stderr
    assert len(hooked_server.messages) == 1  # never resent
    assert ledger_rows(config)[0][2] == "unknown"

    assert cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-04").exit_code == 0
    assert len(hooked_server.messages) == 1  # 3 days after the attempt, not yet
    assert cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-05").exit_code == 0
    assert "2. Zahlungserinnerung" in str(hooked_server.messages[-1].message["Subject"])
    for day in ("2026-11-08", "2026-11-11", "2026-11-14"):
        assert cli("-c", config, "prepayment-reminders", "--as-of", day).exit_code == 0
    # max_mails 2: the unknown one counts, so the customer got exactly two
    assert len(hooked_server.messages) == 2
    assert ledger_rows(config) == [
        (f"prepayment:{invoice}:1", "email", "unknown"),
        (f"prepayment:{invoice}:2", "email", "sent"),
    ]


@pytest.mark.parametrize("erp_backend", ["sqlite", "mariadb"], indirect=True)
def test_a_deferred_reminder_is_retried_under_its_key_not_replaced(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    invoice = s.invoice(
        None, s.customer(email="later@example.ch"), number="R-1", invoice_date=date(2026, 11, 1)
    )
    smtp_server.handler.data_answers["later@example.ch"] = "451 4.3.0 try again later"
    config = prepayment_config(
        write_config, smtp_server, delay=1, repeat=2, max_mails=3,
        retry={"first_delay_minutes": 60 * 24},
    )  # fmt: skip

    first = cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-02T08:00")
    assert first.exit_code == 1
    assert "1 deferred" in first.stdout
    # two days later reminder 2 would be due, but reminder 1 has not gone out yet
    del smtp_server.handler.data_answers["later@example.ch"]
    retried = cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-04T08:00")

    assert retried.exit_code == 0
    assert "1 sent" in retried.stdout
    assert [invoice_of(m) for m in smtp_server.messages] == ["R-1"]
    assert "Erinnerung:     1 von 3" in text_of(smtp_server.messages[0])
    assert ledger_rows(config) == [(f"prepayment:{invoice}:1", "email", "sent")]
    # the next one counts from when reminder 1 was sent (the 4th)
    assert "0 sent" in cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-05").stdout
    assert "1 sent" in cli("-c", config, "prepayment-reminders", "--as-of", "2026-11-06").stdout


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_an_invalid_address_uses_up_the_reminders_and_then_stops(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    invoice = s.invoice(
        None, s.customer(email="hans.muster@"), number="R-1", invoice_date=date(2026, 11, 1)
    )
    config = prepayment_config(write_config, smtp_server, delay=0, repeat=2, max_mails=2)

    codes = [
        cli("-c", config, "prepayment-reminders", "--as-of", f"2026-11-{d:02d}").exit_code
        for d in range(1, 11)
    ]

    assert codes == [1, 0, 1, 0, 0, 0, 0, 0, 0, 0]  # failed on the 1st and 3rd, then quiet
    assert smtp_server.messages == []
    assert ledger_rows(config) == [
        (f"prepayment:{invoice}:1", "email", "failed"),
        (f"prepayment:{invoice}:2", "email", "failed"),
    ]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_dry_run_previews_the_reminder_and_writes_nothing(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    customer = s.customer()
    s.invoice(s.order(customer), customer, number="R-1", invoice_date=date(2026, 11, 1))
    config = prepayment_config(write_config, smtp_server, delay=1, repeat=2, max_mails=2)

    result = cli(
        "-c", config, "prepayment-reminders", "--as-of", "2026-11-02", "--dry-run", "--preview"
    )

    assert result.exit_code == 0, result.stderr
    assert "1 would be sent" in result.stdout
    assert "Vorauszahlung Rechnung R-1" in result.stdout
    assert smtp_server.messages == []
    assert ledger_rows(config) == []
