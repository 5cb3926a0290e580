"""What Windows hands us, reproduced here: BOM files, cp1252 redirected output, editors.

The real Task Scheduler and a real Windows console cannot run on Linux; these tests give
the tool the same bytes (PYTHONIOENCODING=cp1252 is what a redirected stdout of a task
gets) and check that nothing crashes and nothing is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, cli, cli_process
from erp_backends import ErpBackend
from scenario import shop
from smtp_server import SmtpServer, email_section, smtp_server

from proit_notify import __version__
from proit_notify.drafts import edited_message, editor_command
from proit_notify.render import Rendered
from proit_notify.settings import load_settings

__all__ = ["cli", "smtp_server"]  # fixtures

AS_OF = "2026-11-27T08:00"
NAMES = ["Kővári Zoltán", "Wiśniewski Łukasz", "Ελένη"]  # outside cp1252


def legacy(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """The CLI with output redirected in cp1252, as under the Task Scheduler."""
    return cli_process(args, cwd, {"PYTHONIOENCODING": "cp1252"})


def test_a_settings_file_with_a_utf8_bom_loads(tmp_path: Path) -> None:
    path = tmp_path / "proit-notify.toml"
    text = (
        '[erp]\nsqlite = "erp.db"\n[email.accounts.default]\ntransport = "file"\n'
        'directory = "outbox"\nfrom = "Müller <shop@example.ch>"\n'
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_settings(path, env={}).email.accounts["default"].from_.startswith("Müller")


def test_an_edited_draft_with_a_bom_and_crlf_is_read_as_typed() -> None:
    original = Rendered(subject="Liefertermin", text="Guten Tag\n", html=None)
    edited = edited_message(original, "email", "\ufeffSubject: Neu\r\n\r\nGrüezi\r\n")
    assert (edited.subject, edited.text) == ("Neu", "Grüezi\n")
    sms = edited_message(original, "sms", "\ufeffGrüezi, Ihr Termin\r\n")
    assert sms.text == "Grüezi, Ihr Termin"


def test_the_editor_is_started_by_its_full_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Windows' "code" is code.cmd, which only its full path starts without a shell
    script = tmp_path / "my-editor"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "my-editor --wait")
    assert editor_command() == [str(script), "--wait"]


def test_cp1252_output_with_names_outside_it_never_crashes(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for i, name in enumerate(NAMES):
        order = s.order(
            s.customer(name=name), number=f"Ł-{i}", delivered=False, delivery_date=date(2026, 12, 5)
        )
        s.delivery_note(order, datetime(2026, 11, 26, 9))
    config = write_config(
        email=email_section(smtp_server),
        delivery_date={"edit_before_send": True, "notify_existing": True},
    )
    cwd = config.parent
    c = str(config)
    preview = legacy(["-c", c, "run-all", "--as-of", AS_OF, "--dry-run", "--preview"], cwd)
    assert preview.returncode == 0, preview.stderr.decode("utf-8", "replace")
    text = preview.stdout.decode("utf-8")  # redirected output is UTF-8, whatever the code page
    for name in NAMES:
        assert name in text
    assert "→" in text
    run = legacy(["-c", c, "run-all", "--as-of", AS_OF], cwd)
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    assert len(smtp_server.messages) == 3
    history = legacy(["-c", c, "history"], cwd)
    assert history.returncode == 0
    assert "Auftrag Ł-1" in history.stdout.decode("utf-8")
    drafts = legacy(["-c", c, "--json", "drafts", "list"], cwd)
    assert drafts.returncode == 0
    listed = json.loads(drafts.stdout.decode("utf-8"))
    assert len(listed) == 3
    shown = legacy(["-c", c, "drafts", "show", listed[0]["key"]], cwd)
    assert shown.returncode == 0, shown.stderr.decode("utf-8", "replace")
    assert "→" in shown.stdout.decode("utf-8")


def test_the_log_file_keeps_every_line_and_the_summary_and_rotates(
    erp_backend: ErpBackend,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from proit_notify.cli import console

    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer(email="weg@example.ch")), datetime(2026, 11, 26, 9))
    s.delivery_note(s.order(s.customer(name="Kővári")), datetime(2026, 11, 26, 9))
    smtp_server.handler.rcpt_answers["weg@example.ch"] = "550 5.1.1 no such user"
    log_file = tmp_path / "logs" / "proit-notify.log"
    config = write_config(
        email=email_section(smtp_server), service={"log_file": "logs/proit-notify.log"}
    )
    # -q: nothing but errors on stderr (nobody reads it); the file still gets every line
    result = cli("-q", "-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert result.exit_code == 1
    text = log_file.read_text(encoding="utf-8")
    assert (  # where a run starts, for the reader of the file
        f"INFO === shipping-confirmations started: proit-notify {__version__}, {config}, "
        "as of 27.11.2026 08:00, host "
    ) in text.splitlines()[0]
    assert "WARNING failed shipping:" in text  # a problem is a warning in the log
    assert "550 5.1.1 no such user" in text
    assert "INFO sent shipping:" in text
    assert "shipping-confirmations: 1 sent, 1 failed, 0 skipped, 0 deferred, 0 unknown" in text
    broken = cli("-c", config, "history", "--status", "nonsense")
    assert broken.exit_code == 2
    assert "nonsense" in log_file.read_text(encoding="utf-8")

    monkeypatch.setattr(console, "LOG_MAX_BYTES", 300)
    for _ in range(20):
        cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    rotated = sorted(p.name for p in log_file.parent.iterdir())
    assert rotated == ["proit-notify.log", *(f"proit-notify.log.{i}" for i in range(1, 6))]


def test_windows_editor_commands_keep_quoted_paths_and_find_cmd_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # os.name as on Windows (only our parsing reads it here); "code" is found as code.cmd
    monkeypatch.setattr(os, "name", "nt")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", r'"C:\Program Files\Notepad++\notepad++.exe" -multiInst')
    assert editor_command() == [r"C:\Program Files\Notepad++\notepad++.exe", "-multiInst"]
    monkeypatch.delenv("EDITOR")
    assert editor_command() == ["notepad"]
    cmd = tmp_path / "code"  # stands for code.cmd: shutil.which resolves it on PATH
    cmd.write_text("", encoding="utf-8")
    cmd.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("EDITOR", "code --wait")
    assert editor_command() == [str(cmd), "--wait"]
