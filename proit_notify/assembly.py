"""Assembly: build the runner's collaborators from the settings (used by the CLI and tests).

The one place that knows which class implements what: ERP and ledger connections, the
renderer, the channels, the run lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .channels import Channel
from .channels.email import EmailChannel
from .clock import Clock
from .db import LEDGER_ROLE, Dialect, connect, connect_sqlite
from .delivery import Delivery, ProgressHook
from .erp import Erp
from .errors import ConfigError, ErpError, LedgerError, LockedError
from .ledger import Entry, Ledger, RunLock
from .render import Renderer
from .report import Tally
from .runner import Runner
from .settings import Settings

log = logging.getLogger("proit_notify")


def make_renderer(settings: Settings) -> Renderer:
    return Renderer(
        templates_dir=settings.templates.dir,
        items_as_table=settings.email.items_as_table,
        default_language=settings.service.language,
        default_country=settings.service.country,
        language_codes=settings.erp.language_codes,
    )


def make_channels(settings: Settings) -> dict[str, Channel]:
    channels: dict[str, Channel] = {"email": EmailChannel(settings.email.accounts)}
    if settings.sms.provider is not None:
        from .channels.sms import SmsChannel

        channels["sms"] = SmsChannel(settings.sms)
    return channels


def make_alert_channel(settings: Settings) -> Channel:
    """The channel alerts go out on: email, through ``alerts.account``."""
    return EmailChannel(settings.email.accounts)


def open_ledger(settings: Settings, *, dry_run: bool = False) -> Ledger:
    """The ledger the settings name: a SQLite file, or a table in the ERP database.

    A dry run writes nothing: when the ledger file does not exist yet, it reads an empty
    ledger in memory instead of creating the file.
    """
    if dry_run and not settings.ledger.erp and not settings.ledger_path.exists():
        return _empty_ledger(settings)
    if settings.ledger.erp:
        try:
            # its own connection: ledger commits must not end reads
            db = connect(settings.erp, settings.service.tz, role=LEDGER_ROLE)
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
        if not dry_run:
            return _upgraded(ledger, ledger.ensure_schema())
        # a dry run writes nothing, in the ERP neither: without the table it reads nothing
        try:
            exists = db.has_table(settings.ledger.table)
        except ErpError as exc:
            db.close()
            raise LedgerError(
                f"cannot look for the ledger table in the ERP database: {exc}"
            ) from None
        if exists:
            ledger.ensure_schema(write=False)  # an older ledger is read as it is
            return ledger
        db.close()
        empty = _empty_ledger(settings)
        empty.note = (
            f"the ledger table {settings.ledger.table} does not exist yet in the ERP database: "
            "the first real run creates it (the login needs the right to), or a DBA creates "
            "it with 'proit-notify ledger ddl'; this dry run read an empty ledger"
        )
        return empty
    ledger = Ledger.open_sqlite(
        settings.ledger_path, settings.ledger.table, settings.retry, write=not dry_run
    )
    return _upgraded(ledger, ledger.upgraded)


def _upgraded(ledger: Ledger, steps: list[str]) -> Ledger:
    """The ledger, its upgrade said in the log (SPEC §8: the next cron run just works)."""
    ledger.upgraded = steps
    for step in steps:
        log.info("ledger %s upgraded to %s", ledger.table, step)
    return ledger


def _empty_ledger(settings: Settings) -> Ledger:
    """An empty ledger in memory, for a dry run that must not create one."""
    ledger = Ledger(
        connect_sqlite(Path(":memory:"), create=True, role=LEDGER_ROLE),
        settings.ledger.table,
        settings.retry,
    )
    ledger.ensure_schema()
    return ledger


def open_erp(settings: Settings) -> Erp:
    return Erp(connect(settings.erp, settings.service.tz), settings.erp, settings.sms.phone_field)


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
    stop: threading.Event | None = None,
    tally: Tally | None = None,
) -> Iterator[Session]:
    """Lock (unless told not to), open ERP and ledger, and hand them to a runner."""
    with ExitStack() as stack:
        if lock:
            stack.enter_context(RunLock(settings.lock_path))
        erp = open_erp(settings)
        stack.callback(erp.close)
        ledger = open_ledger(settings, dry_run=dry_run)
        stack.callback(ledger.close)
        delivery = Delivery(
            settings=settings,
            ledger=ledger,
            channels=channels if channels is not None else make_channels(settings),
            clock=clock,
            progress=progress,
            stop=stop,
        )
        runner = Runner(
            settings=settings,
            erp=erp,
            ledger=ledger,
            renderer=make_renderer(settings),
            delivery=delivery,
            clock=clock,
            tally=tally,
        )
        yield Session(settings, erp, ledger, runner)


def recover_if_idle(
    settings: Settings, ledger: Ledger, now: datetime
) -> list[Entry] | None:
    """``sending`` rows of this host become ``unknown`` when no run of this host holds the
    lock (so none is sending them): ``history`` and ``ledger resolve`` see a crashed run's
    rows as they are before the next job run (SPEC §6). While a run holds the lock its rows
    are in flight and stay ``sending``: None says a run is going on."""
    try:
        with RunLock(settings.lock_path):
            return ledger.recover_stale(now)
    except LockedError:
        return None
