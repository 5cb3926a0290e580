"""Setting up and trying out: ``demo``, ``init``, ``check``, ``schema``, ``test-send``,
``auth test|setup``."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ConfigError, UnreachableError, UsageError
from .console import out, print_json, state

if TYPE_CHECKING:
    from ..channels import Channel, SendResult
    from ..report import JobReport
    from ..settings import Settings

def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the demo.")] = Path(
        "proit-notify-demo"
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing demo directory.")
    ] = False,
) -> None:
    """Make the embedded demo ERP and its settings, and preview every job."""
    from ..assembly import session
    from ..clock import Clock
    from ..demo import create_demo
    from ..jobs import registry
    from ..runner import RunOptions
    from ..settings import load_settings

    summary = create_demo(directory, today=date.today(), force=force)
    out.print(
        f"Made the demo in {summary.directory}/:\n"
        f"  ERP (SQLite, logical schema): {summary.erp_path}\n"
        f"    {summary.customers} customers, {summary.contacts} contacts, {summary.orders} orders, "
        f"{summary.order_lines} order lines,\n"
        f"    {summary.delivery_notes} delivery notes, {summary.delivery_note_lines} delivery note "
        f"lines, {summary.invoices} invoices\n"
        f"  the ERP's PDF archive: {summary.directory / 'archiv'} ({summary.documents} PDFs)\n"
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
    from .. import output

    if state.json:
        print_json(report.as_json())
        return
    title = f"{report.job}: first {min(10, len(report.items))} of {len(report.items)}"
    columns = output.report_columns(report, output.DEMO_COLUMNS)
    out.print(output.table(columns, output.report_rows(report, 10, columns), title))
    out.print(report.summary())


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the starter settings.")] = Path(
        "proit-notify.toml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter settings file."""
    from ..starter import write_starter_config

    write_starter_config(path, force=force)
    out.print(f"wrote {path}: edit it, then run 'proit-notify -c {path} check'")


def check(
    no_network: Annotated[
        bool, typer.Option("--no-network", help="Do not contact SMTP/SMS servers.")
    ] = False,
) -> None:
    """Check settings, ERP mapping, templates, ledger and (unless --no-network) mail/SMS logins."""
    from ..checks import run_checks

    problems: list[str] = []
    unreachable = False
    for line in run_checks(state.settings(), network=not no_network):
        out.print(f"{line.label}: {line.verdict}", markup=False)
        problems += line.problems
        unreachable = unreachable or line.unreachable
    if unreachable:  # a server to start or reach first (exit 4), and what else was found
        raise UnreachableError("check found problems", tuple(problems))
    if problems:
        raise ConfigError("check found problems", tuple(problems))
    out.print("all checks passed")


def schema(
    table: Annotated[str | None, typer.Argument(help="Show this table's columns.")] = None,
) -> None:
    """List the ERP's tables, or one table's columns, to write the [erp] mapping."""
    from ..assembly import open_erp

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


AccountName = Annotated[str, typer.Argument(help="An account of [email.accounts]")]


def auth_test(account: AccountName) -> None:
    """Get the account's token (its audience, roles and expiry; never the token) and log in
    to its server; say what is missing (exit 4)."""
    from ..assembly import make_channels
    from ..authcheck import limit_line, oauth2_account, token_lines

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
        if not found and chosen.transport == "graph":
            out.print(
                f"Graph: {chosen.graph_url} for the mailbox {chosen.username}: the token is "
                "there; Graph has no login without a message, so sendMail is first tried by "
                "a real one (test-send --email ADDRESS --account NAME)"
            )
        elif not found:
            out.print(f"login: {chosen.host}:{chosen.effective_port} as {chosen.username}: ok")
    if chosen.imap is not None:
        from ..checks import mailbox_line

        checked = mailbox_line(account, chosen)
        problems += checked.problems
        if not checked.problems:
            out.print(f"{checked.label}: {checked.verdict}")
    if problems:
        raise UnreachableError("the OAuth2 login does not work yet", tuple(problems))
    out.print(f"account {account}: ready to send")


def auth_setup(account: AccountName) -> None:
    """Print what an administrator does once for the account (Microsoft 365 or Google),
    with its values filled in."""
    from ..authcheck import oauth2_account, setup_steps

    settings = state.settings()
    print(setup_steps(account, oauth2_account(settings, account), str(settings.source)))


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
    from ..assembly import make_channels

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
    from ..assembly import make_alert_channel
    from ..ledger.runs import RunLog
    from ..monitor import sample_alert, send_alert

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
    from ..channels import Outgoing

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
        from ..phones import to_e164_mobile

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


