"""The runner: notifications → recipients → ledger claim → channel → ledger (SPEC §4, §6).

The runner is handed every collaborator (ERP, ledger, renderer, channels, clock) so that
tests and the CLI assemble it the same way. It never prints; it reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from .channels import Channel, ChannelName, Outgoing, SendResult
from .channels.email import check_address
from .clock import Clock
from .countries import country_code
from .erp import Erp
from .errors import TemplateError, UnreachableError
from .jobs import Job, Notification, Party
from .ledger import Entry, Ledger, Status
from .phones import to_e164_mobile
from .render import Rendered, Renderer
from .sending import Dispatcher
from .settings import Settings

ItemStatus = Literal["planned", "sent", "failed", "skipped", "deferred", "unknown", "draft"]
COUNT_NAMES = ("sent", "failed", "skipped", "deferred", "unknown", "planned")


#: shows a person a rendered message for review (``delivery-dates --edit``): returns the
#: edited message, or None to keep it as a draft instead of sending it now
EditHook = Callable[[Rendered, str], Rendered | None]


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


def json_value(value: object) -> object:
    """An ERP id as JSON keeps it bindable: integral Decimals (NUMERIC ids) become ints."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if value is None or isinstance(value, int | str | float):
        return value
    return str(value)


def draft_info(command: str, n: Notification, target: Target, rendered: Rendered) -> dict[str, Any]:
    """What a ``draft`` row keeps in ``info["draft"]`` to be sent later without re-rendering."""
    return {
        "command": command,  # the job that re-checks it before it is sent
        "ref": json_value(n.ref),
        "to_name": target.to_name,
        "subject": rendered.subject,
        "text": rendered.text,
        "html": rendered.html,
        "edited": False,
    }


@dataclass(frozen=True)
class Target:
    """One channel a notification goes out on, or why it cannot."""

    channel: ChannelName | Literal["none"]
    to: str
    to_name: str | None
    account: str
    problem: str | None = None
    problem_status: Literal["failed", "skipped"] = "failed"


@dataclass(frozen=True)
class ItemReport:
    """One line of a job's result (the ``items`` of ``--json``)."""

    key: str
    document: str
    channel: str
    recipient: str
    account: str
    status: ItemStatus
    reason: str
    preview: Rendered | None = None

    def as_json(self) -> dict[str, str]:
        return {
            "key": self.key,
            "document": self.document,
            "channel": self.channel,
            "recipient": self.recipient,
            "account": self.account,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass
class JobReport:
    """What one job did (or, in a dry run, would do)."""

    job: str
    dry_run: bool
    items: list[ItemReport] = field(default_factory=list)
    disabled: bool = False
    note: str = ""
    recovered: int = 0  # 'sending' rows of a crashed run, now 'unknown'

    @property
    def counts(self) -> dict[str, int]:
        tally: Counter[str] = Counter(i.status for i in self.items)
        counts = {name: tally.get(name, 0) for name in COUNT_NAMES}
        if tally.get("draft"):
            counts["draft"] = tally["draft"]
        return counts

    @property
    def ok(self) -> bool:
        """False when something failed, was deferred or is unknown (exit 1)."""
        c = self.counts
        return not (c["failed"] or c["deferred"] or c["unknown"] or self.recovered)

    def summary(self) -> str:
        c = self.counts
        if self.dry_run:
            head = f"{self.job} (dry run): {c['planned']} would be sent"
            rest = f", {c['failed']} would fail, {c['skipped']} would be skipped"
            return head + rest
        text = (
            f"{self.job}: {c['sent']} sent, {c['failed']} failed, {c['skipped']} skipped, "
            f"{c['deferred']} deferred, {c['unknown']} unknown"
        )
        if c.get("draft"):
            text += f", {c['draft']} drafts"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "dry_run": self.dry_run,
            "counts": self.counts,
            "items": [i.as_json() for i in self.items],
        }


