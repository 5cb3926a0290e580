"""The Typer application: :func:`build_app` wires each command to its function, in one
table: the job commands come from the job registry (:mod:`.jobs`), the ledger's from
:mod:`.ledger`, the drafts' from :mod:`.drafts`, setting up and trying out from
:mod:`.setup`; what is shown and logged is
:mod:`.console`'s.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable

import typer

from ..errors import NotifyError
from ..redaction import redact
from . import drafts, jobs, ledger, setup
from .console import err, fail, main_options, out, safe_streams, state
from .jobs import INTERNAL_ERROR

__all__ = ["build_app", "err", "hoisted", "out", "run", "state"]

#: the options of every command (``main_options``), also written after the command
GLOBAL_FLAGS = frozenset({"--json", "-v", "--verbose", "-q", "--quiet"})
GLOBAL_VALUED = frozenset({"-c", "--config"})
#: -h as well as --help, everywhere
CONTEXT = {"help_option_names": ["-h", "--help"]}


def hoisted(args: list[str]) -> list[str]:
    """``history --json -c x.toml`` as ``--json -c x.toml history``: the global options
    after the command (or a group's command) moved before it, as people write them; what
    follows ``--`` is left alone."""
    first = next(
        (i for i, a in enumerate(args)
         if not a.startswith("-") and (i == 0 or args[i - 1] not in GLOBAL_VALUED)),
        None,
    )  # fmt: skip
    if first is None:
        return args
    moved: list[str] = []
    rest: list[str] = []
    i = first + 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg in GLOBAL_FLAGS or arg.startswith("--config="):
            moved.append(arg)
        elif arg in GLOBAL_VALUED and i + 1 < len(args):
            moved += args[i : i + 2]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return [*args[:first], *moved, args[first], *rest]


def build_app() -> typer.Typer:
    """The ``proit-notify`` command and its subcommands."""
    app = typer.Typer(
        name="proit-notify",
        help="Email and SMS notifications for the ProIT Handel ERP.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,  # tracebacks with locals would show secrets
        rich_markup_mode=None,
        context_settings=CONTEXT,
    )
    app.callback()(main_options)
    jobs.add_job_commands(app)
    app.command("run-all")(jobs.run_all)
    app.command("bounces")(jobs.bounces)
    for name, command in (
        ("demo", setup.demo),
        ("init", setup.init),
        ("check", setup.check),
        ("schema", setup.schema),
        ("history", ledger.history),
        ("status", ledger.status_command),
        ("test-send", setup.send_test_message),
    ):
        app.command(name)(command)
    groups: dict[str, tuple[str, list[tuple[str, Callable[..., None]]]]] = {
        "drafts": (
            "Review delivery-date notices stored as drafts.",
            [
                ("list", drafts.drafts_list),
                ("show", drafts.drafts_show),
                ("edit", drafts.drafts_edit),
                ("send", drafts.drafts_send),
                ("discard", drafts.drafts_discard),
            ],
        ),
        "ledger": (
            "Decide ledger rows by hand; the ledger's tables for a DBA.",
            [
                ("resolve", ledger.ledger_resolve),
                ("ddl", ledger.ledger_ddl),
                ("migrate", ledger.ledger_migrate),
            ],
        ),
        "optout": (
            "The opt-out list: addresses that get no review requests.",
            [
                ("add", ledger.optout_add),
                ("remove", ledger.optout_remove),
                ("list", ledger.optout_list),
            ],
        ),
        "auth": (
            "OAuth2 mail accounts (Microsoft 365, Google): test the login, print the admin "
            "steps.",
            [("test", setup.auth_test), ("setup", setup.auth_setup)],
        ),
    }
    for group, (help_text, commands) in groups.items():
        sub = typer.Typer(help=help_text, no_args_is_help=True, context_settings=CONTEXT)
        for name, command in commands:
            sub.command(name)(command)
        app.add_typer(sub, name=group)
    return app


def run() -> None:
    """The command line of ``sys.argv``: every error becomes one message and its exit code
    (SPEC §7).

    Typer runs in standalone mode: it reports usage errors itself (exit 2) and turns
    ``typer.Exit`` into the exit code; everything else that escapes a command lands here.
    """
    safe_streams()
    sys.argv[1:] = hoisted(sys.argv[1:])
    try:
        build_app()()
    except NotifyError as exc:
        fail(exc)
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
