"""What every job is made of: the notification, the sources a job reads, the job's
base class and the helpers of the rules (re-exported by :mod:`proit_notify.jobs`).

A job is handed a :class:`Sources` (ERP queries and ledger look-ups) and yields
:class:`Notification` objects; the runner plans (recipients, re-check, rendering) and the
delivery claims, sends and records. Right before sending, the job re-checks eligibility.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar

from ..clock import Clock
from ..erp import MAX_DESCRIPTION, to_date, to_decimal, to_flag, to_int, to_text
from ..errors import RowError, shown_value
from ..ledger import Entry
from ..redaction import one_line
from ..render import Item
from ..settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Party:
    """Who a notification is for: the customer, and the order's contact if any."""

    customer_id: str
    name: str
    email: str | None
    phone: str | None
    country: str | None
    language: str | None
    info_type_code: str | None
    contact_name: str | None = None
    contact_email: str | None = None
    contact_mobile: str | None = None
    #: the customer objected to advertising (``customers.no_marketing = 1``)
    no_marketing: bool = False

    @property
    def addresses(self) -> tuple[str | None, ...]:
        """Every address of the party a message could go to (for the opt-out list)."""
        return (self.email, self.phone, self.contact_email, self.contact_mobile)


@dataclass(frozen=True)
class Payment:
    """What a QR-bill asks for (SPEC §11): the OPEN amount of an invoice."""

    amount: Decimal
    currency: str
    reference: str | None  # ``invoices.payment_reference``: a QR or RF reference, or text
    invoice: str  # its number, for the customer


@dataclass(frozen=True)
class Document:
    """An ERP document whose PDF a message carries (SPEC §11): its kind (a key of
    ``[attachments]``), its own fields for the path template, and since when it exists
    (the wait for a file the ERP is still writing counts from then)."""

    kind: Literal["delivery_note", "invoice"]
    fields: Mapping[str, str]
    since: datetime | None
    #: an invoice's open amount: a QR-bill is made for it when its PDF is not attached
    payment: Payment | None = None


@dataclass(frozen=True)
class Notification:
    """One thing to tell one customer, before recipient and channel are decided."""

    key: str  # ledger key without channel: "shipping:42"
    job: str  # ledger job name: "shipping"
    template: str  # template name: "shipping", "review", "prepayment", "delivery_date"
    document: str  # what it is about, for the customer and the ledger's reader
    party: Party
    shop: str | None
    context: Mapping[str, object]
    use_contact: bool = False
    info: Mapping[str, Any] = field(default_factory=dict)  # stored in the ledger row
    ref: object = None  # the ERP id the job re-checks with, as the driver returned it
    #: recorded as ``skipped`` with this reason, nothing is sent (a baseline, an aged-out
    #: reminder): the ledger and the report say why a due-looking notification went nowhere
    skip: str | None = None
    #: a line for the person reading the run's output (why a run sent nothing, say)
    note: str | None = None
    #: extra email headers (a review request's List-Unsubscribe)
    headers: tuple[tuple[str, str], ...] = ()
    #: recorded as ``failed`` with this reason, nothing is sent: the ERP row cannot be read
    #: (:func:`failed_row`); one row never stops a run
    problem: str | None = None
    #: the documents whose PDFs the email carries (:mod:`proit_notify.attachments`)
    documents: tuple[Document, ...] = ()


class Sources(Protocol):
    """What a job may read: the ERP (logical SQL) and the ledger.

    ``query`` reads a large selection in pages ordered by ``key``, a unique column of its
    select list (the template has no ORDER BY): each page is read completely before its
    rows are handed out, so no cursor is open while messages go out. ``lookup`` runs a
    small query (items of one note, a re-check) on a second connection.
    ``ledger_entries`` gives every channel's row of exactly these keys.
    """

    def query(
        self, template: str, params: Sequence[object], key: str
    ) -> Iterator[dict[str, Any]]: ...
    def lookup(self, template: str, params: Sequence[object] = ()) -> list[dict[str, Any]]: ...
    def ledger_prefix(self, prefix: str) -> list[Entry]: ...
    def ledger_sent_between(self, job: str, start: datetime, end: datetime) -> list[Entry]: ...
    def ledger_entries(self, keys: Sequence[str]) -> list[Entry]: ...
    def ledger_started(self, job: str, baseline: str) -> bool:
        """Whether ``job`` has a ledger row other than a ``skipped`` row with detail
        ``baseline`` (a job that has run for real before)."""
        ...

    def opted_out(self, forms: Iterable[str]) -> set[str]:
        """Which of ``forms`` (of addresses, ``optout.forms``) are on the opt-out list."""
        ...