class _Sources:
    """The read access a job gets (see ``jobs.Sources``)."""

    def __init__(self, erp: Erp, ledger: Ledger) -> None:
        self._erp = erp
        self._ledger = ledger

    def query(self, template: str, params: Sequence[object] = ()) -> Iterator[dict[str, Any]]:
        return self._erp.query(template, params)

    def lookup(self, template: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
        return self._erp.lookup(template, params)

    def ledger_prefix(self, prefix: str) -> list[Entry]:
        return self._ledger.with_prefix(prefix)

    def ledger_sent_between(self, job: str, start: datetime, end: datetime) -> list[Entry]:
        return self._ledger.sent_between(job, start, end)

    def ledger_entries(self, keys: Sequence[str]) -> list[Entry]:
        # one primary-key look-up per key: exact, unlike a LIKE prefix scan
        return [entry for key in keys for entry in self._ledger.entries(key)]


def targets(n: Notification, settings: Settings) -> list[Target]:
    """Recipient and channel by info type, contact rule and SMS fallback (SPEC §4).

    The rules (README "Who gets what: info types and fallback" has the table of outcomes):

    - info type: the customer's code mapped by ``[erp.info_types]``; empty or unknown ->
      ``service.default_info_type``. ``none`` -> one ``skipped`` row, nothing is sent.
    - email (``email``, ``email_sms``): the contact's address when the notification goes to
      the contact and it has one, else the customer's; missing or invalid -> ``failed``.
    - SMS (``sms``, ``email_sms``): the contact's mobile / the ``sms.phone_field`` column,
      normalised to E.164 with the customer's country (fallback ``service.country``); sent
      only with a provider configured and a valid mobile number. Otherwise the SMS row is
      ``failed`` with the reason, or, with ``sms.fallback_to_email``, ``skipped`` with the
      reason and (info type ``sms``) the email goes instead; ``email_sms`` has its email
      already and never gets a second one.
    """
    party: Party = n.party
    info_type = settings.erp.info_type_of(party.info_type_code, settings.service.default_info_type)
    account = settings.email.account_for_shop(n.shop)
    name = party.contact_name if n.use_contact and party.contact_name else party.name
    if info_type == "none":
        why = "info type 'none': the customer wants no messages"
        return [Target("none", "", name, "", why, "skipped")]
    email = party.contact_email if n.use_contact and party.contact_email else party.email

    def by_email() -> Target:  # only when email is used: SMS customers need no address
        return Target("email", email or "", name, account, check_address(email or "").problem)

    wanted: list[Target] = []
    if info_type in {"email", "email_sms"}:
        wanted.append(by_email())
    if info_type not in {"sms", "email_sms"}:
        return wanted
    phone = party.contact_mobile if n.use_contact and party.contact_mobile else party.phone
    number = to_e164_mobile(phone, country_code(party.country) or settings.service.country)
    provider = settings.sms.provider
    # the provider first: without one every SMS customer gets the same reason, and the fix
    # is in the settings, not in the ERP
    problem = "no SMS provider configured (set sms.provider)" if provider is None else number.reason
    recipient = number.e164 or phone or ""
    if problem is None and provider is not None and number.e164 is not None:
        wanted.append(Target("sms", number.e164, name, provider))
    elif not settings.sms.fallback_to_email:
        wanted.append(Target("sms", recipient, name, provider or "", problem))
    else:
        # the SMS row stays (skipped, with the reason) so that the operator sees why, and so
        # that a later run does not text the customer once the number is corrected: the
        # notification went out by email
        instead = "by email instead" if info_type == "sms" else "the email goes alone"
        why = f"{problem}; {instead} (sms.fallback_to_email)"
        if info_type == "sms":
            wanted.append(by_email())
        wanted.append(Target("sms", recipient, name, provider or "", why, "skipped"))
    return wanted


ProgressHook = Callable[[ItemReport], None]


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
        self.sources = _Sources(erp, ledger)
        self._templates_checked = False
        self._sent_today: dict[str, int] = {}  # per account, for max_per_day

    def check_templates(self) -> None:
        """Exit 3 before anything is sent when a template is broken (SPEC §5)."""
        if self._templates_checked:
            return
        problems = self.renderer.check()
        if problems:
            raise TemplateError("a message template is broken; nothing was sent", tuple(problems))
        self._templates_checked = True

    def run(self, job: Job, options: RunOptions) -> JobReport:
        report = JobReport(job.name, options.dry_run)
        if not self.settings.service.enabled and not options.dry_run:
            report.disabled = True
            report.note = "service.enabled = false: nothing was sent"
            return report
        window = self.settings.service.window
        if not options.dry_run and not self.clock.in_window(window):
            report.note = (
                f"outside service.send_window {self.settings.service.send_window} "
                f"(now {self.clock.now:%H:%M}): nothing was sent; the next run in the window sends"
            )
            return report
        self.check_templates()
        if not options.dry_run:
            report.recovered = self.ledger.recover_stale(self.clock.utc)
            if report.recovered:
                report.note = (
                    f"{report.recovered} notification(s) left 'sending' by an earlier run that "
                    "ended abruptly are now 'unknown' and will not be resent: see "
                    "'proit-notify history --status unknown', then 'proit-notify ledger resolve'"
                )
        try:
            self._run(job, options, report)
        finally:
            for channel in self.channels.values():
                channel.close()
        return report

    def _workers(self) -> dict[str, int]:
        """Sending threads per channel: the email accounts' ``connections`` (SMS: one)."""
        accounts = self.settings.email.accounts.values()
        smtp = [a.connections for a in accounts if a.transport == "smtp"]
        return {"email": min(32, max(1, sum(smtp))), "sms": 1}

    def _add(self, report: JobReport, item: ItemReport) -> None:
        report.items.append(item)
        if self.progress:
            self.progress(item)

    def _run(self, job: Job, options: RunOptions, report: JobReport) -> None:
        sender: Dispatcher[ItemReport] = Dispatcher(self._workers())
        try:
            self._plan_and_send(job, options, report, sender)
            for item in sender.drain():
                self._add(report, item)
        finally:
            # an error is leaving the run: still record what is in flight, then stop
            for item in sender.drain(quiet=True):
                self._add(report, item)
            sender.close()

    def _plan_and_send(
        self, job: Job, options: RunOptions, report: JobReport, sender: Dispatcher[ItemReport]
    ) -> None:
        now = self.clock.utc
        done = 0
        for n in job.plan(self.sources, self.settings, self.clock):
            rechecked: str | None = None
            checked = False
            handled = {e.channel: e for e in self.ledger.entries(n.key)}
            for target in targets(n, self.settings):
                existing = handled.get(target.channel)
                if existing is None and handled:
                    # handled on another channel already: a customer who changed info type
                    # or number since must not get the same notification a second time
                    continue
                if existing is not None and not self._retry_due(existing):
                    continue
                if options.limit is not None and done >= options.limit:
                    return
                # rendered while the previous message is still on its way to the server
                rendered = None if target.problem else self.render(n, target)
                if rendered is not None and not options.dry_run:
                    # re-check only once a sending thread is free to send at once, so that
                    # nothing can change between the re-check and the send but a moment
                    for finished in sender.wait_for_room(target.channel):
                        self._add(report, finished)
                if not checked:
                    checked = True
                    verdict = job.recheck(self.sources, self.settings, self.clock, n)
                    if isinstance(verdict, Notification):
                        if rendered is not None and verdict != n:
                            rendered = self.render(verdict, target)
                        n = verdict  # still due, with values re-read right before sending
                    else:
                        rechecked = verdict
                if rechecked is not None:
                    break  # no longer due (paid, changed, ...): nothing is sent or recorded
                done += 1
                item = self._deliver(n, target, options, now, job.name, sender, rendered)
                if item is not None:
                    self._add(report, item)
                for finished in sender.ready():
                    self._add(report, finished)

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

    def _deliver(
        self,
        n: Notification,
        target: Target,
        options: RunOptions,
        now: datetime,
        command: str,
        sender: Dispatcher[ItemReport],
        rendered: Rendered | None,
    ) -> ItemReport | None:
        """Claim and hand over one message; its report now, or None when it is in flight."""

        def item(status: ItemStatus, reason: str, preview: Rendered | None = None) -> ItemReport:
            return ItemReport(
                n.key,
                n.document,
                target.channel,
                target.to,
                target.account,
                status,
                reason,
                preview,
            )

        def claim(info: dict[str, Any], status: Status = "sending", detail: str = "") -> bool:
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

        if target.problem is not None:
            if not options.dry_run:
                claim(dict(n.info), target.problem_status, target.problem)
            return item(target.problem_status, target.problem)
        assert rendered is not None  # rendered by the caller for every target without a problem
        if options.dry_run:
            return item("planned", "", rendered if options.preview else None)
        assert target.channel != "none"
        info = dict(n.info)
        keep_as_draft = options.drafts
        if options.edit is not None:
            edited = options.edit(rendered, target.channel)
            if edited is None:
                keep_as_draft = True  # the person saved nothing: it waits in the drafts
            elif edited != rendered:
                rendered, info["edited"] = edited, True
        if keep_as_draft:
            info["draft"] = draft_info(command, n, target, rendered)
            if not claim(info, "draft", "waiting for review: proit-notify drafts list"):
                return item("skipped", "claimed by another run")
            return item("draft", "", rendered if options.preview else None)
        message = Outgoing(
            key=n.key,
            channel=target.channel,
            to=target.to,
            to_name=target.to_name,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            account=target.account if target.channel == "email" else None,
            document=n.document,
        )
        limited = self.over_daily_limit(
            target.channel, target.account, "not claimed, a run tomorrow sends it"
        )
        if limited:
            return item("deferred", limited)
        if not claim(info):
            return item("skipped", "claimed by another run")

        def finish(result: SendResult) -> ItemReport:
            status = self.ledger.record(n.key, target.channel, result, now)
            assert status != "sending"  # record() stores an outcome, never a claim
            reason = "" if status == "sent" else result.detail
            return item(status, reason, rendered if options.preview else None)

        def done(future: Future[SendResult]) -> ItemReport:
            try:
                result = future.result()
            except UnreachableError as exc:
                # configuration-level failure (TLS, login): nothing was handed over
                self.ledger.record(n.key, target.channel, SendResult("deferred", str(exc)), now)
                raise
            return finish(result)

        channel = self.channels.get(target.channel)
        if channel is None:
            return finish(SendResult("failed", f"channel {target.channel} is not configured"))
        sender.submit(channel, message, done)
        return None  # the outcome comes back through sender.ready() / drain()
