"""Review requests (Bewertungsaufforderung): at most one per order, ever (SPEC §4).

An order's trigger is the earliest of its enabled events: the sending of the shipping
confirmation of one of its delivery notes (from the ledger, always enabled), a delivery
note's ``printed_at`` (``review.on_delivery_note_print``), the order's ``auto_processed_at``
(``review.on_auto_processing``). With ``review.only_complete_delivery`` the order must be
completely delivered and the clock starts at its LAST delivery note: per note its earliest
enabled event counts, and the latest of those (or a later auto-processing) is the trigger;
a trigger older than the last note's print means that note has no enabled event yet (not
confirmed): the order waits.
The request is due ``review.delay_days`` after the trigger's day and is sent while that
due day is not more than ``review.max_age_days`` in the past.

Selection (set-based, memory bounded by one batch): the candidates are orders with an
enabled event inside the event window, from one SQL query over the union of two index
ranges (``printed_at``, ``auto_processed_at``), and from the confirmations the ledger sent
inside the window (those order ids are looked up in the ERP, at most :data:`BATCH` bound
ids per IN list). The SQL already drops what can never be due (flag, completeness, and
with the earliest trigger an earlier print or auto-processing before the window); the
exact trigger is then computed per batch of orders from their delivery notes and the
ledger rows of their confirmations, so an order whose first confirmation is older than the
window is not sent just because a second delivery note was confirmed inside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from .. import objections
from ..clock import Clock
from ..erp import to_datetime, to_flag, to_text
from ..errors import ConfigError, RowError
from ..settings import Settings
from . import (
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
from .shipping import key_of as shipping_key

#: a realistic context (``check`` renders the templates with it)
SAMPLE: dict[str, object] = {
    **SAMPLE_COMMON,
    "document": "Auftrag A-1234",
    "portal_url": "https://www.example.ch/bewertung?auftrag=A-1234",
    "unsubscribe_url": "abmelden@example.ch",
    "delivered_at": date(2026, 11, 26),
}
#: most ids bound in one IN list (SQL Server allows 2100 parameters, SQLite 999 in old builds)

ORDER_SELECT = (
    "SELECT o.id AS order_id, o.number AS order_number, o.order_date, o.shop, o.contact_id, "
    "o.auto_processed_at, " + PARTY_COLUMNS
)
#: a line of the order is not (completely) delivered; NULL delivered counts as 0
INCOMPLETE = (
    "EXISTS (SELECT 1 FROM {order_lines} l WHERE l.order_id = o.id "
    "AND COALESCE(l.delivered_quantity, 0) < l.quantity)"
)
#: orders with an event inside the window, one id each (UNION removes duplicates); the
#: candidates join the orders to it, so every arm is an index range and nothing else is read
PRINTED_IN_WINDOW = (
    "SELECT dn.order_id AS id FROM {delivery_notes} dn "
    "WHERE dn.printed_at >= ? AND dn.printed_at <= ?"
)
AUTO_IN_WINDOW = (
    "SELECT a.id AS id FROM {orders} a WHERE a.auto_processed_at >= ? AND a.auto_processed_at <= ?"
)
BY_EVENTS = ORDER_SELECT + " FROM ({events}) ev JOIN {orders} o ON o.id = ev.id " + PARTY_JOINS
BY_IDS = ORDER_SELECT + " FROM {orders} o " + PARTY_JOINS + " WHERE o.id IN ({marks})"
NOTES_OF = (
    "SELECT dn.id AS note_id, dn.order_id, dn.printed_at FROM {delivery_notes} dn "
    "WHERE dn.order_id IN ({marks})"
)
ITEMS_OF = (
    "SELECT l.order_id, l.line_no, l.article_no, l.description, l.quantity, l.unit "
    "FROM {order_lines} l WHERE l.order_id IN ({marks}) ORDER BY l.order_id, l.line_no"
)
RECHECK = (
    "SELECT o.id AS order_id, o.review_mail, CASE WHEN " + INCOMPLETE + " THEN 1 ELSE 0 END "
    "AS incomplete, c.no_marketing FROM {orders} o JOIN {customers} c ON c.id = o.customer_id "
    "WHERE o.id IN ({marks})"
)
def key_of(order_id: object) -> str:
    return f"review:{order_id}"


@dataclass(frozen=True)
class _Window:
    """Event times whose request is due now and not aged out, and what counts as an event."""

    start: datetime  # naive local
    end: datetime  # naive local, <= now
    now: datetime  # naive local: later events are not seen (--as-of)
    on_print: bool
    on_auto: bool
    latest: bool  # only_complete_delivery: the last delivery note starts the clock


def _window(settings: Settings, clock: Clock) -> _Window:
    review = settings.review
    start, end = clock.event_window(review.delay_days, review.max_age_days)
    return _Window(
        start,
        end,
        clock.now,
        review.on_delivery_note_print,
        review.on_auto_processing,
        review.only_complete_delivery,
    )


@dataclass(frozen=True)
class ReviewRequests(Job):
    """``review-requests``."""

    name: str = "review-requests"
    batched: bool = True

    # --- planning -----------------------------------------------------------------------
    def plan(self, src: Sources, settings: Settings, clock: Clock) -> Iterator[Notification]:
        window = _window(settings, clock)
        start, end = window.start, window.end
        where, params = self._filters(settings, window)
        seen: set[str] = set()  # orders already judged (an order may have several events)

        def judged(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for row in rows:
                seen.add(str(row["order_id"]))
                yield row

        candidates = self.candidate_query(settings, clock)
        if candidates is not None:
            sql, bound = candidates
            for batch in batches(judged(src.query(sql, bound, key="order_id"))):
                yield from self._due(src, settings, clock, window, batch)
        # confirmations sent inside the window; ids as the ledger kept them (the driver's type)
        confirmed: dict[str, object] = {}
        utc_start = start.replace(tzinfo=clock.tz).astimezone(UTC)
        utc_end = end.replace(tzinfo=clock.tz).astimezone(UTC)
        for entry in src.ledger_sent_between("shipping", utc_start, utc_end):
            order_id = entry.info.get("order_id")
            if order_id is not None and str(order_id) not in seen:
                confirmed.setdefault(str(order_id), order_id)
        for ids in batches(confirmed.values()):
            found = src.lookup(BY_IDS.replace("{marks}", marks(len(ids))) + where, [*ids, *params])
            yield from self._due(src, settings, clock, window, found)

    def candidate_query(self, settings: Settings, clock: Clock) -> tuple[str, list[object]] | None:
        """The SQL selection of orders with a print / auto-processing event in the window,
        one row per order; None when neither event is enabled (only confirmations count)."""
        window = _window(settings, clock)
        arms = [
            arm
            for arm, enabled in (
                (PRINTED_IN_WINDOW, window.on_print),
                (AUTO_IN_WINDOW, window.on_auto),
            )
            if enabled
        ]
        if not arms:
            return None
        if len(arms) == 1:
            # UNION removes duplicates; one arm alone would list an order once per note
            arms[0] = arms[0].replace("SELECT ", "SELECT DISTINCT ", 1)
        where, params = self._filters(settings, window)
        sql = BY_EVENTS.replace("{events}", " UNION ".join(arms))
        # every filter starts with " AND": the first one opens the WHERE clause
        return sql + " WHERE" + where.removeprefix(" AND"), [
            *[bound for _ in arms for bound in (window.start, window.end)],
            *params,
        ]

    @staticmethod
    def _filters(settings: Settings, window: _Window) -> tuple[str, list[object]]:
        """SQL conditions on ``o`` that every due order meets (never drops a due one)."""
        review = settings.review
        if review.default_status:
            where = " AND (o.review_mail = 1 OR o.review_mail IS NULL)"
        else:
            where = " AND o.review_mail = 1"
        params: list[object] = []
        if window.latest:
            where += " AND NOT " + INCOMPLETE
        else:
            # the earliest event counts: one before the window means the request aged out
            if window.on_print:
                where += (
                    " AND NOT EXISTS (SELECT 1 FROM {delivery_notes} e WHERE e.order_id = o.id "
                    "AND e.printed_at < ?)"
                )
                params.append(window.start)
            if window.on_auto:
                where += " AND (o.auto_processed_at IS NULL OR o.auto_processed_at >= ?)"
                params.append(window.start)
        return where, params

    def _due(
        self,
        src: Sources,
        settings: Settings,
        clock: Clock,
        window: _Window,
        rows: Sequence[dict[str, Any]],
    ) -> Iterator[Notification]:
        """The due orders of one batch of candidates, with their exact trigger."""
        if not rows:
            return
        ids = [r["order_id"] for r in rows]
        notes = src.lookup(NOTES_OF.replace("{marks}", marks(len(ids))), ids)
        confirmations: dict[str, datetime] = {}  # shipping key -> first 'sent' (local)
        for entry in src.ledger_entries([shipping_key(n["note_id"]) for n in notes]):
            if entry.status != "sent" or entry.sent_at is None:
                continue
            sent = clock.local_of(entry.sent_at)
            if sent <= window.now and sent < confirmations.get(entry.key, datetime.max):
                confirmations[entry.key] = sent
        events: dict[str, list[tuple[datetime, str]]] = {}
        last_printed: dict[str, datetime] = {}  # per order: when its last note was printed
        unreadable: dict[str, RowError] = {}  # per order: a value its trigger depends on
        for note in notes:
            order = str(note["order_id"])
            per_note: list[tuple[datetime, str]] = []
            try:
                printed = to_datetime(note["printed_at"], "delivery_notes.printed_at")
            except RowError as exc:
                unreadable.setdefault(order, exc)
                continue
            if printed is not None and printed <= window.now:
                last_printed[order] = max(printed, last_printed.get(order, printed))
                if window.on_print:
                    per_note.append((printed, "print"))
            confirmed_at = confirmations.get(shipping_key(note["note_id"]))
            if confirmed_at is not None:
                per_note.append((confirmed_at, "confirmation"))
            if per_note:
                events.setdefault(order, []).append(min(per_note))
        due: list[tuple[dict[str, Any], tuple[datetime, str]]] = []
        failed: list[tuple[dict[str, Any], RowError]] = []
        for row in rows:
            order = str(row["order_id"])
            found = list(events.get(order, []))
            try:
                if order in unreadable:
                    raise unreadable[order]
                auto = to_datetime(row["auto_processed_at"], "orders.auto_processed_at")
            except RowError as exc:
                failed.append((row, exc))  # its trigger cannot be known: it fails, once
                continue
            if window.on_auto and auto is not None and auto <= window.now:
                found.append((auto, "auto_processing"))
            if not found:
                continue
            trigger = max(found) if window.latest else min(found)
            if window.latest and trigger[0] < last_printed.get(order, trigger[0]):
                # the last note has no enabled event yet (not confirmed): an earlier note's
                # must not start the clock; its confirmation will
                continue
            if window.start <= trigger[0] <= window.end:
                due.append((row, trigger))
        for row, problem in failed:
            yield self._failed(settings, row, problem)
        if not due:
            return
        portal = settings.review.portal_url.strip()
        if not portal and not any(shop.portal_url for shop in settings.shops.values()):
            raise ConfigError(
                "review.portal_url is not set: a review request needs the link to your review "
                'portal. Set it in [review], e.g. portal_url = "https://www.example.ch/bewertung" '
                "(it may contain {order_number}); nothing was sent by review-requests"
            )
        due_ids = [row["order_id"] for row, _ in due]
        lines: dict[str, list[dict[str, Any]]] = {}
        for line in src.lookup(ITEMS_OF.replace("{marks}", marks(len(due_ids))), due_ids):
            lines.setdefault(str(line["order_id"]), []).append(line)
        for row, (moment, kind) in due:
            lines_of = lines.get(str(row["order_id"]), [])
            try:
                shop = settings.shop(to_text(row.get("shop"), "orders.shop"))
                own = shop.portal_url if shop is not None and shop.portal_url else portal
                yield self._notification(row, moment, kind, own, lines_of)
            except ROW_ERRORS as exc:  # one row never stops a run: it fails, with the reason
                yield self._failed(settings, row, exc)

    @staticmethod
    def _failed(settings: Settings, row: dict[str, Any], exc: Exception) -> Notification:
        return failed_row(
            settings,
            exc,
            key=key_of(row["order_id"]),
            job="review",
            template="review",
            document=raw_document("Auftrag", row["order_number"], row["order_id"]),
            info={"order_id": row["order_id"]},
        )

    @staticmethod
    def _notification(
        row: dict[str, Any],
        trigger: datetime,
        kind: str,
        portal: str,
        lines: list[dict[str, Any]],
    ) -> Notification:
        """A review request; the objection and List-Unsubscribe of an advertising job are
        the runner's (``objections``), like for any advertising job."""
        if not portal:
            raise RowError(
                "orders.shop", row.get("shop"),
                "has no review portal: set review.portal_url, or portal_url under its [shops]",
            )  # fmt: skip
        party = party_of(row)
        context = order_context(row, party, use_contact=False)
        number = str(context["order_number"]) or str(row["order_id"])
        context.update(
            portal_url=portal.replace("{order_number}", quote(number, safe="")),
            delivered_at=trigger.date(),
            items=items_of(lines, "order_lines"),
        )
        return Notification(
            key=key_of(row["order_id"]),
            job="review",
            template="review",
            document=f"Auftrag {number}",
            party=party,
            shop=to_text(row.get("shop"), "orders.shop"),
            context=context,
            info={
                "order_id": row["order_id"],
                "trigger": trigger.isoformat(sep=" ", timespec="seconds"),
                "trigger_kind": kind,
            },
            ref=row["order_id"],
        )

    # --- right before sending -----------------------------------------------------------------
    def recheck(
        self, src: Sources, settings: Settings, clock: Clock, n: Notification
    ) -> Verdict:
        return self.recheck_many(src, settings, clock, [n])[0]

    def recheck_many(
        self, src: Sources, settings: Settings, clock: Clock, ns: Sequence[Notification]
    ) -> list[Verdict]:
        """Flag, completeness and the customer's objection (the ERP's flag) of each order,
        in one look-up (the opt-out list is the runner's, for every advertising job)."""
        ids = [n.ref for n in ns]
        rows = {
            str(row["order_id"]): row
            for row in src.lookup(RECHECK.replace("{marks}", marks(len(ids))), ids)
        }
        verdicts: list[Verdict] = []
        for n in ns:
            why = self._verdict(settings, rows.get(str(n.ref)))
            verdicts.append(None if why is None else NoLongerDue(why))
        return verdicts

    @staticmethod
    def _verdict(settings: Settings, row: dict[str, Any] | None) -> str | None:
        if row is None:
            return "the order no longer exists"
        flag = to_flag(row["review_mail"])
        if flag is False or (flag is None and not settings.review.default_status):
            return "the order's review flag no longer allows a review request"
        if settings.review.only_complete_delivery and to_flag(row["incomplete"]):
            return "the order is no longer completely delivered"
        # an objection made since the plan, by the ERP's flag, right now
        if to_flag(row["no_marketing"]) is True:
            return objections.NO_MARKETING
        # "at most one per order, ever" across channels is the runner's rule for every job
        return None