@dataclass(frozen=True)
class NoLongerDue:
    """A notification that is no longer due right before it would be sent, and why
    (paid, printed no more, the date changed): nothing is sent and nothing recorded."""

    reason: str


#: a job's word on one notification right before it is sent: still due (None), still due
#: with values re-read just now (the part-paid invoice's open amount), or no longer due
Verdict = Notification | NoLongerDue | None


class Job:
    """One notification kind: its rules, no I/O of its own (a :class:`Sources` reads).

    A job module defines a subclass and a :class:`~proit_notify.jobs.registry.JobSpec`
    entry; nothing else of the tool needs to know it.
    """

    #: the command name ("shipping-confirmations")
    name: str
    #: re-checks are asked for many planned notifications at once (one ERP round trip)
    batched: bool = False

    def plan(self, src: Sources, settings: Settings, clock: Clock) -> Iterator[Notification]:
        """The notifications due now (the ledger may already hold some of them)."""
        raise NotImplementedError

    def recheck(
        self, src: Sources, settings: Settings, clock: Clock, n: Notification
    ) -> Verdict:
        """Right before sending: is ``n`` still due (see :data:`Verdict`)?"""
        raise NotImplementedError

    def recheck_many(
        self, src: Sources, settings: Settings, clock: Clock, ns: Sequence[Notification]
    ) -> list[Verdict]:
        """:meth:`recheck` of each of ``ns``, in their order (a batched job asks the ERP
        once for all of them)."""
        return [self.recheck(src, settings, clock, n) for n in ns]


# --- shared row reading ---------------------------------------------------------------------

#: ids bound in one ``IN (...)`` look-up: items and re-checks of this many notifications
#: cost one ERP round trip (SQL Server takes up to 2,100 parameters)
BATCH = 500


def marks(n: int) -> str:
    """``?, ?, ?`` for ``n`` parameters."""
    return ", ".join("?" for _ in range(n))


