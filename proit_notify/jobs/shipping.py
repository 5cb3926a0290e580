"""Shipping confirmations (Versandbestätigung): one per printed delivery note (SPEC §4)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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

#: a realistic context (``check`` renders the templates with it)
SAMPLE: dict[str, object] = {
    **SAMPLE_COMMON,
    "document": "Lieferschein LS-4711 zu Auftrag A-1234",
    "delivery_note_number": "LS-4711",
    "printed_at": datetime(2026, 11, 26, 14, 30),
}

SELECT = (
    "SELECT dn.id AS note_id, dn.number AS note_number, dn.printed_at, o.id AS order_id, "
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
        context.update(
            delivery_note_number=note_number,
            printed_at=to_datetime(row["printed_at"], "delivery_notes.printed_at"),
            items=items,
        )
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
