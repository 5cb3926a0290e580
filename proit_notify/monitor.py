"""Nobody reads the Task Scheduler's output (SPEC §6 "Alerts", §7 ``status``).

- :class:`CommandRun` records every job command run in the run records (ledger database)
  and, when it ended with failed, deferred or unknown notifications or an exit code >= 3,
  mails one summary to ``alerts.to``, at most once per hour for the same problems.
- :func:`status` tells a person or a monitoring agent what waits for a person.

When the alert cannot be sent (the relay is what failed), the outcome goes to the log and
into the run record, where ``status`` shows it.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from .bounces import BOUNCES
from .channels import Channel, Outgoing
from .clock import Clock, from_utc_text, to_utc_text
from .errors import NotifyError, UnreachableError
from .jobs import registry
from .ledger import Entry, Ledger
from .ledger.runs import NO_JOB, RunLog, RunRecord
from .redaction import one_line, redact
from .report import ItemReport, JobReport
from .settings import Settings
from .statuses import PROBLEM_ORDER

#: the zone of stored times (what status says when it is not told the local one)
UTC_ZONE = ZoneInfo("UTC")
log = logging.getLogger("proit_notify")

#: the same problems are mailed at most once in this time
ALERT_INTERVAL = timedelta(hours=1)
#: problem rows listed in one alert mail (the rest: ``history``)
ALERT_ROWS = 50
#: a job that ran before but not for this long waits for a person (SPEC §7)
STALE_AFTER = timedelta(hours=26)
#: bounced emails ``status`` names (the address to fix): those of the last week
BOUNCED_SHOWN = timedelta(days=7)
#: ... at most this many, one line each
BOUNCED_LINES = 10
PROBLEM_STATUSES = PROBLEM_ORDER


@dataclass(frozen=True)
class Alert:
    """One summary mail: its subject, its text, and its problems (``status key channel`` of
    each problem row, ``exit N ...`` of an error): mailed when one of them was not mailed in
    the last hour."""

    subject: str
    text: str
    problems: tuple[str, ...]

    def messages(self, settings: Settings, run_id: str) -> list[Outgoing]:
        """One message per address of ``alerts.to``; each its own Message-ID."""
        body = f"<pre>{html.escape(self.text)}</pre>"
        return [
            Outgoing(
                key=f"alert:{run_id}:{i}",
                channel="email",
                to=address,
                to_name=None,
                subject=self.subject,
                text=self.text,
                html=body,
                account=settings.alert_account,
                document="proit-notify alert",
            )
            for i, address in enumerate(settings.alerts.to)
        ]


def alert_for(
    command: str,
    host: str,
    when: str,
    reports: Sequence[JobReport],
    exit_code: int,
    error: str | None,
    unresolved: Sequence[Entry] = (),
) -> Alert | None:
    """The summary of a command run, or None when nothing is wrong with it.

    ``unresolved``: the ledger's ``unknown`` rows (a crashed run's, recovered by ``history``
    or ``status`` since): named until a person resolves them, whichever run found them.
    """
    rows = [i for r in reports for i in r.items if i.status in PROBLEM_STATUSES]
    attention = [a for r in reports for a in r.attention]
    listed = {(i.key, i.channel) for i in rows}
    waiting = [e for e in unresolved if (e.key, e.channel) not in listed]
    if exit_code < 3 and not rows and not attention and not waiting:
        return None
    tally: dict[str, int] = {s: sum(1 for i in rows if i.status == s) for s in PROBLEM_STATUSES}
    tally["unknown"] += len(waiting)
    what = ", ".join(f"{n} {s}" for s, n in tally.items() if n)
    if exit_code >= 3:
        what = f"exit {exit_code}" + (f", {what}" if what else "")
    if not what:
        what = "notifications aged out during a pause"
    lines = [f"proit-notify {command} on {host}, {when}: exit code {exit_code}", ""]
    if error:
        lines += ["The run stopped with this error:", f"  {one_line(error)}", ""]
    if reports:
        lines += ["Counts per job:", *(f"  {r.summary()}" for r in reports), ""]
    if rows:
        lines.append(f"Notifications that need attention ({len(rows)}):")
        for item in rows[:ALERT_ROWS]:
            # ERP text on one line each: a CR/LF in an order number cannot forge a line
            where = one_line(f"{item.channel} {item.recipient}".strip())
            lines.append(
                f"  {item.status:<8} {one_line(item.key)}  {where}  {one_line(item.document)}"
            )
            if item.reason:
                lines.append(f"           {one_line(item.reason)}")
        if len(rows) > ALERT_ROWS:
            lines.append(f"  ... and {len(rows) - ALERT_ROWS} more: proit-notify history")
        lines.append("")
    if waiting:
        lines.append(
            f"Unknown notifications nobody has resolved yet ({len(waiting)}), left by a run "
            "that ended while sending:"
        )
        for entry in waiting[:ALERT_ROWS]:
            where = one_line(f"{entry.channel} {entry.recipient}")
            lines.append(f"  unknown  {one_line(entry.key)}  {where}  {one_line(entry.document)}")
        if len(waiting) > ALERT_ROWS:
            lines.append(f"  ... and {len(waiting) - ALERT_ROWS} more: proit-notify history")
        lines.append("")
    notes = [n for r in reports for n in r.notes]
    if notes:
        lines += ["Notes of the run:", *(f"  {n}" for n in notes), ""]
    lines += ["What to do next:", *_next_steps(tally, exit_code), ""]
    lines.append("This mail is sent at most once an hour for the same problems ([alerts]).")
    problems = [f"{i.status} {i.key} {i.channel}" for i in rows] + attention
    problems += [f"unknown {e.key} {e.channel}" for e in waiting]
    if exit_code >= 3:
        problems.append(f"exit {exit_code} {command} {error or ''}")
    text = redact("\n".join(lines))
    return Alert(f"proit-notify on {host}: {command}: {what}", text, tuple(problems))


def _next_steps(tally: dict[str, int], exit_code: int) -> list[str]:
    steps = []
    if exit_code == 3:
        steps.append(
            "  - settings, mapping or templates: run 'proit-notify check' and fix what it names"
        )
    if exit_code == 4:
        steps.append(
            "  - a database or mail server could not be used: 'proit-notify check' names it; "
            "nothing of that account was claimed, the first run after the fix sends it"
        )
    if exit_code == 5:
        steps.append("  - another run held the lock: if none is running, look for a hung process")
    if tally["failed"]:
        steps.append(
            "  - failed: fix the address or number in the ERP; failed rows are not retried "
            "(proit-notify history --status failed)"
        )
    if tally["deferred"]:
        steps.append(
            "  - deferred: the next runs retry them; if it goes on, check the mail server "
            "(proit-notify check)"
        )
    if tally["unknown"]:
        steps.append(
            "  - unknown: check whether the customer got it, then "
            "'proit-notify ledger resolve KEY --sent' or '--resend'"
        )
    if tally["bounced"]:
        steps.append(
            "  - bounced: the address in the ERP is wrong (each line names the customer and "
            "the field); no email goes there until it is corrected; then "
            "'proit-notify ledger resolve KEY --resend' sends the notice again"
        )
    steps.append("  - overview: proit-notify status")
    return steps


def sample_alert(host: str, when: str) -> Alert:
    """``test-send --alert``: what an alert looks like, marked as a test."""
    sample = JobReport("shipping-confirmations", dry_run=False)
    sample.items.append(
        ItemReport(
            "shipping:0",
            "Lieferschein 0 (test)",
            "email",
            "kunde@example.invalid",
            "default",
            "failed",
            "550 example: mailbox unavailable (this is a test)",
        )
    )
    found = alert_for("test-send --alert", host, when, [sample], 1, None)
    assert found is not None
    return Alert(f"[test] {found.subject}", "THIS IS A TEST ALERT.\n\n" + found.text, ())


class Throttle:
    """When each problem was last mailed, in a file next to the lock file (per host; it
    works when the ledger's database is what failed). Problems are kept as hashes: a key
    holds ERP text, and the file needs none of it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def all_recent(self, problems: Sequence[str], now: datetime) -> bool:
        """Every one of ``problems`` was mailed less than an hour ago."""
        seen = self._load()
        return all(
            (stamp := seen.get(_digest(p))) is not None
            and now - from_utc_text(stamp) < ALERT_INTERVAL
            for p in problems
        )

    def remember(self, problems: Sequence[str], now: datetime) -> None:
        kept = {k: v for k, v in self._load().items() if now - from_utc_text(v) < ALERT_INTERVAL}
        kept.update({_digest(p): to_utc_text(now) for p in problems})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(kept, f)
        os.replace(tmp, self.path)


def _digest(problem: str) -> str:
    return hashlib.sha256(problem.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class AlertOutcome:
    """What became of an alert: the line for the log and the run record, and whether it
    reached every address."""

    text: str
    delivered: bool


def send_alert(alert: Alert, settings: Settings, channel: Channel, run_id: str) -> AlertOutcome:
    """Mail the alert to every address."""
    said, delivered = [], True
    for message in alert.messages(settings, run_id):
        try:
            channel.prepare(message.account)
            result = channel.send(message)
            what = "sent" if result.ok else f"not sent ({result.outcome}: {result.detail})"
            delivered = delivered and result.ok
        except UnreachableError as exc:
            what, delivered = f"not sent ({exc})", False
        said.append(f"{message.to}: {what}")
    return AlertOutcome("; ".join(said), delivered)


@dataclass
class CommandRun:
    """The run records and the alert of one job command (``run-all`` or one job)."""

    settings: Settings
    clock: Clock
    command: str
    run_id: str = field(default_factory=RunLog.new_id)
    reports: list[JobReport] = field(default_factory=list)
    _ended: set[str] = field(default_factory=set)  # jobs whose counts are recorded

    def job_started(self, ledger: Ledger, job: str) -> None:
        ledger.runs.start(self.run_id, job, self.command, self.clock.utc)

    def job_ended(self, ledger: Ledger, report: JobReport) -> None:
        self.reports.append(report)
        ledger.runs.end_job(self.run_id, report.job, report.counts, self.clock.utc)
        self._ended.add(report.job)

    def finish(
        self, ledger: Ledger | None, exit_code: int, error: str | None, channel: Channel
    ) -> str | None:
        """Record the exit code (and the counts of a job an error stopped) and send the
        alert if one is due; the alert's outcome. ``error``: what stopped the command."""
        # a server's answer (a 535 that echoes the login) is redacted like any output
        # each job of a run-all meets the same closed port: said once
        blocked = dict.fromkeys(b for r in self.reports for b in r.blocked)
        detail = redact(error or "; ".join(blocked))
        now = self.clock.utc
        unresolved: list[Entry] = []
        if ledger is not None:
            try:
                for report in self.reports:
                    if report.job not in self._ended:  # stopped midway: what it did
                        ledger.runs.end_job(self.run_id, report.job, report.counts, now)
                ledger.runs.end_command(self.run_id, self.command, exit_code, detail, now)
                unresolved = ledger.history(status="unknown", limit=ALERT_ROWS * 2)
            except NotifyError as exc:
                log.error("could not record this run: %s", redact(str(exc)))
                ledger = None
        outcome = self._alert(exit_code, detail if error else None, channel, now, unresolved)
        if outcome is None:
            return None
        if ledger is not None:
            try:
                ledger.runs.set_alert(self.run_id, outcome.text)
            except NotifyError as exc:
                log.error("could not record the alert: %s", redact(str(exc)))
        if outcome.delivered:
            log.info("alert: %s", outcome.text)
        else:
            log.error("alert: %s", redact(outcome.text))
        return outcome.text

    def _alert(
        self,
        exit_code: int,
        error: str | None,
        channel: Channel,
        now: datetime,
        unresolved: Sequence[Entry],
    ) -> AlertOutcome | None:
        alerts = self.settings.alerts
        if not alerts.enabled:
            return None
        host = RunLog.host_name()
        when = f"{self.clock.now:%Y-%m-%d %H:%M} ({self.settings.service.timezone})"
        alert = alert_for(self.command, host, when, self.reports, exit_code, error, unresolved)
        if alert is None:
            return None
        throttle = Throttle(alert_state_path(self.settings))
        if throttle.all_recent(alert.problems, now):
            return AlertOutcome(
                "not mailed again: the same problems were mailed less than an hour ago", True
            )
        outcome = send_alert(alert, self.settings, channel, self.run_id)
        if outcome.delivered:
            throttle.remember(alert.problems, now)
        return outcome


def alert_state_path(settings: Settings) -> Path:
    lock = settings.lock_path
    return lock.with_name(lock.name.removesuffix(".lock") + ".alerts.json")


# --- status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCount:
    """One job's sent and failed notifications of one local day."""

    day: date
    sent: int
    failed: int


def day_counts(ledger: Ledger, job: str, now: datetime, tz: ZoneInfo) -> tuple[DayCount, ...]:
    """Sent and failed rows of ``job`` (its ledger name) per local day: the last 7 days
    and today, by the day of their last change."""
    today = now.astimezone(tz).date()
    first = today - timedelta(days=7)
    tally = {first + timedelta(days=i): [0, 0] for i in range(8)}
    since = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    for entry in ledger.history(job=job, since=since, limit=10**7):
        counts = tally.get(entry.updated_at.astimezone(tz).date())
        if counts is not None and entry.status in ("sent", "failed"):
            counts[entry.status == "failed"] += 1
    return tuple(DayCount(day, sent, failed) for day, (sent, failed) in tally.items())


@dataclass(frozen=True)
class JobStatus:
    """One job's line of ``status``."""

    job: str
    last: RunRecord | None
    stale: bool  # ran before, but not in the last 26 h
    #: a run of this host holds the lock now: an unfinished record is that run
    running: bool = False
    #: the zone times are said in (service.timezone, as the table shows them)
    tz: ZoneInfo = UTC_ZONE
    #: sent and failed per local day, the last 7 days and today (oldest first)
    days: tuple[DayCount, ...] = ()

    @property
    def held(self) -> int:
        """Notifications the last run left unclaimed because it could not send (a blocked
        account or a stopped run: exit 3 or more); they go out on the first run after."""
        if self.stale or self.last is None or (self.last.exit_code or 0) < 3:
            return 0
        return self.last.counts.get("deferred", 0)

    @property
    def problem(self) -> str | None:
        if self.stale and self.last is not None:
            since = _local(self.last.started_at, self.tz)
            return f"has not run since {since} (more than 26 h)"
        if self.last is not None and self.last.exit_code is not None and self.last.exit_code >= 3:
            return f"its last run ended with exit code {self.last.exit_code}: {self.last.detail}"
        if self.last is not None and self.last.ended_at is None:
            if self.last.host != RunLog.host_name():
                return (
                    f"its last run, on {self.last.host}, has not finished: still running "
                    "there, or killed"
                )
            if not self.running:
                return "its last run did not finish (killed or crashed)"
        return None


@dataclass(frozen=True)
class Status:
    """What ``proit-notify status`` reports (exit 1 when :attr:`waiting` is not empty)."""

    jobs: tuple[JobStatus, ...]
    unknown: int
    drafts: int
    oldest_draft: datetime | None
    failed_24h: int
    deferred: int
    last_alert: str
    command_failure: RunRecord | None
    #: emails that bounced in the last :data:`BOUNCED_SHOWN`: an address to fix in the ERP
    bounced: tuple[Entry, ...] = ()
    tz: ZoneInfo = UTC_ZONE

    @property
    def waiting(self) -> list[str]:
        """What waits for a person, each with the command that shows or fixes it."""
        found = []
        if not any(j.last for j in self.jobs):
            found.append("no job run is recorded yet: is the scheduled task set up?")
        # one closed port stops every job of a run-all: one line names them all
        by_problem: dict[str, list[JobStatus]] = {}
        for j in self.jobs:
            if j.problem:
                by_problem.setdefault(j.problem, []).append(j)
        for problem, jobs in by_problem.items():
            line = f"{', '.join(j.job for j in jobs)}: {problem}"
            held = sum(j.held for j in jobs)
            if held:
                line += f"; {held} notification(s) held back go out on the first run after the fix"
            found.append(line)
        if self.command_failure is not None:
            r = self.command_failure
            found.append(
                f"{r.command} at {_local(r.started_at, self.tz)} ran no job: "
                f"exit {r.exit_code}: {r.detail}"
            )
        if self.unknown:
            found.append(
                f"{self.unknown} unknown notification(s): proit-notify history --status unknown, "
                "then proit-notify ledger resolve KEY --sent | --resend"
            )
        if self.drafts:
            found.append(f"{self.drafts} draft(s) waiting for review: proit-notify drafts list")
        if self.failed_24h:
            found.append(
                f"{self.failed_24h} failed in the last 24 h: proit-notify history --status failed"
            )
        for entry in self.bounced[:BOUNCED_LINES]:
            # the row's detail names the customer, the ERP field and the reason (bounces.py)
            found.append(f"bounced {entry.key} ({entry.document}): {one_line(entry.detail)}")
        if len(self.bounced) > BOUNCED_LINES:
            found.append(
                f"... and {len(self.bounced) - BOUNCED_LINES} more bounced: proit-notify history "
                "--status bounced"
            )
        return found

    def as_json(self) -> dict[str, object]:
        return {
            "ok": not self.waiting,
            "waiting": self.waiting,
            "unknown": self.unknown,
            "drafts": self.drafts,
            "oldest_draft": to_utc_text(self.oldest_draft) if self.oldest_draft else None,
            "failed_24h": self.failed_24h,
            "deferred": self.deferred,
            "bounced": [
                {**e.as_json(), "detail": e.detail, "updated_at": to_utc_text(e.updated_at)}
                for e in self.bounced
            ],
            "last_alert": self.last_alert,
            "jobs": [
                {
                    "job": j.job,
                    "last_run": _record_json(j.last),
                    "stale": j.stale,
                    "problem": j.problem,
                    "held": j.held,
                    "days": [
                        {"day": d.day.isoformat(), "sent": d.sent, "failed": d.failed}
                        for d in j.days
                    ],
                }
                for j in self.jobs
            ],
        }


def _record_json(r: RunRecord | None) -> dict[str, object] | None:
    if r is None:
        return None
    return {
        "command": r.command,
        "host": r.host,
        "started_at": to_utc_text(r.started_at),
        "ended_at": to_utc_text(r.ended_at) if r.ended_at else None,
        "counts": dict(r.counts),
        "exit_code": r.exit_code,
    }


def status(
    ledger: Ledger, now: datetime, *, running: bool = False, tz: ZoneInfo | None = None
) -> Status:
    """What waits for a person, read from the ledger and the run records; ``running``: a
    run of this host holds the lock (its unfinished records are no problem)."""
    latest = ledger.runs.last_per_job()
    names = [job.command for job in registry.JOBS]
    if BOUNCES in latest:  # the bounce reader, once it has run (an [imap] is set up)
        names.insert(0, BOUNCES)
    zone = tz or UTC_ZONE
    jobs = tuple(
        JobStatus(name, latest.get(name),
                  name in latest and now - latest[name].started_at > STALE_AFTER, running,
                  zone, () if name == BOUNCES else
                  day_counts(ledger, registry.spec(name).ledger_name, now, zone))
        for name in names
    )  # fmt: skip
    tally = ledger.tally()
    failure = latest.get(NO_JOB)
    if failure is not None and failure.exit_code == 5:
        failure = None  # another run held the lock: that run's own record counts
    newest_job = max((j.last.started_at for j in jobs if j.last), default=None)
    if failure is not None and newest_job is not None and failure.started_at < newest_job:
        failure = None  # a job ran after it: that run's result counts
    alerts = [r for r in latest.values() if r.alert]
    last_alert = max(alerts, key=lambda r: r.started_at).alert if alerts else ""
    return Status(
        jobs=jobs,
        unknown=tally.get("unknown", 0),
        drafts=tally.get("draft", 0),
        oldest_draft=ledger.oldest("draft"),
        failed_24h=ledger.tally(since=now - timedelta(hours=24)).get("failed", 0),
        deferred=tally.get("deferred", 0),
        last_alert=last_alert,
        command_failure=failure,
        bounced=tuple(ledger.history(status="bounced", since=now - BOUNCED_SHOWN, limit=50)),
        tz=tz or UTC_ZONE,
    )


def _local(moment: datetime, tz: ZoneInfo) -> str:
    """A stored time as ``status`` says it: local, with the zone's abbreviation."""
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M %Z}"
