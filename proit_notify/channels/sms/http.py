"""Generic HTTP SMS gateway (provider ``http``), described entirely by ``[sms.http]``.

For gateways without a built-in provider (an operator's own gateway, a modem box, a
provider's plain HTTP API). ``sms.url`` is the address; ``[sms.http]`` says how to call it:

- ``method``: ``GET`` (params in the query string), ``POST`` (form-encoded body) or
  ``POST_JSON`` (JSON object body);
- ``params`` / ``headers``: name -> value, where a value may contain the placeholders
  ``{to}``, ``{text}``, ``{sender}``, ``{username}``, ``{password}``, ``{public_ip}``
  (``sms.url`` may contain them too, URL-encoded); any other ``{name}`` is refused as a
  config error (a typo), other braces are left as they are;
- ``number_format``: ``{to}`` as ``e164`` ("+41791234567"), ``digits`` ("41791234567")
  or ``00`` ("0041791234567");
- success: the HTTP status is in ``success_status`` and, when ``success_contains`` is set,
  the body contains that text; ``message_id_regex`` picks the message id out of the body
  (its first group, or the whole match).

Classification: success -> sent; 401/403 -> refused login (UnreachableError); 429/5xx ->
deferred; any other answer (4xx, or a success status without ``success_contains``) ->
failed with the start of the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import quote

import requests

from ...errors import ConfigError
from ...settings import HttpGatewaySettings
from .. import SendResult
from .base import Gateway, GatewayProvider, Request, number_as

PLACEHOLDERS = ("to", "text", "sender", "username", "password", "public_ip")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_ANY_PLACEHOLDER_RE = re.compile(r"\{([a-z_]+)\}")


def fill(template: str, values: Mapping[str, str], encode: Callable[[str], str] = str) -> str:
    """``template`` with each known ``{placeholder}`` replaced by its (encoded) value."""
    return _PLACEHOLDER_RE.sub(lambda m: encode(values[m.group(1)]), template)


class HttpProvider(GatewayProvider):
    """A gateway described by ``[sms.http]`` at ``sms.url``."""

    name = "http"

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(gateway)
        http = gateway.settings.http
        if http is None:  # the settings refuse provider "http" without [sms.http]
            http = HttpGatewaySettings()
        self.http = http
        self._id_re = _compile(http.message_id_regex)
        problems = [
            f"sms.{where}: unknown placeholder {{{name}}} (known: "
            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            + ")"
            for where, value in _templates(gateway.settings.url or "", http)
            for name in _ANY_PLACEHOLDER_RE.findall(value)
            if name not in PLACEHOLDERS
        ]
        if problems:
            raise ConfigError("the [sms.http] gateway uses unknown placeholders", tuple(problems))

    def request(self, to_e164: str, text: str, sender: str | None) -> Request:
        settings = self.gateway.settings
        values = {
            "to": number_as(to_e164, self.http.number_format),
            "text": text,
            "sender": sender or "",
            "username": settings.username,
            "password": settings.password,
            "public_ip": settings.public_ip or "",
        }
        url = fill(settings.url or "", values, lambda v: quote(v, safe=""))
        params = {k: fill(v, values) for k, v in self.http.params.items()}
        headers = {k: fill(v, values) for k, v in self.http.headers.items()}
        body_as = {"GET": "params", "POST": "data"}.get(self.http.method, "json")
        method = "GET" if self.http.method == "GET" else "POST"
        return Request(method, url, {body_as: params, "headers": headers})

    def answer(self, answer: requests.Response) -> SendResult:
        # success is what [sms.http] says it is, not any 2xx
        if answer.status_code not in self.http.success_status:
            return self.gateway.classify_http_error(answer)
        return self.accepted(answer)

    def accepted(self, answer: requests.Response) -> SendResult:
        body = answer.text
        expected = self.http.success_contains
        if expected is not None and expected not in body:
            return self.gateway.result(
                "failed",
                f"HTTP {answer.status_code} without {expected!r}: {self.gateway.snippet(answer)}",
            )
        accepted = self._message_id(body) or f"accepted (HTTP {answer.status_code})"
        return self.gateway.result("sent", accepted)

    def _message_id(self, body: str) -> str | None:
        if self._id_re is None:
            return None
        match = self._id_re.search(body)
        if match is None:
            return None
        found = match.group(1) if match.groups() else match.group(0)
        return f"message id {found}" if found else None


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"sms.http.message_id_regex {pattern!r} is not a valid regular expression: {exc}"
        ) from None


def _templates(url: str, http: HttpGatewaySettings) -> list[tuple[str, str]]:
    """Every configured text that may hold placeholders, with its key path."""
    found = [("url", url)]
    found += [(f"http.params.{k}", v) for k, v in http.params.items()]
    found += [(f"http.headers.{k}", v) for k, v in http.headers.items()]
    return found
