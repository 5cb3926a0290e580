"""SQL Server's side of the statement check (no SQL Server here): T-SQL rules and references.

``problems(statement)`` says why SQL Server would reject a statement: it must parse with
sqlglot's T-SQL dialect and must not use what SQL Server lacks (LIMIT, backticks, ``IF NOT
EXISTS`` on CREATE, ``||``, TRUE/FALSE). ``reference()`` runs every Ledger/RunLog method
and the ERP mapping check against a recording connection of the SQL Server dialect and
gives each statement with the function that sent it (its origin): the statements the
suite sends on the other backends (``tests/sql_record.py``) are checked against these.
This proves syntax, not behaviour: that stays unproven without a real server (README
"Windows and SQL Server").
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from types import FrameType, ModuleType
from typing import Any

import pytest
import sqlglot
import sqlglot.errors

from proit_notify.channels import SendResult
from proit_notify.db import Database, Dialect
from proit_notify.erp import Erp, Mapping, count_sql, page_sql
from proit_notify.errors import ConfigError, UsageError
from proit_notify.jobs import delivery_dates, prepayment, review, shipping
from proit_notify.ledger import Entry, Ledger, Row
from proit_notify.ledger.migrate import refuse_newer
from proit_notify.settings import ErpSettings, RetrySettings

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
FORBIDDEN = [
    (re.compile(r"\bLIMIT\b", re.IGNORECASE), "LIMIT (SQL Server has TOP / OFFSET FETCH)"),
    (re.compile(r"`"), "backtick quoting"),
    (re.compile(r"\bIF\s+NOT\s+EXISTS\b", re.IGNORECASE), "CREATE ... IF NOT EXISTS"),
    (re.compile(r"\|\|"), "|| concatenation"),
    (re.compile(r"\bTRUE\b|\bFALSE\b", re.IGNORECASE), "TRUE/FALSE literals"),
]


#: functions that only pass a statement on: the origin is the function that called them
PLUMBING = {
    "proit_notify.db": {"Database._execute", "Database.insert_unique", "Database.stream"}
    | {"Database.one", "Database.execute"},
    "proit_notify.erp": {"Erp.query", "Erp.pages", "Erp.count", "Erp.lookup"},
    "proit_notify.ledger.table": {"Table.read", "Table.write", "Table.errors"},
}


def origin_of(frame: FrameType | None) -> str | None:
    """``module:function`` of the tool's code that sent a statement (``frame``: the sending
    call's), None when a test sent it through a Database of its own.

    The function is the outermost one of its module: ``Ledger.record`` (which builds its
    statement and hands it to ``Ledger._update``), not the helper, so a new method that
    builds new SQL is a new origin.
    """
    origin: tuple[str, str] | None = None
    inside = False
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        # Ledger.claim.<locals>.once, a comprehension (a frame of its own before 3.12): claim
        name = frame.f_code.co_qualname.split(".<locals>")[0]
        if module == "sql_record":
            pass  # the recorder's wrapper around Database methods: see through it
        elif origin is not None:
            if module != origin[0]:
                break
            origin = (module, name)
        elif module.startswith("proit_notify"):
            inside = True
            if name not in PLUMBING.get(module, ()):
                origin = (module, name)
        elif inside:
            return None
        frame = frame.f_back
    return None if origin is None else f"{origin[0]}:{origin[1]}"


class _Cursor:
    def __init__(self, log: list[tuple[str | None, str]], old: bool = False) -> None:
        self.log = log
        self.old = old
        self.description: list[tuple[str]] = []
        self.rowcount = 1

    def execute(self, sql: str, params: Any = ()) -> None:
        self.log.append((origin_of(sys._getframe(1)), sql))
        if self.old and sql.startswith("SELECT message_id FROM"):
            raise RuntimeError("[42S22] Invalid column name 'message_id'")  # schema 1

    def setinputsizes(self, sizes: Any) -> None: ...

    def fetchmany(self, n: int) -> list[Any]:
        return []

    def tables(self, **kwargs: Any) -> list[Any]:
        if not self.old:
            return []
        # an older ledger: its tables are there (the one asked for, as SQLTables says)
        row = type("Row", (), {"table_name": kwargs.get("table", ""), "table_type": "TABLE",
                               "table_cat": None, "table_schem": kwargs.get("schema")})
        return [row()]

    def columns(self, **kwargs: Any) -> list[Any]:
        return []

    def close(self) -> None: ...


class _Conn:
    """A connection that answers nothing and keeps (origin, statement) of what it is sent;
    ``old``: it holds a ledger of schema 1 (its tables, without message_id)."""

    def __init__(self, old: bool = False) -> None:
        self.log: list[tuple[str | None, str]] = []
        self.old = old

    def cursor(self) -> _Cursor:
        return _Cursor(self.log, self.old)

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


def _database(conn: _Conn) -> Database:
    return Database(conn, Dialect.MSSQL, "recording")


def ledger_statements(table: str) -> list[tuple[str | None, str]]:
    """(origin, statement) of every Ledger and RunLog method, for SQL Server."""
    old = _Conn(old=True)  # the upgrade of a ledger of schema 1 (SPEC §8)
    upgraded = Ledger(_database(old), table, RetrySettings())
    upgraded.ensure_schema()
    upgraded.versions.upgraded_by()
    upgraded.versions.statements(1)  # 'ledger migrate --print': the login its grants are for
    with pytest.raises(ConfigError):  # a newer ledger, named by the version that upgraded it
        refuse_newer(99, upgraded.versions.upgraded_by)
    conn = _Conn()
    ledger = Ledger(_database(conn), table, RetrySettings())
    ledger.ensure_schema()
    row = Row("shipping:1", "email", "shipping", "LS 1", "a@example.ch", "default",
              {"order_id": 1}, "<proit-notify.0f@example.ch>")  # fmt: skip
    ledger.claim(row, NOW)
    ledger.claim(row, NOW, status="draft", detail="waiting")
    ledger.record("shipping:1", "email", SendResult("sent", "250 ok"), NOW)
    ledger.record("shipping:1", "email", SendResult("deferred", "451"), NOW)
    ledger.set_status("shipping:1", "email", "sent", NOW, "marked", {"a": 1})
    ledger.transition("shipping:1", "email", from_status="draft", to="sending", now=NOW)
    ledger.release("shipping:1", "email", back_to=None, now=NOW, detail="x")
    ledger.release("shipping:1", "email", back_to="deferred", now=NOW, detail="x")
    ledger.recover_stale(NOW)
    with pytest.raises(UsageError):
        ledger.resolve("shipping:1", sent=True, now=NOW)
    ledger.get("shipping:1", "email")
    ledger.entries("shipping:1")
    ledger.with_prefix("prepayment:1:")
    ledger.sent_between("shipping", NOW, NOW)
    ledger.count_sent("default", NOW)
    ledger.tally()
    ledger.tally(since=NOW)
    ledger.oldest("draft")
    ledger.started("delivery_date", "baseline")
    ledger.history(job="shipping", status="sent", key="shipping:1", since=NOW)
    ledger.by_message_ids(["<proit-notify.0f@example.ch>"])
    bounced = ledger.get("shipping:1", "email")
    if bounced is None:  # the recording connection answers nothing: a row as it would be
        bounced = Entry("shipping:1", "email", "shipping", "LS 1", "a@example.ch", "default",
                        "sent", "250 ok", 1, NOW, NOW, NOW, None, "h", {})  # fmt: skip
    ledger.bounce(bounced, NOW, "550 5.1.1 user unknown")
    ledger.note_report(bounced, {"action": "delayed"})
    ledger.bounces.holding(["a@example.ch"])
    ledger.bounces.entries()
    ledger.bounces.remove_key("shipping:1")
    ledger.optout.add("kunde@example.ch", NOW)
    ledger.optout.remove("kunde@example.ch")
    ledger.optout.entries()
    ledger.optout.holding(["kunde@example.ch", "+41791234567"])
    runs = ledger.runs
    runs.start("r1", "shipping-confirmations", "run-all", NOW)
    runs.end_job("r1", "shipping-confirmations", {"sent": 1}, NOW)
    runs.end_command("r1", "run-all", 0, "", NOW)
    runs.set_alert("r1", "sent")
    runs.last_per_job()
    runs.previous_start("shipping-confirmations", NOW)
    return old.log + conn.log


def scope_statements() -> list[tuple[str | None, str]]:
    """(origin, statement) of the schema look-ups in the connection's own database and
    schema (``Database.scope``: each Database asks once, so one each on a fresh one)."""
    log: list[tuple[str | None, str]] = []
    for look in ("tables", "columns", "has_table"):
        conn = _Conn()
        db = _database(conn)
        if look == "tables":
            db.tables()
        else:
            getattr(db, look)("dbo.Kunden")
        log += conn.log
    return log


def check_statements(erp: ErpSettings) -> list[tuple[str | None, str]]:
    """(origin, statement) of the ERP mapping check (``proit-notify check``), for SQL Server."""
    conn = _Conn()
    Erp(_database(conn), erp, "Natel", lookup_db=_database(conn)).check()
    return conn.log


def job_templates() -> list[str]:
    """Every job query template of the job modules, with its run-time parts filled in."""
    modules: list[ModuleType] = [shipping, review, prepayment, delivery_dates]
    found = []
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, str) and "SELECT" in value and "{" in value:
                found.append(value)
    # the parts the jobs fill in at run time: parameter lists and the review trigger arms
    events = " UNION ".join([review.PRINTED_IN_WINDOW, review.AUTO_IN_WINDOW])
    return [t.replace("{marks}", "?, ?, ?").replace("{events}", events) for t in found]


MAPPINGS = {
    "logical": ErpSettings(sqlite="erp.db"),
    "schema and expressions": ErpSettings.model_validate(
        {
            "sqlite": "erp.db",
            "tables": {"orders": "dbo.Auftraege", "customers": "dbo.Kunden Stamm"},
            "columns": {
                "orders": {"review_mail": {"sql": "CASE WHEN Bew = 'J' THEN 1 ELSE 0 END"}},
                "customers": {"name": "Firma 1"},
            },
        }
    ),
}


def reference() -> dict[str, list[str]]:
    """Origin -> the SQL Server statements it sends, for every origin the tool has."""
    found: dict[str, list[str]] = {}
    logs = [ledger_statements(t) for t in ("proit_notify_ledger", "dbo.proit_notify_ledger")]
    logs += [check_statements(erp) for erp in MAPPINGS.values()]
    logs.append(scope_statements())
    for log in logs:
        for origin, sql in log:
            if origin is not None:
                found.setdefault(origin, []).append(sql)
    return found


def renderings(template: str, page: tuple[str, bool] | str | None = None) -> Iterator[str]:
    """A logical query as SQL Server gets it under each of :data:`MAPPINGS`; ``page``:
    (key, after) of a paged read (:func:`proit_notify.erp.page_sql`), or "count": its rows
    counted for the progress line (:func:`proit_notify.erp.count_sql`)."""
    for erp in MAPPINGS.values():
        sql = Mapping(erp, Dialect.MSSQL, phone_field="Natel").sql(template)
        if page == "count":
            sql = count_sql(sql)
        elif isinstance(page, tuple):
            sql = page_sql(sql, Dialect.MSSQL, page[0], 1000, after=page[1])
        yield sql


def problems(statement: str) -> list[str]:
    """Why SQL Server would reject ``statement`` (empty: it would not, as far as syntax goes)."""
    found = [why for pattern, why in FORBIDDEN if pattern.search(statement)]
    try:
        parsed = sqlglot.parse(statement, read="tsql")
    except sqlglot.errors.ParseError as exc:
        found.append(f"does not parse as T-SQL: {str(exc).splitlines()[0]}")
    else:
        if not parsed or any(p is None for p in parsed):
            found.append("parsed to nothing")
        found += [why for p in parsed if p is not None for why in _derived_table_problems(p)]
    return found


def _derived_table_problems(tree: sqlglot.exp.Expression) -> list[str]:
    """SQL Server wants a name for every derived table (error 102), and refuses an ORDER BY
    inside one without TOP (error 1033); sqlglot reads both without complaint."""
    found = []
    for sub in tree.find_all(sqlglot.exp.Subquery):
        if not isinstance(sub.parent, sqlglot.exp.From | sqlglot.exp.Join):
            continue
        if not sub.alias:
            found.append("a derived table without a name")
        inner = sub.this
        if inner.args.get("order") and not inner.args.get("limit"):
            found.append("ORDER BY inside a derived table without TOP")
    return found
