"""What a run reports: one item per notification and channel, counts, the summary line."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from .render import Rendered
from .statuses import COUNTED, PROBLEMS, Status

#: an item's status: a ledger row's (statuses.py), "planned" (a dry run's), or "waiting":
#: not claimed, no ledger row, not a problem; a later run sends it (outside a channel's
#: send window, an attachment the ERP is still writing)
ItemStatus = Status | Literal["planned", "waiting"]
COUNT_NAMES = (*COUNTED, "planned")


@dataclass(frozen=True)
class ItemReport:
    """One line of a job's result (the ``items`` of ``--json``)."""

    key: str
    document: str
    channel: str
    recipient: str
    account: str
    status: ItemStatus
    reason: str
    preview: Rendered | None = None
    #: the files the email carries (or, in a dry run, would carry): "LS_4711.pdf (182 KB)"
    attachments: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "document": self.document,
            "channel": self.channel,
            "recipient": self.recipient,
            "account": self.account,
            "status": self.status,
            "reason": self.reason,
        }
        if self.attachments:
            data["attachments"] = list(self.attachments)
        return data


@dataclass
class Tally:
    """How far a job run is, for the progress line (SPEC §12): ``total`` rows its selection
    found (the ERP's, and the ledger's for a job that reads sends from it), ``read`` of them
    so far, ``planned`` notifications the job made of them and ``finished`` of those gone
    through (sent, recorded, or passed over as handled before).

    ``counting``: whether the totals are wanted at all; they cost one COUNT query per
    selection, so only a terminal asks for them (cron has nobody to show them to).
    """

    counting: bool = False
    job: str = ""
    #: whether the step has rows to count (the bounce reader has none: only its time shows)
    sized: bool = True
    started: float = 0.0  # time.monotonic() when the job run started
    total: int = 0
    counted: bool = False  # a total came in (before: the COUNT is still running)
    read: int = 0
    planned: int = 0
    finished: int = 0

    def start(self, job: str, now: float, *, sized: bool = True) -> None:
        self.job, self.started, self.sized = job, now, sized
        self.total = self.read = self.planned = self.finished = 0
        self.counted = False

    def add(self, rows: int) -> None:
        """A selection's count came in."""
        self.total += rows
        self.counted = True

    def expected(self) -> int | None:
        """The notifications this job run goes through, estimated: those made so far, and
        the rows not read yet at the rate so far (a job leaves out rows that are not due).
        Exact once every row is read; None when nothing is counted (yet)."""
        if not self.counting or not self.sized or (not self.counted and not self.planned):
            return None
        unread = max(0, self.total - self.read)
        rate = self.planned / self.read if self.read else 1.0
        return max(self.finished, self.planned + round(unread * rate))

    def left(self, now: float) -> float | None:
        """Seconds still to go at the pace so far, or None before there is a pace."""
        expected = self.expected()
        if expected is None or not self.finished:
            return None
        return (now - self.started) / self.finished * (expected - self.finished)


@dataclass
class JobReport:
    """What one job did (or, in a dry run, would do)."""

    job: str
    dry_run: bool
    items: list[ItemReport] = field(default_factory=list)
    disabled: bool = False
    notes: list[str] = field(default_factory=list)  # for the person reading the output
    #: configuration-level failures (relay unreachable, TLS, login): the run exits 4
    blocked: list[str] = field(default_factory=list)
    #: what a person must hear although nothing failed (notifications that aged out during
    #: a pause): also in :attr:`notes`, and a reason for an alert
    attention: list[str] = field(default_factory=list)
    #: the error that stopped the job midway (the ERP or the ledger gone): what it did until
    #: then is in :attr:`items`
    error: str | None = None

    @property
    def note(self) -> str:
        return "\n".join(self.notes)

    @property
    def counts(self) -> dict[str, int]:
        tally: Counter[str] = Counter(i.status for i in self.items)
        counts = {name: tally.get(name, 0) for name in COUNT_NAMES}
        for shown in ("draft", "waiting"):  # counted when there are any
            if tally.get(shown):
                counts[shown] = tally[shown]
        return counts

    @property
    def ok(self) -> bool:
        """False when something failed, was deferred or is unknown (exit 1)."""
        return not (any(i.status in PROBLEMS for i in self.items) or self.blocked)

    def summary(self) -> str:
        text = self._summary()
        return text if self.error is None else f"{text}; stopped by an error"

    def _summary(self) -> str:
        c = self.counts
        if self.dry_run:
            head = f"{self.job} (dry run): {c['planned']} would be sent"
            rest = f", {c['failed']} would fail, {c['skipped']} would be skipped"
            if c.get("waiting"):
                rest += f", {c['waiting']} would wait"
            return head + rest
        text = (
            f"{self.job}: {c['sent']} sent, {c['failed']} failed, {c['skipped']} skipped, "
            f"{c['deferred']} deferred, {c['unknown']} unknown"
        )
        if c.get("draft"):
            text += f", {c['draft']} drafts"
        if c.get("waiting"):
            text += f", {c['waiting']} waiting"
        return text

    def as_json(self) -> dict[str, Any]:
        data = {
            "job": self.job,
            "dry_run": self.dry_run,
            "counts": self.counts,
            "items": [i.as_json() for i in self.items],
        }
        if self.error is not None:
            data["error"] = self.error
        return data
