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

import contextlib
import functools
import hashlib
import os
import re
import smtplib
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import EmailPolicy
from email.utils import formatdate, getaddresses, parseaddr
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from ..errors import ConfigError, UnreachableError
from ..settings import AccountSettings
from . import ChannelName, Outcome, Outgoing, SendResult

# 7bit: a non-ASCII text part gets quoted-printable/base64 instead of raw 8bit, which a
# server without 8BITMIME (and send_message does not announce BODY=8BITMIME) may mangle.
POLICY = SMTP_POLICY.clone(cte_type="7bit")
POLICY_UTF8 = POLICY.clone(utf8=True)  # what send_message uses for SMTPUTF8 addresses

_HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ':'
_FILE_NAME_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]")


class _Stale(Exception):
    """A reused connection turned out to be closed before anything was handed over."""


class _TrackingSMTP(smtplib.SMTP):
    """Remembers whether DATA was started and the server's final reply to it."""

    data_started = False
    data_reply: tuple[int, bytes] = (0, b"")

    def data(self, msg: Any) -> tuple[int, bytes]:
        # From here on the message may have reached the server: a lost connection is
        # "unknown", not "deferred" (SPEC §6).
        self.data_started = True
        reply: tuple[int, bytes] = super().data(msg)
        self.data_reply = reply
        return reply


class _TrackingSMTPSSL(smtplib.SMTP_SSL, _TrackingSMTP):
    """SMTP over implicit TLS (port 465) with the same DATA tracking."""


@dataclass
class _Account:
    """One account's parsed settings and its connection state for the current batch.

    Up to ``connections`` threads talk to the server at once (``slots``); open connections
    wait in ``idle`` for the next message, so a batch reuses them.
    """

    name: str
    settings: AccountSettings
    envelope_from: str
    bcc: list[str]
    message_id_domain: str
    idle: list[_TrackingSMTP] = field(default_factory=list)
    prepared: bool = False  # reached and logged in once in this batch
    last_send: float | None = None
    _tls: ssl.SSLContext | None = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    slots: threading.BoundedSemaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.slots = threading.BoundedSemaphore(self.settings.connections)

    def take(self) -> _TrackingSMTP | None:
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give_back(self, smtp: _TrackingSMTP) -> None:
        with self.lock:
            self.idle.append(smtp)

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.effective_port}"

    def tls_context(self) -> ssl.SSLContext:
        # created once per account: loading the trust store costs milliseconds
        with self.lock:
            return self._tls_context()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ca = self.settings.ca_file
            self._tls = ssl.create_default_context(cafile=str(ca) if ca else None)
        return self._tls


def _has_crlf(value: str) -> bool:
    return "\r" in value or "\n" in value


def _code_outcome(code: int) -> Outcome:
    return "failed" if 500 <= code <= 599 else "deferred"


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


