"""The tests run against the installed package, and the package has what it needs.

A test run that imports ``proit_notify`` from the working tree (``python -m pytest`` puts
the checkout on ``sys.path``) would hide a packaging mistake: templates missing from the
wheel, a module left out. Only an editable install (``pip install -e``) may live there.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import proit_notify
from proit_notify.jobs.registry import commands

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGE = Path(proit_notify.__file__).resolve().parent


def _editable() -> bool:
    direct_url = distribution("proit-notify").read_text("direct_url.json")
    return bool(direct_url and json.loads(direct_url).get("dir_info", {}).get("editable"))


def test_the_package_under_test_is_the_installed_one() -> None:
    if _editable():
        return  # a developer's 'pip install -e': the working tree IS the installed package
    assert not PACKAGE.is_relative_to(CHECKOUT), (
        f"the tests import {PACKAGE}, the working tree, not the installed package: "
        "run 'pytest', not 'python -m pytest'"
    )


def test_the_installed_package_ships_templates_and_type_marker() -> None:
    for lang in ("de", "en"):
        for job in ("shipping", "review", "prepayment", "delivery_date"):
            for part in (".subject.txt", ".txt", ".html", ".sms.txt"):
                assert (PACKAGE / "templates" / lang / f"{job}{part}").is_file()
    assert (PACKAGE / "templates" / "layout.html").is_file()
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "jobs" / "registry.py").is_file()
    assert (PACKAGE / "channels" / "sms" / "aspsms.py").is_file()


def _python(code: str, modules: tuple[str, ...]) -> list[str]:
    """What ``code`` prints in a new interpreter, then which of ``modules`` it imported."""
    code += f"\nimport sys; print(sorted(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    return result.stdout.splitlines()


#: what only the commands that use it import: settings (pydantic), templates (jinja2,
#: babel), addresses, the ERP, the ledger, the jobs' rules, OAuth2 and HTTP
HEAVY = ("pydantic", "jinja2", "babel", "email_validator", "phonenumbers", "sqlite3",
         "proit_notify.settings", "proit_notify.runner", "proit_notify.erp",
         "proit_notify.ledger", "proit_notify.render", "proit_notify.jobs.base",
         "proit_notify.jobs.shipping", "msal", "google.auth", "google.oauth2",
         "requests")  # fmt: skip


def test_the_cli_application_imports_nothing_heavy() -> None:
    # --help answers soon (issue "Speed")
    assert _python("import proit_notify.cli.app", HEAVY) == ["[]"]


def test_help_lists_every_job_without_importing_the_jobs_rules() -> None:
    # the job commands come from the registry, which is plain data: --help (issue "Speed")
    # builds all of them and imports none of what running one needs
    code = (
        "import contextlib, sys; sys.argv = ['proit-notify', '--help']\n"
        "from proit_notify.cli import main\n"
        "with contextlib.suppress(SystemExit): main()"
    )
    shown = _python(code, HEAVY)
    assert shown[-1] == "[]"
    assert all(any(job in line for line in shown) for job in commands())


def test_the_version_is_written_once_and_answered_without_typer() -> None:
    # pyproject.toml reads proit_notify.__version__: the metadata and the module agree
    assert distribution("proit-notify").version == proit_notify.__version__
    code = (
        "import sys; sys.argv = ['proit-notify', '--version']; "
        "from proit_notify.cli import main; main()"
    )
    imported = _python(code, ("typer", "click", "rich", "importlib.metadata"))
    assert imported == [f"proit-notify {proit_notify.__version__}", "[]"]


def test_oauth2_libraries_are_imported_only_by_an_account_that_uses_them(
    tmp_path: Path,
) -> None:
    # a password account and a token command's account, checked: neither msal nor
    # google-auth is loaded (SPEC §9); the check goes on to the channels (an empty ERP)
    sqlite3.connect(tmp_path / "erp.db").close()
    config = tmp_path / "p.toml"
    config.write_text(
        '[erp]\nsqlite = "erp.db"\n[email.accounts.default]\ntransport = "file"\n'
        'directory = "out"\nfrom = "a@example.ch"\n[email.accounts.m365]\n'
        'host = "127.0.0.1"\nfrom = "b@example.ch"\nauth = "oauth2"\n'
        '[email.accounts.m365.oauth2]\nprovider = "command"\ntoken_command = "echo t"\n',
        encoding="utf-8",
    )
    code = (
        "import sys; from proit_notify.cli import main; sys.argv = ['proit-notify', '-c', "
        f"{str(config)!r}, 'check', '--no-network']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('msal', 'google.auth', 'google.oauth2') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert "email: not contacted (--no-network)" in result.stdout, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr
