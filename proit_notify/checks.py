"""``proit-notify check``: settings, ERP mapping, templates, ledger, mail, SMS and bounce
mailbox logins.

Each check gives one line for the person (``label: verdict``) and the problems it found;
the CLI prints the lines and exits 3 when there are problems.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from . import qr_bill
from .assembly import make_channels, make_renderer, open_erp, open_ledger
from .authcheck import limit_line, token_lines
from .bounces import accounts_with_mailbox
from .errors import UnreachableError
from .mailbox import Mailbox
from .render import Renderer
from .settings import AccountSettings, Settings

#: providers whose API has no balance/credit call, so ``check`` cannot test the login
SMS_NO_LOGIN_CALL = frozenset({"ecall", "http"})


@dataclass(frozen=True)
class CheckLine:
    """One line of ``check``'s output and the problems behind it."""

    label: str
    verdict: str
    problems: tuple[str, ...] = ()
    #: the part could not be reached (exit 4 rather than 3): the checks go on past it
    unreachable: bool = False


def _counted(problems: list[str]) -> str:
    return "ok" if not problems else f"{len(problems)} problem(s)"


def run_checks(settings: Settings, *, network: bool) -> Iterator[CheckLine]:
    """Every check in order, each as soon as it is done (a slow server shows as slow)."""
    yield CheckLine("settings", f"{settings.source}: ok")
    languages = None
    try:
        erp = open_erp(settings)
        try:
            erp_problems = erp.check()
            # the customers' languages, on the same connection (only where the mapping holds)
            languages = None if erp_problems else erp.language_counts()
        finally:
            erp.close()
        yield CheckLine(f"ERP ({erp.db.where})", _counted(erp_problems), tuple(erp_problems))
    except UnreachableError as exc:  # the ERP down says nothing of the mail server: go on
        yield CheckLine("ERP", "cannot be reached", (str(exc),), unreachable=True)
    renderer = make_renderer(settings)
    template_problems = renderer.check_with(settings.shop_templates)
    yield CheckLine("templates", _counted(template_problems), tuple(template_problems))
    if settings.prepayment.qr_bill is not None:
        qr = settings.prepayment.qr_bill
        why = qr_bill.check(qr, settings.erp.maps("invoices", "payment_reference"))
        kind = "QR-IBAN" if qr.qr_iban else "IBAN"
        yield CheckLine(f"QR-bill ({kind} {qr.account})", _counted([why] if why else []),
                        (why,) if why else ())  # fmt: skip
    if languages is not None:
        yield _languages_line(languages, renderer)
    try:
        ledger = open_ledger(settings)
        where = f"{ledger.db.where}, table {ledger.table}: ok; lock file {settings.lock_path}"
        ledger.close()
        yield CheckLine("ledger", where)
    except UnreachableError as exc:
        yield CheckLine("ledger", "cannot be opened", (str(exc),), unreachable=True)
    # built even without network: building checks the keys each provider needs, offline
    channels = make_channels(settings)
    try:
        for name, channel in channels.items():
            label = f"sms ({settings.sms.provider})" if name == "sms" else name
            if not network:
                yield CheckLine(label, "not contacted (--no-network)")
                continue
            found = channel.check()
            if name == "email":
                yield from _oauth2_lines(settings, found)
            verdict = _counted(found)
            if not found and name == "sms" and settings.sms.provider in SMS_NO_LOGIN_CALL:
                # their APIs have no call that logs in without sending: say so, not just "ok"
                verdict += " (its API cannot log in without sending: try test-send --sms NUMBER)"
            yield CheckLine(label, verdict, tuple(found))
    finally:
        for channel in channels.values():
            channel.close()
    for name in accounts_with_mailbox(settings):
        if not network:
            yield CheckLine(f"bounce mailbox of {name}", "not contacted (--no-network)")
            continue
        yield mailbox_line(name, settings.email.accounts[name])
    yield _alerts_line(settings)
    review = settings.review
    if review.list_unsubscribe.startswith("https:") and not review.one_click:
        yield CheckLine(
            "review.list_unsubscribe",
            "an https link without {token} is the same for every recipient, so review "
            "requests get no one-click unsubscribe (RFC 8058): add {token} and "
            "review.unsubscribe_secret",
        )
    if settings.delivery_date.max_age_days is not None:
        yield CheckLine(
            "delivery_date.max_age_days",
            "no longer used (the first run takes a baseline instead, docs/monitoring.md "
            "'Catch-up and pauses'): remove it",
        )
    if settings.sms.provider is None:
        yield CheckLine("sms", "not configured (sms.provider is not set)")
    elif settings.sms.phone_field is None:
        yield CheckLine(
            "sms",
            "sms.phone_field is not set: only contacts' mobile numbers "
            "(shipping.to_contact) can be texted",
        )


