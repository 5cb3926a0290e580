"""Benchmark: review-requests' due selection on a large generated ERP (issue 4).

Generates an ERP in the logical schema of the demo (same tables, same indexes) with N orders
over ten years, in SQLite or (``--erp postgresql`` / ``--erp mariadb``) in a schema
``bench_review`` on the local server through ODBC, then times, alternately and in one run:

- **bare**: one hand-written indexed SQL query over the raw tables that selects the due
  orders with their customer (earliest of first print and auto-processing in the window,
  flag allows, nothing earlier);
- **selection**: the job's own candidate SQL (``ReviewRequests.candidate_query``, what
  ``plan()`` runs) through the real code path: ``Erp`` with the logical mapping (derived
  tables), the runner's ``Sources``, rows streamed as dicts;
- **plan**: the whole ``ReviewRequests().plan()``: the selection plus, per batch of due
  orders, the look-ups of delivery notes, ledger rows and items, and the Notification
  objects (an empty ledger).

Prints the times, the ratios to bare (target for the selection: <= 1.5) and the peak memory
of one pass of ``plan()`` (tracemalloc; notifications consumed and dropped as the runner
does).

    python bench/review_select.py --orders 1000000
    python bench/review_select.py --orders 100000 --years 1 --orders 1000000   # memory: flat?
    python bench/review_select.py --orders 1000000 --erp postgresql --erp mariadb
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
import tracemalloc
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import tomli_w

from proit_notify.clock import Clock
from proit_notify.db import Database, Dialect, connect, connect_odbc, connect_sqlite
from proit_notify.demo import SCHEMA
from proit_notify.erp import Erp
from proit_notify.jobs import BATCH
from proit_notify.jobs.review import ReviewRequests
from proit_notify.ledger import Ledger
from proit_notify.logical import Kind, ddl
from proit_notify.runner import ErpSources
from proit_notify.settings import Settings, load_settings

TODAY = date(2026, 11, 27)
YEARS = 10

#: the local test servers; BENCH_POSTGRESQL_ODBC / BENCH_MARIADB_ODBC name another one
SERVERS = {
    "postgresql": os.environ.get(
        "BENCH_POSTGRESQL_ODBC",
        "DRIVER={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;"
        "BoolsAsChar=0;UseDeclareFetch=1;Fetch=10000",
    ),
    "mariadb": os.environ.get(
        "BENCH_MARIADB_ODBC",
        "DRIVER={MariaDB Unicode};Server=127.0.0.1;Port=3306;Database=test;Uid=root;Pwd=",
    ),
}
SCHEMA_NAME = "bench_review"  # the server's schema (MariaDB: database) the ERP is made in
TABLES = ("customers", "contacts", "orders", "order_lines", "delivery_notes")

#: {t} is the table prefix ("" in SQLite, "bench_review." on a server); parameters, in
#: order: start, end, start, end, start, start
BARE = """
SELECT o.id, o.number, o.order_date, o.shop, o.contact_id, o.auto_processed_at,
       c.id, c.name, c.email, c.mobile, c.country, c.language, c.info_type,
       k.name, k.email, k.mobile
FROM (SELECT dn.order_id AS oid FROM {t}delivery_notes dn
      WHERE dn.printed_at >= ? AND dn.printed_at <= ?
      UNION
      SELECT a.id FROM {t}orders a WHERE a.auto_processed_at >= ? AND a.auto_processed_at <= ?) ev
JOIN {t}orders o ON o.id = ev.oid
JOIN {t}customers c ON c.id = o.customer_id LEFT JOIN {t}contacts k ON k.id = o.contact_id
WHERE (o.review_mail = 1 OR o.review_mail IS NULL)
  AND NOT EXISTS (SELECT 1 FROM {t}delivery_notes d WHERE d.order_id = o.id AND d.printed_at < ?)
  AND (o.auto_processed_at IS NULL OR o.auto_processed_at >= ?)
