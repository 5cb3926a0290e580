"""The ERP as the jobs see it: the table/column mapping of SPEC §3, and streamed queries.

Jobs write their SQL in the *logical* schema. ``{orders}`` in a query becomes a derived
table ``(SELECT <mapped column or expression> AS id, ... FROM <ERP table>)``, so a job never
sees the ERP's own names and a ``{ sql = "..." }`` field is evaluated over its own table.
Every database we target merges such derived tables into the outer query, so indexes on the
ERP's columns are used as if the query had been written against them directly.
The connections themselves are ``db.py``'s.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .db import Database, Dialect, connect
from .errors import ErpError, MissingObjectError, RowError
from .logical import LOGICAL_SCHEMA, OPTIONAL_FIELDS
from .settings import ErpSettings, SqlExpression

# --- the mapping ----------------------------------------------------------------------------

#: rows of one page of a job's selection: each page re-runs the selection from the last key,
#: so a page holds a day's due set of a large ERP at once (10,000 rows: a few MB)
PAGE_ROWS = 10_000

_TABLE_REF = re.compile(r"\{(" + "|".join(LOGICAL_SCHEMA) + r")\}")


@dataclass(frozen=True)
class Mapping:
    """Turns logical table references into derived tables over the ERP's own names."""

    erp: ErpSettings
    dialect: Dialect
    phone_field: str | None = None

    def fields(self, table: str) -> tuple[str, ...]:
        extra = ("phone",) if table == "customers" else ()
        return LOGICAL_SCHEMA[table] + OPTIONAL_FIELDS.get(table, ()) + extra

    def expression(self, table: str, field: str) -> str:
        """The SQL for one logical field, over the ERP table (unqualified); an optional
        field that is not mapped, and the phone without ``sms.phone_field``, are NULL."""
        if table == "customers" and field == "phone":
            return self.dialect.quote(self.phone_field) if self.phone_field else "NULL"
        if not self.erp.maps(table, field):
            return "NULL"
        spec = self.erp.column(table, field)
        if isinstance(spec, SqlExpression):
            return f"({spec.sql})"
        return self.dialect.quote(spec)

    def source(self, table: str) -> str:
        """``(SELECT ... AS id, ... FROM "ERP table")``: the logical table as a derived table."""
        cols = ", ".join(
            f"{self.expression(table, f)} AS {self.dialect.quote(f)}" for f in self.fields(table)
        )
        return f"(SELECT {cols} FROM {self.dialect.quote(self.erp.table(table))})"

    def sql(self, template: str) -> str:
        """Replace every ``{table}`` of a logical query by its derived table."""
        return _TABLE_REF.sub(lambda m: self.source(m.group(1)), template)


