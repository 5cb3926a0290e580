"""The email channel: one message builder, transports by name.

Each account's ``transport`` picks its :class:`Transport` from :data:`TRANSPORTS`
(``smtp``: SMTP with starttls, ssl or none; ``file``: ``.eml`` files; ``graph``: Microsoft
Graph's sendMail); a new transport is one module and one entry there. The message is built
once, in the runner's thread (:meth:`EmailChannel.encode`, :mod:`.message`), and the
transport only delivers its bytes.

Each answer is classified as SPEC §6 says: sent, deferred (4xx, a timeout or a refused
connection before the data), failed (5xx), unknown (the connection lost after the data was
handed over). Configuration-level problems (the server cannot be reached, no greeting,
TLS refused or untrusted, a rejected login, no token) raise :class:`UnreachableError`
instead: from :meth:`EmailChannel.prepare` before the delivery claims anything for the
account, or from ``send`` when a new connection fails (nothing was handed over). The run
then sends nothing more through that account and exits 4.

The Message-ID is derived from the ledger key and channel, so a resend carries the same one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from email.utils import getaddresses, parseaddr
from typing import Protocol

from ...errors import ConfigError
from ...settings import AccountSettings
from .. import ChannelName, Outgoing, SendResult
from .account import Account
from .graph import GraphTransport
from .message import (
    POLICY,
    POLICY_UTF8,
    CheckedAddress,
    Wire,
    build,
    check_address,
    message_id,
)
from .outbox import FileTransport
from .smtp import SmtpTransport

__all__ = [
    "POLICY",
    "POLICY_UTF8",
    "TRANSPORTS",
    "CheckedAddress",
    "EmailChannel",
    "Transport",
    "check_address",
    "message_id",
]


class Transport(Protocol):
    """How an account's messages leave: one per ``email.accounts.NAME.transport``."""

    def capacity(self, account: Account) -> int:
        """How many messages of the account may be on their way at once."""
        ...

    def prepare(self, account: Account) -> None:
        """Make the account ready (connect, log in), or raise UnreachableError."""
        ...

    def send(self, account: Account, wire: Wire) -> SendResult:
        """Deliver one built message; a per-message problem comes back as a result."""
        ...

    def check(self, account: Account) -> list[str]:
        """Reach and log in without sending; the problems found."""
        ...

    def close(self, account: Account) -> None:
        """Close what is open at the end of a batch."""
        ...


#: the transports by the name ``email.accounts.NAME.transport`` gives
TRANSPORTS: dict[str, Transport] = {
    "smtp": SmtpTransport(),
    "file": FileTransport(),
    "graph": GraphTransport(),
}


class EmailChannel:
    """Sends :class:`Outgoing` emails through the account each message names."""

    name: ChannelName = "email"

    def __init__(
        self, accounts: Mapping[str, AccountSettings], *, message_id_domain: str | None = None
    ) -> None:
        self._accounts: dict[str, Account] = {}
        problems: list[str] = []
        for name, settings in accounts.items():
            # Parsed once here, not per message: a batch of thousands reuses the result.
            envelope_from = parseaddr(settings.from_)[1]
            if "@" not in envelope_from:
                problems.append(f"email.accounts.{name}.from: {settings.from_!r} has no address")
                continue
            bcc = [a for _, a in getaddresses([settings.bcc])] if settings.bcc else []
            domain = message_id_domain or envelope_from.rpartition("@")[2]
            try:
                domain = domain.encode("idna").decode("ascii")  # a header must be ASCII
            except UnicodeError:
                problems.append(f"email.accounts.{name}.from: {domain!r} is not a valid domain")
                continue
            self._accounts[name] = Account(name, settings, envelope_from, bcc, domain)
        if problems:
            raise ConfigError("email accounts are invalid", tuple(problems))

    def _transport(self, account: Account) -> Transport:
        return TRANSPORTS[account.settings.transport]

    def capacity(self, account: str | None) -> int:
        acc = self._account(account)
        return self._transport(acc).capacity(acc)

    def encode(self, message: Outgoing) -> Outgoing:
        """The message with its bytes built (in the runner's thread: ``send``, in a
        sending thread, then only talks to the server)."""
        return replace(message, encoded=self._build(message))

    def message_id(self, message: Outgoing) -> str | None:
        """The Message-ID an encoded message goes out with (kept in the ledger)."""
        built = message.encoded
        return built.message_id if isinstance(built, Wire) else None

    def send(self, message: Outgoing) -> SendResult:
        """Build (unless :meth:`encode` did), then deliver one message; per-message
        problems come back as a result."""
        account = self._account(message.account)
        built = message.encoded
        if not isinstance(built, Wire | SendResult):
            built = self._build(message)
        if isinstance(built, SendResult):
            return built
        return self._transport(account).send(account, built)

    def refuse(self, message: Outgoing) -> str | None:
        built = self._build(message)
        return built.detail if isinstance(built, SendResult) else None

    def _build(self, message: Outgoing) -> Wire | SendResult:
        account = self._account(message.account)
        envelope = (account.envelope_from, *account.bcc)
        return build(account.settings, account.message_id_domain, message, envelope)

    def prepare(self, account: str | None) -> None:
        """Make the account ready once per batch (a connection that then serves the first
        message; a writable directory)."""
        acc = self._account(account)
        if acc.prepared:
            return
        self._transport(acc).prepare(acc)
        acc.prepared = True

    def check(self) -> list[str]:
        """Reach and log in to every account without sending."""
        problems: list[str] = []
        for account in self._accounts.values():
            problems += self._transport(account).check(account)
        return problems

    def close(self) -> None:
        """Close what is open; the next batch starts afresh."""
        for account in self._accounts.values():
            self._transport(account).close(account)
            account.prepared = False

    def _account(self, name: str | None) -> Account:
        if name is None or name not in self._accounts:
            defined = ", ".join(sorted(self._accounts)) or "none"
            raise ConfigError(
                f"email account {name!r} is not defined (defined accounts: {defined})"
            )
        return self._accounts[name]
