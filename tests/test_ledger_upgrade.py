"""Ledger upgrades (SPEC §8): ``pip install -U`` and the next cron run just works.

A ledger made by the last released version (schema 1, ``tests/ledger_v1.py``) is upgraded
in place by the first run of this version: nothing sent before is sent again, every row
keeps its status, and the Message-ID of every email sent from now on is kept. On the
ledger's own SQLite file and in the ERP database (PostgreSQL, MariaDB); SQL Server's
statements are checked as T-SQL (``tests/test_tsql.py``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from cli_runner import Cli, cli
from erp_backends import POSTGRESQL_ODBC, ErpBackend
from ledger_v1 import OldRow, make_v1_ledger, make_v2_ledger
from scenario import shop
from smtp_server import SmtpServer, email_section, smtp_server

from proit_notify.db import Database, connect, connect_odbc, connect_sqlite
from proit_notify.ledger import SCHEMA_VERSION
from proit_notify.settings import load_settings

__all__ = ["cli", "smtp_server"]  # fixtures

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 9, 0)
TABLE = "proit_notify_ledger"


def ledger_db(config: Path) -> Database:
    """The ledger's database of ``config`` (the ERP's with ledger.erp, else the file)."""
    settings = load_settings(config)
    if settings.ledger.erp:
        return connect(settings.erp)
    return connect_sqlite(settings.ledger_path, create=True)


def rows_of(config: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    with closing(ledger_db(config)) as db:
        sql = f"SELECT key_, channel, status, message_id FROM {db.dialect.quote(TABLE)}"
        found = db.stream(sql)
        return {(r["key_"], r["channel"]): (r["status"], r["message_id"]) for r in found}


def drop_ledger(db: Database) -> None:
    for suffix in ("", "_runs", "_optout", "_bounces", "_meta"):
        db.execute(f"DROP TABLE IF EXISTS {db.dialect.quote(TABLE + suffix)}")
    db.commit()


@pytest.fixture
def v1(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer
) -> Iterator[tuple[Path, dict[str, int]]]:
    """A config whose ledger was made and filled by the last released version, and the
    delivery notes behind its rows: one confirmed, one deferred, one unknown, one failed,
    one new (never notified)."""
    s = shop(erp_backend)
    notes = {
        name: s.delivery_note(s.order(s.customer(email=f"{name}@example.ch")), PRINTED)
        for name in ("sent", "deferred", "unknown", "failed", "new")
    }
    server = erp_backend.name in {"postgresql", "mariadb"}
    ledger = {"erp": True, "sqlite": None} if server else {}
    config: Path = write_config(email=email_section(smtp_server), ledger=ledger,
                                retry={"first_delay_minutes": 0})  # fmt: skip
    old = [
        OldRow(f"shipping:{notes[status]}", "email", status, f"{status}@example.ch",
               {"order_id": 1})
        for status in ("sent", "deferred", "unknown", "failed")
    ]  # fmt: skip
    old.append(OldRow("review:77", "email", "skipped", "x@example.ch", {"order_id": 77}))
    with closing(ledger_db(config)) as db:
        drop_ledger(db)
        make_v1_ledger(db, TABLE, old)
    yield config, notes
    if server:  # later tests start with a ledger of this version (the admin's connection:
        drop_ledger(erp_backend.admin)  # a test may have rewritten the config's login)


def test_the_first_run_upgrades_a_released_ledger_and_sends_nothing_twice(
    erp_backend: ErpBackend, v1: tuple[Path, dict[str, int]], smtp_server: SmtpServer, cli: Cli
) -> None:
    config, notes = v1
    printed = cli("-c", config, "ledger", "migrate", "--print")
    assert printed.exit_code == 0, printed.stderr
    assert "ALTER TABLE" in printed.stdout
    assert "message_id" in printed.stdout
    assert rows_of_before_upgrade(config) == 5  # --print changed nothing

    run = cli("-c", config, "-v", "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert f"upgraded to schema {SCHEMA_VERSION}" in run.stderr
    # only the never-notified note and the deferred one (its retry) go out: nothing twice
    assert sorted(m.rcpt_tos for m in smtp_server.messages) == [
        ("deferred@example.ch",), ("new@example.ch",),
    ]  # fmt: skip
    rows = rows_of(config)
    key = {name: (f"shipping:{note}", "email") for name, note in notes.items()}
    assert rows[key["sent"]] == ("sent", None)  # kept as it was
    assert rows[key["unknown"]] == ("unknown", None)
    assert rows[key["failed"]] == ("failed", None)
    assert rows[("review:77", "email")] == ("skipped", None)
    # what goes out from now on keeps its Message-ID (bounces are matched by it)
    for name in ("new", "deferred"):
        status, message_id = rows[key[name]]
        assert status == "sent"
        assert message_id is not None
        [mail] = [m for m in smtp_server.messages if m.rcpt_tos == (f"{name}@example.ch",)]
        assert mail.message["Message-ID"] == message_id
    # the opt-out entry of the old version still counts; nothing more to upgrade
    listed = cli("-c", config, "optout", "list", "079 123 45 67")
    assert listed.exit_code == 0, listed.stdout
    again = cli("-c", config, "ledger", "migrate", "--print")
    assert f"is at schema {SCHEMA_VERSION}: nothing to do" in again.stdout
    rerun = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert rerun.exit_code == 0
    assert len(smtp_server.messages) == 2


def rows_of_before_upgrade(config: Path) -> int:
    with closing(ledger_db(config)) as db:
        [row] = db.stream(f"SELECT COUNT(*) AS n FROM {db.dialect.quote(TABLE)}")
        return int(row["n"])


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_dry_run_reads_an_older_ledger_without_upgrading_it(
    erp_backend: ErpBackend, v1: tuple[Path, dict[str, int]], cli: Cli
) -> None:
    config, notes = v1
    dry = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    [report] = dry.json()
    keys = sorted(i["key"] for i in report["items"])
    assert keys == sorted([f"shipping:{notes['new']}", f"shipping:{notes['deferred']}"])
    with closing(sqlite3.connect(config.parent / "ledger.sqlite")) as conn:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")]
        assert "message_id" not in columns  # a dry run writes nothing, DDL neither
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert f"{TABLE}_meta" not in tables


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_an_older_tool_refuses_a_ledger_a_newer_one_upgraded(
    erp_backend: ErpBackend, write_config: Any, cli: Cli
) -> None:
    config = write_config()
    assert cli("-c", config, "ledger", "migrate").exit_code == 0
    with closing(sqlite3.connect(config.parent / "ledger.sqlite")) as conn:
        conn.execute(f"UPDATE {TABLE}_meta SET value = '99' WHERE name = 'schema_version'")
        conn.execute(f"UPDATE {TABLE}_meta SET value = '7.0.0' WHERE name = 'upgraded_by'")
        conn.commit()
    for args in (["shipping-confirmations", "--as-of", AS_OF], ["history"], ["status"]):
        refused = cli("-c", config, *args)
        assert refused.exit_code == 3, (args, refused.stderr)
        assert "this ledger was upgraded by version 7.0.0 (schema 99)" in refused.stderr


@pytest.mark.parametrize("erp_backend", ["postgresql"], indirect=True)
def test_a_login_without_ddl_rights_is_told_the_statements_for_a_dba(
    erp_backend: ErpBackend, v1: tuple[Path, dict[str, int]], write_config: Any, cli: Cli
) -> None:
    admin = erp_backend.admin
    admin.execute("DROP ROLE IF EXISTS proit_notify_reader")
    admin.execute("CREATE ROLE proit_notify_reader LOGIN")
    for table in ("Kunden", "Kontakte", "Auftraege", "Auftragspositionen", "Lieferscheine",
                  "Lieferschein Positionen", "Rechnungen", TABLE, f"{TABLE}_runs",
                  f"{TABLE}_optout"):
        admin.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO proit_notify_reader')
    admin.execute("GRANT CREATE ON SCHEMA public TO proit_notify_reader")
    admin.commit()
    try:
        odbc = POSTGRESQL_ODBC.replace("Uid=postgres", "Uid=proit_notify_reader")
        config = write_config(erp={"odbc": odbc}, ledger={"erp": True, "sqlite": None})
        run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert run.exit_code == 3, run.stderr
        must = f"must be upgraded to schema {SCHEMA_VERSION} and this login cannot do it"
        assert must in run.stderr
        assert "proit-notify ledger migrate --print" in run.stderr
        printed = cli("-c", config, "ledger", "migrate", "--print")
        assert printed.exit_code == 0, printed.stderr
        # the DBA runs them: from then on the reader's runs just work
        for statement in printed.stdout.split(";\n"):
            if statement.strip():
                admin.execute(statement)
        admin.commit()
        after = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert after.exit_code == 0, after.stderr
    finally:
        admin.rollback()
        for table in (TABLE, f"{TABLE}_runs", f"{TABLE}_optout", f"{TABLE}_meta"):
            admin.execute(f'ALTER TABLE IF EXISTS "{table}" OWNER TO postgres')
        admin.execute("REASSIGN OWNED BY proit_notify_reader TO postgres")
        admin.execute("DROP OWNED BY proit_notify_reader")
        admin.execute("DROP ROLE IF EXISTS proit_notify_reader")
        admin.commit()


HOSTNAME_PATCH = """
import os, socket
_name = os.environ.get("TEST_HOSTNAME")
if _name:
    socket.gethostname = lambda: _name
