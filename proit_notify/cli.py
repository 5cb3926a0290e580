"""The command line (SPEC §7). The only module that prints or exits."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from . import __version__
from .errors import ConfigError, NotifyError, UnreachableError, UsageError
from .redaction import json_safe, one_line, printable, redact
from .statuses import STATUSES

if TYPE_CHECKING:
    from . import output
    from .channels import Channel, SendResult
    from .clock import Clock
    from .ledger import Ledger
    from .monitor import CommandRun
    from .report import ItemReport, JobReport
    from .runner import RunOptions
    from .settings import Settings

log = logging.getLogger("proit_notify")

app = typer.Typer(
    name="proit-notify",
    help="Email and SMS notifications for the ProIT Handel ERP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # tracebacks with locals would show secrets
    rich_markup_mode=None,
)
drafts_app = typer.Typer(
    help="Review delivery-date notices stored as drafts.", no_args_is_help=True
)
ledger_app = typer.Typer(help="Decide ledger rows by hand.", no_args_is_help=True)
app.add_typer(drafts_app, name="drafts")
app.add_typer(ledger_app, name="ledger")
optout_app = typer.Typer(
    help="The opt-out list: addresses that get no review requests.", no_args_is_help=True
)
app.add_typer(optout_app, name="optout")
auth_app = typer.Typer(
    help="OAuth2 mail accounts (Microsoft 365, Google): test the login, print the admin steps.",
    no_args_is_help=True,
)
app.add_typer(auth_app, name="auth")

class _SafeConsole(Console):
    """A console that prints text as data: without secrets, and with control characters
    shown escaped (an ESC sequence or an OSC 52 in an ERP name would otherwise drive the
    terminal: clear it, set its title, write the clipboard). Tables are built of such text
    (``output.table``)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        clean = tuple(printable(redact(o)) if isinstance(o, str) else o for o in objects)
        super().print(*clean, **kwargs)

    def rule(self, title: Any = "", **kwargs: Any) -> None:
        if isinstance(title, str):
            title = Text(one_line(redact(title)))  # a Text: a title is read as markup
        super().rule(title, **kwargs)


# markup=False: ERP text ("A-[/]1", "[link=...]") is data and is printed as typed (SPEC §7)
out = _SafeConsole(highlight=False, soft_wrap=True, markup=False)
err = _SafeConsole(stderr=True, highlight=False, soft_wrap=True, markup=False)


@dataclass
class State:
    config: Path | None = None
    verbose: bool = False
    quiet: bool = False
    json: bool = False

    def settings(self) -> Settings:
        from .settings import load_settings, resolve_config_path

        settings = load_settings(resolve_config_path(self.config))
        _log_to_file(settings.service.log_file)
        return settings


state = State()


#: service.log_file rotation (SPEC §2)
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
#: what only the log file gets: the summaries and notes that stdout/stderr show
record = logging.getLogger("proit_notify.record")
record.propagate = False
record.addHandler(logging.NullHandler())  # without a log file: nowhere (not stderr)


def _log_to_file(path: Path | None) -> None:
    """Append our log lines, and the summaries, to ``service.log_file``."""
    for logger in (log, record):
        for old in [h for h in logger.handlers if isinstance(h, RotatingFileHandler)]:
            logger.removeHandler(old)
            old.close()
    if path is None:
        return
    from .paths import private

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        private(path, "service.log_file")  # customers' addresses: the owner's only
        handler = _PrivateLog(
            path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8", delay=True
        )
    except OSError as exc:
        raise ConfigError(
            f"service.log_file {path}: cannot be written ({exc.strerror}); check the path "
            "and the rights of the account the task runs as"
        ) from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_SafeLine())
    handler.setLevel(logging.DEBUG if state.verbose else logging.INFO)
    for logger in (log, record):
        logger.addHandler(handler)
    record.setLevel(logging.INFO)
    if log.level > logging.INFO:  # -q: stderr stays quiet, the file still gets everything
        log.setLevel(logging.INFO)


class _PrivateLog(RotatingFileHandler):
    """The log file, created (also after each rotation) readable by its owner only and
    never through a symbolic link (:mod:`proit_notify.paths`)."""

    def _open(self) -> Any:
        from .paths import private

        private(Path(self.baseFilename), "service.log_file")
        return super()._open()


def _print_json(data: object) -> None:
    """One JSON document on stdout (for scripts: no colours), without secrets."""
    print(json_safe(redact(json.dumps(data, ensure_ascii=False))))


