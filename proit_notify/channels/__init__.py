"""Channels: email and SMS behind one Protocol.

A channel is handed one :class:`Outgoing` at a time and answers with a :class:`SendResult`
that classifies the outcome as SPEC §6 defines it. Channels never touch the ledger; the
delivery claims before calling ``send`` and records the result after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from ..statuses import Outcome as Outcome  # what a channel's answer makes of a row

ChannelName = Literal["email", "sms"]


@dataclass(frozen=True)
class Attachment:
    """A file an email carries (the ERP's delivery note PDF, a QR-bill)."""

    filename: str  # as the customer sees it: "LS_4711.pdf"
    content_type: str  # "application/pdf"
    data: bytes = field(repr=False)

    @property
    def label(self) -> str:
        """``LS_4711.pdf (182 KB)``: what a report shows of it."""
        return f"{self.filename} ({max(1, round(len(self.data) / 1024)):,} KB)"


@dataclass(frozen=True)
class Outgoing:
    """One rendered message for one recipient on one channel."""

    key: str  # ledger key, e.g. "shipping:42"
    channel: ChannelName
    to: str  # email address, or E.164 number ("+41791234567") for SMS
    to_name: str | None
    subject: str  # empty for SMS
    text: str
    html: str | None = None
    account: str | None = None  # email account name (None for SMS)
    document: str = ""  # what it is about, for logs: "Lieferschein 4711 (Auftrag 1234)"
    headers: tuple[tuple[str, str], ...] = field(default=())
    #: files the email carries (SMS carry none)
    attachments: tuple[Attachment, ...] = field(default=(), repr=False)
    #: the display name of the From header (a shop's ``sender_name``); None: the account's
    from_name: str | None = None
    #: what the channel made of it in the runner's thread (:meth:`Channel.encode`): its own
    #: type (the email's bytes), or a failed result; None until encoded
    encoded: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SendResult:
    """What the server or gateway said, classified (SPEC §6)."""

    outcome: Outcome
    detail: str  # the server reply / gateway message id, or the reason it failed
    #: a deferral's "not before" in seconds, as the server asked (Graph's Retry-After)
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "sent"


class Channel(Protocol):
    """Sends one message at a time; keeps connections open across a batch."""

    name: ChannelName

    def encode(self, message: Outgoing) -> Outgoing:
        """The message with the channel's CPU work done (the email's bytes): the runner
        calls it in its own thread before the hand-over, so a sending thread only talks
        to the server. ``send`` also takes a message that was not encoded."""
        ...

    def send(self, message: Outgoing) -> SendResult:
        """Hand over one message. Never raises for a per-message problem: classify it.

        Raises :class:`~proit_notify.errors.UnreachableError` only when nothing was handed
        over because the account cannot be used at all (the runner releases the claim)."""
        ...

    def prepare(self, account: str | None) -> None:
        """Make ``account`` ready to take a message (connect, secure, log in) before the
        runner claims one for it. Raises :class:`~proit_notify.errors.UnreachableError`
        for a configuration-level failure (unreachable, TLS, login): nothing is claimed."""
        ...

    def check(self) -> list[str]:
        """Log in / reach the server without sending; the problems found (empty = fine)."""
        ...

    def capacity(self, account: str | None) -> int:
        """How many messages of ``account`` may be on their way at once (its lane's
        threads: an SMTP account's ``connections``)."""
        ...

    def message_id(self, message: Outgoing) -> str | None:
        """The id an encoded message goes out with, kept in its ledger row (an email's
        Message-ID, by which a bounce is matched, SPEC §10), or None."""
        ...

    def refuse(self, message: Outgoing) -> str | None:
        """Why ``send`` would refuse this message without asking a server (a forged header,
        an invalid address), or None: a dry run shows it as failed."""
        ...

    def close(self) -> None:
        """Close open connections at the end of a batch."""
        ...
