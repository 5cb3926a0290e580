"""ERP test backends: the same renamed (German) ERP schema on four databases.

Fixtures (defined in ``tests/conftest.py``):

``erp_backend``
    Parametrized over ``sqlite`` (Python's sqlite3, ``erp.sqlite``), ``sqlite-odbc`` (an
    SQLite file through ``DRIVER={SQLite3}``), ``postgresql`` and ``mariadb`` (the local
    servers through ODBC, database ``test``). Every test starts with empty tables. The
    schema is the ERP's own, not the logical one: tables ``Kunden``, ``Kontakte``,
    ``Auftraege``, ``Auftragspositionen``, ``Lieferscheine``, ``Lieferschein Positionen``,
    ``Rechnungen``; German columns (``KdNr``, ``Firma``, ``EMail``, ``Natel`` ...); info-type
    codes ``E``/``S``/``ES``/``K``; ``is_prepayment`` is ``{ sql = "CASE WHEN Zahlungsart =
    'VK' THEN 1 ELSE 0 END" }``. Test data is written in LOGICAL names::

        def test_something(erp_backend, write_config):
            cid = erp_backend.insert("customers", name="Müller AG", email="m@example.ch",
                                     info_type="email_sms", phone="+41 79 123 45 67")
            oid = erp_backend.insert("orders", number="A-1", customer_id=cid,
                                     order_date=date(2024, 5, 2), review_mail=None)
            erp_backend.insert("invoices", order_id=oid, customer_id=cid, amount=Decimal("99.50"),
                               open_amount=Decimal("99.50"), is_prepayment=True, cancelled=0)
            erp_backend.update("orders", oid, delivery_date=date(2024, 6, 1))
            config = write_config(review={"delay_days": 3})
            # ... run the job / the CLI with --config config, assert on what went out

    ``insert(table, **fields)`` returns the new row's id (assigned 1, 2, ... per table when
    not given; ``None`` for line tables). ``info_type`` takes ``email``/``sms``/``email_sms``/
    ``none`` (other values, e.g. ``""`` or ``"X"``, are stored as given), ``is_prepayment``
    takes a bool, ``phone`` (customers) fills the column named by ``sms.phone_field``
    (``Natel``). Dates and datetimes are Python objects. ``insert_many(table, rows)`` writes
    many rows in one transaction. ``update(table, id, **fields)`` changes a row.

    ``erp_toml()`` is the ``[erp]`` table (connection, tables, columns, info types) as a dict;
    ``erp_settings()`` the validated :class:`ErpSettings`; ``database()`` a connected
    :class:`proit_notify.db.Database`; ``erp()`` an :class:`proit_notify.erp.Erp` with the
    phone field. Connections opened through these are closed after the test. On
    ``sqlite-odbc`` an ODBC connection keeps its read transaction (and the file's read
    lock) until commit/rollback: write the test data first, or end it (``db.rollback()``).
    ``backend.name`` is the parameter id, ``backend.phone_field`` is ``"Natel"``.

    Run a test on some backends only::

        @pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)

    Server backends skip when their server is not reachable, unless the environment has
    ``PROIT_NOTIFY_REQUIRE_SERVERS=1`` (CI): then they fail. Tests on one server backend
    are serialized across processes by a file lock, so parallel runs by several developers
    do not empty each other's tables.

``write_config(**sections) -> Path``
    Writes a complete, valid settings file ``tmp_path/proit-notify.toml`` for the backend:
    ``[erp]`` from ``erp_toml()``, ``sms.phone_field = "Natel"``, an email account
    ``default`` with ``transport = "file"`` writing into ``tmp_path/outbox``, the ledger at
    ``tmp_path/ledger.sqlite``. Each keyword is a section merged deeply over these defaults
    (``email={"accounts": {"default": {"transport": "smtp", "host": "127.0.0.1", "port": p,
    "security": "none"}}}``); a value of ``None`` removes that key (``directory=None``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
from filelock import FileLock, Timeout

from proit_notify.db import Database, Dialect, connect, connect_odbc, connect_sqlite
from proit_notify.erp import Erp
from proit_notify.errors import ErpError, MissingObjectError
from proit_notify.logical import FIELDS, Kind, column_type, create_table
from proit_notify.settings import ErpSettings

REQUIRE_SERVERS_ENV = "PROIT_NOTIFY_REQUIRE_SERVERS"
BACKENDS = ("sqlite", "sqlite-odbc", "postgresql", "mariadb")

POSTGRESQL_ODBC = (
    "DRIVER={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;"
    "BoolsAsChar=0;UseDeclareFetch=1;Fetch=10000"
)
MARIADB_ODBC = "DRIVER={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=test;Uid=root;Pwd="

PHONE_FIELD = "Natel"
PREPAYMENT_SQL = "CASE WHEN Zahlungsart = 'VK' THEN 1 ELSE 0 END"
#: the objection to advertising as a code column: J(a) = objected
NO_MARKETING_SQL = "CASE WHEN Werbesperre = 'J' THEN 1 ELSE 0 END"
INFO_TYPE_CODES = {"email": "E", "sms": "S", "email_sms": "ES", "none": "K"}

TABLES = {
    "customers": "Kunden",
    "contacts": "Kontakte",
    "orders": "Auftraege",
    "order_lines": "Auftragspositionen",
    "delivery_notes": "Lieferscheine",
    "delivery_note_lines": "Lieferschein Positionen",
    "invoices": "Rechnungen",
}

# (logical field, ERP column): the columns' types come from the logical model
# (proit_notify.logical.FIELDS), like the demo's
_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "customers": [
        ("id", "KdNr"),
        ("name", "Firma"),
        ("email", "EMail"),
        ("country", "Land"),
        ("language", "Sprache"),
        ("info_type", "InfoArt"),
        ("phone", PHONE_FIELD),
        ("no_marketing", "Werbesperre"),
    ],
    "contacts": [
        ("id", "KontaktNr"),
        ("customer_id", "KdNr"),
        ("name", "Name"),
        ("email", "EMail"),
        ("mobile", "Natel"),
    ],
    "orders": [
        ("id", "AuftragId"),
        ("number", "AuftragNr"),
        ("customer_id", "KdNr"),
        ("contact_id", "KontaktNr"),
        ("shop", "Shop"),
        ("order_date", "Auftragsdatum"),
        ("review_mail", "Bewertungsmail"),
        ("auto_processed_at", "Autom_verarbeitet_am"),
        ("delivery_date", "Liefertermin"),
    ],
    "order_lines": [
        ("order_id", "AuftragId"),
        ("line_no", "PosNr"),
        ("article_no", "Artikel Nr"),
        ("description", "Bezeichnung"),
        ("quantity", "Menge"),
        ("delivered_quantity", "Geliefert"),
        ("unit", "Einheit"),
    ],
    "delivery_notes": [
        ("id", "LsId"),
        ("number", "LsNr"),
        ("order_id", "AuftragId"),
        ("printed_at", "Gedruckt_am"),
        ("tracking_number", "Sendungsnummern"),
        ("carrier", "Versandart"),
    ],
    "delivery_note_lines": [
        ("delivery_note_id", "LsId"),
        ("line_no", "PosNr"),
        ("article_no", "Artikel Nr"),
        ("description", "Bezeichnung"),
        ("quantity", "Menge"),
        ("unit", "Einheit"),
    ],
    "invoices": [
        ("id", "RechnungId"),
        ("number", "RechnungNr"),
        ("order_id", "AuftragId"),
        ("customer_id", "KdNr"),
        ("contact_id", "KontaktNr"),
        ("invoice_date", "Rechnungsdatum"),
        ("amount", "Betrag"),
        ("open_amount", "Offen"),
        ("currency", "Waehrung"),
        ("is_prepayment", "Zahlungsart"),
        ("cancelled", "Storniert"),
        ("payment_reference", "QR_Referenz"),
    ],
}

#: where the German ERP differs from the logical model's types: a code where the model has a
#: 0/1 flag, in a column written without quotes in its DDL (so each database folds its case
#: as usual); and the phone of ``sms.phone_field``, which is not a logical field
_OWN_KINDS: dict[tuple[str, str], Kind] = {
    ("customers", "no_marketing"): "code",
    ("invoices", "is_prepayment"): "code",
    ("customers", "phone"): "text",
}
_UNQUOTED = {("customers", "no_marketing"), ("invoices", "is_prepayment")}

#: tables other modules may create in the ERP database (the ledger with ``ledger.erp``):
#: emptied before each test too, when they exist
EXTRA_TABLES = (
    "proit_notify_ledger",
    "proit_notify_ledger_runs",
    "proit_notify_ledger_optout",
    "proit_notify_ledger_bounces",
)
_FINGERPRINT_TABLE = "proit_notify_test_schema"


def require_servers() -> bool:
    return os.environ.get(REQUIRE_SERVERS_ENV, "") not in {"", "0"}


def unavailable(reason: str) -> NoReturn:
    """Skip (or, with PROIT_NOTIFY_REQUIRE_SERVERS=1, fail) a test that lacks a server/driver."""
    if require_servers():
        pytest.fail(f"{reason} ({REQUIRE_SERVERS_ENV}=1 requires it)", pytrace=False)
    pytest.skip(reason)


def erp_columns() -> dict[str, dict[str, Any]]:
    """The ``[erp.columns]`` mapping of the German schema (phone is ``sms.phone_field``)."""
    columns: dict[str, dict[str, Any]] = {}
    for table, cols in _COLUMNS.items():
        mapped: dict[str, Any] = {}
        for logical, column in cols:
            if logical == "phone":
                continue
            sql = {"is_prepayment": PREPAYMENT_SQL, "no_marketing": NO_MARKETING_SQL}.get(logical)
            mapped[logical] = {"sql": sql} if sql else column
        columns[table] = mapped
    return columns


def erp_info_types() -> dict[str, list[str]]:
    return {info_type: [code] for info_type, code in INFO_TYPE_CODES.items()}


def _ddl(dialect: Dialect) -> list[str]:
    statements = []
    for table, cols in _COLUMNS.items():
        typed = []
        for logical, _column in cols:
            kind = _OWN_KINDS.get((table, logical)) or FIELDS[table][logical]
            typed.append((_column_sql(dialect, table, logical), column_type(kind, dialect)))
        statements.append(create_table(dialect, TABLES[table], typed))
    return statements


def _column_sql(dialect: Dialect, table: str, logical: str) -> str:
    """The ERP column of a logical field as SQL names it, for writing test data."""
    for name, column in _COLUMNS[table]:
        if name == logical:
            return column if (table, logical) in _UNQUOTED else dialect.quote(column)
    known = ", ".join(n for n, _ in _COLUMNS[table])
    raise KeyError(f"{table}.{logical}: not a field of the test schema (known: {known})")


def _to_erp_value(table: str, logical: str, value: object) -> object:
    """A logical value as the German ERP stores it."""
    if logical == "info_type" and isinstance(value, str):
        return INFO_TYPE_CODES.get(value, value)
    if logical == "is_prepayment" and value is not None:
        return "VK" if value else "RE"
    if logical == "no_marketing" and value is not None:
        return "J" if value else "N"
    if isinstance(value, bool):
        return int(value)  # the ERP's flags are 1/0 integers
    return value


@dataclass
class ErpBackend:
    """One database loaded with the German test schema; see the module docstring."""

    name: str
    dialect: Dialect
    admin: Database
    connection: dict[str, Any]
    phone_field: str = PHONE_FIELD
    _next_id: dict[str, int] = field(default_factory=dict)
    _opened: list[Database] = field(default_factory=list)

    # --- configuration -----------------------------------------------------------------
    def erp_toml(self) -> dict[str, Any]:
        """The ``[erp]`` section for this backend (a fresh dict: change it freely)."""
        return {
            **self.connection,
            "tables": dict(TABLES),
            "columns": erp_columns(),
            "info_types": erp_info_types(),
        }

    def erp_settings(self, **overrides: Any) -> ErpSettings:
        return ErpSettings.model_validate({**self.erp_toml(), **overrides})

    def database(self, **overrides: Any) -> Database:
        """A new connection as the tool makes it (closed after the test)."""
        db = connect(self.erp_settings(**overrides))
        self._opened.append(db)
        return db

    def erp(self, **overrides: Any) -> Erp:
        settings = self.erp_settings(**overrides)
        db = connect(settings)
        self._opened.append(db)
        return Erp(db, settings, self.phone_field)

    # --- test data -----------------------------------------------------------------------
    def insert(self, table: str, **fields: Any) -> int | None:
        """Insert one row given in logical names; returns its id (None for line tables)."""
        row_id = self._insert(table, fields)
        self.admin.commit()
        return row_id

    def insert_many(self, table: str, rows: Iterable[dict[str, Any]]) -> list[int | None]:
        """Insert many rows in one transaction."""
        ids = [self._insert(table, dict(row)) for row in rows]
        self.admin.commit()
        return ids

    def update(self, table: str, id: int, **fields: Any) -> None:
        """Change fields (logical names) of the row with this id."""
        sets = []
        values = []
        for logical, value in fields.items():
            column = _column_sql(self.dialect, table, logical)
            sets.append(f"{column} = ?")
            values.append(_to_erp_value(table, logical, value))
        id_column = _column_sql(self.dialect, table, "id")
        count = self.admin.execute(
            f"UPDATE {self.dialect.quote(TABLES[table])} SET {', '.join(sets)} "
            f"WHERE {id_column} = ?",
            [*values, id],
        )
        self.admin.commit()
        if count != 1:
            raise KeyError(f"{table}: no row with id {id}")

    def _insert(self, table: str, fields: dict[str, Any]) -> int | None:
        has_id = any(name == "id" for name, _ in _COLUMNS[table])
        row_id: int | None = None
        if has_id:
            row_id = int(fields.get("id") or self._next_id.get(table, 1))
            fields["id"] = row_id
            self._next_id[table] = max(self._next_id.get(table, 1), row_id + 1)
        columns = []
        values = []
        for logical, value in fields.items():
            columns.append(_column_sql(self.dialect, table, logical))
            values.append(_to_erp_value(table, logical, value))
        marks = ", ".join("?" for _ in columns)
        self.admin.execute(
            f"INSERT INTO {self.dialect.quote(TABLES[table])} ({', '.join(columns)}) "
            f"VALUES ({marks})",
            values,
        )
        return row_id

    # --- lifecycle ---------------------------------------------------------------------------
    def empty_tables(self) -> None:
        """Delete every row (DELETE, not DDL: a connection a test left open cannot block it)."""
        for table in TABLES.values():
            self.admin.execute(f"DELETE FROM {self.dialect.quote(table)}")
        self.admin.commit()
        for extra in EXTRA_TABLES:
            try:
                self.admin.execute(f"DELETE FROM {self.dialect.quote(extra)}")
                self.admin.commit()
            except (ErpError, MissingObjectError):
                self.admin.rollback()  # not there: nothing to empty
        self._next_id.clear()

    def close_opened(self) -> None:
        for db in self._opened:
            db.close()
        self._opened.clear()


def create_schema(db: Database) -> None:
    """Create the German schema unless the database already has this very version of it."""
    dialect = db.dialect
    statements = _ddl(dialect)
    fingerprint = hashlib.sha256("\n".join(statements).encode()).hexdigest()[:32]
    fp_table = dialect.quote(_FINGERPRINT_TABLE)
    try:
        row = db.one(f"SELECT fingerprint FROM {fp_table}")
        db.commit()
        if row is not None and row["fingerprint"] == fingerprint:
            return
    except (ErpError, MissingObjectError):
        db.rollback()
    for table in (*TABLES.values(), _FINGERPRINT_TABLE):
        db.execute(f"DROP TABLE IF EXISTS {dialect.quote(table)}")
    for statement in statements:
        db.execute(statement)
    db.execute(f"CREATE TABLE {fp_table} (fingerprint VARCHAR(64))")
    db.execute(f"INSERT INTO {fp_table} (fingerprint) VALUES (?)", [fingerprint])
    db.commit()


def _server_lock(name: str) -> FileLock:
    return FileLock(str(Path(tempfile.gettempdir()) / f"proit-notify-tests-{name}.lock"))


class ServerPool:
    """One admin connection per server backend and test session (the schema is made once)."""

    def __init__(self) -> None:
        self._admins: dict[str, Database] = {}
        self._down: dict[str, str] = {}

    def admin(self, name: str) -> Database:
        if name in self._down:
            unavailable(self._down[name])
        if name not in self._admins:
            conn_str = POSTGRESQL_ODBC if name == "postgresql" else MARIADB_ODBC
            try:
                db = connect_odbc(conn_str, login_timeout=5)
            except ErpError as exc:
                self._down[name] = f"{name} test server not reachable: {exc}"
                unavailable(self._down[name])
            # a leftover lock from a crashed run must not hang the suite
            if db.dialect is Dialect.POSTGRESQL:
                db.execute("SET lock_timeout = '20s'")
            else:
                db.execute("SET SESSION lock_wait_timeout = 20")
                db.execute("SET SESSION innodb_lock_wait_timeout = 20")
            db.commit()
            with _server_lock(name):
                create_schema(db)
            self._admins[name] = db
        return self._admins[name]

    def close(self) -> None:
        for db in self._admins.values():
            db.close()
        self._admins.clear()


@contextlib.contextmanager
def open_backend(name: str, tmp_path: Path, pool: ServerPool) -> Iterator[ErpBackend]:
    """The backend ``name`` with empty tables, for one test."""
    if name in {"sqlite", "sqlite-odbc"}:
        path = tmp_path / "erp-test.sqlite"
        if name == "sqlite":
            connection: dict[str, Any] = {"sqlite": str(path)}
        else:
            require_odbc_driver("SQLite3")
            connection = {"odbc": f"DRIVER={{SQLite3}};Database={path}", "login_timeout": 5}
        admin = connect_sqlite(path, create=True)
        create_schema(admin)
        backend = ErpBackend(name, Dialect.SQLITE, admin, connection)
        try:
            yield backend
        finally:
            backend.close_opened()
            admin.close()
        return
    if name not in {"postgresql", "mariadb"}:
        raise ValueError(f"unknown ERP backend {name!r} (known: {', '.join(BACKENDS)})")
    admin = pool.admin(name)
    conn_str = POSTGRESQL_ODBC if name == "postgresql" else MARIADB_ODBC
    lock = _server_lock(name)
    try:
        lock.acquire(timeout=300)
    except Timeout:
        pytest.fail(f"{name}: another test run held {lock.lock_file} for 5 minutes")
    try:
        backend = ErpBackend(
            name, admin.dialect, admin, {"odbc": conn_str, "login_timeout": 5}
        )
        backend.empty_tables()
        try:
            yield backend
        finally:
            backend.close_opened()
            admin.rollback()
    finally:
        lock.release()


def require_odbc_driver(driver: str) -> None:
    """Skip (or fail, when servers are required) unless pyodbc and this driver are installed."""
    try:
        import pyodbc
    except ImportError as exc:
        unavailable(f"pyodbc is not importable: {exc}")
    if driver not in pyodbc.drivers():
        unavailable(f"ODBC driver {driver!r} is not installed (Debian: libsqliteodbc)")

