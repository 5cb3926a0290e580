"""Database connections: sqlite3 or pyodbc, the dialect, and driver errors translated.

:class:`Database` wraps one DB-API connection; every driver error leaves it as an
:class:`~proit_notify.errors.ErpError` (exit 4) or, for a table or column that does not
exist, a :class:`~proit_notify.errors.MissingObjectError` (exit 3), with the driver's
exception as the cause. ``erp.py`` puts the ERP mapping on top; the ledger uses it as is.
pyodbc is imported only when an ODBC connection is made (it needs the system's libodbc).
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from .errors import DeadlockError, ErpError, MissingObjectError
from .redaction import odbc_pairs, redact
from .settings import ErpSettings

#: what PostgreSQL, MariaDB and SQL Server say of a database name they do not have
_NO_DATABASE_RE = re.compile(
    r'database "[^"]*" does not exist|Unknown database|Cannot open database', re.IGNORECASE
)


def _database_missing(detail: str) -> bool:
    return bool(_NO_DATABASE_RE.search(detail))


def odbc_target(conn_str: str) -> str:
    """A short, password-free description of an ODBC connection for messages."""
    parts = {key.upper(): value for key, value in odbc_pairs(conn_str)}
    driver = parts.get("DRIVER", "?")
    where = parts.get("SERVER") or parts.get("DATABASE") or parts.get("DSN") or ""
    port = parts.get("PORT")
    if port and where and ":" not in where and "," not in where:
        where = f"{where}:{port}"
    return f"driver {driver}" + (f" at {where}" if where else "")


class Dialect(StrEnum):
    """What a connected database needs to differ on: identifier quoting and parameters."""

    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"
    MYSQL = "mysql"
    MSSQL = "mssql"
    OTHER = "other"

    @classmethod
    def from_dbms_name(cls, name: str) -> Dialect:
        lowered = name.lower()
        for needle, dialect in (
            ("sqlite", cls.SQLITE),
            ("postgres", cls.POSTGRESQL),
            ("mariadb", cls.MYSQL),
            ("mysql", cls.MYSQL),
            ("sql server", cls.MSSQL),
        ):
            if needle in lowered:
                return dialect
        return cls.OTHER

    def quote(self, identifier: str) -> str:
        """Quote a (validated) identifier, ``schema.table`` part by part."""
        parts = identifier.split(".")
        if self is Dialect.MYSQL:
            return ".".join(f"`{p}`" for p in parts)
        if self is Dialect.MSSQL or self is Dialect.SQLITE:
            # SQLite reads a "name" that matches no column as a string literal (so a wrong
            # mapping would silently yield text); [name] is always an identifier there
            return ".".join(f"[{p}]" for p in parts)
        return ".".join(f'"{p}"' for p in parts)


class DbApiConnection(Protocol):
    """The part of a DB-API 2 connection we use (sqlite3 and pyodbc both fit)."""

    def cursor(self) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


#: pyodbc binds longer text as ntext on SQL Server (see Database._sizes)
LONG_TEXT = 2000
#: SQL_SS_TIMESTAMPOFFSET: SQL Server's datetimeoffset, which pyodbc cannot read by itself
SQL_SS_TIMESTAMPOFFSET = -155


def datetimeoffset(raw: bytes, tz: tzinfo | None = None) -> datetime:
    """A ``datetimeoffset`` value as the driver hands it over (SQL_SS_TIMESTAMPOFFSET_STRUCT:
    year, month, day, hour, minute, second, nanoseconds, offset hours and minutes), as the
    naive local time in ``tz`` (the ERP's dates are local times, SPEC §4)."""
    year, month, day, hour, minute, second, nanos, off_h, off_m = struct.unpack("<6hI2h", raw)
    offset = timezone(timedelta(hours=off_h, minutes=off_m))
    moment = datetime(year, month, day, hour, minute, second, nanos // 1000, offset)
    return moment.astimezone(tz).replace(tzinfo=None) if tz else moment.replace(tzinfo=None)


#: the roles a connection plays, named in its error messages (SPEC §7: say which database)
ERP_ROLE = "ERP database"
LEDGER_ROLE = "ledger database"


class Database:
    """A DB-API connection with its dialect; translates driver errors into :class:`ErpError`."""

    def __init__(
        self,
        conn: DbApiConnection,
        dialect: Dialect,
        where: str,
        fetch_size: int = 1000,
        role: str = ERP_ROLE,
    ) -> None:
        self.conn = conn
        self.dialect = dialect
        self.where = where
        self.fetch_size = fetch_size
        #: which database this is to the reader of an error ("ERP database", "ledger")
        self.role = role
        self._scope: tuple[str | None, str | None] | None = None

    @functools.cached_property
    def _integrity_errors(self) -> tuple[type[BaseException], ...]:
        """The driver's IntegrityError; pyodbc is imported only when a pyodbc row is inserted
        (a wrapped or plain sqlite3 connection must work without libodbc)."""
        if isinstance(self.conn, sqlite3.Connection):
            return (sqlite3.IntegrityError,)
        return (_pyodbc().IntegrityError,)

    # values -----------------------------------------------------------------------------
    def param(self, value: object) -> object:
        """Bind form of a value. SQLite keeps dates as ISO text, so compare with text."""
        if self.dialect is Dialect.SQLITE:
            if isinstance(value, datetime):
                return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
            if isinstance(value, date):
                return value.isoformat()
            if isinstance(value, Decimal):
                return str(value)
        return value

    def params(self, values: Sequence[object]) -> list[object]:
        return [self.param(v) for v in values]

    # queries ----------------------------------------------------------------------------
    def stream(self, sql: str, params: Sequence[object] = ()) -> Iterator[dict[str, Any]]:
        """Run a query and yield rows as dicts, fetched in chunks (memory stays flat)."""
        cursor = self._execute(sql, params)
        try:
            names = [d[0].lower() for d in cursor.description]
            while True:
                try:
                    chunk = cursor.fetchmany(self.fetch_size)
                except Exception as exc:
                    raise self._error(exc, sql) from exc
                if not chunk:
                    break
                # the row length is the description's: no strict check per row on a hot path
                yield from [dict(zip(names, row, strict=False)) for row in chunk]
        finally:
            cursor.close()

    def one(self, sql: str, params: Sequence[object] = ()) -> dict[str, Any] | None:
        """The first row of a query, or None."""
        for row in self.stream(sql, params):
            return row
        return None

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run a statement; returns the affected row count. The caller commits."""
        cursor = self._execute(sql, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def insert_unique(self, sql: str, params: Sequence[object]) -> bool:
        """Insert a row; False when a unique key already holds it (someone else claimed it)."""
        cursor = self.conn.cursor()
        try:
            self._sizes(cursor, params)
            cursor.execute(sql, self.params(params))
        except self._integrity_errors:
            self.rollback()
            return False
        except Exception as exc:
            raise self._error(exc, sql) from exc
        finally:
            cursor.close()
        return True

    def commit(self) -> None:
        try:
            self.conn.commit()
        except Exception as exc:
            raise self._error(exc, "COMMIT") from exc

    def rollback(self) -> None:
        try:
            self.conn.rollback()
        except Exception as exc:
            raise self._error(exc, "ROLLBACK") from exc

    def close(self) -> None:
        # closing a broken connection may fail; there is nothing left to do then
        with contextlib.suppress(Exception):
            self.conn.close()

    def _execute(self, sql: str, params: Sequence[object]) -> Any:
        try:
            cursor = self.conn.cursor()
            self._sizes(cursor, params)
            cursor.execute(sql, self.params(params))
        except Exception as exc:
            raise self._error(exc, sql) from exc
        return cursor

    def _sizes(self, cursor: Any, params: Sequence[object]) -> None:
        """SQL Server: text over 2,000 characters goes as NVARCHAR(MAX). pyodbc would bind it
        as the legacy ntext, which _SC and _UTF8 collations refuse (error 4189)."""
        if self.dialect is not Dialect.MSSQL:
            return
        if not any(isinstance(v, str) and len(v) > LONG_TEXT for v in params):
            return
        long_text = (_pyodbc().SQL_WVARCHAR, 0, 0)  # size 0: NVARCHAR(MAX)
        cursor.setinputsizes(
            [long_text if isinstance(v, str) and len(v) > LONG_TEXT else None for v in params]
        )

    def _error(
        self, exc: BaseException, sql: str
    ) -> ErpError | MissingObjectError | DeadlockError:
        first = " ".join(sql.split())[:160]
        text = f"{self.role} error on {self.where}: {redact(str(exc))}\n  while running: {first}"
        if is_missing_object(exc):
            return MissingObjectError(text)
        state = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
        if state == "40001" or "deadlock" in str(exc).lower():
            return DeadlockError(text)
        return ErpError(text)

    # schema -----------------------------------------------------------------------------
    def scope(self) -> tuple[str | None, str | None]:
        """(catalog, schema) that a bare table name means on this connection: the current
        database (MySQL/MariaDB, whose ODBC calls a database a catalog; SQL Server) and the
        current schema (PostgreSQL, SQL Server). A server may hold several company
        databases ("Comatic DB 1", "Comatic DB 2"): a name is looked up in this one only.
        """
        if self._scope is None:
            sql = {
                Dialect.MYSQL: "SELECT DATABASE() AS cat, NULL AS sch",
                Dialect.POSTGRESQL: "SELECT NULL AS cat, current_schema() AS sch",
                Dialect.MSSQL: "SELECT DB_NAME() AS cat, SCHEMA_NAME() AS sch",
            }.get(self.dialect)
            row = self.one(sql) if sql else None
            if sql:
                self.rollback()  # end the read transaction (its locks) at once
            cat = row["cat"] if row else None
            sch = row["sch"] if row else None
            self._scope = (str(cat) if cat else None, str(sch) if sch else None)
        return self._scope

    def _lookup(self, table: str) -> tuple[dict[str, str], str, str | None, str | None]:
        """SQLTables/SQLColumns arguments for ``table`` (``schema.table`` or bare), its bare
        name, and the catalog and schema a found row must have exactly (None: any)."""
        qualifier, _, name = table.rpartition(".")
        catalog, schema = self.scope()
        if qualifier:  # exactly the one named: a database on MySQL, else a schema
            if self.dialect is Dialect.MYSQL:
                catalog, schema = qualifier, None
            else:
                schema = qualifier
        args = {"table": name}
        if catalog is not None:
            args["catalog"] = catalog
        if schema is not None:
            args["schema"] = schema
        return args, name, catalog, schema

    def tables(self) -> list[str]:
        """Names of the tables and views of the connection's database (other schemas'
        qualified): what a bare name in the mapping can mean."""
        if isinstance(self.conn, sqlite3.Connection):
            rows = self.stream(
                "SELECT name FROM sqlite_master WHERE type IN ('table','view') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
            return [r["name"] for r in rows]
        catalog, schema = self.scope()
        cursor = self.conn.cursor()
        try:
            names = {
                row.table_name
                if schema is None or (row.table_schem or "") == schema
                else f"{row.table_schem}.{row.table_name}"
                for row in cursor.tables(**({"catalog": catalog} if catalog else {}))
                if (row.table_type or "").upper() in {"TABLE", "VIEW"}
                and (catalog is None or (row.table_cat or "") == catalog)
            }
        except Exception as exc:
            raise self._error(exc, "SQLTables") from exc
        finally:
            cursor.close()
        return sorted(names, key=str.lower)

    def has_table(self, table: str) -> bool:
        """Whether the table exists: ``schema.table`` exactly there, a bare name in the
        connection's current database and schema (never a table of the same name in
        another database of the server, :meth:`scope`)."""
        if isinstance(self.conn, sqlite3.Connection):
            name = table.rpartition(".")[2]
            row = self.one(
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' "
                "AND lower(name) = lower(?)",
                [name],
            )
            return bool(row and int(row["n"]))
        args, name, catalog, schema = self._lookup(table)
        cursor = self.conn.cursor()
        try:
            # SQLTables: the driver's catalog, right for every dialect (a pattern: '_' is a
            # wildcard there, so the exact names are compared below)
            rows = list(cursor.tables(**args))
        except Exception as exc:
            raise self._error(exc, "SQLTables") from exc
        finally:
            cursor.close()
        return any(
            (row.table_name or "").lower() == name.lower()
            and (row.table_type or "").upper() == "TABLE"
            and (catalog is None or (row.table_cat or "").lower() == catalog.lower())
            and (schema is None or (row.table_schem or "").lower() == schema.lower())
            for row in rows
        )

    def columns(self, table: str) -> list[tuple[str, str]]:
        """(name, type) of each column of ``table`` (found as :meth:`has_table` finds it)."""
        if isinstance(self.conn, sqlite3.Connection):
            literal = self.param_literal(table)
            rows = self.stream(f"SELECT name, type FROM pragma_table_info({literal})")
            return [(r["name"], r["type"]) for r in rows]
        args, name, catalog, schema = self._lookup(table)
        cursor = self.conn.cursor()
        try:
            found = [
                (row.column_name, row.type_name)
                for row in cursor.columns(**args)
                if (row.table_name or "").lower() == name.lower()
                and (catalog is None or (row.table_cat or "").lower() == catalog.lower())
                and (schema is None or (row.table_schem or "").lower() == schema.lower())
            ]
        except Exception as exc:
            raise self._error(exc, "SQLColumns") from exc
        finally:
            cursor.close()
        return found

    @staticmethod
    def param_literal(text: str) -> str:
        """A SQL string literal of a validated identifier (for pragma functions)."""
        return "'" + text.replace("'", "''") + "'"


# --- connecting ---------------------------------------------------------------------------


def _pyodbc() -> Any:
    """Import pyodbc only when an ODBC connection is made: it needs the system's libodbc."""
    try:
        import pyodbc
    except ImportError as exc:
        raise ErpError(
            f"ODBC is not available ({exc}). Install the ODBC driver manager "
            "(Debian/Ubuntu: 'apt-get install unixodbc'; Windows has it built in), "
            "or use erp.sqlite for an embedded database."
        ) from exc
    return pyodbc


