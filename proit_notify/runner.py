"""Planning: notifications -> recipients -> re-checked, rendered hand-overs.

The runner asks a job for its notifications, resolves each one's targets (channel and
recipient, :mod:`.targets`), renders the message and hands it to the :class:`Delivery`,
which claims, sends and records (the one door out). What needs no server (a problem row,
a dry run's plan, a draft) is recorded here. It is handed every collaborator (ERP, ledger,
renderer, delivery, clock), so tests and the CLI assemble it the same way; it never
prints, it reports.

Re-checks: right before a message goes out its job is asked again (a payment booked, a
note unprinted since); a batched job answers for many planned notifications in one query,
and an answer is used for at most :data:`RECHECK_MAX_AGE` seconds.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from . import objections, qr_bill
from .attachments import Attacher, Collected
from .channels import Attachment, ChannelName, Outgoing
from .clock import Clock
from .delivery import Delivery, Handover, Pass
from .erp import Erp
from .errors import ErpError, RowError, TemplateError
from .jobs import (
    BATCH,
    ROW_ERRORS,
    Document,
    Job,
    NoLongerDue,
    Notification,
    Payment,
    Verdict,
    batches,
    row_problem,
)
from .jobs.registry import spec
from .ledger import Entry, Ledger, Row
from .ledger.bounces import Bounce
from .redaction import one_line
from .render import Rendered, Renderer
from .report import ItemReport, ItemStatus, JobReport, Tally
from .settings import Settings
from .statuses import Status
from .targets import Target, targets

#: seconds a batched re-check verdict may be old when its message is handed over
RECHECK_MAX_AGE = 2.0

#: shows a person a rendered message for review (``delivery-dates --edit``): returns the
#: edited message, or None to keep it as a draft instead of sending it now
EditHook = Callable[[Rendered, str], Rendered | None]


@dataclass(frozen=True)
class RunOptions:
    """Job options of the command line (SPEC §7).

    ``drafts``: store each rendered message as a ``draft`` ledger row instead of sending it
    (reviewed with ``proit-notify drafts``). ``edit``: a person edits each one before it is
    sent. ``job``: the options of one job (``--delivery-note``), by the names its registry
    entry gives them.
    """

    dry_run: bool = False
    limit: int | None = None
    preview: bool = False
    delivery_notes: tuple[str, ...] = ()
    drafts: bool = False
    edit: EditHook | None = None


def job_options(name: str, settings: Settings, options: RunOptions) -> RunOptions:
    """A job's options in a run: drafts when its settings say so (``delivery_date.
    edit_before_send``). ``--edit`` wins: a person reviews each notice right now."""
    if spec(name).drafts(settings) and not options.edit:
        return replace(options, drafts=True)
    return options


class ErpSources:
    """The read access a job gets (see ``jobs.Sources``)."""

    def __init__(self, erp: Erp, ledger: Ledger, tally: Tally | None = None) -> None:
        self._erp = erp
        self._ledger = ledger
        self._tally = tally if tally is not None else Tally()

    def query(self, template: str, params: Sequence[object], key: str) -> Iterator[dict[str, Any]]:
        tally = self._tally
        if tally.counting and tally.sized:
            try:
                tally.add(self._erp.count(template, params))
            except ErpError:
                # the total only serves the progress line: a COUNT the ERP refuses (a
                # statement timeout on a large selection, where each page is quick) leaves
                # the line without a total and the run goes on
                tally.sized = False
        for row in self._erp.pages(template, params, key):
            tally.read += 1
            yield row

    def lookup(self, template: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        return self._erp.lookup(template, params)

    def ledger_prefix(self, prefix: str) -> list[Entry]:
        return self._ledger.with_prefix(prefix)

    def ledger_sent_between(self, job: str, start: datetime, end: datetime) -> list[Entry]:
        sent = self._ledger.sent_between(job, start, end)
        # rows of the selection too, found and read at once
        if self._tally.counting:
            self._tally.add(len(sent))
        self._tally.read += len(sent)
        return sent

    def ledger_entries(self, keys: Sequence[str]) -> list[Entry]:
        # one primary-key look-up per key: exact, unlike a LIKE prefix scan
        return [entry for key in keys for entry in self._ledger.entries(key)]

    def ledger_started(self, job: str, baseline: str) -> bool:
        return self._ledger.started(job, baseline)

    def opted_out(self, forms: Iterable[str]) -> set[str]:
        return self._ledger.optout.holding(forms)


class Runner:
    """Plans jobs and hands their messages to the delivery."""

    def __init__(
        self,
        *,
        settings: Settings,
        erp: Erp,
        ledger: Ledger,
        renderer: Renderer,
        delivery: Delivery,
        clock: Clock,
        tally: Tally | None = None,
    ) -> None:
        self.settings = settings
        self.erp = erp
        self.ledger = ledger
        self.renderer = renderer
        self.delivery = delivery
        self.clock = clock
        #: how far the current job run is (the progress line)
        self.tally = tally if tally is not None else Tally()
        self.sources = ErpSources(erp, ledger, self.tally)
        self.attacher = Attacher(settings, clock)
        self._qr_bills: dict[tuple[object, str], Attachment] = {}
        self._templates_checked = False
        #: addresses that bounced (read once per job run: a short list)
        self._bounced: dict[str, Bounce] = {}

    def check_templates(self) -> None:
        """Exit 3 before anything is sent when a template is broken (SPEC §5)."""
        if self._templates_checked:
            return
        problems = self.renderer.check_with(self.settings.shop_templates)
        if problems:
            raise TemplateError("a message template is broken; nothing was sent", tuple(problems))
        self._templates_checked = True

    def run(self, job: Job, options: RunOptions, report: JobReport | None = None) -> JobReport:
        """Plan ``job``'s notifications and send (or, in a dry run, list) them.

        ``report``: the caller's, filled as the run goes, so that what was done before an
        error (the ERP gone mid-run) is still there to show and to record.
        """
        report = report if report is not None else JobReport(job.name, options.dry_run)
        self.tally.start(job.name, time.monotonic())
        if not self.delivery.may_send(report, options.dry_run):
            return report
        self.check_templates()
        if not options.dry_run:
            self.delivery.recover(report)
        elif self.ledger.note:
            report.notes.append(self.ledger.note)
        self._note_gap(job, report)
        self._bounced = {b.address: b for b in self.ledger.bounces.entries()}
        with self.delivery.batch(report) as p:
            self._plan_and_send(job, options, p)
        return report

    def _note_gap(self, job: Job, report: JobReport) -> None:
        """A pause longer than the job's catch-up window: what aged out gets a line (and an
        alert), since it has no ledger row (docs: "Catch-up and pauses")."""
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

    # --- the plan ------------------------------------------------------------------------

    def _plan_and_send(self, job: Job, options: RunOptions, p: Pass) -> None:
        now = self.clock.utc
        done = 0
        rechecks = _Rechecks(self, job)
        add = functools.partial(self.delivery.add, p.report)
        plan = _planned(job.plan(self.sources, self.settings, self.clock), self.tally)
        if spec(job.name).advertising:
            plan = self._advertised(plan)
        for n in _through(rechecks.ahead(plan), self.tally):
            self.delivery.check_stop()
            if n.note and n.note not in p.report.notes:
                p.report.notes.append(n.note)
            bad_key = key_problem(n.key)
            if bad_key is not None:  # it cannot even be recorded: reported, every run
                add(ItemReport(n.key[:60], n.document, "none", "", "", "failed", bad_key))
                continue
            handled = {e.channel: e for e in self.ledger.entries(n.key)}
            recheck = _Once(functools.partial(rechecks.verdict, n))
            planned = self._targets(n)
            due = [t for t in planned if self._due(t, handled)]
            if options.delivery_notes:  # asked for by number: say why one is not sent
                for target in planned:
                    if target not in due and target.channel in handled:
                        entry = handled[target.channel]
                        when = self.clock.local_of(entry.updated_at)
                        add(_item(n, target, "skipped", _handled(entry, when)))
            files, waiting = self._documents(n, due, options)
            if waiting is not None:
                # the whole notification waits, unclaimed: a channel sent alone now would
                # make the other one look handled
                for target in due:
                    add(_item(n, target, "waiting", waiting))
                continue
            if files.problem is not None:
                due = [t if t.problem else _failing(t, files.problem) for t in due]

            for target in due:
                existing = handled.get(target.channel)
                # a skip sends nothing, so --limit does not count it: a limited first run
                # still takes the whole delivery-date baseline
                if options.limit is not None and done >= options.limit and n.skip is None:
                    return
                # rendered while the previous message is still on its way to the server
                rendered = None
                if target.problem is None:
                    rendered, target = self._render_or_fail(n, target)
                item: ItemReport | NoLongerDue | None
                if rendered is not None and not options.dry_run and not options.drafts:
                    message = (
                        rendered if options.edit is None else options.edit(rendered, target.channel)
                    )
                    if message is not None:
                        item = self._send(
                            p, n, target, message, options, existing, recheck, files,
                            edited=message != rendered,
                        )  # fmt: skip
                        if isinstance(item, NoLongerDue):
                            break  # no longer due (paid, changed, ...): nothing is recorded
                        if target.channel == "email":
                            self._without(p.report, n, files, dry_run=False)
                    else:  # the person saved nothing: it waits in the drafts
                        if isinstance(recheck(), NoLongerDue):
                            break
                        item = self._keep_draft(n, target, rendered, options, self.clock.utc)
                else:
                    # a skip or a failure sends nothing, so there is nothing to re-check
                    verdict = recheck() if n.skip is None and n.problem is None else n
                    if isinstance(verdict, NoLongerDue):
                        break  # no longer due: nothing is recorded (nor planned)
                    if verdict.problem is not None and target.problem is None:
                        target, rendered = _failing(target, verdict.problem), None
                    item = self._record_now(n, target, rendered, options, now, files)
                if n.skip is None:
                    done += 1
                if item is not None:
                    add(item)
                self.delivery.finished(p)

    def _advertised(self, plan: Iterator[Notification]) -> Iterator[Notification]:
        """An advertising job's notifications with the objections applied (SPEC §5): the
        opt-out list is asked once per batch of :data:`~proit_notify.jobs.BATCH`."""
        for batch in batches(plan):
            opted = self._opted_out(batch)
            for n in batch:
                yield objections.advertised(n, opted, self.settings)

    def _opted_out(self, ns: Sequence[Notification]) -> set[str]:
        """The forms of ``ns``'s addresses that are on the opt-out list (one look-up)."""
        region = self.settings.service.country
        return self.sources.opted_out(
            f
            for n in ns
            for kept in objections.forms_of_party(n.party, region).values()
            for f in kept
        )

    def _targets(self, n: Notification) -> list[Target]:
        """The recipients of ``n``; a row whose values break the rules' reading fails."""
        try:
            return targets(n, self.settings, self._bounced)
        except ROW_ERRORS as exc:
            why = row_problem(self.settings, exc, n.key)
            return [Target("none", "", None, "", why, "failed")]

    def _due(self, target: Target, handled: dict[str, Entry]) -> bool:
        """Whether ``target`` is still to be done: not handled on this channel (unless its
        retry is due), nor on another one (unless the email bounced: ``on_hard = "sms"``)."""
        existing = handled.get(target.channel)
        if existing is None and handled and not _after_bounce(handled, target):
            # handled on another channel already: a customer who changed info type or
            # number since must not get the same notification a second time
            return False
        return existing is None or self._retry_due(existing)

    def _documents(
        self, n: Notification, due: Sequence[Target], options: RunOptions
    ) -> tuple[Collected, str | None]:
        """The files of ``n``'s email, and why the notification waits, unclaimed (outside a
        channel's send window, a file the ERP is still writing), or None."""
        going = [t for t in due if t.problem is None]
        if not going or n.skip is not None or n.problem is not None:
            return Collected(), None
        if not options.dry_run:
            for target in going:
                late = self.delivery.not_now(target.channel)
                if late is not None:
                    return Collected(), f"{late}; the next run in the window sends it"
        if not n.documents or all(t.channel != "email" for t in going):
            return Collected(), None
        files = self.attacher.collect(n.documents)
        return files, files.waiting

    def _attached(
        self, n: Notification, target: Target, files: Collected
    ) -> tuple[Attachment, ...]:
        """What ``n``'s email carries: the ERP's files, and a QR-bill for an open invoice
        whose PDF is not among them (SPEC §11). A :class:`RowError` when the QR-bill cannot
        be made of the ERP's values."""
        if target.channel != "email":
            return ()
        found = files.files
        qr = self.settings.prepayment.qr_bill
        for doc in n.documents:
            payment = self._qr_for(doc, files)
            if payment is None:
                continue
            language = self.renderer.language_used(n.party.language, n.template)
            cached = (payment, language)
            if cached not in self._qr_bills:
                if len(self._qr_bills) > 64:
                    self._qr_bills.clear()
                assert qr is not None
                self._qr_bills[cached] = qr_bill.make(qr, payment, language)
            found += (self._qr_bills[cached],)
        return found

    def _without(
        self, report: JobReport | None, n: Notification, files: Collected, *, dry_run: bool
    ) -> str:
        """The alert's word on an email that goes without a file it should carry (none for
        an invoice a QR-bill stands in for); the reason a dry run shows."""
        replaced = {d.kind for d in n.documents if self._qr_for(d, files) is not None}
        said = []
        for kind, why in files.without:
            if kind in replaced:
                continue
            said.append(f"{'would go' if dry_run else 'goes'} without {why}")
            text = f"{n.document} goes without {why}"
            if report is not None and text not in report.attention:
                report.notes.append(text)
                report.attention.append(text)
        return "; ".join(said)

    def _qr_for(self, doc: Document, files: Collected) -> Payment | None:
        """The open amount a QR-bill is made for in place of ``doc``'s missing PDF."""
        payment = doc.payment
        if self.settings.prepayment.qr_bill is None or payment is None:
            return None
        if doc.kind in files.attached or not qr_bill.applies(payment):
            return None
        return payment

    def _retry_due(self, entry: Entry) -> bool:
        if entry.status != "deferred":
            return False
        return entry.next_attempt_at is None or entry.next_attempt_at <= self.clock.utc

    def render(self, n: Notification, target: Target) -> Rendered:
        """``n``'s message on ``target``'s channel, in its shop's templates if it has own."""
        context = {**n.context, "document": n.document}
        shop = self.settings.shop(n.shop)
        renderer = self.renderer.for_folder(shop.templates_dir if shop is not None else None)
        if target.channel == "sms":
            text = renderer.sms(
                n.template, language=n.party.language, country=n.party.country, context=context
            )
            return Rendered(subject="", text=text, html=None)
        return renderer.email(
            n.template, language=n.party.language, country=n.party.country, context=context
        )

    def _render_or_fail(self, n: Notification, target: Target) -> tuple[Rendered | None, Target]:
        """The rendered message, or none and the target failing with the reason: the
        templates passed their check with sample values before the run, so what fails now
        is this row's data (a number babel cannot format, a value a filter refuses)."""
        try:
            return self.render(n, target), target
        except (TemplateError, *ROW_ERRORS) as exc:
            why = row_problem(self.settings, exc, n.key) if isinstance(exc, RowError) else str(exc)
            return None, _failing(target, f"cannot render the message: {why}")

    # --- what needs no server ------------------------------------------------------------

    def _record_now(
        self,
        n: Notification,
        target: Target,
        rendered: Rendered | None,
        options: RunOptions,
        now: datetime,
        files: Collected,
    ) -> ItemReport:
        """What needs no server: a problem row, a dry run's plan (with what it would
        attach), a draft."""
        if target.problem is not None:
            if not options.dry_run:
                self._claim_row(n, target, now, dict(n.info), target.problem_status, target.problem)
            return _item(n, target, target.problem_status, target.problem)
        assert rendered is not None
        if options.dry_run:
            try:
                attached = self._attached(n, target, files)
            except ROW_ERRORS as exc:
                return _item(n, target, "failed", row_problem(self.settings, exc, n.key))
            channel = self.delivery.channels.get(target.channel)
            if target.channel != "none" and channel is not None:
                # what send() would refuse without a server (a forged header) shows now
                refused = channel.refuse(self._outgoing(n, target, target.channel, rendered))
                if refused is not None:
                    return _item(n, target, "failed", refused)
            without = self._without(None, n, files, dry_run=True)
            item = _item(n, target, "planned", without, rendered if options.preview else None)
            return replace(item, attachments=tuple(a.label for a in attached))
        return self._keep_draft(n, target, rendered, options, now)

    def _keep_draft(
        self,
        n: Notification,
        target: Target,
        rendered: Rendered,
        options: RunOptions,
        now: datetime,
    ) -> ItemReport:
        from .drafts import Payload  # drafts read the ledger and the runner's hand-overs

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

    def _claim_row(
        self,
        n: Notification,
        target: Target,
        now: datetime,
        info: dict[str, Any],
        status: Status,
        detail: str,
    ) -> bool:
        return self.ledger.claim(_row(n, target, info), now, status=status, detail=detail)

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
                n.key, target.channel, from_status=existing.status, to="failed", now=now,
                detail=reason,
            )  # fmt: skip
        return _item(n, target, "failed", reason)

    # --- the hand-over -------------------------------------------------------------------

    def _send(
        self,
        p: Pass,
        n: Notification,
        target: Target,
        rendered: Rendered,
        options: RunOptions,
        existing: Entry | None,
        recheck: Callable[[], Notification | NoLongerDue],
        files: Collected,
        *,
        edited: bool = False,
    ) -> ItemReport | NoLongerDue | None:
        assert target.channel != "none"
        channel: ChannelName = target.channel

        def handover(
            note: Notification, message: Rendered, attached: tuple[Attachment, ...] = ()
        ) -> Handover:
            info = {**note.info, "edited": True} if edited else dict(note.info)
            if attached:
                info["attachments"] = [a.filename for a in attached]
            return Handover(
                row=_row(note, target, info),
                message=self._outgoing(note, target, channel, message, attached),
                was=None if existing is None else existing.status,
                preview=message if options.preview else None,
            )

        def checked() -> Handover | ItemReport | NoLongerDue:
            verdict = recheck()
            if isinstance(verdict, NoLongerDue):
                return verdict
            if verdict.problem is not None:  # its ERP row cannot be read any more
                return self._fail_now(n, target, existing, verdict.problem)
            message = rendered
            if verdict != n and not edited:
                # still due, with values re-read right before sending (a part payment)
                again, retarget = self._render_or_fail(verdict, target)
                if again is None:
                    return self._fail_now(n, target, existing, retarget.problem or "")
                message = again
            note = n if edited else verdict
            try:  # the QR-bill is made for the amount open now
                attached = self._attached(note, target, files)
            except ROW_ERRORS as exc:
                return self._fail_now(n, target, existing, row_problem(self.settings, exc, n.key))
            return handover(note, message, attached)

        return self.delivery.hand_over(p, handover(n, rendered), checked)

    def _outgoing(
        self,
        n: Notification,
        target: Target,
        channel: ChannelName,
        message: Rendered,
        attached: tuple[Attachment, ...] = (),
    ) -> Outgoing:
        """What a channel gets for notification ``n`` on ``target``: an email with its
        files and in its shop's name (``[shops]`` ``sender_name``)."""
        shop = self.settings.shop(n.shop)
        email = channel == "email"
        return Outgoing(
            key=n.key,
            channel=channel,
            to=target.to,
            to_name=target.to_name,
            subject=message.subject,
            text=message.text,
            html=message.html,
            account=target.account if email else None,
            document=n.document,
            headers=n.headers if email else (),
            attachments=attached if email else (),
            from_name=shop.sender_name if email and shop is not None else None,
        )

    # --- re-checks -----------------------------------------------------------------------

    def recheck(self, job: Job, n: Notification) -> Notification | NoLongerDue:
        """Right before the hand-over: the notification (maybe with re-read values), no
        longer due, or ``n`` with a ``problem`` when its row cannot be read now."""
        try:
            return job.recheck(self.sources, self.settings, self.clock, n) or n
        except ROW_ERRORS as exc:
            return replace(n, problem=row_problem(self.settings, exc, n.key))


