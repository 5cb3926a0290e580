"""eCall (ecall-messaging.com, Dolphin Systems), HTTP(S) interface.

What the stored documentation says (developer.ecall-messaging.com, "HTTPS Interface",
"Getting started", "Response codes and headers"; ecall-messaging.com "HTTP/HTTPS SMS
Interface"):
- send with GET or POST (form-encoded) to https://url.ecall.ch/api/sms; parameter names are
  case-insensitive, content is UTF-8; the official example sends ``username``,
  ``password``, ``address`` ("0041791234567") and ``message``;
- the originator parameter is ``CallBack`` (Airlock IAM's eCall plugin page lists the
  HTTP gateway 2.0 parameters: Message, Address, CallBack, Username, Password);
- HTTP status codes of send methods: 200 job accepted; 400 request failed, the eCall result
  code tells why (11100 AdrAdCInvalid invalid recipient, 11200 MsgNoCharacters, ...);
  401 credentials missing or invalid; 403 the account has insufficient credits; 500
  general processing error.

What the stored documentation does not say, and what we chose:
- where the job id of an accepted message is: the body of the answer is kept as the detail;
- a balance call: the HTTPS interface has none (only status queries of sent jobs), so
  ``check`` sends nothing and reports nothing;
- a public-IP parameter: none is documented, ``sms.public_ip`` is not sent.
Classification: 400 -> failed (this message), 401 -> refused login, 403 -> deferred (no
credits: a later run after topping up the account sends it), 429/5xx -> deferred.
"""

from __future__ import annotations

import requests

from .. import SendResult
from .base import GatewayProvider, Request, number_as

BASE_URL = "https://url.ecall.ch"


class EcallProvider(GatewayProvider):
    """eCall HTTP(S) interface, /api/sms."""

    name = "ecall"

    def request(self, to_e164: str, text: str, sender: str | None) -> Request:
        settings = self.gateway.settings
        form = {
            "username": settings.username,
            "password": settings.password,
            "address": number_as(to_e164, "00"),
            "message": text,
        }
        if sender:
            form["callback"] = sender
        return Request("POST", self.gateway.url(BASE_URL, "/api/sms"), {"data": form})

    def answer(self, answer: requests.Response) -> SendResult:
        if answer.status_code == 403:
            return self.gateway.result(
                "deferred", f"HTTP 403 insufficient credits: {self.gateway.snippet(answer)}"
            )
        if not answer.ok:
            return self.gateway.classify_http_error(answer, auth_statuses=(401,))
        return self.accepted(answer)

    def accepted(self, response: requests.Response) -> SendResult:
        return self.gateway.result("sent", f"accepted: {self.gateway.snippet(response)}")
