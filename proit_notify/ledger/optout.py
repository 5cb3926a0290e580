"""The opt-out list's table (SPEC §5, §7): addresses that objected to advertising.

The list lives next to the ledger table (``<ledger.table>_optout``), so hosts that share a
ledger share it too. It keeps each address in the one form of
:func:`proit_notify.objections.normalize`; who objected and what that means for a message is
:mod:`proit_notify.objections`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..clock import from_utc_text, to_utc_text
from ..db import Database, Dialect
from ..errors import MissingObjectError
from .table import Table


def ddl(table: str, dialect: Dialect) -> list[str]:
    """The opt-out table (created with the ledger's)."""
    vc = "NVARCHAR" if dialect is Dialect.MSSQL else "VARCHAR"
    exists = "" if dialect is Dialect.MSSQL else "IF NOT EXISTS "
    return [
        f"CREATE TABLE {exists}{dialect.quote(table)} ("
        f"address {vc}(320) NOT NULL, added_at {vc}(19) NOT NULL, host {vc}(200) NOT NULL, "
        "PRIMARY KEY (address))"
    ]


@dataclass(frozen=True)
class OptOut:
    """One address on the list."""

    address: str
    added_at: datetime
    host: str


class OptOutList(Table):
    """The opt-out list of one ledger database."""

    def __init__(self, db: Database, table: str, host: str) -> None:
        super().__init__(db, table)
        self.host = host

    def add(self, key: str, now: datetime) -> bool:
        """Put ``key`` (``objections.checked``) on the list; False when it was on it already."""
        with self.errors(f"writing the opt-out list ({self.table}) failed"):
            added = self.db.insert_unique(
                f"INSERT INTO {self._q} (address, added_at, host) VALUES (?, ?, ?)",
                [key, to_utc_text(now), self.host[:200]],
            )
            self.db.commit()
        return added

    def remove(self, keys: Iterable[str]) -> bool:
        """Take an address off the list (every form it may be kept in, :func:`forms`);
        False when it was not on it."""
        keys = sorted(set(keys))
        marks = ", ".join("?" for _ in keys)
        removed = self.write(
            f"DELETE FROM {self._q} WHERE address IN ({marks})",
            keys,
            f"writing the opt-out list ({self.table}) failed",
        )
        return removed > 0

    def entries(self) -> list[OptOut]:
        """Every address on the list, in the order added."""
        rows = self._read(f"SELECT address, added_at, host FROM {self._q} ORDER BY added_at", [])
        return [
            OptOut(str(r["address"]), from_utc_text(str(r["added_at"])), str(r["host"]))
            for r in rows
        ]

    def holding(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` (forms of addresses, :func:`forms`) are on the list."""
        keys = sorted(set(keys))
        if not keys:
            return set()
        marks = ", ".join("?" for _ in keys)
        rows = self._read(f"SELECT address FROM {self._q} WHERE address IN ({marks})", keys)
        return {str(r["address"]) for r in rows}

    def _read(self, sql: str, params: Sequence[object]) -> list[dict[str, object]]:
        try:
            return self.read(sql, params, f"reading the opt-out list ({self.table}) failed")
        except MissingObjectError:
            return []  # a ledger made before the list existed, read by a dry run