class Erp:
    """The ERP as the jobs see it: logical queries, streamed rows, and schema checks."""

    def __init__(
        self,
        db: Database,
        settings: ErpSettings,
        phone_field: str | None,
        lookup_db: Database | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.mapping = Mapping(settings, db.dialect, phone_field)
        self._lookup_db = lookup_db

    def query(self, template: str, params: Sequence[object] = ()) -> Iterator[dict[str, Any]]:
        """Stream the rows of a query written against the logical schema."""
        try:
            yield from self.db.stream(self.mapping.sql(template), params)
        except MissingObjectError as exc:
            raise _mapping_error(exc) from exc

    def pages(
        self, template: str, params: Sequence[object], key: str, size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """The rows of a job's selection, ordered by ``key`` (a unique column of its select
        list), in pages of ``size`` rows (:data:`PAGE_ROWS`; fetched ``erp.fetch_size`` at
        a time).

        Each page is one complete statement, read to the end and its transaction ended
        before its rows are handed out: no ERP cursor stays open while messages go out, so
        the ERP's writers are never blocked by a run waiting on a mail server (locking READ
        COMMITTED on SQL Server, SQLite's file lock), and the round trips are one per page.
        """
        size = size or PAGE_ROWS
        inner = self.mapping.sql(template)
        last: object = None
        while True:
            sql = page_sql(inner, self.db.dialect, key, size, after=last is not None)
            bound = [*params] if last is None else [*params, last]
            try:
                rows = list(self.db.stream(sql, bound))
            except MissingObjectError as exc:
                raise _mapping_error(exc) from exc
            self.db.rollback()  # end the read transaction (and its locks) of this page
            yield from rows
            if len(rows) < size:
                return
            last = rows[-1][key]

    def count(self, template: str, params: Sequence[object]) -> int:
        """How many rows the selection ``template`` has now (for the progress line's
        total); one statement, its read transaction ended like a page's."""
        try:
            row = self.db.one(count_sql(self.mapping.sql(template)), params)
        except MissingObjectError as exc:
            raise _mapping_error(exc) from exc
        finally:
            # also after a failure: PostgreSQL refuses every later statement of a
            # transaction in which one failed
            self.db.rollback()
        return int(row["n"]) if row else 0

    def lookup(self, template: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        """A small query, fully read, on a second connection when the driver needs one.

        SQL Server (without MARS) and server-side cursors allow only one active result per
        connection, and jobs look up items while their main selection is still streaming.
        """
        db = self._lookup_db
        if db is None:
            # sqlite3 runs any number of cursors on one connection
            sqlite = isinstance(self.db.conn, sqlite3.Connection)
            db = self.db if sqlite else connect(self.settings)
            self._lookup_db = db
        try:
            rows = list(db.stream(self.mapping.sql(template), params))
        except MissingObjectError as exc:
            raise _mapping_error(exc) from exc
        if db is not self.db:
            # End the read transaction: under REPEATABLE READ (MySQL/MariaDB) the next
            # lookup, a re-check right before sending, must see what was booked since
            # (a payment); an ODBC SQLite connection would keep the file's read lock.
            db.rollback()
        return rows

    def language_counts(self) -> list[tuple[object, int]]:
        """(ERP language value, number of customers) for every value customers have."""
        rows = self.query(
            "SELECT c.language AS language, COUNT(*) AS n FROM {customers} c GROUP BY c.language"
        )
        counts = [(row["language"], int(row["n"])) for row in rows]
        self.db.rollback()  # end the read transaction
        return counts

    def close(self) -> None:
        if self._lookup_db is not None and self._lookup_db is not self.db:
            self._lookup_db.close()
        self.db.close()

    def check(self) -> list[str]:
        """Every mapped table and column that does not exist or does not evaluate."""
        problems = []
        for table in LOGICAL_SCHEMA:
            real = self.settings.table(table)
            qtable = self.db.dialect.quote(real)
            try:
                list(self.db.stream(f"SELECT 1 AS x FROM {qtable} WHERE 1 = 0"))
            except (ErpError, MissingObjectError) as exc:
                problems.append(
                    f"table {table} -> {real!r}: not found or not readable "
                    f"(set erp.tables.{table}); {_first_line(exc)}"
                )
                self.db.rollback()
                continue
            for field in self.mapping.fields(table):
                if field == "phone" and self.mapping.phone_field is None:
                    continue
                if not self.settings.maps(table, field):
                    continue  # optional and not mapped: NULL, nothing to check
                expr = self.mapping.expression(table, field)
                try:
                    list(self.db.stream(f"SELECT {expr} AS x FROM {qtable} WHERE 1 = 0"))
                except (ErpError, MissingObjectError) as exc:
                    key = "sms.phone_field" if field == "phone" else f"erp.columns.{table}.{field}"
                    problems.append(
                        f"{table}.{field} -> {expr} in table {real!r}: not found or invalid "
                        f"(set {key}); {_first_line(exc)}"
                    )
                    self.db.rollback()
        self.db.rollback()  # end the read transaction: an open one blocks the ERP's writers
        return problems


def page_sql(inner: str, dialect: Dialect, key: str, size: int, *, after: bool) -> str:
    """One page of ``inner`` ordered by ``key``; ``after``: rows with a key above ``?``."""
    column = f"page_.{dialect.quote(key)}"
    top, limit = (f"TOP ({size}) ", "") if dialect is Dialect.MSSQL else ("", f" LIMIT {size}")
    where = f" WHERE {column} > ?" if after else ""
    return f"SELECT {top}* FROM ({inner}) page_{where} ORDER BY {column}{limit}"


def count_sql(inner: str) -> str:
    """How many rows ``inner`` has (a derived table needs its name on every server)."""
    return f"SELECT COUNT(*) AS n FROM ({inner}) count_"


def _mapping_error(exc: MissingObjectError) -> MissingObjectError:
    return MissingObjectError(
        f"{exc}\n  The ERP has no table or column of that name: correct [erp.tables] / "
        "[erp.columns] in the settings ('proit-notify check' lists every wrong one, "
        "'proit-notify schema TABLE' shows what the ERP has). Nothing was sent."
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0]


# --- values from any driver -------------------------------------------------------------------
#
# Each converter reads one ERP value as the drivers hand it over. A value it cannot read
# raises :class:`RowError` naming the logical field (``field``): the job makes that row a
# ``failed`` notification with the reason, and the run goes on (one row never stops a run).

#: the longest ERP text a message takes (names, numbers, addresses); an item description
#: may be longer (:data:`MAX_DESCRIPTION`). A longer value is junk: that row fails.
MAX_TEXT = 1_000
MAX_DESCRIPTION = 4_000
#: amounts and quantities beyond this are junk (a receiver and babel choke on 1e300)
MAX_NUMBER = Decimal("1e15")
#: what sqlite3 made of bytes that are not UTF-8 (see db.connect_sqlite)
_SURROGATE_RE = re.compile("[\udc80-\udcff]")


def to_datetime(value: object, field: str = "") -> datetime | None:
    """A timestamp from a driver (datetime, date or ISO text) as a naive local datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    try:
        return datetime.fromisoformat(str(value).strip()).replace(tzinfo=None)
    except ValueError:
        raise RowError(field, value, "is not a date and time (YYYY-MM-DD hh:mm)") from None


def to_date(value: object, field: str = "") -> date | None:
    """A date from a driver (date, datetime or ISO text)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text).date() if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise RowError(field, value, "is not a date (YYYY-MM-DD)") from None


def to_decimal(value: object, field: str = "") -> Decimal | None:
    """A money amount or quantity; floats from a driver are read through their shortest
    repr. Text that is not a plain number (``'2 Stk'``, ``"1'234.50"``), NaN, infinity and
    absurd magnitudes are refused."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowError(field, value, "is not a number")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise RowError(field, value, "is not a number") from None
    if not number.is_finite() or abs(number) >= MAX_NUMBER:
        raise RowError(field, value, "is not a usable number (out of range)")
    return number


def to_int(value: object, field: str = "") -> int | None:
    """A whole number (a line number, a count)."""
    number = to_decimal(value, field)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise RowError(field, value, "is not a whole number")
    return int(number)


def to_flag(value: object) -> bool | None:
    """A 1/0/NULL flag (also 'J'/'N', 'true'/'false' as ERPs store them)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return value != 0
    text = str(value).strip().lower()
    if text == "":
        return None
    return text not in {"0", "n", "nein", "no", "false", "f"}


def to_text(value: object, field: str = "", limit: int = MAX_TEXT) -> str | None:
    """Text with CHAR padding removed; empty text is None. Longer than ``limit`` or not
    valid UTF-8 (SQLite keeps any bytes): :class:`RowError`."""
    if value is None:
        return None
    text = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if len(text) > limit:
        raise RowError(field, text, f"is longer than {limit:,} characters")
    if _SURROGATE_RE.search(text):
        raise RowError(field, text, "is not valid UTF-8 text (fix the characters in the ERP)")
    return text or None
