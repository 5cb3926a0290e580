"""The one way tests read a SQLite ledger: ``ledger_rows(config)`` next to a test config.

Rows come ordered by key and channel as :class:`LedgerRow` (index or attribute), or, with
column names, as tuples of just those columns: ``ledger_rows(config, "key", "status")``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, NamedTuple


class LedgerRow(NamedTuple):
    key: str
    channel: str
    status: str
    detail: str
    recipient: str
    account: str
    job: str
    created_at: str
    sent_at: str | None
    info: dict[str, Any]


def ledger_rows(
    config: Path, *columns: str, prefix: str = "", path: Path | None = None
) -> list[Any]:
    """Every row of the ledger of ``config`` (``path``: another ledger file); none if the
    file does not exist (a dry run must not create it)."""
    path = path or config.parent / "ledger.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        found = conn.execute(
            "SELECT key_, channel, status, detail, recipient, account, job, created_at, "
            "sent_at, info FROM proit_notify_ledger WHERE key_ LIKE ? ORDER BY key_, channel",
            [prefix + "%"],
        ).fetchall()
    rows = [LedgerRow(*r[:9], json.loads(r[9]) if r[9] else {}) for r in found]
    if columns:
        return [tuple(getattr(row, c) for c in columns) for row in rows]
    return rows
