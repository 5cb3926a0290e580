"""The one door out (SPEC §6): every message leaves through :meth:`Delivery.hand_over`.

Job runs, ``delivery-dates --edit`` and ``drafts send`` hand over the same way: gates
(``service.enabled``, the send window, the account's daily quota), lanes, parking and the
breaker, then claim -> send -> record. A channel is asked for its capacity per account
(:meth:`Channel.capacity`), never what it is made of.

What is in flight, and when to stop (docs: "Ledger"):

- A message is claimed only when a connection of its account is free
  (:class:`~proit_notify.sending.Dispatcher` lanes), right after the account was reached
  and the notification re-checked; so a crash leaves at most ``connections`` ``sending``
  rows per account, each one handed to the server. A message whose account has no free
  connection is parked, unclaimed, and the batch goes on with the next one: a stalled
  account never holds back another account's messages.
- Circuit breaker: an account whose server lost a message after its body (``unknown``), or
  gave :data:`BREAKER_LIMIT` temporary failures in a row, gets nothing more in this command
  run; its remaining notifications are reported ``deferred`` without a ledger row.
- A configuration-level failure (server unreachable, no greeting, TLS, login, no token)
  blocks the account for the command run without claiming anything: the report's
  ``blocked`` makes the CLI exit 4, on every run until it is fixed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from .channels import Channel, ChannelName, Outgoing, SendResult
from .clock import Clock
from .errors import Interrupted, UnreachableError
from .jobs import NoLongerDue
from .ledger import Ledger, Row
from .render import Rendered
from .report import ItemReport, ItemStatus, JobReport
from .sending import Dispatcher, Lane
from .settings import Settings, parse_window
from .statuses import Status

#: temporary failures (4xx, timeouts before DATA) in a row after which an account is stopped
BREAKER_LIMIT = 3
#: a server that asks to wait longer than this (Retry-After, seconds) stops its account for
#: the run at once: its other messages would only be refused the same way
PAUSE_LIMIT = 60.0
#: rendered messages that wait, unclaimed, for a free connection of their account
PARK_LIMIT = 100

ProgressHook = Callable[[ItemReport], None]


@dataclass(frozen=True)
class Handover:
    """One message ready to go out: its ledger row and what the channel gets.

    ``was``: the row's status before the claim (None: no row yet; ``deferred``: a retry;
    ``draft``: a reviewed draft), which is what a claim that never reached a server goes
    back to.
    """

    row: Row
    message: Outgoing
    was: Status | None
    preview: Rendered | None = None

    @property
    def key(self) -> str:
        return self.row.key

    @property
    def channel(self) -> ChannelName:
        return self.message.channel

    @property
    def account(self) -> str:
        return self.row.account

    @property
    def lane(self) -> Lane:
        return (self.channel, self.account)

    def item(self, status: ItemStatus, reason: str) -> ItemReport:
        row = self.row
        return ItemReport(
            row.key, row.document, row.channel, row.recipient, row.account, status, reason,
            self.preview, tuple(a.label for a in self.message.attachments),
        )  # fmt: skip


#: the re-check right before a hand-over: the hand-over to make (values maybe re-read), an
#: item that ends it (a retired draft, a row that cannot be read now), or no longer due
#: (nothing is sent or recorded)
Recheck = Callable[[], Handover | ItemReport | NoLongerDue]


@dataclass
class _LaneState:
    """One account's state in this command run."""

    prepared: bool = False
    temporary_in_row: int = 0
    stopped: str | None = None  # why the breaker stopped the account
    blocked: str | None = None  # the configuration-level failure
    held: int = 0  # notifications left unclaimed because of stopped/blocked


@dataclass
class Pass:
    """One pass of a batch: its report, dispatcher, the lanes it stopped, and the
    hand-overs parked until their account has a free connection (unclaimed)."""

    report: JobReport
    sender: Dispatcher[ItemReport]
    lanes: set[Lane] = field(default_factory=set)
    #: per account, in the order planned (a dict keeps the accounts in first-parked order)
    parked: dict[Lane, deque[tuple[Handover, Recheck]]] = field(default_factory=dict)


