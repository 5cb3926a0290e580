"""Run the real command line in-process and see what a user sees.

``cli("-c", path, "shipping-confirmations", "--as-of", "2026-11-27")`` returns a
:class:`CliResult` with the exit code and what went to stdout and stderr. Job tests use it
(fixtures are made known by tests/jobs/conftest.py) together with ``erp_backend``,
``write_config`` and the SMTP servers of ``smtp_server.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from smtp_server import Received, SmtpServer

from proit_notify import cli as cli_module


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> list[dict[str, Any]]:
        """The JSON objects of a ``--json`` run, one per job."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    def run(*args: object) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["proit-notify", *(str(a) for a in args)])
        try:
            cli_module.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        else:  # pragma: no cover - main() always exits
            code = 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def day_runner(
    cli: Cli, config: object, server: SmtpServer, command: str
) -> Callable[..., list[Received]]:
    """``run(as_of, *options)``: one run of ``command`` at ``--as-of`` that must exit 0;
    the messages the server received during it (a day of a ``--as-of`` walk)."""

    def run(as_of: str, *options: str) -> list[Received]:
        before = len(server.messages)
        result = cli("-c", config, command, "--as-of", as_of, *options)
        assert result.exit_code == 0, result.stderr
        return server.messages[before:]

    return run


def start_cli(config: Path, *args: str, output: bool = False) -> subprocess.Popen[str]:
    """The CLI started in a process of its own with ``-c config`` (to be signalled, killed
    or watched while it runs); ``output``: stdout and stderr kept (text), else dropped. Run
    in the config's folder, not the checkout: it imports the installed package."""
    code = "from proit_notify.cli import main; main()"
    where = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-c", code, "-c", str(config), *args],
        stdout=where,
        stderr=where,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        cwd=config.parent,
    )


def cli_process(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a process of its own (a real exit, real stdout bytes); ``env`` is added
    to this environment, whose $PROIT_NOTIFY_CONFIG is dropped."""
    full = dict(os.environ, COLUMNS="120", **(env or {}))
    full.pop("PROIT_NOTIFY_CONFIG", None)
    code = "from proit_notify.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        timeout=120,
        check=False,
    )
