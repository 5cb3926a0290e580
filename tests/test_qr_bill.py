"""The Swiss QR-bill (SPEC §11): the QR code decoded from the rendered PDF and compared with
the Swiss Payment Standards fields; on a prepayment reminder for the OPEN amount, on the four
backends; ``check`` refuses a QR-IBAN without the reference mapped."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdfium2
import pytest
import tomli_w
import zxingcpp
from cli_runner import Cli, cli
from ledger_rows import ledger_rows
from reportlab.pdfgen import canvas
from scenario import shop
from smtp_server import SmtpServer, email_section, smtp_server

from proit_notify import qr_bill
from proit_notify.jobs import Payment
from proit_notify.settings import QrBillSettings

__all__ = ["cli", "smtp_server"]  # fixtures

QR_IBAN = "CH44 3199 9123 0008 8901 2"  # the QR-IBAN of the SIX samples
IBAN = "CH93 0076 2011 6238 5295 7"  # the IBAN of the SIX samples
QR_REFERENCE = "210000000003139471430009017"
CREDITOR = {
    "name": "Beispiel Handel AG", "street": "Bahnhofstrasse", "house_num": "1",
    "pcode": "8001", "city": "Zürich", "country": "CH",
}  # fmt: skip
AS_OF = "2026-11-27T09:00"


def qr_payload(pdf: bytes) -> list[str]:
    """The QR code of the PDF's first page, decoded (rendered at 300 dpi), by line."""
    page = pypdfium2.PdfDocument(pdf)[0]
    image = page.render(scale=300 / 72).to_pil()
    found = [b for b in zxingcpp.read_barcodes(image) if b.format == zxingcpp.BarcodeFormat.QRCode]
    assert len(found) == 1, "one QR code on the slip"
    # the standard separates the fields by CR LF or LF
    return found[0].text.replace("\r\n", "\n").split("\n")


def spc(
    account: str, amount: str, currency: str, kind: str, reference: str, info: str = ""
) -> list[str]:
    """The payload the Swiss Payment Standards 2.3 define (section 4.3), field by field."""
    creditor = ["S", CREDITOR["name"], CREDITOR["street"], CREDITOR["house_num"],
                CREDITOR["pcode"], CREDITOR["city"], CREDITOR["country"]]  # fmt: skip
    return [
        "SPC", "0200", "1", account.replace(" ", ""), *creditor,
        "", "", "", "", "", "", "",  # ultimate creditor: reserved, empty
        amount, currency,
        "", "", "", "", "", "", "",  # ultimate debtor: not known to the reminder
        kind, reference, info, "EPD",
    ]  # fmt: skip


def test_qr_iban_bill_decodes_to_the_swiss_payment_standards_payload() -> None:
    settings = QrBillSettings.model_validate({"account": QR_IBAN, "creditor": CREDITOR})
    payment = Payment(Decimal("1234.5"), "CHF", f" {QR_REFERENCE[:2]} {QR_REFERENCE[2:]} ", "VK-7")

    made = qr_bill.make(settings, payment, "fr")

    assert made.filename == "QR-facture_VK-7.pdf"
    assert made.content_type == "application/pdf"
    assert made.data.startswith(b"%PDF")
    assert qr_payload(made.data) == spc(QR_IBAN, "1234.50", "CHF", "QRR", QR_REFERENCE)


def test_iban_bill_takes_an_rf_reference_or_names_the_invoice() -> None:
    settings = QrBillSettings.model_validate({"account": IBAN, "creditor": CREDITOR})
    scor = qr_bill.make(settings, Payment(Decimal("10"), "EUR", "RF18 5390 0754 7034", "R-1"), "de")
    assert qr_payload(scor.data) == spc(IBAN, "10.00", "EUR", "SCOR", "RF18539007547034")
    plain = qr_bill.make(settings, Payment(Decimal("10"), "CHF", "Kd 4711", "R-2"), "it")
    assert qr_payload(plain.data) == spc(IBAN, "10.00", "CHF", "NON", "", "R-2 Kd 4711")


def test_a_qr_iban_without_a_valid_reference_names_the_erp_field() -> None:
    settings = QrBillSettings.model_validate({"account": QR_IBAN, "creditor": CREDITOR})
    for reference in (None, "", "210000000003139471430009018"):  # missing, bad check digit
        with pytest.raises(ValueError, match=r"invoices\.payment_reference"):
            qr_bill.make(settings, Payment(Decimal("10"), "CHF", reference, "R-1"), "de")


def test_settings_refuse_an_invalid_or_foreign_account() -> None:
    with pytest.raises(ValueError, match="not a valid IBAN"):
        QrBillSettings.model_validate({"account": f"{QR_IBAN[:-1]}3", "creditor": CREDITOR})
    german = "DE89 3704 0044 0532 0130 00"
    with pytest.raises(ValueError, match="Swiss or Liechtenstein"):
        QrBillSettings.model_validate({"account": german, "creditor": CREDITOR})