class _SafeLine(logging.Filter):
    """Every log line without secrets, and with ERP data's control characters escaped, so a
    recipient "a\\r\\nERROR ..." cannot forge a line of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = one_line(redact(record.getMessage()))
        record.args = None
        return True


def _version(value: bool) -> None:
    if value:
        out.print(f"proit-notify {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Settings file (default: $PROIT_NOTIFY_CONFIG or ./proit-notify.toml).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each step.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors and the summary.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per job on stdout.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Email and SMS notifications for the ProIT Handel ERP."""
    from rich.logging import RichHandler

    state.config, state.verbose, state.quiet, state.json = config, verbose, quiet, json_output
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler: logging.Handler
    if err.is_terminal:
        handler = RichHandler(console=err, show_path=False, rich_tracebacks=False)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_SafeLine())
    handler.setLevel(level)
    # our logger only: the root logger belongs to the libraries (and to the host program)
    for old in list(log.handlers):
        log.removeHandler(old)
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


# --- job commands ------------------------------------------------------------------------

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Send nothing, write nothing; show what would go out.")
]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="At most N notifications.")]
AsOf = Annotated[
    str | None,
    typer.Option("--as-of", help="Act as at this local time: 2026-11-27 or 2026-11-27T08:00."),
]
Preview = Annotated[bool, typer.Option("--preview", help="Print the rendered messages.")]


def _clock(settings: Settings, as_of: str | None) -> Clock:
    from .clock import Clock

    tz = settings.service.tz
    return Clock.parse(as_of, tz) if as_of else Clock.real(tz)


def _run_jobs(names: list[str], options: RunOptions, as_of: str | None) -> None:
    from .assembly import session
    from .jobs import registry
    from .monitor import CommandRun
    from .report import JobReport
    from .runner import job_options

    settings = state.settings()
    clock = _clock(settings, as_of)
    reports: list[JobReport] = []
    command = names[0] if len(names) == 1 else "run-all"
    # a dry run writes nothing, so it is not recorded and sends no alert
    record = None if options.dry_run else CommandRun(settings, clock, command)
    error: BaseException | None = None
    try:
        with (
            _progress(editing=options.edit is not None) as progress,
            session(
                settings,
                clock,
                lock=not options.dry_run,
                progress=progress,
                dry_run=options.dry_run,
            ) as s,
        ):
            for name in names:
                job = registry.make_job(name, {"delivery_notes": options.delivery_notes})
                report = JobReport(job.name, options.dry_run)
                if record is not None:
                    record.job_started(s.ledger, name)
                try:
                    s.runner.run(job, job_options(name, settings, options), report)
                except Exception as exc:
                    # what the job did before the error is shown (--json: with an "error"),
                    # recorded and named in the alert
                    report.error = redact(one_line(_error_line(exc)))
                    reports.append(report)
                    if record is not None:
                        record.reports.append(report)
                    _show(report, options)
                    raise
                if record is not None:
                    record.job_ended(s.ledger, report)
                reports.append(report)
                _show(report, options)
        code = _exit_code(reports)
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


def _error_line(exc: BaseException) -> str:
    """An error as the run record and the alert name it (a bug says it is one)."""
    if isinstance(exc, NotifyError):
        return str(exc)
    return f"internal error: {type(exc).__name__}: {exc}"


def _finish(record: CommandRun, code: int, error: BaseException | None) -> None:
    """The run's record and alert, on a connection of their own (the run's may be gone)."""
    from .assembly import make_alert_channel, open_ledger

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


def _exit_code(reports: list[JobReport]) -> int:
    """4 when an account could not be used at all (SPEC §6), else 1 for any problem row."""
    blocked = list(dict.fromkeys(b for r in reports for b in r.blocked))
    for problem in blocked:
        err.print(f"error: {redact(problem)}", markup=False)
    if blocked:
        return 4
    return 0 if all(r.ok for r in reports) else 1


@contextmanager
def _progress(editing: bool = False) -> Iterator[Callable[[ItemReport], None] | None]:
    """A progress line on a terminal; plain log lines under cron; nothing around an editor.
    Every item is also a line of ``service.log_file``, whatever is shown."""
    from rich.progress import Progress

    def line(logger: logging.Logger) -> Callable[[ItemReport], None]:
        def write(item: ItemReport) -> None:
            reason = f" ({item.reason})" if item.reason else ""
            args = (item.status, item.key, item.channel, item.recipient, reason)
            logger.info("%s %s %s %s%s", *args)

        return write

    if editing:
        yield None
        return
    if state.json or state.quiet:
        yield line(record)  # the log file only
        return
    if err.is_terminal:
        to_file = line(record)
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task("sending", total=None)

            def tick(item: ItemReport) -> None:
                # the description column reads markup: the document is escaped into text
                bar.update(task, advance=1, description=escape(f"{item.status}: {item.document}"))
                to_file(item)

            yield tick
        return
    yield line(log)


