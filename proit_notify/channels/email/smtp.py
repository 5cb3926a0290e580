"""The SMTP conversation: connect, secure, log in, and one transaction classified.

Each SMTP answer is classified as SPEC §6 says: 2xx sent, 4xx / timeout / lost connection
before DATA deferred, 5xx failed, a connection lost after the message data was handed
over unknown. A server that cannot be used at all (unreachable, no greeting, TLS refused
or untrusted, login refused) raises :class:`UnreachableError` from :func:`connect`.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from typing import Any

from ...errors import UnreachableError
from ...redaction import one_line
from .. import SendResult
from .account import Account
from .message import Wire


class Stale(Exception):
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


#: permanent-looking answers that only mean "not now": Exchange Online's sending quota
#: (554 5.2.0 ... SubmissionQuotaExceeded, 5.2.2) and a mailbox over its limit
_QUOTA_RE = re.compile(r"(?<![\d.])5\.2\.2(?![\d.])|SubmissionQuotaExceeded|quota", re.IGNORECASE)


def _result(code: int, said: str) -> SendResult:
    """An SMTP answer classified: 5xx failed, but a quota or throttling answer deferred
    (it clears by itself: the back-off retries it), 4xx deferred."""
    if 500 <= code <= 599 and not _QUOTA_RE.search(said):
        return SendResult("failed", said)
    return SendResult("deferred", said)



def transaction(account: Account, smtp: _TrackingSMTP, wire: Wire) -> SendResult:
    """One MAIL/RCPT/DATA exchange on an open connection, classified."""
    smtp.data_started = False
    smtp.data_reply = (0, b"")
    recipient = wire.recipient
    if "SMTPUTF8" in wire.options and not smtp.has_extn("smtputf8"):
        # what send_message refuses too: the address cannot be written without SMTPUTF8
        return SendResult(
            "failed",
            f"{recipient}: the address needs SMTPUTF8, which {account.where} does not offer",
        )
    try:
        # the message was flattened as send_message would (message.build: Bcc left out,
        # SMTPUTF8 when needed); sendmail runs MAIL, RCPT, DATA, and _TrackingSMTP.data
        # tells us how far it got
        refused = smtp.sendmail(
            account.envelope_from,
            [recipient, *account.bcc],
            wire.data,
            mail_options=list(wire.options),
        )
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = exc.recipients.get(recipient, next(iter(exc.recipients.values())))
        return _result(code, account.reply(code, text))
    except smtplib.SMTPResponseException as exc:
        # SMTPSenderRefused, SMTPDataError (also a refused DATA): the server answered
        code = exc.smtp_code
        return _result(code, account.reply(code, exc.smtp_error))
    except smtplib.SMTPNotSupportedError as exc:
        return SendResult("failed", f"{recipient}: {exc}")
    except (smtplib.SMTPException, OSError) as exc:
        # SMTPServerDisconnected, timeouts, resets. smtplib turns a read timeout into
        # SMTPServerDisconnected, so both land here.
        if smtp.data_started:
            abandon(smtp)
            return SendResult(
                "unknown",
                f"connection to {account.where} lost after the message was handed over "
                f"({exc}); it may or may not have been delivered",
            )
        if _timed_out(exc):
            # a server that stalls: reconnecting would only wait a second timeout
            abandon(smtp)
            return SendResult(
                "deferred", f"{account.where} did not answer before DATA: {_describe(account, exc)}"
            )
        raise Stale(f"connection to {account.where} lost before DATA: {exc}") from None
    if recipient in refused:
        # the customer was refused, only a Bcc copy went out: classify by the customer
        code, text = refused[recipient]
        return _result(code, account.reply(code, text))
    detail = account.reply(*smtp.data_reply)
    if refused:
        detail += "; Bcc refused: " + ", ".join(
            f"{a} ({account.reply(c, t)})" for a, (c, t) in refused.items()
        )
    return SendResult("sent", detail)


def connect(account: Account) -> _TrackingSMTP:
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
                    f'set email.accounts.{account.name}.security to "ssl" (port 465) '
                    'or, only on a trusted network, "none"'
                )
            smtp.starttls(context=account.tls_context())
            smtp.ehlo()
        if settings.username:
            # security "none" with a username is the operator's explicit choice
            login(account, smtp)
    except ssl.SSLCertVerificationError as exc:
        abandon(smtp)
        fix = (
            f"set email.accounts.{account.name}.host to the name the certificate is issued for"
            if "hostname" in str(exc).lower() or "match" in str(exc).lower()
            else f"if the server uses a private CA, set email.accounts.{account.name}.ca_file"
        )
        raise UnreachableError(
            f"email account {account.name!r}: the TLS certificate of {where} is not "
            f"trusted ({exc.verify_message}); {fix}"
        ) from None
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
        abandon(smtp)
        raise UnreachableError(
            f"email account {account.name!r}: {where} cut off the TLS handshake ({exc}); "
            f"check email.accounts.{account.name}.security and port "
            '("ssl" is usually port 465, "starttls" 587)'
        ) from exc
    except ssl.SSLError as exc:
        abandon(smtp)
        raise UnreachableError(
            f"email account {account.name!r}: TLS with {where} failed ({exc.reason}); "
            f"check email.accounts.{account.name}.security and port "
            '("ssl" is usually port 465, "starttls" 587)'
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        abandon(smtp)
        raise UnreachableError(
            f"email account {account.name!r}: {where}: {exc}; "
            f"check email.accounts.{account.name}.security and username"
        ) from None
    except UnreachableError:
        abandon(smtp)
        raise
    except (smtplib.SMTPException, OSError) as exc:
        # refused, DNS failure, timeout, greeting 421/554, a dropped handshake
        abandon(smtp)
        why = _describe(account, exc)
        raise UnreachableError(
            f"email account {account.name!r}: cannot connect to {where}: {why}; "
            f"check that the mail server runs and email.accounts.{account.name}.host and "
            "port (a firewall may block the port)"
        ) from exc
    return smtp


def login(account: Account, smtp: _TrackingSMTP) -> None:
    """AUTH by the account's mode (a password, or an OAuth2 token by XOAUTH2); any refusal
    is a configuration problem, said with the admin step it needs and never with a
    password or a token in it."""
    try:
        if account.settings.auth == "oauth2":
            _xoauth2(account, smtp)
        else:
            smtp.login(account.settings.username, account.settings.password)
    except smtplib.SMTPServerDisconnected:
        raise
    except smtplib.SMTPResponseException as exc:
        raise UnreachableError(refused(account, exc.smtp_code, exc.smtp_error)) from None
    except smtplib.SMTPException as exc:
        # no AUTH offered, or no mechanism in common
        raise UnreachableError(
            f"email account {account.name!r}: cannot log in to {account.where} ({exc}); "
            f"check email.accounts.{account.name}.security and username"
        ) from None


def _xoauth2(account: Account, smtp: _TrackingSMTP) -> None:
    """SASL XOAUTH2 with the account's token; the server's reply is read (235 or an error),
    also after Google's 334 challenge, which is answered with an empty line."""
    offered = str(smtp.esmtp_features.get("auth", "")).upper().split()
    if "XOAUTH2" not in offered:
        raise smtplib.SMTPException(
            f"the server offers no XOAUTH2 (it offers {' '.join(offered) or 'no AUTH'})"
        )
    initial = account.tokens().xoauth2()
    challenges: list[str] = []

    def respond(challenge: bytes | None = None) -> str:
        if challenge is None:
            return initial
        # an error in JSON (Google's {"status":"400",...}): kept for the message
        challenges.append(challenge.decode("utf-8", "replace"))
        return ""

    try:
        smtp.auth("XOAUTH2", respond, initial_response_ok=True)
    except smtplib.SMTPResponseException as exc:
        said = refused(account, exc.smtp_code, exc.smtp_error, "".join(challenges))
        raise UnreachableError(said) from None


