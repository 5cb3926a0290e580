"""The users' ground (issue 21): hostile ERP rows, one row never stops a run.

Through the whole CLI on the four backends: names the standard library folds wrongly are
delivered, values a converter cannot read make their row ``failed`` with the column named,
the clean rows beside them go out, the run record is closed and the alert mail is sent.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cli_runner import Cli
from erp_backends import (
    MARIADB_ODBC,
    POSTGRESQL_ODBC,
    ErpBackend,
    create_schema,
)
from ledger_rows import ledger_rows
from scenario import Shop, shop
from smtp_server import Received, RecordingHandler, SmtpServer, email_section

from proit_notify.db import Database, Dialect, connect_odbc
from proit_notify.runner import RECHECK_MAX_AGE

AS_OF = "2026-11-27T08:00"
PRINTED = datetime(2026, 11, 26, 9, 0)
ALERT_TO = "it@shop.example"

#: display names that made the email package's parser raise (exit 70 on every run) or
#: refuse the message for good, as a customer name or a contact name
NAMES = [
    '(Einkauf) (Einkauf) . (Einkauf) (Einkauf) & GmbH "Der Boss" . \\ (Einkauf) \\',
    '. "Der Boss" "Der Boss" \' < "Der Boss" ; \\ "Der Boss" Hans Meier z.Hd.',
    "Schweizerische Bundesbahnen SBB, Infrastruktur, Anlagen und Technologie (AT-FW)",
]


def note_with_lines(s: Shop, customer: dict[str, Any], lines: list[str], **order: Any) -> int:
    """A printed delivery note whose lines have these texts as description (and, with the
    quantity mapped onto the description, as quantity)."""
    note = s.delivery_note(s.order(s.customer(**customer), **order), PRINTED, lines=0)
    for n, text in enumerate(lines, start=1):
        s.backend.insert(
            "delivery_note_lines",
            delivery_note_id=note,
            line_no=n,
            article_no=f"ART-{n}",
            description=text,
            quantity=Decimal(1),
            unit="Stk",
        )
    return note


def alerts(server: SmtpServer) -> list[Received]:
    return [m for m in server.messages if m.rcpt_tos == (ALERT_TO,)]


def run_records(config: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(config.parent / "ledger.sqlite") as conn:
        return conn.execute(
            "SELECT job, ended_at, exit_code, n_sent, n_failed FROM proit_notify_ledger_runs"
        ).fetchall()


def test_names_the_email_package_breaks_on_are_delivered_and_the_run_exits_0(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    for n, name in enumerate(NAMES):
        s.delivery_note(s.order(s.customer(name=name, email=f"k{n}@example.ch")), PRINTED)
    s.delivery_note(s.order(s.customer(email="sauber@example.ch")), PRINTED)
    config = write_config(email=email_section(smtp_server), alerts={"to": [ALERT_TO]})

    dry = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "4 would be sent, 0 would fail" in dry.stdout

    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 0, run.stderr
    assert len(smtp_server.messages) == 4
    received = {m.rcpt_tos[0]: m for m in smtp_server.messages}
    assert set(received) == {"k0@example.ch", "k1@example.ch", "k2@example.ch", "sauber@example.ch"}
    for n, name in enumerate(NAMES):
        [address] = received[f"k{n}@example.ch"].message["To"].addresses
        assert (address.display_name, address.addr_spec) == (name, f"k{n}@example.ch")
    assert alerts(smtp_server) == []
    again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert again.exit_code == 0
    assert len(smtp_server.messages) == 4  # never twice


#: the quantity read from the description column: a text an ERP lets people type
BAD_QUANTITIES = {"2 Stk": "is not a number", "zwei": "is not a number",
                  "1'234.50": "is not a number", "1e300": "is not a usable number"}  # fmt: skip


def test_values_a_converter_cannot_read_fail_their_row_and_the_rest_goes_out(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    # an old ERP keeps quantities and dates as text: the mapping reads them from text columns
    q = erp_backend.dialect.quote
    columns = {
        "delivery_note_lines": {"quantity": {"sql": q("Bezeichnung")}},
        "orders": {"order_date": {"sql": q("Shop")}},
    }
    clean_before = note_with_lines(s, {"email": "vorher@example.ch"}, ["2"], shop="2026-11-01")
    bad: dict[int, str] = {}
    for text, why in BAD_QUANTITIES.items():
        note = note_with_lines(s, {"email": f"q{len(bad)}@example.ch"}, ["1", text])
        bad[note] = f"delivery_note_lines.quantity = {text!r} {why}"
    date_note = note_with_lines(s, {"email": "datum@example.ch"}, ["3"], shop="31.09.2026")
    bad[date_note] = "orders.order_date = '31.09.2026' is not a date"
    clean_after = note_with_lines(s, {"email": "nachher@example.ch"}, ["4"])
    config = write_config(
        erp={"columns": columns}, email=email_section(smtp_server), alerts={"to": [ALERT_TO]}
    )

    dry = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF, "--dry-run")
    assert dry.exit_code == 1, dry.stderr
    [planned] = dry.json()
    assert planned["counts"]["planned"] == 2
    assert planned["counts"]["failed"] == len(bad)

    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 1, run.stderr
    assert "internal error" not in run.stderr
    customers = [m.rcpt_tos for m in smtp_server.messages if m.rcpt_tos != (ALERT_TO,)]
    assert sorted(customers) == [("nachher@example.ch",), ("vorher@example.ch",)]
    rows = {r.key: r for r in ledger_rows(config)}
    assert rows[f"shipping:{clean_before}"].status == "sent"
    assert rows[f"shipping:{clean_after}"].status == "sent"
    for note, said in bad.items():
        row = rows[f"shipping:{note}"]
        assert row.status == "failed", row
        assert said in row.detail
        # the column to fix is named, and the way back
        assert "erp.columns" in row.detail
        assert f"ledger resolve shipping:{note} --resend" in row.detail
    # the run record is closed with the run's exit code; the alert names the failed rows
    [(job, ended, code, sent, failed)] = run_records(config)
    assert (job, code, sent, failed) == ("shipping-confirmations", 1, 2, len(bad))
    assert ended is not None
    [alert] = alerts(smtp_server)
    body = str(alert.message.get_body(("plain",)).get_content())
    for note in bad:
        assert f"failed   shipping:{note}" in body
    # a failed row is not tried again by the next run (it waits for a person)
    again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert again.exit_code == 0, again.stderr
    assert len([m for m in smtp_server.messages if m.rcpt_tos != (ALERT_TO,)]) == 2
    # the way back: the value fixed in the ERP, the row released, the next run sends it
    fixed = next(iter(bad))
    erp_backend.admin.execute(
        f"UPDATE {erp_backend.dialect.quote('Lieferschein Positionen')} SET "
        f"{erp_backend.dialect.quote('Bezeichnung')} = '2' WHERE "
        f"{erp_backend.dialect.quote('LsId')} = ?",
        [fixed],
    )
    erp_backend.admin.commit()
    resolved = cli("-c", config, "ledger", "resolve", f"shipping:{fixed}", "--resend")
    assert resolved.exit_code == 0, resolved.stderr
    after = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert after.exit_code == 0, after.stderr
    customers = [m.rcpt_tos for m in smtp_server.messages if m.rcpt_tos != (ALERT_TO,)]
    assert customers.count(("q0@example.ch",)) == 1
    assert {r.key: r.status for r in ledger_rows(config)}[f"shipping:{fixed}"] == "sent"


@pytest.mark.parametrize("erp_backend", ["sqlite", "sqlite-odbc"], indirect=True)
def test_an_order_number_of_megabytes_and_text_in_a_number_column_fail_their_row(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)  # SQLite keeps any value in any column, as old ERPs do
    huge = s.delivery_note(s.order(s.customer(email="gross@example.ch"), number="9" * 2_000_000),
                           PRINTED)  # fmt: skip
    clean = s.delivery_note(s.order(s.customer(email="ok@example.ch")), PRINTED)
    cid = s.customer(email="rechnung@example.ch")
    invoice = s.invoice(None, cid, open_amount="1'234.50", invoice_date=datetime(2026, 11, 1))
    config = write_config(email=email_section(smtp_server))

    run = cli("-c", config, "run-all", "--as-of", AS_OF)
    assert run.exit_code == 1, run.stderr
    assert "internal error" not in run.stderr
    assert [m.rcpt_tos for m in smtp_server.messages] == [("ok@example.ch",)]
    assert max(len(m.raw) for m in smtp_server.messages) < 20_000
    rows = {r.key: r for r in ledger_rows(config)}
    assert rows[f"shipping:{clean}"].status == "sent"
    assert rows[f"shipping:{huge}"].status == "failed"
    assert "orders.number = '9999" in rows[f"shipping:{huge}"].detail
    assert "longer than 1,000 characters" in rows[f"shipping:{huge}"].detail
    assert len(rows[f"shipping:{huge}"].detail) < 1_000
    assert rows[f"prepayment:{invoice}:1"].status == "failed"
    assert "invoices.open_amount = \"1'234.50\" is not a number" in (
        rows[f"prepayment:{invoice}:1"].detail
    )
    # its series does not go on failing: no new reminder until a person resolves it
    later = cli("-c", config, "prepayment-reminders", "--as-of", "2026-12-20T08:00")
    assert later.exit_code == 0, later.stderr
    assert len(ledger_rows(config, prefix=f"prepayment:{invoice}:")) == 1


@pytest.mark.parametrize("erp_backend", ["sqlite"], indirect=True)
def test_text_that_is_not_utf8_fails_its_row_not_the_job(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    broken = s.delivery_note(s.order(s.customer(email="latin1@example.ch")), PRINTED)
    clean = s.delivery_note(s.order(s.customer(email="ok@example.ch")), PRINTED)
    # an old import wrote Latin-1 bytes into a text column: "Müller" as 4D FC 6C 6C 65 72
    erp_backend.admin.execute(
        'UPDATE [Kunden] SET [Firma] = CAST(X\'4DFC6C6C6572\' AS TEXT) WHERE [EMail] = ?',
        ["latin1@example.ch"],
    )
    erp_backend.admin.commit()
    config = write_config(email=email_section(smtp_server))

    run = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
    assert run.exit_code == 1, run.stderr
    assert [m.rcpt_tos for m in smtp_server.messages] == [("ok@example.ch",)]
    rows = {r.key: r for r in ledger_rows(config)}
    assert rows[f"shipping:{clean}"].status == "sent"
    assert rows[f"shipping:{broken}"].status == "failed"
    assert "customers.name" in rows[f"shipping:{broken}"].detail
    assert "not valid UTF-8" in rows[f"shipping:{broken}"].detail
    assert "column 'Firma' of table 'Kunden'" in rows[f"shipping:{broken}"].detail


# --- objections in every spelling (item 5) ------------------------------------------------

PORTAL = "https://www.example.ch/bewertung"
NFD = "Ju\u0308rg@example.ch"  # a decomposed ü, as some systems store it


def test_objections_hold_in_every_spelling_of_an_address_or_number(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    # (ERP value of the customer, what the person typed for optout add)
    objected = [
        ({"phone": "079 123 45 67"}, "+41 79 123 45 67"),
        ({"phone": "+41 78 765 43 21"}, "078 765 43 21"),
        ({"phone": "0041781871326"}, "078 187 13 26"),
        ({"email": "kunde@xn--bcher-kva.ch"}, "kunde@bücher.ch"),
        ({"email": NFD}, "jürg@example.ch"),
        ({"email": "Mueller@Example.CH"}, "mueller@example.ch"),
    ]
    printed = datetime(2026, 11, 20, 9, 0)
    for n, (fields, _) in enumerate(objected):
        values = {"email": f"objekt{n}@example.ch", **fields}
        s.delivery_note(s.order(s.customer(**values), review_mail=1), printed)
    s.delivery_note(s.order(s.customer(email="gern@example.ch"), review_mail=1), printed)
    review = {"delay_days": 0, "on_delivery_note_print": True, "portal_url": PORTAL}
    config = write_config(email=email_section(smtp_server), review=review)

    stored = []
    for _, typed in objected:
        added = cli("-c", config, "optout", "add", typed)
        assert added.exit_code == 0, added.stderr
        stored.append(added.stdout.split(":", 1)[0])
    # the stored form is printed: E.164, the domain in ASCII, NFC
    assert stored == [
        "+41791234567",
        "+41787654321",
        "+41781871326",
        "kunde@xn--bcher-kva.ch",
        "jürg@example.ch",
        "mueller@example.ch",
    ]
    for nonsense in ("nonsense", "079", "a@", "@example.ch"):
        refused = cli("-c", config, "optout", "add", nonsense)
        assert refused.exit_code == 2, nonsense
        assert "neither an email address nor a valid phone number" in refused.stderr
    listed = cli("-c", config, "optout", "list", "079 187 13 26")
    assert listed.exit_code == 1  # another number: not on the list
    assert cli("-c", config, "optout", "list", "+41781871326").exit_code == 0

    run = cli("-c", config, "--json", "review-requests", "--as-of", "2026-11-20T10:00")
    assert run.exit_code == 0, run.stderr
    assert [m.rcpt_tos for m in smtp_server.messages] == [("gern@example.ch",)]
    [report] = run.json()
    skipped = [i for i in report["items"] if i["status"] == "skipped"]
    assert len(skipped) == len(objected)
    assert all("opt-out list" in i["reason"] for i in skipped)


# --- several company databases on one server (item 6) ---------------------------------------

COMPANY_B = {"mariadb": "proit_company_b", "postgresql": "company_b"}


@contextmanager
def company_b(backend: ErpBackend) -> Iterator[ErpBackend]:
    """A second company's ERP on the same server: another database (MariaDB) or another
    schema (PostgreSQL), with the same German tables, its connection naming it."""
    name = COMPANY_B[backend.name]
    if backend.dialect is Dialect.MYSQL:
        backend.admin.execute(f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4")
        conn_str = MARIADB_ODBC.replace("Database=test", f"Database={name}")
    else:
        backend.admin.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        conn_str = f"{POSTGRESQL_ODBC};ConnSettings=SET search_path TO {name}"
    backend.admin.commit()
    admin = connect_odbc(conn_str, login_timeout=5)
    try:
        create_schema(admin)
        other = ErpBackend(backend.name, admin.dialect, admin, {"odbc": conn_str})
        other.empty_tables()
        yield other
    finally:
        admin.close()


def drop_ledger_tables(db: Database) -> None:
    for table in ("proit_notify_ledger", "proit_notify_ledger_runs", "proit_notify_ledger_optout"):
        db.execute(f"DROP TABLE IF EXISTS {db.dialect.quote(table)}")
    db.commit()


@pytest.mark.parametrize("erp_backend", ["mariadb", "postgresql"], indirect=True)
def test_two_company_databases_on_one_server_keep_their_own_ledgers(
    erp_backend: ErpBackend, write_config: Any, smtp_server: SmtpServer, cli: Cli,
    tmp_path: Path,
) -> None:  # fmt: skip
    with company_b(erp_backend) as other:
        drop_ledger_tables(erp_backend.admin)  # company A runs for the first time
        ledger = {"erp": True, "sqlite": None}
        b = shop(other)
        b.delivery_note(b.order(b.customer(email="b@firma-b.example")), PRINTED)
        config_b = write_config(
            email=email_section(smtp_server), ledger=ledger, erp={"odbc": other.connection["odbc"]}
        )
        moved = config_b.parent / "b"
        moved.mkdir()
        config_b = config_b.rename(moved / "proit-notify.toml")
        assert cli("-c", config_b, "shipping-confirmations", "--as-of", AS_OF).exit_code == 0
        # company B holds the ledger tables now; company A's database has none yet
        assert other.admin.has_table("proit_notify_ledger")
        assert not erp_backend.database().has_table("proit_notify_ledger")

        a = shop(erp_backend)
        a.delivery_note(a.order(a.customer(email="a@firma-a.example")), PRINTED)
        config_a = write_config(email=email_section(smtp_server), ledger=ledger)
        first = cli("-c", config_a, "shipping-confirmations", "--as-of", AS_OF)
        assert first.exit_code == 0, first.stderr
        assert erp_backend.database().has_table("proit_notify_ledger")
        for config in (config_a, config_b, config_a):  # again: nothing twice
            again = cli("-c", config, "shipping-confirmations", "--as-of", AS_OF)
            assert again.exit_code == 0, again.stderr
            assert "0 sent" in again.stdout
        assert sorted(m.rcpt_tos for m in smtp_server.messages) == [
            ("a@firma-a.example",),
            ("b@firma-b.example",),
        ]
        # each company's ledger holds its own row only
        for db in (erp_backend.database(), other.admin):
            table = db.dialect.quote("proit_notify_ledger")
            rows = list(db.stream(f"SELECT recipient FROM {table}"))
            db.rollback()
            assert len(rows) == 1
        drop_ledger_tables(other.admin)


# --- an ERP that goes away mid-run (item 8) ---------------------------------------------------


@pytest.mark.parametrize("erp_backend", ["postgresql"], indirect=True)
def test_an_erp_lost_mid_run_still_reports_what_was_sent_and_which_database_failed(
    erp_backend: ErpBackend, write_config: Any, cli: Cli
) -> None:
    s = shop(erp_backend)
    for n in range(3):
        s.delivery_note(s.order(s.customer(email=f"k{n}@example.ch")), PRINTED)
    admin = erp_backend.admin

    class ErpGoesAway(RecordingHandler):
        """After the first message arrived, the ERP server drops the tool's connections
        (a restart, a failover); the answer comes late enough that the next message's
        re-check must ask the ERP again."""

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if not self.messages:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                admin.commit()
                await asyncio.sleep(RECHECK_MAX_AGE + 0.5)
            return await super().handle_DATA(server, session, envelope)

    relay = SmtpServer(ErpGoesAway())
    relay.start()
    try:
        config = write_config(email=email_section(relay), alerts={"to": [ALERT_TO]})
        run = cli("-c", config, "--json", "shipping-confirmations", "--as-of", AS_OF)
    finally:
        relay.stop()
    assert run.exit_code == 4, run.stderr
    [report] = run.json()  # the JSON object is printed, with what was done and the error
    assert report["counts"]["sent"] == 1
    assert [i["status"] for i in report["items"]] == ["sent"]
    assert report["error"].startswith("ERP database error on PostgreSQL")
    assert "ERP database error on PostgreSQL" in run.stderr
    # the run record is closed with exit 4 and the sent count; the alert went out
    [(job, ended, code, sent, _)] = run_records(config)
    assert (job, code, sent) == ("shipping-confirmations", 4, 1)
    assert ended is not None
    [alert] = [m for m in relay.messages if m.rcpt_tos == (ALERT_TO,)]
    assert "ERP database error on PostgreSQL" in str(alert.message.get_body(("plain",)))
