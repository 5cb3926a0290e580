"""The ledger's rows (SPEC §6): one per notification and channel.

The claim (``sending``) is committed before a channel is spoken to; the outcome right
after. The primary key (key, channel) makes a second claim fail, also between two hosts
that share a ledger in the ERP database (``ledger.erp = true``). The states and the moves
between them are :mod:`proit_notify.statuses`'s.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..channels import SendResult
from ..clock import from_utc_text, to_utc_text
from ..db import LEDGER_ROLE, Database, Dialect, connect_sqlite
from ..errors import DeadlockError, ErpError, LedgerError, UsageError
from ..paths import private, refuse_link
from ..redaction import redact
from ..settings import RetrySettings
from ..statuses import Status, allowed
from . import migrate
from .bounces import BounceList
from .bounces import ddl as bounces_ddl
from .migrate import SCHEMA_VERSION, Versions, bounces_table, meta_ddl
from .optout import OptOutList
from .optout import ddl as optout_ddl
from .runs import RunLog
from .runs import ddl as runs_ddl
from .table import Table

#: tries of a claim that the database made a deadlock victim
DEADLOCK_RETRIES = 3
#: the detail of a ``sending`` row whose run ended without recording an outcome
STALE = (
    "a run ended while sending (crash or kill); check whether it arrived, "
    "then: proit-notify ledger resolve KEY --sent | --resend"
)


@dataclass(frozen=True)
class Entry:
    """One ledger row."""

    key: str
    channel: str
    job: str
    document: str
    recipient: str
    account: str
    status: Status
    detail: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    host: str
    info: dict[str, Any]
    #: the Message-ID the email went out with (schema 2; None before and for SMS)
    message_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """What identifies the row and whom it was for (the base of every --json listing)."""
        return {
            "key": self.key,
            "channel": self.channel,
            "job": self.job,
            "document": self.document,
            "recipient": self.recipient,
            "account": self.account,
        }


@dataclass(frozen=True)
class Row:
    """What a new row holds besides its status: one notification on one channel."""

    key: str
    channel: str
    job: str
    document: str
    recipient: str
    account: str
    info: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None


_COLUMNS = (
    "key_",
    "channel",
    "job",
    "document",
    "recipient",
    "account",
    "status",
    "detail",
    "attempts",
    "created_at",
    "updated_at",
    "sent_at",
    "next_attempt_at",
    "host",
    "info",
    "message_id",
)


def _ddl(table: str, dialect: Dialect) -> list[str]:
    """CREATE TABLE (the latest schema), then CREATE INDEX (named from the table's last
    part: an index name cannot be schema-qualified). NVARCHAR on SQL Server: pyodbc binds
    text as NVARCHAR, and an NVARCHAR parameter against a VARCHAR key turns an index seek
    into a scan."""
    mssql = dialect is Dialect.MSSQL
    text = "NVARCHAR(MAX)" if mssql else "TEXT"
    vc = "NVARCHAR" if mssql else "VARCHAR"
    exists = "" if mssql else "IF NOT EXISTS "
    q = dialect.quote
    return [
        f"CREATE TABLE {exists}{q(table)} ("
        f"key_ {vc}(190) NOT NULL, channel {vc}(10) NOT NULL, job {vc}(40) NOT NULL, "
        f"document {vc}(400) NOT NULL, recipient {vc}(320) NOT NULL, "
        f"account {vc}(100) NOT NULL, status {vc}(10) NOT NULL, "
        f"detail {text}, attempts INTEGER NOT NULL, created_at {vc}(19) NOT NULL, "
        f"updated_at {vc}(19) NOT NULL, sent_at {vc}(19), next_attempt_at {vc}(19), "
        f"host {vc}(200) NOT NULL, info {text}, message_id {vc}(250), "
        "PRIMARY KEY (key_, channel))",
        f"CREATE INDEX {exists}{q(index_name(table, 'job'))} ON {q(table)} (job, status, sent_at)",
        *migrate.message_id_index(table, dialect),
    ]


def index_name(table: str, suffix: str) -> str:
    """``<table's last part>_<suffix>``: valid in every dialect."""
    return f"{table.rpartition('.')[2]}_{suffix}"


