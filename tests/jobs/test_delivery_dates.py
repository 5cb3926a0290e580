"""delivery-dates and drafts end to end: ERP (four backends) → CLI → real SMTP server → ledger."""

from __future__ import annotations

import sqlite3
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, day_runner
from ledger_rows import ledger_rows as read_ledger
from pytest_httpserver import HTTPServer
from scenario import Shop, shop
from sms_gateways import sms_settings
from smtp_server import Received, SmtpServer, email_section

from proit_notify.cli import jobs as cli_jobs
from proit_notify.jobs.delivery_dates import MARKER_KEY

AS_OF = "2026-11-27T08:00"
ORDERED = date(2026, 11, 20)  # within the default catch-up window of 14 days
DEC_5, DEC_12 = date(2026, 12, 5), date(2026, 12, 12)
#: the orders of a test exist before its first run: without this, that run takes them as the
#: baseline (tested on its own below)
EXISTING = {"notify_existing": True}


def ledger_rows(config: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(key, status, detail, info) of every ledger row but the baseline's marker, by key."""
    rows = read_ledger(config, "key", "status", "detail", "info")
    return [r for r in rows if r[0] != MARKER_KEY]


def text_of(mail: Received) -> str:
    return str(mail.message.get_body(("plain",)).get_content())


def html_of(mail: Received) -> str:
    return str(mail.message.get_body(("html",)).get_content())


def open_order(s: Shop, **fields: Any) -> int:
    """An order of a new customer, nothing delivered yet, entered a week before AS_OF."""
    fields.setdefault("order_date", ORDERED)
    return s.order(s.customer(), delivered=False, **fields)


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$EDITOR is a script that replaces "Guten Tag" by "Grüezi" and the subject's start."""
    script = tmp_path / "edit.py"
    script.write_text(
        "import pathlib, sys\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "t = p.read_text(encoding='utf-8')\n"
        "t = t.replace('Guten Tag', 'Grüezi').replace('Subject: ', 'Subject: Geprüft: ', 1)\n"
        "p.write_text(t, encoding='utf-8')\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", f'"{sys.executable}" "{script}"')
    return script


def test_a_notice_per_date_set_changed_and_changed_back(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    order = open_order(s, number="A-500")
    done = s.order(s.customer(), order_date=ORDERED, delivery_date=DEC_5)  # completely delivered
    config = write_config(email=email_section(smtp_server))

    def run() -> list[Received]:
        before = len(smtp_server.messages)
        result = cli("-c", config, "delivery-dates", "--as-of", AS_OF)
        assert result.exit_code == 0, result.stderr
        return smtp_server.messages[before:]

    assert run() == []  # no delivery date yet
    erp_backend.update("orders", order, delivery_date=DEC_5)
    [first] = run()
    assert first.rcpt_tos == ("kunde1@example.ch",)
    assert "A-500" in first.message["Subject"]
    assert "05.12.2026" in first.message["Subject"]
    assert "bisher" not in text_of(first)
    assert "Artikel 1" in text_of(first)
    assert "<table" in html_of(first)
    assert run() == []  # same date: nothing new

    erp_backend.update("orders", order, delivery_date=DEC_12)
    [second] = run()
    assert second.message["Subject"].startswith("Neuer Liefertermin")
    assert "12.12.2026" in second.message["Subject"]
    assert "12. Dezember 2026" in text_of(second)
    assert "bisher: 05.12.2026" in text_of(second)

    erp_backend.update("orders", order, delivery_date=DEC_5)
    [third] = run()
    assert "05.12.2026" in third.message["Subject"]
    assert "bisher: 12.12.2026" in text_of(third)

    rows = ledger_rows(config)
    assert [(k, st, i["delivery_date"]) for k, st, _, i in rows] == [
        (f"delivery_date:{order}:1", "sent", "2026-12-05"),
        (f"delivery_date:{order}:2", "sent", "2026-12-12"),
        (f"delivery_date:{order}:3", "sent", "2026-12-05"),
    ]
    assert all(f"delivery_date:{done}:" not in k for k, *_ in rows)


@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_old_orders_are_notified_past_dates_and_orders_after_as_of_are_not(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    old = open_order(s, number="A-OLD", order_date=date(2024, 1, 12), delivery_date=DEC_5)
    open_order(s, number="A-IN", order_date=date(2026, 11, 13), delivery_date=DEC_5)
    open_order(s, number="A-PAST", delivery_date=date(2026, 11, 26))
    open_order(s, number="A-TODAY", delivery_date=date(2026, 11, 27))
    open_order(s, number="A-LATER", order_date=date(2026, 11, 28), delivery_date=DEC_5)
    config = write_config(email=email_section(smtp_server), delivery_date=EXISTING)

    assert cli("-c", config, "delivery-dates", "--as-of", AS_OF).exit_code == 0

    subjects = sorted(m.message["Subject"].split()[-2] for m in smtp_server.messages)
    # the order's age does not matter (SPEC §4); a past date and an order entered after
    # --as-of are not notified
    assert subjects == ["A-IN:", "A-OLD:", "A-TODAY:"]
    erp_backend.update("orders", old, delivery_date=DEC_12)
    assert cli("-c", config, "delivery-dates", "--as-of", AS_OF).exit_code == 0
    assert len(smtp_server.messages) == 4
    assert "12.12.2026" in smtp_server.messages[-1].message["Subject"]


def test_drafts_reviewed_edited_sent_and_discarded(
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    editor: Path,
) -> None:
    s = shop(erp_backend)
    first = open_order(s, number="A-1", delivery_date=DEC_5)
    second = open_order(s, number="A-2", delivery_date=DEC_12)
    config = write_config(
        email=email_section(smtp_server), delivery_date={"edit_before_send": True, **EXISTING}
    )
    key1, key2 = f"delivery_date:{first}:1", f"delivery_date:{second}:1"

    # under cron (run-all, no terminal) the notices become drafts; nothing is sent
    run = cli("-c", config, "run-all", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert (
        "delivery-dates: 0 sent, 0 failed, 0 skipped, 0 deferred, 0 unknown, 2 drafts" in run.stdout
    )
    assert smtp_server.messages == []
    listed = cli("-c", config, "drafts", "list", "--as-of", AS_OF)
    assert listed.exit_code == 0
    header, *lines = [line.split("\t") for line in listed.stdout.splitlines() if "\t" in line]
    assert header[:2] == ["key", "channel"]  # plain lines name their columns first
    assert [(f[0], f[1], f[2], f[4]) for f in lines] == [
        (key1, "email", "kunde1@example.ch", "2026-12-05"),
        (key2, "email", "kunde3@example.ch", "2026-12-12"),
    ]
    as_json = cli("-c", config, "--json", "drafts", "list", "--as-of", AS_OF).json()[0]
    assert [d["key"] for d in as_json] == [key1, key2]
    assert "Guten Tag" in as_json[0]["text"]
    assert "A-1" in as_json[0]["subject"]

    edited = cli("-c", config, "drafts", "edit", key1)
    assert edited.exit_code == 0, edited.stderr
    shown = cli("-c", config, "drafts", "show", key1)
    assert "Grüezi" in shown.stdout
    assert "Subject: Geprüft: " in shown.stdout

    sent = cli("-c", config, "drafts", "send", key1, "--as-of", AS_OF)
    assert sent.exit_code == 0, sent.stderr
    assert "drafts send: 1 sent, 0 failed, 0 skipped" in sent.stdout
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ("kunde1@example.ch",)
    assert mail.message["Subject"].startswith("Geprüft: Liefertermin")
    assert "Grüezi" in text_of(mail)
    assert "Guten Tag" not in text_of(mail)
    assert "Grüezi" in html_of(mail)
    assert "Guten Tag" not in html_of(mail)
    assert "Artikel 1" in html_of(mail)

    discarded = cli("-c", config, "drafts", "discard", key2)
    assert discarded.exit_code == 0
    assert "discarded" in discarded.stdout
    # neither the sent nor the discarded date is drafted again
    again = cli("-c", config, "delivery-dates", "--as-of", AS_OF)
    assert again.exit_code == 0
    assert "drafts" not in again.stdout
    assert cli("-c", config, "drafts", "list").stdout.strip().endswith("0 draft(s)")
    rows = ledger_rows(config)
    assert [(k, st) for k, st, _, _ in rows] == [(key1, "sent"), (key2, "skipped")]
    assert rows[0][2].startswith("250")
    assert rows[0][3]["draft"]["edited"] is True
    assert rows[1][2] == "discarded"

    again_send = cli("-c", config, "drafts", "send", key1)
    assert again_send.exit_code == 2
    assert "not a draft (email: sent)" in again_send.stderr
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize(
    "erp_backend", ["sqlite", "sqlite-odbc", "postgresql", "mariadb"], indirect=True
)
def test_a_draft_whose_date_changed_again_is_superseded_never_sent(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    moved = open_order(s, number="A-MOVED", delivery_date=DEC_5)
    direct = open_order(s, number="A-DIRECT", delivery_date=DEC_5)
    dropped = open_order(s, number="A-NODATE", delivery_date=DEC_5)
    config = write_config(
        email=email_section(smtp_server), delivery_date={"edit_before_send": True, **EXISTING}
    )
    assert "3 drafts" in cli("-c", config, "delivery-dates", "--as-of", AS_OF).stdout

    erp_backend.update("orders", moved, delivery_date=DEC_12)
    erp_backend.update("orders", direct, delivery_date=DEC_12)
    erp_backend.update("orders", dropped, delivery_date=None)
    # sent by key before any new run: the re-check refuses the outdated ones
    direct_send = cli("-c", config, "drafts", "send", f"delivery_date:{direct}:1", "--as-of", AS_OF)
    assert direct_send.exit_code == 0
    assert "0 sent, 0 failed, 1 skipped" in direct_send.stdout
    rerun = cli("-c", config, "delivery-dates", "--as-of", AS_OF)
    assert "2 drafts" in rerun.stdout  # the new date of both moved orders, as notice 2

    listed = cli("-c", config, "drafts", "list", "--as-of", AS_OF)
    assert f"delivery_date:{moved}:1 (email): superseded by a newer delivery date" in listed.stderr
    assert f"delivery_date:{dropped}:1 (email): the order has no delivery date" in listed.stderr
    keys = [line.split("\t")[0] for line in listed.stdout.splitlines()[1:] if "\t" in line]
    assert keys == [f"delivery_date:{moved}:2", f"delivery_date:{direct}:2"]

    sent = cli("-c", config, "drafts", "send", "--all", "--as-of", AS_OF)
    assert sent.exit_code == 0
    assert "2 sent" in sent.stdout
    subjects = sorted(m.message["Subject"] for m in smtp_server.messages)
    assert all("12.12.2026" in subject for subject in subjects)
    assert len(subjects) == 2
    # the customer never saw 05.12.: the notice does not call it the previous date
    assert all("bisher" not in text_of(m) for m in smtp_server.messages)
    status = {k: (st, d) for k, st, d, _ in ledger_rows(config)}
    assert status[f"delivery_date:{moved}:1"] == ("skipped", "superseded by a newer delivery date")
    assert status[f"delivery_date:{direct}:1"] == ("skipped", "superseded by a newer delivery date")
    assert status[f"delivery_date:{dropped}:1"][0] == "skipped"
    assert status[f"delivery_date:{moved}:2"][0] == "sent"


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_deferred_draft_stays_a_draft_with_its_edit(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, editor: Path
) -> None:
    s = shop(erp_backend)
    order = open_order(s, delivery_date=DEC_5)
    key = f"delivery_date:{order}:1"
    config = write_config(
        email=email_section(smtp_server), delivery_date={"edit_before_send": True, **EXISTING}
    )
    cli("-c", config, "delivery-dates", "--as-of", AS_OF)
    assert cli("-c", config, "drafts", "edit", key).exit_code == 0
    smtp_server.handler.data_answers["kunde1@example.ch"] = "451 4.3.0 try again later"

    deferred = cli("-c", config, "drafts", "send", "--all", "--as-of", AS_OF)
    assert deferred.exit_code == 1
    assert "1 deferred" in deferred.stdout
    assert [st for _, st, _, _ in ledger_rows(config)] == ["draft"]
    # the next job run does not re-render it (the edit would be lost)
    cli("-c", config, "delivery-dates", "--as-of", AS_OF)
    assert smtp_server.messages == []

    del smtp_server.handler.data_answers["kunde1@example.ch"]
    sent = cli("-c", config, "drafts", "send", "--all", "--as-of", AS_OF)
    assert sent.exit_code == 0
    assert "1 sent" in sent.stdout
    assert "Grüezi" in text_of(smtp_server.messages[0])


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_drafts_send_keeps_to_max_per_day(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    orders = [open_order(s, delivery_date=DEC_5) for _ in range(3)]
    email = email_section(smtp_server)
    email["accounts"]["default"]["max_per_day"] = 2
    config = write_config(email=email, delivery_date={"edit_before_send": True, **EXISTING})
    assert cli("-c", config, "delivery-dates", "--as-of", AS_OF).exit_code == 0
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    # one mail of the account went out today already (a test send is outside the ledger)
    s.delivery_note(s.order(s.customer()), date(2026, 11, 26))
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    assert len(smtp_server.messages) == 1

    today = cli("-c", config, "--json", "drafts", "send", "--all", "--as-of", "2026-11-27T09:00")

    assert today.exit_code == 1
    [report] = today.json()
    assert sorted(i["status"] for i in report["items"]) == ["deferred", "deferred", "sent"]
    assert all(
        "reached max_per_day (2)" in i["reason"]
        for i in report["items"]
        if i["status"] == "deferred"
    )
    assert len(smtp_server.messages) == 2
    statuses = {k: st for k, st, _, _ in ledger_rows(config) if k.startswith("delivery_date:")}
    assert sorted(statuses.values()) == ["draft", "draft", "sent"]
    tomorrow = cli("-c", config, "drafts", "send", "--all", "--as-of", "2026-11-28T08:00")
    assert tomorrow.exit_code == 0
    assert "2 sent" in tomorrow.stdout
    assert len(smtp_server.messages) == 4  # the confirmation and three notices, each once
    assert {f"delivery_date:{o}:1" for o in orders} == {
        k for k, st, _, _ in ledger_rows(config) if st == "sent" and k.startswith("delivery_date:")
    }


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_edit_option_opens_each_notice_on_a_terminal_only(
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    editor: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = shop(erp_backend)
    open_order(s, delivery_date=DEC_5)
    config = write_config(
        email=email_section(smtp_server), delivery_date={"edit_before_send": True, **EXISTING}
    )

    refused = cli("-c", config, "delivery-dates", "--edit", "--as-of", AS_OF)
    assert refused.exit_code == 2
    assert "--edit needs a terminal" in refused.stderr
    assert ledger_rows(config) == []

    monkeypatch.setattr(cli_jobs, "_interactive", lambda: True)
    edited = cli("-c", config, "delivery-dates", "--edit", "--as-of", AS_OF)
    assert edited.exit_code == 0, edited.stderr
    assert "1 sent" in edited.stdout  # reviewed now: sent, not stored as a draft
    [mail] = smtp_server.messages
    assert "Grüezi" in text_of(mail)
    assert "Grüezi" in html_of(mail)
    assert mail.message["Subject"].startswith("Geprüft: ")


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_drafts_usage_errors(erp_backend: Any, write_config: Any, cli: Cli) -> None:
    config = write_config()
    assert cli("-c", config, "drafts", "send").exit_code == 2
    assert cli("-c", config, "drafts", "send", "x:1", "--all").exit_code == 2
    unknown = cli("-c", config, "drafts", "show", "delivery_date:9:1")
    assert unknown.exit_code == 2
    assert "not a draft (no ledger rows)" in unknown.stderr
    assert cli("-c", config, "drafts", "discard", "delivery_date:9:1").exit_code == 2
    empty = cli("-c", config, "drafts", "send", "--all")
    assert empty.exit_code == 0
    assert "0 sent" in empty.stdout


# --- the baseline of the first run (SPEC §4) ---------------------------------------------


def test_an_old_back_order_is_notified_when_its_date_is_set_and_when_it_changes(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    # ordered 60 days before the walk, no delivery date yet; another order is open and dated
    back_order = open_order(s, number="A-BACK", order_date=date(2026, 9, 28))
    open_order(s, number="A-DATED", delivery_date=DEC_12)
    config = write_config(email=email_section(smtp_server))
    run = day_runner(cli, config, smtp_server, "delivery-dates")

    assert run("2026-11-27") == []  # day 1: the baseline (A-DATED's date), nothing sent
    assert run("2026-11-28") == []
    erp_backend.update("orders", back_order, delivery_date=DEC_5)
    [first] = run("2026-11-29")  # day 3
    assert "A-BACK" in first.message["Subject"]
    assert "05.12.2026" in first.message["Subject"]
    assert run("2026-11-30") == []
    assert run("2026-12-01") == []
    assert run("2026-12-02") == []
    erp_backend.update("orders", back_order, delivery_date=DEC_12)
    [second] = run("2026-12-04")  # day 8
    assert "12.12.2026" in second.message["Subject"]
    assert "bisher: 05.12.2026" in text_of(second)
    assert run("2026-12-05") == []
    assert len(smtp_server.messages) == 2


def test_fifty_open_dated_orders_at_the_first_run_become_the_baseline(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    orders = [open_order(s, delivery_date=DEC_5) for _ in range(50)]
    open_order(s, number="A-PAST", delivery_date=date(2026, 11, 20))  # past: not recorded
    config = write_config(email=email_section(smtp_server))
    run = day_runner(cli, config, smtp_server, "delivery-dates")

    planned = cli("-c", config, "--json", "delivery-dates", "--dry-run", "--as-of", AS_OF)
    assert planned.exit_code == 0
    assert "baseline" in planned.stderr
    assert "notify_existing" in planned.stderr
    [report] = planned.json()
    assert report["counts"]["planned"] == 0
    assert report["counts"]["skipped"] == 51  # 50 orders and the marker
    assert ledger_rows(config) == []  # the dry run wrote nothing

    first = cli("-c", config, "delivery-dates", "--as-of", AS_OF)
    assert first.exit_code == 0
    assert "0 sent, 0 failed, 51 skipped" in first.stdout
    assert smtp_server.messages == []
    rows = ledger_rows(config)
    assert len(rows) == 50
    assert {(st, detail) for _, st, detail, _ in rows} == {("skipped", "baseline")}
    assert {i["delivery_date"] for *_, i in rows} == {"2026-12-05"}
    marker = read_ledger(config, "status", "detail", prefix=MARKER_KEY)
    assert marker == [("skipped", "baseline taken: 50 open order(s); later changes are notified")]

    assert run(AS_OF) == []  # nothing changed
    erp_backend.update("orders", orders[17], delivery_date=DEC_12)
    [notice] = run("2026-11-28")
    assert "12.12.2026" in notice.message["Subject"]
    # the customer was never told the baseline's date: no "bisher" line
    assert "bisher" not in text_of(notice)
    assert run("2026-11-29") == []


def test_notify_existing_notifies_every_open_date_at_the_first_run(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for _ in range(50):
        open_order(s, delivery_date=DEC_5)
    config = write_config(email=email_section(smtp_server), delivery_date=EXISTING)

    result = cli("-c", config, "delivery-dates", "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 50
    assert "baseline" not in result.stderr
    assert {st for _, st, _, _ in ledger_rows(config)} == {"sent"}
    assert read_ledger(config, "key", prefix=MARKER_KEY) == []


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_baseline_cut_short_is_completed_and_a_ledger_of_an_earlier_version_needs_none(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    first, second = open_order(s, delivery_date=DEC_5), open_order(s, delivery_date=DEC_5)
    config = write_config(email=email_section(smtp_server))
    run = day_runner(cli, config, smtp_server, "delivery-dates")
    assert run(AS_OF, "--limit", "1") == []  # --limit counts sends: the baseline is whole
    assert len(ledger_rows(config)) == 2
    ledger = config.parent / "ledger.sqlite"

    # a run killed halfway: one baseline row, no marker; the next run goes on with it
    with sqlite3.connect(ledger) as conn:
        conn.execute(
            "DELETE FROM proit_notify_ledger WHERE key_ IN (?, ?)",
            [MARKER_KEY, f"delivery_date:{second}:1"],
        )
    assert run(AS_OF) == []
    assert [k for k, *_ in ledger_rows(config)] == [
        f"delivery_date:{first}:1",
        f"delivery_date:{second}:1",
    ]

    # an earlier version's ledger: notices sent, no baseline rows, no marker
    with sqlite3.connect(ledger) as conn:
        conn.execute("UPDATE proit_notify_ledger SET status = 'sent', detail = '250 ok'")
        conn.execute("DELETE FROM proit_notify_ledger WHERE key_ = ?", [MARKER_KEY])
    third = open_order(s, delivery_date=DEC_12)
    [notice] = run(AS_OF)
    assert "12.12.2026" in str(notice.message["Subject"])
    assert read_ledger(config, "status", prefix=f"delivery_date:{third}:") == [("sent",)]
    assert read_ledger(config, "key", prefix=MARKER_KEY) == []


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_drafts_send_outside_the_email_window_keeps_them_drafts(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, httpserver: HTTPServer
) -> None:
    s = shop(erp_backend)
    open_order(s, delivery_date=DEC_5)
    config = write_config(
        email={**email_section(smtp_server), "send_window": "07:00-20:00"},
        sms=sms_settings(httpserver),  # SMS may go at any hour: the email draft waits alone
        delivery_date={"edit_before_send": True, **EXISTING},
    )
    assert cli("-c", config, "delivery-dates", "--as-of", AS_OF).exit_code == 0

    late = cli("-c", config, "drafts", "send", "--all", "--as-of", "2026-11-27T22:00")

    assert late.exit_code == 0, late.stderr
    assert "1 waiting" in late.stdout
    assert smtp_server.messages == []
    assert [st for _, st, _, _ in ledger_rows(config)] == ["draft"]
    sent = cli("-c", config, "drafts", "send", "--all", "--as-of", "2026-11-28T07:30")
    assert sent.exit_code == 0, sent.stderr
    assert len(smtp_server.messages) == 1
    assert [st for _, st, _, _ in ledger_rows(config)] == ["sent"]
