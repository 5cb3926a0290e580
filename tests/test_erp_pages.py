"""Job selections are read in pages, each complete before its messages go out (issue 14).

An open cursor while a run waits on a mail server would block the ERP's writers (locking
READ COMMITTED on SQL Server; SQLite's file lock here, which makes it testable).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli, cli
from erp_backends import ErpBackend
from scenario import shop
from smtp_server import RecordingHandler, SmtpServer, email_section

from proit_notify.ledger import Row
from proit_notify.redaction import odbc_pairs

__all__ = ["cli"]

AS_OF = "2026-11-27T08:00"


def test_pages_give_every_row_once_in_key_order(erp_backend: ErpBackend) -> None:
    s = shop(erp_backend)
    ids = [s.customer(name=f"Seite {i}") for i in range(7)]
    s.customer(name="Andere")
    erp = erp_backend.erp()
    selection = "SELECT c.id AS customer_id, c.name FROM {customers} c WHERE c.name <> ?"
    try:
        rows = list(erp.pages(selection, ["Andere"], key="customer_id", size=3))  # 3, 3, 1
        counted = erp.count(selection, ["Andere"])  # the progress line's total
    finally:
        erp.close()
    assert counted == 7
    assert [int(r["customer_id"]) for r in rows] == sorted(ids)
    assert [r["name"] for r in rows] == [f"Seite {i}" for i in range(7)]


class WritingHandler(RecordingHandler):
    """While a message is received, the ERP books a payment (another connection writes)."""

    def __init__(self, erp_file: Path) -> None:
        super().__init__()
        self.erp_file = erp_file
        self.writes: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        try:
            with sqlite3.connect(self.erp_file, timeout=0.5) as conn:
                conn.execute("UPDATE Kunden SET Firma = Firma")
            self.writes.append("ok")
        except sqlite3.OperationalError as exc:
            self.writes.append(str(exc))
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("erp_backend", ["sqlite", "sqlite-odbc"], indirect=True)
def test_the_erp_can_be_written_while_a_run_waits_on_the_mail_server(
    erp_backend: ErpBackend, write_config: Any, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    for i in range(5):
        s.delivery_note(s.order(s.customer(email=f"k{i}@example.ch")), datetime(2026, 11, 26, 9))
    conn = erp_backend.connection
    erp_file = Path(
        conn["sqlite"] if "sqlite" in conn else dict(odbc_pairs(conn["odbc"]))["Database"]
    )
    assert erp_file.exists()
    server = SmtpServer(WritingHandler(erp_file))
    server.start()
    try:
        config = write_config(email=email_section(server))
        result = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    finally:
        server.stop()
    assert result.exit_code == 0, result.stderr
    handler = server.handler
    assert isinstance(handler, WritingHandler)
    assert handler.writes == ["ok"] * 5  # never "database is locked"


def test_a_claim_made_a_deadlock_victim_is_tried_again(tmp_path: Path) -> None:
    from proit_notify.errors import DeadlockError
    from proit_notify.ledger import Ledger
    from proit_notify.settings import RetrySettings

    ledger = Ledger.open_sqlite(tmp_path / "ledger.sqlite", "proit_notify_ledger", RetrySettings())
    real = ledger.db.insert_unique
    victims = iter([True, True])  # InnoDB picks this claim twice, then lets it through

    def insert(sql: str, params: Any) -> bool:
        if next(victims, False):
            raise DeadlockError("Deadlock found when trying to get lock (1213)")
        return real(sql, params)

    ledger.db.insert_unique = insert  # type: ignore[method-assign]
    row = Row("shipping:1", "email", "shipping", "LS 1", "a@example.ch", "default")
    now = datetime(2026, 11, 27, 7, tzinfo=UTC)
    assert ledger.claim(row, now) is True
    assert [e.status for e in ledger.entries("shipping:1")] == ["sending"]
    assert ledger.claim(row, now) is False  # the second claim meets the first: no deadlock
    ledger.close()