def _show(report: JobReport, options: RunOptions) -> None:
    from . import output

    for note in report.notes:
        err.print(redact(note), markup=False)
        record.info(note)
    record.info(report.summary())
    if state.json:
        _print_json(report.as_json())
        return
    if options.preview:
        for item in report.items:
            if item.preview is None:
                continue
            out.rule(f"{item.key} → {item.channel} {item.recipient}")
            if item.preview.subject:
                out.print(f"Subject: {item.preview.subject}\n")
            out.print(item.preview.text, markup=False)
    if report.items and not state.quiet and (out.is_terminal or options.dry_run):
        out.print(output.table(output.REPORT_COLUMNS, output.report_rows(report), report.job))
    out.print(report.summary())


@app.command("shipping-confirmations")
def shipping_confirmations(
    delivery_note: Annotated[
        list[str] | None,
        typer.Option("--delivery-note", help="Confirm this delivery note (by number); repeatable."),
    ] = None,
    dry_run: DryRun = False,
    limit: Limit = None,
    as_of: AsOf = None,
    preview: Preview = False,
) -> None:
    """Send a shipping confirmation for each printed delivery note."""
    from .runner import RunOptions

    options = RunOptions(dry_run, limit, preview, tuple(delivery_note or ()))
    _run_jobs(["shipping-confirmations"], options, as_of)


def _job_command(name: str, doc: str) -> None:
    def command(
        dry_run: DryRun = False, limit: Limit = None, as_of: AsOf = None, preview: Preview = False
    ) -> None:
        from .runner import RunOptions

        _run_jobs([name], RunOptions(dry_run, limit, preview), as_of)

    command.__doc__ = doc
    app.command(name)(command)


_job_command(
    "review-requests", "Send review requests that are due (review.delay_days after the trigger)."
)
_job_command("prepayment-reminders", "Remind customers of unpaid prepayment invoices.")


