"""Benchmark: review-requests' due selection on a large generated ERP (issue 4).

Generates an SQLite ERP in the logical schema of the demo (same tables, same indexes) with
N orders over ten years, then times, alternately and in one run:

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
    python bench/review_select.py --orders 100000 --orders 1000000   # memory: flat?
"""

from __future__ import annotations

import argparse
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
from proit_notify.core import _Sources
from proit_notify.demo import SCHEMA
from proit_notify.erp import Erp, connect, connect_sqlite
from proit_notify.jobs.review import ReviewRequests
from proit_notify.ledger import Ledger
from proit_notify.settings import Settings, load_settings

TODAY = date(2026, 11, 27)
YEARS = 10

BARE = """
WITH ev(oid) AS (
    SELECT dn.order_id FROM delivery_notes dn WHERE dn.printed_at >= :s AND dn.printed_at <= :e
    UNION
    SELECT o.id FROM orders o WHERE o.auto_processed_at >= :s AND o.auto_processed_at <= :e
)
SELECT o.id, o.number, o.order_date, o.shop, o.contact_id, o.auto_processed_at,
       c.id, c.name, c.email, c.mobile, c.country, c.language, c.info_type,
       k.name, k.email, k.mobile
FROM ev JOIN orders o ON o.id = ev.oid
JOIN customers c ON c.id = o.customer_id LEFT JOIN contacts k ON k.id = o.contact_id
WHERE (o.review_mail = 1 OR o.review_mail IS NULL)
  AND NOT EXISTS (SELECT 1 FROM delivery_notes d WHERE d.order_id = o.id AND d.printed_at < :s)
  AND (o.auto_processed_at IS NULL OR o.auto_processed_at >= :s)
"""


def generate(path: Path, orders: int, years: int = YEARS) -> None:
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
        "'CH', CASE WHEN i % 8 = 0 THEN 'en' ELSE 'de' END, 'email', NULL FROM n",
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
        "INSERT INTO delivery_notes SELECT id, 'LS-' || id, id, "
        "strftime('%Y-%m-%d %H:%M:%S', order_date, '+1 day') FROM orders"
    )
    conn.execute(
        "INSERT INTO delivery_notes SELECT ? + id, 'LS-' || (? + id), id, "
        "strftime('%Y-%m-%d %H:%M:%S', order_date, '+5 days') FROM orders WHERE id % 10 = 0",
        [orders, orders],
    )
    # a second note dated after "now" would be invisible anyway; keep the data in the past
    conn.execute("DELETE FROM delivery_notes WHERE printed_at > ?", [f"{TODAY} 00:00:00"])
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def settings_for(directory: Path, erp: Path) -> Settings:
    data = {
        "erp": {"sqlite": str(erp)},
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


def run(orders: int, repeat: int, years: int = YEARS) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        erp_path = directory / "erp.sqlite"
        t0 = time.perf_counter()
        generate(erp_path, orders, years)
        print(
            f"\n{orders:,} orders over {years} years: generated in {time.perf_counter() - t0:.1f} s"
        )
        settings = settings_for(directory, erp_path)
        clock = Clock.parse(TODAY.isoformat(), ZoneInfo(settings.service.timezone))
        start, end = clock.event_window(7, 14)
        erp = Erp(connect(settings.erp), settings.erp, None)
        ledger = Ledger(connect_sqlite(Path(":memory:"), create=True), "ledger", settings.retry)
        ledger.ensure_schema()
        sources = _Sources(erp, ledger)
        job = ReviewRequests()
        raw = sqlite3.connect(str(erp_path))
        params = {"s": str(start), "e": str(end)}

        def plan() -> int:
            return sum(1 for _ in job.plan(sources, settings, clock))

        def selection() -> int:
            candidates = job.candidate_query(settings, clock)
            assert candidates is not None  # both events are enabled
            return sum(1 for _ in sources.query(*candidates))

        def bare() -> int:
            return len(raw.execute(BARE, params).fetchall())

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
        raw.close()
        erp.close()
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append", help="ERP size (repeatable)")
    parser.add_argument("--repeat", type=int, default=5)
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
    for orders, years in zip(sizes, spans, strict=True):
        run(orders, args.repeat, years)


if __name__ == "__main__":
    main()
