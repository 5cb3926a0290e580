"""What the command line shows, and where its log lines go: one module for both.

The consoles print text as data (:class:`_SafeConsole`: no secrets, control characters
escaped), ``--json`` prints one document per job (:func:`print_json`), listings are a table
on a terminal and tab-separated lines elsewhere (:func:`print_rows`), and the log goes to
stderr and ``service.log_file`` (the owner's only, rotated).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from .. import __version__
from ..errors import ConfigError, NotifyError
from ..redaction import json_safe, one_line, printable, redact

if TYPE_CHECKING:
    from .. import output
    from ..clock import Clock
    from ..report import ItemReport, JobReport, Tally
    from ..runner import RunOptions
    from ..settings import Settings

log = logging.getLogger("proit_notify")

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
    #: --list: every row of a run's report, not only the summary and the problems
    listing: bool = False
    #: a JSON document was printed (a job's report names its own error)
    printed_json: bool = False

    def settings(self) -> Settings:
        from ..settings import load_settings, resolve_config_path

        settings = load_settings(resolve_config_path(self.config))
        log_to_file(settings.service.log_file)
        return settings


state = State()


#: service.log_file rotation (SPEC §2)
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
#: what only the log file gets: the summaries and notes that stdout/stderr show
record = logging.getLogger("proit_notify.record")
record.propagate = False
record.addHandler(logging.NullHandler())  # without a log file: nowhere (not stderr)


def log_to_file(path: Path | None) -> None:
    """Append our log lines, and the summaries, to ``service.log_file``."""
    for logger in (log, record):
        for old in [h for h in logger.handlers if isinstance(h, RotatingFileHandler)]:
            logger.removeHandler(old)
            old.close()
    if path is None:
        return
    from ..paths import private

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
        from ..paths import private

        private(Path(self.baseFilename), "service.log_file")
        return super()._open()


def print_json(data: object) -> None:
    """One JSON document on stdout (for scripts: no colours), without secrets."""
    print(json_safe(redact(json.dumps(data, ensure_ascii=False))))
    state.printed_json = True


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
    state.listing = state.printed_json = False  # one command per process, or per test
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


# --- options every job command has -----------------------------------------------------

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Send nothing, write nothing; show what would go out.")
]
Limit = Annotated[int | None, typer.Option("--limit", min=1, help="At most N notifications.")]
AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="Act as at this local time: 2026-11-27, 2026-11-27T08:00 or 27.11.2026."
    ),
]
Listing = Annotated[
    bool, typer.Option("--list", help="Show every notification's row, not only the problems.")
]
Preview = Annotated[
    bool,
    typer.Option("--preview", help="Print the rendered messages; implies --dry-run."),
]


def clock_for(settings: Settings, as_of: str | None) -> Clock:
    from ..clock import Clock

    tz = settings.service.tz
    clock = Clock.parse(as_of, tz) if as_of else Clock.real(tz)
    return replace(clock, days=settings.service.days)


def exit_code(reports: list[JobReport]) -> int:
    """4 when an account could not be used at all (SPEC §6), else 1 for any problem row."""
    blocked = list(dict.fromkeys(b for r in reports for b in r.blocked))
    for problem in blocked:
        err.print(f"error: {redact(problem)}", markup=False)
    if blocked:
        return 4
    return 0 if all(r.ok for r in reports) else 1


@dataclass(frozen=True)
class Watch:
    """What a run reports its progress to: ``item`` gets every outcome (the log line, the
    progress line); ``tally`` is counted by the runner (how far a job run is)."""

    item: Callable[[ItemReport], None] | None
    tally: Tally


@contextmanager
def progress(editing: bool = False) -> Iterator[Watch]:
    """A progress line on a terminal; plain log lines under cron; nothing around an editor.
    Every item is also a line of ``service.log_file``, whatever is shown."""
    from ..report import Tally

    def line(logger: logging.Logger) -> Callable[[ItemReport], None]:
        def write(item: ItemReport) -> None:
            from ..statuses import PROBLEMS

            reason = f" ({item.reason})" if item.reason else ""
            args = (item.status, item.key, item.channel, item.recipient, reason)
            # a problem is a WARNING: what a log reader filters for
            level = logging.WARNING if item.status in PROBLEMS else logging.INFO
            logger.log(level, "%s %s %s %s%s", *args)

        return write

    if editing:
        yield Watch(None, Tally())
        return
    if state.json or state.quiet:
        yield Watch(line(record), Tally())  # the log file only
        return
    if not err.is_terminal:
        yield Watch(line(log), Tally())
        return
    from rich.progress import Progress, SpinnerColumn

    to_file = line(record)
    # the totals cost a COUNT query per selection: asked for only when someone watches
    tally = Tally(counting=True)
    last = [""]  # the last outcome: "sent: LS-4711"
    with (
        Progress(SpinnerColumn(), _line_column(tally, last), console=err, transient=True) as bar,
        _showing(bar),
    ):
        bar.add_task("", total=None)

        def tick(item: ItemReport) -> None:
            last[0] = f"{item.status}: {item.document}"
            to_file(item)

        yield Watch(tick, tally)


def _line_column(tally: Tally, last: list[str]) -> Any:
    """The progress line as one column: the job, done/expected, elapsed and time left
    first; the last outcome after them, cut on a narrow terminal (not the counts)."""
    from rich.progress import ProgressColumn
    from rich.table import Column

    class LineColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            shown = f"{tally_line(tally, time.monotonic())}  {last[0]}"
            # a Text is not read as markup; an ERP document's control characters are
            # shown escaped, as everywhere else
            return Text(printable(redact(shown)), no_wrap=True, overflow="ellipsis")

    return LineColumn(table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))


def tally_line(tally: Tally, now: float) -> str:
    """``shipping-confirmations 120/~465 0:00:03, about 0:00:09 left``: the expected total
    is marked ``~`` until every row of the selection is read."""
    if not tally.job:
        return ""  # before the first step starts
    elapsed = _clock(now - tally.started)
    expected = tally.expected()
    if expected is None and tally.sized:
        return f"{tally.job} counting {elapsed}"  # the COUNT is not in yet
    if expected is None:
        # no total: the bounce reader (no rows), or a COUNT the ERP refused
        done = f" {tally.finished} done" if tally.finished else ""
        return f"{tally.job}{done} {elapsed}"
    about = "~" if tally.read < tally.total else ""
    text = f"{tally.job} {tally.finished}/{about}{expected} {elapsed}"
    left = tally.left(now)
    return text if left is None else f"{text}, about {_clock(left)} left"


def _clock(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


#: the progress line on the terminal while a run goes on (stopped while a report prints)
_live: list[Any] = []


@contextmanager
def _showing(bar: Any) -> Iterator[None]:
    _live.append(bar)
    try:
        yield
    finally:
        _live.remove(bar)


@contextmanager
def bar_paused() -> Iterator[None]:
    """The progress line erased while a report prints, then drawn again below it: its
    frames never end up glued to the report's lines."""
    bars = list(_live)
    for bar in bars:
        bar.stop()
    try:
        yield
    finally:
        for bar in bars:
            bar.start()


