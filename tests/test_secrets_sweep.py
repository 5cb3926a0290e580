"""Secrets in every spelling (issue 21, items 4 and 7): servers that echo the login.

An SMS gateway answers 400 with the request echoed in escapings of its own (PHP's ``\\/``,
.NET's upper-case ``\\u002B``, JSON inside XML, lower-case ``%xx``, JSON inside JSON), and
an SMTP relay refuses the login with a 535 that echoes the AUTH string. After runs with
``-v``, ``check``, ``--json check``, ``history``, ``status``, the log file, the ledger (run
records included) and the alert mail are swept: no form of the password, decoded or not.
"""

from __future__ import annotations

import base64
import html
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cli_runner import Cli, cli
from erp_backends import ErpBackend
from pytest_httpserver import HTTPServer
from scenario import shop
from smtp_server import HOST, RecordingHandler, SmtpServer, email_section, smtp_server
from werkzeug import Request, Response

__all__ = ["cli", "smtp_server"]  # fixtures

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 9, 0)
PASSWORD = 'Pa/ss+w%rd"<42>&x'
USER = "gw-user-7731"
ALERT_TO = "it@shop.example"
PARAMS = {"to": "{to}", "text": "{text}", "user": "{username}", "pass": "{password}"}


def php(text: str) -> str:
    return json.dumps(text).replace("/", "\\/")  # json_encode escapes the slash


def dotnet(text: str) -> str:
    # System.Text.Json escapes HTML-sensitive characters as \uXXXX, upper-case hex
    return '"' + "".join(c if c.isalnum() else f"\\u{ord(c):04X}" for c in text) + '"'


def lower_percent(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(text, safe=""))


#: number -> the gateway's error body, each echoing the request its own way
ECHOES = {
    "+41791110001": '{"error":"bad request","echo":{"user":' + php(USER) + ',"pass":'
    + php(PASSWORD) + "}}",
    "+41791110002": '{"Error":"Invalid","Request":{"Password":' + dotnet(PASSWORD) + "}}",
    "+41791110003": "<Fault><Detail>" + html.escape(json.dumps({"pw": PASSWORD}))
    + "</Detail></Fault>",
    "+41791110004": f"invalid request: user={USER}&pass={lower_percent(PASSWORD)}",
    "+41791110005": json.dumps({"error": json.dumps({"request": {"password": PASSWORD}})}),
    "+41791110006": f"unknown user {USER.upper()}",  # the user name alone: not shown either
}  # fmt: skip


def forms(secret: str) -> set[str]:
    """Spellings of ``secret`` a careless output could hold (independent of the tool)."""
    b64 = base64.b64encode(secret.encode()).decode()
    plain = base64.b64encode(f"\0{USER}\0{secret}".encode()).decode()
    return {
        secret, json.dumps(secret)[1:-1], php(secret)[1:-1], dotnet(secret)[1:-1],
        quote(secret, safe=""), quote_plus(secret), lower_percent(secret), html.escape(secret),
        html.escape(json.dumps(secret)), b64, b64.rstrip("="), plain, plain.rstrip("="),
    }  # fmt: skip


def readings(text: str) -> Iterator[str]:
    """``text`` and what three layers of unescaping make of it (the test's own decoder)."""
    seen = {text}
    for _ in range(3):
        more = set()
        for t in seen:
            more.add(unquote(t))
            more.add(html.unescape(t))
            more.add(re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), t)
                     .replace("\\/", "/").replace('\\"', '"').replace("\\\\", "\\"))  # fmt: skip
        seen |= more
    yield from seen


def assert_clean(where: str, text: str) -> None:
    for form in forms(PASSWORD):
        assert form not in text, f"{where}: holds {form!r}"
    for reading in readings(text):
        assert PASSWORD not in reading, f"{where}: holds the password once decoded"