def _planned(plan: Iterator[Notification], tally: Tally) -> Iterator[Notification]:
    """``plan``, counted as the job makes each notification (before any read-ahead)."""
    for n in plan:
        tally.planned += 1
        yield n


def _through(ns: Iterator[Notification], tally: Tally) -> Iterator[Notification]:
    """``ns``, each counted as gone through when the next one is asked for."""
    for n in ns:
        yield n
        tally.finished += 1


def _row(n: Notification, target: Target, info: dict[str, Any]) -> Row:
    """The ledger row of notification ``n`` on ``target``: with whom it was for and where
    its address came from, so that a bounce can name the customer and what to fix."""
    if target.field:
        party = n.party
        info = {**info, "customer": {"id": party.customer_id, "name": party.name},
                "address_field": target.field}  # fmt: skip
    return Row(n.key, target.channel, n.job, n.document, target.to, target.account, info)


def _handled(entry: Entry, when: datetime) -> str:
    """Why a notification asked for by its number is not sent again, and the way back
    (``when``: the row's last change, local)."""
    said = f"already {entry.status} on {when:%d.%m.%Y %H:%M}"
    if entry.detail:
        said += f" ({one_line(entry.detail)[:200]})"
    if entry.status in {"failed", "bounced", "unknown"}:
        return f"{said}; once it is fixed, 'proit-notify ledger resolve {entry.key} --resend'"
    if entry.status == "deferred":
        return f"{said}; a later run retries it after its back-off"
    return f"{said}: it is not sent twice"