#: what Microsoft 365's refusals of a login mean, by their enhanced status code
LOGIN_STEPS = {
    "5.7.3": "Exchange Online refused the app's token for {user}: the app needs a service "
    "principal in Exchange (New-ServicePrincipal with the ENTERPRISE application's object "
    "id) and rights on the mailbox (Add-MailboxPermission); 'proit-notify auth setup {name}' "
    "prints both",
    "5.7.139": "SMTP AUTH is switched off for the mailbox {user} (or the organisation): "
    "Set-CASMailbox -Identity {user} -SmtpClientAuthenticationDisabled $false",
    "5.7.30": 'Microsoft 365 no longer accepts a password for SMTP: set auth = "oauth2" '
    "with an [email.accounts.{name}.oauth2] table ('proit-notify auth setup {name}')",
}


def refused(account: Account, code: int, text: bytes | str, challenge: str = "") -> str:
    """The message for a refused login, with the step that is missing (``challenge``: what
    the server said in a 334 before it refused an XOAUTH2 login)."""
    said = account.reply(code, text)
    head = f"email account {account.name!r}: {account.where} refused the login ({said})"
    user, name = account.settings.username, account.name
    for status, step in LOGIN_STEPS.items():
        if re.search(rf"(?<![\d.]){re.escape(status)}(?![\d.])", said):
            return f"{head}: {step.format(user=user, name=name)}"
    if account.settings.auth != "oauth2":
        return f"{head}; check email.accounts.{name}.username/password"
    if challenge:
        return (
            f"{head}: the server refused the token ({one_line(challenge.strip())}); for Google: "
            f"grant the service account domain-wide delegation for https://mail.google.com/ "
            f"and check that {user} is a mailbox of the domain ('proit-notify auth setup {name}')"
        )
    return (
        f"{head}: the token was refused for the mailbox {user}; "
        f"'proit-notify auth test {name}' shows what the token allows"
    )


def abandon(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError):
            smtp.close()


def quit_(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _timed_out(exc: BaseException) -> bool:
    """smtplib turns a read timeout into SMTPServerDisconnected: look at the cause too."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, TimeoutError) or "timed out" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _describe(account: Account, exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if _timed_out(exc):
        return "timed out"
    if isinstance(exc, smtplib.SMTPResponseException):
        return account.reply(exc.smtp_code, exc.smtp_error)
    return str(exc) or type(exc).__name__


class SmtpTransport:
    """``transport = "smtp"``: up to ``connections`` open connections per account, reused
    across a batch; classified as the module says."""

    def capacity(self, account: Account) -> int:
        return account.settings.connections

    def prepare(self, account: Account) -> None:
        """Reach and log in once per batch; that connection then serves the first message."""
        account.give_back(connect(account))

    def send(self, account: Account, wire: Wire) -> SendResult:
        with account.slots:  # at most `connections` conversations with the server at once
            smtp = account.take()
            reused = smtp is not None
            if smtp is None:
                smtp = connect(account)  # UnreachableError: nothing was handed over
            account.throttle()
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

    def check(self, account: Account) -> list[str]:
        """Connect and log in without sending."""
        try:
            smtp = connect(account)
        except UnreachableError as exc:
            return [str(exc)]
        quit_(smtp)
        return []

    def close(self, account: Account) -> None:
        """QUIT every open connection; the next batch starts afresh."""
        while (smtp := account.take()) is not None:
            quit_(smtp)
