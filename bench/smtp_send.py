"""Send rate of shipping confirmations against mailmerge and a plain smtplib loop.

All send N comparable text+HTML messages to the same local SMTP sink (aiosmtpd in its own
process, so it has the second core), in one run, alternately:

- **plain**: a plain loop on one reused smtplib connection that sends N messages of the
  same text and HTML body, built beforehand (``sendmail`` of bytes, nothing else: the
  floor of Python and this sink on one connection);
- **mailmerge**: mailmerge 2.3.0, the command line mail merge people would pick instead,
  as its command (``mailmerge --no-dry-run --no-limit``) with a multipart/alternative
  template of the same bodies and a CSV of the N recipients; one connection per message;
- **ours**: ``proit-notify shipping-confirmations`` as its command: the ERP selection (an
  embedded SQLite ERP with N printed delivery notes), the items, the templates, the
  re-check, the ledger claim (durable before SMTP) and the outcome, SMTP.

Ratios mailmerge/ours and ours/plain (time) are printed, medians of ``--rounds`` rounds
(each round runs the three in turn). ``--latency-ms`` makes the
sink wait before it answers MAIL, RCPT and DATA (a relay across a WAN); ``--curve`` runs
ours with 1, 2, 4, 8 and 16 connections.

    pip install mailmerge==2.3.0
    python bench/smtp_send.py --n 2000
    python bench/smtp_send.py --n 500 --latency-ms 10 --connections 8 --curve
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import multiprocessing
import pstats
import shutil
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import tomli_w

from proit_notify.demo import SCHEMA


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sink(port: int, ready: multiprocessing.synchronize.Event, latency: float) -> None:  # type: ignore[name-defined]
    import asyncio

    from aiosmtpd.controller import Controller

    class Handler:
        # a relay across a WAN: each reply to MAIL, RCPT and DATA takes ``latency``
        async def handle_MAIL(
            self, server: object, session: object, envelope: Any, address: str, options: Any
        ) -> str:
            if latency:
                await asyncio.sleep(latency)
            envelope.mail_from = address
            envelope.mail_options.extend(options)
            return "250 OK"

        async def handle_RCPT(
            self, server: object, session: object, envelope: Any, address: str, options: Any
        ) -> str:
            if latency:
                await asyncio.sleep(latency)
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
            return "250 OK"

        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            if latency:
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
        "INSERT INTO customers VALUES (?, ?, ?, 'CH', 'de', 'email', 0, NULL)",
        [(i, f"Kunde Müller {i}", f"kunde{i}@example.ch") for i in range(1, n + 1)],
    )
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, NULL, NULL, ?, 1, NULL, NULL)",
        [(i, f"A-{i}", i, printed.date().isoformat()) for i in range(1, n + 1)],
    )
    conn.executemany(
        "INSERT INTO delivery_notes (id, number, order_id, printed_at) VALUES (?, ?, ?, ?)",
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
    """The plain loop: N messages built beforehand (not timed), then sent on one connection
    with nothing else done (the floor of Python and this sink on one connection)."""
    messages = []
    for i in range(1, n + 1):
        msg = EmailMessage()
        msg["From"] = "Shop <shop@example.ch>"
        msg["To"] = f"Kunde Müller {i} <kunde{i}@example.ch>"
        msg["Subject"] = f"Versandbestätigung: Lieferschein LS-{i}"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        messages.append((f"kunde{i}@example.ch", msg.as_bytes(policy=SMTP)))
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for to, data in messages:
            smtp.sendmail("shop@example.ch", [to], data)
    return time.perf_counter() - start


def mailmerge(folder: Path, port: int, n: int, text: str, html: str) -> float:
    """mailmerge's command on N rows: a multipart/alternative template of the same bodies."""
    exe = shutil.which("mailmerge")
    if exe is None:
        sys.exit("mailmerge is not installed: pip install mailmerge==2.3.0")
    template = folder / "mailmerge_template.txt"
    template.write_text(
        "TO: {{name}} <{{email}}>\nSUBJECT: Versandbestätigung: Lieferschein {{note}}\n"
        "FROM: Shop <shop@example.ch>\nMIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="b0undary"\n\n'
        "--b0undary\nContent-Type: text/plain; charset=utf-8\n\n"
        + "{% raw %}"
        + text
        + "{% endraw %}\n"
        "--b0undary\nContent-Type: text/html; charset=utf-8\n\n"
        + "{% raw %}"
        + html
        + "{% endraw %}\n--b0undary--\n",
        encoding="utf-8",
    )
    database = folder / "mailmerge_database.csv"
    with database.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name", "note"])
        writer.writerows(
            [f"kunde{i}@example.ch", f"Kunde Müller {i}", f"LS-{i}"] for i in range(1, n + 1)
        )
    server = folder / "mailmerge_server.conf"
    server.write_text(f"[smtp_server]\nhost = 127.0.0.1\nport = {port}\n", encoding="utf-8")
    command = [exe, "--no-dry-run", "--no-limit", "--output-format", "raw"]
    command += ["--template", str(template), "--database", str(database)]
    command += ["--config", str(server)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _config(folder: Path, port: int, connections: int, run: str) -> Path:
    """Settings of one run of ours, with a ledger of its own (every run sends all N)."""
    config = folder / f"proit-notify-{run}.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "erp": {"sqlite": "erp.sqlite"},
                "ledger": {"sqlite": f"ledger-{run}.sqlite"},
                "email": {
                    "default_account": "shop",
                    "accounts": {
                        "shop": {
                            "host": "127.0.0.1",
                            "port": port,
                            "security": "none",
                            "from": "Shop <shop@example.ch>",
                            "connections": connections,
                        }
                    },
                },
            }
        ),
        encoding="utf-8",
    )
    return config


