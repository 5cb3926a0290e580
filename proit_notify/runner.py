"""The run loop: notifications → recipients → re-check → ledger claim → channel → ledger.

The runner is the one component that claims, re-checks, hands over and records (SPEC §6):
job runs, ``delivery-dates --edit`` and ``drafts send`` all go through
:meth:`Runner._hand_over`. It is handed every collaborator (ERP, ledger, renderer,
channels, clock) so that tests and the CLI assemble it the same way. It never prints; it
reports.

What is in flight, and when to stop (README "Ledger"):

- A message is claimed only when a connection of its account is free
  (:class:`~proit_notify.sending.Dispatcher` lanes), right after the account was reached
  and the job re-checked the notification; so a crash leaves at most ``connections``
  ``sending`` rows per account, each one handed to the server. A message whose account
  has no free connection is parked, unclaimed, and the batch goes on with the next one:
  a stalled account never holds back another account's messages.
- Circuit breaker: an account whose server lost a message after its body (``unknown``), or
  gave :data:`BREAKER_LIMIT` temporary failures in a row, gets nothing more in this command
  run; its remaining notifications are reported ``deferred`` without a ledger row.
- A configuration-level failure (server unreachable, no greeting, TLS, login) blocks the
  account for the command run without claiming anything: the report's ``blocked`` makes
  the CLI exit 4, on every run until it is fixed.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .channels import Channel, ChannelName, Outgoing, SendResult
from .clock import Clock
from .drafts import Draft, Payload, list_drafts
from .erp import Erp
from .errors import RowError, TemplateError, UnreachableError
from .jobs import BATCH, NOBODY, ROW_ERRORS, BatchRecheck, Job, Notification, row_problem
from .jobs.registry import of_key, spec
from .ledger import Entry, Ledger, Status
from .render import Rendered, Renderer
from .report import ItemReport, ItemStatus, JobReport
from .sending import Dispatcher, Lane
from .settings import Settings
from .targets import Target, targets

#: temporary failures (4xx, timeouts before DATA) in a row after which an account is stopped
BREAKER_LIMIT = 3
#: rendered messages that wait, unclaimed, for a free connection of their account
PARK_LIMIT = 100
#: seconds a batched re-check verdict may be old when its message is handed over
RECHECK_MAX_AGE = 2.0

#: shows a person a rendered message for review (``delivery-dates --edit``): returns the
#: edited message, or None to keep it as a draft instead of sending it now
EditHook = Callable[[Rendered, str], Rendered | None]
ProgressHook = Callable[[ItemReport], None]



@dataclass(frozen=True)
class RunOptions:
    """Job options of the command line (SPEC §7).

    ``drafts``: store each rendered message as a ``draft`` ledger row instead of sending it
    (reviewed with ``proit-notify drafts``). ``edit``: a person edits each one before it is sent.
    """

    dry_run: bool = False
    limit: int | None = None
    preview: bool = False
    delivery_notes: tuple[str, ...] = ()
    drafts: bool = False
    edit: EditHook | None = None


def job_options(name: str, settings: Settings, options: RunOptions) -> RunOptions:
    """A job's options in a run: drafts when its setting says so (delivery_date.edit_before_send).

    ``--edit`` wins: a person reviews each notice right now, so it is sent after the edit.
    """
    if (
        spec(name).ledger_name == "delivery_date"
        and settings.delivery_date.edit_before_send
        and not options.edit
    ):
        return replace(options, drafts=True)
    return options


class ErpSources:
    """The read access a job gets (see ``jobs.Sources``)."""

    def __init__(self, erp: Erp, ledger: Ledger) -> None:
        self._erp = erp
        self._ledger = ledger

    def query(self, template: str, params: Sequence[object], key: str) -> Iterator[dict[str, Any]]:
        return self._erp.pages(template, params, key)

    def lookup(self, template: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        return self._erp.lookup(template, params)

    def ledger_prefix(self, prefix: str) -> list[Entry]:
        return self._ledger.with_prefix(prefix)

    def ledger_sent_between(self, job: str, start: datetime, end: datetime) -> list[Entry]:
        return self._ledger.sent_between(job, start, end)

    def ledger_entries(self, keys: Sequence[str]) -> list[Entry]:
        # one primary-key look-up per key: exact, unlike a LIKE prefix scan
        return [entry for key in keys for entry in self._ledger.entries(key)]

    def ledger_started(self, job: str, baseline: str) -> bool:
        return self._ledger.started(job, baseline)

    def opted_out(self, forms: Iterable[str]) -> set[str]:
        return self._ledger.optout.holding(forms)


@dataclass(frozen=True)
class Handover:
    """One message ready to go out: its ledger row and what the channel gets.

    ``was``: the row's status before the claim (None: no row yet; ``deferred``: a retry;
    ``draft``: a reviewed draft), which is what a claim that never reached a server goes
    back to.
    """

    key: str
    job: str
    document: str
    channel: ChannelName
    account: str
    recipient: str
    message: Outgoing
    info: Mapping[str, Any]
    was: Status | None
    preview: Rendered | None = None

    @property
    def lane(self) -> Lane:
        return (self.channel, self.account)

    def item(self, status: ItemStatus, reason: str) -> ItemReport:
        return ItemReport(
            self.key,
            self.document,
            self.channel,
            self.recipient,
            self.account,
            status,
            reason,
            self.preview,
        )


#: the re-check right before a hand-over: the hand-over to make (values maybe re-read), an
#: item that ends it (a retired draft), or None (no longer due: nothing is sent or recorded)
Recheck = Callable[[], Handover | ItemReport | None]


@dataclass
class _LaneState:
    """One account's state in this command run."""

    prepared: bool = False
    temporary_in_row: int = 0
    stopped: str | None = None  # why the breaker stopped the account
    blocked: str | None = None  # the configuration-level failure
    held: int = 0  # notifications left unclaimed because of stopped/blocked


