"""ERP text is data (SPEC §5, §7): hostile rows beside clean ones, through the whole CLI.

On the four backends, under cron (no terminal) and on a terminal: the clean rows arrive,
each hostile row fails with its reason, the run exits 1 and nothing crashes, in a dry run,
a real run and ``history``; no log line can be forged and no extra header reaches the server.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import pytest
from cli_runner import Cli
from ledger_rows import ledger_rows
from scenario import shop
from smtp_server import SmtpServer, email_section

from proit_notify import cli as cli_module

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 9, 0)
INJECT = "=?utf-8?q?x=0D=0ABcc=3A_spy=40evil=2Eorg?="
SHORT_INJECT = "=?utf8?q?=0ACc:a@b?="  # fits the test ERP's VARCHAR(20) order number

#: (customer fields, order number): each one makes its confirmation fail
HOSTILE = [
    ({"name": INJECT}, "A-1"),
    ({"name": "Kunde"}, SHORT_INJECT),  # the order number is in the subject
    ({"email": "kunde@example.ch\r\nERROR forged line"}, "A-4"),
]
#: a NUL: refused where the driver hands it over (some drivers cut the text there)
NUL = ({"name": "Nul\x00Byte"}, "A-3")
#: rows that look odd but are fine: they arrive as typed
ODD = [
    ({"name": "[/][link=https://evil.example]Klick[/link]"}, "A-[/]5"),
    ({"name": "Ä" * 200}, "A-6"),  # the test schema holds 200; the 5,000 case: test_email_headers
]


@pytest.mark.parametrize("terminal", [False, True], ids=["cron", "terminal"])
def test_hostile_rows_fail_with_a_reason_and_clean_ones_arrive(
    erp_backend: Any,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    terminal: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if terminal:
        for console in (cli_module.out, cli_module.err):
            monkeypatch.setattr(console, "_force_terminal", True)
    s = shop(erp_backend)
    notes = {}
    for n, (customer, number) in enumerate([*HOSTILE, NUL, *ODD]):
        fields = {"email": f"kunde{n}@example.ch", **customer}
        notes[number] = s.delivery_note(s.order(s.customer(**fields), number=number), PRINTED)
    clean = s.delivery_note(s.order(s.customer(email="sauber@example.ch")), PRINTED)
    config = write_config(email=email_section(smtp_server))

    dry = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF, "--dry-run")
    assert dry.exit_code == 1, dry.stderr
    [planned] = dry.json()
    statuses = {i["key"]: (i["status"], i["reason"]) for i in planned["items"]}
    for _, number in HOSTILE:
        status, reason = statuses[f"shipping:{notes[number]}"]
        assert status == "failed", (number, status, reason)
        assert "refused" in reason or "invalid email address" in reason
    assert statuses[f"shipping:{clean}"] == ("planned", "")
    nul_status, _ = statuses[f"shipping:{notes[NUL[1]]}"]
    # SQLite and MariaDB keep a NUL; PostgreSQL's and SQLite's ODBC drivers cut the text there
    kept = erp_backend.name in {"sqlite", "mariadb"}
    assert nul_status == ("failed" if kept else "planned")
    failed = len(HOSTILE) + (nul_status == "failed")
    assert all(statuses[f"shipping:{notes[n]}"][0] == "planned" for _, n in ODD)
    assert smtp_server.messages == []
    assert ledger_rows(config) == []

    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 1, run.stderr
    assert "internal error" not in run.stderr
    assert f"{failed} failed" in run.stdout
    expected = ["sauber@example.ch", "kunde4@example.ch", "kunde5@example.ch"]
    if nul_status == "planned":
        expected.append("kunde3@example.ch")
    assert len(smtp_server.messages) == len(expected)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(expected)
    for mail in smtp_server.messages:
        assert b"\x00" not in mail.raw
        assert "bcc" not in {k.lower() for k in mail.message}
        assert "spy@evil.org" not in mail.raw.decode("ascii", "replace")
    rows = {r.key: (r.status, r.detail) for r in ledger_rows(config)}
    assert {rows[f"shipping:{notes[n]}"][0] for _, n in HOSTILE} == {"failed"}
    # no log line begins with the forged text: the CR/LF of the address is shown escaped
    lines = run.stderr.splitlines()
    assert not any(line.startswith("ERROR forged") for line in lines)
    if not terminal:  # under cron every item is a log line
        assert any("\\r\\nERROR forged" in line for line in lines)

    history = cli("-c", config, "history")
    assert history.exit_code == 0
    assert "internal error" not in history.stderr
    assert history.stdout.rstrip().endswith(f"{len(HOSTILE) + len(ODD) + 2} row(s)")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_the_ledger_and_the_outbox_are_readable_by_their_owner_only(
    erp_backend: Any, write_config: Any, cli: Cli, tmp_path: Any
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), PRINTED)
    outbox = tmp_path / "outbox"
    config = write_config(
        email={
            "default_account": "file",
            "accounts": {
                "file": {"transport": "file", "directory": str(outbox), "from": "s@example.ch"}
            },
        }
    )
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    ledger = tmp_path / "ledger.sqlite"
    files = [ledger, *outbox.glob("*.eml")]
    assert len(files) == 2
    for path in files:
        assert path.stat().st_mode & 0o077 == 0, path
    # a ledger left readable by an earlier version is tightened on the next run
    ledger.chmod(0o644)
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    assert ledger.stat().st_mode & 0o077 == 0
