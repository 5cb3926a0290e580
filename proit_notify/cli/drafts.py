"""``drafts list|show|edit|send|discard``: the notices kept for review (SPEC §4)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import UsageError
from .console import (
    AsOf,
    clock_for,
    err,
    exit_code,
    out,
    print_json,
    print_rows,
    show,
    state,
    stop_signals,
)

DraftKeys = Annotated[list[str], typer.Argument(help="Ledger keys, e.g. delivery_date:42:1")]


def drafts_list(as_of: AsOf = None) -> None:
    """List the notices waiting for review; drafts no longer due are retired first."""
    from .. import drafts, output
    from ..assembly import session

    settings = state.settings()
    with session(settings, clock_for(settings, as_of), lock=False, channels={}) as s:
        retired = drafts.retire(s.runner)
        found = drafts.list_drafts(s.ledger)
    if state.json:
        print_json([d.as_json() for d in found])
        return
    for d, reason in retired:
        err.print(f"{d.key} ({d.channel}): {reason}; it will not be sent", markup=False)
    tz = settings.service.tz
    print_rows(output.DRAFT_COLUMNS, output.draft_rows(found, tz))
    out.print(f"{len(found)} draft(s)")


def drafts_show(key: Annotated[str, typer.Argument(help="The draft's key")]) -> None:
    """Print a draft as it would be sent."""
    from .. import drafts
    from ..assembly import open_ledger

    with open_ledger(state.settings()) as ledger:
        found = drafts.drafts_of(ledger, key)
    if state.json:
        print_json([d.as_json() for d in found])
        return
    for d in found:
        out.rule(f"{d.key} → {d.channel} {d.entry.recipient}")
        out.print(f"{d.entry.document}{' (edited)' if d.edited else ''}", markup=False)
        out.print(drafts.editable(d.subject, d.text, d.channel), markup=False)


def drafts_edit(key: Annotated[str, typer.Argument(help="The draft's key")]) -> None:
    """Edit a draft in $VISUAL/$EDITOR; the saved subject and text are what is sent."""
    from .. import drafts
    from ..assembly import open_ledger
    from ..clock import Clock

    settings = state.settings()
    with open_ledger(settings) as ledger:
        changed = drafts.edit(ledger, key, Clock.real(settings.service.tz).utc)
    if not changed:
        out.print(f"{key}: unchanged")
        return
    for d in changed:
        out.print(f"{d.key} ({d.channel}): saved; send it with 'proit-notify drafts send {d.key}'")


def drafts_send(
    keys: Annotated[list[str] | None, typer.Argument(help="Ledger keys of drafts")] = None,
    all_drafts: Annotated[bool, typer.Option("--all", help="Send every draft.")] = False,
    as_of: AsOf = None,
) -> None:
    """Send drafts (each re-checked first: a changed date or a delivered order is not sent)."""
    from .. import drafts
    from ..assembly import session
    from ..runner import RunOptions

    if bool(keys) == all_drafts:
        raise UsageError("give the keys of the drafts to send, or --all")
    settings = state.settings()
    with stop_signals() as stop, session(settings, clock_for(settings, as_of), stop=stop) as s:
        chosen = (
            drafts.list_drafts(s.ledger)
            if keys is None or all_drafts
            else [d for k in keys for d in drafts.drafts_of(s.ledger, k)]
        )
        report = drafts.send(s.runner, chosen)
    show(report, RunOptions())
    raise typer.Exit(exit_code([report]))


def drafts_discard(keys: DraftKeys) -> None:
    """Never send these drafts (not drafted again for the same delivery date)."""
    from .. import drafts
    from ..assembly import open_ledger
    from ..clock import Clock

    settings = state.settings()
    now = Clock.real(settings.service.tz).utc
    with open_ledger(settings) as ledger:
        for key in keys:
            for d in drafts.discard(ledger, key, now):
                out.print(f"{d.key} ({d.channel}): discarded")


