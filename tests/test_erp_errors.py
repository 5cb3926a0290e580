"""ERP errors: a wrong mapping is a configuration fault (exit 3) naming the fix; an
unreachable server is exit 4 and never "driver not found"; -v shows the cause, no secret."""

from __future__ import annotations

from typing import Any

import pytest
from cli_runner import Cli, cli
from erp_backends import require_odbc_driver
from scenario import shop
from smtp_server import free_port

from proit_notify.db import _driver_missing, connect_odbc, is_missing_object
from proit_notify.errors import ErpError
from proit_notify.settings import ErpSettings

__all__ = ["cli"]
AS_OF = "2026-11-27T08:00"


def test_a_mapped_table_the_erp_lacks_is_exit_3_with_the_fix(
    erp_backend: Any, write_config: Any, cli: Cli
) -> None:
    shop(erp_backend).delivery_note(shop(erp_backend).order(shop(erp_backend).customer()), None)
    config = write_config(erp={"tables": {"delivery_notes": "Lieferscheine_alt"}})

    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 3, run.stderr
    assert "Lieferscheine_alt" in run.stderr
    assert "[erp.tables]" in run.stderr
    assert "proit-notify schema TABLE" in run.stderr

    check = cli("-c", config, "check", "--no-network")
    assert check.exit_code == 3
    assert "set erp.tables.delivery_notes" in check.stderr


def test_a_mapped_column_the_erp_lacks_is_exit_3(
    erp_backend: Any, write_config: Any, cli: Cli
) -> None:
    columns = erp_backend.erp_toml()["columns"]
    columns["delivery_notes"]["printed_at"] = "Gedruckt_um"
    config = write_config(erp={"columns": columns})

    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 3, run.stderr
    assert "Gedruckt_um" in run.stderr
    assert "[erp.columns]" in run.stderr


def test_an_unreachable_server_is_exit_4_and_v_shows_the_cause_without_the_password(
    tmp_path: Any, cli: Cli
) -> None:
    require_odbc_driver("PostgreSQL Unicode")
    from tomli_w import dumps

    odbc = (
        f"DRIVER={{PostgreSQL Unicode}};SERVER=127.0.0.1;PORT={free_port()};DATABASE=test;"
        "UID=postgres;PWD={s3cret;pw}"
    )
    data = {
        "erp": {"odbc": odbc, "login_timeout": 2},
        "email": {"accounts": {"default": {
            "transport": "file", "directory": str(tmp_path / "outbox"), "from": "a@b.ch"}}},
        "ledger": {"sqlite": str(tmp_path / "ledger.sqlite")},
    }  # fmt: skip
    config = tmp_path / "proit-notify.toml"
    config.write_text(dumps(data), encoding="utf-8")
    config.chmod(0o600)

    plain = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    verbose = cli("-v", "-c", config, "shipping-confirmations", "--as-of", AS_OF)

    for result in (plain, verbose):
        assert result.exit_code == 4, result.stderr
        assert "driver not found" not in result.stderr
        assert "s3cret" not in result.stderr
    assert "caused by:" in verbose.stderr
    assert "pyodbc" in verbose.stderr  # the driver's own exception, for a bug report
    assert "caused by:" not in plain.stderr


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        (("42S02", "[42S02] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Invalid "
          "object name 'dbo.Auftrag'. (208) (SQLExecDirectW)"), True),
        (("42S22", "[42S22] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Invalid "
          "column name 'Gedruckt'. (207) (SQLExecDirectW)"), True),
        (("42P01", 'ERROR: relation "lieferscheine_alt" does not exist;'), True),
        (("HY000", "[SQLite]no such table: Lieferscheine_alt (1)"), True),
        (("08001", "[08001] [Microsoft][ODBC Driver 18 for SQL Server]TCP Provider: No such "
          "host is known. (11001)"), False),
        (("HYT00", "[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired"),
         False),
    ],
)  # fmt: skip
def test_missing_table_or_column_is_told_apart_from_other_errors(
    args: tuple[str, str], missing: bool
) -> None:
    assert is_missing_object(Exception(*args)) is missing


