"""``transport = "graph"`` (SPEC §9): Microsoft Graph's sendMail, through the whole CLI,
against a local HTTPS stand-in (``tests/identity.py``: the identity provider and Graph,
both on a CA made in the test) that speaks Graph's answers: 202 with a request-id, 429
with Retry-After, 401/403/404 with Graph's error bodies, a stall after the body.

The one rule above all: nothing is ever sent twice, whatever Graph does.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, cli
from erp_backends import ErpBackend
from identity import MAILBOX, Authority, Graph, graph, graph_error, test_authority, test_ca_tls
from ledger_rows import ledger_rows
from scenario import shop
from smtp_server import free_port

__all__ = ["cli", "graph", "test_authority", "test_ca_tls"]  # fixtures

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 9, 0)

pytestmark = pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)


def graph_email(graph: Graph, idp: Authority, **account: Any) -> dict[str, Any]:
    """``[email]`` with one account that sends through the Graph stand-in."""
    settings = {
        "transport": "graph",
        "graph_url": graph.url,
        "from": f"Contoso Shop <{MAILBOX}>",
        "timeout": 2,
        "ca_file": str(idp.ca_file),
        "max_per_minute": 6000,  # Microsoft 365's 30 would make the tests wait
        "oauth2": idp.microsoft_settings(),
        **account,
    }
    return {"default_account": "shop", "accounts": {"shop": settings}}


def notes(erp_backend: ErpBackend, n: int) -> list[int]:
    s = shop(erp_backend)
    return [
        s.delivery_note(s.order(s.customer(email=f"k{i}@example.ch")), PRINTED) for i in range(n)
    ]


def rows(config: Path, *columns: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(config.parent / "ledger.sqlite") as conn:
        return conn.execute(
            f"SELECT {', '.join(columns)} FROM proit_notify_ledger ORDER BY key_"
        ).fetchall()


def test_sent_through_graph_with_the_bytes_smtp_would_send(
    erp_backend: ErpBackend, write_config: Any, graph: Graph, test_authority: Authority, cli: Cli
) -> None:
    notes(erp_backend, 3)
    config = write_config(email=graph_email(graph, test_authority, bcc="archiv@contoso.example"))
    run = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert len(graph.messages) == 3
    assert sorted(m["To"].addresses[0].addr_spec for m in graph.messages) == [
        "k0@example.ch", "k1@example.ch", "k2@example.ch"
    ]  # fmt: skip
    for message in graph.messages:
        assert message["Bcc"] == "archiv@contoso.example"  # Graph reads recipients from MIME
        assert message.get_body(("plain",)) is not None
        assert message.get_body(("html",)) is not None
    # one token for the run, asked for Graph's audience
    assert test_authority.requests == ["client_credentials"]
    found = rows(config, "status", "detail", "message_id")
    assert [r[0] for r in found] == ["sent"] * 3
    assert all(r[1].startswith("202 Accepted (request-id ") for r in found)
    # the Message-ID kept in the ledger is the one Graph got (bounces are matched by it)
    assert sorted(r[2] for r in found) == sorted(str(m["Message-ID"]) for m in graph.messages)
    again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert again.exit_code == 0
    assert graph.posts == 3


def test_a_lost_202_is_unknown_and_never_sent_again(
    erp_backend: ErpBackend, write_config: Any, graph: Graph, test_authority: Authority, cli: Cli
) -> None:
    notes(erp_backend, 3)
    graph.answers.append("stall")  # Graph takes the first message, its 202 never arrives
    config = write_config(email=graph_email(graph, test_authority))
    run = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 1, run.stderr
    assert graph.posts == 1  # the breaker: the account takes nothing more in this run
    assert len(graph.messages) == 1
    [report] = run.json()
    assert report["counts"]["unknown"] == 1
    assert report["counts"]["deferred"] == 2  # not claimed: they go out on the next run
    assert [r[0] for r in rows(config, "status")] == ["unknown"]
    assert "Sent Items" in rows(config, "detail")[0][0]
    # the next runs send the other two, and never the first one again
    time.sleep(graph.stall_seconds)
    for _ in range(2):
        later = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert later.exit_code == 0, later.stderr
    assert graph.posts == 3
    assert len(graph.messages) == 3
    assert len({str(m["To"]) for m in graph.messages}) == 3


def test_429_waits_as_retry_after_says_and_a_long_one_stops_the_account(
    erp_backend: ErpBackend, write_config: Any, graph: Graph, test_authority: Authority, cli: Cli
) -> None:
    notes(erp_backend, 2)
    graph.answers.append(graph_error(429, "ApplicationThrottled", "Too many requests",
                                     **{"Retry-After": "2"}))  # fmt: skip
    config = write_config(email=graph_email(graph, test_authority),
                          retry={"first_delay_minutes": 0})  # fmt: skip
    run = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 1, run.stderr
    [report] = run.json()
    assert (report["counts"]["sent"], report["counts"]["deferred"]) == (1, 1)
    assert graph.posts == 2
    # the second request waited the 2 s Graph asked for
    assert graph.arrivals[1] - graph.arrivals[0] >= 1.9
    deferred = [r for r in rows(config, "status", "detail", "updated_at", "next_attempt_at")
                if r[0] == "deferred"]  # fmt: skip
    assert len(deferred) == 1
    assert "429 ApplicationThrottled" in deferred[0][1]
    waited = datetime.fromisoformat(deferred[0][3]) - datetime.fromisoformat(deferred[0][2])
    assert waited.total_seconds() >= 2  # not before Retry-After, whatever the back-off says

    # a Retry-After of an hour: the account stops at once, the rest is not even claimed
    notes(erp_backend, 3)
    graph.answers.append(graph_error(429, "ApplicationThrottled", "Too many requests",
                                     **{"Retry-After": "3600"}))  # fmt: skip
    posts = graph.posts
    later = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)
    assert later.exit_code == 1
    assert graph.posts == posts + 1
    [report] = later.json()
    assert "asked to wait 3600 s" in " ".join(report.get("notes", [])) + later.stderr


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("roles", "no Mail.Send role"),
        ("mailbox", "Graph knows no mailbox shop@contoso.example"),
        ("401", "the token was refused"),
    ],
)
def test_a_refusing_graph_is_exit_4_and_nothing_is_claimed(
    erp_backend: ErpBackend,
    write_config: Any,
    graph: Graph,
    test_authority: Authority,
    cli: Cli,
    fault: str,
    said: str,
) -> None:
    notes(erp_backend, 2)
    if fault == "roles":
        test_authority.roles = ("SMTP.SendAsApp",)  # the SMTP permission, not Graph's
    elif fault == "mailbox":
        graph.mailbox = "other@contoso.example"
    else:
        expired = graph_error(401, "InvalidAuthenticationToken", "Access token has expired.")
        graph.answers.append(expired)
    config = write_config(email=graph_email(graph, test_authority))
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 4, run.stderr
    assert graph.messages == []
    assert graph.posts == 1  # the account is blocked after the first refusal
    # the refused message's claim was undone: it goes out on the first run after the fix
    assert ledger_rows(config, "status") == []
    if fault == "roles":
        tested = cli("-c", config, "auth", "test", "shop")
        assert tested.exit_code == 4
        assert said in tested.stderr
        assert "Microsoft Graph > Application permissions > Mail.Send" in tested.stderr
    else:
        assert said in run.stderr


def test_one_refused_message_fails_and_the_others_go(
    erp_backend: ErpBackend, write_config: Any, graph: Graph, test_authority: Authority, cli: Cli
) -> None:
    notes(erp_backend, 2)
    graph.answers.append(graph_error(400, "ErrorInvalidRecipients",
                                     "At least one recipient is not valid."))  # fmt: skip
    config = write_config(email=graph_email(graph, test_authority))
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 1
    found = sorted(r[0] + ": " + r[1][:40] for r in rows(config, "status", "detail"))
    assert found[0].startswith("failed: HTTP 400 ErrorInvalidRecipients")
    assert found[1].startswith("sent: 202 Accepted")
    assert len(graph.messages) == 1


def test_a_graph_error_after_the_body_is_unknown(
    erp_backend: ErpBackend, write_config: Any, graph: Graph, test_authority: Authority, cli: Cli
) -> None:
    notes(erp_backend, 1)
    graph.answers.append(graph_error(500, "InternalServerError", "Something happened."))
    config = write_config(email=graph_email(graph, test_authority))
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 1
    assert [r[0] for r in rows(config, "status")] == ["unknown"]
    cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert graph.posts == 1  # never retried blindly
    assert [r[0] for r in rows(config, "status")] == ["unknown"]


def test_an_unreachable_graph_is_exit_4_with_the_key_to_fix(
    erp_backend: ErpBackend, write_config: Any, test_authority: Authority, cli: Cli, graph: Graph
) -> None:
    notes(erp_backend, 1)
    email = graph_email(graph, test_authority, graph_url=f"https://127.0.0.1:{free_port()}")
    config = write_config(email=email)
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 4, run.stderr
    assert "Microsoft Graph at https://127.0.0.1:" in run.stderr
    assert "cannot connect" in run.stderr
    assert ledger_rows(config, "status") == []


def test_graph_accounts_get_microsoft_365s_minute_limit_and_their_own_setup(
    erp_backend: ErpBackend, write_config: Any, graph: Graph, test_authority: Authority, cli: Cli
) -> None:
    email = graph_email(graph, test_authority)
    del email["accounts"]["shop"]["max_per_minute"]
    config = write_config(email=email)
    tested = cli("-c", config, "auth", "test", "shop")
    assert tested.exit_code == 0, tested.stderr
    assert "audience https://graph.microsoft.com, roles Mail.Send" in tested.stdout
    assert "at most 30 messages a minute" in tested.stdout
    assert "max_per_minute = 30 (the default)" in tested.stdout
    steps = cli("-c", config, "auth", "setup", "shop")
    assert steps.exit_code == 0
    assert "Microsoft Graph > Application permissions > Mail.Send" in steps.stdout
    assert "Set-CASMailbox" not in steps.stdout  # SMTP AUTH plays no part with Graph
    assert "New-ApplicationAccessPolicy" in steps.stdout


def test_graph_needs_a_microsoft_app_token(write_config: Any, cli: Cli, tmp_path: Path) -> None:
    config = write_config(email={"default_account": "shop", "accounts": {"shop": {
        "transport": "graph", "from": "shop@contoso.example", "password": "x"}}})  # fmt: skip
    run = cli("-c", config, "check", "--no-network")
    assert run.exit_code == 3
    assert 'transport "graph" sends through Microsoft Graph with an app token' in run.stderr
