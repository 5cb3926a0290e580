"""The progress line on a terminal: each job's done/total and the time left (SPEC §12).

The totals come from a COUNT of each job's selection, run only when someone watches: here
on every ERP backend, with the consoles taken for a terminal, so that the COUNT of every
job's real selection (the review's UNION of trigger arms included) runs on each server.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from cli_runner import Cli
from erp_backends import ErpBackend
from scenario import shop
from smtp_server import SmtpServer, email_section

from proit_notify import cli as cli_module
from proit_notify.cli.console import tally_line
from proit_notify.erp import Erp
from proit_notify.errors import ErpError
from proit_notify.report import Tally

#: one frame of the progress line: job, done/expected (``~``: estimated), time, time left
FRAME = re.compile(r"([a-z-]+) (\d+)/(~?)(\d+) \d+:\d\d:\d\d(, about \d+:\d\d:\d\d left)?")


def frames(terminal_output: str) -> dict[str, list[tuple[int, str, int, bool]]]:
    """The progress frames drawn, per job: (done, "~" or "", expected, time left shown)."""
    found: dict[str, list[tuple[int, str, int, bool]]] = {}
    for job, done, about, expected, left in FRAME.findall(terminal_output):
        found.setdefault(job, []).append((int(done), about, int(expected), bool(left)))
    return found


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> None:
    """A person watches: the error console is taken for an interactive terminal (a console
    decides whether it is interactive when it is made)."""
    monkeypatch.setattr(cli_module.err, "_force_terminal", True)
    monkeypatch.setattr(cli_module.err, "is_interactive", True)


@pytest.mark.usefixtures("watched")
def test_each_job_counts_up_to_its_total_on_a_terminal(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for i in range(3):  # printed a week ago: review requests due (by print and by auto)
        order = s.order(s.customer(email=f"r{i}@example.ch"), review_mail=1)
        s.delivery_note(order, datetime(2026, 11, 20, 9, 0))
    for i in range(4):  # printed yesterday: shipping confirmations due (and the 3 above)
        s.delivery_note(s.order(s.customer(email=f"s{i}@example.ch")), datetime(2026, 11, 26, 9))
    for i in range(2):  # prepayment invoices open since the start of the month
        cid = s.customer(email=f"p{i}@example.ch")
        s.invoice(None, cid, invoice_date=date(2026, 11, 2), open_amount=Decimal("10.00"))
    config = write_config(
        email=email_section(smtp_server),
        review={"delay_days": 7, "max_age_days": 14, "portal_url": "https://b.example/{order_number}",
                "on_delivery_note_print": True, "on_auto_processing": True},
        prepayment={"delay_days": 1, "repeat_days": 2, "max_mails": 3},
    )  # fmt: skip

    result = cli("-c", config, "run-all", "--as-of", "2026-11-27T08:00")

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 7 + 3 + 2, result.stdout
    shown = frames(result.stderr)
    for job, due in (("shipping-confirmations", 7), ("review-requests", 3),
                     ("prepayment-reminders", 2)):  # fmt: skip
        assert shown.get(job), (job, result.stderr)
        # the last frame: every notification through, the total exact (no ~ estimate)
        assert shown[job][-1] == (due, "", due, True), (job, shown[job])


def test_the_line_before_a_step_while_counting_and_for_the_bounce_reader() -> None:
    tally = Tally(counting=True)
    assert tally_line(tally, now=5.0) == ""  # nothing started: no job, no uptime as a time
    tally.start("bounces", now=10.0, sized=False)  # run-all's first step reads a mailbox
    assert tally_line(tally, now=13.0) == "bounces 0:00:03"
    tally.start("review-requests", now=20.0)
    assert tally_line(tally, now=21.0) == "review-requests counting 0:00:01"  # no "0/0"
    tally.add(40)
    tally.read, tally.planned, tally.finished = 20, 10, 5
    assert tally_line(tally, now=30.0) == "review-requests 5/~20 0:00:10, about 0:00:30 left"


@pytest.mark.usefixtures("watched")
@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_count_the_erp_refuses_leaves_the_line_without_a_total_and_the_run_goes_on(
    erp_backend: ErpBackend,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(self: Erp, template: str, params: object) -> int:
        # what SQL Server says when a COUNT over a large selection outlasts erp.timeout
        # (each page of the same selection is quick); a timeout cannot be made here
        raise ErpError("ERP error on erp.example:1433: [HYT00] Query timeout expired")

    monkeypatch.setattr(Erp, "count", refused)
    s = shop(erp_backend)
    for i in range(3):
        s.delivery_note(s.order(s.customer(email=f"s{i}@example.ch")), datetime(2026, 11, 26, 9))
    config = write_config(email=email_section(smtp_server))

    result = cli("-c", config, "shipping-confirmations", "--as-of", "2026-11-27T08:00")

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 3
    assert "shipping-confirmations 3 done" in result.stderr  # the count, without a total
    assert not frames(result.stderr)  # no done/total was shown