@dataclass
class _Pass:
    """One pass of the loop: its report, dispatcher, the lanes it stopped, and the
    hand-overs parked until their account has a free connection (unclaimed)."""

    report: JobReport
    sender: Dispatcher[ItemReport]
    lanes: set[Lane] = field(default_factory=set)
    #: per account, in the order planned (a dict keeps the accounts in first-parked order)
    parked: dict[Lane, deque[tuple[Handover, Recheck]]] = field(default_factory=dict)


class Runner:
    """Runs jobs against the collaborators it is handed."""

    def __init__(
        self,
        *,
        settings: Settings,
        erp: Erp,
        ledger: Ledger,
        renderer: Renderer,
        channels: Mapping[str, Channel],
        clock: Clock,
        progress: ProgressHook | None = None,
    ) -> None:
        self.settings = settings
        self.erp = erp
        self.ledger = ledger
        self.renderer = renderer
        self.channels = channels
        self.clock = clock
        self.progress = progress
        self.sources = ErpSources(erp, ledger)
        self._templates_checked = False
        self._sent_today: dict[str, int] = {}  # per account, for max_per_day
        self._lanes: dict[Lane, _LaneState] = {}

    # --- entry points --------------------------------------------------------------------

    def check_templates(self) -> None:
        """Exit 3 before anything is sent when a template is broken (SPEC §5)."""
        if self._templates_checked:
            return
        problems = self.renderer.check()
        if problems:
            raise TemplateError("a message template is broken; nothing was sent", tuple(problems))
        self._templates_checked = True

    def run(self, job: Job, options: RunOptions, report: JobReport | None = None) -> JobReport:
        """Plan ``job``'s notifications and send (or, in a dry run, list) them.

        ``report``: the caller's, filled as the run goes, so that what was done before an
        error (the ERP gone mid-run) is still there to show and to record.
        """
        report = report if report is not None else JobReport(job.name, options.dry_run)
        if not self._may_send(report, options.dry_run):
            return report
        self.check_templates()
        if not options.dry_run:
            self.recover(report)
        elif self.ledger.note:
            report.notes.append(self.ledger.note)
        self._note_gap(job, report)
        self._loop(report, lambda p: self._plan_and_send(job, options, p))
        return report

    def _note_gap(self, job: Job, report: JobReport) -> None:
        """A pause longer than the job's catch-up window: what aged out gets a line (and an
        alert), since it has no ledger row (README "Catch-up and pauses")."""
        job_spec = spec(job.name)
        window = job_spec.window
        if window is None:
            return
        max_age = window(self.settings)
        before = self.ledger.runs.previous_start(job.name, self.clock.utc)
        if before is None:
            return
        last_day = self.clock.local_of(before).date()
        oldest = self.clock.oldest_due_day(max_age)
        if (oldest - last_day).days <= 1:
            return
        key = f"{job_spec.ledger_name}.max_age_days"
        text = (
            f"{job.name} did not run from {last_day:%d.%m.%Y} until today, longer than {key} "
            f"({max_age} days): what fell due from {last_day + timedelta(days=1):%d.%m.%Y} to "
            f"{oldest - timedelta(days=1):%d.%m.%Y} has aged out and is not sent. To send it "
            f"anyway, run {job.name} once with {key} = {(self.clock.today - last_day).days}."
        )
        report.notes.append(text)
        report.attention.append(text)

    def send_drafts(self, drafts: Sequence[Draft]) -> JobReport:
        """``drafts send``: each reviewed draft through the same hand-over as a run."""
        report = JobReport("drafts send", dry_run=False)
        if not self._may_send(report, dry_run=False):
            return report
        self.recover(report)

        def send_all(p: _Pass) -> None:
            for d in drafts:
                item = self._hand_over(p, self._draft_handover(d), self._draft_recheck(d))
                if item is not None:
                    self._add(p.report, item)

        self._loop(report, send_all)
        return report

    def retire_drafts(self) -> list[tuple[Draft, str]]:
        """Drafts no longer due (date changed again, order delivered) become ``skipped``."""
        retired = []
        for d in list_drafts(self.ledger):
            reason = self._recheck_draft(d)
            if reason is not None and self.ledger.transition(
                d.key,
                d.entry.channel,
                from_status="draft",
                to="skipped",
                now=self.clock.utc,
                detail=reason,
            ):
                retired.append((d, reason))
        return retired

    def recover(self, report: JobReport) -> None:
        """Rows left ``sending`` by a run that ended abruptly become ``unknown`` (the caller
        holds the run lock); they are this report's items, so ``--json`` counts them."""
        recovered = self.ledger.recover_stale(self.clock.utc)
        for e in recovered:
            item = ItemReport(
                e.key, e.document, e.channel, e.recipient, e.account, "unknown", e.detail
            )
            self._add(report, item)
        if recovered:
            report.notes.append(
                f"{len(recovered)} notification(s) left 'sending' by an earlier run that "
                "ended abruptly are now 'unknown' and will not be resent: see "
                "'proit-notify history --status unknown', then 'proit-notify ledger resolve'"
            )

    # --- the loop ------------------------------------------------------------------------

    def _may_send(self, report: JobReport, dry_run: bool) -> bool:
        if not self.settings.service.enabled and not dry_run:
            report.disabled = True
            report.notes.append("service.enabled = false: nothing was sent")
            return False
        window = self.settings.service.window
        if not dry_run and not self.clock.in_window(window):
            report.notes.append(
                f"outside service.send_window {self.settings.service.send_window} "
                f"(now {self.clock.now:%H:%M}): nothing was sent; the next run in the window sends"
            )
            return False
        return True

    def _loop(self, report: JobReport, body: Callable[[_Pass], None]) -> None:
        p = _Pass(report, Dispatcher(self._capacity()))
        try:
            body(p)
            self._unpark(p, until_empty=True)
            for item in p.sender.drain():
                self._add(report, item)
        finally:
            # an error is leaving the run: still record what is in flight, then stop
            for item in p.sender.drain(quiet=True):
                self._add(report, item)
            p.sender.close()
            for channel in self.channels.values():
                channel.close()
            for lane in self._lanes.values():
                lane.prepared = False  # the channels closed their connections
        self._explain_lanes(p)

    def _capacity(self) -> dict[Lane, int]:
        """Sending threads per account: an SMTP account's ``connections``, else one."""
        capacity: dict[Lane, int] = {}
        for name, account in self.settings.email.accounts.items():
            capacity[("email", name)] = account.connections if account.transport == "smtp" else 1
        return capacity

    def _explain_lanes(self, p: _Pass) -> None:
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

    def _add(self, report: JobReport, item: ItemReport) -> None:
        report.items.append(item)
        if self.progress:
            self.progress(item)

    def _plan_and_send(self, job: Job, options: RunOptions, p: _Pass) -> None:
        now = self.clock.utc
        done = 0
        rechecks = _Rechecks(self, job)
        for n in rechecks.ahead(job.plan(self.sources, self.settings, self.clock)):
            if n.note and n.note not in p.report.notes:
                p.report.notes.append(n.note)
            bad_key = key_problem(n.key)
            if bad_key is not None:  # it cannot even be recorded: reported, every run
                unkept = ItemReport(n.key[:60], n.document, "none", "", "", "failed", bad_key)
                self._add(p.report, unkept)
                continue
            handled = {e.channel: e for e in self.ledger.entries(n.key)}
            recheck = _Once(functools.partial(rechecks.verdict, n))

            for target in self._targets(n):
                existing = handled.get(target.channel)
                if existing is None and handled:
                    # handled on another channel already: a customer who changed info type
                    # or number since must not get the same notification a second time
                    continue
                if existing is not None and not self._retry_due(existing):
                    continue
                # a skip sends nothing, so --limit does not count it: a limited first run
                # still takes the whole delivery-date baseline
                if options.limit is not None and done >= options.limit and n.skip is None:
                    return
                # rendered while the previous message is still on its way to the server
                rendered = None
                if target.problem is None:
                    rendered, target = self._render_or_fail(n, target)
                item: ItemReport | None
                if rendered is not None and not options.dry_run and not options.drafts:
                    message = (
                        rendered if options.edit is None else options.edit(rendered, target.channel)
                    )
                    if message is not None:
                        item = self._send(
                            p,
                            n,
                            target,
                            message,
                            options,
                            existing,
                            recheck,
                            edited=message != rendered,
                        )
                        if item is _NO_LONGER_DUE:
                            break  # no longer due (paid, changed, ...): nothing is recorded
                    else:  # the person saved nothing: it waits in the drafts
                        if isinstance(recheck(), str):
                            break
                        item = self._keep_draft(n, target, rendered, options, self.clock.utc)
                else:
                    # a skip or a failure sends nothing, so there is nothing to re-check
                    verdict = recheck() if n.skip is None and n.problem is None else n
                    if isinstance(verdict, str):
                        break  # no longer due: nothing is recorded (nor planned)
                    if verdict.problem is not None and target.problem is None:
                        target, rendered = _failing(target, verdict.problem), None
                    item = self._record_now(n, target, rendered, options, now)
                if n.skip is None:
                    done += 1
                if item is not None:
                    self._add(p.report, item)
                for finished in p.sender.ready():
                    self._add(p.report, finished)

    def _record_now(
        self,
        n: Notification,
        target: Target,
        rendered: Rendered | None,
        options: RunOptions,
        now: datetime,
    ) -> ItemReport:
        """What needs no server: a problem row, a dry run's plan, a draft."""

        if target.problem is not None:
            if not options.dry_run:
                self._claim_row(n, target, now, dict(n.info), target.problem_status, target.problem)
            return _item(n, target, target.problem_status, target.problem)
        assert rendered is not None
        if options.dry_run:
            channel = self.channels.get(target.channel)
            if target.channel != "none" and channel is not None:
                # what send() would refuse without a server (a forged header) shows now
                refused = channel.refuse(_outgoing(n, target, target.channel, rendered))
                if refused is not None:
                    return _item(n, target, "failed", refused)
            return _item(n, target, "planned", "", rendered if options.preview else None)
        return self._keep_draft(n, target, rendered, options, now)

    def _keep_draft(
        self,
        n: Notification,
        target: Target,
        rendered: Rendered,
        options: RunOptions,
        now: datetime,
    ) -> ItemReport:
        payload = Payload(
            command=n.job,
            ref=n.ref,
            to_name=target.to_name,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
        )
        info = {**n.info, "draft": payload.as_info()}
        claimed = self._claim_row(
            n, target, now, info, "draft", "waiting for review: proit-notify drafts list"
        )
        return _item(
            n,
            target,
            "draft" if claimed else "skipped",
            "" if claimed else "claimed by another run",
            rendered if options.preview else None,
        )

    def _targets(self, n: Notification) -> list[Target]:
        """The recipients of ``n``; a row whose values break the rules' reading fails."""
        try:
            return targets(n, self.settings)
        except ROW_ERRORS as exc:
            why = row_problem(self.settings, exc, n.key)
            return [Target("none", "", None, "", why, "failed")]

    def _render_or_fail(self, n: Notification, target: Target) -> tuple[Rendered | None, Target]:
        """The rendered message, or none and the target failing with the reason: the
        templates passed their check with sample values before the run, so what fails now
        is this row's data (a number babel cannot format, a value a filter refuses)."""
        try:
            return self.render(n, target), target
        except (TemplateError, *ROW_ERRORS) as exc:
            why = row_problem(self.settings, exc, n.key) if isinstance(exc, RowError) else str(exc)
            return None, _failing(target, f"cannot render the message: {why}")

    def _fail_now(
        self, n: Notification, target: Target, existing: Entry | None, reason: str
    ) -> ItemReport:
        """Record a notification that fails right before its hand-over (a row the re-check
        could not read): a new ``failed`` row, or its ``deferred`` row becomes ``failed``."""
        now = self.clock.utc
        if existing is None:
            self._claim_row(n, target, now, dict(n.info), "failed", reason)
        else:
            self.ledger.transition(
                n.key,
                target.channel,
                from_status=existing.status,
                to="failed",
                now=now,
                detail=reason,
            )
        return _item(n, target, "failed", reason)

    def _claim_row(
        self,
        n: Notification,
        target: Target,
        now: datetime,
        info: dict[str, Any],
        status: Status,
        detail: str,
    ) -> bool:
        return self.ledger.claim(
            key=n.key,
            channel=target.channel,
            job=n.job,
            document=n.document,
            recipient=target.to,
            account=target.account,
            now=now,
            info=info,
            status=status,
            detail=detail,
        )

    def _send(
        self,
        p: _Pass,
        n: Notification,
        target: Target,
        rendered: Rendered,
        options: RunOptions,
        existing: Entry | None,
        recheck: Callable[[], Notification | str],
        *,
        edited: bool = False,
    ) -> ItemReport | None:
        assert target.channel != "none"
        channel: ChannelName = target.channel

        def handover(note: Notification, message: Rendered) -> Handover:
            info = {**note.info, "edited": True} if edited else dict(note.info)
            return Handover(
                key=note.key,
                job=note.job,
                document=note.document,
                channel=channel,
                account=target.account,
                recipient=target.to,
                info=info,
                was=None if existing is None else existing.status,
                preview=message if options.preview else None,
                message=_outgoing(note, target, channel, message),
            )

        def checked() -> Handover | ItemReport | None:
            verdict = recheck()
            if isinstance(verdict, str):
                return None
            if verdict.problem is not None:  # its ERP row cannot be read any more
                return self._fail_now(n, target, existing, verdict.problem)
            if verdict != n and not edited:
                # still due, with values re-read right before sending (a part payment)
                again, retarget = self._render_or_fail(verdict, target)
                if again is None:
                    return self._fail_now(n, target, existing, retarget.problem or "")
                return handover(verdict, again)
            return handover(n, rendered)

        item = self._hand_over(p, handover(n, rendered), checked)
        return _NO_LONGER_DUE if item is _NO_LONGER_DUE else item

    # --- the one hand-over ---------------------------------------------------------------

    def _hand_over(self, p: _Pass, h: Handover, recheck: Recheck) -> ItemReport | None:
        """Hand over now when the account has a free connection; else park it, unclaimed,
        and go on with the next notification: a busy or stalled account does not make
        another account's messages wait (README "What is in flight"). At most
        :data:`PARK_LIMIT` messages wait per account: then the run waits for that account
        (memory stays bounded however many notifications a stalled account has).

        Returns an item when the message did not go out now, None when it is in flight or
        parked (its outcome comes back later), or ``_NO_LONGER_DUE``.
        """
        self._unpark(p)
        state = self._lanes.get(h.lane)
        # a stopped or blocked account answers at once (deferred, unclaimed): never parked
        held = state is not None and (state.blocked is not None or state.stopped is not None)
        if not held and (h.lane in p.parked or not p.sender.has_room(h.lane)):
            while len(p.parked.get(h.lane, ())) >= PARK_LIMIT:
                for finished in p.sender.wait_any():
                    self._add(p.report, finished)
                self._unpark(p)
            p.parked.setdefault(h.lane, deque()).append((h, recheck))
            return None
        return self._hand_over_now(p, h, recheck)

    def _unpark(self, p: _Pass, *, until_empty: bool = False) -> None:
        """Hand over the parked messages whose account has room now, in their order;
        ``until_empty``: wait for room until none is left (the end of a pass)."""
        while p.parked:
            for lane, queue in list(p.parked.items()):
                while queue and p.sender.has_room(lane):
                    h, recheck = queue.popleft()
                    item = self._hand_over_now(p, h, recheck)
                    if item is not None and item is not _NO_LONGER_DUE:
                        self._add(p.report, item)
                if not queue:
                    del p.parked[lane]
            if not until_empty or not p.parked:
                return
            # every account left parked has all its connections busy: wait for one
            for finished in p.sender.wait_any():
                self._add(p.report, finished)

    def _hand_over_now(self, p: _Pass, h: Handover, recheck: Recheck) -> ItemReport | None:
        """Wait for a free connection of the account, reach it, re-check, claim, hand over."""
        lane = h.lane
        state = self._lanes.setdefault(lane, _LaneState())
        later = "still a draft" if h.was == "draft" else "not claimed"
        if state.blocked is None and state.stopped is None:
            # the outcomes taken while waiting may stop the account: looked at below
            for finished in p.sender.wait_for_room(lane):
                self._add(p.report, finished)
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
        if checked is None:
            return _NO_LONGER_DUE
        if isinstance(checked, ItemReport):
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
        now = self.clock.utc
        if h.was == "draft":
            claimed = self.ledger.transition(
                h.key, h.channel, from_status="draft", to="sending", now=now
            )
        else:
            claimed = self.ledger.claim(
                key=h.key,
                channel=h.channel,
                job=h.job,
                document=h.document,
                recipient=h.recipient,
                account=h.account,
                now=now,
                info=dict(h.info),
            )
        if not claimed:
            return h.item("skipped", "claimed by another run")

        def done(future: Future[SendResult]) -> ItemReport:
            return self._outcome(p, h, state, future)

        p.sender.submit(lane, channel, message, done)
        return None

    def _outcome(
        self, p: _Pass, h: Handover, state: _LaneState, future: Future[SendResult]
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
            if state.temporary_in_row >= BREAKER_LIMIT and state.stopped is None:
                state.stopped = (
                    f"{state.temporary_in_row} temporary failures in a row (last: {result.detail})"
                )
                p.lanes.add(h.lane)
        else:
            state.temporary_in_row = 0
        return h.item(status, "" if status == "sent" else result.detail)

    # --- drafts --------------------------------------------------------------------------

    def _draft_handover(self, d: Draft) -> Handover:
        e = d.entry
        channel: ChannelName = "sms" if e.channel == "sms" else "email"
        return Handover(
            key=e.key,
            job=e.job,
            document=e.document,
            channel=channel,
            account=e.account,
            recipient=e.recipient,
            info=e.info,
            was="draft",
            message=Outgoing(
                key=e.key,
                channel=channel,
                to=e.recipient,
                to_name=d.payload.to_name,
                subject=d.payload.subject,
                text=d.payload.text,
                html=d.payload.html,
                account=e.account if channel == "email" else None,
                document=e.document,
            ),
        )

    def _draft_recheck(self, d: Draft) -> Recheck:
        def recheck() -> Handover | ItemReport | None:
            h = self._draft_handover(d)
            reason = self._recheck_draft(d)
            if reason is None:
                return h
            retired = self.ledger.transition(
                d.key,
                d.entry.channel,
                from_status="draft",
                to="skipped",
                now=self.clock.utc,
                detail=reason,
            )
            why = reason if retired else "no longer a draft: sent or discarded by someone else"
            return h.item("skipped", why)

        return recheck

    def _recheck_draft(self, d: Draft) -> str | None:
        """The job's re-check of a draft: None if still due, else why not."""
        job_spec = of_key(d.key)
        if job_spec is None:
            return None  # a job this version does not know: leave the decision to a person
        n = Notification(
            key=d.key,
            job=d.entry.job,
            template=job_spec.template,
            document=d.entry.document,
            party=NOBODY,
            shop=None,
            context={},
            info=d.entry.info,
            ref=d.payload.ref,
        )
        verdict = job_spec.make(()).recheck(self.sources, self.settings, self.clock, n)
        return verdict if isinstance(verdict, str) else None

    # --- helpers -------------------------------------------------------------------------

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

    def _recheck(self, job: Job, n: Notification) -> Notification | str:
        """Right before the hand-over: the notification (maybe with re-read values), why
        it is no longer due, or ``n`` with a ``problem`` when its row cannot be read now."""
        try:
            return job.recheck(self.sources, self.settings, self.clock, n) or n
        except ROW_ERRORS as exc:
            return replace(n, problem=row_problem(self.settings, exc, n.key))

    def _retry_due(self, entry: Entry) -> bool:
        if entry.status != "deferred":
            return False
        return entry.next_attempt_at is None or entry.next_attempt_at <= self.clock.utc

    def render(self, n: Notification, target: Target) -> Rendered:
        context = {**n.context, "document": n.document}
        if target.channel == "sms":
            text = self.renderer.sms(
                n.template, language=n.party.language, country=n.party.country, context=context
            )
            return Rendered(subject="", text=text, html=None)
        return self.renderer.email(
            n.template, language=n.party.language, country=n.party.country, context=context
        )


def _outgoing(n: Notification, target: Target, channel: ChannelName, message: Rendered) -> Outgoing:
    """What a channel gets for notification ``n`` on ``target``."""
    return Outgoing(
        key=n.key,
        channel=channel,
        to=target.to,
        to_name=target.to_name,
        subject=message.subject,
        text=message.text,
        html=message.html,
        account=target.account if channel == "email" else None,
        document=n.document,
        headers=n.headers if channel == "email" else (),
    )


def _item(
    n: Notification,
    target: Target,
    status: ItemStatus,
    reason: str,
    preview: Rendered | None = None,
) -> ItemReport:
    """The report line of a notification on a target that never reached a hand-over."""
    return ItemReport(
        n.key, n.document, target.channel, target.to, target.account, status, reason, preview
    )


class _Rechecks:
    """The re-checks of a job run, asked for many notifications in one query when the job
    can (:class:`~proit_notify.jobs.BatchRecheck`): the notification about to be handed
    over and the next ones planned, up to :data:`~proit_notify.jobs.BATCH`. A verdict is
    used for at most :data:`RECHECK_MAX_AGE` seconds; an older one is asked again, so a
    message never goes out on a re-check older than that (a slow server cannot stretch it).
    """

    def __init__(self, runner: Runner, job: Job) -> None:
        self._runner = runner
        self._job = job
        self._many = job if isinstance(job, BatchRecheck) else None
        #: planned (the ones ahead, and the parked ones), not yet asked about, in plan order
        self._planned: dict[str, Notification] = {}
        self._answers: dict[str, tuple[float, Notification | str]] = {}

    def ahead(self, plan: Iterator[Notification]) -> Iterator[Notification]:
        """The plan, read up to a batch ahead (so their re-checks can go together)."""
        if self._many is None:
            yield from plan
            return
        buffer: deque[Notification] = deque()
        for n in plan:
            buffer.append(n)
            if n.skip is None:
                self._planned[n.key] = n
                if len(self._planned) > 4 * BATCH:
                    # one that was never asked about (handled already): forget the oldest
                    del self._planned[next(iter(self._planned))]
            if len(buffer) > BATCH:
                yield buffer.popleft()
        while buffer:
            yield buffer.popleft()

    def verdict(self, n: Notification) -> Notification | str:
        """``n`` itself (maybe with re-read values) if still due, else why not."""
        self._planned.pop(n.key, None)
        answer = self._answers.pop(n.key, None)
        if answer is not None and time.monotonic() - answer[0] <= RECHECK_MAX_AGE:
            return answer[1]
        if self._many is None:
            return self._runner._recheck(self._job, n)
        # n and the next ones planned: a fresh verdict for each (an old one is replaced)
        batch = [n, *itertools.islice(self._planned.values(), BATCH - 1)]
        r = self._runner
        try:
            verdicts = self._many.recheck_many(r.sources, r.settings, r.clock, batch)
        except ROW_ERRORS:
            # one row of the batch cannot be read: ask about this one alone (its own
            # failure, if it is the one); the others are asked when their turn comes
            return r._recheck(self._job, n)
        asked = time.monotonic()
        # answers nobody asked for in time (a notification passed over) are of no use
        self._answers = {
            k: a for k, a in self._answers.items() if asked - a[0] <= RECHECK_MAX_AGE
        }
        for m, v in zip(batch[1:], verdicts[1:], strict=True):
            self._answers[m.key] = (asked, v or m)
        return verdicts[0] or n


class _Once:
    """A notification's re-check, asked at most once (its targets share the answer)."""

    def __init__(self, ask: Callable[[], Notification | str]) -> None:
        self._ask = ask
        self._answer: Notification | str | None = None

    def __call__(self) -> Notification | str:
        if self._answer is None:
            self._answer = self._ask()
        return self._answer


#: the longest ledger key every ledger's column holds (VARCHAR(190) on the servers)
MAX_KEY = 190


def key_problem(key: str) -> str | None:
    """Why a notification's key cannot be a ledger row (an ERP id of megabytes, or not
    valid UTF-8), or None. Such a notification is reported failed, and never sent."""
    if len(key) > MAX_KEY:
        return f"its ERP id is {len(key):,} characters long: it cannot be kept in the ledger"
    try:
        key.encode("utf-8")
    except UnicodeError:
        return "its ERP id is not valid UTF-8 text: it cannot be kept in the ledger"
    return None


def _failing(target: Target, reason: str) -> Target:
    """``target`` as a failure with ``reason`` (recorded, nothing is sent)."""
    return replace(target, problem=reason, problem_status="failed")


def _held(state: _LaneState) -> str:
    return "cannot be used" if state.blocked is not None else "was stopped in this run"


#: marks "the re-check says this notification is no longer due" (nothing is recorded)
_NO_LONGER_DUE = ItemReport("", "", "", "", "", "skipped", "no longer due")