class EmailChannel:
    """Sends :class:`Outgoing` emails through the account each message names."""

    name: ChannelName = "email"

    def __init__(
        self, accounts: Mapping[str, AccountSettings], *, message_id_domain: str | None = None
    ) -> None:
        self._accounts: dict[str, _Account] = {}
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
            self._accounts[name] = _Account(name, settings, envelope_from, bcc, domain)
        if problems:
            raise ConfigError("email accounts are invalid", tuple(problems))

    # --- Channel protocol --------------------------------------------------------------

    def send(self, message: Outgoing) -> SendResult:
        """Build, then deliver one message; per-message problems come back as a result."""
        account = self._account(message.account)
        built = self._build(account, message)
        if isinstance(built, SendResult):
            return built
        msg, recipient = built
        if account.settings.transport == "file":
            self._throttle(account)
            return self._write_file(account, message.key, msg, recipient)
        return self._send_smtp(account, msg, recipient)

    def prepare(self, account: str | None) -> None:
        """Reach and log in to the account's server once per batch (its connection then
        serves the first message); a file account's directory must be writable."""
        acc = self._account(account)
        if acc.prepared:
            return
        if acc.settings.transport == "file":
            problem = self._check_directory(acc)
            if problem:
                raise UnreachableError(problem)
        else:
            acc.give_back(self._connect(acc))
        acc.prepared = True

    def check(self) -> list[str]:
        """Connect and log in to every SMTP account; check every file directory."""
        problems: list[str] = []
        for account in self._accounts.values():
            if account.settings.transport == "file":
                problem = self._check_directory(account)
                if problem:
                    problems.append(problem)
                continue
            try:
                smtp = self._connect(account)
            except UnreachableError as exc:
                problems.append(str(exc))
                continue
            self._quit(smtp)
        return problems

    def close(self) -> None:
        """QUIT every open connection; the next batch starts afresh."""
        for account in self._accounts.values():
            while (smtp := account.take()) is not None:
                self._quit(smtp)
            account.prepared = False

    # --- building ----------------------------------------------------------------------

    def _account(self, name: str | None) -> _Account:
        if name is None or name not in self._accounts:
            defined = ", ".join(sorted(self._accounts)) or "none"
            raise ConfigError(
                f"email account {name!r} is not defined (defined accounts: {defined})"
            )
        return self._accounts[name]

    def _build(self, account: _Account, message: Outgoing) -> tuple[EmailMessage, str] | SendResult:
        """The message and its envelope recipient, or a "failed" result saying why not."""
        for what, value in (
            ("recipient address", message.to),
            ("recipient name", message.to_name or ""),
            ("subject", message.subject),
            *((f"header {n}", f"{n}{v}") for n, v in message.headers),
        ):
            if _has_crlf(value):
                return SendResult("failed", f"{what} contains a line break (CR/LF): refused")
        for header_name, _ in message.headers:
            if not _HEADER_NAME_RE.match(header_name):
                return SendResult("failed", f"header name {header_name!r} is not valid")
        checked = check_address(message.to)
        if checked.envelope is None:
            return SendResult("failed", checked.problem or "no email address")
        recipient = checked.envelope
        try:
            msg = EmailMessage(policy=POLICY)
            msg["From"] = account.settings.from_
            msg["To"] = Address(display_name=message.to_name or "", addr_spec=recipient)
            msg["Subject"] = message.subject
            msg["Date"] = formatdate(localtime=True)
            msg["Message-ID"] = message_id(message.key, message.channel, account.message_id_domain)
            if account.settings.reply_to:
                msg["Reply-To"] = account.settings.reply_to
            if account.settings.bcc:
                msg["Bcc"] = account.settings.bcc
            for header_name, value in message.headers:
                # an extra header replaces ours of the same name (e.g. a shop's Reply-To)
                del msg[header_name]
                msg[header_name] = value
            msg.set_content(message.text)
            if message.html is not None:
                msg.add_alternative(message.html, subtype="html")
        except (ValueError, TypeError, IndexError) as exc:
            # the email package refuses what it cannot encode (also a CR/LF we missed)
            return SendResult("failed", f"cannot build the message: {exc}")
        return msg, recipient

    def _throttle(self, account: _Account) -> None:
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

    # --- file transport ----------------------------------------------------------------

    def _write_file(
        self, account: _Account, key: str, msg: EmailMessage, recipient: str
    ) -> SendResult:
        directory = account.settings.directory
        assert directory is not None  # settings guarantee it for transport "file"
        path = directory / f"{_FILE_NAME_UNSAFE_RE.sub('_', key)}.eml"
        del msg["Bcc"]  # the file holds what a server would receive
        data = msg.as_bytes(policy=_flatten_policy(account.envelope_from, recipient))
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # temp file + replace: a reader never sees half a message
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".eml.tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise UnreachableError(
                f"email account {account.name!r}: cannot write {path}: {exc.strerror}; "
                f"check email.accounts.{account.name}.directory"
            ) from None
        return SendResult("sent", str(path))

    def _check_directory(self, account: _Account) -> str | None:
        directory = account.settings.directory
        assert directory is not None
        existing = directory
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent  # send() creates the missing part
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as exc:
            return (
                f"email account {account.name!r}: directory {directory} is not writable "
                f"({exc.strerror}); check email.accounts.{account.name}.directory"
            )
        return None

    # --- SMTP transport ----------------------------------------------------------------

    def _send_smtp(self, account: _Account, msg: EmailMessage, recipient: str) -> SendResult:
        with account.slots:  # at most `connections` conversations with the server at once
            smtp = account.take()
            reused = smtp is not None
            if smtp is None:
                smtp = self._connect(account)  # UnreachableError: nothing was handed over
            self._throttle(account)
            try:
                result = self._transaction(account, smtp, msg, recipient)
            except _Stale as stale:
                self._abandon(smtp)
                if not reused:
                    return SendResult("deferred", str(stale))
                # The server closed the idle connection between two messages: reconnect once.
                smtp = self._connect(account)
                try:
                    result = self._transaction(account, smtp, msg, recipient)
                except _Stale as stale_again:
                    self._abandon(smtp)
                    return SendResult("deferred", str(stale_again))
            # smtplib closes the socket itself after a 421 (and we after a lost DATA);
            # otherwise it sent RSET and the connection serves the next message
            if smtp.sock is not None:
                account.give_back(smtp)
            return result

    def _transaction(
        self, account: _Account, smtp: _TrackingSMTP, msg: EmailMessage, recipient: str
    ) -> SendResult:
        """One MAIL/RCPT/DATA exchange on an open connection, classified."""
        smtp.data_started = False
        smtp.data_reply = (0, b"")
        try:
            # send_message flattens the message (Bcc removed, SMTPUTF8 when needed) and
            # runs MAIL, RCPT, DATA; _TrackingSMTP.data tells us how far it got.
            refused = smtp.send_message(
                msg, from_addr=account.envelope_from, to_addrs=[recipient, *account.bcc]
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(recipient, next(iter(exc.recipients.values())))
            return SendResult(_code_outcome(code), _reply(code, text))
        except smtplib.SMTPResponseException as exc:
            # SMTPSenderRefused, SMTPDataError (also a refused DATA): the server answered
            code = exc.smtp_code
            return SendResult(_code_outcome(code), _reply(code, exc.smtp_error))
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult("failed", f"{recipient}: {exc}")
        except (smtplib.SMTPException, OSError) as exc:
            # SMTPServerDisconnected, timeouts, resets. smtplib turns a read timeout into
            # SMTPServerDisconnected, so both land here.
            if smtp.data_started:
                self._abandon(smtp)
                return SendResult(
                    "unknown",
                    f"connection to {account.where} lost after the message was handed over "
                    f"({exc}); it may or may not have been delivered",
                )
            if _timed_out(exc):
                # a server that stalls: reconnecting would only wait a second timeout
                self._abandon(smtp)
                return SendResult(
                    "deferred", f"{account.where} did not answer before DATA: {_describe(exc)}"
                )
            raise _Stale(f"connection to {account.where} lost before DATA: {exc}") from None
        if recipient in refused:
            # the customer was refused, only a Bcc copy went out: classify by the customer
            code, text = refused[recipient]
            return SendResult(_code_outcome(code), _reply(code, text))
        detail = _reply(*smtp.data_reply)
        if refused:
            detail += "; Bcc refused: " + ", ".join(
                f"{a} ({_reply(c, t)})" for a, (c, t) in refused.items()
            )
        return SendResult("sent", detail)

    def _connect(self, account: _Account) -> _TrackingSMTP:
        """An open, secured, logged-in connection.

        Raises UnreachableError when the server cannot be used (SPEC §6: a
        configuration-level failure), with the account, host:port and the fix.
        """
        settings = account.settings
        host, port, where = settings.host, settings.effective_port, account.where
        smtp: _TrackingSMTP | None = None
        try:
            if settings.security == "ssl":
                smtp = _TrackingSMTPSSL(
                    host, port, timeout=settings.timeout, context=account.tls_context()
                )
            else:
                smtp = _TrackingSMTP(host, port, timeout=settings.timeout)
            smtp.ehlo()
            if settings.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise UnreachableError(
                        f"email account {account.name!r}: {where} does not offer STARTTLS; "
                        f"set email.accounts.{account.name}.security to \"ssl\" (port 465) "
                        "or, only on a trusted network, \"none\""
                    )
                smtp.starttls(context=account.tls_context())
                smtp.ehlo()
            if settings.username:
                # security "none" with a username is the operator's explicit choice
                self._login(account, smtp)
        except ssl.SSLCertVerificationError as exc:
            self._abandon(smtp)
            fix = (
                f"set email.accounts.{account.name}.host to the name the certificate is "
                "issued for"
                if "hostname" in str(exc).lower() or "match" in str(exc).lower()
                else f"if the server uses a private CA, set email.accounts.{account.name}.ca_file"
            )
            raise UnreachableError(
                f"email account {account.name!r}: the TLS certificate of {where} is not "
                f"trusted ({exc.verify_message}); {fix}"
            ) from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
            self._abandon(smtp)
            raise UnreachableError(
                f"email account {account.name!r}: {where} cut off the TLS handshake ({exc}); "
                f"check email.accounts.{account.name}.security and port "
                "(\"ssl\" is usually port 465, \"starttls\" 587)"
            ) from exc
        except ssl.SSLError as exc:
            self._abandon(smtp)
            raise UnreachableError(
                f"email account {account.name!r}: TLS with {where} failed ({exc.reason}); "
                f"check email.accounts.{account.name}.security and port "
                "(\"ssl\" is usually port 465, \"starttls\" 587)"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            self._abandon(smtp)
            raise UnreachableError(
                f"email account {account.name!r}: {where}: {exc}; "
                f"check email.accounts.{account.name}.security and username"
            ) from None
        except UnreachableError:
            self._abandon(smtp)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            # refused, DNS failure, timeout, greeting 421/554, a dropped handshake
            self._abandon(smtp)
            raise UnreachableError(
                f"email account {account.name!r}: cannot connect to {where}: {_describe(exc)}; "
                f"check that the mail server runs and email.accounts.{account.name}.host and "
                "port (a firewall may block the port)"
            ) from exc
        return smtp

    @staticmethod
    def _login(account: _Account, smtp: _TrackingSMTP) -> None:
        """AUTH; any refusal is a configuration problem (never with the password in it)."""
        try:
            smtp.login(account.settings.username, account.settings.password)
        except smtplib.SMTPServerDisconnected:
            raise
        except smtplib.SMTPResponseException as exc:
            raise UnreachableError(
                f"email account {account.name!r}: {account.where} refused the login "
                f"({_reply(exc.smtp_code, exc.smtp_error)}); "
                f"check email.accounts.{account.name}.username/password"
            ) from None
        except smtplib.SMTPException as exc:
            # no AUTH offered, or no mechanism in common
            raise UnreachableError(
                f"email account {account.name!r}: cannot log in to {account.where} ({exc}); "
                f"check email.accounts.{account.name}.security and username"
            ) from None

    @staticmethod
    def _abandon(smtp: smtplib.SMTP | None) -> None:
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    @staticmethod
    def _quit(smtp: smtplib.SMTP) -> None:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def message_id(key: str, channel: str, domain: str) -> str:
    """The same Message-ID for every attempt at one notification on one channel, so a
    receiver can drop a resent copy (SPEC §6). Hashed: a key holds ERP text."""
    digest = hashlib.sha256(f"{key}\0{channel}".encode()).hexdigest()[:32]
    return f"<proit-notify.{digest}@{domain}>"


def _timed_out(exc: BaseException) -> bool:
    """smtplib turns a read timeout into SMTPServerDisconnected: look at the cause too."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError) or "timed out" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if _timed_out(exc):
        return "timed out"
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply(exc.smtp_code, exc.smtp_error)
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class CheckedAddress:
    """An email address as SMTP gets it (``envelope``), or why it cannot be used."""

    envelope: str | None
    problem: str | None


@functools.lru_cache(maxsize=4096)
def check_address(address: str) -> CheckedAddress:
    """Validate an address: the runner picks the channel with it, and the channel sends to
    the result (IDNA domain in ASCII; only a non-ASCII local part needs SMTPUTF8). Cached,
    because both ask about the same address moments apart."""
    if not address:
        return CheckedAddress(None, "no email address")
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return CheckedAddress(None, f"invalid email address {address!r}: {exc}")
    return CheckedAddress(valid.ascii_email or valid.normalized, None)


def _flatten_policy(*addresses: str) -> EmailPolicy[EmailMessage]:
    """The policy ``smtplib.send_message`` would flatten with (UTF-8 when addresses need it)."""
    return POLICY if "".join(addresses).isascii() else POLICY_UTF8