def _lenient_text(raw: bytes) -> str:
    """SQLite keeps any bytes in a text column: bytes that are not UTF-8 are kept as lone
    surrogates instead of failing the whole query, so that ``erp.to_text`` makes that one
    row a failure naming its column (an old ERP holds such rows)."""
    return raw.decode("utf-8", "surrogateescape")


def connect_sqlite(
    path: Path, fetch_size: int = 1000, create: bool = False, role: str = ERP_ROLE
) -> Database:
    """Open an SQLite database file (the embedded demo ERP or a file ledger)."""
    if not create and not path.exists():
        raise ErpError(
            f"SQLite database {path} does not exist: check erp.sqlite in the settings, "
            "or make the demo with 'proit-notify demo'"
        )
    try:
        conn = sqlite3.connect(str(path), timeout=30, isolation_level="DEFERRED")
        conn.execute("SELECT 1").fetchall()
    except sqlite3.Error as exc:
        raise ErpError(f"cannot open SQLite database {path}: {exc}") from exc
    if role == ERP_ROLE:
        conn.text_factory = _lenient_text
    return Database(conn, Dialect.SQLITE, f"sqlite {path}", fetch_size, role)


def connect_odbc(
    conn_str: str,
    login_timeout: int = 15,
    query_timeout: int = 0,
    fetch_size: int = 1000,
    tz: tzinfo | None = None,
    role: str = ERP_ROLE,
) -> Database:
    """Connect through pyodbc; errors name the driver and host, never the password."""
    pyodbc = _pyodbc()
    target = odbc_target(conn_str)
    try:
        conn = pyodbc.connect(conn_str, timeout=login_timeout, autocommit=False)
    except pyodbc.Error as exc:
        state = exc.args[0] if exc.args else ""
        detail = redact(str(exc.args[1] if len(exc.args) > 1 else exc))
        if state == "28000":
            raise ErpError(
                f"the ERP database ({target}) refused the login: {detail}. Check UID and PWD "
                "in erp.odbc (with Trusted_Connection=yes: the Windows account the task runs "
                "as needs a login on the server)"
            ) from exc
        if _database_missing(detail):
            raise ErpError(
                f"the ERP database server ({target}) answered, but has no database of the "
                f"name in erp.odbc (or this login may not open it): {detail}. Check "
                "DATABASE= in erp.odbc"
            ) from exc
        if state in {"08001", "HYT00", "08S01"}:
            raise ErpError(
                f"cannot reach the ERP database ({target}): {detail}. Check SERVER and the "
                "port in erp.odbc, that the server runs and that no firewall blocks it"
            ) from exc
        if _driver_missing(state, detail):
            installed = ", ".join(pyodbc.drivers()) or "none"
            raise ErpError(
                f"ODBC {target}: driver not found (installed ODBC drivers: {installed}). "
                "Install the driver (Debian: odbc-postgresql, odbc-mariadb, libsqliteodbc; "
                "SQL Server: Microsoft ODBC Driver 18) or fix DRIVER={...} in erp.odbc"
            ) from exc
        raise ErpError(
            f"cannot connect to the ERP database ({target}): {detail}. "
            "Check erp.odbc in the settings, that the server runs and accepts this login."
        ) from exc
    dbms = str(conn.getinfo(pyodbc.SQL_DBMS_NAME))
    dialect = Dialect.from_dbms_name(dbms)
    if query_timeout:
        try:
            conn.timeout = query_timeout
        except pyodbc.Error:
            # psqlODBC refuses the connection attribute: let the server enforce it instead
            if dialect is Dialect.POSTGRESQL:
                conn.cursor().execute(f"SET statement_timeout = {int(query_timeout) * 1000}")
                conn.commit()
    if dialect is Dialect.MSSQL:
        # rowcount must count: a conditional UPDATE's 0 means "someone else took it", and
        # under a server default of SET NOCOUNT ON every count would be -1
        cursor = conn.cursor()
        cursor.execute("SET NOCOUNT OFF")
        cursor.close()
        conn.add_output_converter(
            SQL_SS_TIMESTAMPOFFSET, functools.partial(datetimeoffset, tz=tz)
        )
    if dialect is Dialect.MYSQL:
        # MariaDB/MySQL ODBC hands out UTF-8 bytes for CHAR data: decode them as such
        conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
        conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
        conn.setencoding(encoding="utf-8")
    return Database(conn, dialect, f"{dbms} ({target})", fetch_size, role)


