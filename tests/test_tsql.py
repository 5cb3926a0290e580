"""Every statement the tool would send to SQL Server, parsed as T-SQL (no SQL Server here).

Statically: every Ledger/RunLog method and every job query template of the job modules,
rendered for SQL Server (``tests/tsql.py``). Dynamically: every statement the suite sends on
the other backends is checked at the session's end (``tests/sql_record.py``); the tests
below also prove that recorder records and refuses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sql_record
from tsql import (
    MAPPINGS,
    job_templates,
    ledger_statements,
    problems,
    reference,
    renderings,
)

from proit_notify import logical
from proit_notify.channels import SendResult
from proit_notify.db import Database, Dialect, connect_sqlite
from proit_notify.erp import Erp
from proit_notify.jobs import delivery_dates, prepayment, review, shipping
from proit_notify.ledger import Ledger, Row, ddl
from proit_notify.ledger.migrate import grant_sql
from proit_notify.logical import LOGICAL_SCHEMA
from proit_notify.settings import ErpSettings, RetrySettings


@pytest.mark.parametrize("table", ["proit_notify_ledger", "dbo.proit_notify_ledger"])
def test_every_ledger_statement_is_t_sql(table: str) -> None:
    statements = [sql for _, sql in ledger_statements(table)]
    assert len(statements) > 30  # every method above ran its SQL
    assert any(s.startswith("CREATE TABLE") for s in statements)
    bad = {s: p for s in statements if (p := problems(s))}
    assert bad == {}


def test_the_printed_ddl_is_t_sql() -> None:
    statements = ddl("dbo.proit_notify_ledger", Dialect.MSSQL)
    # ledger table and its two indexes, run records and index, opt-outs, bounced addresses,
    # schema version and its two rows
    assert len(statements) == 10
    assert {s: p for s in statements if (p := problems(s))} == {}
    # the index is named from the table's last part: dbo.x_job is not a valid index name
    assert "[proit_notify_ledger_job]" in statements[1]
    assert "[proit_notify_ledger_msgid]" in statements[2]


def test_the_logical_model_made_on_sql_server_is_t_sql() -> None:
    # the demo's and the tests' ERP come from proit_notify.logical: a merchant's DBA or a
    # SQL Server test ERP gets the same tables
    statements = logical.ddl(Dialect.MSSQL, lambda table: f"dbo.{table}",
                             extra={"customers": [("mobile", "text")]})
    assert len(statements) == len(LOGICAL_SCHEMA)
    assert "[order_date] DATE" in statements[2]
    assert "[auto_processed_at] DATETIME2" in statements[2]
    assert {s: p for s in statements if (p := problems(s))} == {}


def test_the_grant_for_a_new_table_is_t_sql() -> None:
    # 'ledger migrate --print' grants the tool's login the rows of the tables it creates
    statement = grant_sql("dbo.proit_notify_ledger_bounces", Dialect.MSSQL, "shop.app]x")
    assert statement.endswith("TO [shop.app]]x]")
    assert problems(statement) == []


@pytest.mark.parametrize("table", ["proit_notify_ledger", "dbo.proit_notify_ledger"])
def test_the_printed_upgrade_is_t_sql(table: str) -> None:
    # 'ledger migrate --print' for a DBA: from schema 1 to this version (SPEC §8)
    versions = Ledger(Database(_NoConn(), Dialect.MSSQL, "x"), table, RetrySettings()).versions
    statements = versions.statements(1)
    assert any(s.startswith("ALTER TABLE") and " ADD message_id" in s for s in statements)
    assert {s: p for s in statements if (p := problems(s))} == {}


@pytest.mark.parametrize("mapping", list(MAPPINGS))
def test_every_job_query_rendered_for_sql_server_is_t_sql(mapping: str) -> None:
    templates = job_templates()
    assert len(templates) >= 8
    # a selection is read in pages and counted for the progress line; a look-up (items of
    # an order, ordered by line) is read whole
    selections = [t for t in templates if "ORDER BY" not in t]
    sql_of = {shipping.BY_PRINT_TIME, prepayment.DUE_INVOICES, delivery_dates.CANDIDATES}
    assert sql_of <= set(selections)
    assert any(t.startswith(review.ORDER_SELECT) for t in selections)
    forms = [(t, None) for t in templates] + [
        (t, form) for t in selections for form in (("order_id", False), ("order_id", True), "count")
    ]
    rendered = [
        sql
        for t, form in forms
        for i, sql in enumerate(renderings(t, form))
        if i == list(MAPPINGS).index(mapping)
    ]
    assert len(rendered) == len(templates) + 3 * len(selections)
    assert all("{" not in r.replace("{ sql", "") for r in rendered)
    bad = {r[:200]: p for r in rendered if (p := problems(r))}
    assert bad == {}


def test_the_check_catches_what_sql_server_refuses() -> None:
    # the test of the tests: statements valid elsewhere but not on SQL Server
    assert problems("SELECT a FROM t LIMIT 1")
    assert problems("SELECT `a` FROM t")
    assert problems("CREATE TABLE IF NOT EXISTS t (a INTEGER)")
    assert problems("SELECT a || b FROM t")
    assert problems("SELECT FROM WHERE")
    assert problems("SELECT [a] FROM [dbo].[t] WHERE x = ?") == []
    assert problems("SELECT COUNT(*) AS n FROM (SELECT a FROM t)")
    assert problems("SELECT COUNT(*) AS n FROM (SELECT a FROM t ORDER BY a) q")
    assert problems("SELECT COUNT(*) AS n FROM (SELECT TOP (5) a FROM t ORDER BY a) q") == []
    assert problems("SELECT a FROM t WHERE a IN (SELECT b FROM u)") == []


def test_the_reference_names_each_statement_by_the_method_that_sent_it() -> None:
    found = reference()
    assert "proit_notify.ledger.store:Ledger.claim" in found
    assert "proit_notify.ledger.runs:RunLog.start" in found
    assert "proit_notify.ledger.migrate:Versions.upgrade" in found  # schema 1 -> now
    assert "proit_notify.erp:Erp.check" in found
    assert all(found.values())


def test_the_recorder_records_what_the_tool_sends_by_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = sql_record.Recorder()
    monkeypatch.setattr(sql_record, "RECORDER", recorder)
    now = sql_record.tsql.NOW
    ledger = Ledger(connect_sqlite(tmp_path / "l.sqlite", create=True), "led", RetrySettings())
    ledger.ensure_schema()
    assert ledger.claim(Row("shipping:1", "email", "shipping", "LS 1", "a@b.ch", "default"), now)
    ledger.record("shipping:1", "email", SendResult("sent", "250"), now)
    ledger.db.execute("SELECT 1")  # a test's own statement: not the tool's, not recorded
    erp_db = connect_sqlite(tmp_path / "erp.sqlite", create=True)
    erp_db.execute(f"CREATE TABLE orders ({', '.join(LOGICAL_SCHEMA['orders'])})")
    erp = Erp(erp_db, ErpSettings(sqlite="erp.sqlite"), None)
    assert list(erp.pages("SELECT o.id AS order_id FROM {orders} o", [], "order_id")) == []

    assert {
        "proit_notify.ledger.store:Ledger.claim",
        "proit_notify.ledger.store:Ledger.record",
    } <= set(recorder.code)
    assert recorder.code["proit_notify.ledger.store:Ledger.claim"] == {"sqlite"}
    assert not any(origin.startswith("tests") for origin in recorder.code)
    assert [page for _, page in recorder.templates] == [("order_id", False)]
    assert "SELECT 1" not in recorder.statements["sqlite"]
    assert recorder.check() > 0
    assert recorder.problems == []


def test_the_recorder_fails_an_origin_without_a_sql_server_reference() -> None:
    recorder = sql_record.Recorder()
    recorder.code["proit_notify.ledger.store:Ledger.purge"] = {"postgresql"}
    recorder.templates[("SELECT o.id FROM {orders} o LIMIT 5", None)] = {"sqlite"}
    recorder.check()
    assert len(recorder.problems) == 3  # the origin, and the template under both mappings
    assert "Ledger.purge sends SQL on postgresql" in recorder.problems[-1]
    assert all("LIMIT" in p for p in recorder.problems[:2])


class _NoConn:
    """Never asked: the printed statements need no connection."""

    def cursor(self) -> None:
        raise AssertionError("no statement is sent")

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...