def _interactive() -> bool:
    """A person at a terminal who can use an editor (not cron, not a pipe)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


@app.command("delivery-dates")
def delivery_dates(
    edit: Annotated[
        bool,
        typer.Option("--edit", help="Open each notice in $VISUAL/$EDITOR before it is sent."),
    ] = False,
    dry_run: DryRun = False,
    limit: Limit = None,
    as_of: AsOf = None,
    preview: Preview = False,
) -> None:
    """Tell customers the promised delivery date of their order."""
    from . import drafts
    from .runner import RunOptions

    if edit and not _interactive():
        raise UsageError(
            "--edit needs a terminal to open the editor in; under cron or in a script set "
            "delivery_date.edit_before_send = true and review with 'proit-notify drafts'"
        )
    hook = drafts.edit_in_editor if edit else None
    _run_jobs(["delivery-dates"], RunOptions(dry_run, limit, preview, edit=hook), as_of)


@app.command("run-all")
def run_all(
    dry_run: DryRun = False, limit: Limit = None, as_of: AsOf = None, preview: Preview = False
) -> None:
    """Run every job, in the order shipping, review, prepayment, delivery dates."""
    from .jobs import registry
    from .runner import RunOptions

    _run_jobs(list(registry.commands()), RunOptions(dry_run, limit, preview), as_of)


# --- setup commands ----------------------------------------------------------------------


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the demo.")] = Path(
        "proit-notify-demo"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing demo directory.")
    ] = False,
) -> None:
    """Make the embedded demo ERP and its settings, and preview every job."""
    from .assembly import session
    from .clock import Clock
    from .demo import create_demo
    from .jobs import registry
    from .runner import RunOptions
    from .settings import load_settings

    summary = create_demo(directory, today=date.today(), force=force)
    out.print(
        f"Made the demo in {summary.directory}/:\n"
        f"  ERP (SQLite, logical schema): {summary.erp_path}\n"
        f"    {summary.customers} customers, {summary.contacts} contacts, {summary.orders} orders, "
        f"{summary.order_lines} order lines,\n"
        f"    {summary.delivery_notes} delivery notes, {summary.delivery_note_lines} delivery note "
        f"lines, {summary.invoices} invoices\n"
        f"  settings: {summary.config_path}\n"
        f"  outbox (file transport, .eml): {summary.outbox}\n\n"
        "Preview of every job (dry run):"
    )
    config = summary.config_path
    state.config = config
    settings = load_settings(config)
    clock = Clock.real(settings.service.tz)
    options = RunOptions(dry_run=True, preview=True)
    samples: dict[str, tuple[str, str]] = {}
    with session(settings, clock, lock=False, dry_run=True) as s:
        for name in registry.commands():
            report = s.runner.run(registry.make_job(name), options)
            _show_demo(report)
            if name == "shipping-confirmations":
                samples = _language_samples(report)
    if samples and not state.json:
        out.print("\nThe customers' languages (one shipping confirmation each, subject):")
        for lang, (recipient, subject) in sorted(samples.items()):
            out.print(f"  {lang}  {recipient}: {subject}")
    out.print(
        f"\nNothing was sent. To send for real (into {summary.outbox}):\n"
        f"  proit-notify -c {config} run-all"
    )


def _language_samples(report: JobReport) -> dict[str, tuple[str, str]]:
    """The first email of each template language (read from its HTML's lang attribute)."""
    import re

    samples: dict[str, tuple[str, str]] = {}
    for item in report.items:
        html = item.preview.html if item.preview is not None else None
        found = re.search(r'<html lang="([a-z]+)">', html or "")
        if found and found.group(1) not in samples and item.preview is not None:
            samples[found.group(1)] = (item.recipient, item.preview.subject)
    return samples


def _show_demo(report: JobReport) -> None:
    from . import output

    if state.json:
        _print_json(report.as_json())
        return
    title = f"{report.job}: first {min(10, len(report.items))} of {len(report.items)}"
    out.print(output.table(output.DEMO_COLUMNS, output.demo_rows(report, 10), title))
    out.print(report.summary())


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter settings.")] = Path(
        "proit-notify.toml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter settings file."""
    from .starter import write_starter_config

    write_starter_config(path, force=force)
    out.print(f"wrote {path}: edit it, then run 'proit-notify -c {path} check'")


@app.command()
def check(
    no_network: Annotated[
        bool, typer.Option("--no-network", help="Do not contact SMTP/SMS servers.")
    ] = False,
) -> None:
    """Check settings, ERP mapping, templates, ledger and (unless --no-network) mail/SMS logins."""
    from .checks import run_checks

    problems: list[str] = []
    for line in run_checks(state.settings(), network=not no_network):
        out.print(f"{line.label}: {line.verdict}", markup=False)
        problems += line.problems
    if problems:
        raise ConfigError("check found problems", tuple(problems))
    out.print("all checks passed")


@app.command()
def schema(
    table: Annotated[str | None, typer.Argument(help="Show this table's columns.")] = None,
) -> None:
    """List the ERP's tables, or one table's columns, to write the [erp] mapping."""
    from .assembly import open_erp

    settings = state.settings()
    erp = open_erp(settings)
    try:
        if table is None:
            for name in erp.db.tables():
                out.print(name)
        else:
            columns = erp.db.columns(table)
            if not columns:
                raise UsageError(
                    f"table {table!r} not found or has no columns; see 'proit-notify schema'"
                )
            for name, kind in columns:
                out.print(f"{name}\t{kind}")
    finally:
        erp.close()


# --- ledger commands ---------------------------------------------------------------------


@app.command()
def history(
    job: Annotated[
        str | None, typer.Option("--job", help="shipping, review, prepayment, delivery_date")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help=", ".join(STATUSES))] = None,
    key: Annotated[str | None, typer.Option("--key", help="A ledger key, e.g. shipping:42")] = None,
    since: Annotated[str | None, typer.Option("--since", help="A date, e.g. 2026-11-01")] = None,
) -> None:
    """List ledger rows."""
    from . import output
    from .assembly import open_ledger, recover_if_idle
    from .clock import Clock
    from .jobs import registry

    settings = state.settings()
    if status is not None and status not in STATUSES:
        raise UsageError(f"--status {status!r}: use one of {', '.join(STATUSES)}")
    job_name = registry.spec(job).ledger_name if job else None
    since_at = Clock.parse(since, settings.service.tz).utc if since else None
    ledger = open_ledger(settings)
    try:
        recover_if_idle(settings, ledger, Clock.real(settings.service.tz).utc)
        rows = ledger.history(job=job_name, status=status, key=key, since=since_at)
    finally:
        ledger.close()
    tz = settings.service.tz
    if state.json:
        _print_json([output.entry_json(e, tz) for e in rows])
        return
    _print_rows(output.HISTORY_COLUMNS, output.history_rows(rows, tz))
    out.print(f"{len(rows)} row(s)")


