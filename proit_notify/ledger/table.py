"""What every table of the ledger shares: its database, its quoted name, its errors.

The ledger's tables (rows, run records, opt-out list, schema version) live in one
database: a SQLite file of ours or the ERP's (``ledger.erp``). A driver error leaves a
table's method as a :class:`~proit_notify.errors.LedgerError` (exit 4) saying what failed,
in one place (:meth:`Table.errors`); a deadlock victim stays a
:class:`~proit_notify.errors.DeadlockError`, which the caller tries again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..db import Database
from ..errors import DeadlockError, ErpError, LedgerError


class Table:
    """One table of the ledger's database."""

    def __init__(self, db: Database, table: str) -> None:
        self.db = db
        self.table = table
        self._q = db.dialect.quote(table)

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Driver errors inside as :class:`LedgerError` ("``what``: the driver's words")."""
        try:
            yield
        except DeadlockError:
            raise  # rolled back by the database: the caller does it again
        except ErpError as exc:
            raise LedgerError(f"{what}: {exc}") from None

    def read(self, sql: str, params: Sequence[object] = (), what: str = "") -> list[dict[str, Any]]:
        """The rows of a query, read to the end."""
        with self.errors(what or f"reading {self.table} failed"):
            return list(self.db.stream(sql, params))

    def write(self, sql: str, params: Sequence[object], what: str = "") -> int:
        """One statement, committed; the rows it changed."""
        with self.errors(what or f"writing {self.table} failed"):
            count = self.db.execute(sql, params)
            self.db.commit()
            return count
