"""Every statement the suite sends, on every backend, checked as SQL Server would get it.

A pytest plugin (``tests/conftest.py``): while the suite runs, each statement the tool
sends through :class:`proit_notify.db.Database` (on sqlite, sqlite-odbc, PostgreSQL,
MariaDB) is recorded with where it came from:

- a job's query, written against the logical schema: its template (and how it was paged);
  SQL Server's statement is that template rendered for SQL Server (``tsql.renderings``);
- any other statement (ledger, run records, the mapping check): the function that sent
  it; SQL Server's statements of that function are ``tsql.reference()``'s.

At the end every SQL Server statement of a recorded origin must pass ``tsql.problems``
(sqlglot, T-SQL), and an origin with no SQL Server reference (a new ledger method that
``tests/tsql.py`` does not call) is itself a failure: the run's exit status says so and
the terminal summary names them. The recorded statements are written to
``.pytest_cache/d/sql/statements.txt`` for reading.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import tsql

from proit_notify import db as db_module
from proit_notify import erp as erp_module
from proit_notify.db import Database, Dialect

#: how a job's selection is read: a page ((key, after): tsql.renderings) or "count"
Form = tuple[str, bool] | str

#: statements only sent to SQLite by sqlite3 (SQL Server's branch asks the ODBC catalog)
SQLITE_ONLY = {
    "proit_notify.db:Database.has_table",
    "proit_notify.db:Database.tables",
    "proit_notify.db:Database.columns",
    "proit_notify.ledger.store:Ledger.open_sqlite",  # PRAGMA journal_mode and synchronous
}


@dataclass
class Recorder:
    """The statements seen, by origin; a job query's origin is its logical template."""

    rendered: dict[str, str] = field(default_factory=dict)  # rendered SQL -> template
    #: a page or the count of a selection -> (its inner SQL, (key, after) or "count")
    paged: dict[str, tuple[str, Form]] = field(default_factory=dict)
    templates: dict[tuple[str, Form | None], set[str]] = field(default_factory=dict)
    code: dict[str, set[str]] = field(default_factory=dict)  # origin -> dialects
    statements: dict[str, set[str]] = field(default_factory=dict)  # dialect -> statements
    problems: list[str] = field(default_factory=list)

    def note(self, database: Database, sql: str) -> None:
        if database.dialect is Dialect.MSSQL:
            return  # a test's recording fake: SQL Server's statements are tsql.reference()
        dialect = str(database.dialect)
        page: Form | None = None
        inner = sql
        if sql in self.paged:
            inner, page = self.paged[sql]
        template = self.rendered.get(inner)
        if template is not None:
            self.templates.setdefault((template, page), set()).add(dialect)
        else:
            origin = tsql.origin_of(sys._getframe(2))
            if origin is None:
                return  # a test's own statement (test data, a look at the ledger)
            self.code.setdefault(origin, set()).add(dialect)
        self.statements.setdefault(dialect, set()).add(sql)

    def check(self) -> int:
        """Fill :attr:`problems`; the number of SQL Server statements checked."""
        checked = 0
        for (template, page), _ in sorted(self.templates.items(), key=repr):
            for sql in tsql.renderings(template, page):
                checked += 1
                if why := tsql.problems(sql):
                    self.problems.append(f"job query {sql[:160]!r}: {'; '.join(why)}")
        reference = tsql.reference()
        for origin in sorted(set(self.code) - SQLITE_ONLY):
            if origin not in reference:
                self.problems.append(
                    f"{origin} sends SQL on {', '.join(sorted(self.code[origin]))} but "
                    "tests/tsql.py (reference) never calls it for SQL Server: add the call"
                )
                continue
            for sql in reference[origin]:
                checked += 1
                if why := tsql.problems(sql):
                    self.problems.append(f"{origin}: {sql[:160]!r}: {'; '.join(why)}")
        return checked


RECORDER = Recorder()
_checked = 0


def _recording(method: Callable[..., Any]) -> Callable[..., Any]:
    def record(self: Database, sql: str, params: Sequence[object] = ()) -> Any:
        RECORDER.note(self, sql)
        return method(self, sql, params)

    return record


def pytest_configure(config: pytest.Config) -> None:
    mapping_sql = erp_module.Mapping.sql
    page_sql = erp_module.page_sql
    count_sql = erp_module.count_sql

    def sql(self: erp_module.Mapping, template: str) -> str:
        rendered = mapping_sql(self, template)
        RECORDER.rendered[rendered] = template
        return rendered

    def paged(inner: str, dialect: Dialect, key: str, size: int, *, after: bool) -> str:
        statement = page_sql(inner, dialect, key, size, after=after)
        RECORDER.paged[statement] = (inner, (key, after))
        return statement

    def counted(inner: str) -> str:
        statement = count_sql(inner)
        RECORDER.paged[statement] = (inner, "count")
        return statement

    # for the whole session: every Database, Mapping and page of every test is recorded
    erp_module.Mapping.sql = sql  # type: ignore[method-assign]
    erp_module.page_sql = paged
    erp_module.count_sql = counted
    db_module.Database._execute = _recording(db_module.Database._execute)  # type: ignore[method-assign]
    db_module.Database.insert_unique = _recording(db_module.Database.insert_unique)  # type: ignore[method-assign]


def pytest_sessionfinish(session: pytest.Session) -> None:
    global _checked
    if not RECORDER.statements:
        return
    _checked = RECORDER.check()
    cache = getattr(session.config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        lines = [
            f"-- {dialect}\n" + "\n".join(sorted(statements))
            for dialect, statements in sorted(RECORDER.statements.items())
        ]
        (cache.mkdir("sql") / "statements.txt").write_text("\n\n".join(lines) + "\n")
    if RECORDER.problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RECORDER.statements:
        return
    sent = ", ".join(f"{len(s)} on {d}" for d, s in sorted(RECORDER.statements.items()))
    origins = len(RECORDER.templates) + len(RECORDER.code)
    terminalreporter.write_sep("-", "SQL statements checked as T-SQL (tests/sql_record.py)")
    terminalreporter.write_line(
        f"distinct statements sent: {sent}; {origins} origins; "
        f"{_checked} SQL Server statements parsed with sqlglot"
    )
    for problem in RECORDER.problems:
        terminalreporter.write_line(f"FAILED {problem}", red=True)
