"""Run records (SPEC §6): every command run, per job, in the ledger's database.

One row per command run and job (``run_id``, ``job``): when it started and ended, on which
host, its counts and the command's exit code. A command that failed before its first job
(ERP unreachable, a broken template) has one row with the job ``-``. The rows live next to
the ledger table (``<ledger.table>_runs``), so hosts that share a ledger share them too,
and ``proit-notify status`` reads them.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..clock import from_utc_text, to_utc_text
from ..db import Database, Dialect
from ..errors import MissingObjectError
from ..redaction import redact
from ..statuses import COUNTED, PROBLEM_ORDER
from .table import Table

#: the job of the row of a command that failed before any job ran
NO_JOB = "-"
#: the counts a row keeps (the report's, plus drafts, and the bounce reader's bounces)
COUNTS = (*COUNTED, "draft", "bounced")
#: ... in a ledger of an older schema (read as it is by a dry run), by the schema they came
ADDED_IN = {"bounced": 4}


def ddl(table: str, dialect: Dialect) -> list[str]:
    """The run records' table (created with the ledger's)."""
    mssql = dialect is Dialect.MSSQL
    text = "NVARCHAR(MAX)" if mssql else "TEXT"
    vc = "NVARCHAR" if mssql else "VARCHAR"
    exists = "" if mssql else "IF NOT EXISTS "
    counts = ", ".join(f"n_{name} INTEGER NOT NULL" for name in COUNTS)
    return [
        f"CREATE TABLE {exists}{dialect.quote(table)} ("
        f"run_id {vc}(32) NOT NULL, job {vc}(40) NOT NULL, command {vc}(40) NOT NULL, "
        f"host {vc}(200) NOT NULL, started_at {vc}(19) NOT NULL, ended_at {vc}(19), "
        f"{counts}, exit_code INTEGER, detail {text}, alert {text}, "
        "PRIMARY KEY (run_id, job))",
        f"CREATE INDEX {exists}{dialect.quote(table.rpartition('.')[2] + '_started')} "
        f"ON {dialect.quote(table)} (job, started_at)",
    ]


@dataclass(frozen=True)
class RunRecord:
    """One job's part of one command run."""

    run_id: str
    job: str
    command: str
    host: str
    started_at: datetime
    ended_at: datetime | None
    counts: Mapping[str, int]
    exit_code: int | None
    detail: str
    alert: str

    @property
    def problems(self) -> int:
        return sum(self.counts.get(name, 0) for name in PROBLEM_ORDER)


class RunLog(Table):
    """The run records of one ledger database."""

    def __init__(self, db: Database, table: str) -> None:
        super().__init__(db, table)
        self.host = self.host_name()
        #: the count columns of this table (an older schema has fewer)
        self.counts: tuple[str, ...] = COUNTS

    def read_as(self, version: int) -> None:
        """Read a table of an older schema as it is (a dry run upgrades nothing)."""
        self.counts = tuple(n for n in COUNTS if ADDED_IN.get(n, 1) <= version)

    @staticmethod
    def host_name() -> str:
        return socket.gethostname()

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    def start(self, run_id: str, job: str, command: str, now: datetime) -> None:
        zeros = ", ".join("0" for _ in self.counts)
        names = ", ".join(f"n_{name}" for name in self.counts)
        self._write(
            f"INSERT INTO {self._q} (run_id, job, command, host, started_at, {names}) "
            f"VALUES (?, ?, ?, ?, ?, {zeros})",
            [run_id, job, command[:40], self.host[:200], to_utc_text(now)],
        )

    def end_job(self, run_id: str, job: str, counts: Mapping[str, int], now: datetime) -> None:
        sets = ", ".join(f"n_{name} = ?" for name in self.counts)
        self._write(
            f"UPDATE {self._q} SET ended_at = ?, {sets} WHERE run_id = ? AND job = ?",
            [to_utc_text(now), *(int(counts.get(n, 0)) for n in self.counts), run_id, job],
        )

    def end_command(
        self, run_id: str, command: str, exit_code: int, detail: str, now: datetime
    ) -> None:
        """The command's exit code on each of its rows (a row ``-`` when it ran no job)."""
        if not self._read("run_id = ?", [run_id]):
            self.start(run_id, NO_JOB, command, now)
        self._write(
            f"UPDATE {self._q} SET exit_code = ?, detail = ?, "
            "ended_at = COALESCE(ended_at, ?) WHERE run_id = ?",
            [exit_code, redact(detail)[:4000], to_utc_text(now), run_id],
        )

    def set_alert(self, run_id: str, outcome: str) -> None:
        self._write(
            f"UPDATE {self._q} SET alert = ? WHERE run_id = ?", [redact(outcome)[:4000], run_id]
        )

    def previous_start(self, job: str, before: datetime) -> datetime | None:
        """When the latest finished run of ``job`` before ``before`` started."""
        rows = self._read(
            "job = ? AND ended_at IS NOT NULL AND started_at < ? ORDER BY started_at DESC",
            [job, to_utc_text(before)],
            first=True,
        )
        return rows[0].started_at if rows else None

    def last_per_job(self) -> dict[str, RunRecord]:
        """The latest row of each job (and of ``-``)."""
        latest: dict[str, RunRecord] = {}
        try:
            jobs = [str(r["job"]) for r in self.read(f"SELECT DISTINCT job FROM {self._q}")]
        except MissingObjectError:
            return {}  # an older ledger without run records (a dry run does not create it)
        for job in jobs:
            rows = self._read("job = ? ORDER BY started_at DESC", [job], first=True)
            if rows:
                latest[job] = rows[0]
        return latest

    def _read(self, where: str, params: Sequence[object], first: bool = False) -> list[RunRecord]:
        names = ", ".join(f"n_{name}" for name in self.counts)
        sql = (
            f"SELECT run_id, job, command, host, started_at, ended_at, {names}, exit_code, "
            f"detail, alert FROM {self._q} WHERE {where}"
        )
        try:
            with self.errors(f"reading the run records ({self.table}) failed"):
                rows = []
                for row in self.db.stream(sql, params):
                    rows.append(_record(row))
                    if first:
                        break
                return rows
        except MissingObjectError:
            return []  # an older ledger without run records (a dry run does not create it)

    def _write(self, sql: str, params: Sequence[object]) -> None:
        self.write(sql, params, f"writing the run records ({self.table}) failed")


def _record(row: Mapping[str, object]) -> RunRecord:
    ended = row["ended_at"]
    code = row["exit_code"]
    return RunRecord(
        run_id=str(row["run_id"]),
        job=str(row["job"]),
        command=str(row["command"]),
        host=str(row["host"]),
        started_at=from_utc_text(str(row["started_at"])),
        ended_at=from_utc_text(str(ended)) if ended else None,
        counts={name: int(str(row.get(f"n_{name}") or 0)) for name in COUNTS},
        exit_code=int(str(code)) if code is not None else None,
        detail=str(row["detail"] or ""),
        alert=str(row["alert"] or ""),
    )