class Delivery:
    """Hands messages to the channels and records what they say (see the module)."""

    def __init__(
        self,
        *,
        settings: Settings,
        ledger: Ledger,
        channels: Mapping[str, Channel],
        clock: Clock,
        progress: ProgressHook | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        #: set by a stop signal (the CLI's): the run ends at the next safe point
        self.stop = stop if stop is not None else threading.Event()
        self.ledger = ledger
        self.channels = channels
        self.clock = clock
        self.progress = progress
        self._sent_today: dict[str, int] = {}  # per account, for max_per_day
        self._lanes: dict[Lane, _LaneState] = {}

    # --- gates ---------------------------------------------------------------------------

    def check_stop(self) -> None:
        """Raise :class:`Interrupted` when a stop was asked for. Called between messages,
        never between a claim and its hand-over: the batch then records what is in flight
        and nothing stays ``sending``."""
        if self.stop.is_set():
            raise Interrupted(
                "interrupted: the messages already handed over are recorded, nothing is left "
                "'sending'; the next run sends the rest"
            )

    def may_send(self, report: JobReport, dry_run: bool) -> bool:
        """``service.enabled``, the send days and the send windows: False (with a note) when
        nothing may go now. A dry run shows what a run in the window would send."""
        if not self.settings.service.enabled and not dry_run:
            report.disabled = True
            report.notes.append("service.enabled = false: nothing was sent")
            return False
        if dry_run:
            return True
        closed = self.clock.days.closed(self.clock.today)
        if closed is not None:
            report.notes.append(
                f"{closed}: nothing was sent; the next run on a send day sends it"
            )
            return False
        late = [self.not_now(c) for c in ("email", "sms") if c in self.channels]
        if late and all(late):
            why = "; ".join(dict.fromkeys(w for w in late if w))
            report.notes.append(f"{why}: nothing was sent; the next run in the window sends")
            return False
        return True

    def not_now(self, channel: str) -> str | None:
        """Why ``channel`` may not send at this hour ("outside sms.send_window 08:00-20:00
        (now 21:10)"), or None."""
        window = self.settings.window_of(channel)
        if window is None or self.clock.in_window(parse_window(window[1])):
            return None
        return f"outside {window[0]} {window[1]} (now {self.clock.now:%H:%M})"

    def over_daily_limit(self, channel: str, account: str | None, later: str) -> str | None:
        """``max_per_day`` of an email account: why this message must wait (counted when not).

        ``later`` says what sends it once the day is over (a run, ``drafts send``).
        """
        if channel != "email" or account is None:
            return None
        limit = self.settings.email.accounts[account].max_per_day
        if limit is None:
            return None
        if account not in self._sent_today:
            midnight = self.clock.start_of(self.clock.today).replace(tzinfo=self.clock.tz)
            self._sent_today[account] = self.ledger.count_sent(account, midnight)
        if self._sent_today[account] >= limit:
            return f"account {account} reached max_per_day ({limit}); {later}"
        self._sent_today[account] += 1
        return None

    def recover(self, report: JobReport) -> None:
        """Rows left ``sending`` by a run that ended abruptly become ``unknown`` (the caller
        holds the run lock); they are this report's items, so ``--json`` counts them."""
        recovered = self.ledger.recover_stale(self.clock.utc)
        for e in recovered:
            item = ItemReport(
                e.key, e.document, e.channel, e.recipient, e.account, "unknown", e.detail
            )
            self.add(report, item)
        if recovered:
            report.notes.append(
                f"{len(recovered)} notification(s) left 'sending' by an earlier run that "
                "ended abruptly are now 'unknown' and will not be resent: see "
                "'proit-notify history --status unknown', then 'proit-notify ledger resolve'"
            )

    def add(self, report: JobReport, item: ItemReport) -> None:
        report.items.append(item)
        if self.progress:
            self.progress(item)

    # --- a batch -------------------------------------------------------------------------

    @contextmanager
    def batch(self, report: JobReport) -> Iterator[Pass]:
        """One pass of hand-overs; at its end every message in flight is recorded (also when
        an error leaves the run), connections are closed and stopped accounts explained."""
        p = Pass(report, Dispatcher(self._capacity()))
        try:
            yield p
            self._unpark(p, until_empty=True)
            for item in p.sender.drain():
                self.add(report, item)
        finally:
            # an error is leaving the run: still record what is in flight, then stop
            for item in p.sender.drain(quiet=True):
                self.add(report, item)
            p.sender.close()
            for channel in self.channels.values():
                channel.close()
            for lane in self._lanes.values():
                lane.prepared = False  # the channels closed their connections
        self._explain_lanes(p)

    def finished(self, p: Pass) -> None:
        """Record the outcomes that came back meanwhile (never waits)."""
        for item in p.sender.ready():
            self.add(p.report, item)

    def _capacity(self) -> dict[Lane, int]:
        """Sending threads per account: what its channel can carry at once."""
        capacity: dict[Lane, int] = {}
        email = self.channels.get("email")
        if email is not None:
            for name in self.settings.email.accounts:
                capacity[("email", name)] = email.capacity(name)
        return capacity

    def _explain_lanes(self, p: Pass) -> None:
        for lane in sorted(p.lanes):
            state = self._lanes[lane]
            what = f"{lane[0]} account {lane[1]!r}" if lane[0] == "email" else f"SMS {lane[1]}"
            if state.blocked is not None:
                if state.blocked not in p.report.blocked:
                    p.report.blocked.append(state.blocked)
                p.report.notes.append(
                    f"{what} cannot be used ({state.blocked}); {state.held} notification(s) "
                    "were not claimed and go out on the first run after the fix"
                )
            elif state.stopped is not None:
                p.report.notes.append(
                    f"{what} stopped in this run: {state.stopped}; {state.held} "
                    "notification(s) were not claimed and go out on the next run"
                )

    # --- the one hand-over ---------------------------------------------------------------

    def hand_over(self, p: Pass, h: Handover, recheck: Recheck) -> ItemReport | NoLongerDue | None:
        """Hand over now when the account has a free connection; else park it, unclaimed,
        and go on with the next notification: a busy or stalled account does not make
        another account's messages wait (docs: "What is in flight"). At most
        :data:`PARK_LIMIT` messages wait per account: then the run waits for that account
        (memory stays bounded however many notifications a stalled account has).

        An item when the message did not go out now, None when it is in flight or parked
        (its outcome comes back later), or :class:`NoLongerDue`.
        """
        self._unpark(p)
        state = self._lanes.get(h.lane)
        # a stopped or blocked account answers at once (deferred, unclaimed): never parked
        held = state is not None and (state.blocked is not None or state.stopped is not None)
        if not held and (h.lane in p.parked or not p.sender.has_room(h.lane)):
            while len(p.parked.get(h.lane, ())) >= PARK_LIMIT:
                for finished in p.sender.wait_any():
                    self.add(p.report, finished)
                self._unpark(p)
            p.parked.setdefault(h.lane, deque()).append((h, recheck))
            return None
        return self._hand_over_now(p, h, recheck)

    def _unpark(self, p: Pass, *, until_empty: bool = False) -> None:
        """Hand over the parked messages whose account has room now, in their order;
        ``until_empty``: wait for room until none is left (the end of a pass)."""
        while p.parked:
            for lane, queue in list(p.parked.items()):
                while queue and p.sender.has_room(lane):
                    self.check_stop()  # a parked message is unclaimed: it stays so
                    h, recheck = queue.popleft()
                    item = self._hand_over_now(p, h, recheck)
                    if isinstance(item, ItemReport):
                        self.add(p.report, item)
                if not queue:
                    del p.parked[lane]
            if not until_empty or not p.parked:
                return
            # every account left parked has all its connections busy: wait for one
            for finished in p.sender.wait_any():
                self.add(p.report, finished)

    def _hand_over_now(
        self, p: Pass, h: Handover, recheck: Recheck
    ) -> ItemReport | NoLongerDue | None:
        """Wait for a free connection of the account, reach it, re-check, claim, hand over."""
        lane = h.lane
        state = self._lanes.setdefault(lane, _LaneState())
        later = "still a draft" if h.was == "draft" else "not claimed"
        if state.blocked is None and state.stopped is None:
            # the outcomes taken while waiting may stop the account: looked at below
            for finished in p.sender.wait_for_room(lane):
                self.add(p.report, finished)
        if state.blocked is not None or state.stopped is not None:
            p.lanes.add(lane)
            state.held += 1
            why = state.blocked or state.stopped
            return h.item("deferred", f"{later}: account {h.account!r} {_held(state)} ({why})")
        channel = self.channels.get(h.channel)
        if channel is None:
            return h.item("failed", f"channel {h.channel} is not configured")
        if not state.prepared:
            try:
                channel.prepare(h.message.account)
            except UnreachableError as exc:
                state.blocked = str(exc)
                p.lanes.add(lane)
                state.held += 1
                return h.item("deferred", f"{later}: {exc}")
            state.prepared = True
        checked = recheck()
        if not isinstance(checked, Handover):
            return checked
        h = checked
        tomorrow = (
            "'drafts send' tomorrow sends it" if h.was == "draft" else "a run tomorrow sends it"
        )
        limited = self.over_daily_limit(h.channel, h.account, f"{later}, {tomorrow}")
        if limited:
            return h.item("deferred", limited)
        # the channel's CPU work (the email's bytes) here, in the runner's thread: the
        # sending thread then only waits on the socket and never holds the GIL for long
        message = channel.encode(h.message)
        h = replace(h, row=replace(h.row, message_id=channel.message_id(message)))
        if not self._claim(h):
            return h.item("skipped", "claimed by another run")

        def done(future: Future[SendResult]) -> ItemReport:
            return self._outcome(p, h, state, future)

        p.sender.submit(lane, channel, message, done)
        return None

    def _claim(self, h: Handover) -> bool:
        """The row becomes ``sending``, committed, before the channel is spoken to."""
        now = self.clock.utc
        if h.was == "draft":
            return self.ledger.transition(
                h.key, h.channel, from_status="draft", to="sending", now=now
            )
        return self.ledger.claim(h.row, now)

    def _outcome(
        self, p: Pass, h: Handover, state: _LaneState, future: Future[SendResult]
    ) -> ItemReport:
        """Record what the server said, and keep the account's breaker."""
        now = self.clock.utc
        try:
            result = future.result()
        except UnreachableError as exc:
            # a new connection failed: nothing was handed over, the claim is undone
            self.ledger.release(h.key, h.channel, back_to=h.was, now=now, detail=f"not sent: {exc}")
            state.blocked = state.blocked or str(exc)
            p.lanes.add(h.lane)
            state.held += 1
            return h.item("deferred", f"not sent: {exc}")
        status = self.ledger.record(h.key, h.channel, result, now)
        assert status != "sending"  # record() stores an outcome, never a claim
        if h.was == "draft" and status == "deferred":
            # a later job run would re-render the template and lose the edit: the reviewed
            # text waits as a draft for the next 'drafts send' instead
            self.ledger.set_status(h.key, h.channel, "draft", now, f"not sent yet: {result.detail}")
        if status == "unknown":
            state.stopped = state.stopped or (
                "the server lost a message after its body, so it may not accept more"
            )
            p.lanes.add(h.lane)
        elif status == "deferred":
            state.temporary_in_row += 1
            wait = result.retry_after
            if wait is not None and wait > PAUSE_LIMIT and state.stopped is None:
                state.stopped = f"the server asked to wait {wait:g} s (Retry-After)"
                p.lanes.add(h.lane)
            if state.temporary_in_row >= BREAKER_LIMIT and state.stopped is None:
                state.stopped = (
                    f"{state.temporary_in_row} temporary failures in a row (last: {result.detail})"
                )
                p.lanes.add(h.lane)
        else:
            state.temporary_in_row = 0
        return h.item(status, "" if status == "sent" else result.detail)


def _held(state: _LaneState) -> str:
    return "cannot be used" if state.blocked is not None else "was stopped in this run"


__all__ = ["Delivery", "Handover", "Pass", "Recheck"]
