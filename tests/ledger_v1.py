"""The ledger as the last released version made it (schema 1, main f4b9e5a / 52663b9).

Written out here, not taken from the package: an upgrade test must start from exactly
what merchants' ledgers hold, whatever the package's DDL becomes. ``make_v1_ledger``
creates the three tables of that version (no version table, no ``message_id``) in a
database and fills the ledger with rows of every state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from proit_notify.db import Database, Dialect


def v1_ddl(table: str, dialect: Dialect) -> list[str]:
    """The statements of schema 1: the ledger, the run records, the opt-out list."""
    text = "TEXT"
    vc = "VARCHAR"
    exists = "IF NOT EXISTS "
    q = dialect.quote
    counts = ", ".join(
        f"n_{name} INTEGER NOT NULL"
        for name in ("sent", "failed", "skipped", "deferred", "unknown", "draft")
    )
    runs, optout = f"{table}_runs", f"{table}_optout"
    return [
        f"CREATE TABLE {exists}{q(table)} ("
        f"key_ {vc}(190) NOT NULL, channel {vc}(10) NOT NULL, job {vc}(40) NOT NULL, "
        f"document {vc}(400) NOT NULL, recipient {vc}(320) NOT NULL, "
        f"account {vc}(100) NOT NULL, status {vc}(10) NOT NULL, "
        f"detail {text}, attempts INTEGER NOT NULL, created_at {vc}(19) NOT NULL, "
        f"updated_at {vc}(19) NOT NULL, sent_at {vc}(19), next_attempt_at {vc}(19), "
        f"host {vc}(200) NOT NULL, info {text}, "
        "PRIMARY KEY (key_, channel))",
        f"CREATE INDEX {exists}{q(table + '_job')} ON {q(table)} (job, status, sent_at)",
        f"CREATE TABLE {exists}{q(runs)} ("
        f"run_id {vc}(32) NOT NULL, job {vc}(40) NOT NULL, command {vc}(40) NOT NULL, "
        f"host {vc}(200) NOT NULL, started_at {vc}(19) NOT NULL, ended_at {vc}(19), "
        f"{counts}, exit_code INTEGER, detail {text}, alert {text}, "
        "PRIMARY KEY (run_id, job))",
        f"CREATE INDEX {exists}{q(runs + '_started')} ON {q(runs)} (job, started_at)",
        f"CREATE TABLE {exists}{q(optout)} ("
        f"address {vc}(320) NOT NULL, added_at {vc}(19) NOT NULL, host {vc}(200) NOT NULL, "
        "PRIMARY KEY (address))",
    ]


@dataclass(frozen=True)
class OldRow:
    key: str
    channel: str
    status: str
    recipient: str
    info: dict[str, object]


def make_v1_ledger(db: Database, table: str, rows: list[OldRow]) -> None:
    """A schema-1 ledger in ``db`` holding ``rows`` (sent a week ago, by another version)."""
    for statement in v1_ddl(table, db.dialect):
        db.execute(statement)
    stamp = "2026-11-20 08:00:00"
    for r in rows:
        db.execute(
            f"INSERT INTO {db.dialect.quote(table)} (key_, channel, job, document, recipient, "
            "account, status, detail, attempts, created_at, updated_at, sent_at, "
            "next_attempt_at, host, info) VALUES (?, ?, ?, ?, ?, 'default', ?, ?, 1, ?, ?, ?, "
            "NULL, 'old-host', ?)",
            [
                r.key, r.channel, r.key.split(":")[0], f"doc {r.key}", r.recipient, r.status,
                "as the old version left it", stamp, stamp,
                stamp if r.status == "sent" else None, json.dumps(r.info),
            ],
        )  # fmt: skip
    db.execute(
        f"INSERT INTO {db.dialect.quote(table + '_optout')} (address, added_at, host) "
        "VALUES ('0791234567', ?, 'old-host')",  # stored in the old form (issue 21)
        [stamp],
    )
    db.commit()


def make_v2_ledger(db: Database, table: str, rows: list[OldRow]) -> None:
    """A schema-2 ledger (main 94c90a4 .. b22d0ec): schema 1 with the Message-ID column, its
    index, the version table at 2, and a run record of that version."""
    make_v1_ledger(db, table, rows)
    q = db.dialect.quote
    meta = f"{table}_meta"
    statements = [
        f"ALTER TABLE {q(table)} ADD COLUMN message_id VARCHAR(250)",
        f"CREATE INDEX {q(table + '_msgid')} ON {q(table)} (message_id)",
        f"CREATE TABLE {q(meta)} (name VARCHAR(40) NOT NULL, value VARCHAR(200) NOT NULL, "
        "PRIMARY KEY (name))",
        f"INSERT INTO {q(meta)} (name, value) VALUES ('schema_version', '2')",
        f"INSERT INTO {q(meta)} (name, value) VALUES ('upgraded_by', '0.9.0')",
        f"INSERT INTO {q(table + '_runs')} (run_id, job, command, host, started_at, ended_at, "
        "n_sent, n_failed, n_skipped, n_deferred, n_unknown, n_draft, exit_code, detail, alert) "
        "VALUES ('r-old', 'shipping-confirmations', 'run-all', 'old-host', "
        "'2026-11-26 07:00:00', '2026-11-26 07:00:05', 4, 1, 0, 0, 0, 0, 1, '', '')",
    ]
    for statement in statements:
        db.execute(statement)
    db.commit()
