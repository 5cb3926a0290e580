"""The opt-out list (SPEC §5, §7): addresses that objected to review requests.

A review request is advertising (German Federal Court of Justice, VI ZR 225/17): whoever
asked not to get one, by mail, phone or the List-Unsubscribe link, is put on this list with
``proit-notify optout add ADDRESS`` and gets none. The list lives next to the ledger table
(``<ledger.table>_optout``), so hosts that share a ledger share it too. Other messages
(shipping confirmations, reminders, delivery dates) are not advertising and still go out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .clock import from_utc_text, to_utc_text
from .db import Database, Dialect
from .errors import ErpError, LedgerError, MissingObjectError, UsageError

_PHONE_NOISE_RE = re.compile(r"[\s\-./()]")


def normalize(address: str) -> str:
    """The form an address is kept and compared in: an email address in lower case, a phone
    number without blanks, dashes, dots and brackets (``+41 79 123 45 67`` ->
    ``+41791234567``; ``0041...`` -> ``+41...``)."""
    text = address.strip()
    if "@" in text:
        return text.casefold()
    number = _PHONE_NOISE_RE.sub("", text)
    return "+" + number[2:] if number.startswith("00") else number


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


class OptOutList:
    """The opt-out list of one ledger database."""

    def __init__(self, db: Database, table: str, host: str) -> None:
        self.db = db
        self.table = table
        self.host = host
        self._q = db.dialect.quote(table)

    def add(self, address: str, now: datetime) -> bool:
        """Put ``address`` on the list; False when it was on it already."""
        key = _checked(address)
        try:
            added = self.db.insert_unique(
                f"INSERT INTO {self._q} (address, added_at, host) VALUES (?, ?, ?)",
                [key, to_utc_text(now), self.host[:200]],
            )
            self.db.commit()
        except ErpError as exc:
            raise LedgerError(f"writing the opt-out list ({self.table}) failed: {exc}") from None
        return added

    def remove(self, address: str) -> bool:
        """Take ``address`` off the list; False when it was not on it."""
        key = _checked(address)
        try:
            removed = self.db.execute(f"DELETE FROM {self._q} WHERE address = ?", [key])
            self.db.commit()
        except ErpError as exc:
            raise LedgerError(f"writing the opt-out list ({self.table}) failed: {exc}") from None
        return removed > 0

    def entries(self) -> list[OptOut]:
        """Every address on the list, in the order added."""
        rows = self._read(f"SELECT address, added_at, host FROM {self._q} ORDER BY added_at", [])
        return [
            OptOut(str(r["address"]), from_utc_text(str(r["added_at"])), str(r["host"]))
            for r in rows
        ]

    def holding(self, addresses: Iterable[str | None]) -> set[str]:
        """Which of ``addresses`` are on the list (in their normalized form)."""
        keys = sorted({normalize(a) for a in addresses if a and a.strip()})
        if not keys:
            return set()
        marks = ", ".join("?" for _ in keys)
        rows = self._read(f"SELECT address FROM {self._q} WHERE address IN ({marks})", keys)
        return {str(r["address"]) for r in rows}

    def _read(self, sql: str, params: Sequence[object]) -> list[dict[str, object]]:
        try:
            return list(self.db.stream(sql, params))
        except MissingObjectError:
            return []  # a ledger made before the list existed, read by a dry run
        except ErpError as exc:
            raise LedgerError(f"reading the opt-out list ({self.table}) failed: {exc}") from None


def _checked(address: str) -> str:
    key = normalize(address)
    if not key or len(key) > 320:
        raise UsageError(f"{address!r} is not an email address or phone number")
    return key
