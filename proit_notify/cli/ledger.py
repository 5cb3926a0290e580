"""The ledger's commands: ``history``, ``status``, ``ledger resolve|ddl|migrate`` and
``optout add|remove|list`` (SPEC §6-§8, §12)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ConfigError, UsageError
from ..statuses import STATUSES
from .console import AsOf, clock_for, err, out, print_json, print_rows, state


def history(
    job: Annotated[
        str | None, typer.Option("--job", help="shipping, review, prepayment, delivery_date")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help=", ".join(STATUSES))] = None,
    key: Annotated[str | None, typer.Option("--key", help="A ledger key, e.g. shipping:42")] = None,
    since: Annotated[str | None, typer.Option("--since", help="A date, e.g. 2026-11-01")] = None,
) -> None:
    """List ledger rows."""
    from .. import output
    from ..assembly import open_ledger, recover_if_idle
    from ..clock import Clock
    from ..jobs import registry

    settings = state.settings()
    if status is not None and status not in STATUSES:
        raise UsageError(f"--status {status!r}: use one of {', '.join(STATUSES)}")
    job_name = registry.spec(job).ledger_name if job else None
    since_at = Clock.parse(since, settings.service.tz, "--since").utc if since else None
    with open_ledger(settings) as ledger:
        recover_if_idle(settings, ledger, Clock.real(settings.service.tz).utc)
        rows = ledger.history(job=job_name, status=status, key=key, since=since_at)
    tz = settings.service.tz
    if state.json:
        print_json([output.entry_json(e, tz) for e in rows])
        return
    print_rows(output.HISTORY_COLUMNS, output.history_rows(rows, tz))
    out.print(f"{len(rows)} row(s)")


def status_command(as_of: AsOf = None) -> None:
    """Last run per job and what waits for a person (exit 1 when something does)."""
    from .. import output
    from ..assembly import open_ledger, recover_if_idle
    from ..monitor import status

    settings = state.settings()
    clock = clock_for(settings, as_of)
    # dry_run: a status call on a new installation reads an empty ledger, creates none
    with open_ledger(settings, dry_run=True) as ledger:
        running = recover_if_idle(settings, ledger, clock.utc) is None
        found = status(ledger, clock.utc, running=running, tz=settings.service.tz)
    waiting = found.waiting
    if state.json:
        print_json(found.as_json())
        raise typer.Exit(1 if waiting else 0)
    # the verdict first: a monitoring agent (Nagios, PRTG) shows the first line
    if waiting:
        out.print(f"WAITING: {len(waiting)} thing(s) wait for a person: {waiting[0]}", markup=False)
    else:
        out.print("OK: nothing waits for a person")
    tz = settings.service.tz
    rows = output.status_rows(found, tz, bars=out.is_terminal)
    print_rows(output.STATUS_COLUMNS, rows, "last run per job")
    for line in waiting:
        out.print(f"WAITING: {line}", markup=False)
    if found.deferred:
        out.print(f"{found.deferred} deferred notification(s): the next runs retry them")
    if found.oldest_draft is not None:
        out.print(f"oldest draft: {found.oldest_draft.astimezone(tz):%Y-%m-%d %H:%M}")
    if found.last_alert:
        out.print(f"last alert: {found.last_alert}", markup=False)
    raise typer.Exit(1 if waiting else 0)


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
    from ..assembly import session
    from ..clock import Clock

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
    from .. import objections as optout
    from ..assembly import open_ledger
    from ..clock import Clock

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
    with open_ledger(settings) as ledger:
        added = ledger.optout.add(key, Clock.real(settings.service.tz).utc)
    # the stored form: what the list holds and compares (E.164, the domain in ASCII)
    out.print(
        f"{key}: {'added to' if added else 'already on'} the opt-out list "
        "(no review requests; other messages still go out)"
    )


def optout_remove(address: Address) -> None:
    """Take an address off the opt-out list (the customer agreed to review requests again)."""
    from .. import objections as optout
    from ..assembly import open_ledger

    settings = state.settings()
    key = optout.checked(address, settings.service.country)
    with open_ledger(settings) as ledger:
        removed = ledger.optout.remove(optout.forms(address, settings.service.country))
    if not removed:
        raise UsageError(f"{key} is not on the opt-out list ('proit-notify optout list')")
    out.print(f"{key}: removed from the opt-out list")


def optout_list(
    address: Annotated[
        str | None, typer.Argument(help="Only say whether this address is on the list")
    ] = None,
) -> None:
    """The addresses on the opt-out list (exit 1 when ADDRESS is given and not on it)."""
    from .. import objections as optout
    from ..assembly import open_ledger
    from ..clock import Clock

    settings = state.settings()
    clock = Clock.real(settings.service.tz)
    wanted = None
    if address is not None:
        optout.checked(address, settings.service.country)  # nonsense is refused, not "absent"
        wanted = optout.forms(address, settings.service.country)
    with open_ledger(settings, dry_run=True) as ledger:  # reading: never creates the ledger
        entries = ledger.optout.entries()
    if wanted is not None:
        entries = [e for e in entries if e.address in wanted]
    if state.json:
        print_json(
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
        print_rows(("address", "added", "host"), rows)
        if address is None and not entries:
            err.print("the opt-out list is empty")
    if address is not None and not entries:
        raise typer.Exit(1)


def ledger_ddl() -> None:
    """Print the statements that create the ledger tables in the connected database (for a
    DBA: the tool's login then needs only SELECT, INSERT, UPDATE and DELETE on them)."""
    from ..db import Dialect, connect
    from ..ledger import ddl as ledger_statements

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




def ledger_migrate(
    print_only: Annotated[
        bool,
        typer.Option(
            "--print",
            help="Only print the statements that upgrade the ledger (for a DBA); change nothing.",
        ),
    ] = False,
) -> None:
    """Bring an older ledger up to this version's schema (each run does it by itself when
    its login may), or print the statements for a DBA (SPEC §8)."""
    from ..assembly import open_ledger
    from ..db import Dialect
    from ..ledger import SCHEMA_VERSION, RunLock

    settings = state.settings()
    if print_only:
        with open_ledger(settings, dry_run=True) as ledger:
            stored = ledger.versions.stored() if ledger.db.has_table(ledger.table) else 0
            if stored == 0:
                print("-- no ledger yet: 'proit-notify ledger ddl' prints its tables")
                return
            if stored >= SCHEMA_VERSION:
                print(f"-- the ledger {ledger.table} is at schema {stored}: nothing to do")
                return
            for statement in ledger.versions.statements(stored):
                print(f"{statement};")
            if ledger.db.dialect is Dialect.MSSQL:
                print("GO")
        return
    with RunLock(settings.lock_path), open_ledger(settings) as ledger:
        done = ledger.upgraded
    for step in done:
        out.print(f"upgraded to {step}")
    out.print(f"the ledger {settings.ledger.table} is at schema {SCHEMA_VERSION}")
