"""Fault-matrix pins that tests/jobs/test_send_path.py leaves open (SPEC §6 "What is in
flight, and when to stop"): a 421 at RCPT counts towards the breaker like a 451 after DATA;
every configuration-level failure (refused, AUTH refused, no STARTTLS, untrusted
certificate) names the account, host:port and the settings key, exits 4 on every run and
sends everything once when fixed; a stopped account is named in the run's output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from cli_runner import Cli
from ledger_rows import ledger_rows
from scenario import Shop, shop
from smtp_server import (
    DROP,
    HOST,
    PASSWORD,
    USER,
    Received,
    RecordingHandler,
    SmtpServer,
    TestCa,
    email_section,
)

AS_OF = "2026-11-27T08:00"
LATER = "2026-11-27T09:00"  # past the first back-off of a deferred row
ACCOUNT = "haupt"  # not "default": the output must name the account, not a fixed word


def notes(s: Shop, count: int) -> list[str]:
    """``count`` printed delivery notes, one customer each; their addresses in send order."""
    addresses = []
    for i in range(count):
        address = f"k{i}@example.ch"
        s.delivery_note(s.order(s.customer(email=address)), datetime(2026, 11, 26, 15, i))
        addresses.append(address)
    return addresses


def rcpts(messages: list[Received]) -> list[str]:
    return [r for m in messages for r in m.rcpt_tos]


def one_account(account: dict[str, Any]) -> dict[str, Any]:
    """The ``[email]`` section with ``account`` as the only (and default) account."""
    values = {k: v for k, v in account.items() if v is not None}  # a new table: no removals
    return {"default_account": ACCOUNT, "accounts": {"default": None, ACCOUNT: values}}


def plain(server: SmtpServer, **overrides: Any) -> dict[str, Any]:
    return {**email_section(server)["accounts"]["default"], "connections": 1, **overrides}


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_421_at_rcpt_counts_like_a_451_three_in_a_row_stop_the_account(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    addresses = notes(shop(erp_backend), 6)
    handler = smtp_server.handler
    handler.rcpt_answers[addresses[0]] = "421 4.7.0 busy"  # before DATA
    for address in addresses[1:]:
        handler.data_answers[address] = "451 4.3.0 try later"  # after DATA
    config = write_config(email=one_account(plain(smtp_server)))

    result = cli("--json", "-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 1, result.stderr
    assert smtp_server.messages == []
    rows = ledger_rows(config, "recipient", "status")
    assert len(rows) == 3
    assert rows == [(a, "deferred") for a in addresses[:3]]  # the 421 counted as the first
    [report] = result.json()
    assert report["counts"]["deferred"] == 6
    held = [i for i in report["items"] if i["recipient"] in addresses[3:]]
    assert len(held) == 3
    for item in held:  # unclaimed: no ledger row, a reason that names the account
        assert item["status"] == "deferred"
        assert f"'{ACCOUNT}'" in item["reason"]
    assert "3 temporary failures in a row" in result.stderr

    handler.rcpt_answers.clear()
    handler.data_answers.clear()
    retry = cli("-c", config, "shipping-confirmations", "--as-of", LATER)
    assert retry.exit_code == 0, retry.stderr
    assert len(smtp_server.messages) == 6
    assert Counter(rcpts(smtp_server.messages)) == Counter(addresses)


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_a_drop_after_the_body_is_reported_as_the_named_account_stopped(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    addresses = notes(shop(erp_backend), 5)
    smtp_server.handler.data_answers[addresses[0]] = DROP
    config = write_config(email=one_account(plain(smtp_server)))

    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert result.exit_code == 1, result.stderr
    assert len(smtp_server.handler.dropped) == 1
    assert smtp_server.messages == []
    assert ledger_rows(config, "recipient", "status") == [(addresses[0], "unknown")]
    stopped = [line for line in result.stderr.splitlines() if "stopped" in line]
    assert len(stopped) >= 1, result.stderr
    assert any(f"'{ACCOUNT}'" in line for line in stopped), result.stderr


# --- configuration-level failures ---------------------------------------------------------


@pytest.fixture
def idle_server() -> Iterator[SmtpServer]:
    """A plain server that is not started: its port refuses connections until ``start()``."""
    server = SmtpServer(RecordingHandler())
    yield server
    server.stop()


def tls_account(server: SmtpServer, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "transport": "smtp", "directory": None, "host": "localhost", "port": server.port,
        "security": "starttls", "username": USER, "password": PASSWORD, "timeout": 5,
        "connections": 1, "from": "Muster Handel AG <shop@example.ch>",
    }  # fmt: skip
    values.update(overrides)
    return values


FAULTS = ["refused", "auth-refused", "no-starttls", "untrusted-certificate"]


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("fault", FAULTS)
def test_a_configuration_level_failure_claims_nothing_and_exits_4_until_fixed(
    erp_backend: Any, write_config: Any, cli: Cli, fault: str, idle_server: SmtpServer,
    smtp_server: SmtpServer, tls_server: SmtpServer, test_ca: TestCa,
) -> None:  # fmt: skip
    addresses = notes(shop(erp_backend), 3)
    ca = str(test_ca.ca_file)
    server: SmtpServer
    if fault == "refused":
        server, where, key = idle_server, f"{HOST}:{idle_server.port}", "host"
        broken, fixed = plain(idle_server), plain(idle_server)
    elif fault == "auth-refused":
        server, where, key = tls_server, f"localhost:{tls_server.port}", "username/password"
        broken = tls_account(tls_server, password="wrong-pw", ca_file=ca)
        fixed = tls_account(tls_server, ca_file=ca)
    elif fault == "no-starttls":
        server, where, key = smtp_server, f"{HOST}:{smtp_server.port}", "security"
        broken, fixed = plain(smtp_server, security="starttls"), plain(smtp_server)
    else:
        server, where, key = tls_server, f"localhost:{tls_server.port}", "ca_file"
        broken, fixed = tls_account(tls_server), tls_account(tls_server, ca_file=ca)

    config = write_config(email=one_account(broken))
    for _ in range(2):  # no back-off that turns the second run into a silent exit 0
        result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
        assert result.exit_code == 4, result.stderr
        assert ledger_rows(config) == []
        assert f"'{ACCOUNT}'" in result.stderr
        assert where in result.stderr
        assert f"email.accounts.{ACCOUNT}.{key}" in result.stderr
        assert "wrong-pw" not in result.stderr + result.stdout
    assert server.messages == []

    if fault == "refused":
        idle_server.start()
    config = write_config(email=one_account(fixed))
    third = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)

    assert third.exit_code == 0, third.stderr
    assert len(server.messages) == 3
    assert Counter(rcpts(server.messages)) == Counter(addresses)
    assert [status for (status,) in ledger_rows(config, "status")] == ["sent"] * 3
    again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert again.exit_code == 0, again.stderr
    assert len(server.messages) == 3
