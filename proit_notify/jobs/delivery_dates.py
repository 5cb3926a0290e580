"""Delivery-date notices (Lieferterminmail): one per order and promised date (SPEC §4).

Notice n of order X has the ledger key ``delivery_date:X:n``; its row's ``info`` holds the
date it announced. An order is notified when its current ``delivery_date`` differs from the
date of its standing notice (the latest one that is not superseded), so A → B → A gives
three notices, whatever the order's age.

Catch-up: the ERP has no "changed at" column, so a first run cannot tell a date set today
from one set a year ago. The FIRST real run of the job (no delivery-date row in the ledger
but baseline rows) records every open order's current date as a ``skipped`` row with the
detail :data:`BASELINE` and sends nothing; it ends with the row :data:`MARKER_KEY`, so an
ERP without open dated orders also has its baseline. From then on every date that differs
from the recorded one is notified, however long the tool was stopped. A run killed halfway
through the baseline leaves only baseline rows: the next run goes on with the baseline.
An installation that has delivery-date rows of an earlier version needs no baseline.
With ``delivery_date.notify_existing`` there is no baseline: every open date is notified.
A delivery date before today is never notified (it would announce the past).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from ..clock import Clock
from ..erp import to_date, to_text
from ..ledger import Entry
from ..settings import Settings
from . import (
    ITEMS_OF_ORDER,
    NOBODY,
    PARTY_COLUMNS,
    PARTY_JOINS,
    ROW_ERRORS,
    SAMPLE_COMMON,
    Job,
    NoLongerDue,
    Notification,
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
    "document": "Auftrag A-1234",
    "delivery_date": date(2026, 12, 4),
    "previous_delivery_date": date(2026, 12, 1),
}

#: ``detail`` of the rows of the first run (SPEC §4 "Baseline")
BASELINE = "baseline"
#: the row that says the baseline is complete (an ERP may have no open dated order at all)
MARKER_KEY = "delivery_date:baseline"
#: ``detail`` of a draft retired because the order's date changed again before it was sent
SUPERSEDED = "superseded by a newer delivery date"

# NULL delivered quantity = nothing delivered yet (ERPs leave it empty until the first note)
_OPEN_LINE = (
    "EXISTS (SELECT 1 FROM {order_lines} l WHERE l.order_id = o.id "
    "AND COALESCE(l.delivered_quantity, 0) < l.quantity)"
)
SELECT = (
    "SELECT o.id AS order_id, o.number AS order_number, o.order_date, o.shop, o.contact_id, "
    "o.delivery_date, " + PARTY_COLUMNS + " FROM {orders} o " + PARTY_JOINS
)
# delivery_date >= today: past dates are never notified; order_date < tomorrow: orders
# entered after --as-of are not seen.
CANDIDATES = (
    SELECT
    + " WHERE o.delivery_date IS NOT NULL AND o.delivery_date >= ? "
    + "AND (o.order_date IS NULL OR o.order_date < ?) AND "
    + _OPEN_LINE
)
STILL_DUE = (
    "SELECT o.delivery_date, CASE WHEN " + _OPEN_LINE + " THEN 1 ELSE 0 END AS open_lines "
    "FROM {orders} o WHERE o.id = ?"
)
BASELINE_NOTE = (
    "delivery-dates: first run, so the current delivery date of every open order is taken "
    "as the baseline (skipped, reason 'baseline') and nothing is sent; from the next run on "
    "every date that is set or changed is notified. To notify the existing dates instead, "
    "set delivery_date.notify_existing = true before this first run."
)
JOB = "delivery_date"
#: ``info`` flag of a notice that failed because the order's ERP row cannot be read
UNREADABLE = "unreadable"
#: row states that mean the customer got (or may have got) that notice
_REACHED = frozenset({"sent", "sending", "unknown"})


def key_of(order_id: object, n: int) -> str:
    return f"delivery_date:{order_id}:{n}"


def prefix_of(order_id: object) -> str:
    return f"delivery_date:{order_id}:"


@dataclass(frozen=True)
class _Notice:
    """One earlier notice of an order: its number, the date it announced, its rows."""

    n: int
    announced: date | None
    rows: tuple[Entry, ...]

    @property
    def statuses(self) -> set[str]:
        return {e.status for e in self.rows}

    @property
    def superseded(self) -> bool:
        """Retired before it reached the customer: the date changed again."""
        return any(e.detail == SUPERSEDED for e in self.rows) and not self.reached

    @property
    def reached(self) -> bool:
        return bool(self.statuses & _REACHED)


def _notices(entries: Iterable[Entry]) -> list[_Notice]:
    """The ledger rows of one order grouped by notice number, oldest first."""
    grouped: dict[int, list[Entry]] = {}
    for entry in entries:
        try:
            n = int(entry.key.rsplit(":", 1)[1])
        except ValueError:
            continue  # not a key this job wrote
        grouped.setdefault(n, []).append(entry)
    notices = []
    for n, rows in sorted(grouped.items()):
        text = next(
            (str(e.info["delivery_date"]) for e in rows if e.info.get("delivery_date")), None
        )
        notices.append(_Notice(n, date.fromisoformat(text) if text else None, tuple(rows)))
    return notices


def _previous(notices: Sequence[_Notice], before: int) -> date | None:
    """The date of the latest notice before number ``before`` that reached the customer."""
    for notice in reversed(notices):
        if notice.n < before and notice.reached:
            return notice.announced
    return None


@dataclass(frozen=True)
class DeliveryDates(Job):
    """``delivery-dates``: tell the customer the promised delivery date, once per date."""

    name: str = "delivery-dates"

    def plan(self, src: Sources, settings: Settings, clock: Clock) -> Iterator[Notification]:
        today = clock.today
        baseline = not settings.delivery_date.notify_existing and not src.ledger_started(
            JOB, BASELINE
        )
        taken = 0
        for row in src.query(CANDIDATES, [today, today + timedelta(days=1)], key="order_id"):
            notices = _notices(src.ledger_prefix(prefix_of(row["order_id"])))
            try:
                notice = self._for_order(src, row, notices, today, baseline)
            except ROW_ERRORS as exc:  # one row never stops a run: it fails, with the reason
                if baseline or (notices and UNREADABLE in notices[-1].rows[0].info):
                    # a baseline sends nothing; a row failed for its data already gets no
                    # new one until it can be read (or a person resolves it)
                    continue
                n = notices[-1].n + 1 if notices else 1
                yield failed_row(
                    settings,
                    exc,
                    key=key_of(row["order_id"], n),
                    job=JOB,
                    template="delivery_date",
                    document=raw_document("Auftrag", row["order_number"], row["order_id"]),
                    info={"order_id": row["order_id"], UNREADABLE: True},
                )
                continue
            if notice is None:
                continue
            if baseline:
                taken += 1
                notice = replace(notice, skip=BASELINE, note=BASELINE_NOTE)
            yield notice
        if baseline:
            yield _marker(taken)

    def _for_order(
        self,
        src: Sources,
        row: dict[str, object],
        notices: list[_Notice],
        today: date,
        baseline: bool,
    ) -> Notification | None:
        """The notice the order in ``row`` is due (None: nothing to tell)."""
        current = to_date(row["delivery_date"], "orders.delivery_date")
        if current is None:
            return None
        # a pending draft of another date is outdated: it is retired when the drafts are
        # listed or sent, and does not count as what the customer was told
        standing = [
            x
            for x in notices
            if not x.superseded
            and not ("draft" in x.statuses and x.announced != current)
            and not any(UNREADABLE in e.info for e in x.rows)
        ]
        if standing and standing[-1].announced == current:
            last = standing[-1]
            if "deferred" in last.statuses:  # the runner retries it when its back-off is over
                previous = _previous(notices, last.n)
                return self._notification(src, row, last.n, current, previous, baseline)
            return None
        n = notices[-1].n + 1 if notices else 1
        return self._notification(src, row, n, current, _previous(notices, n), baseline)

    def _notification(
        self,
        src: Sources,
        row: dict[str, object],
        n: int,
        current: date,
        previous: date | None,
        baseline: bool,
    ) -> Notification:
        party = party_of(row)
        use_contact = False  # SPEC §4: only shipping confirmations go to the contact
        context = order_context(row, party, use_contact)
        # a baseline row is never rendered: its order's items are not read
        items = (
            []
            if baseline
            else items_of(src.lookup(ITEMS_OF_ORDER, [row["order_id"]]), "order_lines")
        )
        context.update(delivery_date=current, previous_delivery_date=previous, items=items)
        number = context["order_number"] or str(row["order_id"])
        return Notification(
            key=key_of(row["order_id"], n),
            job=JOB,
            template="delivery_date",
            document=f"Auftrag {number} (Liefertermin {current:%d.%m.%Y})",
            party=party,
            shop=to_text(row.get("shop"), "orders.shop"),
            context=context,
            use_contact=use_contact,
            info={
                "order_id": row["order_id"],
                "order_number": number,
                "delivery_date": current.isoformat(),
                "previous_delivery_date": previous.isoformat() if previous else None,
            },
            ref=row["order_id"],
        )

    def recheck(
        self, src: Sources, settings: Settings, clock: Clock, n: Notification
    ) -> Verdict:
        for row in src.lookup(STILL_DUE, [n.ref]):
            current = to_date(row["delivery_date"], "orders.delivery_date")
            if current is None:
                return NoLongerDue("the order has no delivery date any more")
            if current.isoformat() != n.info.get("delivery_date"):
                return NoLongerDue(SUPERSEDED)
            if current < clock.today:
                return NoLongerDue("the delivery date has passed")
            if not int(row["open_lines"] or 0):
                return NoLongerDue("the order is completely delivered")
            return None
        return NoLongerDue("the order no longer exists")


def _marker(taken: int) -> Notification:
    """The row that ends the baseline (written after every baseline row)."""
    return Notification(
        key=MARKER_KEY,
        job=JOB,
        template="delivery_date",
        document=f"Baseline: current delivery dates of {taken} open order(s) recorded",
        party=NOBODY,
        shop=None,
        context={},
        info={"orders": taken},
        skip=f"baseline taken: {taken} open order(s); later changes are notified",
        note=BASELINE_NOTE,
    )
