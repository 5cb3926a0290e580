"""The ``graph`` transport (SPEC §9): the built message, base64, to Microsoft Graph.

For tenants that block SMTP AUTH: ``POST {graph_url}/v1.0/users/{username}/sendMail`` with
the same bytes SMTP would send (base64, ``Content-Type: text/plain``, Graph's MIME form),
an app token for ``https://graph.microsoft.com/.default`` (:data:`~proit_notify.oauth2.
GRAPH_SCOPE`). Graph takes the recipients from the MIME headers, so the account's Bcc goes
in a ``Bcc`` header here (Exchange removes it before delivery).

Outcomes, as SPEC §9 says:

- 202: sent; the ``request-id`` is the detail.
- 429, 503, 504: deferred, and no message of the account goes before the ``Retry-After``
  it names (:meth:`Account.pause`; a long one stops the account for the run, and the row's
  next attempt is not earlier either).
- 400 and other 4xx of one message (413 too large): failed, with Graph's error code.
- 401, 403, 404: the account cannot send (a token for another audience, no ``Mail.Send``
  permission, an application access policy, no such mailbox): configuration-level,
  :class:`UnreachableError`, the claim is undone and the run exits 4.
- no answer after the request went out (a read timeout, a connection lost after sending),
  or a 500/502 (the service failed after taking the request): unknown. **Never retried
  blindly**: a 202 may have been lost on the way, and a second POST would be a second mail.
- a connection that never opened (refused, connect timeout, TLS): nothing was sent,
  configuration-level like SMTP's ``cannot connect``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ...errors import UnreachableError
from ...redaction import one_line
from .. import SendResult
from .account import Account
from .message import Wire

if TYPE_CHECKING:  # requests is imported by the first message of a Graph account
    import requests

#: statuses that mean "not now": deferred, Retry-After honoured
_LATER = frozenset({429, 503, 504})
#: statuses after which the service may have sent the message
_MAYBE = frozenset({500, 502})
#: a Retry-After Graph does not give: how long the account waits after a 429 without one
_DEFAULT_WAIT = 30.0
#: Graph's refusals of the account, and the admin step each needs
_STEPS = {
    401: "the token was refused ({said}); the app needs the application permission Mail.Send "
    "of Microsoft Graph with admin consent ('proit-notify auth setup {name}' prints the steps)",
    403: "Graph refused to send as {user} ({said}); grant the app the application permission "
    "Mail.Send with admin consent, and if an application access policy limits it, add {user} "
    "to the policy's group ('proit-notify auth setup {name}')",
    404: "Graph knows no mailbox {user} ({said}); set email.accounts.{name}.username to the "
    "mailbox's address (a user with an Exchange Online licence)",
}


def sendmail_url(account: Account) -> str:
    base = account.settings.graph_url.rstrip("/")
    return f"{base}/v1.0/users/{quote(account.settings.username, safe='@')}/sendMail"


def mime_for_graph(account: Account, wire: Wire) -> bytes:
    """The message as Graph takes it: base64 of the bytes, the Bcc in a header."""
    data = wire.data
    if account.bcc:
        data = b"Bcc: " + ", ".join(account.bcc).encode("ascii", "replace") + b"\r\n" + data
    return base64.b64encode(data)


class GraphTransport:
    """``transport = "graph"``: up to ``connections`` requests at once per account."""

    def capacity(self, account: Account) -> int:
        return account.settings.connections

    def prepare(self, account: Account) -> None:
        """A token before anything is claimed (a wrong secret is exit 4 at once)."""
        account.tokens().get()

    def send(self, account: Account, wire: Wire) -> SendResult:
        with account.slots:  # at most `connections` requests of the account at once
            account.throttle()
            import requests

            from ... import http

            token = account.tokens().get()
            where = account.settings.graph_url
            timeout = account.settings.timeout
            try:
                response = account.http().post(
                    sendmail_url(account),
                    data=mime_for_graph(account, wire),
                    headers={
                        "Authorization": f"Bearer {token.value}",
                        "Content-Type": "text/plain",
                    },
                    timeout=(timeout, timeout),
                    allow_redirects=False,
                )
            except requests.ConnectTimeout as exc:
                raise _unreachable(account, f"timed out connecting ({http.reason(exc)})") from None
            except requests.exceptions.SSLError as exc:
                raise _unreachable(
                    account,
                    f"TLS failed ({http.reason(exc)}); with a private CA set "
                    f"email.accounts.{account.name}.ca_file",
                ) from None
            except requests.ReadTimeout:
                return SendResult(
                    "unknown",
                    f"{where} did not answer within {timeout:g} s after the message was handed "
                    "over; it may or may not have been sent (look in the mailbox's Sent Items)",
                )
            except requests.ConnectionError as exc:
                if http.never_sent(exc):
                    raise _unreachable(account, f"cannot connect ({http.reason(exc)})") from None
                return SendResult(
                    "unknown",
                    f"connection to {where} lost after the message was handed over "
                    f"({http.reason(exc)}); it may or may not have been sent",
                )
            except requests.RequestException as exc:
                why = http.reason(exc)
                return SendResult("unknown", f"the request to {where} broke off: {why}")
            return self._outcome(account, response)

    def _outcome(self, account: Account, response: requests.Response) -> SendResult:
        status = response.status_code
        request_id = response.headers.get("request-id", "")
        if status == 202:
            return SendResult("sent", f"202 Accepted (request-id {request_id or 'none'})")
        said = _said(response)
        if status in _LATER:
            wait = _retry_after(response.headers.get("Retry-After"))
            account.pause(wait)
            return SendResult(
                "deferred", f"HTTP {status} {said} (Retry-After {wait:g} s)", retry_after=wait
            )
        if status in _STEPS:
            user = account.settings.username
            step = _STEPS[status].format(said=said, user=user, name=account.name)
            raise UnreachableError(f"email account {account.name!r}: {step}")
        if 300 <= status < 400:
            raise _unreachable(
                account,
                f"answered HTTP {status}, a redirect (not followed: it would carry the token); "
                f"check email.accounts.{account.name}.graph_url",
            )
        if status in _MAYBE or status >= 500:
            return SendResult(
                "unknown",
                f"HTTP {status} {said} after the message was handed over: Graph may have sent "
                "it (look in the mailbox's Sent Items)",
            )
        return SendResult("failed", f"HTTP {status} {said}")

    def check(self, account: Account) -> list[str]:
        """A token for Graph (sending nothing: Graph has no login without a message)."""
        try:
            account.tokens().get()
        except UnreachableError as exc:
            return [str(exc)]
        return []

    def close(self, account: Account) -> None:
        """Nothing to close between batches: the session's connections are reused."""


def _unreachable(account: Account, why: str) -> UnreachableError:
    return UnreachableError(
        f"email account {account.name!r}: Microsoft Graph at {account.settings.graph_url}: {why}"
    )


def _said(response: requests.Response) -> str:
    """Graph's error code and message (``{"error": {"code", "message"}}``), on one line."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code", ""), error.get("message", "")
        return one_line(f"{code}: {message}".strip(": "))[:300]
    return one_line(response.text)[:300] or response.reason or ""


def _retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (Graph sends seconds); its absence: a short wait."""
    try:
        return max(float(value or ""), 0.0)
    except ValueError:
        return _DEFAULT_WAIT
