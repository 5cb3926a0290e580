"""Shipping confirmations (Versandbestätigung): one per printed delivery note (SPEC §4)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ..clock import Clock
from ..erp import to_datetime, to_text
from ..errors import UsageError
from ..settings import Settings
from . import (
    ITEMS_OF_NOTES,
    PARTY_COLUMNS,
    PARTY_JOINS,
    ROW_ERRORS,
    SAMPLE_COMMON,
    Document,
    Job,
    NoLongerDue,
    Notification,
    Sources,
    Verdict,
    batches,
    failed_row,
    items_of,
    marks,
    order_context,
    party_of,
    raw_document,
)


@dataclass(frozen=True)
class Tracking:
    """One parcel of a delivery note: its number and, for a known carrier, its page."""

    number: str
    url: str | None
    carrier: str | None


#: a tracking number is no longer than this (longer text in the field is not one)
MAX_TRACKING_NUMBER = 60
#: parcels shown per delivery note at most
MAX_PARCELS = 10


def tracking_of(numbers: str | None, carrier: str | None, settings: Settings) -> list[Tracking]:
    """The parcels of a note (SPEC §11): numbers separated by ``,`` ``;`` or blanks, each
    with its carrier's page (``[shipping.carriers]``; the ERP's code read through
    ``[erp.carrier_codes]``, else ``shipping.default_carrier``). The number goes into the
    address URL-encoded: ERP text cannot change where the link leads."""
    code = settings.erp.carrier_of(carrier) or settings.shipping.default_carrier
    template = settings.shipping.carriers.get(code) if code else None
    found: list[Tracking] = []
    for number in re.split(r"[,;\s]+", numbers or ""):
        if not number or len(number) > MAX_TRACKING_NUMBER:
            continue
        if any(t.number == number for t in found):
            continue
        url = template.replace("{number}", quote(number, safe="")) if template else None
        found.append(Tracking(number, url, code))
        if len(found) == MAX_PARCELS:
            break
    return found


#: a realistic context (``check`` renders the templates with it)
SAMPLE: dict[str, object] = {
    **SAMPLE_COMMON,
    "document": "Lieferschein LS-4711 zu Auftrag A-1234",
    "delivery_note_number": "LS-4711",
    "printed_at": datetime(2026, 11, 26, 14, 30),
    "tracking": [
        Tracking("99.00.123456.12345678",
                 "https://service.post.ch/ekp-web/ui/entry/search/99.00.123456.12345678", "post"),
        Tracking("JJD000390007713456789", None, None),
    ],
}  # fmt: skip

SELECT = (
    "SELECT dn.id AS note_id, dn.number AS note_number, dn.printed_at, dn.tracking_number, "
    "dn.carrier, o.id AS order_id, "
    "o.number AS order_number, o.order_date, o.shop, o.contact_id, "
    + PARTY_COLUMNS
    + " FROM {delivery_notes} dn JOIN {orders} o ON o.id = dn.order_id "
    + PARTY_JOINS
)
#: read in pages ordered by note_id (Sources.query)
BY_PRINT_TIME = SELECT + " WHERE dn.printed_at >= ? AND dn.printed_at <= ?"
STILL_PRINTED = (
    "SELECT dn.id AS note_id, dn.printed_at FROM {delivery_notes} dn WHERE dn.id IN ({marks})"
)


def key_of(note_id: object) -> str:
    return f"shipping:{note_id}"


@dataclass(frozen=True)
class ShippingConfirmations(Job):
    """``shipping-confirmations``; ``delivery_notes`` = the ``--delivery-note`` numbers."""

    delivery_notes: tuple[str, ...] = ()
    name: str = "shipping-confirmations"
    batched: bool = True

    def plan(self, src: Sources, settings: Settings, clock: Clock) -> Iterator[Notification]:
        if self.delivery_notes:
            yield from self._named(src, settings)
            return
        if not settings.shipping.on_delivery_note_print:
            return  # the batch sends nothing; only --delivery-note does (SPEC §4)
        start, end = clock.event_window(0, settings.shipping.max_age_days)
        for rows in batches(src.query(BY_PRINT_TIME, [start, end], key="note_id")):
            yield from self._notifications(src, settings, rows)

    def _named(self, src: Sources, settings: Settings) -> Iterator[Notification]:
        where = f" WHERE dn.number IN ({marks(len(self.delivery_notes))}) ORDER BY dn.id"
        rows = src.lookup(SELECT + where, self.delivery_notes)
        found = {str(r["note_number"]).strip() for r in rows if r["note_number"] is not None}
        missing = [n for n in self.delivery_notes if n not in found]
        if missing:
            raise UsageError(
                f"delivery note(s) not found in the ERP: {', '.join(missing)} "
                "(give the delivery note number as the ERP shows it)"
            )
        for batch in batches(rows):
            yield from self._notifications(src, settings, batch)

    def _notifications(
        self, src: Sources, settings: Settings, rows: list[dict[str, Any]]
    ) -> Iterator[Notification]:
        """The notifications of a batch of notes, their items read in one look-up."""
        ids = [row["note_id"] for row in rows]
        lines: dict[str, list[dict[str, Any]]] = {}
        for line in src.lookup(ITEMS_OF_NOTES.replace("{marks}", marks(len(ids))), ids):
            lines.setdefault(str(line["delivery_note_id"]), []).append(line)
        for row in rows:
            items = lines.get(str(row["note_id"]), [])
            try:
                yield self._notification(settings, row, items)
            except ROW_ERRORS as exc:  # one row never stops a run: it fails, with the reason
                yield failed_row(
                    settings,
                    exc,
                    key=key_of(row["note_id"]),
                    job="shipping",
                    template="shipping",
                    document=raw_document("Lieferschein", row["note_number"], row["note_id"]),
                    info={"order_id": row["order_id"]},
                )

    def _notification(
        self, settings: Settings, row: dict[str, Any], lines: list[dict[str, Any]]
    ) -> Notification:
        party = party_of(row)
        use_contact = settings.shipping.to_contact and row.get("contact_id") is not None
        note_number = to_text(row["note_number"], "delivery_notes.number") or str(row["note_id"])
        context = order_context(row, party, use_contact)
        items = items_of(lines, "delivery_note_lines")
        numbers = to_text(row.get("tracking_number"), "delivery_notes.tracking_number")
        carrier = to_text(row.get("carrier"), "delivery_notes.carrier")
        printed_at = to_datetime(row["printed_at"], "delivery_notes.printed_at")
        context.update(
            delivery_note_number=note_number,
            printed_at=printed_at,
            items=items,
            tracking=tracking_of(numbers, carrier, settings),
        )
        fields = {"number": note_number, "id": str(row["note_id"]),
                  "order_number": str(context["order_number"] or "")}  # fmt: skip
        return Notification(
            key=key_of(row["note_id"]),
            job="shipping",
            template="shipping",
            document=f"Lieferschein {note_number} (Auftrag {context['order_number']})",
            party=party,
            shop=to_text(row.get("shop"), "orders.shop"),
            context=context,
            use_contact=use_contact,
            info={"order_id": row["order_id"], "delivery_note": note_number},
            ref=row["note_id"],
            documents=(Document("delivery_note", fields, printed_at),),
        )

    def recheck(
        self, src: Sources, settings: Settings, clock: Clock, n: Notification
    ) -> Verdict:
        return self.recheck_many(src, settings, clock, [n])[0]

    def recheck_many(
        self, src: Sources, settings: Settings, clock: Clock, ns: Sequence[Notification]
    ) -> list[Verdict]:
        """Each note still printed (still there, for ``--delivery-note``), in one look-up."""
        ids = [n.ref for n in ns]
        printed = {
            str(row["note_id"]): row["printed_at"]
            for row in src.lookup(STILL_PRINTED.replace("{marks}", marks(len(ids))), ids)
        }
        verdicts: list[Verdict] = []
        for n in ns:
            if str(n.ref) not in printed:
                verdicts.append(NoLongerDue("the delivery note no longer exists"))
            elif printed[str(n.ref)] is None and not self.delivery_notes:
                verdicts.append(NoLongerDue("the delivery note is no longer printed"))
            else:
                verdicts.append(None)
        return verdicts
