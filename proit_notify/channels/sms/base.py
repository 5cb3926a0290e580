"""What every SMS provider shares: the Provider protocol, HTTP calls, classification.

Classification follows SPEC §6 like SMTP does: the gateway accepted the message -> "sent"
(with its message id); the gateway refused this message (error inside an HTTP 200 answer,
or HTTP 4xx for a bad number/text) -> "failed"; the gateway could not take it now (HTTP
5xx, 429, connection refused, connect timeout) -> "deferred"; the request went out but no
answer came back (read timeout, connection lost) -> "unknown", because it may have been
sent. Refused credentials raise :class:`UnreachableError`: every further message would fail
the same way, so the batch stops instead of failing each notification.

The password never leaves this module in clear: every detail and error message passes
:meth:`Gateway.redact`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import requests

from ... import http
from ...errors import UnreachableError
from ...redaction import WITHHELD, forms_of, redact, reveals
from ...settings import SmsSettings
from .. import Outcome, SendResult

NumberFormat = Literal["e164", "digits", "00"]

_SNIPPET = 200
#: what is shown instead of an answer that repeats the request with the login
ECHO_WITHHELD = "(the answer is not shown: it repeats the request with the login)"


class Provider(Protocol):
    """One SMS gateway's API."""

    name: str

    def send(self, to_e164: str, text: str, sender: str | None) -> SendResult:
        """Hand one SMS to the gateway; classify what it answered (raise only for login)."""
        ...

    def check(self) -> list[str]:
        """Log in without sending (the balance call where there is one); problems found."""
        ...


@dataclass(frozen=True)
class Request:
    """One HTTP request that hands an SMS to a gateway (keyword arguments of requests)."""

    method: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)


class GatewayProvider:
    """The send skeleton every provider shares: :meth:`request` (the provider's call) ->
    :meth:`Gateway.call` (connection problems classified) -> :meth:`answer` (by default: a
    non-2xx status by :meth:`Gateway.classify_http_error`, a 2xx one by :meth:`accepted`).
    A provider fills in ``request`` and ``accepted``; one whose error statuses mean
    something of their own overrides ``answer``."""

    name = "gateway"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def send(self, to_e164: str, text: str, sender: str | None) -> SendResult:
        request = self.request(to_e164, text, sender)
        answer = self.gateway.call(request.method, request.url, **request.options)
        return answer if isinstance(answer, SendResult) else self.answer(answer)

    def request(self, to_e164: str, text: str, sender: str | None) -> Request:
        raise NotImplementedError

    def answer(self, response: requests.Response) -> SendResult:
        if not response.ok:
            return self.gateway.classify_http_error(response)
        return self.accepted(response)

    def accepted(self, response: requests.Response) -> SendResult:
        """A 2xx answer: what its body says (many gateways refuse inside HTTP 200)."""
        raise NotImplementedError

    def check(self) -> list[str]:
        return []  # no documented call that logs in without sending


def number_as(to_e164: str, number_format: NumberFormat) -> str:
    """"+41791234567" as the gateway wants it: unchanged, "41791234567" or "0041791234567"."""
    digits = to_e164.lstrip("+")
    if number_format == "digits":
        return digits
    if number_format == "00":
        return "00" + digits
    return "+" + digits