"""


@pytest.mark.parametrize("erp_backend", ["postgresql"], indirect=True)
def test_two_hosts_upgrading_one_ledger_at_once_both_go_on(
    erp_backend: ErpBackend, v1: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    config, _ = v1
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOSTNAME_PATCH, encoding="utf-8")
    code = "from proit_notify.cli import main; main()"
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    runs = []
    for host in ("host-a", "host-b", "host-c"):
        env = dict(os.environ, TEST_HOSTNAME=host)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        # each "machine" has its own settings and lock file: only the database is shared
        own = tmp_path / f"{host}.toml"
        data["ledger"]["lock_file"] = str(tmp_path / f"{host}.lock")
        own.write_text(tomli_w.dumps(data), encoding="utf-8")
        own.chmod(0o600)
        runs.append(
            subprocess.Popen(
                [sys.executable, "-c", code, "-c", str(own), "ledger", "migrate"],
                env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = [(r.wait(timeout=120), r.communicate()) for r in runs]
    for code_, (stdout, stderr) in results:
        assert code_ == 0, stderr
        assert f"is at schema {SCHEMA_VERSION}" in stdout
    with closing(connect_odbc(POSTGRESQL_ODBC)) as db:
        [row] = db.stream(f"SELECT value FROM {TABLE}_meta WHERE name = 'schema_version'")
        assert row["value"] == str(SCHEMA_VERSION)
        columns = list(db.stream(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND column_name = 'message_id'", [TABLE],
        ))  # fmt: skip
        assert len(columns) == 1


@pytest.mark.parametrize("erp_backend", ["sqlite", "postgresql", "mariadb"], indirect=True)
def test_a_schema_2_ledger_gets_the_bounce_tables_and_keeps_its_records(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    server = erp_backend.name in {"postgresql", "mariadb"}
    ledger = {"erp": True, "sqlite": None} if server else {}
    config: Path = write_config(email=email_section(smtp_server), ledger=ledger)
    sent = OldRow("shipping:900", "email", "sent", "alt@example.ch", {"order_id": 9})
    with closing(ledger_db(config)) as db:
        drop_ledger(db)
        make_v2_ledger(db, TABLE, [sent])
    try:
        status = cli("-c", config, "--json", "status", "--as-of", AS_OF)  # reads, upgrades nothing
        assert status.exit_code in (0, 1), status.stderr
        [job] = [j for j in json.loads(status.stdout)["jobs"]
                 if j["job"] == "shipping-confirmations"]  # fmt: skip
        assert job["last_run"]["counts"]["sent"] == 4  # read as schema 2 left it
        run = cli("-c", config, "-v", "shipping-confirmations", "--as-of", AS_OF)
        assert run.exit_code == 0, run.stderr
        assert "upgraded to schema 4" in run.stderr
        assert "schema 3: addresses that bounced are kept" in run.stderr
        with closing(ledger_db(config)) as db:
            q = db.dialect.quote
            [old] = db.stream(f"SELECT n_sent, n_bounced FROM {q(TABLE + '_runs')} "
                              "WHERE run_id = 'r-old'")  # fmt: skip
            assert (old["n_sent"], old["n_bounced"]) == (4, 0)
            assert list(db.stream(f"SELECT address FROM {q(TABLE + '_bounces')}")) == []
            [row] = db.stream(f"SELECT status FROM {q(TABLE)} WHERE key_ = 'shipping:900'")
            assert row["status"] == "sent"
    finally:
        if server:
            drop_ledger(erp_backend.admin)