"""

#: the demo's indexes, on the server's tables (the tables: proit_notify.logical, as the demo's)
SERVER_INDEXES = """
CREATE INDEX ix_contacts_customer ON {t}contacts(customer_id);
CREATE INDEX ix_orders_customer ON {t}orders(customer_id);
CREATE INDEX ix_orders_auto_processed ON {t}orders(auto_processed_at);
CREATE INDEX ix_delivery_notes_printed ON {t}delivery_notes(printed_at);
CREATE INDEX ix_delivery_notes_order ON {t}delivery_notes(order_id)
"""


def generate_sqlite(path: Path, orders: int, years: int = YEARS) -> None:
    """N orders over ten years up to TODAY: one line, a delivery note (10 %: two), 30 %
    auto-processed, review flag 1/0/NULL in turn. Recursive CTEs: no Python row loop."""
    span = years * 365 * 24 * 3600  # seconds the orders spread over
    start = datetime.combine(TODAY - timedelta(days=years * 365), datetime.min.time())
    conn = sqlite3.connect(str(path))
    conn.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + SCHEMA)
    customers = max(orders // 10, 1)
    step = span / orders
    seq = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
    ts = "strftime('%Y-%m-%d %H:%M:%S', ?, '+' || CAST({x} AS INTEGER) || ' seconds')"
    conn.execute(
        seq + "INSERT INTO customers SELECT i, 'Kunde ' || i, 'kunde' || i || '@example.ch', "
        "'CH', CASE WHEN i % 8 = 0 THEN 'en' ELSE 'de' END, 'email', 0, NULL FROM n",
        [customers],
    )
    conn.execute(
        seq
        + "INSERT INTO orders SELECT i, 'A-' || i, 1 + i % ?, NULL, 'SHOP-CH', "
        + ts.format(x="i * ?")
        + ", CASE i % 3 WHEN 0 THEN 1 WHEN 1 THEN 0 ELSE NULL END, "
        "CASE WHEN i % 10 < 3 THEN " + ts.format(x="i * ? + 600") + " END, NULL FROM n",
        [orders, customers, str(start), step, str(start), step],
    )
    conn.execute(
        "INSERT INTO order_lines SELECT id, 1, 'ART-1', 'Artikel 1', 2, 2, 'Stk' FROM orders"
    )
    conn.execute(
        "INSERT INTO delivery_notes (id, number, order_id, printed_at) SELECT id, 'LS-' || id, id, "
        "strftime('%Y-%m-%d %H:%M:%S', order_date, '+1 day') FROM orders"
    )
    conn.execute(
        "INSERT INTO delivery_notes (id, number, order_id, printed_at) "
        "SELECT ? + id, 'LS-' || (? + id), id, "
        "strftime('%Y-%m-%d %H:%M:%S', order_date, '+5 days') FROM orders WHERE id % 10 = 0",
        [orders, orders],
    )
    # a second note dated after "now" would be invisible anyway; keep the data in the past
    conn.execute("DELETE FROM delivery_notes WHERE printed_at > ?", [f"{TODAY} 00:00:00"])
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def generate_server(db: Database, orders: int, years: int = YEARS) -> None:
    """The same data as :func:`generate_sqlite`, in ``bench_review`` on a server."""
    postgres = db.dialect is Dialect.POSTGRESQL
    t = SCHEMA_NAME + "."
    start = datetime.combine(TODAY - timedelta(days=years * 365), datetime.min.time())
    step = years * 365 * 24 * 3600 / orders
    customers = max(orders // 10, 1)

    def series(n: int) -> str:
        return (
            f"(SELECT generate_series(1, {n}) AS i) n"
            if postgres
            else (f"(SELECT seq AS i FROM seq_1_to_{n}) n")
        )

    def plus_seconds(base: str, seconds: str) -> str:
        if postgres:
            return f"{base} + {seconds} * INTERVAL '1 second'"
        return f"{base} + INTERVAL {seconds} SECOND"

    order_date = plus_seconds(f"TIMESTAMP '{start}'", f"FLOOR(i * {step!r})")
    drop_server(db)
    if postgres:
        db.execute(f"CREATE SCHEMA {SCHEMA_NAME}")
    else:
        db.execute(f"CREATE DATABASE {SCHEMA_NAME} CHARACTER SET utf8mb4")
    phone: list[tuple[str, Kind]] = [("mobile", "text")]
    for statement in ddl(db.dialect, lambda table: t + table, extra={"customers": phone}):
        db.execute(statement)
    statements = [
        f"INSERT INTO {t}customers SELECT i, CONCAT('Kunde ', i), CONCAT('kunde', i, "
        "'@example.ch'), 'CH', CASE WHEN i % 8 = 0 THEN 'en' ELSE 'de' END, 'email', 0, NULL "
        f"FROM {series(customers)}",
        f"INSERT INTO {t}orders SELECT i, CONCAT('A-', i), 1 + i % {customers}, NULL, "
        f"'SHOP-CH', {order_date}, CASE i % 3 WHEN 0 THEN 1 WHEN 1 THEN 0 ELSE NULL END, "
        f"CASE WHEN i % 10 < 3 THEN {plus_seconds(order_date, '600')} END, NULL "
        f"FROM {series(orders)}",
        f"INSERT INTO {t}order_lines SELECT id, 1, 'ART-1', 'Artikel 1', 2, 2, 'Stk' "
        f"FROM {t}orders",
        f"INSERT INTO {t}delivery_notes (id, number, order_id, printed_at) "
        f"SELECT id, CONCAT('LS-', id), id, "
        f"{plus_seconds('order_date', str(24 * 3600))} FROM {t}orders",
        f"INSERT INTO {t}delivery_notes (id, number, order_id, printed_at) "
        f"SELECT {orders} + id, CONCAT('LS-', {orders} + id), "
        f"id, {plus_seconds('order_date', str(5 * 24 * 3600))} FROM {t}orders "
        "WHERE id % 10 = 0",
        f"DELETE FROM {t}delivery_notes WHERE printed_at > TIMESTAMP '{TODAY} 00:00:00'",
        *SERVER_INDEXES.format(t=t).split(";"),
    ]
    for statement in statements:
        db.execute(statement)
        db.commit()
    tables = ", ".join(t + name for name in TABLES)
    if postgres:
        db.execute(f"ANALYZE {tables}")
    else:
        list(db.stream(f"ANALYZE TABLE {tables}"))  # it answers with a row per table
    db.commit()


def settings_for(directory: Path, erp: dict[str, object]) -> Settings:
    data = {
        "erp": erp,
        "email": {
            "default_account": "a",
            "accounts": {"a": {"transport": "file", "directory": str(directory), "from": "a@b.ch"}},
        },
        "review": {
            "delay_days": 7,
            "max_age_days": 14,
            "default_status": True,
            "on_delivery_note_print": True,
            "on_auto_processing": True,
            "portal_url": "https://example.ch/r/{order_number}",
        },
    }
    path = directory / "proit-notify.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return load_settings(path)


def drop_server(db: Database) -> None:
    """Remove the generated ERP from the server (the test suite shares it)."""
    kind = "SCHEMA" if db.dialect is Dialect.POSTGRESQL else "DATABASE"
    db.execute(f"DROP {kind} IF EXISTS {SCHEMA_NAME}" + (" CASCADE" if kind == "SCHEMA" else ""))
    db.commit()


def make_erp(kind: str, directory: Path, orders: int, years: int) -> dict[str, object]:
    """Generate the ERP; its ``[erp]`` settings."""
    if kind == "sqlite":
        path = directory / "erp.sqlite"
        generate_sqlite(path, orders, years)
        return {"sqlite": str(path)}
    admin = connect_odbc(SERVERS[kind])
    try:
        generate_server(admin, orders, years)
    finally:
        admin.close()
    # the logical names, in their own schema: through the mapping, as a real ERP would be
    return {"odbc": SERVERS[kind], "tables": {name: f"{SCHEMA_NAME}.{name}" for name in TABLES}}


def run(kind: str, orders: int, repeat: int, years: int = YEARS) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        erp_settings = make_erp(kind, directory, orders, years)
        print(
            f"\n{kind}: {orders:,} orders over {years} years: "
            f"generated in {time.perf_counter() - t0:.1f} s"
        )
        settings = settings_for(directory, erp_settings)
        clock = Clock.parse(TODAY.isoformat(), ZoneInfo(settings.service.timezone))
        start, end = clock.event_window(7, 14)
        erp = Erp(connect(settings.erp), settings.erp, None)
        ledger = Ledger(connect_sqlite(Path(":memory:"), create=True), "ledger", settings.retry)
        ledger.ensure_schema()
        sources = ErpSources(erp, ledger)
        job = ReviewRequests()
        # the bare query runs on a connection of its own, through the same driver
        raw = connect(settings.erp)
        bare_sql = BARE.format(t="" if kind == "sqlite" else SCHEMA_NAME + ".")
        bare_params = raw.params([start, end, start, end, start, start])

        def plan() -> int:
            return sum(1 for _ in job.plan(sources, settings, clock))

        def selection() -> int:
            candidates = job.candidate_query(settings, clock)
            assert candidates is not None  # both events are enabled
            sql, params = candidates
            return sum(1 for _ in sources.query(sql, params, key="order_id"))

        def bare() -> int:
            cursor = raw.conn.cursor()
            try:
                return len(cursor.execute(bare_sql, bare_params).fetchall())
            finally:
                cursor.close()

        counts = {"bare": bare(), "selection": selection(), "plan": plan()}  # also warms up
        assert len(set(counts.values())) == 1, counts  # the same orders, all due
        times: dict[str, list[float]] = {name: [] for name in counts}
        for _ in range(repeat):
            for name, fn in (("bare", bare), ("selection", selection), ("plan", plan)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        tracemalloc.start()
        plan()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        b, q, o = (statistics.median(times[n]) for n in ("bare", "selection", "plan"))
        print(f"  due orders: {counts['plan']:,} (window {start:%Y-%m-%d} .. {end:%Y-%m-%d %H:%M})")
        print(f"  bare SQL          : {b * 1000:8.1f} ms (median of {repeat})")
        print(f"  job's selection   : {q * 1000:8.1f} ms  ratio {q / b:.2f} (target <= 1.5)")
        print(
            f"  whole plan()      : {o * 1000:8.1f} ms  ratio {o / b:.2f} (+ notes, ledger, items,"
        )
        print("                      Notification objects: per due order, not per ERP row)")
        print(f"  peak memory of one plan() pass: {peak / 1e6:.2f} MB")
        trips, sent = round_trips(settings, clock, settings.erp)
        batches = -(-sent // BATCH)
        print(
            f"  ERP round trips of a real review-requests run: {trips} for {sent:,} requests "
            f"(batches of {BATCH}: {batches}; per message: {trips / max(sent, 1):.3f})"
        )
        raw.close()
        erp.close()
        ledger.close()
        if kind != "sqlite":
            admin = connect_odbc(SERVERS[kind])
            drop_server(admin)
            admin.close()


def round_trips(settings: Settings, clock: Clock, erp: object) -> tuple[int, int]:
    """ERP statements of a real run of the job (sent into .eml files), and its sent count."""
    from proit_notify.assembly import session
    from proit_notify.runner import RunOptions

    counted: list[str] = []
    execute = Database._execute
    ledger_path = str(settings.ledger_path)

    def counting(self: Database, sql: str, params: object) -> object:
        if ledger_path not in self.where:
            counted.append(sql)
        return execute(self, sql, params)  # type: ignore[arg-type]

    Database._execute = counting  # type: ignore[method-assign,assignment]
    try:
        with session(settings, clock) as s:
            report = s.runner.run(ReviewRequests(), RunOptions())
    finally:
        Database._execute = execute  # type: ignore[method-assign]
    return len(counted), report.counts["sent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="ERP size (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--erp",
        choices=["sqlite", *SERVERS],
        action="append",
        help="where the ERP is made (repeatable; default sqlite); postgresql and mariadb use "
        f"the local server through ODBC, in a schema {SCHEMA_NAME} made and dropped by the run",
    )
    parser.add_argument(
        "--years",
        type=int,
        action="append",
        help="history the orders spread over, one per --orders (default 10): the same orders "
        "per day on a larger ERP (--orders 100000 --years 1 --orders 1000000 --years 10) "
        "shows whether memory stays flat as the ERP grows",
    )
    args = parser.parse_args()
    sizes = args.orders or [1_000_000]
    spans = args.years or [YEARS] * len(sizes)
    if len(spans) != len(sizes):
        parser.error("give one --years per --orders")
    for kind in args.erp or ["sqlite"]:
        for orders, years in zip(sizes, spans, strict=True):
            run(kind, orders, args.repeat, years)


if __name__ == "__main__":
    main()
