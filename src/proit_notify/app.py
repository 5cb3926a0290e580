"""Assembly: build the runner's collaborators from the settings (used by the CLI and tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .channels import Channel
from .channels.email import EmailChannel
from .clock import Clock
from .core import ProgressHook, Runner
from .erp import Dialect, Erp, connect, connect_sqlite
from .errors import ConfigError, ErpError, LedgerError, UsageError
from .jobs import Job
from .jobs.delivery_dates import DeliveryDates
from .jobs.prepayment import PrepaymentReminders
from .jobs.review import ReviewRequests
from .jobs.shipping import ShippingConfirmations
from .ledger import Ledger, RunLock
from .render import Renderer
from .settings import Settings

#: the jobs in the order ``run-all`` runs them (SPEC §7)
JOB_NAMES = ("shipping-confirmations", "review-requests", "prepayment-reminders", "delivery-dates")
#: command name -> the job's name in the ledger (``history --job`` takes either)
LEDGER_JOBS = dict(
    zip(JOB_NAMES, ("shipping", "review", "prepayment", "delivery_date"), strict=True)
)


def ledger_job_name(name: str) -> str:
    """The ledger's job name for a command name or a ledger job name."""
    if name in LEDGER_JOBS.values():
        return name
    if name in LEDGER_JOBS:
        return LEDGER_JOBS[name]
    known = ", ".join([*LEDGER_JOBS, *LEDGER_JOBS.values()])
    raise UsageError(f"unknown job {name!r}: use one of {known}")


def make_job(name: str, *, delivery_notes: tuple[str, ...] = ()) -> Job:
    """The job object for a command name."""
    if name == "shipping-confirmations":
        return ShippingConfirmations(delivery_notes)
    if name == "review-requests":
        return ReviewRequests()
    if name == "prepayment-reminders":
        return PrepaymentReminders()
    if name == "delivery-dates":
        return DeliveryDates()
    raise KeyError(name)


def available_jobs() -> list[str]:
    """Jobs built so far, in run-all order."""
    found = []
    for name in JOB_NAMES:
        try:
            make_job(name)
        except KeyError:
            continue
        found.append(name)
    return found


def make_renderer(settings: Settings) -> Renderer:
    return Renderer(
        templates_dir=settings.templates.dir,
        items_as_table=settings.email.items_as_table,
        default_language=settings.service.language,
        default_country=settings.service.country,
    )


def make_channels(settings: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {"email": EmailChannel(settings.email.accounts)}
    if settings.sms.provider is not None:
        from .channels.sms import SmsChannel

        channels["sms"] = SmsChannel(settings.sms)
    return channels


def open_ledger(settings: Settings, *, dry_run: bool = False) -> Ledger:
    """The ledger the settings name: a SQLite file, or a table in the ERP database.

    A dry run writes nothing: when the ledger file does not exist yet, it reads an empty
    ledger in memory instead of creating the file.
    """
    if dry_run and not settings.ledger.erp and not settings.ledger_path.exists():
        ledger = Ledger(
            connect_sqlite(Path(":memory:"), create=True), settings.ledger.table, settings.retry
        )
        ledger.ensure_schema()
        return ledger
    if settings.ledger.erp:
        try:
            db = connect(settings.erp)  # its own connection: ledger commits must not end reads
        except ErpError as exc:
            raise LedgerError(f"cannot open the ledger in the ERP database: {exc}") from None
        if db.dialect is Dialect.SQLITE:
            db.close()
            raise ConfigError(
                "ledger.erp = true keeps the ledger in a database server that several hosts "
                "share; the ERP here is an SQLite file, which cannot be shared that way (and "
                "its readers lock out the ledger's writes). Remove ledger.erp to keep the "
                "ledger in ledger.sqlite."
            )
        ledger = Ledger(db, settings.ledger.table, settings.retry)
        ledger.ensure_schema()
        return ledger
    return Ledger.open_sqlite(settings.ledger_path, settings.ledger.table, settings.retry)


def open_erp(settings: Settings) -> Erp:
    return Erp(connect(settings.erp), settings.erp, settings.sms.phone_field)


@dataclass
class Session:
    """Everything one command works with; closed together."""

    settings: Settings
    erp: Erp
    ledger: Ledger
    runner: Runner


@contextmanager
def session(
    settings: Settings,
    clock: Clock,
    *,
    lock: bool = True,
    dry_run: bool = False,
    progress: ProgressHook | None = None,
    channels: dict[str, Channel] | None = None,
) -> Iterator[Session]:
    """Lock (unless told not to), open ERP and ledger, and hand them to a runner."""
    with ExitStack() as stack:
        if lock:
            stack.enter_context(RunLock(settings.lock_path))
        erp = open_erp(settings)
        stack.callback(erp.close)
        ledger = open_ledger(settings, dry_run=dry_run)
        stack.callback(ledger.close)
        runner = Runner(
            settings=settings,
            erp=erp,
            ledger=ledger,
            renderer=make_renderer(settings),
            channels=channels if channels is not None else make_channels(settings),
            clock=clock,
            progress=progress,
        )
        yield Session(settings, erp, ledger, runner)