def _after_bounce(handled: dict[str, Entry], target: Target) -> bool:
    """The SMS of a notification whose email bounced (``bounces.on_hard = "sms"``): the
    one second channel a handled notification may still go out on, once."""
    return target.channel == "sms" and all(
        e.channel == "email" and e.status == "bounced" for e in handled.values()
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
    is batched: the notification about to be handed over and the next ones planned, up to
    :data:`~proit_notify.jobs.BATCH`. A verdict is used for at most :data:`RECHECK_MAX_AGE`
    seconds; an older one is asked again, so a message never goes out on a re-check older
    than that (a slow server cannot stretch it).
    """

    def __init__(self, runner: Runner, job: Job) -> None:
        self._runner = runner
        self._job = job
        self._batched = bool(getattr(job, "batched", False))
        #: an objection made since the plan is honoured right before sending (SPEC §5)
        self._advertising = spec(job.name).advertising
        #: planned (the ones ahead, and the parked ones), not yet asked about, in plan order
        self._planned: dict[str, Notification] = {}
        self._answers: dict[str, tuple[float, Notification | NoLongerDue]] = {}

    def ahead(self, plan: Iterator[Notification]) -> Iterator[Notification]:
        """The plan, read up to a batch ahead (so their re-checks can go together)."""
        if not self._batched:
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

    def verdict(self, n: Notification) -> Notification | NoLongerDue:
        """``n`` itself (maybe with re-read values) if still due, else no longer due."""
        self._planned.pop(n.key, None)
        answer = self._answers.pop(n.key, None)
        if answer is not None and time.monotonic() - answer[0] <= RECHECK_MAX_AGE:
            return answer[1]
        r = self._runner
        if not self._batched:
            return self._objected([n], [r.recheck(self._job, n)])[0] or n
        # n and the next ones planned: a fresh verdict for each (an old one is replaced)
        batch = [n, *itertools.islice(self._planned.values(), BATCH - 1)]
        try:
            verdicts = self._job.recheck_many(r.sources, r.settings, r.clock, batch)
        except ROW_ERRORS:
            # one row of the batch cannot be read: ask about this one alone (its own
            # failure, if it is the one); the others are asked when their turn comes
            return self._objected([n], [r.recheck(self._job, n)])[0] or n
        verdicts = self._objected(batch, verdicts)
        asked = time.monotonic()
        # answers nobody asked for in time (a notification passed over) are of no use
        self._answers = {
            k: a for k, a in self._answers.items() if asked - a[0] <= RECHECK_MAX_AGE
        }
        for m, v in zip(batch[1:], verdicts[1:], strict=True):
            self._answers[m.key] = (asked, v or m)
        return verdicts[0] or n


    def _objected(
        self, ns: Sequence[Notification], verdicts: Sequence[Verdict]
    ) -> list[Verdict]:
        """The verdicts, with an advertising job's notifications whose customer is on the
        opt-out list now no longer due (one look-up for all of them)."""
        if not self._advertising:
            return list(verdicts)
        opted = self._runner._opted_out(ns)
        region = self._runner.settings.service.country
        found: list[Verdict] = []
        for n, verdict in zip(ns, verdicts, strict=True):
            why = None if isinstance(verdict, NoLongerDue) else objections.objection(
                n.party, opted, region
            )
            found.append(verdict if why is None else NoLongerDue(why))
        return found


class _Once:
    """A notification's re-check, asked at most once (its targets share the answer)."""

    def __init__(self, ask: Callable[[], Notification | NoLongerDue]) -> None:
        self._ask = ask
        self._answer: Notification | NoLongerDue | None = None

    def __call__(self) -> Notification | NoLongerDue:
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
