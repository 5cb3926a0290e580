"""review-requests end to end: ERP (four backends) → CLI → real SMTP server → ledger.

Every test states its trigger, runs the real command line with ``--as-of`` and looks at
what a user sees: the mails the SMTP server received, the exit code, the ledger rows.
Tests of pure day arithmetic run on sqlite only; every SQL path of the job (print, auto-
processing and confirmation candidates, flag, completeness, re-check) runs on all four.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli
from ledger_rows import ledger_rows
from pytest_httpserver import HTTPServer
from scenario import Shop, shop
from smtp_server import SmtpServer, email_section
from werkzeug import Request, Response

PORTAL = "https://bewertung.example.ch/a/{order_number}"


def config_for(write_config: Any, server: SmtpServer, **review: Any) -> Path:
    settings = {"delay_days": 7, "max_age_days": 14, "portal_url": PORTAL, **review}
    path: Path = write_config(email=email_section(server), review=settings)
    return path


def ledger(config: Path, prefix: str = "review:") -> list[dict[str, Any]]:
    """The review rows as dicts with the ledger's column names (``key_``)."""
    return [
        {**row._asdict(), "key_": row.key, "info": json.dumps(row.info)}
        for row in ledger_rows(config, prefix=prefix)
    ]


def review_keys(config: Path) -> list[str]:
    return [r["key_"] for r in ledger(config)]


def mails_to(server: SmtpServer) -> list[str]:
    return sorted(m.rcpt_tos[0] for m in server.messages)


def set_delivered(s: Shop, order_id: int, complete: bool) -> None:
    """Mark every line of an order delivered (or not): the ERP does it when a note is made."""
    b = s.backend
    q = b.dialect.quote
    b.admin.execute(
        f"UPDATE {q('Auftragspositionen')} SET {q('Geliefert')} = "
        + (q("Menge") if complete else "0")
        + f" WHERE {q('AuftragId')} = ?",
        [order_id],
    )
    b.admin.commit()


# --- the trigger by confirmation, the message, once per order --------------------------------


