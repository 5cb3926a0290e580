"""Shipping confirmations (Versandbestätigung): one per printed delivery note (SPEC §4)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..clock import Clock
from ..erp import to_datetime, to_text
from ..errors import UsageError
from ..settings import Settings
from . import (
    ITEMS_OF_NOTE,
    PARTY_COLUMNS,
    PARTY_JOINS,
    Notification,
    Sources,
    items_of,
    order_context,
    party_of,
)

SELECT = (
    "SELECT dn.id AS note_id, dn.number AS note_number, dn.printed_at, o.id AS order_id, "
    "o.number AS order_number, o.order_date, o.shop, o.contact_id, "
    + PARTY_COLUMNS
    + " FROM {delivery_notes} dn JOIN {orders} o ON o.id = dn.order_id "
    + PARTY_JOINS
)
#: read in pages ordered by note_id (Sources.query)
BY_PRINT_TIME = SELECT + " WHERE dn.printed_at >= ? AND dn.printed_at <= ?"
STILL_PRINTED = "SELECT dn.printed_at FROM {delivery_notes} dn WHERE dn.id = ?"


def key_of(note_id: object) -> str:
    return f"shipping:{note_id}"


@dataclass(frozen=True)
class ShippingConfirmations:
    """``shipping-confirmations``; ``delivery_notes`` = the ``--delivery-note`` numbers."""

    delivery_notes: tuple[str, ...] = ()
    name: str = "shipping-confirmations"

    def plan(self, src: Sources, settings: Settings, clock: Clock) -> Iterator[Notification]:
        if self.delivery_notes:
            yield from self._named(src, settings)
            return
        if not settings.shipping.on_delivery_note_print:
            return  # the batch sends nothing; only --delivery-note does (SPEC §4)
        start, end = clock.event_window(0, settings.shipping.max_age_days)
        for row in src.query(BY_PRINT_TIME, [start, end], key="note_id"):
            yield self._notification(src, settings, row)

    def _named(self, src: Sources, settings: Settings) -> Iterator[Notification]:
        marks = ", ".join("?" for _ in self.delivery_notes)
        rows = src.lookup(
            SELECT + f" WHERE dn.number IN ({marks}) ORDER BY dn.id", self.delivery_notes
        )
        found = {to_text(r["note_number"]) for r in rows}
        missing = [n for n in self.delivery_notes if n not in found]
        if missing:
            raise UsageError(
                f"delivery note(s) not found in the ERP: {', '.join(missing)} "
                "(give the delivery note number as the ERP shows it)"
            )
        for row in rows:
            yield self._notification(src, settings, row)

    def _notification(
        self, src: Sources, settings: Settings, row: dict[str, object]
    ) -> Notification:
        party = party_of(row)
        use_contact = settings.shipping.to_contact and row.get("contact_id") is not None
        note_number = to_text(row["note_number"]) or str(row["note_id"])
        context = order_context(row, party, use_contact)
        items = items_of(src.lookup(ITEMS_OF_NOTE, [row["note_id"]]))
        context.update(
            delivery_note_number=note_number,
            printed_at=to_datetime(row["printed_at"]),
            items=items,
        )
        return Notification(
            key=key_of(row["note_id"]),
            job="shipping",
            template="shipping",
            document=f"Lieferschein {note_number} (Auftrag {context['order_number']})",
            party=party,
            shop=to_text(row.get("shop")),
            context=context,
            use_contact=use_contact,
            info={"order_id": row["order_id"], "delivery_note": note_number},
            ref=row["note_id"],
        )

    def recheck(
        self, src: Sources, settings: Settings, clock: Clock, n: Notification
    ) -> str | None:
        for row in src.lookup(STILL_PRINTED, [n.ref]):
            if self.delivery_notes or row["printed_at"] is not None:
                return None
            return "the delivery note is no longer printed"
        return "the delivery note no longer exists"