@app.command("status")
def status_command(as_of: AsOf = None) -> None:
    """Last run per job and what waits for a person (exit 1 when something does)."""
    from . import output
    from .assembly import open_ledger, recover_if_idle
    from .monitor import status

    settings = state.settings()
    clock = _clock(settings, as_of)
    # dry_run: a status call on a new installation reads an empty ledger, creates none
    ledger = open_ledger(settings, dry_run=True)
    try:
        recover_if_idle(settings, ledger, clock.utc)
        found = status(ledger, clock.utc)
    finally:
        ledger.close()
    waiting = found.waiting
    if state.json:
        _print_json(found.as_json())
        raise typer.Exit(1 if waiting else 0)
    # the verdict first: a monitoring agent (Nagios, PRTG) shows the first line
    if waiting:
        out.print(f"WAITING: {len(waiting)} thing(s) wait for a person: {waiting[0]}", markup=False)
    else:
        out.print("OK: nothing waits for a person")
    tz = settings.service.tz
    rows = output.status_rows(found, tz)
    if out.is_terminal:
        out.print(output.table(output.STATUS_COLUMNS, rows, "last run per job"))
    else:
        for row in rows:
            print("\t".join(one_line(redact(cell)) for cell in row))
    for line in waiting:
        out.print(f"WAITING: {line}", markup=False)
    if found.deferred:
        out.print(f"{found.deferred} deferred notification(s): the next runs retry them")
    if found.oldest_draft is not None:
        out.print(f"oldest draft: {found.oldest_draft.astimezone(tz):%Y-%m-%d %H:%M}")
    if found.last_alert:
        out.print(f"last alert: {found.last_alert}", markup=False)
    raise typer.Exit(1 if waiting else 0)


def _print_rows(columns: tuple[str, ...], rows: list[output.Row]) -> None:
    """A table on a terminal; one tab-separated line per row for grep and scripts."""
    from . import output

    if out.is_terminal:
        out.print(output.table(columns, rows))
    else:
        for row in rows:
            print("\t".join(one_line(redact(cell)) for cell in row))


@ledger_app.command("resolve")
def ledger_resolve(
    key: Annotated[str, typer.Argument(help="The ledger key, e.g. shipping:42")],
    sent: Annotated[bool, typer.Option("--sent", help="It did arrive: mark it sent.")] = False,
    resend: Annotated[
        bool, typer.Option("--resend", help="It did not arrive: send it again on the next run.")
    ] = False,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only this channel (email or sms).")
    ] = None,
) -> None:
    """Decide a notification whose outcome is unknown."""
    from .assembly import session
    from .clock import Clock

    if sent == resend:
        raise UsageError("say either --sent or --resend")
    settings = state.settings()
    clock = Clock.real(settings.service.tz)
    with session(settings, clock, channels={}) as s:
        s.ledger.recover_stale(clock.utc)  # under the lock: a crashed run's rows are unknown
        channels = s.ledger.resolve(key, sent=sent, now=clock.utc, channel=channel)
    verdict = "marked sent" if sent else "released: the next run sends it again"
    out.print(f"{key} ({', '.join(channels)}): {verdict}")


Address = Annotated[str, typer.Argument(help="An email address or a phone number")]


@optout_app.command("add")
def optout_add(
    address: Annotated[
        str | None, typer.Argument(help="An email address or a phone number")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The token of a one-click unsubscribe (review.list_unsubscribe with {token}).",
        ),
    ] = None,
) -> None:
    """Put an address on the opt-out list: it gets no review requests from now on."""
    from . import objections as optout
    from .assembly import open_ledger
    from .clock import Clock

    if (address is None) == (token is None):
        raise UsageError("give an ADDRESS or --token TOKEN")
    settings = state.settings()
    if token is not None:
        if not settings.review.unsubscribe_secret:
            raise ConfigError(
                "--token needs review.unsubscribe_secret, the key the tokens were signed with"
            )
        address = optout.address_of_token(token, settings.review.unsubscribe_secret)
    assert address is not None
    key = optout.checked(address, settings.service.country)
    ledger = open_ledger(settings)
    try:
        added = ledger.optout.add(key, Clock.real(settings.service.tz).utc)
    finally:
        ledger.close()
    # the stored form: what the list holds and compares (E.164, the domain in ASCII)
    out.print(
        f"{key}: {'added to' if added else 'already on'} the opt-out list "
        "(no review requests; other messages still go out)"
    )


