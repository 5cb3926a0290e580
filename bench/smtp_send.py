"""Send rate of shipping confirmations against a plain smtplib loop (issue 3).

Both send N messages to the same local SMTP sink (aiosmtpd in its own process, so it has
the second core). The baseline is a plain loop on one reused smtplib connection that builds
an EmailMessage of the same size (text + HTML) and calls send_message. "Ours" is the whole
job: ERP selection, items, templates, ledger claim and record (two commits per message),
SMTP. The ratio ours/baseline is printed; the target is >= 0.8.

    python bench/smtp_send.py [--n 5000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import smtplib
import socket
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import tomli_w

from proit_notify.assembly import session
from proit_notify.clock import Clock
from proit_notify.demo import SCHEMA
from proit_notify.jobs.shipping import ShippingConfirmations
from proit_notify.runner import RunOptions
from proit_notify.settings import load_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sink(port: int, ready: multiprocessing.synchronize.Event, latency: float) -> None:  # type: ignore[name-defined]
    import asyncio

    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            if latency:  # a distant or busy server: the reply to DATA takes a while
                await asyncio.sleep(latency)
            return "250 2.0.0 Ok: queued"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def _make_erp(path: Path, n: int, printed: datetime) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, 'CH', 'de', 'email', NULL)",
        [(i, f"Kunde Müller {i}", f"kunde{i}@example.ch") for i in range(1, n + 1)],
    )
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, NULL, NULL, ?, 1, NULL, NULL)",
        [(i, f"A-{i}", i, printed.date().isoformat()) for i in range(1, n + 1)],
    )
    conn.executemany(
        "INSERT INTO delivery_notes VALUES (?, ?, ?, ?)",
        [(i, f"LS-{i}", i, printed.strftime("%Y-%m-%d %H:%M:%S")) for i in range(1, n + 1)],
    )
    conn.executemany(
        "INSERT INTO delivery_note_lines VALUES (?, ?, ?, ?, ?, 'Stk')",
        [
            (i, line, f"ART-{line}", f"Artikel Nummer {line} – Größe L", line)
            for i in range(1, n + 1)
            for line in (1, 2)
        ],
    )
    conn.commit()
    conn.close()


def baseline(port: int, n: int, text: str, html: str) -> float:
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(1, n + 1):
            msg = EmailMessage()
            msg["From"] = "Shop <shop@example.ch>"
            msg["To"] = f"Kunde Müller {i} <kunde{i}@example.ch>"
            msg["Subject"] = f"Versandbestätigung: Lieferschein LS-{i}"
            msg.set_content(text)
            msg.add_alternative(html, subtype="html")
            smtp.send_message(msg)
    return time.perf_counter() - start


def ours(config: Path, as_of: str) -> tuple[float, int]:
    settings = load_settings(config)
    clock = Clock.parse(as_of, settings.service.tz)
    start = time.perf_counter()
    with session(settings, clock) as s:
        report = s.runner.run(ShippingConfirmations(), RunOptions())
    return time.perf_counter() - start, report.counts["sent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="server delay per message")
    parser.add_argument("--connections", type=int, default=1, help="email.accounts.*.connections")
    args = parser.parse_args()
    port = _free_port()
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(
        target=_sink, args=(port, ready, args.latency_ms / 1000), daemon=True
    )
    sink.start()
    ready.wait(10)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        printed = datetime(2026, 11, 27, 7, 0)
        _make_erp(folder / "erp.sqlite", args.n, printed)
        config = folder / "proit-notify.toml"
        config.write_text(
            tomli_w.dumps(
                {
                    "erp": {"sqlite": "erp.sqlite"},
                    "email": {
                        "default_account": "shop",
                        "accounts": {
                            "shop": {
                                "host": "127.0.0.1",
                                "port": port,
                                "security": "none",
                                "from": "Shop <shop@example.ch>",
                                "connections": args.connections,
                            }
                        },
                    },
                }
            ),
            encoding="utf-8",
        )
        as_of = (printed + timedelta(hours=1)).isoformat()
        # the same bodies our templates produce, so both sides send the same bytes
        settings = load_settings(config)
        with session(
            settings, Clock.parse(as_of, settings.service.tz), lock=False, dry_run=True
        ) as s:
            report = s.runner.run(
                ShippingConfirmations(), RunOptions(dry_run=True, limit=1, preview=True)
            )
        sample = report.items[0].preview
        assert sample is not None
        assert sample.html is not None
        base = baseline(port, args.n, sample.text, sample.html)
        took, sent = ours(config, as_of)
    sink.terminate()
    if sent != args.n:
        sys.exit(f"only {sent} of {args.n} confirmations were sent")
    base_rate, our_rate = args.n / base, args.n / took
    print(
        f"messages:            {args.n}  (server latency {args.latency_ms} ms, "
        f"{args.connections} connection(s) for ours)"
    )
    print(f"plain smtplib loop:  {base:6.2f} s  {base_rate:7.0f} msg/s")
    print(f"proit-notify job:    {took:6.2f} s  {our_rate:7.0f} msg/s")
    print(f"ratio (ours/plain):  {our_rate / base_rate:.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
