"""Every statement the tool would send to SQL Server, parsed as T-SQL (no SQL Server here).

Ledger and run-record statements are recorded by running every Ledger/RunLog method
against a recording connection of the SQL Server dialect; the jobs' queries are rendered
through the ERP mapping for SQL Server (also schema-qualified and with ``{ sql = ... }``
fields). Each statement must parse with sqlglot's T-SQL dialect and must not use what SQL
Server lacks (LIMIT, backticks, ``IF NOT EXISTS`` on CREATE, ``||``). This proves syntax,
not behaviour: that stays unproven without a real server (README "Windows and SQL Server").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest
import sqlglot
import sqlglot.errors

from proit_notify.channels import SendResult
from proit_notify.db import Database, Dialect
from proit_notify.erp import Mapping, page_sql
from proit_notify.errors import UsageError
from proit_notify.jobs import delivery_dates, prepayment, review, shipping
from proit_notify.ledger import Ledger, ddl
from proit_notify.settings import ErpSettings, RetrySettings

NOW = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
FORBIDDEN = [
    (re.compile(r"\bLIMIT\b", re.IGNORECASE), "LIMIT (SQL Server has TOP / OFFSET FETCH)"),
    (re.compile(r"`"), "backtick quoting"),
    (re.compile(r"\bIF\s+NOT\s+EXISTS\b", re.IGNORECASE), "CREATE ... IF NOT EXISTS"),
    (re.compile(r"\|\|"), "|| concatenation"),
    (re.compile(r"\bTRUE\b|\bFALSE\b", re.IGNORECASE), "TRUE/FALSE literals"),
]


class _Cursor:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.description: list[tuple[str]] = []
        self.rowcount = 1

    def execute(self, sql: str, params: Any = ()) -> None:
        self.log.append(sql)

    def setinputsizes(self, sizes: Any) -> None: ...

    def fetchmany(self, n: int) -> list[Any]:
        return []

    def tables(self, **kwargs: Any) -> list[Any]:
        return []

    def close(self) -> None: ...


class _Conn:
    def __init__(self) -> None:
        self.log: list[str] = []

    def cursor(self) -> _Cursor:
        return _Cursor(self.log)

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


def ledger_statements(table: str) -> list[str]:
    conn = _Conn()
    ledger = Ledger(Database(conn, Dialect.MSSQL, "recording"), table, RetrySettings())
    ledger.ensure_schema()
    row = {
        "key": "shipping:1",
        "channel": "email",
        "job": "shipping",
        "document": "LS 1",
        "recipient": "a@example.ch",
        "account": "default",
        "now": NOW,
    }
    ledger.claim(**row)
    ledger.claim(**row, status="draft", detail="waiting")
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
    runs = ledger.runs
    runs.start("r1", "shipping-confirmations", "run-all", NOW)
    runs.end_job("r1", "shipping-confirmations", {"sent": 1}, NOW)
    runs.end_command("r1", "run-all", 0, "", NOW)
    runs.set_alert("r1", "sent")
    runs.last_per_job()
    runs.previous_start("shipping-confirmations", NOW)
    return conn.log


def job_templates() -> list[str]:
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


def _problems(statement: str) -> list[str]:
    problems = [why for pattern, why in FORBIDDEN if pattern.search(statement)]
    try:
        parsed = sqlglot.parse(statement, read="tsql")
    except sqlglot.errors.ParseError as exc:
        problems.append(f"does not parse as T-SQL: {str(exc).splitlines()[0]}")
    else:
        if not parsed or any(p is None for p in parsed):
            problems.append("parsed to nothing")
    return problems


@pytest.mark.parametrize("table", ["proit_notify_ledger", "dbo.proit_notify_ledger"])
def test_every_ledger_statement_is_t_sql(table: str) -> None:
    statements = ledger_statements(table)
    assert len(statements) > 30  # every method above ran its SQL
    assert any(s.startswith("CREATE TABLE") for s in statements)
    bad = {s: p for s in statements if (p := _problems(s))}
    assert bad == {}


def test_the_printed_ddl_is_t_sql() -> None:
    statements = ddl("dbo.proit_notify_ledger", Dialect.MSSQL)
    assert len(statements) == 4
    assert {s: p for s in statements if (p := _problems(s))} == {}
    # the index is named from the table's last part: dbo.x_job is not a valid index name
    assert "[proit_notify_ledger_job]" in statements[1]


@pytest.mark.parametrize("mapping", list(MAPPINGS))
def test_every_job_query_rendered_for_sql_server_is_t_sql(mapping: str) -> None:
    templates = job_templates()
    assert len(templates) >= 8
    rendered = [
        Mapping(MAPPINGS[mapping], Dialect.MSSQL, phone_field="Natel").sql(t) for t in templates
    ]
    assert all("{" not in r.replace("{ sql", "") for r in rendered)
    # the jobs' selections are read in pages (Erp.pages): those statements too
    rendered += [
        page_sql(r, Dialect.MSSQL, "order_id", 1000, after=after)
        for r in rendered[:3]
        for after in (False, True)
    ]
    bad = {r[:200]: p for r in rendered if (p := _problems(r))}
    assert bad == {}


def test_the_check_catches_what_sql_server_refuses() -> None:
    # the test of the tests: statements valid elsewhere but not on SQL Server
    assert _problems("SELECT a FROM t LIMIT 1")
    assert _problems("SELECT `a` FROM t")
    assert _problems("CREATE TABLE IF NOT EXISTS t (a INTEGER)")
    assert _problems("SELECT a || b FROM t")
    assert _problems("SELECT FROM WHERE")
    assert _problems("SELECT [a] FROM [dbo].[t] WHERE x = ?") == []