@pytest.fixture
def echoing_relay() -> Iterator[SmtpServer]:
    """A relay that refuses every login with a 535 that echoes what the client sent."""

    class Echoing(RecordingHandler):
        def authenticate(
            self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> AuthResult:
            assert isinstance(auth_data, LoginPassword)
            said = base64.b64encode(b"\0" + auth_data.login + b"\0" + auth_data.password)
            echo = json.dumps({"user": auth_data.login.decode(), "pw": auth_data.password.decode()})
            return AuthResult(
                success=False,
                handled=False,
                message=f"535 5.7.8 bad credentials for {said.decode()} {php(echo)}",
            )

    server = SmtpServer(Echoing(), auth=True)
    server._kwargs["auth_require_tls"] = False
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_no_output_holds_the_password_after_runs_against_echoing_servers(
    erp_backend: ErpBackend,
    write_config: Any,
    smtp_server: SmtpServer,
    echoing_relay: SmtpServer,
    httpserver: HTTPServer,
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def gateway(request: Request) -> Response:
        number = json.loads(request.get_data(as_text=True))["to"]
        return Response(ECHOES[number], status=400)

    httpserver.expect_request("/send", method="POST").respond_with_handler(gateway)
    s = shop(erp_backend)
    for number in ECHOES:
        s.delivery_note(s.order(s.customer(info_type="sms", phone=number)), PRINTED)
    s.delivery_note(s.order(s.customer(info_type="email", email="k@example.ch")), PRINTED)
    monkeypatch.setenv("SMS_PASSWORD", PASSWORD)
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    relay = {"host": HOST, "port": echoing_relay.port, "security": "none", "timeout": 5,
             "username": "shop@example.ch", "password": "${SMTP_PASSWORD}"}  # fmt: skip
    email = email_section(smtp_server, relay={**relay, "from": "shop@example.ch"})
    email["default_account"] = "relay"
    log_file = tmp_path / "proit-notify.log"
    config = write_config(
        email=email,
        sms={
            "provider": "http",
            "url": httpserver.url_for("/send"),
            "username": USER,
            "password": "${SMS_PASSWORD}",
            "fallback_to_email": False,
            "http": {"method": "POST_JSON", "params": PARAMS},
        },
        alerts={"to": [ALERT_TO], "account": "default"},
        service={"log_file": str(log_file)},
    )

    outputs: dict[str, str] = {}
    for name, args in {
        "run -v": ["-v", "shipping-confirmations", "--as-of", AS_OF],
        "run --json": ["--json", "shipping-confirmations", "--as-of", AS_OF],
        "check": ["check"],
        "check --json": ["--json", "check"],
        "history": ["history"],
        "history --json": ["--json", "history"],
        "status": ["status"],
    }.items():
        result = cli("-c", config, *args)
        outputs[f"{name} stdout"] = result.stdout
        outputs[f"{name} stderr"] = result.stderr
        if name == "run -v":
            assert result.exit_code == 4, result.stderr  # the relay refused the login

    # what the run did: each echoing answer made its SMS fail, without the echo
    with sqlite3.connect(config.parent / "ledger.sqlite") as conn:
        rows = dict(conn.execute("SELECT recipient, detail FROM proit_notify_ledger "
                                 "WHERE channel = 'sms'").fetchall())  # fmt: skip
        ledger_dump = "\n".join(conn.iterdump())
    assert set(rows) == set(ECHOES)
    assert all("not shown" in detail for detail in rows.values()), rows
    assert len([r for r in httpserver.log if r[0].path == "/send"]) == len(ECHOES)
    # the relay's 535 is named (that the login was refused), its echo is not
    refused = outputs["run -v stderr"]
    assert "refused the login" in refused
    [alert] = [m for m in smtp_server.messages if m.rcpt_tos == (ALERT_TO,)]
    alert_text = alert.raw.decode("utf-8", "replace") + str(
        alert.message.get_body(("plain",)).get_content()
    )
    assert "refused the login" in alert_text

    swept = {**outputs, "log file": log_file.read_text(), "ledger": ledger_dump,
             "alert mail": alert_text}  # fmt: skip
    for where, text in swept.items():
        assert_clean(where, text)
    # the user name in an answer is as good as an echo: that answer is not shown at all
    for where, text in swept.items():
        assert "unknown user" not in text, where


def test_a_settings_error_never_shows_a_secret_that_came_from_the_environment(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_TOKEN", "tk-7f3a9c1e5b")
    config = tmp_path / "proit-notify.toml"
    config.write_text(
        '[erp]\nsqlite = "erp.db"\n'
        '[email.accounts.default]\ntransport = "file"\ndirectory = "out"\nfrom = "a@b.ch"\n'
        '[sms]\nprovider = "http"\nurl = "http://gw.example.com/send?key=${SMS_TOKEN}"\n'
        "[sms.http]\n",
        encoding="utf-8",
    )
    result = cli("-c", config, "check")
    assert result.exit_code == 3
    assert "plain http" in result.stderr
    assert "${SMS_TOKEN}" in result.stderr  # what the file says
    assert "tk-7f3a9c1e5b" not in result.stderr + result.stdout
