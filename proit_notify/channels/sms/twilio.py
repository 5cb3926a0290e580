"""Twilio Programmable Messaging, REST API 2010-04-01.

What the stored documentation says (twilio.com/docs "Twilio API responses"; the 2010 API
examples of riptutorial/Twilio; Twilio's error pages 21211, 21602, 20003):
- ``POST https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP
  basic auth ``AccountSid:AuthToken`` and form parameters ``To`` (E.164, "+447111111111"),
  ``From`` (a Twilio number or alphanumeric sender) or ``MessagingServiceSid`` ("MG..."),
  and ``Body``;
- a created message answers 201 with JSON carrying ``sid`` ("SM...") and ``status``
  ("queued"/"accepted"); errors answer a 4xx/5xx status with JSON
  ``{"code", "message", "more_info", "status"}`` (e.g. 21211 invalid 'To' number, 21602
  body required); 401 (code 20003) for bad credentials; 429 when rate limited.

What we chose: ``sms.username`` is the Account SID, ``sms.password`` the Auth Token,
``sms.sender`` the From number (a sender starting with "MG" is sent as
MessagingServiceSid). ``check`` reads the account's balance
(``/Accounts/{AccountSid}/Balance.json``; this resource is from Twilio's API reference as
we know it, not from the stored pages). Twilio takes no public-IP parameter.
"""

from __future__ import annotations

from urllib.parse import quote

import requests

from .. import SendResult
from .base import GatewayProvider, Request

BASE_URL = "https://api.twilio.com"
_AUTH_CODES = {20003, 20005}  # authenticate / account not active


class TwilioProvider(GatewayProvider):
    """Twilio Messages.json."""

    name = "twilio"

    def _account_url(self, resource: str) -> str:
        sid = quote(self.gateway.settings.username, safe="")
        return self.gateway.url(BASE_URL, f"/2010-04-01/Accounts/{sid}/{resource}")

    def _auth(self) -> tuple[str, str]:
        return (self.gateway.settings.username, self.gateway.settings.password)

    def request(self, to_e164: str, text: str, sender: str | None) -> Request:
        form = {"To": to_e164, "Body": text}
        if sender and sender.startswith("MG"):
            form["MessagingServiceSid"] = sender
        elif sender:
            form["From"] = sender
        url = self._account_url("Messages.json")
        return Request("POST", url, {"data": form, "auth": self._auth()})

    def accepted(self, response: requests.Response) -> SendResult:
        data = self.gateway.json(response)
        sid = data.get("sid") if isinstance(data, dict) else None
        if not sid:
            return self.gateway.unexpected(response)
        return self.gateway.result("sent", f"message sid {sid}")

    def answer(self, answer: requests.Response) -> SendResult:
        if answer.ok:
            return self.accepted(answer)
        data = self.gateway.json(answer)
        message = _error_text(data)
        if isinstance(data, dict) and data.get("code") in _AUTH_CODES:
            raise self.gateway.login_refused(
                f"HTTP {answer.status_code} {message}",
                "sms.username is the Account SID, sms.password the Auth Token",
            )
        return self.gateway.classify_http_error(answer, message)

    def check(self) -> list[str]:
        answer = self.gateway.probe("GET", self._account_url("Balance.json"), auth=self._auth())
        if isinstance(answer, str):
            return [answer]
        return self.gateway.check_http(answer)


def _error_text(data: object) -> str | None:
    if not isinstance(data, dict) or "message" not in data:
        return None
    code = data.get("code")
    return f"{code}: {data['message']}" if code else str(data["message"])