def invoice_pdf(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    page = canvas.Canvas(str(path))
    page.drawString(72, 720, "Rechnung mit Einzahlungsschein")
    page.save()
    return path.read_bytes()


def test_prepayment_reminder_carries_a_qr_bill_for_the_open_amount_or_the_invoice_pdf(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli, tmp_path: Path
) -> None:
    s = shop(erp_backend)
    part_paid = s.customer(email="teil@example.ch")
    with_pdf = s.customer(email="pdf@example.ch")
    euro = s.customer(email="euro@example.de", country="DE")
    s.invoice(None, part_paid, number="VK-1", amount=Decimal("500.00"),
              open_amount=Decimal("123.40"), payment_reference=QR_REFERENCE)  # fmt: skip
    s.invoice(None, with_pdf, number="VK-2", payment_reference=QR_REFERENCE)
    s.invoice(None, euro, number="VK-3", currency="EUR", open_amount=Decimal("80.00"),
              payment_reference="210000000003139471430009017")  # fmt: skip
    printed = invoice_pdf(tmp_path / "archiv" / "RE_VK-2.pdf")
    config = write_config(
        email=email_section(smtp_server),
        prepayment={"delay_days": 7, "qr_bill": {"account": QR_IBAN, "creditor": CREDITOR}},
        attachments={"invoice": "archiv/RE_{number}.pdf"},
    )

    result = cli("-c", config, "prepayment-reminders", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.messages) == 3
    by_rcpt = {m.rcpt_tos[0]: m.message for m in smtp_server.messages}
    files = {
        rcpt: [(p.get_filename(), p.get_content()) for p in message.iter_attachments()]
        for rcpt, message in by_rcpt.items()
    }
    assert [name for name, _ in files["teil@example.ch"]] == ["QR-Rechnung_VK-1.pdf"]
    assert qr_payload(files["teil@example.ch"][0][1]) == spc(
        QR_IBAN, "123.40", "CHF", "QRR", QR_REFERENCE
    )
    assert files["pdf@example.ch"] == [("RE_VK-2.pdf", printed)]  # the ERP's own, no second slip
    assert [name for name, _ in files["euro@example.de"]] == ["QR-Rechnung_VK-3.pdf"]
    assert qr_payload(files["euro@example.de"][0][1])[18:20] == ["80.00", "EUR"]
    assert sorted(r.info["attachments"][0] for r in ledger_rows(config)) == [
        "QR-Rechnung_VK-1.pdf", "QR-Rechnung_VK-3.pdf", "RE_VK-2.pdf"
    ]


def test_a_row_without_a_valid_qr_reference_fails_alone_with_the_field_to_fix(
    erp_backend: Any, write_config: Any, smtp_server: SmtpServer, cli: Cli
) -> None:
    s = shop(erp_backend)
    ok, bad = s.customer(email="ok@example.ch"), s.customer(email="bad@example.ch")
    s.invoice(None, ok, number="VK-1", payment_reference=QR_REFERENCE)
    s.invoice(None, bad, number="VK-2", payment_reference="12345")
    config = write_config(
        email=email_section(smtp_server),
        prepayment={"delay_days": 7, "qr_bill": {"account": QR_IBAN, "creditor": CREDITOR}},
    )

    result = cli("-c", config, "prepayment-reminders", "--as-of", AS_OF)

    assert result.exit_code == 1, result.stderr
    assert [m.rcpt_tos for m in smtp_server.messages] == [("ok@example.ch",)]
    failed = [r for r in ledger_rows(config) if r.status == "failed"]
    assert len(failed) == 1
    assert "invoices.payment_reference = '12345'" in failed[0].detail
    assert "QR_Referenz" in failed[0].detail  # the ERP's own column to fix


def test_check_refuses_a_qr_iban_without_the_reference_mapped(
    erp_backend: Any, write_config: Any, cli: Cli
) -> None:
    if erp_backend.name != "sqlite":
        pytest.skip("a settings check: one backend shows it")
    config: Path = write_config(
        prepayment={"qr_bill": {"account": QR_IBAN, "creditor": CREDITOR}},
        email={"default_account": "out", "accounts": {"out": {
            "transport": "file", "directory": "outbox", "from": "Shop <shop@example.ch>"}}},
    )  # fmt: skip
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    del data["erp"]["columns"]["invoices"]["payment_reference"]
    config.write_text(tomli_w.dumps(data), encoding="utf-8")

    result = cli("-c", config, "check", "--no-network")

    assert result.exit_code == 3, result.stdout + result.stderr
    assert "is a QR-IBAN" in result.stdout + result.stderr
    assert "payment_reference" in result.stdout + result.stderr

