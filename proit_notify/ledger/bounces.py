"""Addresses that bounced (SPEC §10): no email goes to them until the ERP's value changes.

One row per address (compared without case): the ledger key of the message that bounced,
the diagnostic and when. ``proit-notify bounces`` puts an address here when a hard bounce
of ours arrives; ``ledger resolve KEY --resend`` of that key takes it off again (the
operator says the address works now). A customer whose address is corrected in the ERP is
written to at the new address, which was never here. The table lives beside the ledger's
(``<ledger.table>_bounces``), so hosts that share a ledger share it.
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
    """The bounced addresses' table (schema 3; created with the ledger's)."""
    vc = "NVARCHAR" if dialect is Dialect.MSSQL else "VARCHAR"
    text = "NVARCHAR(MAX)" if dialect is Dialect.MSSQL else "TEXT"
    exists = "" if dialect is Dialect.MSSQL else "IF NOT EXISTS "
    return [
        f"CREATE TABLE {exists}{dialect.quote(table)} ("
        f"address {vc}(320) NOT NULL, key_ {vc}(190) NOT NULL, detail {text}, "
        f"bounced_at {vc}(19) NOT NULL, PRIMARY KEY (address))"
    ]


def address_key(address: str) -> str:
    """How an address is kept and compared: without surrounding blanks and case."""
    return address.strip().casefold()[:320]


@dataclass(frozen=True)
class Bounce:
    """One address that bounced."""

    address: str
    key: str
    detail: str
    bounced_at: datetime


class BounceList(Table):
    """The bounced addresses of one ledger database."""

    def __init__(self, db: Database, table: str) -> None:
        super().__init__(db, table)

    def add(self, address: str, key: str, detail: str, now: datetime) -> None:
        """Keep ``address`` as bounced by the message ``key`` (the latest bounce wins)."""
        params = [address_key(address), key[:190], detail, to_utc_text(now)]
        with self.errors(f"writing the bounced addresses ({self.table}) failed"):
            added = self.db.insert_unique(
                f"INSERT INTO {self._q} (address, key_, detail, bounced_at) VALUES (?, ?, ?, ?)",
                params,
            )
            self.db.commit()
        if not added:
            self.write(
                f"UPDATE {self._q} SET key_ = ?, detail = ?, bounced_at = ? WHERE address = ?",
                [*params[1:], params[0]],
                f"writing the bounced addresses ({self.table}) failed",
            )

    def remove_key(self, key: str) -> int:
        """Take the addresses off that the message ``key`` bounced from (a resend)."""
        return self.write(
            f"DELETE FROM {self._q} WHERE key_ = ?",
            [key],
            f"writing the bounced addresses ({self.table}) failed",
        )

    def holding(self, addresses: Iterable[str]) -> dict[str, Bounce]:
        """Which of ``addresses`` bounced: by :func:`address_key`."""
        keys = sorted({address_key(a) for a in addresses if a and a.strip()})
        if not keys:
            return {}
        marks = ", ".join("?" for _ in keys)
        rows = self._read(
            f"SELECT address, key_, detail, bounced_at FROM {self._q} WHERE address IN ({marks})",
            keys,
        )
        return {b.address: b for b in rows}

    def entries(self) -> list[Bounce]:
        """Every bounced address, the latest first."""
        return self._read(
            f"SELECT address, key_, detail, bounced_at FROM {self._q} ORDER BY bounced_at DESC",
            [],
        )

    def _read(self, sql: str, params: Sequence[object]) -> list[Bounce]:
        try:
            rows = self.read(sql, params, f"reading the bounced addresses ({self.table}) failed")
        except MissingObjectError:
            return []  # a ledger of schema 2, read as it is by a dry run
        return [
            Bounce(
                str(r["address"]),
                str(r["key_"]),
                str(r["detail"] or ""),
                from_utc_text(str(r["bounced_at"])),
            )
            for r in rows
        ]
