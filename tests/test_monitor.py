"""Alerts, run records and ``status`` end to end: ERP → CLI → real SMTP server → ledger."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, cli, start_cli
from erp_backends import ErpBackend
from scenario import Shop, shop
from smtp_server import Received, SmtpServer, email_section, free_port, smtp_server

__all__ = ["cli", "smtp_server"]  # fixtures

ALERT_TO = "it@shop.example"
AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 16, 0)


def alerts(server: SmtpServer) -> list[Received]:
    return [m for m in server.messages if m.rcpt_tos == (ALERT_TO,)]


def text_of(mail: Received) -> str:
    return str(mail.message.get_body(("plain",)).get_content())


def printed_note(s: Shop, printed: datetime = PRINTED, **customer: Any) -> int:
    """A printed delivery note of a new customer's order: one shipping confirmation."""
    order = s.order(s.customer(**customer))
    return s.delivery_note(order, printed)


def config_with_alerts(write_config: Any, server: SmtpServer, **more: Any) -> Path:
    path: Path = write_config(
        email=email_section(server),
        alerts={"to": [ALERT_TO]},
        retry={"first_delay_minutes": 0},  # a deferred row is retried by the very next run
        **more,
    )
    return path


def test_a_run_with_a_550_and_a_451_sends_one_alert_and_not_again_within_the_hour(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    refused = printed_note(s, email="weg@example.ch")
    later = printed_note(s, email="spaeter@example.ch")
    printed_note(s, email="ok@example.ch")  # a customer whose confirmation goes out
    smtp_server.handler.rcpt_answers["weg@example.ch"] = "550 5.1.1 no such user"
    smtp_server.handler.data_answers["spaeter@example.ch"] = "451 4.3.0 try again later"
    config = config_with_alerts(write_config, smtp_server)

    first = cli("-c", config, "run-all", "--as-of", AS_OF)
    assert first.exit_code == 1
    [alert] = alerts(smtp_server)
    assert ALERT_TO in first.stderr
    assert "alert:" in first.stderr
    assert "1 failed, 1 deferred" in str(alert.message["Subject"])
    body = text_of(alert)
    assert f"failed   shipping:{refused}" in body
    assert "550 5.1.1 no such user" in body
    assert f"deferred shipping:{later}" in body
    assert "451 4.3.0 try again later" in body
    assert "shipping-confirmations: 1 sent, 1 failed, 0 skipped, 1 deferred, 0 unknown" in body
    assert "proit-notify ledger resolve" not in body  # nothing is unknown
    assert "proit-notify history --status failed" in body
    assert alert.message.get_body(("html",)) is not None

    # 20 minutes later: the 451 again (the 550 is not retried): the same problem, no mail
    second = cli("-c", config, "run-all", "--as-of", "2026-11-27T08:20")
    assert second.exit_code == 1
    assert "not mailed again" in second.stderr
    assert len(alerts(smtp_server)) == 1
    # more than an hour after the alert: the problem is mailed again
    third = cli("-c", config, "run-all", "--as-of", "2026-11-27T09:21")
    assert third.exit_code == 1
    assert len(alerts(smtp_server)) == 2
    # the relay accepts it now: nothing wrong, no alert
    del smtp_server.handler.data_answers["spaeter@example.ch"]
    fourth = cli("-c", config, "run-all", "--as-of", "2026-11-27T09:40")
    assert fourth.exit_code == 0, fourth.stderr
    assert "alert" not in fourth.stderr
    assert len(alerts(smtp_server)) == 2
    assert {m.rcpt_tos for m in smtp_server.messages} == {
        (ALERT_TO,),
        ("spaeter@example.ch",),
        ("ok@example.ch",),
    }


def test_a_run_with_nothing_wrong_sends_no_alert_and_alerts_on_never_sends_none(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    printed_note(s)
    config = config_with_alerts(write_config, smtp_server)
    result = cli("-c", config, "run-all", "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 1
    assert alerts(smtp_server) == []

    printed_note(s, email="weg@example.ch")
    smtp_server.handler.rcpt_answers["weg@example.ch"] = "550 5.1.1 no such user"
    never = write_config(email=email_section(smtp_server), alerts={"to": [ALERT_TO], "on": "never"})
    assert cli("-c", never, "run-all", "--as-of", AS_OF).exit_code == 1
    assert alerts(smtp_server) == []


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_an_unreachable_relay_is_alerted_through_another_account_or_logged_and_in_status(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    printed_note(s)
    dead = {
        "host": "127.0.0.1",
        "port": free_port(),
        "security": "none",
        "from": "shop@example.ch",
        "timeout": 2,
    }
    email = email_section(smtp_server)
    email["accounts"]["dead"] = dead
    email["default_account"] = "dead"
    # the alert goes through the account that works
    config = write_config(email=email, alerts={"to": [ALERT_TO], "account": "default"})
    result = cli("-c", config, "run-all", "--as-of", AS_OF)
    assert result.exit_code == 4
    [alert] = alerts(smtp_server)
    assert "exit 4" in str(alert.message["Subject"])
    assert f"127.0.0.1:{dead['port']}" in text_of(alert)
    assert "proit-notify check" in text_of(alert)

    # the alert's own relay is the one that failed: the log and status say so
    config = write_config(email=email, alerts={"to": [ALERT_TO]})
    result = cli("-c", config, "run-all", "--as-of", "2026-11-27T10:30")
    assert result.exit_code == 4
    assert f"alert: {ALERT_TO}: not sent" in result.stderr
    assert len(alerts(smtp_server)) == 1
    status = cli("-c", config, "status", "--as-of", AS_OF)
    assert status.exit_code == 1
    assert f"last alert: {ALERT_TO}: not sent" in status.stdout
    assert "exit code 4" in status.stdout
    # what the blocked account held back: the one printed note, not claimed, not lost
    assert "; 1 notification(s) held back go out on the first run after the fix" in status.stdout
    held = cli("-c", config, "--json", "status", "--as-of", AS_OF).json()[0]
    assert [j["held"] for j in held["jobs"]] == [1, 0, 0, 0]


def test_every_command_run_is_recorded_and_status_tells_what_waits_for_a_person(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    config = write_config(email=email_section(smtp_server))

    def status(as_of: str) -> tuple[int, dict[str, Any]]:
        result = cli("-c", config, "--json", "status", "--as-of", as_of)
        [found] = result.json()
        return result.exit_code, found

    code, found = status(AS_OF)
    assert code == 1  # a new installation: no run yet
    assert found["waiting"] == ["no job run is recorded yet: is the scheduled task set up?"]
    assert not (config.parent / "ledger.sqlite").exists()  # status created nothing

    assert cli("-c", config, "run-all", "--as-of", AS_OF).exit_code == 0
    code, found = status("2026-11-27T09:00")
    assert (code, found["waiting"]) == (0, [])
    jobs = {j["job"]: j for j in found["jobs"]}
    assert list(jobs) == [
        "shipping-confirmations",
        "review-requests",
        "prepayment-reminders",
        "delivery-dates",
    ]
    assert jobs["shipping-confirmations"]["last_run"]["exit_code"] == 0
    assert jobs["shipping-confirmations"]["last_run"]["started_at"] == "2026-11-27 07:00:00"
    # a dry run is not a run: nothing recorded
    assert cli("-c", config, "run-all", "--dry-run", "--as-of", "2026-11-28T12:00").exit_code == 0

    # not run for more than 26 h
    code, found = status("2026-11-28T10:30")
    assert code == 1
    # the four jobs stopped together: one line names them all (not four of the same)
    assert len(found["waiting"]) == 1, found["waiting"]
    [stale] = found["waiting"]
    assert stale.startswith(
        "shipping-confirmations, review-requests, prepayment-reminders, delivery-dates: "
        "has not run since 2026-11-27 08:00 CET (more than 26 h)"
    )

    # a failure in the last 24 h, then 25 h later it no longer counts
    printed_note(s, email="weg@example.ch")
    smtp_server.handler.rcpt_answers["weg@example.ch"] = "550 5.1.1 no such user"
    assert cli("-c", config, "run-all", "--as-of", "2026-11-28T11:00").exit_code == 1
    code, found = status("2026-11-28T12:00")
    assert code == 1
    assert found["waiting"] == ["1 failed in the last 24 h: proit-notify history --status failed"]
    assert found["jobs"][0]["last_run"]["counts"]["failed"] == 1
    assert cli("-c", config, "run-all", "--as-of", "2026-11-29T11:30").exit_code == 0
    assert status("2026-11-29T12:00")[0] == 0
    fine = cli("-c", config, "status", "--as-of", "2026-11-29T12:00")
    assert (fine.exit_code, fine.stdout.splitlines()[0]) == (0, "OK: nothing waits for a person")

    # an unknown row (a crashed run's 'sending' row) waits for a person
    ledger = config.parent / "ledger.sqlite"
    with sqlite3.connect(ledger) as conn:
        conn.execute(
            "UPDATE proit_notify_ledger SET status = 'sending' WHERE key_ LIKE 'shipping:%' "
            "AND status = 'failed'"
        )
    code, found = status("2026-11-29T12:00")
    assert code == 1
    assert found["unknown"] == 1
    assert "ledger resolve" in found["waiting"][0]
    # the plain output of a terminal-less call (the Task Scheduler, a monitoring agent)
    plain = cli("-c", config, "status", "--as-of", "2026-11-29T12:00")
    assert plain.exit_code == 1
    # the verdict is the first line: what a monitoring agent shows
    assert plain.stdout.splitlines()[0].startswith("WAITING: 1 thing(s) wait for a person: 1 unk")
    assert "WAITING: 1 unknown notification(s)" in plain.stdout
    assert "shipping-confirmations\t2026-11-29 11:30" in plain.stdout


def test_a_command_that_fails_before_any_job_is_recorded_and_alerted(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    templates = tmp_path / "templates" / "de"
    templates.mkdir(parents=True)
    (templates / "shipping.subject.txt").write_text("{{ no_such_placeholder }}", encoding="utf-8")
    config = config_with_alerts(
        write_config, smtp_server, templates={"dir": str(tmp_path / "templates")}
    )
    result = cli("-c", config, "run-all", "--as-of", AS_OF)
    assert result.exit_code == 3
    [alert] = alerts(smtp_server)
    assert "exit 3" in str(alert.message["Subject"])
    assert "proit-notify check" in text_of(alert)
    status = cli("-c", config, "--json", "status", "--as-of", AS_OF)
    assert status.exit_code == 1
    [found] = status.json()
    assert "exit code 3" in found["waiting"][0]


def test_test_send_alert_and_check_show_the_alert_settings(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    config = config_with_alerts(write_config, smtp_server)
    sent = cli("-c", config, "test-send", "--alert")
    assert sent.exit_code == 0, sent.stderr
    [alert] = alerts(smtp_server)
    assert str(alert.message["Subject"]).startswith("[test] proit-notify on ")
    assert "THIS IS A TEST ALERT" in text_of(alert)
    checked = cli("-c", config, "check", "--no-network")
    assert f"alerts: to {ALERT_TO} via account default: ok" in checked.stdout

    bare = write_config(email=email_section(smtp_server))
    assert "alerts: not configured" in cli("-c", bare, "check", "--no-network").stdout
    assert cli("-c", bare, "test-send", "--alert").exit_code == 3
    bad = write_config(
        email=email_section(smtp_server), alerts={"to": ["not an address"], "account": "nope"}
    )
    refused = cli("-c", bad, "check", "--no-network")
    assert refused.exit_code == 3
    assert "alerts.to" in refused.stderr
    assert "alerts.account: 'nope' is not a defined account" in refused.stderr
    assert "2 problem(s)" in refused.stderr  # all at once


def test_status_counts_drafts_waiting_for_review_with_their_age(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.order(s.customer(), delivered=False, order_date=datetime(2026, 11, 20), delivery_date=None)
    order = s.order(s.customer(), delivered=False, order_date=datetime(2026, 11, 20))
    config = write_config(
        email=email_section(smtp_server),
        delivery_date={"edit_before_send": True, "notify_existing": True},
    )
    erp_backend.update("orders", order, delivery_date=datetime(2026, 12, 5).date())
    assert cli("-c", config, "run-all", "--as-of", AS_OF).exit_code == 0
    result = cli("-c", config, "--json", "status", "--as-of", "2026-11-27T09:00")
    assert result.exit_code == 1
    [found] = result.json()
    assert found["drafts"] == 1
    assert found["oldest_draft"] == "2026-11-27 07:00:00"
    assert found["waiting"] == ["1 draft(s) waiting for review: proit-notify drafts list"]


def test_a_pause_longer_than_the_catch_up_window_is_said_and_alerted(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    config = config_with_alerts(write_config, smtp_server)
    assert cli("-c", config, "run-all", "--as-of", "2026-11-01T08:00").exit_code == 0
    # printed during the pause, 22 days before the next run: outside the 14-day window
    printed_note(s, datetime(2026, 11, 5, 10, 0), email="vergessen@example.ch")

    result = cli("-c", config, "run-all", "--as-of", "2026-11-27T08:00")
    assert result.exit_code == 0, result.stderr
    said = result.stderr.replace("\n", " ")
    assert "shipping-confirmations did not run from 01.11.2026 until today" in said
    assert "from 02.11.2026 to 12.11.2026 has aged out" in said
    assert "shipping.max_age_days = 26" in said
    assert "review-requests did not run from 01.11.2026" in said
    assert "prepayment-reminders did not run" not in said  # its reminders have rows
    [alert] = alerts(smtp_server)
    assert "aged out during a pause" in str(alert.message["Subject"])
    assert "shipping.max_age_days (14 days)" in text_of(alert)
    assert [m.rcpt_tos for m in smtp_server.messages] == [(ALERT_TO,)]

    again = cli("-c", config, "run-all", "--as-of", "2026-11-28T08:00")
    assert again.exit_code == 0
    assert "did not run" not in again.stderr
    assert len(alerts(smtp_server)) == 1


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_unknown_rows_that_history_recovered_are_named_by_the_next_runs_alert(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    printed_note(s)
    config = config_with_alerts(write_config, smtp_server)
    assert cli("-c", config, "run-all", "--as-of", AS_OF).exit_code == 0
    # a run killed while sending (the Task Scheduler's "End"): its row stays 'sending'
    ledger = config.parent / "ledger.sqlite"
    with sqlite3.connect(ledger) as conn:
        conn.execute(
            "UPDATE proit_notify_ledger SET status = 'sending' WHERE key_ LIKE 'shipping:%'"
        )
    # history shows it as unknown (it recovers it under the lock) before the next job run
    history = cli("-c", config, "history", "--status", "unknown")
    assert "1 row(s)" in history.stdout
    [key] = [line.split("\t")[1] for line in history.stdout.splitlines()[1:] if "\t" in line]

    later = cli("-c", config, "run-all", "--as-of", "2026-11-27T09:00")
    assert "alert:" in later.stderr
    [alert] = alerts(smtp_server)  # the first run had nothing to say
    body = text_of(alert)
    assert "Unknown notifications nobody has resolved yet (1)" in body
    assert f"unknown  {key}" in body
    assert "proit-notify ledger resolve" in body
    assert "1 unknown" in str(alert.message["Subject"])
    # resolved: the next run's alert (none: nothing wrong) no longer names it
    assert cli("-c", config, "ledger", "resolve", key, "--sent").exit_code == 0
    quiet = cli("-c", config, "run-all", "--as-of", "2026-11-27T11:00")
    assert quiet.exit_code == 0, quiet.stderr
    assert "alert" not in quiet.stderr


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_status_counts_sent_and_failed_per_day_for_the_last_week(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for n in range(3):
        printed_note(s, email=f"kunde{n}@example.ch")
    printed_note(s, email="weg@example.ch")
    smtp_server.handler.rcpt_answers["weg@example.ch"] = "550 5.1.1 no such user"
    config = write_config(email=email_section(smtp_server))
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 1

    result = cli("-c", config, "--json", "status", "--as-of", "2026-11-29T09:00")

    [found] = result.json()
    [shipping] = [j for j in found["jobs"] if j["job"] == "shipping-confirmations"]
    days = {d["day"]: (d["sent"], d["failed"]) for d in shipping["days"]}
    assert list(days) == [f"2026-11-{d}" for d in range(22, 30)]  # 7 days and today
    assert days["2026-11-27"] == (3, 1)
    assert sum(sent + failed for sent, failed in days.values()) == 4
    plain = cli("-c", config, "status", "--as-of", "2026-11-29T09:00")
    header, *rows = [line.split("\t") for line in plain.stdout.splitlines() if "\t" in line]
    chart = header.index("last 7 days + today (sent/failed)")
    [row] = [r for r in rows if r[0] == "shipping-confirmations"]
    assert row[chart] == "0/0 0/0 0/0 0/0 0/0 3/1 0/0 0/0"


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_status_during_a_live_run_says_running_not_killed(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    import time

    s = shop(erp_backend)
    for n in range(6):
        printed_note(s, email=f"kunde{n}@example.ch")
    smtp_server.handler.delay = 0.5
    config = write_config(email=email_section(smtp_server))
    process = start_cli(config, "shipping-confirmations", "--as-of", AS_OF)
    try:
        deadline = time.monotonic() + 30
        while not smtp_server.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert smtp_server.messages, "the run did not start sending"

        during = cli("-c", config, "status", "--as-of", AS_OF)
    finally:
        assert process.wait(60) == 0

    assert during.exit_code == 0, during.stdout
    assert during.stdout.startswith("OK: nothing waits for a person")
    assert "running since 2026-11-27 08:00 on " in during.stdout
    assert "killed" not in during.stdout