def test_an_unreachable_sql_server_is_not_a_missing_driver() -> None:
    unreachable = (
        "[08001] [Microsoft][ODBC Driver 18 for SQL Server]Named Pipes Provider: Could not "
        "open a connection to SQL Server [53]. ... A network-related or instance-specific "
        "error has occurred while establishing a connection to SQL Server. Server is not "
        "found or not accessible."
    )
    assert not _driver_missing("08001", unreachable)
    # what pyodbc gives on Linux (ODBC Driver 18) for a host nobody answers on: one message
    # per diagnostic record, the last one "Server is not found or not accessible"
    tcp = (
        "[08001] [Microsoft][ODBC Driver 18 for SQL Server]TCP Provider: Error code 0x2749 "
        "(10057) (SQLDriverConnect); [08001] [Microsoft][ODBC Driver 18 for SQL Server]Login "
        "timeout expired (0); [08001] [Microsoft][ODBC Driver 18 for SQL Server]A network-"
        "related or instance-specific error has occurred while establishing a connection to "
        "erp.example.ch. Server is not found or not accessible. Check if instance name is "
        "correct and if SQL Server is configured to allow remote connections. For more "
        "information see SQL Server Books Online. (10057)"
    )
    assert not _driver_missing("08001", tcp)
    assert not is_missing_object(Exception("08001", tcp))
    assert _driver_missing("IM002", "[IM002] Data source name not found and no default driver")
    assert _driver_missing("01000", "[01000] [unixODBC][Driver Manager]Can't open lib 'x'")


def test_an_sqlite_erp_that_cannot_be_opened_keeps_the_cause_shown_with_v(
    tmp_path: Any, cli: Cli
) -> None:
    from tomli_w import dumps

    erp = tmp_path / "erp.sqlite"
    erp.mkdir()  # exists, but sqlite3.connect cannot open it
    data = {
        "erp": {"sqlite": str(erp)},
        "email": {"accounts": {"default": {
            "transport": "file", "directory": str(tmp_path / "outbox"), "from": "a@b.ch"}}},
        "ledger": {"sqlite": str(tmp_path / "ledger.sqlite")},
    }  # fmt: skip
    config = tmp_path / "proit-notify.toml"
    config.write_text(dumps(data), encoding="utf-8")

    verbose = cli("-v", "-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert verbose.exit_code == 4, verbose.stderr
    assert f"cannot open SQLite database {erp}" in verbose.stderr
    assert "caused by:" in verbose.stderr
    assert "sqlite3.OperationalError" in verbose.stderr


def test_odbc_without_the_driver_manager_keeps_the_import_error_as_cause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyodbc", None)  # import pyodbc -> ImportError
    with pytest.raises(ErpError) as caught:
        connect_odbc("DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PWD=geheim")
    assert "ODBC is not available" in str(caught.value)
    assert isinstance(caught.value.__cause__, ImportError)


def test_a_refused_login_is_named_as_such_with_the_keys_to_fix() -> None:
    require_odbc_driver("MariaDB Unicode")
    conn = "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;UID=nosuchuser;PWD=wrong123"
    with pytest.raises(ErpError) as caught:
        connect_odbc(conn, login_timeout=5)
    text = str(caught.value)
    assert "refused the login" in text
    assert "UID and PWD" in text
    assert "wrong123" not in text


def test_datetimeoffset_values_become_local_times() -> None:
    import struct
    from zoneinfo import ZoneInfo

    from proit_notify.db import datetimeoffset

    # 2026-11-27 07:30:15.1234567 +00:00, as SQL Server's driver hands it over
    raw = struct.pack("<6hI2h", 2026, 11, 27, 7, 30, 15, 123456700, 0, 0)
    local = datetimeoffset(raw, ZoneInfo("Europe/Zurich"))
    assert local.isoformat() == "2026-11-27T08:30:15.123456"
    # an offset of -05:30 (negative hours and minutes)
    raw = struct.pack("<6hI2h", 2026, 7, 1, 12, 0, 0, 0, -5, -30)
    assert datetimeoffset(raw, ZoneInfo("Europe/Zurich")).isoformat() == "2026-07-01T19:30:00"


def test_long_text_is_bound_as_nvarchar_max_on_sql_server_only() -> None:
    import pyodbc

    from proit_notify.db import Database, Dialect

    class Cursor:
        sizes: list[object] | None = None
        rowcount = 1

        def setinputsizes(self, sizes: list[object]) -> None:
            Cursor.sizes = sizes

        def execute(self, sql: str, params: list[object]) -> None: ...

        def close(self) -> None: ...

    class Conn:
        def cursor(self) -> Cursor:
            return Cursor()

    mssql = Database(Conn(), Dialect.MSSQL, "test")  # type: ignore[arg-type]
    mssql.execute("UPDATE t SET a = ? WHERE b = ?", ["x" * 2001, "k"])
    assert Cursor.sizes == [(pyodbc.SQL_WVARCHAR, 0, 0), None]
    Cursor.sizes = None
    mssql.execute("UPDATE t SET a = ? WHERE b = ?", ["x" * 2000, "k"])
    assert Cursor.sizes is None
    Database(Conn(), Dialect.POSTGRESQL, "test").execute("UPDATE t SET a = ?", ["x" * 5000])  # type: ignore[arg-type]
    assert Cursor.sizes is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-27 08:00:00.1234567", "2026-11-27T08:00:00.123456"),  # datetime2(7) as text
        ("2026-11-27 08:00:00", "2026-11-27T08:00:00"),
        ("2026-11-27", "2026-11-27T00:00:00"),
    ],
)
def test_sql_server_timestamps_as_pyodbc_returns_them(value: str, expected: str) -> None:
    from proit_notify.erp import to_datetime

    found = to_datetime(value)
    assert found is not None
    assert found.isoformat() == expected


