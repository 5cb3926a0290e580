"""ERP access (SPEC §3) on all four backends: the German schema read through the mapping."""

from __future__ import annotations

import socket
import sqlite3
import sys
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from erp_backends import TABLES, ErpBackend, require_odbc_driver

from proit_notify.db import Database, Dialect, connect, connect_odbc
from proit_notify.erp import Erp, to_date, to_datetime, to_decimal
from proit_notify.errors import ErpError
from proit_notify.settings import ErpSettings

NAMES = ["Müller & Söhne AG", "Bäckerei Zürich", "Café Straße GmbH", "Öko Überbau"]


def customers(backend: ErpBackend) -> list[int | None]:
    return [
        backend.insert(
            "customers",
            name=name,
            email=f"kunde{i}@example.ch",
            country="CH",
            language="de",
            info_type=info_type,
            phone=f"+41 79 000 00 0{i}",
        )
        for i, (name, info_type) in enumerate(
            zip(NAMES, ["email", "sms", "email_sms", "none"], strict=True)
        )
    ]


def test_query_over_the_renamed_schema_keeps_umlauts(erp_backend: ErpBackend) -> None:
    ids = customers(erp_backend)
    erp_backend.insert("orders", number="A-100", customer_id=ids[0], order_date=date(2024, 5, 2))
    erp_backend.insert("orders", number="A-101", customer_id=ids[2], order_date=date(2024, 5, 3))
    erp_backend.insert("orders", number="A-102", customer_id=ids[2], order_date=date(2024, 5, 4))
    erp = erp_backend.erp()

    rows = list(
        erp.query(
            "SELECT o.number, c.name, c.email, c.phone, c.info_type FROM {orders} o "
            "JOIN {customers} c ON c.id = o.customer_id ORDER BY o.number"
        )
    )

    assert [(r["number"], r["name"]) for r in rows] == [
        ("A-100", "Müller & Söhne AG"),
        ("A-101", "Café Straße GmbH"),
        ("A-102", "Café Straße GmbH"),
    ]
    assert rows[0]["phone"] == "+41 79 000 00 00"
    assert [erp.settings.info_type_of(r["info_type"], "none") for r in rows] == [
        "email",
        "email_sms",
        "email_sms",
    ]
    names = [r["name"] for r in erp.query("SELECT name FROM {customers} c ORDER BY id")]
    assert names == NAMES


def test_bound_umlaut_parameter_matches(erp_backend: ErpBackend) -> None:
    customers(erp_backend)
    rows = list(
        erp_backend.erp().query("SELECT c.id FROM {customers} c WHERE c.name = ?", ["Öko Überbau"])
    )
    assert len(rows) == 1


def test_dates_timestamps_and_decimals_come_back_usable(erp_backend: ErpBackend) -> None:
    (cid, *_) = customers(erp_backend)
    oid = erp_backend.insert(
        "orders",
        number="A-1",
        customer_id=cid,
        order_date=date(2024, 2, 29),
        auto_processed_at=datetime(2024, 3, 1, 23, 59, 58),
        delivery_date=date(2024, 12, 31),
        review_mail=None,
    )
    erp_backend.insert(
        "invoices",
        number="R-1",
        order_id=oid,
        customer_id=cid,
        invoice_date=date(2024, 3, 1),
        amount=Decimal("1234.55"),
        open_amount=Decimal("0.05"),
        currency="CHF",
        is_prepayment=True,
        cancelled=False,
    )
    printed = datetime(2024, 3, 2, 8, 0, 1)
    erp_backend.insert("delivery_notes", number="LS-1", order_id=oid, printed_at=printed)

    row = next(
        erp_backend.erp().query(
            "SELECT o.order_date, o.auto_processed_at, o.delivery_date, o.review_mail, "
            "i.amount, i.open_amount, i.invoice_date, d.printed_at "
            "FROM {orders} o JOIN {invoices} i ON i.order_id = o.id "
            "JOIN {delivery_notes} d ON d.order_id = o.id"
        )
    )

    assert to_date(row["order_date"]) == date(2024, 2, 29)
    assert to_date(row["delivery_date"]) == date(2024, 12, 31)
    assert to_date(row["invoice_date"]) == date(2024, 3, 1)
    assert to_datetime(row["auto_processed_at"]) == datetime(2024, 3, 1, 23, 59, 58)
    assert to_datetime(row["printed_at"]) == datetime(2024, 3, 2, 8, 0, 1)
    assert to_decimal(row["amount"]) == Decimal("1234.55")
    assert to_decimal(row["open_amount"]) == Decimal("0.05")
    assert row["review_mail"] is None


