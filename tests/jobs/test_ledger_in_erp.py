"""ledger.erp = true: the ledger is a table in the ERP database, shared by several hosts."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli
from scenario import shop
from smtp_server import SmtpServer, email_section

from proit_notify.db import connect
from proit_notify.ledger import Row
from proit_notify.settings import load_settings

AS_OF = "2026-11-27T08:00"

HOSTNAME_PATCH = """
import os, socket
_name = os.environ.get("TEST_HOSTNAME")
if _name:
    socket.gethostname = lambda: _name
"""


def ledger_rows(config: Path) -> list[tuple[str, str, str, str]]:
    settings = load_settings(config)
    db = connect(settings.erp)
    try:
        rows = db.stream(
            f"SELECT key_, channel, status, host FROM {db.dialect.quote(settings.ledger.table)} "
            "ORDER BY key_"
        )
        return [(r["key_"], r["channel"], r["status"], r["host"]) for r in rows]
    finally:
        db.close()


@pytest.mark.parametrize("erp_backend", ["postgresql", "mariadb"], indirect=True)
def test_the_ledger_table_lives_in_the_erp_and_blocks_a_second_send(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    notes = [s.delivery_note(s.order(s.customer()), datetime(2026, 11, 26, 9)) for _ in range(3)]
    config = write_config(email=email_section(smtp_server), ledger={"erp": True, "sqlite": None})

    first = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    second = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert first.exit_code == 0, first.stderr
    assert "3 sent" in first.stdout
    assert "0 sent" in second.stdout
    assert len(smtp_server.messages) == 3
    assert [(k, st) for k, _, st, _ in ledger_rows(config)] == sorted(
        (f"shipping:{n}", "sent") for n in notes
    )
    assert not (tmp_path / "ledger.sqlite").exists()  # nothing kept beside the config


@pytest.mark.parametrize("erp_backend", ["postgresql", "mariadb"], indirect=True)
def test_two_hosts_running_at_once_send_each_notification_once(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    addresses = [f"host-test{i}@example.ch" for i in range(30)]
    for address in addresses:
        s.delivery_note(s.order(s.customer(email=address)), datetime(2026, 11, 26, 9))
    config = write_config(email=email_section(smtp_server), ledger={"erp": True, "sqlite": None})
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOSTNAME_PATCH, encoding="utf-8")

    def start(host: str) -> subprocess.Popen[str]:
        env = dict(os.environ, TEST_HOSTNAME=host)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        # each "machine" has its own lock file: only the ledger's key keeps them apart
        lock = tmp_path / f"{host}.lock"
        settings_text = config.read_text(encoding="utf-8")
        host_config = tmp_path / f"{host}.toml"
        host_config.write_text(
            settings_text.replace("[ledger]", f'[ledger]\nlock_file = "{lock.as_posix()}"'),
            encoding="utf-8",
        )
        code = "from proit_notify.cli import main; main()"
        args = ["-c", str(host_config), "shipping-confirmations", "--as-of", AS_OF]
        return subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    smtp_server.handler.delay = 0.03  # the runs overlap: each waits on the server
    runs = [start("host-a"), start("host-b")]
    outputs = [run.communicate(timeout=120) for run in runs]

    for run, (_out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
    received = sorted(r for m in smtp_server.messages for r in m.rcpt_tos)
    assert received == sorted(addresses)  # every customer once, none twice
    rows = ledger_rows(config)
    assert len(rows) == 30
    assert {st for _, _, st, _ in rows} == {"sent"}
    assert {h for *_, h in rows} == {"host-a", "host-b"}  # both really ran at once


@pytest.mark.parametrize("erp_backend", ["postgresql", "mariadb"], indirect=True)
def test_a_claim_taken_on_another_host_is_refused(erp_backend: Any, write_config: Any) -> None:
    from proit_notify.assembly import open_ledger
    from proit_notify.clock import Clock

    settings = load_settings(write_config(ledger={"erp": True, "sqlite": None}))
    first, second = open_ledger(settings), open_ledger(settings)
    now = Clock.parse(AS_OF, settings.service.tz).utc
    claim = Row("shipping:4711", "email", "shipping", "LS 4711", "a@example.ch", "default")
    try:
        assert first.claim(claim, now) is True
        assert second.claim(claim, now) is False  # the primary key holds across connections
        assert [e.status for e in second.entries("shipping:4711")] == ["sending"]
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("erp_backend", ["sqlite", "sqlite-odbc"], indirect=True)
def test_an_sqlite_erp_cannot_hold_the_shared_ledger(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), datetime(2026, 11, 26, 9))
    config = write_config(email=email_section(smtp_server), ledger={"erp": True, "sqlite": None})

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 3
    assert "ledger.erp" in result.stderr
    assert smtp_server.messages == []


@pytest.mark.parametrize("erp_backend", ["postgresql", "mariadb"], indirect=True)
def test_run_records_live_beside_the_shared_ledger_and_status_reads_them(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), datetime(2026, 11, 26, 9))
    config = write_config(email=email_section(smtp_server), ledger={"erp": True, "sqlite": None})
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOSTNAME_PATCH, encoding="utf-8")
    env = dict(os.environ, TEST_HOSTNAME="kasse-2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    # another host runs the jobs, this one asks for the status
    code = "from proit_notify.cli import main; main()"
    other = subprocess.run(
        [sys.executable, "-c", code, "-c", str(config), "run-all", "--as-of", AS_OF],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert other.returncode == 0, other.stderr

    status = cli("-c", config, "--json", "status", "--as-of", "2026-11-27T09:00")
    assert status.exit_code == 0, status.stderr
    [found] = status.json()
    shipping = found["jobs"][0]
    assert shipping["last_run"]["host"] == "kasse-2"
    assert shipping["last_run"]["counts"]["sent"] == 1
    assert shipping["last_run"]["exit_code"] == 0
    settings = load_settings(config)
    db = connect(settings.erp)
    try:
        rows = list(
            db.stream(
                f"SELECT job, host, n_sent, exit_code FROM "
                f"{db.dialect.quote(settings.ledger.table + '_runs')} ORDER BY started_at, job"
            )
        )
    finally:
        db.close()
    assert sorted((r["job"], r["host"], r["n_sent"], r["exit_code"]) for r in rows) == [
        ("delivery-dates", "kasse-2", 0, 0),
        ("prepayment-reminders", "kasse-2", 0, 0),
        ("review-requests", "kasse-2", 0, 0),
        ("shipping-confirmations", "kasse-2", 1, 0),
    ]
    assert not (tmp_path / "ledger.sqlite").exists()


def _drop(backend: Any, *tables: str) -> None:
    for table in tables:
        backend.admin.execute(f"DROP TABLE IF EXISTS {backend.dialect.quote(table)}")
    backend.admin.commit()


@pytest.mark.parametrize("erp_backend", ["postgresql", "mariadb"], indirect=True)
def test_a_dry_run_creates_no_table_in_the_erp_and_says_so(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    table = "notify_dry_ledger"
    _drop(erp_backend, table, f"{table}_runs")
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), datetime(2026, 11, 26, 9))
    config = write_config(
        email=email_section(smtp_server), ledger={"erp": True, "sqlite": None, "table": table}
    )
    dry = cli("-c", config, "run-all", "--dry-run", "--as-of", AS_OF)
    assert dry.exit_code == 0, dry.stderr
    assert f"the ledger table {table} does not exist yet" in dry.stderr
    assert "1 would be sent" in dry.stdout
    status = cli("-c", config, "status", "--as-of", AS_OF)
    assert status.exit_code == 1  # nothing ran yet
    db = connect(load_settings(config).erp)
    try:
        assert not db.has_table(table)
        assert not db.has_table(f"{table}_runs")
    finally:
        db.close()
    assert smtp_server.messages == []


@pytest.mark.parametrize(
    ("erp_backend", "schema"),
    [("postgresql", "public"), ("mariadb", "test")],
    indirect=["erp_backend"],
)
def test_a_schema_qualified_ledger_table_is_created_once_and_used(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, schema: str
) -> None:
    table = f"{schema}.notify_schema_ledger"
    _drop(erp_backend, table, f"{table}_runs")
    try:
        s = shop(erp_backend)
        s.delivery_note(s.order(s.customer()), datetime(2026, 11, 26, 9))
        config = write_config(
            email=email_section(smtp_server), ledger={"erp": True, "sqlite": None, "table": table}
        )
        first = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert first.exit_code == 0, first.stderr
        second = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert second.exit_code == 0, second.stderr
        assert "0 sent" in second.stdout
        assert len(smtp_server.messages) == 1
        assert cli("-c", config, "status", "--as-of", AS_OF).exit_code == 0
        ddl = cli("-c", config, "ledger", "ddl")
        assert ddl.exit_code == 0
        assert "notify_schema_ledger_job" in ddl.stdout
        assert f"{schema}.notify_schema_ledger_job" not in ddl.stdout.replace('"', "").replace(
            "`", ""
        )
    finally:
        _drop(erp_backend, table, f"{table}_runs")


@pytest.mark.parametrize("erp_backend", ["postgresql", "mariadb"], indirect=True)
def test_two_hosts_starting_at_once_on_a_database_without_the_table_both_work(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    table = "notify_race_ledger"
    s = shop(erp_backend)
    for i in range(4):
        s.delivery_note(s.order(s.customer(email=f"race{i}@example.ch")), datetime(2026, 11, 26))
    config = write_config(
        email=email_section(smtp_server), ledger={"erp": True, "sqlite": None, "table": table}
    )
    code = "from proit_notify.cli import main; main()"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOSTNAME_PATCH, encoding="utf-8")
    try:
        for attempt in range(6):
            _drop(erp_backend, table, f"{table}_runs")
            before = len(smtp_server.messages)
            runs = []
            for host in ("a", "b"):
                host_config = tmp_path / f"{host}.toml"
                host_config.write_text(
                    config.read_text(encoding="utf-8").replace(
                        "[ledger]", f'[ledger]\nlock_file = "{(tmp_path / host).as_posix()}.lock"'
                    ),
                    encoding="utf-8",
                )
                host_config.chmod(0o600)
                args = ["-c", str(host_config), "shipping-confirmations", "--as-of", AS_OF]
                # two machines: each its own host name (a host's own 'sending' rows are
                # what a crash of that host leaves)
                env = dict(os.environ, TEST_HOSTNAME=f"host-{host}")
                env["PYTHONPATH"] = os.pathsep.join(
                    filter(None, [str(site), env.get("PYTHONPATH")])
                )
                runs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", code, *args],
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            for run in runs:
                _out, err = run.communicate(timeout=120)
                assert run.returncode == 0, (attempt, err)
            received = sorted(r for m in smtp_server.messages[before:] for r in m.rcpt_tos)
            assert received == [f"race{i}@example.ch" for i in range(4)], attempt
    finally:
        _drop(erp_backend, table, f"{table}_runs")