def test_sql_server_bit_money_and_date_text_as_pyodbc_returns_them() -> None:
    from decimal import Decimal

    from proit_notify.erp import to_date, to_decimal, to_flag

    assert (to_flag(True), to_flag(False), to_flag(None)) == (True, False, None)
    assert to_decimal(Decimal("1234.5000")) == Decimal("1234.5")  # money: 4 places
    assert str(to_date("2026-11-27 00:00:00.0000000")) == "2026-11-27"


def test_a_sql_server_connection_counts_rows_and_reads_datetimeoffset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SQL Server branch of connect_odbc, with pyodbc's connect replaced (no server
    here): rowcount must count (SET NOCOUNT OFF) and datetimeoffset gets a converter."""
    import pyodbc

    from proit_notify import db as db_module

    executed: list[str] = []
    converters: dict[int, Any] = {}

    class Cursor:
        def execute(self, sql: str) -> None:
            executed.append(sql)

        def close(self) -> None: ...

    class Conn:
        timeout = 0

        def getinfo(self, what: int) -> str:
            assert what == pyodbc.SQL_DBMS_NAME
            return "Microsoft SQL Server"

        def cursor(self) -> Cursor:
            return Cursor()

        def add_output_converter(self, sqltype: int, func: Any) -> None:
            converters[sqltype] = func

    monkeypatch.setattr(pyodbc, "connect", lambda *a, **k: Conn())
    conn = "DRIVER={ODBC Driver 18 for SQL Server};SERVER=erp01;UID=u;PWD=x"
    database = db_module.connect_odbc(conn, query_timeout=30)
    assert database.dialect is db_module.Dialect.MSSQL
    assert executed == ["SET NOCOUNT OFF"]
    assert list(converters) == [db_module.SQL_SS_TIMESTAMPOFFSET]


@pytest.mark.parametrize(
    ("driver", "conn"),
    [
        ("PostgreSQL Unicode",
         "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=no_such_db;UID=postgres"),
        ("MariaDB Unicode",
         "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;DATABASE=no_such_db;UID=root;PWD="),
    ],
)  # fmt: skip
def test_a_database_the_server_lacks_is_named_not_a_firewall(driver: str, conn: str) -> None:
    require_odbc_driver(driver)
    with pytest.raises(ErpError) as caught:
        connect_odbc(conn, login_timeout=5)
    text = str(caught.value)
    assert "has no database of the name in erp.odbc" in text
    assert "DATABASE=" in text
    assert "firewall" not in text


def test_an_odbc_string_without_a_driver_is_a_settings_error_saying_how() -> None:
    with pytest.raises(ValueError, match=r"names no driver: start it with DRIVER=\{ODBC"):
        ErpSettings(odbc="SERVER=erp01;DATABASE=ProIT;Trusted_Connection=yes")
    assert ErpSettings(odbc="DSN=ProIT").odbc == "DSN=ProIT"
