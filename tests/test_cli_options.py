"""Options where people write them (issue 26, SPEC §7): the global ones after the command
too, ``-h`` everywhere, an error as JSON under ``--json``, ``--preview`` never sends."""

from __future__ import annotations

import json
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