def test_date_and_timestamp_parameters_filter_in_sql(erp_backend: ErpBackend) -> None:
    (cid, *_) = customers(erp_backend)
    for day in (1, 10, 20):
        oid = erp_backend.insert(
            "orders", number=f"A-{day}", customer_id=cid, delivery_date=date(2024, 6, day)
        )
        erp_backend.insert(
            "delivery_notes",
            number=f"LS-{day}",
            order_id=oid,
            printed_at=datetime(2024, 6, day, 12, 0, 0),
        )
    erp = erp_backend.erp()

    by_date = erp.query(
        "SELECT o.number FROM {orders} o WHERE o.delivery_date >= ? ORDER BY o.number",
        [date(2024, 6, 10)],
    )
    assert [r["number"] for r in by_date] == ["A-10", "A-20"]
    by_time = erp.query(
        "SELECT d.number FROM {delivery_notes} d WHERE d.printed_at > ? ORDER BY d.number",
        [datetime(2024, 6, 10, 12, 0, 0)],
    )
    assert [r["number"] for r in by_time] == ["LS-20"]


def test_values_are_bound_never_formatted_into_sql(erp_backend: ErpBackend) -> None:
    customers(erp_backend)
    erp_backend.insert("customers", name="O'Brien Ltd", email="ob@example.ie", country="IE")
    erp = erp_backend.erp()

    found = list(erp.query("SELECT c.name FROM {customers} c WHERE c.name = ?", ["O'Brien Ltd"]))
    assert found == [{"name": "O'Brien Ltd"}]
    # formatted into the SQL, this would match every row
    injected = list(
        erp.query("SELECT c.name FROM {customers} c WHERE c.name = ?", ["x' OR '1'='1"])
    )
    assert injected == []
    assert erp.db.one("SELECT COUNT(*) AS n FROM " + erp.mapping.source("customers") + " c") == {
        "n": 5
    }


def test_sql_expression_field_filters(erp_backend: ErpBackend) -> None:
    (cid, *_) = customers(erp_backend)
    oid = erp_backend.insert("orders", number="A-1", customer_id=cid)
    common: dict[str, Any] = {"order_id": oid, "customer_id": cid, "currency": "CHF"}
    erp_backend.insert("invoices", number="R-VK", amount=Decimal("10"), is_prepayment=True,
                       open_amount=Decimal("10"), cancelled=0, **common)
    erp_backend.insert("invoices", number="R-RE", amount=Decimal("20"), is_prepayment=False,
                       open_amount=Decimal("20"), cancelled=0, **common)
    erp_backend.insert("invoices", number="R-VK-storno", amount=Decimal("30"),
                       is_prepayment=True, open_amount=Decimal("30"), cancelled=1, **common)
    erp = erp_backend.erp()

    rows = list(
        erp.query(
            "SELECT i.number, i.is_prepayment FROM {invoices} i "
            "WHERE i.is_prepayment = 1 AND i.cancelled = 0 AND i.open_amount > ?",
            [Decimal("0")],
        )
    )
    assert [r["number"] for r in rows] == ["R-VK"]
    assert int(rows[0]["is_prepayment"]) == 1
    assert erp.check() == []


def test_check_finds_no_problem_in_the_correct_mapping(erp_backend: ErpBackend) -> None:
    assert erp_backend.erp().check() == []


def test_check_names_a_wrong_column_and_its_settings_key(erp_backend: ErpBackend) -> None:
    erp_toml = erp_backend.erp_toml()
    erp_toml["columns"]["customers"]["email"] = "Mail"
    erp_toml["columns"]["invoices"]["is_prepayment"] = {"sql": "CASE WHEN Zahlart = 1 THEN 1 END"}
    settings = ErpSettings.model_validate(erp_toml)
    db = connect(settings)
    try:
        erp = Erp(db, settings, "Telefon")
        problems = erp.check()
        text = "\n".join(problems)
        assert len(problems) == 3, problems
        assert "customers.email" in text
        assert "'Kunden'" in text
        assert "erp.columns.customers.email" in text
        assert "invoices.is_prepayment" in text
        assert "erp.columns.invoices.is_prepayment" in text
        assert "sms.phone_field" in text
        # the connection is still usable after the failed probes
        customers(erp_backend)
        assert list(erp.query("SELECT k.id FROM {contacts} k JOIN {orders} o ON o.id = k.id")) == []
        assert len(list(erp.db.stream("SELECT 1 AS one"))) == 1
    finally:
        db.close()


def test_check_names_a_wrong_table_and_its_settings_key(erp_backend: ErpBackend) -> None:
    erp = erp_backend.erp(tables={**TABLES, "orders": "Auftrag"})
    problems = erp.check()
    assert len(problems) == 1, problems
    assert "table orders -> 'Auftrag'" in problems[0]
    assert "erp.tables.orders" in problems[0]


