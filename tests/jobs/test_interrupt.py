"""A stop signal ends a run cleanly (issue 26, SPEC §7): a real SIGINT or SIGTERM sent to
the CLI process while it sends to a slow server. Exit 130, every claimed row recorded (none
left ``sending``), no row for what never reached the server, and the next run sends the
rest, each notification once."""

from __future__ import annotations

import signal
import time
from datetime import datetime
from typing import Any

import pytest
from cli_runner import Cli, start_cli
from ledger_rows import ledger_rows
from scenario import shop
from smtp_server import SmtpServer, email_section

AS_OF = "2026-11-27T08:00"
NOTES = 12


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_the_run_cleanly_and_the_next_run_sends_the_rest(
    stop: signal.Signals,
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
) -> None:
    s = shop(erp_backend)
    for n in range(NOTES):
        order = s.order(s.customer(email=f"kunde{n}@example.ch"))
        s.delivery_note(order, datetime(2026, 11, 26, 15, n))
    smtp_server.handler.delay = 0.4  # a slow relay: the run takes seconds
    config = write_config(email=email_section(smtp_server), alerts={"to": ["it@example.ch"]})

    process = start_cli(config, "shipping-confirmations", "--as-of", AS_OF, output=True)
    deadline = time.monotonic() + 30
    while not smtp_server.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert smtp_server.messages, "no message arrived"
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr
    assert "stopping after the messages in flight" in stderr
    assert "interrupted" in stderr
    rows = ledger_rows(config)
    customers = [m for m in smtp_server.messages if m.rcpt_tos != ("it@example.ch",)]
    assert [r.status for r in rows] == ["sent"] * len(rows)  # none left 'sending'
    assert sorted(r.recipient for r in rows) == sorted(m.rcpt_tos[0] for m in customers)
    assert 1 <= len(rows) < NOTES
    alert = [m for m in smtp_server.messages if m.rcpt_tos == ("it@example.ch",)]
    assert len(alert) == 1  # the run record and the alert say it was interrupted
    assert "interrupted" in alert[0].message.get_body(("plain",)).get_content()

    smtp_server.handler.delay = 0
    rest = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert rest.exit_code == 0, rest.stderr
    received = [m.rcpt_tos[0] for m in smtp_server.messages if m.rcpt_tos != ("it@example.ch",)]
    assert len(received) == NOTES
    assert sorted(set(received)) == sorted(received)  # each customer once
    status = cli("-c", config, "status")
    assert "killed or crashed" not in status.stdout + status.stderr
