"""seven.io (formerly sms77), REST API.

What the stored documentation says (docs.seven.io "SMS" endpoint page; the API examples
quoted in seven.io's own client libraries, e.g. seven-io/go-client; the error codes of
seven-io/js-client's ``ErrorCode`` enum):
- ``POST /api/sms`` on https://gateway.seven.io with ``to`` (all common formats accepted,
  E.164 recommended), ``text``, optional ``from`` (11 alphanumeric / 16 numeric
  characters); the API key goes in the ``X-Api-Key`` header;
- HTTP 200 also for refused messages: the return code is the ``success`` field of the JSON
  answer (a string, "100" = sent), each entry of ``messages`` has ``id``, ``success``,
  ``error``, ``error_text``;
- codes: 100 sent; 201 invalid country code, 202 invalid recipient number, 301/305 missing
  to/text, 306 invalid sender, 401 text too long, 403 daily limit for this number reached,
  500 insufficient credits, 600 carrier failed, 900 invalid API key, 902 API deactivated
  for this key, 903 IP not allowed;
- ``GET /api/balance`` answers the balance (a number, or ``{"amount", "currency"}`` JSON).

What we chose: the API key is ``sms.password`` (``sms.username`` is not used); 900/902/903
and HTTP 401/403 -> refused login (903: the server's public IP is not allowed in the
seven.io account); 500 and 600 -> deferred; other codes -> failed. There is no public-IP
request parameter (IP allow-listing is an account setting), so ``sms.public_ip`` is not sent.
"""

from __future__ import annotations

from typing import Any

import requests

from .. import SendResult
from .base import GatewayProvider, Request

BASE_URL = "https://gateway.seven.io"
_LOGIN_CODES = {
    "900": "invalid API key",
    "902": "the API key may not send SMS",
    "903": "this server's IP address is not allowed for the API key",
}
_DEFERRED_CODES = {"500": "insufficient credits", "600": "carrier failed"}
_CODE_TEXT = {
    "101": "sending failed to at least one recipient",
    "201": "invalid country code",
    "202": "invalid recipient number",
    "301": "recipient missing",
    "305": "text missing",
    "306": "invalid sender",
    "401": "text too long",
    "403": "daily limit for this number reached",
}


class SevenProvider(GatewayProvider):
    """seven.io REST API: POST /api/sms and GET /api/balance."""

    name = "seven"

    def _headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.gateway.settings.password, "Accept": "application/json"}

    def request(self, to_e164: str, text: str, sender: str | None) -> Request:
        form = {"to": to_e164, "text": text}
        if sender:
            form["from"] = sender
        url = self.gateway.url(BASE_URL, "/api/sms")
        return Request("POST", url, {"data": form, "headers": self._headers()})

    def accepted(self, response: requests.Response) -> SendResult:
        data = self.gateway.json(response)
        message: dict[str, Any] = {}
        if isinstance(data, dict):
            code = str(data.get("success", "")).strip()
            messages = data.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                message = messages[0]
        elif isinstance(data, int | str):
            code = str(data).strip()  # the plain-text form of the answer: just the code
        else:
            code = response.text.strip()
        if not code.isdigit():
            return self.gateway.unexpected(response)
        error_text = str(message.get("error_text") or "").strip()
        if code == "100" and message.get("success", True) is not False:
            msg_id = message.get("id")
            accepted = f"message id {msg_id}" if msg_id else "accepted (100)"
            return self.gateway.result("sent", accepted)
        if code in _LOGIN_CODES:
            raise self.gateway.login_refused(
                f"code {code} {_LOGIN_CODES[code]}", "sms.password is the seven.io API key"
            )
        if code in _DEFERRED_CODES:
            return self.gateway.result("deferred", f"code {code} {_DEFERRED_CODES[code]}")
        why = error_text or _CODE_TEXT.get(code, "refused")
        return self.gateway.result("failed", f"code {code} {why}")

    def check(self) -> list[str]:
        answer, data, problems = self.gateway.probe_json(
            "GET", self.gateway.url(BASE_URL, "/api/balance"), headers=self._headers()
        )
        if answer is None:
            return problems
        amount: object = data.get("amount") if isinstance(data, dict) else data
        text = str(amount).strip()
        if text in _LOGIN_CODES:
            return [f"seven: login refused (code {text} {_LOGIN_CODES[text]}): "
                    "check sms.username / sms.password (sms.password is the seven.io API key)"]
        try:
            balance = float(text)
        except ValueError:
            return [f"seven: unexpected answer to /api/balance: {self.gateway.snippet(answer)}"]
        if balance <= 0:
            return [f"seven: no balance left ({text})"]
        return []