#: SQLSTATEs of "no such table" / "no such column": ODBC 3 (SQL Server, MariaDB, generic)
#: and PostgreSQL's own, which psqlODBC passes on
_MISSING_STATES = frozenset({"42S02", "42S22", "42P01", "42703"})
_MISSING_TEXTS = (
    "no such table",  # SQLite
    "no such column",
    "does not exist",  # PostgreSQL: relation "x" / column "x" does not exist
    "doesn't exist",  # MariaDB: Table 'test.x' doesn't exist
    "unknown column",  # MariaDB
    "invalid object name",  # SQL Server
    "invalid column name",
)


def is_missing_object(exc: BaseException) -> bool:
    """Whether a driver error says that a table or column does not exist."""
    state = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    if state in _MISSING_STATES:
        return True
    text = str(exc).lower()
    return any(t in text for t in _MISSING_TEXTS)


def _driver_missing(state: str, detail: str) -> bool:
    """Whether a failed ODBC connect means the driver (not the server) was not found.

    Not a bare "not found": the Microsoft driver says "Server is not found or not
    accessible" for an unreachable server, which is a network problem, not a driver one.
    """
    text = detail.lower()
    return state == "IM002" or "can't open lib" in text or "data source name not found" in text


def connect(settings: ErpSettings, tz: tzinfo | None = None, role: str = ERP_ROLE) -> Database:
    """Open the ERP database the settings name (``tz``: ``service.timezone``; ``role``:
    what the connection is for, named in its errors)."""
    if settings.sqlite is not None:
        return connect_sqlite(settings.sqlite, settings.fetch_size, role=role)
    assert settings.odbc is not None  # the settings model guarantees one of the two
    return connect_odbc(
        settings.odbc,
        settings.login_timeout,
        settings.query_timeout,
        settings.fetch_size,
        tz,
        role,
    )