def batches(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


PARTY_COLUMNS = (
    "c.id AS customer_id, c.name AS customer_name, c.email AS customer_email, "
    "c.phone AS customer_phone, c.country AS customer_country, c.language AS customer_language, "
    "c.info_type AS customer_info_type, k.name AS contact_name, k.email AS contact_email, "
    "k.mobile AS contact_mobile, c.no_marketing AS customer_no_marketing"
)
PARTY_JOINS = (
    "JOIN {customers} c ON c.id = o.customer_id LEFT JOIN {contacts} k ON k.id = o.contact_id"
)
ITEMS_OF_NOTES = (
    "SELECT l.delivery_note_id, l.line_no, l.article_no, l.description, l.quantity, l.unit "
    "FROM {delivery_note_lines} l WHERE l.delivery_note_id IN ({marks}) "
    "ORDER BY l.delivery_note_id, l.line_no"
)
ITEMS_OF_ORDER = (
    "SELECT l.line_no, l.article_no, l.description, l.quantity, l.delivered_quantity, l.unit "
    "FROM {order_lines} l WHERE l.order_id = ? ORDER BY l.line_no"
)


def party_of(row: Mapping[str, Any]) -> Party:
    """A :class:`Party` from a row selected with :data:`PARTY_COLUMNS`."""
    return Party(
        customer_id=str(row["customer_id"]),
        name=to_text(row["customer_name"], "customers.name") or "",
        email=to_text(row["customer_email"], "customers.email"),
        phone=to_text(row["customer_phone"], "customers.phone"),
        country=to_text(row["customer_country"], "customers.country"),
        language=to_text(row["customer_language"], "customers.language"),
        info_type_code=to_text(row["customer_info_type"], "customers.info_type"),
        contact_name=to_text(row.get("contact_name"), "contacts.name"),
        contact_email=to_text(row.get("contact_email"), "contacts.email"),
        contact_mobile=to_text(row.get("contact_mobile"), "contacts.mobile"),
        no_marketing=to_flag(row.get("customer_no_marketing")) is True,
    )


def items_of(rows: Iterable[dict[str, Any]], table: str) -> list[Item]:
    """:class:`Item` objects from rows of :data:`ITEMS_OF_NOTES` / :data:`ITEMS_OF_ORDER`
    (``table``: their logical table, for the message when a value cannot be read)."""
    return [
        Item(
            line_no=to_int(r["line_no"], f"{table}.line_no") or 0,
            article_no=to_text(r["article_no"], f"{table}.article_no"),
            description=to_text(r["description"], f"{table}.description", MAX_DESCRIPTION)
            or "",
            quantity=to_decimal(r["quantity"], f"{table}.quantity") or Decimal(0),
            unit=to_text(r["unit"], f"{table}.unit"),
        )
        for r in rows
    ]


def order_context(row: Mapping[str, Any], party: Party, use_contact: bool) -> dict[str, object]:
    """The placeholders every job shares (see README 'Templates')."""
    recipient = party.contact_name if use_contact and party.contact_name else party.name
    order_date: date | None = to_date(row.get("order_date"), "orders.order_date")
    return {
        "customer_name": party.name,
        "recipient_name": recipient,
        "order_number": to_text(row.get("order_number"), "orders.number") or "",
        "order_date": order_date,
        "shop": to_text(row.get("shop"), "orders.shop"),
    }


# --- samples (``check`` renders every template with them; the demo and tests too) ----------

SAMPLE_ITEMS = [
    Item(1, "KR-15-W", "Kupferrohr 15 mm, weich", Decimal("1.500"), "m"),
    Item(2, "PF-90-15", "Pressfitting Bogen 90° Ø 15 mm", Decimal("10.000"), "Stk"),
    Item(3, None, "Montagematerial für Küche & Bad", Decimal("1"), None),
]
#: the placeholders every job's sample has (see :func:`order_context`)
SAMPLE_COMMON: dict[str, object] = {
    "customer_name": "Müller Haustechnik AG",
    "recipient_name": "Jürg Müller",
    "order_number": "A-1234",
    "order_date": date(2026, 11, 20),
    "shop": "webshop",
    "items": SAMPLE_ITEMS,
}


# --- a row that cannot be read ----------------------------------------------------------------

#: what an ERP row's data can make a job's reading of it raise (RowError is a ValueError):
#: that row fails, the run goes on
ROW_ERRORS = (ValueError, TypeError, ArithmeticError, LookupError)
NOBODY = Party("", "", None, None, None, None, None)


def row_problem(settings: Settings, exc: BaseException, key: str = "KEY") -> str:
    """Why a row failed, with the ERP column to fix and the way back."""
    if isinstance(exc, RowError) and exc.field:
        where = settings.erp.describe(exc.field, settings.sms.phone_field)
        return (
            f"ERP value {exc} ({where}); fix it in the ERP, then "
            f"'proit-notify ledger resolve {one_line(key)} --resend' sends it"
        )
    said = one_line(shown_value(str(exc), 200))
    return f"the ERP row cannot be read: {type(exc).__name__}: {said}"


def raw_document(kind: str, value: object, fallback: object = "") -> str:
    """The ``document`` of a row that cannot be read: its number as the ERP holds it, on one
    line and short (it may be the value that failed)."""
    raw = value if value not in (None, "") else fallback
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = one_line(text.strip())
    return f"{kind} {text[:60] + '…' if len(text) > 60 else text}"


def failed_row(
    settings: Settings,
    exc: BaseException,
    *,
    key: str,
    job: str,
    template: str,
    document: str,
    info: Mapping[str, Any] | None = None,
) -> Notification:
    """The notification of a row that cannot be read: a ``failed`` row with the reason."""
    return Notification(
        key=key,
        job=job,
        template=template,
        document=document,
        party=NOBODY,
        shop=None,
        context={},
        info=dict(info or {}),
        problem=row_problem(settings, exc, key),
    )
