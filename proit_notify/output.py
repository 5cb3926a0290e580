"""What the CLI shows, as data: table rows and JSON objects (``cli.py`` prints them).

Every cell is a :class:`rich.text.Text`, never a markup string: ERP text such as an order
number ``[/]`` or an address with ``[link=...]`` is shown as typed (SPEC §7).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from rich.table import Table
from rich.text import Text

from .drafts import Draft
from .ledger import Entry
from .monitor import Status
from .redaction import one_line, redact
from .report import JobReport

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
    "note",
)
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


def status_rows(st: Status, tz: ZoneInfo) -> list[Row]:
    rows: list[Row] = []
    for j in st.jobs:
        r = j.last
        if r is None:
            rows.append((j.job, "never", "", "", "", "", "", "", "", ""))
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
                j.problem or "",
            )
        )
    return rows