@optout_app.command("remove")
def optout_remove(address: Address) -> None:
    """Take an address off the opt-out list (the customer agreed to review requests again)."""
    from . import objections as optout
    from .assembly import open_ledger

    settings = state.settings()
    key = optout.checked(address, settings.service.country)
    ledger = open_ledger(settings)
    try:
        removed = ledger.optout.remove(optout.forms(address, settings.service.country))
    finally:
        ledger.close()
    if not removed:
        raise UsageError(f"{key} is not on the opt-out list ('proit-notify optout list')")
    out.print(f"{key}: removed from the opt-out list")


@optout_app.command("list")
def optout_list(
    address: Annotated[
        str | None, typer.Argument(help="Only say whether this address is on the list")
    ] = None,
) -> None:
    """The addresses on the opt-out list (exit 1 when ADDRESS is given and not on it)."""
    from . import objections as optout
    from .assembly import open_ledger
    from .clock import Clock

    settings = state.settings()
    clock = Clock.real(settings.service.tz)
    wanted = None
    if address is not None:
        optout.checked(address, settings.service.country)  # nonsense is refused, not "absent"
        wanted = optout.forms(address, settings.service.country)
    ledger = open_ledger(settings, dry_run=True)  # reading: never creates the ledger
    try:
        entries = ledger.optout.entries()
    finally:
        ledger.close()
    if wanted is not None:
        entries = [e for e in entries if e.address in wanted]
    if state.json:
        _print_json(
            [
                {
                    "address": e.address,
                    "added_at": clock.local_of(e.added_at).isoformat(),
                    "host": e.host,
                }
                for e in entries
            ]
        )
    else:
        rows: list[tuple[str, ...]] = [
            (e.address, f"{clock.local_of(e.added_at):%Y-%m-%d %H:%M}", e.host) for e in entries
        ]
        _print_rows(("address", "added", "host"), rows)
        if address is None and not entries:
            err.print("the opt-out list is empty")
    if address is not None and not entries:
        raise typer.Exit(1)


@ledger_app.command("ddl")
def ledger_ddl() -> None:
    """Print the statements that create the ledger tables in the connected database (for a
    DBA: the tool's login then needs only SELECT, INSERT, UPDATE and DELETE on them)."""
    from .db import Dialect, connect
    from .ledger import ddl as ledger_statements

    settings = state.settings()
    if settings.ledger.erp:
        db = connect(settings.erp)
        try:
            dialect = db.dialect
        finally:
            db.close()
    else:
        dialect = Dialect.SQLITE
    table = settings.ledger.table
    for statement in ledger_statements(table, dialect):
        print(f"{statement};")
    if dialect is Dialect.MSSQL:
        print("GO")
    print(
        f"-- then: GRANT SELECT, INSERT, UPDATE, DELETE ON {table} and {table}_runs "
        "TO the login of erp.odbc"
    )


# --- auth --------------------------------------------------------------------------------

AccountName = Annotated[str, typer.Argument(help="An account of [email.accounts]")]


@auth_app.command("test")
def auth_test(account: AccountName) -> None:
    """Get the account's token (its audience, roles and expiry; never the token) and log in
    to its server; say what is missing (exit 4)."""
    from .assembly import make_channels
    from .authcheck import limit_line, oauth2_account, token_lines

    settings = state.settings()
    chosen = oauth2_account(settings, account)
    lines, problems = token_lines(account, chosen, settings.service.tz)
    for line in lines:
        out.print(line)
    limit = limit_line(account, chosen)
    if limit is not None:
        out.print(limit)
    if not any(p.startswith(f"email.accounts.{account}.oauth2") for p in problems):
        # a token was had: does the server take it?
        only = settings.model_copy(
            update={"email": settings.email.model_copy(update={"accounts": {account: chosen}})}
        )
        channel = make_channels(only)["email"]
        try:
            found = channel.check()
        finally:
            channel.close()
        problems += found
        if not found:
            out.print(f"login: {chosen.host}:{chosen.effective_port} as {chosen.username}: ok")
    if problems:
        raise UnreachableError("the OAuth2 login does not work yet", tuple(problems))
    out.print(f"account {account}: ready to send")


@auth_app.command("setup")
def auth_setup(account: AccountName) -> None:
    """Print what an administrator does once for the account (Microsoft 365 or Google),
    with its values filled in."""
    from .authcheck import oauth2_account, setup_steps

    settings = state.settings()
    print(setup_steps(account, oauth2_account(settings, account), str(settings.source)))


