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