def ddl(table: str, dialect: Dialect) -> list[str]:
    """Every statement that sets up the ledger, the run records, the opt-out list and the
    schema version (``ledger ddl``: a DBA's fresh install)."""
    return [
        *_ddl(table, dialect),
        *runs_ddl(f"{table}_runs", dialect),
        *optout_ddl(f"{table}_optout", dialect),
        *bounces_ddl(bounces_table(table), dialect),
        *meta_ddl(f"{table}_meta", dialect),
        *migrate.Versions.rows_sql(f"{table}_meta", dialect, SCHEMA_VERSION),
    ]


class Ledger(Table):
    """Ledger rows in a database table (a local SQLite file, or the ERP's database), with
    the run records, the opt-out list and the schema version beside them. A context
    manager: ``with open_ledger(settings) as ledger:`` closes it."""

    def __init__(
        self, db: Database, table: str, retry: RetrySettings, *, local: bool = False
    ) -> None:
        super().__init__(db, table)
        self.retry = retry
        self.host = socket.gethostname()
        self._local = local  # a SQLite file of ours (in WAL mode), not the ERP's database
        #: for the person reading a dry run's output (the ledger table does not exist yet)
        self.note: str | None = None
        #: the run records, in the same database (SPEC §6)
        self.runs = RunLog(db, f"{table}_runs")
        #: who objected to advertising (SPEC §5), in the same database
        self.optout = OptOutList(db, f"{table}_optout", self.host)
        #: addresses that bounced (SPEC §10), in the same database
        self.bounces = BounceList(db, bounces_table(table))
        #: the schema version (SPEC §8)
        self.versions = Versions(db, f"{table}_meta", table)
        #: the schema of this ledger's rows (an older one is read as it is by a dry run)
        self.version = SCHEMA_VERSION
        #: what opening it upgraded (``ledger migrate`` says it)
        self.upgraded: list[str] = []
        self._columns = ", ".join(_COLUMNS)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def open_sqlite(
        cls, path: Path, table: str, retry: RetrySettings, *, write: bool = True
    ) -> Ledger:
        for suffix in ("", "-wal", "-shm"):  # SQLite writes all three
            refuse_link(path.with_name(path.name + suffix), "ledger.sqlite")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            private(path, "ledger.sqlite")
            db = connect_sqlite(path, create=True, role=LEDGER_ROLE)
        except (OSError, ErpError) as exc:
            raise LedgerError(
                f"cannot open the ledger {path}: {exc}. Check ledger.sqlite in the settings "
                "and that the folder is writable."
            ) from None
        try:
            # WAL: a commit is one append + fsync instead of a rollback journal's several;
            # synchronous stays FULL so a committed claim survives a power cut too
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
        except ErpError as exc:
            raise LedgerError(f"cannot use the ledger {path}: {exc}") from None
        ledger = cls(db, table, retry, local=True)
        ledger.upgraded = ledger.ensure_schema(write=write)
        return ledger

    # --- schema -----------------------------------------------------------------------
    def ensure_schema(self, *, write: bool = True) -> list[str]:
        """Create what is missing (a new ledger gets the latest schema), bring an older
        ledger up to date, and refuse one a newer tool has upgraded (SPEC §8); what was
        upgraded. ``write=False`` (a dry run): nothing is created or changed, an older
        ledger is read as it is.

        Safe when several hosts start at once on a database without the tables, or with an
        older ledger: each statement is committed on its own, a CREATE that fails because
        another host just made the object is a race lost quietly, and each upgrade step is
        idempotent.
        """
        with self.errors(f"cannot look for the ledger tables on {self.db.where}"):
            fresh = not self.db.has_table(self.table)
            stored = SCHEMA_VERSION if fresh else self.versions.stored()
        migrate.refuse_newer(stored, self.versions.upgraded_by)
        if not write:
            self._read_as(stored)
            return []
        tables = [
            (self.table, _ddl(self.table, self.db.dialect)),
            (self.runs.table, runs_ddl(self.runs.table, self.db.dialect)),
            (self.optout.table, optout_ddl(self.optout.table, self.db.dialect)),
            (self.versions.table, meta_ddl(self.versions.table, self.db.dialect)),
        ]
        if fresh:  # in an older ledger, the tables of later schemas come by its upgrade
            tables.append((self.bounces.table, bounces_ddl(self.bounces.table, self.db.dialect)))
        for table, statements in tables:
            with self.errors(f"cannot look for the ledger table {table} on {self.db.where}"):
                if self.db.has_table(table):
                    continue
            create, *indexes = statements
            self._create(table, create, required=True)
            for statement in indexes:
                self._create(table, statement, required=False)
        if fresh:
            self.versions.record(SCHEMA_VERSION)
            return []
        return self.versions.upgrade(stored)

    def _read_as(self, version: int) -> None:
        self.version = version
        self.runs.read_as(version)
        columns = [c for c in _COLUMNS if version >= 2 or c != "message_id"]
        self._columns = ", ".join(columns)

    def _create(self, table: str, statement: str, *, required: bool) -> None:
        try:
            self.db.execute(statement)
            self.db.commit()
            return
        except ErpError as exc:
            self.db.rollback()
            failure = exc
        # MySQL/MariaDB < 10.5 know no CREATE INDEX IF NOT EXISTS, and a concurrent first
        # run of another host may have created the table (or its index) a moment ago
        if not required:
            return  # an index that exists already, or that another host is creating
        try:
            if self.db.has_table(table):
                return
        except ErpError:
            pass
        raise LedgerError(
            f"cannot create the ledger table {table} on {self.db.where}: {failure}. "
            "A DBA can create it with the statements of 'proit-notify ledger ddl'."
        ) from None

    # --- reading ----------------------------------------------------------------------
    def _rows(self, where: str, params: Sequence[object]) -> list[Entry]:
        found = self.read(
            f"SELECT {self._columns} FROM {self._q} WHERE {where}", params, "ledger read failed"
        )
        return [_entry(row) for row in found]

    def _value(self, sql: str, params: Sequence[object], name: str) -> object:
        """One value of a one-row query."""
        rows = self.read(sql, params, "ledger read failed")
        return rows[0][name] if rows else None

    def get(self, key: str, channel: str) -> Entry | None:
        found = self._rows("key_ = ? AND channel = ?", [key, channel])
        return found[0] if found else None

    def entries(self, key: str) -> list[Entry]:
        """All channels' rows of one key."""
        return self._rows("key_ = ?", [key])

    def with_prefix(self, prefix: str) -> list[Entry]:
        """Rows whose key starts with ``prefix`` (e.g. ``prepayment:42:``)."""
        escaped = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
        return self._rows("key_ LIKE ? ESCAPE '!'", [escaped + "%"])

    def sent_between(self, job: str, start: datetime, end: datetime) -> list[Entry]:
        """Rows of ``job`` sent in [start, end] (aware datetimes)."""
        return self._rows(
            "job = ? AND status = 'sent' AND sent_at >= ? AND sent_at <= ?",
            [job, to_utc_text(start), to_utc_text(end)],
        )

    def started(self, job: str, baseline: str) -> bool:
        """Whether ``job`` has any row but a ``skipped`` one with detail ``baseline``."""
        found = self._value(
            f"SELECT CASE WHEN EXISTS (SELECT 1 FROM {self._q} WHERE job = ? AND "
            "(status <> 'skipped' OR detail IS NULL OR detail <> ?)) "
            "THEN 1 ELSE 0 END AS found",
            [job, baseline],
            "found",
        )
        return bool(found and int(str(found)))

    def tally(self, since: datetime | None = None) -> dict[str, int]:
        """Rows per status (changed since ``since``, if given): for ``status``."""
        where, params = ("updated_at >= ?", [to_utc_text(since)]) if since else ("1 = 1", [])
        rows = self.read(
            f"SELECT status, COUNT(*) AS n FROM {self._q} WHERE {where} GROUP BY status",
            params,
            "ledger read failed",
        )
        return {str(r["status"]): int(r["n"]) for r in rows}

    def oldest(self, status: Status) -> datetime | None:
        """When the oldest row with ``status`` was created."""
        found = self._value(
            f"SELECT MIN(created_at) AS oldest_at FROM {self._q} WHERE status = ?",
            [status],
            "oldest_at",
        )
        return from_utc_text(str(found)) if found else None

    def count_sent(self, account: str, since: datetime) -> int:
        """Messages an account has sent since ``since`` (for ``max_per_day``)."""
        found = self._value(
            f"SELECT COUNT(*) AS n FROM {self._q} WHERE account = ? AND channel = 'email' "
            "AND status IN ('sent', 'sending', 'unknown') AND updated_at >= ?",
            [account, to_utc_text(since)],
            "n",
        )
        return int(str(found)) if found is not None else 0

    def history(
        self,
        *,
        job: str | None = None,
        status: str | None = None,
        key: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[Entry]:
        where, params = ["1 = 1"], []
        if job:
            where.append("job = ?")
            params.append(job)
        if status:
            where.append("status = ?")
            params.append(status)
        if key:
            where.append("key_ = ?")
            params.append(key)
        if since:
            where.append("updated_at >= ?")
            params.append(to_utc_text(since))
        rows = self._rows(" AND ".join(where) + " ORDER BY updated_at, key_", params)
        return rows[-limit:]

    # --- writing ----------------------------------------------------------------------
    def claim(
        self,
        row: Row,
        now: datetime,
        *,
        status: Status = "sending",
        detail: str = "",
    ) -> bool:
        """Insert ``row`` with ``status`` (committed). False when it exists: someone has it
        already.

        A ``deferred`` row whose back-off has passed is taken over instead (still atomic:
        the UPDATE only matches while the row is deferred). Two hosts claiming at once can
        make the database pick one as a deadlock victim (InnoDB does with concurrent inserts
        of one key): its claim was rolled back, so it is simply tried again.
        """
        assert allowed(None, status), status
        stamp = to_utc_text(now)
        info_text = json.dumps(row.info, default=str, ensure_ascii=False)
        values = [
            row.key,
            row.channel,
            row.job,
            row.document[:400],
            row.recipient[:320],
            row.account[:100],
            status,
            redact(detail),
            1 if status == "sending" else 0,
            stamp,
            stamp,
            stamp if status == "sent" else None,
            None,
            self.host,
            info_text,
            row.message_id,
        ]

        def once() -> bool:
            with self.errors(f"ledger write failed for {row.key}"):
                inserted = self.db.insert_unique(
                    f"INSERT INTO {self._q} ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _COLUMNS)})",
                    values,
                )
                if inserted:
                    self.db.commit()
                    return True
                if status != "sending":
                    return False
                taken = self.db.execute(
                    f"UPDATE {self._q} SET status = 'sending', attempts = attempts + 1, "
                    "updated_at = ?, host = ?, recipient = ?, account = ?, document = ?, "
                    "info = ?, message_id = ? "
                    "WHERE key_ = ? AND channel = ? AND status = 'deferred' "
                    "AND (next_attempt_at IS NULL OR next_attempt_at <= ?)",
                    [
                        stamp,
                        self.host,
                        row.recipient[:320],
                        row.account[:100],
                        row.document[:400],
                        info_text,
                        row.message_id,
                        row.key,
                        row.channel,
                        stamp,
                    ],
                )
                self.db.commit()
                return taken == 1

        return self._retrying(row.key, once)

    def _retrying(self, key: str, write: Callable[[], bool]) -> bool:
        """``write``, again after a deadlock (the database rolled it back)."""
        for attempt in range(DEADLOCK_RETRIES):
            try:
                return write()
            except DeadlockError as exc:
                self.db.rollback()
                if attempt == DEADLOCK_RETRIES - 1:
                    raise LedgerError(f"ledger write failed for {key}: {exc}") from None
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def record(self, key: str, channel: str, result: SendResult, now: datetime) -> Status:
        """Store a channel's outcome for a claimed row (committed); returns the new status.

        On a SQLite ledger this commit does not wait for the disk: should the outcome be
        lost in a power cut, the row is still ``sending`` and becomes ``unknown`` (never
        resent), and the next claim's commit writes it to disk anyway. The claim itself is
        always committed to disk before the message goes out.
        """
        status: Status = result.outcome
        next_attempt: str | None = None
        detail = redact(result.detail)  # a server's answer may echo the login
        if status == "deferred":
            entry = self.get(key, channel)
            attempts = entry.attempts if entry else 1
            if attempts >= self.retry.max_attempts:
                status = "failed"
                detail = f"gave up after {attempts} attempts; last answer: {detail}"
            else:
                delay = timedelta(minutes=self.retry.first_delay_minutes * 2 ** (attempts - 1))
                delay = min(delay, timedelta(hours=self.retry.max_delay_hours))
                if result.retry_after is not None:  # never before the server said (429)
                    delay = max(delay, timedelta(seconds=result.retry_after))
                next_attempt = to_utc_text(now + delay)
        stamp = to_utc_text(now)
        self._update(
            "status = ?, detail = ?, updated_at = ?, sent_at = ?, next_attempt_at = ?",
            [status, detail, stamp, stamp if status == "sent" else None, next_attempt],
            key,
            channel,
            durable=False,
        )
        return status

    def set_status(
        self,
        key: str,
        channel: str,
        status: Status,
        now: datetime,
        detail: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        """Set a row's status whatever it is now (the operator's and drafts' decisions)."""
        sets, params = self._status_sets(status, now, detail, info)
        self._update(", ".join(sets), params, key, channel)

    def transition(
        self,
        key: str,
        channel: str,
        *,
        from_status: Status,
        to: Status,
        now: datetime,
        detail: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> bool:
        """Change the status only while it is ``from_status``: one conditional UPDATE, so of
        two runs (or two people) that try the same change, exactly one succeeds."""
        assert allowed(from_status, to), (from_status, to)
        sets, params = self._status_sets(to, now, detail, info)
        count = self.write(
            f"UPDATE {self._q} SET {', '.join(sets)} WHERE key_ = ? AND channel = ? AND status = ?",
            [*params, key, channel, from_status],
            f"ledger write failed for {key}",
        )
        return count == 1

    def _status_sets(
        self, status: Status, now: datetime, detail: str | None, info: dict[str, Any] | None
    ) -> tuple[list[str], list[object]]:
        sets: list[str] = ["status = ?", "updated_at = ?"]
        params: list[object] = [status, to_utc_text(now)]
        if detail is not None:
            sets.append("detail = ?")
            params.append(redact(detail))
        if info is not None:
            sets.append("info = ?")
            params.append(json.dumps(info, default=str, ensure_ascii=False))
        if status == "sent":
            sets.append("sent_at = ?")
            params.append(to_utc_text(now))
        if status == "deferred":
            sets.append("next_attempt_at = NULL")  # due at the next run, whatever its --as-of
        if status == "sending":  # a claim: this host is now responsible for the row
            sets += ["attempts = attempts + 1", "host = ?"]
            params.append(self.host)
        return sets, params

    def release(
        self, key: str, channel: str, *, back_to: Status | None, now: datetime, detail: str
    ) -> None:
        """Undo our claim of a message that was never handed over (the account could not be
        used at all): a new row goes away, a taken-over ``deferred`` or ``draft`` row gets its
        status back, due at once (no back-off: nothing was tried)."""
        if back_to is None:
            self.write(
                f"DELETE FROM {self._q} WHERE key_ = ? AND channel = ? AND status = 'sending'",
                [key, channel],
                f"ledger write failed for {key}",
            )
            return
        assert allowed("sending", back_to), back_to
        self.write(
            f"UPDATE {self._q} SET status = ?, detail = ?, updated_at = ?, "
            "attempts = attempts - 1, next_attempt_at = NULL "
            "WHERE key_ = ? AND channel = ? AND status = 'sending'",
            [back_to, redact(detail), to_utc_text(now), key, channel],
            f"ledger write failed for {key}",
        )

    def _update(
        self, sets: str, params: Sequence[object], key: str, channel: str, durable: bool = True
    ) -> None:
        relaxed = not durable and self._local
        with self.errors(f"ledger write failed for {key}"):
            if relaxed:
                self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute(
                f"UPDATE {self._q} SET {sets} WHERE key_ = ? AND channel = ?",
                [*params, key, channel],
            )
            self.db.commit()
            if relaxed:
                self.db.execute("PRAGMA synchronous = FULL")

    def recover_stale(self, now: datetime) -> list[Entry]:
        """``sending`` rows of this host are left by a run that ended abruptly: they become
        ``unknown`` (never resent automatically); the rows as they are now.

        Call only while holding the run lock. Only this host's rows: under the lock no other
        run of this host is active, while a run on another host sharing the ledger may be
        sending right now.
        """
        stale = self._rows("status = 'sending' AND host = ?", [self.host])
        return [
            replace(e, status="unknown", detail=STALE, updated_at=now)
            for e in stale
            if self.transition(
                e.key, e.channel, from_status="sending", to="unknown", now=now, detail=STALE
            )
        ]

    def resolve(
        self, key: str, *, sent: bool, now: datetime, channel: str | None = None
    ) -> list[str]:
        """Operator's decision: an ``unknown`` row marked sent, or an ``unknown``, ``failed``
        or ``bounced`` row (the address fixed in the ERP since) released for one more send;
        a bounced row's address is then no longer held back (:mod:`.bounces`).

        A row that failed before a channel was chosen (``none``: its ERP row could not be
        read) is removed, so that the next run plans the notification afresh."""
        wanted = ("unknown",) if sent else ("unknown", "failed", "bounced")
        targets = [e for e in self.entries(key) if e.status in wanted]
        if channel:
            targets = [e for e in targets if e.channel == channel]
        if not targets:
            known = ", ".join(f"{e.channel}: {e.status}" for e in self.entries(key)) or "no rows"
            what = (
                "an unknown row to mark sent" if sent else "an unknown, failed or bounced row "
                "to resend"
            )
            raise UsageError(
                f"ledger key {key!r} has no {what} ({known}); see 'proit-notify history --key KEY'"
            )
        for entry in targets:
            if sent:
                self.set_status(key, entry.channel, "sent", now, "marked sent by the operator")
            elif entry.channel == "none":
                self.write(
                    f"DELETE FROM {self._q} WHERE key_ = ? AND channel = ? AND status = 'failed'",
                    [key, entry.channel],
                    f"ledger write failed for {key}",
                )
            else:
                self.set_status(
                    key, entry.channel, "deferred", now, "released for resending by the operator"
                )
                if entry.status == "bounced":
                    self.bounces.remove_key(key)
        return [e.channel for e in targets]

    # --- after the hand-over (SPEC §10) -------------------------------------------------
    def by_message_ids(self, ids: Sequence[str]) -> list[Entry]:
        """The email rows that went out with one of these Message-IDs."""
        wanted = sorted({i for i in ids if i})[:200]
        if not wanted or self.version < 2:  # a dry run on a ledger without Message-IDs
            return []
        marks = ", ".join("?" for _ in wanted)
        return self._rows(f"channel = 'email' AND message_id IN ({marks})", wanted)

    def bounce(self, entry: Entry, now: datetime, detail: str) -> bool:
        """A delivery report says ``entry``'s email did not arrive: the row becomes
        ``bounced`` and its address is held back; False when the row moved meanwhile."""
        moved = self.transition(
            entry.key, entry.channel, from_status=entry.status, to="bounced", now=now,
            detail=detail,
        )  # fmt: skip
        if moved:
            self.bounces.add(entry.recipient, entry.key, detail, now)
        return moved

    def note_report(self, entry: Entry, report: dict[str, Any]) -> None:
        """Keep a delivery report that is not final (``delayed``) with the row."""
        info = dict(entry.info)
        reports = [r for r in info.get("delivery_reports", []) if isinstance(r, dict)]
        info["delivery_reports"] = [*reports[-9:], report]
        self.write(
            f"UPDATE {self._q} SET info = ? WHERE key_ = ? AND channel = ?",
            [json.dumps(info, default=str, ensure_ascii=False), entry.key, entry.channel],
            f"ledger write failed for {entry.key}",
        )

    def close(self) -> None:
        self.db.close()


def _entry(row: dict[str, Any]) -> Entry:
    return Entry(
        key=row["key_"],
        channel=row["channel"],
        job=row["job"],
        document=row["document"],
        recipient=row["recipient"],
        account=row["account"],
        status=row["status"],
        detail=row["detail"] or "",
        attempts=int(row["attempts"]),
        created_at=from_utc_text(row["created_at"]),
        updated_at=from_utc_text(row["updated_at"]),
        sent_at=from_utc_text(row["sent_at"]) if row["sent_at"] else None,
        next_attempt_at=from_utc_text(row["next_attempt_at"]) if row["next_attempt_at"] else None,
        host=row["host"],
        info=json.loads(row["info"]) if row["info"] else {},
        message_id=row.get("message_id") or None,
    )