# --- drafts ------------------------------------------------------------------------------

DraftKeys = Annotated[list[str], typer.Argument(help="Ledger keys, e.g. delivery_date:42:1")]


@drafts_app.command("list")
def drafts_list(as_of: AsOf = None) -> None:
    """List the notices waiting for review; drafts no longer due are retired first."""
    from . import drafts, output
    from .assembly import session

    settings = state.settings()
    with session(settings, _clock(settings, as_of), lock=False, channels={}) as s:
        retired = drafts.retire(s.runner)
        found = drafts.list_drafts(s.ledger)
    if state.json:
        _print_json([d.as_json() for d in found])
        return
    for d, reason in retired:
        err.print(f"{d.key} ({d.channel}): {reason}; it will not be sent", markup=False)
    tz = settings.service.tz
    _print_rows(output.DRAFT_COLUMNS, output.draft_rows(found, tz))
    out.print(f"{len(found)} draft(s)")


@drafts_app.command("show")
def drafts_show(key: Annotated[str, typer.Argument(help="The draft's key")]) -> None:
    """Print a draft as it would be sent."""
    from . import drafts
    from .assembly import open_ledger

    ledger = open_ledger(state.settings())
    try:
        found = drafts.drafts_of(ledger, key)
    finally:
        ledger.close()
    if state.json:
        _print_json([d.as_json() for d in found])
        return
    for d in found:
        out.rule(f"{d.key} → {d.channel} {d.entry.recipient}")
        out.print(f"{d.entry.document}{' (edited)' if d.edited else ''}", markup=False)
        out.print(drafts.editable(d.subject, d.text, d.channel), markup=False)


@drafts_app.command("edit")
def drafts_edit(key: Annotated[str, typer.Argument(help="The draft's key")]) -> None:
    """Edit a draft in $VISUAL/$EDITOR; the saved subject and text are what is sent."""
    from . import drafts
    from .assembly import open_ledger
    from .clock import Clock

    settings = state.settings()
    ledger = open_ledger(settings)
    try:
        changed = drafts.edit(ledger, key, Clock.real(settings.service.tz).utc)
    finally:
        ledger.close()
    if not changed:
        out.print(f"{key}: unchanged")
        return
    for d in changed:
        out.print(f"{d.key} ({d.channel}): saved; send it with 'proit-notify drafts send {d.key}'")


@drafts_app.command("send")
def drafts_send(
    keys: Annotated[list[str] | None, typer.Argument(help="Ledger keys of drafts")] = None,
    all_drafts: Annotated[bool, typer.Option("--all", help="Send every draft.")] = False,
    as_of: AsOf = None,
) -> None:
    """Send drafts (each re-checked first: a changed date or a delivered order is not sent)."""
    from . import drafts
    from .assembly import session
    from .runner import RunOptions

    if bool(keys) == all_drafts:
        raise UsageError("give the keys of the drafts to send, or --all")
    settings = state.settings()
    with session(settings, _clock(settings, as_of)) as s:
        chosen = (
            drafts.list_drafts(s.ledger)
            if keys is None or all_drafts
            else [d for k in keys for d in drafts.drafts_of(s.ledger, k)]
        )
        report = drafts.send(s.runner, chosen)
    _show(report, RunOptions())
    raise typer.Exit(_exit_code([report]))


@drafts_app.command("discard")
def drafts_discard(keys: DraftKeys) -> None:
    """Never send these drafts (not drafted again for the same delivery date)."""
    from . import drafts
    from .assembly import open_ledger
    from .clock import Clock

    settings = state.settings()
    now = Clock.real(settings.service.tz).utc
    ledger = open_ledger(settings)
    try:
        for key in keys:
            for d in drafts.discard(ledger, key, now):
                out.print(f"{d.key} ({d.channel}): discarded")
    finally:
        ledger.close()


# --- test-send ---------------------------------------------------------------------------


@app.command("test-send")
def send_test_message(
    email: Annotated[
        str | None, typer.Option("--email", help="Send a test email to this address.")
    ] = None,
    sms: Annotated[
        str | None, typer.Option("--sms", help="Send a test SMS to this number.")
    ] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", help="Email account (default: email.default_account)."),
    ] = None,
    alert: Annotated[
        bool, typer.Option("--alert", help="Send a sample alert to alerts.to (alerts.account).")
    ] = False,
) -> None:
    """Send one test message, outside the ledger."""
    from .assembly import make_channels

    if (email is None) + (sms is None) + (not alert) != 2:
        raise UsageError("give exactly one of --email ADDRESS, --sms NUMBER or --alert")
    settings = state.settings()
    if alert:
        _send_test_alert(settings)
        return
    channels = make_channels(settings)
    try:
        recipient, result = _send_test(settings, channels, email, sms, account)
    finally:
        for channel in channels.values():
            channel.close()
    out.print(f"{recipient}: {result.outcome}: {result.detail}")
    raise typer.Exit(0 if result.ok else 1)