def ours(config: Path, as_of: str) -> tuple[float, int]:
    """``proit-notify shipping-confirmations`` as a user runs it; (seconds, sent)."""
    exe = shutil.which("proit-notify") or sys.exit("proit-notify is not installed")
    command = [exe, "--config", str(config), "shipping-confirmations", "--as-of", as_of]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - start
    run = config.stem.removeprefix("proit-notify-")
    ledger = sqlite3.connect(config.parent / f"ledger-{run}.sqlite")
    sent = ledger.execute("SELECT COUNT(*) FROM proit_notify_ledger WHERE status = 'sent'")
    return took, int(sent.fetchone()[0])


def profile(config: Path, as_of: str, out: Path) -> None:
    """The job in this process under cProfile (``--profile FILE``): where ours spends."""
    from proit_notify.assembly import session
    from proit_notify.clock import Clock
    from proit_notify.jobs.shipping import ShippingConfirmations
    from proit_notify.runner import RunOptions
    from proit_notify.settings import load_settings

    settings = load_settings(config)
    clock = Clock.parse(as_of, settings.service.tz)
    with cProfile.Profile() as prof, session(settings, clock) as s:
        s.runner.run(ShippingConfirmations(), RunOptions())
    prof.dump_stats(str(out))
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="relay delay per reply")
    parser.add_argument("--connections", type=int, default=1, help="email.accounts.*.connections")
    parser.add_argument("--curve", action="store_true", help="ours with 1, 2, 4, 8, 16 connections")
    parser.add_argument("--no-mailmerge", action="store_true", help="leave mailmerge out")
    parser.add_argument("--profile", type=Path, help="also profile ours in-process into FILE")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the three; medians")
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
        as_of = (printed + timedelta(hours=1)).isoformat()
        text, html = _sample(_config(folder, port, 1, "sample"), as_of)
        bases, mergeds, tooks = [], [], []
        sent = args.n
        for r in range(args.rounds):
            bases.append(baseline(port, args.n, text, html))
            if not args.no_mailmerge:
                mergeds.append(mailmerge(folder, port, args.n, text, html))
            took, got = ours(_config(folder, port, args.connections, f"main{r}"), as_of)
            tooks.append(took)
            sent = min(sent, got)
        base, took = statistics.median(bases), statistics.median(tooks)
        merged = statistics.median(mergeds) if mergeds else None
        if args.rounds > 1:
            rounds = zip(bases, mergeds or bases, tooks, strict=True)
            print(
                "rounds (plain, mailmerge, ours):", [tuple(round(t, 2) for t in r) for r in rounds]
            )
        curve = []
        if args.curve:
            for c in (1, 2, 4, 8, 16):
                curve.append((c, *ours(_config(folder, port, c, f"c{c}"), as_of)))
        if args.profile:
            profile(_config(folder, port, args.connections, "profile"), as_of, args.profile)
    sink.terminate()
    if sent != args.n or any(n != args.n for _, _, n in curve):
        sys.exit(f"not every confirmation was sent ({sent} of {args.n})")
    print(
        f"messages:            {args.n}  (relay delay {args.latency_ms} ms per reply, "
        f"{args.connections} connection(s) for ours)"
    )
    print(f"plain smtplib loop:  {base:6.2f} s  {args.n / base:7.0f} msg/s  (pre-built)")
    if merged is not None:
        print(f"mailmerge 2.3.0:     {merged:6.2f} s  {args.n / merged:7.0f} msg/s")
    print(f"proit-notify:        {took:6.2f} s  {args.n / took:7.0f} msg/s")
    if merged is not None:
        print(f"mailmerge/ours:      {merged / took:.2f}  (time; target >= 2.0)")
    print(f"ours/plain:          {took / base:.2f}  (time; target <= 1.3)")
    for c, t, _ in curve:
        print(f"  connections {c:2d}:    {t:6.2f} s  {args.n / t:7.0f} msg/s")


def _sample(config: Path, as_of: str) -> tuple[str, str]:
    """The text and HTML body our templates make for the first note (both sides send them)."""
    from proit_notify.assembly import session
    from proit_notify.clock import Clock
    from proit_notify.jobs.shipping import ShippingConfirmations
    from proit_notify.runner import RunOptions
    from proit_notify.settings import load_settings

    settings = load_settings(config)
    clock = Clock.parse(as_of, settings.service.tz)
    with session(settings, clock, lock=False, dry_run=True) as s:
        report = s.runner.run(
            ShippingConfirmations(), RunOptions(dry_run=True, limit=1, preview=True)
        )
    sample = report.items[0].preview
    assert sample is not None
    assert sample.html is not None
    return sample.text, sample.html


if __name__ == "__main__":
    main()
