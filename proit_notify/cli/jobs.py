"""The job commands (SPEC §7), made from the job registry, and ``run-all``.

Every registered job gets a command with the options all jobs have (``--dry-run``,
``--limit``, ``--as-of``, ``--preview``) and the ones its entry names; a job whose
messages a person may edit gets ``--edit``. A run is recorded and alerted on whatever ends
it (an error too, SPEC §6).
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import __version__
from ..errors import ConfigError, NotifyError, UnreachableError, UsageError
from ..redaction import one_line, redact
from .console import (
    AsOf,
    DryRun,
    Limit,
    Listing,
    Preview,
    bar_paused,
    clock_for,
    err,
    exit_code,
    log,
    out,
    progress,
    show,
    state,
    stop_signals,
)
from .console import record as console_record

if TYPE_CHECKING:
    from ..assembly import Session
    from ..clock import Clock
    from ..jobs.registry import JobOption, JobSpec
    from ..ledger import Ledger
    from ..monitor import CommandRun
    from ..report import JobReport
    from ..runner import RunOptions

#: the exit code of a bug (sysexits' EX_SOFTWARE)
INTERNAL_ERROR = 70


def _run_jobs(
    names: list[str],
    options: RunOptions,
    as_of: str | None,
    own: dict[str, Any] | None = None,
) -> None:
    """Run the jobs ``names`` (``own``: the options of a job's own, by name), show each
    one's report, record the command and send its alert."""
    from ..assembly import session
    from ..monitor import CommandRun

    settings = state.settings()
    clock = clock_for(settings, as_of)
    reports: list[JobReport] = []
    command = names[0] if len(names) == 1 else "run-all"
    # the log file marks where each run starts (the Task Scheduler keeps no output)
    console_record.info(
        "=== %s%s started: proit-notify %s, %s, as of %s, host %s, pid %d", command,
        " (dry run)" if options.dry_run else "", __version__, settings.source,
        f"{clock.now:%d.%m.%Y %H:%M}", socket.gethostname(), os.getpid(),
    )  # fmt: skip
    # a dry run writes nothing, so it is not recorded and sends no alert
    record = None if options.dry_run else CommandRun(settings, clock, command)
    error: BaseException | None = None
    try:
        with (
            progress(editing=options.edit is not None) as watch,
            stop_signals() as stop,
            session(
                settings,
                clock,
                lock=not options.dry_run,
                progress=watch.item,
                tally=watch.tally,
                dry_run=options.dry_run,
                stop=stop,
            ) as s,
        ):
            for name in names:
                report, run = _job_run(s, name, options, clock, own)
                if record is not None:
                    record.job_started(s.ledger, name)
                try:
                    run()
                except Exception as exc:
                    # what the job did before the error is shown (--json: with an "error"),
                    # recorded and named in the alert
                    report.error = redact(one_line(_error_line(exc)))
                    reports.append(report)
                    if record is not None:
                        record.reports.append(report)
                    show(report, options)
                    raise
                if record is not None:
                    record.job_ended(s.ledger, report)
                reports.append(report)
                show(report, options)
        if len(reports) > 1 and not state.json:
            from .. import output

            with bar_paused():
                out.print(output.total(reports))  # run-all: the grand total, last
        code = exit_code(reports)
    except Exception as exc:  # a bug too still ends in a record and an alert
        if record is None:
            raise
        error = exc
        code = exc.exit_code if isinstance(exc, NotifyError) else INTERNAL_ERROR
    if record is not None:
        _finish(record, code, error)
    if error is not None:
        raise error
    raise typer.Exit(code)


def _job_run(
    s: Session, name: str, options: RunOptions, clock: Clock, own: dict[str, Any] | None
) -> tuple[JobReport, Callable[[], object]]:
    """The report of one step of a job command and what fills it: a job of the registry,
    or the bounce reader (``run-all`` runs it first when a bounce mailbox is set up)."""
    from ..bounces import BOUNCES, BounceReport, read_bounces
    from ..jobs import registry
    from ..report import JobReport
    from ..runner import job_options

    if name == BOUNCES:
        bounces = BounceReport(BOUNCES, options.dry_run)

        def read() -> None:
            # the progress line names the step; a mailbox has no rows to count
            s.runner.tally.start(BOUNCES, time.monotonic(), sized=False)
            try:
                read_bounces(s.ledger, s.settings, clock, dry_run=options.dry_run,
                             report=bounces)  # fmt: skip
            except UnreachableError as exc:
                # a mailbox that cannot be read blocks no sending: exit 4 at the end
                bounces.blocked.append(str(exc))

        return bounces, read
    job = registry.make_job(name, own or {})
    report = JobReport(job.name, options.dry_run)
    return report, lambda: s.runner.run(job, job_options(name, s.settings, options), report)


def _error_line(exc: BaseException) -> str:
    """An error as the run record and the alert name it (a bug says it is one)."""
    if isinstance(exc, NotifyError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def _finish(record: CommandRun, code: int, error: BaseException | None) -> None:
    """The run's record and alert, on a connection of their own (the run's may be gone)."""
    from ..assembly import make_alert_channel, open_ledger

    try:
        ledger: Ledger | None = open_ledger(record.settings)
    except NotifyError as exc:
        log.error("could not record this run: %s", redact(str(exc)))
        ledger = None
    channel = make_alert_channel(record.settings)
    detail = None if error is None else _error_line(error)
    try:
        outcome = record.finish(ledger, code, detail, channel)
    finally:
        channel.close()
        if ledger is not None:
            ledger.close()
    if outcome is not None and not state.quiet:
        err.print(f"alert: {redact(outcome)}", markup=False)


def _interactive() -> bool:
    """A person at a terminal who can use an editor (not cron, not a pipe)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def add_job_commands(app: typer.Typer) -> None:
    """A command for each registered job (run-all runs them in the registry's order)."""
    from ..jobs import registry

    for spec in registry.JOBS:
        app.command(spec.command, help=spec.summary)(_job_command(spec))


def _job_command(spec: JobSpec) -> Callable[..., None]:
    """The command of one job: the options of every job, then its own."""

    def command(**given: Any) -> None:
        from ..drafts import edit_in_editor
        from ..runner import RunOptions

        edit = bool(given.pop("edit", False))
        if edit and not _interactive():
            raise UsageError(
                "--edit needs a terminal to open the editor in; under cron or in a script set "
                "delivery_date.edit_before_send = true and review with 'proit-notify drafts'"
            )
        own = {o.name: tuple(given.pop(o.name) or ()) if o.kind == "repeat" else given.pop(o.name)
               for o in spec.options}  # fmt: skip
        options = RunOptions(
            # --preview shows what would go out: it never sends (a preview that sends is a
            # surprise nobody can take back)
            dry_run=given["dry_run"] or given["preview"],
            limit=given["limit"],
            preview=given["preview"],
            delivery_notes=tuple(own.get("delivery_notes", ())),
            edit=edit_in_editor if edit else None,
        )
        state.listing = given["listing"]
        _run_jobs([spec.command], options, given["as_of"], own)

    params = [
        *(
            _option(o.name, _OWN_TYPES[o.kind](o), _OWN_DEFAULTS[o.kind])
            for o in spec.options
        ),
        *([_option("edit", _EDIT, False)] if spec.editable else []),
        _option("dry_run", DryRun, False),
        _option("limit", Limit, None),
        _option("as_of", AsOf, None),
        _option("preview", Preview, False),
        _option("listing", Listing, False),
    ]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = spec.summary
    return command


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


_EDIT = Annotated[
    bool, typer.Option("--edit", help="Open each message in $VISUAL/$EDITOR before it is sent.")
]
_OWN_DEFAULTS: dict[str, Any] = {"repeat": None, "flag": False}
_OWN_TYPES: dict[str, Callable[[JobOption], Any]] = {
    "repeat": lambda o: Annotated[
        list[str] | None, typer.Option(o.flag, help=o.help, metavar=o.metavar)
    ],
    "flag": lambda o: Annotated[bool, typer.Option(o.flag, help=o.help)],
}


def run_all(
    dry_run: DryRun = False,
    limit: Limit = None,
    as_of: AsOf = None,
    preview: Preview = False,
    listing: Listing = False,
) -> None:
    """Run every job, in the order shipping, review, prepayment, delivery dates; first
    the bounce reader when a bounce mailbox is set up."""
    from ..bounces import BOUNCES, accounts_with_mailbox
    from ..jobs import registry
    from ..runner import RunOptions

    state.listing = listing
    names = list(registry.commands())
    if accounts_with_mailbox(state.settings()):
        names.insert(0, BOUNCES)
    _run_jobs(names, RunOptions(dry_run or preview, limit, preview), as_of)


def bounces(dry_run: DryRun = False, as_of: AsOf = None) -> None:
    """Read the bounce mailboxes ([email.accounts.NAME.imap]) and mark what bounced."""
    from ..bounces import BOUNCES, accounts_with_mailbox
    from ..runner import RunOptions

    if not accounts_with_mailbox(state.settings()):
        raise ConfigError(
            "no bounce mailbox is set up: add [email.accounts.NAME.imap] to the settings "
            "(the mailbox that receives the account's bounces; docs/bounces.md)"
        )
    _run_jobs([BOUNCES], RunOptions(dry_run), as_of)