def _send_test_alert(settings: Settings) -> None:
    from .assembly import make_alert_channel
    from .ledger.runs import RunLog
    from .monitor import sample_alert, send_alert

    if not settings.alerts.to:
        raise ConfigError("alerts.to is empty: add the addresses under [alerts] in the settings")
    channel = make_alert_channel(settings)
    when = f"{datetime.now(settings.service.tz):%Y-%m-%d %H:%M}"
    try:
        outcome = send_alert(
            sample_alert(RunLog.host_name(), when), settings, channel, RunLog.new_id()
        )
    finally:
        channel.close()
    out.print(f"test alert via account {settings.alert_account}: {outcome.text}", markup=False)
    raise typer.Exit(0 if outcome.delivered else 1)


def _send_test(
    settings: Settings,
    channels: dict[str, Channel],
    email: str | None,
    sms: str | None,
    account: str | None,
) -> tuple[str, SendResult]:
    """One test message: (whom it went to, what the server or gateway said)."""
    from .channels import Outgoing

    now = datetime.now(settings.service.tz).strftime("%Y-%m-%d %H:%M")
    if email is not None:
        name = account or settings.email.default_account
        if name not in settings.email.accounts:
            raise UsageError(
                f"--account {name!r}: not defined (defined: {', '.join(settings.email.accounts)})"
            )
        message = Outgoing(
            key="test",
            channel="email",
            to=email,
            to_name=None,
            subject=f"proit-notify test ({name})",
            text=f"This is a test message from proit-notify, account {name}, sent {now}.",
            account=name,
            document="test message",
        )
        return email, channels["email"].send(message)
    else:
        from .phones import to_e164_mobile

        if "sms" not in channels:
            raise ConfigError("no SMS provider configured: set sms.provider in the settings")
        number = to_e164_mobile(sms, settings.service.country)
        if number.e164 is None:
            raise UsageError(f"--sms {sms!r}: {number.reason}")
        message = Outgoing(
            key="test",
            channel="sms",
            to=number.e164,
            to_name=None,
            subject="",
            text=f"proit-notify test SMS, sent {now}.",
            document="test message",
        )
        # the normalised number is shown: it is what the gateway got, and what a job would use
        return f"SMS to {number.e164}", channels["sms"].send(message)


# --- entry point -------------------------------------------------------------------------


def _fail(exc: NotifyError) -> NoReturn:
    err.print(f"error: {redact(str(exc))}", markup=False)
    record.error("error (exit %d): %s", exc.exit_code, exc)
    if state.verbose and exc.__cause__ is not None:
        # what the driver or server said, and where: for a bug report, still without secrets
        err.print("caused by:", markup=False)
        err.print(redact("".join(traceback.format_exception(exc.__cause__))), markup=False)
    sys.exit(exc.exit_code)


def _safe_streams() -> None:
    """Output never crashes on a code page (SPEC §7): redirected output (the Task
    Scheduler, ``> log.txt``, cp1252 on Windows) is written as UTF-8; a console that cannot
    show a character gets a replacement instead of an exception."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None or encoding == "utf8":
            continue
        try:
            if stream.isatty():
                reconfigure(errors="replace")
            else:
                reconfigure(encoding="utf-8", errors="replace")
        except (OSError, ValueError):
            pass  # a stream that cannot be changed: left as it is


#: the exit code of a bug (sysexits' EX_SOFTWARE)
INTERNAL_ERROR = 70


def main() -> None:
    """Console entry point: every error becomes one message and its exit code (SPEC §7).

    Typer runs in standalone mode: it reports usage errors itself (exit 2) and turns
    ``typer.Exit`` into the exit code; everything else that escapes a command lands here.
    """
    _safe_streams()
    try:
        app()
    except NotifyError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug: say so without leaking secrets
        err.print(f"internal error: {type(exc).__name__}: {redact(str(exc))}", markup=False)
        if state.verbose:
            err.print(redact("".join(traceback.format_exception(exc))), markup=False)
        else:
            err.print("run again with -v for the traceback, and report it")
        sys.exit(INTERNAL_ERROR)
