"""The embedded demo: a realistic ERP in the logical schema, and a config that loads."""

from __future__ import annotations

import sqlite3
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from proit_notify import db as erp_db
from proit_notify import erp
from proit_notify.demo import create_demo
from proit_notify.errors import UsageError
from proit_notify.phones import to_e164_mobile
from proit_notify.settings import load_settings

TODAY = date(2026, 11, 27)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("d") / "proit-notify-demo"
    started = time.perf_counter()
    create_demo(directory, today=TODAY)
    assert time.perf_counter() - started < 3
    return directory


def rows(directory: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(directory / "erp.sqlite")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def scalar(directory: Path, sql: str) -> Any:
    return rows(directory, sql)[0][0]


def test_creates_erp_config_and_outbox(tmp_path: Path) -> None:
    summary = create_demo(tmp_path / "demo", today=TODAY)
    assert summary.erp_path == tmp_path / "demo" / "erp.sqlite"
    assert summary.erp_path.is_file()
    assert summary.config_path == tmp_path / "demo" / "proit-notify.toml"
    assert summary.outbox.is_dir()
    assert summary.customers >= 500
    assert summary.orders >= 2000
    assert summary.orders == scalar(summary.directory, "SELECT COUNT(*) FROM orders")
    assert summary.invoices == scalar(summary.directory, "SELECT COUNT(*) FROM invoices")


def test_same_seed_same_data(tmp_path: Path) -> None:
    create_demo(tmp_path / "a", today=TODAY)
    create_demo(tmp_path / "b", today=TODAY)
    create_demo(tmp_path / "c", today=TODAY, seed=8)
    dump = "SELECT * FROM customers ORDER BY id"
    assert rows(tmp_path / "a", dump) == rows(tmp_path / "b", dump)
    assert rows(tmp_path / "a", dump) != rows(tmp_path / "c", dump)


def test_config_loads_and_erp_passes_check(demo: Path) -> None:
    settings = load_settings(demo / "proit-notify.toml")
    assert settings.erp.sqlite == demo / "erp.sqlite"
    assert settings.ledger_path == demo / "ledger.sqlite"
    assert settings.sms.phone_field == "mobile"
    assert settings.email.default_account == "demo"
    assert set(settings.email.shop_accounts) == {"SHOP-CH", "SHOP-DE"}
    for account in settings.email.accounts.values():
        assert account.transport == "file"
        assert account.directory == demo / "outbox"
    assert settings.review.portal_url
    db = erp_db.connect(settings.erp)
    try:
        assert erp.Erp(db, settings.erp, settings.sms.phone_field).check() == []
    finally:
        db.close()


def test_names_have_umlauts_and_firms(demo: Path) -> None:
    names = [r[0] for r in rows(demo, "SELECT name FROM customers")]
    text = " ".join(names)
    for letter in "äöüß":
        assert letter in text
    assert any(n.endswith((" AG", " GmbH")) for n in names)
    assert len(names) >= 500


def test_customer_mix(demo: Path) -> None:
    by_type = "SELECT COALESCE(info_type, '<null>'), COUNT(*) FROM customers GROUP BY 1"
    info = dict(rows(demo, by_type))
    assert set(info) == {"email", "sms", "email_sms", "none", "", "<null>"}
    assert info["email"] > sum(info.values()) / 2
    countries = {r[0] for r in rows(demo, "SELECT DISTINCT country FROM customers")}
    assert countries == {"CH", "DE", "AT"}
    languages = dict(rows(demo, "SELECT language, COUNT(*) FROM customers GROUP BY 1"))
    # as an ERP holds them: codes, letters, names, a locale (README "Templates")
    assert set(languages) == {"de", "D", "fr", "F", "Français", "I", "Italiano", "it_CH", "en", "E"}
    assert languages["de"] > languages["F"] > languages["en"]
    emails = [r[0] for r in rows(demo, "SELECT email FROM customers")]
    assert "hans.muster@" in emails
    assert any(e in (None, "") for e in emails)
    assert scalar(demo, "SELECT COUNT(*) FROM contacts WHERE email IS NULL") > 0
    assert scalar(demo, "SELECT COUNT(*) FROM contacts WHERE email IS NOT NULL") > 0


def test_phone_numbers_as_people_write_them(demo: Path) -> None:
    found = rows(demo, "SELECT mobile, country FROM customers")
    checked = [to_e164_mobile(m, c) for m, c in found if m]
    assert sum(c.ok for c in checked) > len(found) / 2  # most are valid mobiles
    assert any(not c.ok for c in checked)  # landlines are refused
    assert any(m is None or m == "" for m, _ in found)
    written = {m for m, _ in found if m}
    assert any(m.startswith("+41 ") for m in written)
    assert any(m.startswith("0041") for m in written)
    assert any(m.startswith("+49 ") for m in written)


def test_orders_shops_and_deliveries(demo: Path) -> None:
    shops = dict(rows(demo, "SELECT COALESCE(shop, '<phone>'), COUNT(*) FROM orders GROUP BY 1"))
    assert set(shops) == {"SHOP-CH", "SHOP-DE", "<phone>"}
    assert {r[0] for r in rows(demo, "SELECT DISTINCT review_mail FROM orders")} == {0, 1, None}
    assert scalar(demo, "SELECT COUNT(*) FROM orders WHERE auto_processed_at IS NOT NULL") > 0
    assert scalar(demo, "SELECT MIN(order_date) FROM orders") >= "2026-07-30"
    assert scalar(demo, "SELECT MAX(order_date) FROM orders") <= "2026-11-27 23:59:59"
    # open orders with a promised delivery date
    assert scalar(demo, "SELECT COUNT(*) FROM orders WHERE delivery_date IS NOT NULL") > 20
    # partial deliveries: several notes per order, lines not yet completely delivered
    multi = scalar(
        demo, "SELECT COUNT(*) FROM (SELECT order_id FROM delivery_notes GROUP BY order_id "
        "HAVING COUNT(*) > 1)"
    )
    assert multi > 20
    assert scalar(
        demo, "SELECT COUNT(*) FROM order_lines WHERE delivered_quantity > 0 "
        "AND delivered_quantity < quantity"
    ) > 0
    # delivered quantities are the sum of the delivery note lines
    assert rows(
        demo,
        "SELECT ol.order_id, ol.line_no FROM order_lines ol WHERE ol.delivered_quantity <> "
        "(SELECT COALESCE(SUM(dl.quantity), 0) FROM delivery_note_lines dl "
        " JOIN delivery_notes d ON d.id = dl.delivery_note_id "
        " WHERE d.order_id = ol.order_id AND dl.article_no = ol.article_no)",
    ) == []
    assert scalar(demo, "SELECT COUNT(*) FROM delivery_notes WHERE printed_at IS NULL") > 0
    recent = "SELECT COUNT(*) FROM delivery_notes WHERE printed_at >= '2026-11-20 00:00:00'"
    assert scalar(demo, recent) > 20
    assert scalar(demo, "SELECT MAX(printed_at) FROM delivery_notes") <= "2026-11-27 23:59:59"


def test_invoices_payment_states(demo: Path) -> None:
    prepay = "FROM invoices WHERE is_prepayment = 1"
    assert scalar(demo, f"SELECT COUNT(*) {prepay} AND cancelled = 0 AND open_amount = 0") > 0
    assert scalar(
        demo, f"SELECT COUNT(*) {prepay} AND cancelled = 0 AND open_amount > 0 "
        "AND open_amount < amount"
    ) > 0
    assert scalar(demo, f"SELECT COUNT(*) {prepay} AND cancelled = 0 AND open_amount = amount") > 0
    assert scalar(demo, f"SELECT COUNT(*) {prepay} AND cancelled = 1") > 0
    assert scalar(demo, "SELECT COUNT(*) FROM invoices WHERE is_prepayment = 0") > 0
    assert {r[0] for r in rows(demo, "SELECT DISTINCT currency FROM invoices")} == {"CHF", "EUR"}


def test_dates_stored_as_iso_text(demo: Path) -> None:
    stamp = scalar(demo, "SELECT printed_at FROM delivery_notes WHERE printed_at IS NOT NULL")
    assert isinstance(stamp, str)
    assert len(stamp) == 19
    assert stamp[10] == " "
    day = scalar(demo, "SELECT invoice_date FROM invoices")
    assert isinstance(day, str)
    assert len(day) == 10


def test_indexes_on_filtered_columns(demo: Path) -> None:
    indexed = {
        (table, col)
        for (table,) in rows(demo, "SELECT name FROM sqlite_master WHERE type = 'table'")
        for (index,) in rows(demo, f"SELECT name FROM pragma_index_list('{table}')")
        for (col,) in rows(demo, f"SELECT name FROM pragma_index_info('{index}')")
    }
    for needed in [
        ("delivery_notes", "printed_at"),
        ("delivery_notes", "order_id"),
        ("orders", "customer_id"),
        ("orders", "delivery_date"),
        ("orders", "auto_processed_at"),
        ("order_lines", "order_id"),
        ("delivery_note_lines", "delivery_note_id"),
        ("invoices", "is_prepayment"),
    ]:
        assert needed in indexed


def test_refuses_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="--force") as caught:
        create_demo(tmp_path, today=TODAY)
    assert "--dir" in str(caught.value)
    assert not (tmp_path / "erp.sqlite").exists()


def test_force_replaces_an_earlier_demo(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    create_demo(directory, today=TODAY)
    (directory / "ledger.sqlite").write_text("old ledger")
    (directory / "outbox" / "old.eml").write_text("old mail")
    with pytest.raises(UsageError):
        create_demo(directory, today=TODAY)
    summary = create_demo(directory, today=TODAY, force=True)
    assert summary.orders >= 2000
    assert not (directory / "ledger.sqlite").exists()
    assert list((directory / "outbox").iterdir()) == []
    load_settings(summary.config_path)


def test_empty_existing_directory_is_fine(tmp_path: Path) -> None:
    summary = create_demo(tmp_path, today=TODAY)
    assert summary.customers >= 500
