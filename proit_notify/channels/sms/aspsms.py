"""ASPSMS (aspsms.com), JSON API.

What the stored documentation says (http://json.aspsms.com/, the API's own index page):
- every call is an HTTP POST of a JSON object to https://json.aspsms.com/<Method>;
- CheckCredits takes ``{"UserName", "Password"}`` and answers
  ``{"Credits", "StatusCode", "StatusInfo"}``;
- SendTextSMS takes ``UserName``, ``Password``, ``Originator``, ``Recipients`` (a list),
  ``MessageText`` and optional ``AffiliateID``, ``ForceGSM7bit``, notification URLs. We call
  SendSimpleTextSMS, the same call without per-recipient tracking (``UserName``,
  ``Password``, ``Originator``, ``Recipients``, ``MessageText``); its answer carries
  ``StatusCode`` and ``StatusInfo``, and only ``StatusCode`` "1" means accepted.
- UserName is the account's "userkey" (rubydoc of the aspsms gem: "userkey" and
  "password" are the two credentials).

What the stored documentation does not say, and what we chose:
- the recipient number format: we send E.164 ("+41791234567"), the format the aspsms gem's
  examples use for originators;
- the list of StatusCode values: the answer has no message id, so the detail of a sent SMS
  is the StatusInfo; a StatusInfo that speaks of the login (authorization, user key,
  password) is taken as refused credentials, any other non-"1" code as a refusal of this
  message;
- no parameter for the sender's public IP exists (``AffiliateID`` is a reseller id), so
  ``sms.public_ip`` is not sent.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from .. import SendResult
from .base import GatewayProvider, Request

BASE_URL = "https://json.aspsms.com"
_LOGIN_WORDS = re.compile(r"authori[sz]|user ?key|password|credential|login", re.IGNORECASE)


class AspsmsProvider(GatewayProvider):
    """ASPSMS JSON API: SendSimpleTextSMS and CheckCredits."""

    name = "aspsms"

    def _credentials(self) -> dict[str, Any]:
        settings = self.gateway.settings
        return {"UserName": settings.username, "Password": settings.password}

    def request(self, to_e164: str, text: str, sender: str | None) -> Request:
        payload = {**self._credentials(), "Recipients": [to_e164], "MessageText": text}
        if sender:
            payload["Originator"] = sender
        return Request("POST", self.gateway.url(BASE_URL, "/SendSimpleTextSMS"), {"json": payload})

    def accepted(self, response: requests.Response) -> SendResult:
        data = self.gateway.json(response)
        if not isinstance(data, dict) or "StatusCode" not in data:
            # accepted at HTTP level but not in the documented form: we cannot tell
            return self.gateway.unexpected(response)
        code = str(data.get("StatusCode", "")).strip()
        info = str(data.get("StatusInfo") or "").strip()
        if code == "1":
            return self.gateway.result("sent", f"accepted (StatusCode 1 {info})".replace(" )", ")"))
        if _LOGIN_WORDS.search(info):
            raise self.gateway.login_refused(
                f"StatusCode {code} {info}", "sms.username is the ASPSMS userkey"
            )
        return self.gateway.result("failed", f"StatusCode {code} {info}".strip())

    def check(self) -> list[str]:
        answer, data, problems = self.gateway.probe_json(
            "POST", self.gateway.url(BASE_URL, "/CheckCredits"), json=self._credentials()
        )
        if answer is None:
            return problems
        if not isinstance(data, dict):
            return [f"aspsms: unexpected answer to CheckCredits: {self.gateway.snippet(answer)}"]
        code = str(data.get("StatusCode", "")).strip()
        info = str(data.get("StatusInfo") or "").strip()
        if code != "1":
            hint = "; check sms.username / sms.password" if _LOGIN_WORDS.search(info) else ""
            return [self.gateway.redact(f"aspsms: CheckCredits StatusCode {code} {info}{hint}")]
        try:
            credits = float(str(data.get("Credits", "")).strip())
        except ValueError:
            return []
        if credits <= 0:
            return [f"aspsms: no credits left ({data.get('Credits')})"]
        return []