def show(report: JobReport, options: RunOptions) -> None:
    with bar_paused():
        _show(report, options)


def _show(report: JobReport, options: RunOptions) -> None:
    from .. import output

    for note in report.notes:
        err.print(redact(note), markup=False)
        record.info(note)
    record.info(report.summary())
    if state.json:
        print_json(report.as_json())
        return
    if options.preview:
        for item in report.items:
            if item.preview is None:
                continue
            out.rule(f"{item.key} → {item.channel} {item.recipient}")
            if item.preview.subject:
                out.print(f"Subject: {item.preview.subject}\n")
            out.print(item.preview.text, markup=False)
    # the outcome first; what needs a look, by reason; the rows with --list (or a dry run)
    out.print(report.summary())
    if state.quiet:
        return
    for line in output.problem_groups(report):
        out.print(line, markup=False)
    if report.items and (state.listing or state.verbose or options.dry_run):
        columns = output.report_columns(report)
        print_rows(columns, output.report_rows(report, columns=columns), report.job)


def print_rows(
    columns: tuple[str, ...], rows: list[output.Row], title: str | None = None
) -> None:
    """A table on a terminal; one tab-separated line per row for grep and scripts, after
    a header line naming the columns (no box characters in a file)."""
    from .. import output

    if out.is_terminal:
        out.print(output.table(columns, rows, title))
    else:
        print("\t".join(columns))
        for row in rows:
            print("\t".join(one_line(redact(cell)) for cell in row))


@contextmanager
def stop_signals() -> Iterator[threading.Event]:
    """Ctrl-C (SIGINT), SIGTERM (a service manager, ``kill``) and Ctrl-Break (Windows) ask
    the run to stop at its next safe point: the event is set, the messages in flight are
    recorded, exit 130. A second signal stops at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread
        return

    def asked(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        sys.stderr.write(
            "stopping after the messages in flight (a second signal stops at once)\n"
        )

    previous: dict[int, Any] = {}
    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, asked)
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def fail(exc: NotifyError) -> NoReturn:
    if state.json and not state.printed_json:
        # a script reads stdout: the error is a JSON document too (a job's report that
        # was printed already carries it)
        print_json({"error": str(exc), "exit_code": exc.exit_code, "problems": list(exc.problems)})
    err.print(f"error: {redact(str(exc))}", markup=False)
    record.error("error (exit %d): %s", exc.exit_code, exc)
    if state.verbose and exc.__cause__ is not None:
        # what the driver or server said, and where: for a bug report, still without secrets
        err.print("caused by:", markup=False)
        err.print(redact("".join(traceback.format_exception(exc.__cause__))), markup=False)
    sys.exit(exc.exit_code)


def safe_streams() -> None:
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


