"""SMSup (smsup.ch), REST API.

What the stored documentation says (doc.smsup.ch: "Getting started", "Single SMS"
(Einzel-SMS), "Get credits"):
- base URL https://api.smsup.ch; authentication with an API token in
  ``Authorization: Bearer <token>``; ``Accept: application/json`` asks for JSON (XML is the
  default);
- a single SMS is ``GET /send`` with ``text``, ``to`` (example "41781234567": country
  code, no "+"), optional ``sender``, ``pushtype`` (alert or marketing), ``delay``,
  ``gsmsmsid``;
- the answer carries ``status``: 1 OK, -1 authentication error, -2 XML error, -3 not enough
  credits, -4 incorrect date delay, -5 resource not found, -6 JSON error, -7 data error,
  -8 campaign under moderation ("doesn't mean your SMS won't be sent"), -99 unknown error;
  with ``message``, ``ticket`` (the campaign id), ``sent`` and counts of numbers filtered
  out (``invalid``, ``blacklisted``, ``npai``, ``not_allowed``, ...);
- ``GET /credits`` answers ``{"credits": "44690", "message": "OK"}``.

What we chose: the API token is ``sms.password`` (``sms.username`` is not used);
``pushtype=alert`` (our messages are transactional); status 1 with ``sent`` 0 -> failed
(the number was filtered out); -8 -> sent (under moderation); -1 -> refused login; -3 ->
deferred; any other status -> failed. No public-IP parameter is documented.
"""

from __future__ import annotations

from typing import Any

import requests

from .. import SendResult
from .base import GatewayProvider, Request, number_as

BASE_URL = "https://api.smsup.ch"
_FILTER_COUNTS = (
    "invalid", "blacklisted", "duplicated", "npai", "not_allowed", "flood", "country_limit"
)


class SmsupProvider(GatewayProvider):
    """SMSup REST API: GET /send and GET /credits."""

    name = "smsup"

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.gateway.settings.password}",
            "Accept": "application/json",
        }

    def request(self, to_e164: str, text: str, sender: str | None) -> Request:
        params = {"text": text, "to": number_as(to_e164, "digits"), "pushtype": "alert"}
        if sender:
            params["sender"] = sender
        url = self.gateway.url(BASE_URL, "/send")
        return Request("GET", url, {"params": params, "headers": self._headers()})

    def accepted(self, response: requests.Response) -> SendResult:
        data = self.gateway.json(response)
        if not isinstance(data, dict) or "status" not in data:
            return self.gateway.unexpected(response)
        return self._classify(data)

    def _classify(self, data: dict[str, Any]) -> SendResult:
        status = str(data.get("status", "")).strip()
        message = str(data.get("message") or "").strip()
        ticket = str(data.get("ticket") or "").strip()
        if status == "1":
            if _as_int(data.get("sent")) == 0:
                filtered = [f"{k} {data[k]}" for k in _FILTER_COUNTS if _as_int(data.get(k))]
                why = ", ".join(filtered) or "no message left after filtering"
                return self.gateway.result("failed", f"not sent: {why}")
            return self.gateway.result("sent", f"ticket {ticket}" if ticket else message or "OK")
        if status == "-8":
            return self.gateway.result("sent", f"ticket {ticket} (under moderation: {message})")
        if status == "-1":
            raise self.gateway.login_refused(
                f"status -1 {message}", "sms.password is the SMSup API token"
            )
        if status == "-3":
            return self.gateway.result("deferred", f"status -3 {message or 'not enough credits'}")
        return self.gateway.result("failed", f"status {status} {message}".strip())

    def check(self) -> list[str]:
        answer, data, problems = self.gateway.probe_json(
            "GET", self.gateway.url(BASE_URL, "/credits"), headers=self._headers()
        )
        if answer is None:
            return problems
        if not isinstance(data, dict):
            return [f"smsup: unexpected answer to /credits: {self.gateway.snippet(answer)}"]
        status = str(data.get("status", "1")).strip()
        if status == "-1":
            return ["smsup: login refused (status -1): check sms.username / sms.password "
                    "(sms.password is the SMSup API token)"]
        if status != "1":
            return [f"smsup: /credits status {status} {data.get('message') or ''}".strip()]
        credits = _as_int(data.get("credits"))
        if credits is not None and credits <= 0:
            return [f"smsup: no credits left ({data.get('credits')})"]
        return []


def _as_int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None
