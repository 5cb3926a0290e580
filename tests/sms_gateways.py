"""Local SMS gateways for job tests: the ASPSMS JSON API on pytest-httpserver.

``AspsmsGateway(httpserver)`` records each SMS and answers as ASPSMS does (or as the test
says per number); ``sms_settings(httpserver)`` is the ``[sms]`` table that points at it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

SECRET = "pw&Geheim/42 x"  # URL-encoding changes it: every form must stay out of the output
SECRET_FORMS = (SECRET, quote_plus(SECRET), quote(SECRET, safe=""))


def json_response(data: object, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


class AspsmsGateway:
    """The ASPSMS JSON API on a local server: records each SMS, answers per number."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.sent: list[tuple[str, str]] = []  # (number as received, text), accepted or not
        self.bodies: list[dict[str, Any]] = []
        #: number -> answer instead of "accepted" (an error inside HTTP 200, an HTTP 503)
        self.answers: dict[str, Response] = {}
        server.expect_request("/SendSimpleTextSMS", method="POST").respond_with_handler(self._send)

    def _send(self, request: Request) -> Response:
        body = json.loads(request.get_data(as_text=True))
        self.bodies.append(body)
        [number] = body["Recipients"]
        self.sent.append((number, body["MessageText"]))
        if number in self.answers:
            return self.answers[number]
        return json_response({"StatusCode": "1", "StatusInfo": "OK"})

    @property
    def numbers(self) -> list[str]:
        return sorted(number for number, _ in self.sent)


def sms_settings(server: HTTPServer, provider: str = "aspsms", **extra: Any) -> dict[str, Any]:
    """``[sms]`` pointing at the local gateway (``phone_field`` comes from write_config)."""
    return {
        "provider": provider,
        "username": "userkey-1",
        "password": SECRET,
        "sender": "MusterShop",
        "url": server.url_for("/"),
        "timeout": 5,
        **extra,
    }