def test_confirmation_trigger_sends_one_request_per_order_after_the_delay(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    de = s.customer(name="Jürg Müller", email="juerg@example.ch")
    en = s.customer(name="Anna Käser", email="anna@example.de", language="en", country="DE")
    quiet = s.customer(email="quiet@example.ch", info_type="none")
    o_de = s.order(de, lines=2, number="A-100", review_mail=1)
    o_en = s.order(en, number="A-200", review_mail=1)
    o_none = s.order(quiet, number="A-300", review_mail=1)
    for order in (o_de, o_en, o_none):
        s.delivery_note(order, datetime(2026, 11, 20, 9, 0))
    config = config_for(write_config, smtp_server)

    shipped = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-20T10:00")
    assert shipped.exit_code == 0, shipped.stderr
    smtp_server.messages.clear()

    early = cli("-c", config, "review-requests", "--as-of", "2026-11-26T23:59")
    assert early.exit_code == 0, early.stderr
    assert smtp_server.messages == []
    assert review_keys(config) == []

    due = cli("-c", config, "review-requests", "--as-of", "2026-11-27")
    assert due.exit_code == 0, due.stderr
    assert "review-requests: 2 sent, 0 failed, 0 skipped" in due.stdout
    assert mails_to(smtp_server) == ["anna@example.de", "juerg@example.ch"]
    by_rcpt = {m.rcpt_tos[0]: m.message for m in smtp_server.messages}
    german, english = by_rcpt["juerg@example.ch"], by_rcpt["anna@example.de"]
    assert "A-100" in german["Subject"]
    assert "Wie zufrieden" in german["Subject"]
    text = german.get_body(("plain",)).get_content()
    assert "https://bewertung.example.ch/a/A-100" in text  # {order_number} filled in
    assert "Artikel 2 – Größe M" in text  # the order's lines
    assert "20.11.2026" in text  # the day the clock started
    assert 'href="https://bewertung.example.ch/a/A-100"' in german.get_body(("html",)).get_content()
    assert "How satisfied" in english["Subject"]
    assert "A-200" in english["Subject"]
    assert "https://bewertung.example.ch/a/A-200" in english.get_body(("plain",)).get_content()
    rows = {r["key_"]: r for r in ledger(config)}
    assert {k: (r["channel"], r["status"]) for k, r in rows.items()} == {
        f"review:{o_de}": ("email", "sent"),
        f"review:{o_en}": ("email", "sent"),
    }  # info type none: no confirmation was sent to it, so nothing started its clock
    assert f"review:{o_none}" not in rows
    assert json.loads(rows[f"review:{o_de}"]["info"])["trigger_kind"] == "confirmation"
    assert rows[f"review:{o_de}"]["sent_at"] == "2026-11-26 23:00:00"  # 00:00 Zurich in UTC

    again = cli("-c", config, "review-requests", "--as-of", "2026-11-28")
    assert again.exit_code == 0
    assert "review-requests: 0 sent, 0 failed, 0 skipped" in again.stdout
    assert len(smtp_server.messages) == 2


# --- the order's flag and review.default_status ----------------------------------------------


@pytest.mark.parametrize("default_status", [False, True])
def test_flag_one_zero_null_with_default_status(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, default_status: bool
) -> None:
    s = shop(erp_backend)
    orders = {}
    for flag in (1, 0, None):
        customer = s.customer(email=f"flag{flag}@example.ch")
        orders[flag] = s.order(customer, review_mail=flag)
        s.delivery_note(orders[flag], datetime(2026, 11, 20, 9, 0))
    quiet = s.order(s.customer(email="quiet@example.ch", info_type="none"), review_mail=1)
    s.delivery_note(quiet, datetime(2026, 11, 20, 9, 0))
    config = config_for(
        write_config, smtp_server, on_delivery_note_print=True, default_status=default_status
    )

    result = cli("-c", config, "review-requests", "--as-of", "2026-11-27")

    assert result.exit_code == 0, result.stderr
    expected = ["flag1@example.ch"] + (["flagNone@example.ch"] if default_status else [])
    assert mails_to(smtp_server) == sorted(expected)
    rows = {(r["key_"], r["channel"], r["status"]) for r in ledger(config)}
    sent = [orders[1]] + ([orders[None]] if default_status else [])
    assert rows == {(f"review:{o}", "email", "sent") for o in sent} | {
        (f"review:{quiet}", "none", "skipped")  # info type none: recorded, never sent
    }


# --- only complete deliveries: the clock starts at the last delivery note ---------------------


@pytest.mark.parametrize("only_complete", [False, True])
def test_partial_then_complete_delivery(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, only_complete: bool
) -> None:
    s = shop(erp_backend)
    order = s.order(s.customer(email="parts@example.ch"), lines=2, delivered=False, review_mail=1)
    s.delivery_note(order, datetime(2026, 11, 10, 9, 0))  # first part
    config = config_for(
        write_config,
        smtp_server,
        on_delivery_note_print=True,
        only_complete_delivery=only_complete,
    )

    first = cli("-c", config, "review-requests", "--as-of", "2026-11-17")
    assert first.exit_code == 0, first.stderr
    if not only_complete:
        # the first delivery note starts the clock, complete or not
        assert mails_to(smtp_server) == ["parts@example.ch"]
        return
    assert smtp_server.messages == []  # not completely delivered yet

    set_delivered(s, order, complete=True)
    s.delivery_note(order, datetime(2026, 11, 18, 16, 0))  # the rest
    assert cli("-c", config, "review-requests", "--as-of", "2026-11-24T23:59").exit_code == 0
    assert smtp_server.messages == []  # 7 days after the LAST note: from 25 Nov
    done = cli("-c", config, "review-requests", "--as-of", "2026-11-25")
    assert done.exit_code == 0, done.stderr
    assert mails_to(smtp_server) == ["parts@example.ch"]
    text = smtp_server.messages[0].message.get_body(("plain",)).get_content()
    assert "18.11.2026" in text


def test_complete_delivery_waits_for_the_confirmation_of_the_last_note(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    # only confirmations are triggers here (no print trigger): the first part was confirmed
    # on 1 Nov, the rest printed on 10 Nov is not confirmed yet. The clock is the last
    # note's, so the first part's confirmation must not make the order due on 8 Nov.
    s = shop(erp_backend)
    order = s.order(s.customer(email="last@example.ch"), lines=2, delivered=False, review_mail=1)
    s.delivery_note(order, datetime(2026, 11, 1, 9, 0))
    config = config_for(write_config, smtp_server, only_complete_delivery=True)
    assert cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-01T12:00").exit_code == 0
    set_delivered(s, order, complete=True)
    s.delivery_note(order, datetime(2026, 11, 10, 9, 0))
    smtp_server.messages.clear()

    waiting = cli("-c", config, "review-requests", "--as-of", "2026-11-12T08:00")
    assert waiting.exit_code == 0, waiting.stderr
    assert smtp_server.messages == []
    assert review_keys(config) == []

    # the last note is confirmed on 12 Nov: due 7 days later, not before
    assert cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-12T09:00").exit_code == 0
    smtp_server.messages.clear()
    assert cli("-c", config, "review-requests", "--as-of", "2026-11-18T23:59").exit_code == 0
    assert smtp_server.messages == []
    done = cli("-c", config, "review-requests", "--as-of", "2026-11-19")
    assert done.exit_code == 0, done.stderr
    assert mails_to(smtp_server) == ["last@example.ch"]
    [entry] = ledger(config)
    assert json.loads(entry["info"])["trigger"] == "2026-11-12 09:00:00"


# --- earliest trigger, and an old first confirmation ------------------------------------------


def test_earliest_enabled_trigger_wins(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    auto_first = s.order(
        s.customer(email="auto@example.ch"),
        review_mail=1,
        auto_processed_at=datetime(2026, 11, 1, 8, 0),
    )
    s.delivery_note(auto_first, datetime(2026, 11, 3, 9, 0))
    print_first = s.order(
        s.customer(email="print@example.ch"),
        review_mail=1,
        auto_processed_at=datetime(2026, 11, 4, 8, 0),
    )
    s.delivery_note(print_first, datetime(2026, 11, 2, 9, 0))
    s.delivery_note(print_first, datetime(2026, 11, 6, 9, 0))
    auto_only = s.order(
        s.customer(email="noprint@example.ch"),
        review_mail=1,
        auto_processed_at=datetime(2026, 11, 2, 23, 30),
    )
    config = config_for(
        write_config, smtp_server, on_delivery_note_print=True, on_auto_processing=True
    )

    day8 = cli("-c", config, "review-requests", "--as-of", "2026-11-08")
    assert day8.exit_code == 0, day8.stderr
    assert mails_to(smtp_server) == ["auto@example.ch"]  # auto-processed 1 Nov, printed 3 Nov
    day9 = cli("-c", config, "review-requests", "--as-of", "2026-11-09")
    assert day9.exit_code == 0, day9.stderr
    # printed 2 Nov (before its auto-processing), and auto-processed 2 Nov without a note
    assert mails_to(smtp_server) == ["auto@example.ch", "noprint@example.ch", "print@example.ch"]
    kinds = {r["key_"]: json.loads(r["info"])["trigger_kind"] for r in ledger(config)}
    assert kinds == {
        f"review:{auto_first}": "auto_processing",
        f"review:{print_first}": "print",
        f"review:{auto_only}": "auto_processing",
    }
    # later events of the same orders never start a second request
    assert cli("-c", config, "review-requests", "--as-of", "2026-11-13").exit_code == 0
    assert len(smtp_server.messages) == 3


@pytest.mark.parametrize("on_auto", [False, True])
def test_several_events_of_one_order_inside_the_window_plan_one_request(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, on_auto: bool
) -> None:
    s = shop(erp_backend)
    order = s.order(
        s.customer(email="many@example.ch"),
        lines=2,
        review_mail=1,
        auto_processed_at=datetime(2026, 11, 3, 8, 0),
    )
    s.delivery_note(order, datetime(2026, 11, 3, 9, 0))
    s.delivery_note(order, datetime(2026, 11, 4, 9, 0))
    s.delivery_note(order, datetime(2026, 11, 6, 9, 0))
    config = config_for(
        write_config, smtp_server, on_delivery_note_print=True, on_auto_processing=on_auto
    )

    # a catch-up run late in the window: every event of the order is inside it. A dry run
    # claims nothing, so an order selected twice would be listed twice.
    args = ("-c", config, "--json", "review-requests", "--as-of", "2026-11-14")
    [preview] = cli(*args, "--dry-run").json()
    assert [i["key"] for i in preview["items"]] == [f"review:{order}"]
    result = cli(*args)

    assert result.exit_code == 0, result.stderr
    assert mails_to(smtp_server) == ["many@example.ch"]
    [entry] = ledger(config)
    trigger = json.loads(entry["info"])
    assert (trigger["trigger"], trigger["trigger_kind"]) == (
        ("2026-11-03 08:00:00", "auto_processing") if on_auto else ("2026-11-03 09:00:00", "print")
    )


@pytest.mark.parametrize("only_complete", [False, True])
def test_a_second_confirmation_inside_the_window_does_not_revive_an_aged_out_order(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, only_complete: bool
) -> None:
    s = shop(erp_backend)
    order = s.order(s.customer(email="twice@example.ch"), lines=2, review_mail=1)
    s.delivery_note(order, datetime(2026, 10, 1, 9, 0))
    s.delivery_note(order, datetime(2026, 11, 5, 9, 0))
    config = config_for(write_config, smtp_server, only_complete_delivery=only_complete)
    # the confirmations went out on 1 Oct and 5 Nov (shipping's own window: 14 days)
    assert cli("-c", config, "shipping-confirmations", "--as-of", "2026-10-01T12:00").exit_code == 0
    assert cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-05T12:00").exit_code == 0
    assert len(ledger(config, "shipping:")) == 2
    smtp_server.messages.clear()

    result = cli("-c", config, "review-requests", "--as-of", "2026-11-12")

    assert result.exit_code == 0, result.stderr
    if only_complete:
        # the last delivery note starts the clock: 5 Nov + 7 days
        assert mails_to(smtp_server) == ["twice@example.ch"]
        assert review_keys(config) == [f"review:{order}"]
    else:
        # its first confirmation (1 Oct) counts, and that one aged out long ago
        assert smtp_server.messages == []
        assert review_keys(config) == []


# --- day arithmetic in the configured time zone (sqlite: no SQL differs) ------------------------


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", ["confirmation", "print", "auto"])
def test_due_from_midnight_local_time_of_day_d_plus_n(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, kind: str
) -> None:
    """Auckland is UTC+13 in November: local and UTC dates differ at both event times used."""
    s = shop(erp_backend)
    late_evening = datetime(2026, 11, 19, 23, 30)  # local; 10:30 UTC on the 19th
    just_after_midnight = datetime(2026, 11, 20, 0, 30)  # local; 11:30 UTC on the 19th
    order = s.order(
        s.customer(email="kiwi@example.nz", country="NZ"),
        review_mail=1,
        auto_processed_at=late_evening if kind == "auto" else None,
    )
    s.delivery_note(order, late_evening if kind == "print" else datetime(2026, 11, 19, 8, 0))
    config = config_for(
        write_config,
        smtp_server,
        on_delivery_note_print=kind == "print",
        on_auto_processing=kind == "auto",
    )
    config.write_text(
        config.read_text().replace('"Europe/Zurich"', '"Pacific/Auckland"'), encoding="utf-8"
    )
    event_day = date(2026, 11, 19)
    if kind == "confirmation":
        at = just_after_midnight.isoformat(timespec="minutes")
        assert cli("-c", config, "shipping-confirmations", "--as-of", at).exit_code == 0
        smtp_server.messages.clear()
        event_day = date(2026, 11, 20)
    due_day = event_day + timedelta(days=7)

    before = (datetime.combine(due_day, datetime.min.time()) - timedelta(minutes=1)).isoformat()
    assert cli("-c", config, "review-requests", "--as-of", before).exit_code == 0
    assert smtp_server.messages == []
    at_midnight = cli("-c", config, "review-requests", "--as-of", due_day.isoformat())
    assert at_midnight.exit_code == 0, at_midnight.stderr
    assert mails_to(smtp_server) == ["kiwi@example.nz"]
    assert review_keys(config) == [f"review:{order}"]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_catch_up_window_ages_requests_out(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    last_day = s.order(s.customer(email="lastday@example.ch"), review_mail=1)
    s.delivery_note(last_day, datetime(2026, 10, 1, 23, 59))  # due 8 Oct
    aged = s.order(s.customer(email="aged@example.ch"), review_mail=1)
    s.delivery_note(aged, datetime(2026, 9, 30, 23, 59))  # due 7 Oct
    config = config_for(write_config, smtp_server, on_delivery_note_print=True)

    # a first run on 22 Oct: due days from 8 Oct (14 days back) are still sent
    result = cli("-c", config, "review-requests", "--as-of", "2026-10-22T18:00")

    assert result.exit_code == 0, result.stderr
    assert mails_to(smtp_server) == ["lastday@example.ch"]
    assert review_keys(config) == [f"review:{last_day}"]


# --- at most one per order, ever: also when the customer's channel changes --------------------


class Gateway:
    """A local ASPSMS JSON API (sms.url points at it) that records every SMS."""

    def __init__(self, server: HTTPServer) -> None:
        self.sent: list[str] = []
        server.expect_request("/SendSimpleTextSMS", method="POST").respond_with_handler(self._send)

    def _send(self, request: Request) -> Response:
        body = json.loads(request.get_data(as_text=True))
        self.sent.extend(body["Recipients"])
        ok = json.dumps({"StatusCode": "1", "StatusInfo": "OK"})
        return Response(ok, content_type="application/json")


@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql"], indirect=True)
def test_an_order_requested_by_email_is_not_requested_again_by_sms(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, httpserver: HTTPServer
) -> None:
    gateway = Gateway(httpserver)
    s = shop(erp_backend)
    customer = s.customer(email="switch@example.ch", phone="079 123 45 67")
    order = s.order(customer, review_mail=1)
    s.delivery_note(order, datetime(2026, 11, 20, 9, 0))
    config = write_config(
        email=email_section(smtp_server),
        review={"delay_days": 7, "portal_url": PORTAL, "on_delivery_note_print": True},
        sms={
            "provider": "aspsms",
            "username": "u",
            "password": "p",
            "url": httpserver.url_for("/"),
            "fallback_to_email": False,
        },
    )
    assert cli("-c", config, "review-requests", "--as-of", "2026-11-27").exit_code == 0
    assert mails_to(smtp_server) == ["switch@example.ch"]

    # the customer now wants SMS; the order is still inside the catch-up window
    erp_backend.update("customers", customer, info_type="sms")
    later = cli("-c", config, "review-requests", "--as-of", "2026-11-29")

    assert later.exit_code == 0, later.stderr
    assert gateway.sent == []
    assert len(smtp_server.messages) == 1
    assert [(r["channel"], r["status"]) for r in ledger(config)] == [("email", "sent")]


# --- eligibility is read again right before sending --------------------------------------------


@pytest.mark.parametrize("erp_backend", ["sqlite", "mariadb"], indirect=True)
@pytest.mark.parametrize("change", ["flag", "delivery"])
def test_eligibility_is_read_again_right_before_sending(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, change: str
) -> None:
    from proit_notify.assembly import session
    from proit_notify.clock import Clock
    from proit_notify.jobs import Notification, Sources
    from proit_notify.jobs.registry import make_job
    from proit_notify.runner import RunOptions
    from proit_notify.settings import Settings, load_settings

    s = shop(erp_backend)
    order = s.order(s.customer(email="changed@example.ch"), review_mail=1)
    s.delivery_note(order, datetime(2026, 11, 20, 9, 0))
    config = config_for(
        write_config, smtp_server, on_delivery_note_print=True, only_complete_delivery=True
    )
    settings = load_settings(config)
    job = make_job("review-requests")

    class ChangedMeanwhile:
        """The review job; the ERP changes between the selection and the send."""

        name = job.name

        def plan(self, src: Sources, st: Settings, clock: Clock) -> Iterator[Notification]:
            for n in job.plan(src, st, clock):
                if change == "flag":
                    erp_backend.update("orders", order, review_mail=0)
                else:
                    set_delivered(s, order, complete=False)  # goods came back
                yield n

        def recheck(
            self, src: Sources, st: Settings, clock: Clock, n: Notification
        ) -> str | Notification | None:
            return job.recheck(src, st, clock, n)

    clock = Clock.parse("2026-11-27", settings.service.tz)
    with session(settings, clock) as sess:
        report = sess.runner.run(ChangedMeanwhile(), RunOptions())

    assert report.items == []
    assert smtp_server.messages == []
    assert review_keys(config) == []


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_missing_portal_url_is_a_configuration_error_and_nothing_is_sent(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(), review_mail=1), datetime(2026, 11, 20, 9, 0))
    config = config_for(write_config, smtp_server, on_delivery_note_print=True, portal_url="")

    result = cli("-c", config, "review-requests", "--as-of", "2026-11-27")

    assert result.exit_code == 3
    assert "review.portal_url is not set" in result.stderr
    assert smtp_server.messages == []
    assert review_keys(config) == []
    # with nothing due, there is nothing to complain about (shops without review requests)
    quiet = cli("-c", config, "review-requests", "--as-of", "2026-12-30")
    assert quiet.exit_code == 0, quiet.stderr


# --- a day-by-day walk over the demo ERP --------------------------------------------------------


def test_day_by_day_walk_over_the_demo_sends_each_order_one_request_on_its_due_day(
    tmp_path: Path, cli: Cli
) -> None:
    """``run-all`` every day at 00:00 for 20 days, like cron: the ledger tells the story."""
    from zoneinfo import ZoneInfo

    from proit_notify.clock import from_utc_text
    from proit_notify.demo import create_demo

    first_day = date(2026, 11, 27)
    demo = create_demo(tmp_path / "demo", today=first_day)
    # the confirmation is the trigger this walk follows (the demo also counts automatic
    # processing, which starts the clock at order time)
    text = demo.config_path.read_text(encoding="utf-8")
    demo.config_path.write_text(
        text.replace("on_auto_processing = true", "on_auto_processing = false"), encoding="utf-8"
    )
    days = [first_day + timedelta(days=n) for n in range(20)]
    for day in days:
        result = cli("-c", demo.config_path, "run-all", "--as-of", day.isoformat())
        assert result.exit_code in {0, 1}, result.stderr  # 1: the demo's invalid addresses

    zurich = ZoneInfo("Europe/Zurich")
    with sqlite3.connect(demo.erp_path) as erp:
        flagged = {oid for (oid,) in erp.execute("SELECT id FROM orders WHERE review_mail = 1")}
    with sqlite3.connect(demo.directory / "ledger.sqlite") as conn:
        ledger_rows = conn.execute(
            "SELECT key_, channel, status, job, created_at, sent_at, info FROM proit_notify_ledger"
        ).fetchall()
    first_confirmation: dict[int, date] = {}  # order -> local day its first confirmation went
    requests: dict[int, set[date]] = {}  # order -> local days a review row was written
    for key, _channel, status, job, created, sent, info in ledger_rows:
        if job == "shipping" and status == "sent":
            order = json.loads(info)["order_id"]
            day = from_utc_text(sent).astimezone(zurich).date()
            first_confirmation[order] = min(day, first_confirmation.get(order, day))
        elif job == "review":
            order = int(key.removeprefix("review:"))
            requests.setdefault(order, set()).add(from_utc_text(created).astimezone(zurich).date())

    expected = {
        order: day + timedelta(days=7)
        for order, day in first_confirmation.items()
        if order in flagged and day + timedelta(days=7) <= days[-1]
    }
    assert len(expected) > 100  # the demo has plenty of due orders: the walk is not empty
    assert set(requests) == set(expected)
    assert {order: days_ for order, days_ in requests.items() if len(days_) != 1} == {}
    assert {order: next(iter(d)) for order, d in requests.items()} == expected
