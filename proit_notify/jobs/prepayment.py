"""Prepayment reminders (Vorkasse-Erinnerung): unpaid prepayment invoices (SPEC §4).

Reminder 1 of an invoice is due ``prepayment.delay_days`` after its ``invoice_date``;
reminder n+1 ``prepayment.repeat_days`` after reminder n was sent; never more than
``prepayment.max_mails`` per invoice. The ledger holds the series: keys
``prepayment:<invoice_id>:<n>``, all channels of one reminder share its key.

Decisions (docs: "prepayment-reminders"):

- Every reminder key counts toward ``max_mails``, whatever its rows' status: ``sending``
  and ``unknown`` (a crash loop cannot exceed the maximum), ``failed`` and ``skipped``
  (an invalid address or info type ``none`` uses up one reminder each, so the series ends
  after ``max_mails`` attempts instead of going on forever).
- The next reminder counts from when reminder n went out: the earliest ``sent_at`` of its
  channels; without one (failed, skipped, unknown) from when it was attempted.
- A ``deferred`` reminder is retried under its own key (the runner honours the back-off);
  no reminder n+1 is planned while reminder n is still deferred.
- Catch-up (SPEC §4): only reminder 1 can age out. When its due day lies more than
  ``prepayment.max_age_days`` (default 60) before today, the invoice gets one ``skipped``
  row under reminder 1's key with the reason (:data:`AGED_OUT`), and its series never
  starts: the ledger and the report say why an open invoice got no reminder. Once
  reminder 1 went out, reminder n+1 goes on the first run on or after its due day,
  however long the tool was stopped. Each run plans at most one reminder per invoice, so
  a pause of weeks sends one reminder, not a burst: the next is due ``repeat_days`` after
  that one went out.
- The open amount is read again right before sending; the message shows the amount read
  then (``recheck`` returns the notification with the re-read values).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ..clock import Clock
from ..erp import to_date, to_decimal, to_flag, to_text
from ..ledger import Entry
from ..settings import Settings
from . import (
    ITEMS_OF_ORDER,
    PARTY_COLUMNS,
    ROW_ERRORS,
    SAMPLE_COMMON,
    Document,
    Job,
    NoLongerDue,
    Notification,
    Payment,
    Sources,
    Verdict,
    failed_row,
    items_of,
    order_context,
    party_of,
    raw_document,
)

#: a realistic context (``check`` renders the templates with it)
SAMPLE: dict[str, object] = {
    **SAMPLE_COMMON,
    "document": "Rechnung R-2026-0815 zu Auftrag A-1234",
    "invoice_number": "R-2026-0815",
    "invoice_date": date(2026, 11, 20),
    "amount": Decimal("1234.50"),
    "open_amount": Decimal("1234.50"),
    "currency": "CHF",
    "reminder_no": 1,
    "max_reminders": 3,
}

#: still a reminder candidate; the same conditions are re-checked before each send
OPEN = "i.is_prepayment = 1 AND (i.cancelled = 0 OR i.cancelled IS NULL) AND i.open_amount > 0"
_INVOICE_COLUMNS = (
    "i.id AS invoice_id, i.number AS invoice_number, i.invoice_date, i.amount, i.open_amount, "
    "i.currency, i.payment_reference, o.id AS order_id, o.number AS order_number, "
    "o.order_date, o.shop"
)
# the invoice's customer and contact; the order (for its number, shop and items) is optional
_FROM = (
    "{invoices} i JOIN {customers} c ON c.id = i.customer_id "
    "LEFT JOIN {contacts} k ON k.id = i.contact_id LEFT JOIN {orders} o ON o.id = i.order_id"
)
# Dates are compared as [first day, day after the last day) and against now: an ERP may
# keep invoice_date as a date or as a timestamp, and this form is right for both (also on
# SQLite, where they are ISO text).
# No lower bound on the invoice date: a started series never ages out (SPEC §4), and an
# invoice too old for reminder 1 gets its one aged-out row. Open prepayment invoices are
# few (they are paid or cancelled), so the whole open set is read each run.
DUE_INVOICES = (
    f"SELECT {_INVOICE_COLUMNS}, {PARTY_COLUMNS} FROM {_FROM} WHERE {OPEN} "
    "AND i.invoice_date < ? AND i.invoice_date <= ?"
)
RECHECK = "SELECT i.is_prepayment, i.cancelled, i.open_amount FROM {invoices} i WHERE i.id = ?"

JOB = "prepayment"
#: ``info`` flag of the row of a reminder 1 that aged out: that invoice's series never starts
AGED_OUT = "aged_out"
#: ``info`` flag of a reminder that failed because the invoice's ERP row cannot be read: no
#: further reminder is tried until a person resolves it (``ledger resolve``)
UNREADABLE = "unreadable"


def key_prefix(invoice_id: object) -> str:
    """``prepayment:<invoice_id>:``, the ledger keys of one invoice's reminders."""
    return f"{JOB}:{invoice_id}:"