def mailbox_line(name: str, account: AccountSettings) -> CheckLine:
    """Log in to the account's bounce mailbox and open its folder (SPEC §10)."""
    imap = account.imap
    assert imap is not None
    label = f"bounce mailbox of {name}"
    try:
        with Mailbox(name, account) as box:
            where = box.where
    except UnreachableError as exc:
        return CheckLine(label, "1 problem(s)", (str(exc),))
    return CheckLine(label, f"{where} as {imap.username}, folder {imap.folder!r}: ok")


def _oauth2_lines(settings: Settings, problems: list[str]) -> Iterator[CheckLine]:
    """What ``auth test`` says of each OAuth2 account (its token's audience, roles and
    expiry; a missing role), and Microsoft 365's limits; ``problems`` gets its problems."""
    tz = settings.service.tz
    for name, account in settings.email.accounts.items():
        limit = limit_line(name, account)
        if limit is not None:
            yield CheckLine(f"email account {name}", limit)
        if account.auth != "oauth2":
            continue
        lines, found = token_lines(name, account, tz)
        problems += [p for p in found if p not in problems]
        yield CheckLine(f"email account {name} (OAuth2)", "; ".join(lines))


def _languages_line(counts: list[tuple[object, int]], renderer: Renderer) -> CheckLine:
    """Which templates the ERP's customers get (``counts``: ERP language value, customers),
    and who gets another language's (a value the tool does not read, or a language without
    templates): the operator adds a code to ``[erp.language_codes]`` or templates to
    ``templates.dir``."""
    per_language: dict[str, int] = {}
    others: list[str] = []
    for value, n in sorted(counts, key=lambda c: -c[1]):
        used = renderer.language_used(value)
        per_language[used] = per_language.get(used, 0) + n
        wanted = renderer.language(value)
        if wanted != used and value is not None and str(value).strip():
            why = f"no {wanted} templates" if wanted else "not a language code proit-notify reads"
            others.append(
                f"{n} customer(s) with language {str(value).strip()!r} get the "
                f"{_NAMES.get(used, used)} templates ({why}: see [erp.language_codes])"
            )
    summary = ", ".join(f"{lang} {n}" for lang, n in sorted(per_language.items())) or "no customers"
    return CheckLine(
        "languages", "; ".join([f"customers by template language: {summary}", *others])
    )


_NAMES = {"de": "German", "fr": "French", "it": "Italian", "en": "English"}


def _alerts_line(settings: Settings) -> CheckLine:
    """The alert settings (validated on load): who hears about problems, through what."""
    alerts = settings.alerts
    if alerts.on == "never":
        return CheckLine("alerts", 'off (alerts.on = "never"): nobody is told about problems')
    if not alerts.to:
        return CheckLine(
            "alerts",
            "not configured: set alerts.to, or nobody hears about problems under the Task "
            "Scheduler or cron; then try 'proit-notify test-send --alert'",
        )
    return CheckLine(
        "alerts", f"to {', '.join(alerts.to)} via account {settings.alert_account}: ok"
    )
