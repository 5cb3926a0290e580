"""Options where people write them (issue 26, SPEC §7): the global ones after the command
too, ``-h`` everywhere, an error as JSON under ``--json``, ``--preview`` never sends."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from cli_runner import Cli, cli

from proit_notify.cli import hoisted
from proit_notify.demo import create_demo

__all__ = ["cli"]  # fixture


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    made = create_demo(tmp_path_factory.mktemp("demo") / "demo", today=date(2026, 11, 27))
    return made.config_path


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (["history", "--json"], ["--json", "history"]),
        (["history", "-c", "x.toml", "--json"], ["-c", "x.toml", "--json", "history"]),
        (["-c", "x.toml", "status", "-q"], ["-c", "x.toml", "-q", "status"]),
        (["ledger", "resolve", "K", "--sent", "--config=x.toml"],
         ["--config=x.toml", "ledger", "resolve", "K", "--sent"]),
        (["-c", "status", "history"], ["-c", "status", "history"]),  # a value, not a command
        (["optout", "add", "--", "-v"], ["optout", "add", "--", "-v"]),
        ([], []),
    ],
)  # fmt: skip
def test_global_options_after_the_command_are_moved_before_it(
    written: list[str], read: list[str]
) -> None:
    assert hoisted(written) == read


@pytest.mark.parametrize(
    "args",
    [
        ("history", "--json"),
        ("status", "--json"),
        ("optout", "list", "--json"),
        ("--json", "history"),
    ],
)
def test_json_after_the_command_prints_json(demo: Path, cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args, "-c", demo)

    assert result.exit_code in (0, 1), result.stderr  # status: 1 while nothing ran yet
    json.loads(result.stdout)


@pytest.mark.parametrize("args", [("-h",), ("history", "-h"), ("ledger", "resolve", "-h")])
def test_dash_h_is_help(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)

    assert result.exit_code == 0, result.stderr
    assert "Usage: proit-notify" in result.stdout


def test_an_error_under_json_is_a_json_document(cli: Cli, tmp_path: Path) -> None:
    result = cli("status", "--json", "-c", tmp_path / "missing.toml")

    assert result.exit_code == 3
    error = json.loads(result.stdout)
    assert error["exit_code"] == 3
    assert "not found" in error["error"]


def test_preview_without_dry_run_sends_nothing(cli: Cli, tmp_path: Path) -> None:
    demo = create_demo(tmp_path / "demo", today=date(2026, 11, 27)).config_path
    result = cli("-c", demo, "shipping-confirmations", "--preview", "--limit", "2")

    assert result.exit_code == 0, result.stderr
    assert "(dry run)" in result.stdout
    assert "Subject:" in result.stdout
    assert not (demo.parent / "ledger.sqlite").exists()
    assert list((demo.parent / "outbox").iterdir()) == []


def test_redirected_output_is_the_summary_first_then_plain_lines_with_a_header(
    cli: Cli, tmp_path: Path
) -> None:
    demo = create_demo(tmp_path / "demo", today=date(2026, 11, 27)).config_path
    result = cli("-c", demo, "shipping-confirmations", "--dry-run", "--as-of", "2026-11-27T12:00")

    assert result.exit_code == 1, result.stderr  # the demo's invalid addresses would fail
    lines = result.stdout.splitlines()
    assert lines[0].startswith("shipping-confirmations (dry run): ")
    assert not set("┃│┏━┡└─") & set(result.stdout)  # no box characters in a file
    header = lines.index("key\tdocument\tchannel\trecipient\taccount\tstatus\treason\tattachments")
    assert all(line.count("\t") == 7 for line in lines[header:])
    problems = lines[1:header]
    assert problems  # the demo has invalid addresses: grouped by reason before the rows
    assert all(" failed: " in p or " skipped: " in p for p in problems)


def test_a_real_run_shows_the_summary_and_the_problems_not_every_row(
    cli: Cli, tmp_path: Path
) -> None:
    demo = create_demo(tmp_path / "demo", today=date(2026, 11, 27)).config_path
    first = ("shipping-confirmations", "--limit", "3", "--as-of", "2026-11-27T12:00")
    listed = cli("-c", demo, *first, "--list")
    assert "key\tdocument" in listed.stdout  # --list: every row, after the summary
    assert listed.stdout.startswith("shipping-confirmations: 3 sent")
    result = cli("-c", demo, "run-all", "--as-of", "2026-11-27T12:00")

    assert result.exit_code == 1, result.stderr  # the demo's invalid addresses
    lines = result.stdout.splitlines()
    assert len(lines) < 60, result.stdout  # hundreds of sends, a screen of output
    assert lines[-1].startswith("total: ")
    sent = sum(int(line.split(": ")[1].split(" sent")[0]) for line in lines
               if " sent, " in line and not line.startswith("total"))  # fmt: skip
    assert sent > 300
    assert f"total: {sent} sent" in lines[-1]


def _on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the console command on a real pseudo-terminal (what a person sees): its exit
    code and the screen's text, escape sequences removed."""
    import os
    import pty
    import subprocess
    import sys

    import pyte

    master, slave = pty.openpty()
    code = "from proit_notify.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=slave, stdout=slave, stderr=slave,
        cwd=cwd, env={**os.environ, "COLUMNS": "120", "TERM": "xterm"}, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other side closed: the process ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    # what the terminal shows: the bytes played on an emulated screen (pyte), so cursor
    # moves and erased lines count as a person sees them
    screen = pyte.Screen(120, 400)
    pyte.Stream(screen).feed(b"".join(chunks).decode("utf-8", "replace"))
    shown = [line.rstrip() for line in screen.display]
    while shown and not shown[-1]:
        shown.pop()
    return process.wait(60), "\n".join(shown)


def test_a_terminal_run_of_the_demo_is_a_screen_not_a_table_of_every_row(
    tmp_path: Path,
) -> None:
    demo = create_demo(tmp_path / "demo", today=date(2026, 11, 27)).config_path

    args = ["-c", str(demo), "run-all", "--as-of", "2026-11-27T12:00"]
    code, screen = _on_a_terminal(args, tmp_path)

    assert code == 1, screen  # the demo's invalid addresses
    summaries = [line for line in screen.splitlines() if " sent, " in line]
    assert len(summaries) == 5, screen  # four jobs and the total
    assert summaries[-1].startswith("total: ")
    assert int(summaries[-1].split("total: ")[1].split(" sent")[0]) > 300
    assert len(screen.splitlines()) < 40, screen  # hundreds of sends: one screen
    assert not re.search(r"\d+/~?\d+ \d:\d\d:\d\d", screen)  # the progress line leaves no trace
    assert not set("┃│┏") & set(screen)  # no table of rows without --list