@dataclass(frozen=True)
class Series:
    """The reminders an invoice already has in the ledger."""

    reminders: Mapping[int, Sequence[Entry]]  # n -> the rows (channels) of reminder n

    @classmethod
    def of(cls, entries: Sequence[Entry], prefix: str) -> Series:
        reminders: dict[int, list[Entry]] = {}
        for entry in entries:
            suffix = entry.key.removeprefix(prefix)
            if suffix.isdigit():  # a key this job wrote; anything else is not a reminder
                reminders.setdefault(int(suffix), []).append(entry)
        return cls(reminders)

    @property
    def count(self) -> int:
        return len(self.reminders)

    def deferred(self) -> int | None:
        """The reminder still waiting for a retry, if any (it is not replaced by n+1)."""
        waiting = [
            n for n, rows in self.reminders.items() if any(e.status == "deferred" for e in rows)
        ]
        return min(waiting) if waiting else None

    def last_went_out(self, clock: Clock) -> date | None:
        """Local day the latest reminder went out: first sent channel, else its attempt."""
        if not self.reminders:
            return None
        rows = self.reminders[max(self.reminders)]
        sent = [e.sent_at for e in rows if e.sent_at is not None]
        moment: datetime = min(sent) if sent else min(e.created_at for e in rows)
        return clock.local_of(moment).date()

    def failed_unreadable(self) -> bool:
        """The latest reminder failed because the ERP row could not be read."""
        if not self.reminders:
            return False
        rows = self.reminders[max(self.reminders)]
        return any(e.info.get(UNREADABLE) and e.status == "failed" for e in rows)

    @property
    def aged_out(self) -> bool:
        """Reminder 1 was too late to send: the series never started."""
        return any(e.info.get(AGED_OUT) for rows in self.reminders.values() for e in rows)


def last_invoice_day(settings: Settings, clock: Clock) -> date:
    """The last invoice day whose reminder 1 is due today."""
    return clock.today - timedelta(days=settings.prepayment.delay_days)


