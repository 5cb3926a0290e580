"""The states of a ledger row (SPEC §6, §10), in one place: the words, the moves between
them, and which ones count as sent or as a problem. The ledger, the delivery, reports,
run records, alerts, ``status`` and the outputs take them from here.

A module of its own, importing nothing: the CLI's help text names the states without
importing the ledger (``--help`` stays fast).
"""

from __future__ import annotations

from typing import Literal

Status = Literal[
    "sending", "sent", "deferred", "failed", "unknown", "skipped", "draft", "bounced"
]
STATUSES: tuple[Status, ...] = (
    "sending",  # claimed: committed BEFORE the server or gateway is spoken to
    "sent",  # accepted by the server or gateway
    "deferred",  # a temporary failure: a later run tries again, with back-off
    "failed",  # a permanent failure: never retried by itself
    "unknown",  # handed over, the answer lost (or a crashed run's claim): never resent
    "skipped",  # nothing to send (info type none, a baseline, an objection ...)
    "draft",  # kept for a person to review (delivery_date.edit_before_send)
    "bounced",  # sent, then a delivery report said it did not arrive (email, SPEC §10)
)
#: what a channel's answer makes of a claimed row
Outcome = Literal["sent", "deferred", "failed", "unknown"]
#: a row in one of these waits for a person or a later run: exit 1, the alert, ``status``;
#: in the order alerts name them
PROBLEM_ORDER: tuple[Status, ...] = ("failed", "deferred", "unknown", "bounced")
PROBLEMS: frozenset[Status] = frozenset(PROBLEM_ORDER)
#: the customer got (or may have got) the message: a notice that counts as told
REACHED: frozenset[Status] = frozenset({"sent", "sending", "unknown"})
#: the counts a run reports and records, in this order (drafts and bounces are shown when
#: there are any)
COUNTED: tuple[Status, ...] = ("sent", "failed", "skipped", "deferred", "unknown")

#: every move a row may make; ``None``: the row does not exist yet (a claim inserts it)
TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({"sending", "sent", "failed", "skipped", "draft"}),
    # an outcome; or the claim undone when nothing was handed over (back to what it was)
    "sending": frozenset({"sent", "deferred", "failed", "unknown", "draft"}),
    "deferred": frozenset({"sending", "failed", "draft"}),
    "draft": frozenset({"sending", "skipped", "draft"}),
    # ledger resolve --sent | --resend; or a delivery report proves it went out, and failed
    "unknown": frozenset({"sent", "deferred", "bounced"}),
    "failed": frozenset({"deferred"}),  # ledger resolve --resend, after the ERP was fixed
    "sent": frozenset({"bounced"}),  # a delivery report came back (SPEC §10)
    "bounced": frozenset({"deferred"}),  # ledger resolve --resend, the address fixed
    "skipped": frozenset(),
}


def allowed(before: Status | None, after: Status) -> bool:
    """Whether a row may move from ``before`` to ``after`` (:data:`TRANSITIONS`)."""
    return after in TRANSITIONS[before]
