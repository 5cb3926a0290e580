"""Secrets in every form stay out of every output (SPEC §7): unit forms and a full sweep."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from cli_runner import Cli, cli
from erp_backends import ErpBackend
from pytest_httpserver import HTTPServer
from scenario import shop
from smtp_server import SmtpServer, email_section, free_port, smtp_server
from werkzeug import Request, Response

from proit_notify.db import odbc_target
from proit_notify.redaction import odbc_pairs, redact, register

__all__ = ["cli", "smtp_server"]  # fixtures

SECRET = 'pa"ss\\wörd&x/y ü'  # quotes, a backslash, non-ASCII, URL specials
USER = "userkey-1"


def forms(secret: str, user: str) -> list[str]:
    """Every way the tests expect a secret to leak."""
    return [
        secret,
        quote_plus(secret),
        quote(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        base64.b64encode(f"{user}:{secret}".encode()).decode(),
        base64.b64encode(f"\0{user}\0{secret}".encode()).decode(),
    ]


def test_every_form_of_a_registered_secret_is_hidden() -> None:
    register([(SECRET, USER)])
    for form in forms(SECRET, USER):
        text = f"gateway said: {form} (end)"
        assert redact(text) == "gateway said: *** (end)", form


@pytest.mark.parametrize(
    ("conn", "secret"),
    [
        ("DRIVER={X};SERVER=s;UID=u;PWD=geheim12;", "geheim12"),
        ("DRIVER={X};PWD={ge;heim}};x};SERVER=s", "ge;heim}};x"),
        ("Driver={ODBC Driver 18};Server=tcp:s,1433;Password={a b;c};Encrypt=yes", "a b;c"),
    ],
)
def test_odbc_passwords_in_braces_are_hidden_and_parsed(conn: str, secret: str) -> None:
    shown = redact(f"cannot connect with {conn}")
    assert secret not in shown
    assert "SERVER=s" in shown or "Server=tcp:s,1433" in shown
    assert "PWD" in shown.upper() or "PASSWORD" in shown.upper()
    pairs = dict(odbc_pairs(conn))
    assert pairs.get("PWD", pairs.get("Password")) == secret.replace("}}", "}")


def test_odbc_target_reads_braced_values() -> None:
    conn = "DRIVER={ODBC Driver 18 for SQL Server};SERVER={erp;01};PWD={x;y}"
    assert odbc_target(conn) == "driver ODBC Driver 18 for SQL Server at erp;01"


def test_a_run_whose_gateway_and_servers_echo_the_secrets_shows_none_of_them(
    erp_backend: ErpBackend,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    httpserver: HTTPServer,
    tmp_path: Path,
) -> None:
    def echo(request: Request) -> Response:
        # an error inside HTTP 200 that quotes the whole request, and the Basic header
        body = request.get_data(as_text=True)
        info = f"bad request {body} auth {request.headers.get('Authorization', '')}"
        return Response(
            json.dumps({"StatusCode": "4", "StatusInfo": info}),
            content_type="application/json",
        )

    httpserver.expect_request("/SendSimpleTextSMS").respond_with_handler(echo)
    httpserver.expect_request("/CheckCredits").respond_with_handler(echo)
    s = shop(erp_backend)
    customer = s.customer(info_type="sms", phone="079 123 45 67")
    s.delivery_note(s.order(customer), datetime(2026, 11, 26, 9))
    email = email_section(smtp_server)
    config = write_config(
        email=email,
        sms={
            "provider": "aspsms",
            "username": USER,
            "password": SECRET,
            "url": httpserver.url_for("/"),
            "fallback_to_email": False,
        },
    )
    outputs = []
    for args in (
        ["-v", "shipping-confirmations", "--as-of", "2026-11-27T08:00"],
        ["--json", "history"],
        ["history"],
        ["-v", "check"],
        ["--json", "status", "--as-of", "2026-11-27T09:00"],
        ["test-send", "--sms", "+41791234567"],
    ):
        result = cli("-c", config, *args)
        outputs += [result.stdout, result.stderr]
    assert len(httpserver.log) >= 2  # the gateway was asked (and echoed) twice at least
    ledger = tmp_path / "ledger.sqlite"
    with sqlite3.connect(ledger) as conn:
        outputs += [repr(row) for row in conn.execute("SELECT * FROM proit_notify_ledger")]
        outputs += [repr(row) for row in conn.execute("SELECT * FROM proit_notify_ledger_runs")]
    assert any("bad request" in o for o in outputs)  # the echo reached the output, redacted
    everything = "\n".join(outputs)
    for form in forms(SECRET, USER):
        assert form not in everything, form


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_an_unreachable_sql_server_with_v_shows_no_password(
    write_config: Any, cli: Cli, tmp_path: Path
) -> None:
    secret = "Ge;heim}x"
    conn = (
        "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT="
        f"{free_port()};DATABASE=test;UID=u;PWD={{{secret.replace('}', '}}')}}}"
    )
    config = write_config(erp={"sqlite": None, "odbc": conn, "login_timeout": 2})
    result = cli("-v", "-c", config, "check", "--no-network")
    assert result.exit_code == 4
    everything = result.stdout + result.stderr
    assert "127.0.0.1" in everything
    for form in (secret, quote(secret, safe=""), json.dumps(secret)[1:-1], "Ge;heim"):
        assert form not in everything
