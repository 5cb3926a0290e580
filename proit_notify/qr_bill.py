"""The Swiss QR-bill (SPEC §11): a PDF payment slip for an invoice's OPEN amount.

``qrbill`` builds the slip and its QR code (Swiss Payment Standards 2.3: SPC 0200, the
creditor as a structured address, type S) as SVG; svglib and reportlab turn the SVG into a
PDF (no browser, no Cairo). What the ERP holds decides the reference:

- a QR-IBAN needs a QR reference (27 digits, check digit): ``invoices.payment_reference``;
  ``check`` refuses a QR-IBAN without that field mapped (exit 3), a row without a valid
  one is that reminder's failure;
- an IBAN takes a creditor reference (``RF...``, ISO 11649) when the field holds one, and
  otherwise names the invoice (and the field's text) in the additional information.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal

from .channels import Attachment
from .errors import RowError
from .jobs import Payment
from .settings import QrBillSettings

#: what a QR-bill may be made out in (Swiss Payment Standards)
CURRENCIES = frozenset({"CHF", "EUR"})
#: the slip's languages (qrbill's); others get German
LANGUAGES = frozenset({"de", "fr", "it", "en"})
#: the highest amount a QR-bill carries
MAX_AMOUNT = Decimal("999999999.99")
#: the names of the slip per language, for the file the customer sees
FILE_NAMES = {"de": "QR-Rechnung", "fr": "QR-facture", "it": "QR-fattura", "en": "QR-bill"}


def applies(payment: Payment) -> bool:
    """Whether a QR-bill can be made for this invoice at all (CHF or EUR, something open):
    a reminder in another currency goes without one."""
    return payment.currency.strip().upper() in CURRENCIES and payment.amount > 0


def file_name(payment: Payment, language: str) -> str:
    number = re.sub(r"[^\w.-]+", "_", payment.invoice)[:60].strip("._") or "Rechnung"
    return f"{FILE_NAMES.get(language, FILE_NAMES['de'])}_{number}.pdf"


def make(settings: QrBillSettings, payment: Payment, language: str) -> Attachment:
    """The QR-bill PDF for ``payment``; a :class:`RowError` names the ERP value that makes
    none (the reminder fails with it)."""
    from qrbill import QRBill
    from reportlab.graphics import renderPDF
    from svglib.svglib import svg2rlg

    if payment.amount > MAX_AMOUNT:
        raise RowError("invoices.open_amount", payment.amount, "is more than a QR-bill carries")
    reference = (payment.reference or "").strip()
    compact = re.sub(r"\s+", "", reference)
    kwargs: dict[str, str] = {}
    if settings.qr_iban:
        if not compact:
            raise RowError(
                "invoices.payment_reference", reference,
                f"is no QR reference, which a payment to the QR-IBAN {settings.account} needs",
            )  # fmt: skip
        kwargs["reference_number"] = compact
    elif compact.upper().startswith("RF"):
        kwargs["reference_number"] = compact
    else:
        info = f"{payment.invoice} {reference}".strip() if reference else payment.invoice
        kwargs["additional_information"] = info[:140]
    try:
        bill = QRBill(
            account=settings.account,
            creditor=settings.creditor.model_dump(),
            amount=f"{payment.amount:.2f}",
            currency=payment.currency.strip().upper(),
            language=language if language in LANGUAGES else "de",
            **kwargs,
        )
        svg = io.StringIO()
        bill.as_svg(svg, full_page=True)
    except ValueError as exc:  # qrbill says what is wrong (a reference's check digit)
        raise RowError(
            "invoices.payment_reference", reference, f"makes no QR-bill: {exc}"
        ) from None
    drawing = svg2rlg(io.BytesIO(svg.getvalue().encode("utf-8")))
    if drawing is None:  # pragma: no cover - qrbill's own SVG always parses
        raise RowError("invoices.number", payment.invoice, "got a QR-bill that cannot be drawn")
    pdf = renderPDF.drawToString(drawing)
    return Attachment(file_name(payment, language), "application/pdf", pdf)


def check(settings: QrBillSettings | None, reference_mapped: bool) -> str | None:
    """``check``: a QR-IBAN without ``invoices.payment_reference`` mapped can never carry a
    valid QR-bill (exit 3), or None."""
    if settings is None or not settings.qr_iban or reference_mapped:
        return None
    return (
        f"prepayment.qr_bill.account {settings.account} is a QR-IBAN: each QR-bill needs "
        "the invoice's QR reference. Map it in [erp.columns.invoices] as payment_reference "
        '= "YourColumn", or give the plain IBAN of the account'
    )