class CountingCursor:
    """A real cursor that records the chunk sizes fetched."""

    def __init__(self, cursor: Any, fetches: list[tuple[int, int]]) -> None:
        self._cursor = cursor
        self._fetches = fetches

    def fetchmany(self, size: int) -> Any:
        rows = self._cursor.fetchmany(size)
        self._fetches.append((size, len(rows)))
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class CountingConnection:
    def __init__(self, db: Database) -> None:
        self._conn = db.conn
        self.fetches: list[tuple[int, int]] = []

    def cursor(self) -> CountingCursor:
        return CountingCursor(self._conn.cursor(), self.fetches)

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        self._conn.close()


def test_rows_are_streamed_in_chunks(erp_backend: ErpBackend) -> None:
    (cid, *_) = customers(erp_backend)
    erp_backend.insert_many(
        "orders",
        ({"number": f"A-{n:04d}", "customer_id": cid, "shop": "CH"} for n in range(250)),
    )
    real = erp_backend.database(fetch_size=7)
    counting = CountingConnection(real)
    erp = Erp(Database(counting, real.dialect, real.where, 7), erp_backend.erp_settings(), None)

    rows = erp.query("SELECT o.number FROM {orders} o WHERE o.shop = ? ORDER BY o.number", ["CH"])
    first = next(rows)
    assert first == {"number": "A-0000"}
    assert counting.fetches == [(7, 7)], "only the first chunk is read for the first row"
    rest = list(rows)

    assert [r["number"] for r in [first, *rest]] == [f"A-{n:04d}" for n in range(250)]
    assert all(size == 7 for size, _ in counting.fetches)
    assert len(counting.fetches) == 250 // 7 + 2  # 36 full chunks, one of 5 rows, one empty


def test_an_sqlite_connection_works_without_libodbc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyodbc", None)  # `import pyodbc` now fails
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    plain = Database(conn, Dialect.SQLITE, "memory")
    # wrapped, as a test or a tracing layer might: still no pyodbc needed to read
    wrapped = Database(CountingConnection(plain), Dialect.SQLITE, "memory")

    assert plain.insert_unique("INSERT INTO t (k) VALUES (?)", ["a"]) is True
    plain.commit()
    assert plain.insert_unique("INSERT INTO t (k) VALUES (?)", ["a"]) is False
    assert list(wrapped.stream("SELECT k FROM t")) == [{"k": "a"}]


def test_tables_and_columns_list_the_german_schema(erp_backend: ErpBackend) -> None:
    db = erp_backend.database()
    tables = db.tables()
    assert set(TABLES.values()) <= set(tables), tables
    assert "Lieferschein Positionen" in tables
    columns = dict(db.columns("Kunden"))
    assert {"KdNr", "Firma", "EMail", "Land", "Sprache", "InfoArt", "Natel"} <= set(columns)
    lines = [name for name, _type in db.columns("Lieferschein Positionen")]
    assert "Artikel Nr" in lines


# --- connection errors ---------------------------------------------------------------------


def test_unknown_odbc_driver_names_it_and_lists_the_installed_ones() -> None:
    require_odbc_driver("SQLite3")
    import pyodbc

    settings = ErpSettings.model_validate(
        {"odbc": "DRIVER={No Such Driver 42};SERVER=erp.example.ch;UID=sa;PWD=geheim"}
    )
    with pytest.raises(ErpError) as caught:
        connect(settings)
    message = str(caught.value)
    assert "No Such Driver 42" in message
    assert "installed ODBC drivers:" in message
    for installed in pyodbc.drivers():
        assert installed in message
    assert "geheim" not in message
    assert "Traceback" not in message
    # the driver's exception is kept as the cause (shown with -v, redacted: test_erp_errors)
    assert isinstance(caught.value.__cause__, pyodbc.Error)
    assert caught.value.exit_code == 4


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("driver", "extra"),
    [("PostgreSQL Unicode", "Database=test;Uid=postgres"), ("MariaDB Unicode", "Uid=root")],
)
def test_unreachable_server_names_host_and_port_quickly(driver: str, extra: str) -> None:
    require_odbc_driver(driver)
    port = free_port()
    conn_str = f"DRIVER={{{driver}}};Server=127.0.0.1;Port={port};{extra};PWD=geheim"
    started = time.monotonic()
    with pytest.raises(ErpError) as caught:
        connect_odbc(conn_str, login_timeout=3)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert driver in message
    assert "geheim" not in message
    assert "Traceback" not in message
