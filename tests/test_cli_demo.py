"""The first-run experience: `proit-notify demo` and the sent demo, as a new user runs them."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import date, timedelta
from pathlib import Path

from cli_runner import cli_process

BLOCK_PYODBC = """
import sys
class _NoOdbc:
    def find_spec(self, name, path=None, target=None):
        if name == "pyodbc":
            raise ImportError("libodbc.so.2: cannot open shared object file (simulated)")
        if name == "click":  # typer >= 0.20 vendors click: it is not installed with us
            raise ImportError("No module named 'click' (simulated)")
        return None
sys.meta_path.insert(0, _NoOdbc())
"""


def run(args: list[str], cwd: Path, block_odbc: bool = False) -> subprocess.CompletedProcess[str]:
    env = {}
    if block_odbc:
        site = cwd / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(BLOCK_PYODBC, encoding="utf-8")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    done = cli_process(args, cwd, env)
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    )


def test_demo_runs_without_odbc_and_run_all_writes_the_outbox(tmp_path: Path) -> None:
    demo = run(["demo"], tmp_path, block_odbc=True)
    assert demo.returncode == 0, demo.stderr
    assert "shipping-confirmations (dry run):" in demo.stdout
    # orders the web shops processed automatically a week ago: review requests due at once
    due = r"review-requests \(dry run\): [1-9]\d* would be sent, 0 would fail"
    assert re.search(due, demo.stdout)
    assert "Nothing was sent" in demo.stdout
    # the demo's Swiss customers read German, French and Italian (and some English)
    assert "  fr  " in demo.stdout
    assert "Confirmation d'envoi : bulletin de livraison" in demo.stdout
    assert "  it  " in demo.stdout
    assert "Conferma di spedizione: bollettino di consegna" in demo.stdout
    folder = tmp_path / "proit-notify-demo"
    assert not list((folder / "outbox").glob("*.eml"))  # a preview sends nothing
    assert not (folder / "ledger.sqlite").exists()

    config = folder / "proit-notify.toml"
    first = run(["-c", str(config), "run-all"], tmp_path, block_odbc=True)
    assert first.returncode in (0, 1), first.stderr  # the demo has invalid addresses on purpose
    assert "shipping-confirmations:" in first.stdout
    sent = list((folder / "outbox").glob("*.eml"))
    assert len(sent) > 100
    week = (date.today() + timedelta(days=8)).isoformat()  # the requests fall due after 7 days
    reviewed = run(["-c", str(config), "review-requests", "--as-of", week], tmp_path)
    assert reviewed.returncode == 0, reviewed.stderr
    # every 23rd demo customer objected to advertising: their requests are skipped rows
    assert re.search(r"review-requests: [1-9]\d* sent, 0 failed, [1-9]\d* skipped", reviewed.stdout)
    written = list((folder / "outbox").glob("*.eml"))
    reviews = [p.read_bytes() for p in written if p.name.startswith("review_")]
    others = [p.read_bytes() for p in written if not p.name.startswith("review_")]
    assert len(reviews) > 20  # they carry List-Unsubscribe, no other mail does
    assert all(b"List-Unsubscribe: <mailto:abmelden@demo.example>" in r for r in reviews)
    assert not any(b"List-Unsubscribe" in o for o in others)
    again = run(["-c", str(config), "run-all"], tmp_path, block_odbc=True)
    assert again.returncode == 0, again.stderr
    assert len(list((folder / "outbox").glob("*.eml"))) == len(written)


def test_demo_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert run(["demo", "--dir", "d"], tmp_path).returncode == 0
    second = run(["demo", "--dir", "d"], tmp_path)
    assert second.returncode == 2
    assert "--force" in second.stderr


def test_missing_config_is_exit_3_and_says_how_to_fix(tmp_path: Path) -> None:
    result = run(["shipping-confirmations"], tmp_path)
    assert result.returncode == 3
    assert "proit-notify init" in result.stderr
    assert "Traceback" not in result.stderr


def test_odbc_without_driver_manager_is_one_line_exit_4(tmp_path: Path) -> None:
    config = tmp_path / "proit-notify.toml"
    config.write_text(
        'erp.odbc = "DRIVER={SQL Server};SERVER=erp;UID=x;PWD=geheim123"\n'
        '[email]\ndefault_account = "a"\n'
        '[email.accounts.a]\ntransport = "file"\ndirectory = "out"\nfrom = "a@example.ch"\n',
        encoding="utf-8",
    )
    config.chmod(0o600)  # a literal PWD: only the owner may read the file
    result = run(["check", "--no-network"], tmp_path, block_odbc=True)
    assert result.returncode == 4
    assert "apt-get install unixodbc" in result.stderr
    assert "geheim123" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_wrong_option_is_a_usage_error_exit_2(tmp_path: Path) -> None:
    wrong = run(["shipping-confirmations", "--limit", "x"], tmp_path, block_odbc=True)
    assert wrong.returncode == 2
    assert "--limit" in wrong.stderr
    assert "internal error" not in wrong.stderr
    assert run(["--bogus"], tmp_path).returncode == 2


def test_version_and_help(tmp_path: Path) -> None:
    assert run(["--version"], tmp_path).stdout.startswith("proit-notify ")
    helped = run(["--help"], tmp_path)
    assert helped.returncode == 0
    for command in ("demo", "check", "run-all", "shipping-confirmations", "history"):
        assert command in helped.stdout
