"""What the CLI shows, as data: table rows and JSON objects (``cli.py`` prints them).

Every cell is a :class:`rich.text.Text`, never a markup string: ERP text such as an order
number ``[/]`` or an address with ``[link=...]`` is shown as typed (SPEC §7).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table
from rich.text import Text

from .drafts import Draft
from .ledger import Entry
from .monitor import DayCount, Status
from .redaction import one_line, redact
from .report import JobReport
from .statuses import COUNTED

Row = tuple[str, ...]

REPORT_COLUMNS = ("key", "document", "channel", "recipient", "account", "status", "reason")
DEMO_COLUMNS = ("document", "channel", "recipient", "status", "reason")
HISTORY_COLUMNS = ("updated", "key", "channel", "status", "recipient", "document", "detail")
STATUS_COLUMNS = (
    "job",
    "last run",
    "host",
    "sent",
    "failed",
    "skipped",
    "deferred",
    "unknown",
    "exit",
    "last 7 days + today (sent/failed)",
    "note",
)
#: a day's sent count as a bar on a terminal
BARS = " ▁▂▃▄▅▆▇█"
DRAFT_COLUMNS = ("key", "channel", "recipient", "document", "delivery date", "created", "edited")


def table(columns: Sequence[str], rows: Iterable[Row], title: str | None = None) -> Table:
    """A Rich table whose cells are plain text."""
    shown = Table(title=Text(title) if title else None)
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        # one line each, control characters escaped: a cell cannot drive the terminal
        shown.add_row(*(Text(one_line(redact(cell))) for cell in row))
    return shown


#: how many keys a group of problems names as examples
EXAMPLES = 3
_VALUES_RE = re.compile(r"'[^']*'|\"[^\"]*\"|\b\d[\d.:,]*\b")


def problem_groups(report: JobReport) -> list[str]:
    """The report's problems and skips by reason, most frequent first, each with a few
    keys: what a person reads first (the rows come with ``--list``). Values in a reason
    (an address, a number) do not split a group."""
    groups: dict[tuple[str, str], list[str]] = {}
    for item in report.items:
        if item.status in {"sent", "planned", "draft"}:
            continue
        shape = _VALUES_RE.sub("…", one_line(redact(item.reason)) or "(no reason)")
        groups.setdefault((item.status, shape), []).append(item.key)
    lines = []
    for (status, shape), keys in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0])):
        shown = ", ".join(keys[:EXAMPLES]) + (", …" if len(keys) > EXAMPLES else "")
        helps = HELPS.get(status, "")
        line = f"{len(keys):>5} {status}: {shape} ({shown})"
        lines.append(f"{line}; {helps}" if helps else line)
    return lines


#: the command that helps with a group of problems (SPEC §12)
HELPS = {
    "failed": "see 'proit-notify history --status failed'; after the fix in the ERP "
    "'proit-notify ledger resolve KEY --resend'",
    "unknown": "decide with 'proit-notify ledger resolve KEY --sent | --resend'",
    "deferred": "the next runs retry them",
    "waiting": "the next run sends them",
}


def total(reports: Sequence[JobReport]) -> str:
    """The counts of several jobs together (run-all's last line)."""
    counts: dict[str, int] = {}
    for report in reports:
        for name, n in report.counts.items():
            counts[name] = counts.get(name, 0) + n
    if reports and reports[0].dry_run:
        planned, failed = counts.get("planned", 0), counts.get("failed", 0)
        return f"total (dry run): {planned} would be sent, {failed} would fail"
    shown = ", ".join(f"{counts.get(n, 0)} {n}" for n in COUNTED)
    return f"total: {shown}" + (f", {counts['waiting']} waiting" if counts.get("waiting") else "")


def report_columns(report: JobReport, columns: tuple[str, ...] = REPORT_COLUMNS) -> tuple[str, ...]:
    """``columns``, with "attachments" when an item carries (or would carry) files."""
    return (*columns, "attachments") if any(i.attachments for i in report.items) else columns


def report_rows(
    report: JobReport, limit: int | None = None, columns: tuple[str, ...] = REPORT_COLUMNS
) -> list[Row]:
    items = report.items if limit is None else report.items[:limit]
    return [
        tuple(", ".join(i.attachments) if c == "attachments" else i.as_json()[c] for c in columns)
        for i in items
    ]


def _stamp(entry_time: Any, tz: ZoneInfo) -> str:
    return str(entry_time.astimezone(tz).strftime("%Y-%m-%d %H:%M"))


def history_rows(entries: Iterable[Entry], tz: ZoneInfo) -> list[Row]:
    return [
        (_stamp(e.updated_at, tz), e.key, e.channel, e.status, e.recipient, e.document, e.detail)
        for e in entries
    ]


def entry_json(e: Entry, tz: ZoneInfo) -> dict[str, Any]:
    return {
        **e.as_json(),
        "status": e.status,
        "detail": e.detail,
        "attempts": e.attempts,
        "sent_at": e.sent_at.astimezone(tz).isoformat() if e.sent_at else None,
        "updated_at": e.updated_at.astimezone(tz).isoformat(),
    }


def draft_rows(found: Iterable[Draft], tz: ZoneInfo) -> list[Row]:
    return [
        (
            d.key,
            d.channel,
            d.entry.recipient,
            d.entry.document,
            d.delivery_date,
            _stamp(d.entry.created_at, tz),
            "edited" if d.edited else "",
        )
        for d in found
    ]


def day_chart(days: Sequence[DayCount], *, bars: bool) -> str:
    """The days of a job: a bar per day (height: sent; a failed day marked !) on a
    terminal, ``sent/failed`` per day otherwise."""
    if not bars:
        return " ".join(f"{d.sent}/{d.failed}" for d in days)
    top = max((d.sent for d in days), default=0) or 1
    return "".join(
        "!" if d.failed else BARS[round(d.sent / top * (len(BARS) - 1))] for d in days
    ) + f" {days[-1].sent} today" if days else ""


def status_rows(st: Status, tz: ZoneInfo, *, bars: bool = False) -> list[Row]:
    rows: list[Row] = []
    for j in st.jobs:
        r = j.last
        chart = day_chart(j.days, bars=bars)
        if r is None:
            rows.append((j.job, "never", "", "", "", "", "", "", "", chart, ""))
            continue
        c = r.counts
        rows.append(
            (
                j.job,
                _stamp(r.started_at, tz),
                r.host,
                # the bounce reader's record has counts of its own (read, bounced, delayed)
                *(str(c[name]) if name in c else "" for name in STATUS_COLUMNS[3:8]),
                "" if r.exit_code is None else str(r.exit_code),
                chart,
                j.problem
                or (f"running since {_stamp(r.started_at, tz)} on {r.host}"
                    if r.ended_at is None and j.running else ""),
            )
        )
    return rows
