"""What ERP text and shared folders can do to our outputs (issue 21, item 7).

ERP text with terminal escape sequences (OSC 52 clipboard writes, ESC[2J, C1 controls) is
shown escaped in ``history``, ``drafts show`` and the tables; CR/LF in an order number
cannot forge a line of the alert mail or of ``history``; the log file is the owner's only;
the log file, the ledger and the lock file are never written through a symbolic link.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, cli
from erp_backends import ErpBackend
from scenario import shop
from smtp_server import SmtpServer, email_section, smtp_server

from proit_notify import cli as cli_module

__all__ = ["cli", "smtp_server"]  # fixtures

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 9, 0)
ALERT_TO = "it@shop.example"
#: what a terminal obeys: clipboard write (OSC 52), clear screen, a C1 CSI, a bell
ESCAPES = "\x1b]52;c;cm0gLXJmIH4=\x07Müller\x1b[2J AG\x9b31m"
RAW = ("\x1b]52", "\x1b[2J", "\x9b", "\x07")  # (a terminal run has its own \x1b[?25l)

pytestmark = pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)


def on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for console in (cli_module.out, cli_module.err):
        monkeypatch.setattr(console, "_force_terminal", True)


@pytest.mark.parametrize("terminal", [False, True], ids=["redirected", "terminal"])
def test_escape_sequences_in_erp_text_never_reach_the_terminal(
    erp_backend: ErpBackend,
    write_config: Any,
    smtp_server: SmtpServer,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    terminal: bool,
) -> None:
    if terminal:
        on_a_terminal(monkeypatch)
    s = shop(erp_backend)
    # an order number with escapes: its confirmation is refused (the subject would carry
    # them), and the ledger keeps the document as the ERP has it
    s.delivery_note(s.order(s.customer(), number="A-\x1b[2J1\x9b"), PRINTED)
    # a name with escapes in a delivery-date notice kept as a draft: its text holds them
    order = s.order(s.customer(name=ESCAPES), delivered=False, order_date=date(2026, 11, 20),
                    delivery_date=date(2026, 12, 5))  # fmt: skip
    config = write_config(
        email=email_section(smtp_server),
        delivery_date={"edit_before_send": True, "notify_existing": True},
    )
    outputs = []
    run = cli("-c", config, "run-all", "--as-of", AS_OF)
    assert run.exit_code == 1, run.stderr
    outputs.append(run)
    for args in (["history"], ["--json", "history"], ["drafts", "list", "--as-of", AS_OF],
                 ["drafts", "show", f"delivery_date:{order}:1"], ["--json", "drafts", "show",
                 f"delivery_date:{order}:1"], ["status"]):  # fmt: skip
        result = cli("-c", config, *args)
        assert result.exit_code in (0, 1), (args, result.stderr)
        outputs.append(result)
    shown = cli("-c", config, "drafts", "show", f"delivery_date:{order}:1")
    assert "Müller" in shown.stdout  # the text is there, its escapes shown as text
    assert "\\x1b]52" in shown.stdout
    for result in outputs:
        for raw in RAW:
            assert raw not in result.stdout
            assert raw not in result.stderr


def test_a_line_break_in_an_order_number_forges_no_line_of_the_alert_or_history(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    # its confirmation fails (an invalid address): the row is listed in the alert mail
    s.delivery_note(
        s.order(s.customer(email="kunde@"), number="A-1\r\nFORGED: all is well"), PRINTED
    )
    config = write_config(email=email_section(smtp_server), alerts={"to": [ALERT_TO]})
    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 1
    [alert] = smtp_server.messages
    text = str(alert.message.get_body(("plain",)).get_content())
    assert "A-1\\r\\nFORGED" in text
    assert not any(line.lstrip().startswith("FORGED") for line in text.splitlines())
    history = cli("-c", config, "history")
    assert "A-1\\r\\nFORGED" in history.stdout
    assert not any(line.startswith("FORGED") for line in history.stdout.splitlines())


@pytest.mark.skipif(os.name != "posix", reason="file modes and links are POSIX")
def test_the_log_file_is_the_owners_only(
    erp_backend: ErpBackend, write_config: Any, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), PRINTED)
    log = tmp_path / "logs" / "proit-notify.log"
    config = write_config(service={"log_file": str(log)})
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    assert "kunde1@example.ch" in log.read_text()
    assert log.stat().st_mode & 0o077 == 0
    log.chmod(0o644)  # left readable by an earlier version: tightened by the next run
    assert cli("-c", config, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
    assert log.stat().st_mode & 0o077 == 0


@pytest.mark.skipif(os.name != "posix", reason="file modes and links are POSIX")
@pytest.mark.parametrize("what", ["log_file", "ledger", "lock"])
def test_no_file_is_written_through_a_symbolic_link(
    erp_backend: ErpBackend, write_config: Any, cli: Cli, tmp_path: Path, what: str
) -> None:
    s = shop(erp_backend)
    s.delivery_note(s.order(s.customer()), PRINTED)
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim.txt"  # a file of someone else's the link points at
    victim.write_text("precious\n")
    link = shared / {"log_file": "n.log", "ledger": "ledger.sqlite", "lock": "n.lock"}[what]
    link.symlink_to(victim)
    sections: dict[str, Any] = {
        "log_file": {"service": {"log_file": str(link)}},
        "ledger": {"ledger": {"sqlite": str(link)}},
        "lock": {"ledger": {"lock_file": str(link)}},
    }[what]
    config = write_config(**sections)
    result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    assert "is a symbolic link: refused" in result.stderr
    assert victim.read_text() == "precious\n"
    assert victim.stat().st_size == len("precious\n")
    assert list((tmp_path / "outbox").glob("*.eml")) == []  # nothing was sent