@dataclass
class Gateway:
    """HTTP access to one provider: endpoint, session, timeout, redaction, classification."""

    name: str
    settings: SmsSettings
    session: requests.Session

    # --- plumbing --------------------------------------------------------------------------

    def url(self, default_base: str, path: str) -> str:
        """The provider's endpoint; ``sms.url`` replaces its base (a proxy or test gateway)."""
        base = (self.settings.url or default_base).rstrip("/")
        return base + path

    def redact(self, text: str) -> str:
        """``text`` without the password in any form (:mod:`proit_notify.redaction`); a text
        that holds it in a form that cannot be masked in place is not shown at all."""
        password = self.settings.password
        if not password:
            return text
        forms = forms_of(password, self.settings.username) | {password}
        for form in sorted(forms, key=len, reverse=True):
            text = text.replace(form, "***")
        text = redact(text)
        return WITHHELD if reveals(text, [password]) else text

    def echoes(self, body: str) -> bool:
        """Whether a gateway's answer repeats the login: the user name or the password in
        it, read in every decoding :func:`~proit_notify.redaction.decodings` knows. Such an
        answer is never shown nor stored (a gateway that echoes the request in an escaping
        of its own would otherwise hand the password to the log, the ledger and alerts)."""
        settings = self.settings
        return reveals(body, [settings.password]) or reveals(
            body, [settings.username], ignore_case=True
        )

    def result(self, outcome: Outcome, detail: str) -> SendResult:
        return SendResult(outcome, self.redact(f"{self.name}: {detail}"))

    def snippet(self, response: requests.Response) -> str:
        """The start of an answer's body, on one line, for details and messages; an answer
        that repeats the login (:meth:`echoes`) is not shown."""
        if self.echoes(response.text):
            return ECHO_WITHHELD
        body = " ".join(response.text.split())
        if len(body) > _SNIPPET:
            body = body[:_SNIPPET] + "…"
        return self.redact(body) or "(empty answer)"

    def unexpected(self, response: requests.Response) -> SendResult:
        """An answer not in the documented form: whether the SMS went out is unknown."""
        return self.result(
            "unknown", f"unexpected answer (HTTP {response.status_code}): {self.snippet(response)}"
        )

    def login_refused(self, what: str, hint: str = "") -> UnreachableError:
        """The error for refused credentials (never containing the password)."""
        extra = f" ({hint})" if hint else ""
        return UnreachableError(
            self.redact(
                f"SMS provider {self.name} refused the login: {what}; "
                f"check sms.username / sms.password{extra}"
            )
        )

    @staticmethod
    def json(response: requests.Response) -> Any:
        """The answer as JSON, or None when it is not JSON."""
        try:
            return response.json()
        except (ValueError, json.JSONDecodeError):
            return None

    # --- calls -----------------------------------------------------------------------------

    def call(self, method: str, url: str, **kwargs: Any) -> requests.Response | SendResult:
        """One HTTP request for a send; a connection problem comes back classified."""
        try:
            response = self.session.request(
                method, url, timeout=self.settings.timeout, allow_redirects=False, **kwargs
            )
        except requests.ConnectTimeout:
            return self.result(
                "deferred", f"timed out connecting after {self.settings.timeout:g} s"
            )
        except requests.ReadTimeout:
            return self.result(
                "unknown",
                f"no answer within {self.settings.timeout:g} s after the request was sent "
                "(the SMS may have been sent)",
            )
        except requests.ConnectionError as exc:
            if http.never_sent(exc):
                return self.result("deferred", f"cannot connect: {self._reason(exc)}")
            return self.result(
                "unknown", f"connection lost after the request was sent: {self._reason(exc)}"
            )
        except (
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidURL,
        ) as exc:
            raise UnreachableError(
                self.redact(
                    f"SMS provider {self.name}: unusable address ({type(exc).__name__}); "
                    "check sms.url"
                )
            ) from None
        except requests.RequestException as exc:
            return self.result("unknown", f"request broke off: {self._reason(exc)}")
        redirect = self.redirect(response)
        return response if redirect is None else self.result("failed", redirect)

    def redirect(self, response: requests.Response) -> str | None:
        """Why a 3xx answer is not followed: it would carry the credentials elsewhere."""
        if not 300 <= response.status_code < 400:
            return None
        target = urlsplit(response.headers.get("Location", "")).hostname or "another address"
        return (
            f"the gateway answered HTTP {response.status_code}, a redirect to {target}; it is "
            "not followed (it would send the credentials there): set sms.url to the address "
            "the provider documents"
        )

    def probe(self, method: str, url: str, **kwargs: Any) -> requests.Response | str:
        """One HTTP request for ``check``: the response, or the problem as text."""
        try:
            response = self.session.request(
                method, url, timeout=self.settings.timeout, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            return self.redact(f"{self.name}: cannot reach the gateway: {self._reason(exc)}")
        redirect = self.redirect(response)
        return response if redirect is None else self.redact(f"{self.name}: {redirect}")

    def _reason(self, exc: requests.RequestException) -> str:
        return self.redact(http.reason(exc)) or type(exc).__name__

    # --- classification --------------------------------------------------------------------

    def classify_http_error(
        self,
        response: requests.Response,
        message: str | None = None,
        auth_statuses: tuple[int, ...] = (401, 403),
    ) -> SendResult:
        """A non-success HTTP status: raise for login, else deferred (429/5xx) or failed."""
        status = response.status_code
        said = message or self.snippet(response)
        if status in auth_statuses:
            raise self.login_refused(f"HTTP {status} {said}")
        if status == 429 or status >= 500:
            return self.result("deferred", f"HTTP {status} {said}")
        return self.result("failed", f"HTTP {status} {said}")

    def probe_json(
        self, method: str, url: str, **kwargs: Any
    ) -> tuple[requests.Response | None, Any, list[str]]:
        """``check``'s balance call: (answer, its JSON, []) or (None, None, the problems)."""
        answer = self.probe(method, url, **kwargs)
        if isinstance(answer, str):
            return None, None, [answer]
        problems = self.check_http(answer)
        if problems:
            return None, None, problems
        return answer, self.json(answer), []

    def check_http(
        self, response: requests.Response, auth_statuses: tuple[int, ...] = (401, 403)
    ) -> list[str]:
        """Problems an HTTP status shows in ``check`` (empty for 2xx)."""
        status = response.status_code
        if status in auth_statuses:
            return [
                self.redact(
                    f"{self.name}: login refused (HTTP {status}): check sms.username / sms.password"
                )
            ]
        if not 200 <= status < 300:
            return [f"{self.name}: HTTP {status} {self.snippet(response)}"]
        return []
