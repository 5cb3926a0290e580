"""The email channel: SMTP (starttls, ssl, none) or .eml files, one connection per account.

Each SMTP answer is classified as SPEC §6 says: 2xx sent, 4xx / timeout / refused
connection before DATA deferred, 5xx failed, a connection lost after the message data
was handed over unknown. Configuration-level problems (the server cannot be reached, no
greeting, TLS refused or untrusted, a rejected login) raise :class:`UnreachableError`
instead: from :meth:`EmailChannel.prepare` before the runner claims anything for the
account, or from ``send`` when a new connection fails (nothing was handed over). The run
then sends nothing more through that account and exits 4.

The Message-ID is derived from the ledger key and channel, so a resend carries the same one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from email.utils import getaddresses, parseaddr

from ...errors import ConfigError, UnreachableError
from ...settings import AccountSettings
from .. import ChannelName, Outgoing, SendResult
from .message import (
    POLICY,
    POLICY_UTF8,
    CheckedAddress,
    Wire,
    build,
    check_address,
    message_id,
)
from .outbox import check_directory, write_eml
from .smtp import Account, Stale, abandon, connect, quit_, transaction

__all__ = [
    "POLICY",
    "POLICY_UTF8",
    "CheckedAddress",
    "EmailChannel",
    "check_address",
    "message_id",
]


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

    def encode(self, message: Outgoing) -> Outgoing:
        """The message with its bytes built (in the runner's thread: ``send``, in a
        sending thread, then only talks to the server)."""
        return replace(message, encoded=self._build(message))

    def send(self, message: Outgoing) -> SendResult:
        """Build (unless :meth:`encode` did), then deliver one message; per-message
        problems come back as a result."""
        account = self._account(message.account)
        built = message.encoded
        if not isinstance(built, Wire | SendResult):
            built = self._build(message)
        if isinstance(built, SendResult):
            return built
        if account.settings.transport == "file":
            self._throttle(account)
            return write_eml(account, message.key, built)
        return self._send_smtp(account, built)

    def refuse(self, message: Outgoing) -> str | None:
        built = self._build(message)
        return built.detail if isinstance(built, SendResult) else None

    def _build(self, message: Outgoing) -> Wire | SendResult:
        account = self._account(message.account)
        envelope = (account.envelope_from, *account.bcc)
        return build(account.settings, account.message_id_domain, message, envelope)

    def prepare(self, account: str | None) -> None:
        """Reach and log in to the account's server once per batch (its connection then
        serves the first message); a file account's directory must be writable."""
        acc = self._account(account)
        if acc.prepared:
            return
        if acc.settings.transport == "file":
            problem = check_directory(acc)
            if problem:
                raise UnreachableError(problem)
        else:
            acc.give_back(connect(acc))
        acc.prepared = True

    def check(self) -> list[str]:
        """Connect and log in to every SMTP account; check every file directory."""
        problems: list[str] = []
        for account in self._accounts.values():
            if account.settings.transport == "file":
                problem = check_directory(account)
                if problem:
                    problems.append(problem)
                continue
            try:
                smtp = connect(account)
            except UnreachableError as exc:
                problems.append(str(exc))
                continue
            quit_(smtp)
        return problems

    def close(self) -> None:
        """QUIT every open connection; the next batch starts afresh."""
        for account in self._accounts.values():
            while (smtp := account.take()) is not None:
                quit_(smtp)
            account.prepared = False

    def _account(self, name: str | None) -> Account:
        if name is None or name not in self._accounts:
            defined = ", ".join(sorted(self._accounts)) or "none"
            raise ConfigError(
                f"email account {name!r} is not defined (defined accounts: {defined})"
            )
        return self._accounts[name]

    def _throttle(self, account: Account) -> None:
        """Space messages evenly so no minute sees more than ``max_per_minute``."""
        limit = account.settings.max_per_minute
        if limit is None:
            return
        with account.lock:  # one schedule for all connections of the account
            now = time.monotonic()
            if account.last_send is not None:
                wait = account.last_send + 60.0 / limit - now
                if wait > 0:
                    time.sleep(wait)
                    now = time.monotonic()
            account.last_send = now

    def _send_smtp(self, account: Account, wire: Wire) -> SendResult:
        with account.slots:  # at most `connections` conversations with the server at once
            smtp = account.take()
            reused = smtp is not None
            if smtp is None:
                smtp = connect(account)  # UnreachableError: nothing was handed over
            self._throttle(account)
            try:
                result = transaction(account, smtp, wire)
            except Stale as stale:
                abandon(smtp)
                if not reused:
                    return SendResult("deferred", str(stale))
                # The server closed the idle connection between two messages: reconnect once.
                smtp = connect(account)
                try:
                    result = transaction(account, smtp, wire)
                except Stale as stale_again:
                    abandon(smtp)
                    return SendResult("deferred", str(stale_again))
            # smtplib closes the socket itself after a 421 (and we after a lost DATA);
            # otherwise it sent RSET and the connection serves the next message
            if smtp.sock is not None:
                account.give_back(smtp)
            return result