@dataclass(frozen=True)
class PrepaymentReminders(Job):
    """``prepayment-reminders``."""

    name: str = "prepayment-reminders"

    def plan(self, src: Sources, settings: Settings, clock: Clock) -> Iterator[Notification]:
        p = settings.prepayment
        if p.max_mails == 0:
            return  # 0 = no reminders (SPEC §2)
        params = [last_invoice_day(settings, clock) + timedelta(days=1), clock.now]
        for row in src.query(DUE_INVOICES, params, key="invoice_id"):
            prefix = key_prefix(row["invoice_id"])
            series = Series.of(src.ledger_prefix(prefix), prefix)
            try:
                yield from self._due(src, settings, clock, row, series)
            except ROW_ERRORS as exc:  # one row never stops a run: it fails, with the reason
                if series.failed_unreadable():
                    continue  # failed for its data already: no new row until resolved
                n = max(series.reminders) + 1 if series.reminders else 1
                yield failed_row(
                    settings,
                    exc,
                    key=f"{prefix}{n}",
                    job=JOB,
                    template="prepayment",
                    document=raw_document("Rechnung", row["invoice_number"], row["invoice_id"]),
                    info={"invoice_id": row["invoice_id"], "reminder": n, UNREADABLE: True},
                )

    def _due(
        self,
        src: Sources,
        settings: Settings,
        clock: Clock,
        row: dict[str, Any],
        series: Series,
    ) -> Iterator[Notification]:
        """The reminder of the invoice in ``row`` that is due now, if any."""
        p = settings.prepayment
        oldest_due = clock.oldest_due_day(p.max_age_days)
        waiting = series.deferred()
        if waiting is not None:
            # the runner retries it under the same key when its back-off has passed
            yield self._notification(src, settings, row, waiting)
            return
        if series.aged_out or series.count >= p.max_mails:
            return
        went_out = series.last_went_out(clock)
        if went_out is not None:
            # a started series never ages out: however late, the next one goes now
            if went_out + timedelta(days=p.repeat_days) <= clock.today:
                # max + 1, not count + 1: a key someone removed is never reused
                n = max(series.reminders) + 1
                yield self._notification(src, settings, row, n)
            return
        invoice_day = to_date(row["invoice_date"], "invoices.invoice_date")
        if invoice_day is None:
            return  # nothing to count from (SQL excludes NULL anyway)
        due = invoice_day + timedelta(days=p.delay_days)
        if due > clock.today:
            return
        first = self._notification(src, settings, row, 1, items=due >= oldest_due)
        if due < oldest_due:
            why = (
                f"aged out: reminder 1 was due on {due:%d.%m.%Y}, more than "
                f"prepayment.max_age_days ({p.max_age_days}) days ago; no reminder is sent"
            )
            first = replace(first, skip=why, info={**first.info, AGED_OUT: True})
        yield first

    def _notification(
        self, src: Sources, settings: Settings, row: dict[str, Any], n: int, items: bool = True
    ) -> Notification:
        """Reminder ``n`` of the invoice in ``row``; ``items``: read the order's lines (not
        for a row that is never rendered)."""
        party = party_of(row)
        invoice_number = to_text(row["invoice_number"], "invoices.number") or str(row["invoice_id"])
        context = order_context(row, party, use_contact=False)
        order_id = row["order_id"]
        lines = (
            items_of(src.lookup(ITEMS_OF_ORDER, [order_id]), "order_lines")
            if items and order_id is not None
            else []
        )
        amount = to_decimal(row["amount"], "invoices.amount") or Decimal(0)
        open_amount = to_decimal(row["open_amount"], "invoices.open_amount") or Decimal(0)
        context.update(
            invoice_number=invoice_number,
            invoice_date=to_date(row["invoice_date"], "invoices.invoice_date"),
            amount=amount,
            open_amount=open_amount,
            currency=to_text(row["currency"], "invoices.currency") or "",
            reminder_no=n,
            max_reminders=settings.prepayment.max_mails,
            items=lines,
        )
        order_number = context["order_number"]
        document = f"Rechnung {invoice_number}" + (
            f" zu Auftrag {order_number}" if order_number else ""
        )
        invoice_day = context["invoice_date"]
        invoice = Document(
            "invoice",
            {"number": invoice_number, "id": str(row["invoice_id"]),
             "order_number": str(order_number or "")},
            datetime.combine(invoice_day, time(0)) if isinstance(invoice_day, date) else None,
            Payment(
                open_amount,
                str(context["currency"]),
                to_text(row.get("payment_reference"), "invoices.payment_reference"),
                invoice_number,
            ),
        )  # fmt: skip
        return Notification(
            key=f"{key_prefix(row['invoice_id'])}{n}",
            job=JOB,
            template="prepayment",
            document=document,
            party=party,
            shop=to_text(row.get("shop"), "orders.shop"),
            context=context,
            info={
                "invoice_id": row["invoice_id"],
                "invoice": invoice_number,
                "reminder": n,
                "open_amount": str(open_amount),
            },
            ref=row["invoice_id"],
            documents=(invoice,),
        )

    def recheck(
        self, src: Sources, settings: Settings, clock: Clock, n: Notification
    ) -> Verdict:
        """Still a prepayment, not cancelled, still open: then with the open amount read now."""
        rows = src.lookup(RECHECK, [n.ref])
        if not rows:
            return NoLongerDue("the invoice no longer exists")
        row = rows[0]
        if not to_flag(row["is_prepayment"]):
            return NoLongerDue("the invoice is no longer a prepayment invoice")
        if to_flag(row["cancelled"]):
            return NoLongerDue("the invoice was cancelled")
        open_amount = to_decimal(row["open_amount"], "invoices.open_amount") or Decimal(0)
        if open_amount <= 0:
            return NoLongerDue("the invoice has been paid")
        if open_amount == n.context.get("open_amount"):
            return None
        # paid in part since the selection: the customer is told what is open now
        context = {**n.context, "open_amount": open_amount}
        documents = tuple(
            replace(d, payment=replace(d.payment, amount=open_amount)) if d.payment else d
            for d in n.documents
        )
        info = {**n.info, "open_amount": str(open_amount)}
        return replace(n, context=context, info=info, documents=documents)
