"""Run the real command line in-process and see what a user sees.

``cli("-c", path, "shipping-confirmations", "--as-of", "2026-11-27")`` returns a
:class:`CliResult` with the exit code and what went to stdout and stderr. Job tests use it
(fixtures are made known by tests/jobs/conftest.py) together with ``erp_backend``,
``write_config`` and the SMTP servers of ``smtp_server.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

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
