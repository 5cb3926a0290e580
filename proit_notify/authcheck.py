"""``proit-notify auth test|setup ACCOUNT`` (SPEC §9), and what ``check`` says of OAuth2.

``token_lines`` gets the account's token and says what it allows (audience, roles, expiry:
never the token); ``setup_steps`` prints the administrator's steps with the account's own
values filled in, for the step that Microsoft's and Google's error texts do not name.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from .errors import ConfigError, UnreachableError, UsageError
from .oauth2 import GRAPH_SCOPE, GoogleTokens, tokens_for
from .settings import M365_PER_MINUTE, M365_SMTP_HOSTS, AccountSettings, Settings

#: the application permission a Microsoft token needs for SMTP
SMTP_ROLE = "SMTP.SendAsApp"
#: ... for Graph's sendMail (transport "graph")
GRAPH_ROLE = "Mail.Send"
#: ... for reading the bounce mailbox by IMAP (SPEC §10)
IMAP_ROLE = "IMAP.AccessAsApp"


def needed_role(account: AccountSettings) -> tuple[str, str]:
    """The role the account's sending token must carry, and where an admin grants it."""
    if account.transport == "graph":
        return GRAPH_ROLE, f"Microsoft Graph > Application permissions > {GRAPH_ROLE}"
    return SMTP_ROLE, f"Office 365 Exchange Online > Application permissions > {SMTP_ROLE}"


def oauth2_account(settings: Settings, name: str) -> AccountSettings:
    """The account ``name``, which must log in with OAuth2."""
    account = settings.email.accounts.get(name)
    if account is None:
        defined = ", ".join(sorted(settings.email.accounts)) or "none"
        raise UsageError(f"email account {name!r} is not defined (defined: {defined})")
    if account.auth != "oauth2" or account.oauth2 is None:
        raise UsageError(
            f'email account {name!r} logs in with a password, not OAuth2 (auth = "oauth2" '
            f"and [email.accounts.{name}.oauth2] make it one; see 'auth setup {name}')"
        )
    return account


def token_lines(name: str, account: AccountSettings, tz: ZoneInfo) -> tuple[list[str], list[str]]:
    """(what the token allows, the problems): one request to the identity provider."""
    graph = account.transport == "graph"
    tokens = tokens_for(name, account, GRAPH_SCOPE if graph else None)
    lines = [f"token source: {tokens.source.describe()}"]
    try:
        token = tokens.get()
    except UnreachableError as exc:
        return lines, [str(exc)]
    claims = token.claims
    expires = datetime.fromtimestamp(token.expires_at, tz)
    audience = claims.get("aud", "(an opaque token: its audience cannot be read)")
    roles = claims.get("roles") or []
    shown_roles = ", ".join(str(r) for r in roles) if roles else "none"
    lines.append(
        f"token: ok, audience {audience}, roles {shown_roles}, expires "
        f"{expires:%d.%m.%Y %H:%M} ({tz.key})"
    )
    problems = []
    assert account.oauth2 is not None
    role, where = needed_role(account)
    if account.oauth2.provider == "microsoft" and claims and role not in roles:
        problems.append(
            f"email account {name!r}: the token carries no {role} role: in the app "
            f"registration, API permissions, add {where}, then 'Grant admin consent'"
        )
    return lines, problems


def limit_line(name: str, account: AccountSettings) -> str | None:
    """Microsoft 365's sending limits, when the account sends through it."""
    m365 = account.host.strip().lower() in M365_SMTP_HOSTS or account.transport == "graph"
    if not m365:
        return None
    kept = account.max_per_minute
    how = "the default" if kept == M365_PER_MINUTE else "as set"
    return (
        f"email account {name!r}: Microsoft 365 takes at most {M365_PER_MINUTE} messages a "
        f"minute and 10,000 recipients a day per mailbox; max_per_minute = {kept} ({how})"
    )


def setup_steps(name: str, account: AccountSettings, config: str) -> str:
    """The administrator's steps for ``name``, with its values filled in."""
    o = account.oauth2
    assert o is not None
    user = account.username
    test = f"proit-notify -c {config} auth test {name}"
    if o.provider == "microsoft":
        credential = (
            f"upload the certificate ({o.certificate_file}) and put its thumbprint into "
            "certificate_thumbprint"
            if o.certificate_file
            else "add a client secret; its Value (not the Secret ID) goes into client_secret, "
            'through the environment: client_secret = "${M365_SECRET}"'
        )
        return "\n".join(
            [
                *_microsoft_steps(name, account, credential, test),
                "",
                f"Limits: {M365_PER_MINUTE} messages a minute and 10,000 recipients a day per "
                f"mailbox; max_per_minute = {M365_PER_MINUTE} is the default for Microsoft "
                "365 (smtp.office365.com and Graph).",
            ]
        )
    if o.provider == "google":
        try:
            client_id = GoogleTokens(name, o, None, "", user).client_id()
        except ConfigError:
            client_id = "<the client_id in the service account's JSON key>"
        return "\n".join(
            [
                f"Google Workspace: what an administrator does once for account {name!r} "
                f"(mailbox {user})",
                "",
                "1. Google Cloud console: a project with the Gmail API enabled, a service "
                f"account, and a JSON key for it: service_account_file ({o.service_account_file}).",
                "2. Google Admin console > Security > Access and data control > API controls "
                "> Manage Domain Wide Delegation > Add new:",
                f"     Client ID: {client_id}",
                "     OAuth scopes: https://mail.google.com/",
                f"3. {user} must be a user (mailbox) of the Workspace domain.",
                f"4. Then: {test}",
            ]
        )
    return "\n".join(
        [
            f"Account {name!r} gets its token from a command of yours "
            f"(oauth2.token_command): it must print a valid access token on its first line.",
            f"Then: {test}",
        ]
    )


def _microsoft_steps(
    name: str, account: AccountSettings, credential: str, test: str
) -> list[str]:
    """The steps in Entra and Exchange Online: SMTP's or Graph's, and IMAP's for bounces."""
    o = account.oauth2
    assert o is not None
    user = account.username
    graph = account.transport == "graph"
    imap = account.imap is not None and account.imap.auth == "oauth2"
    _, where = needed_role(account)
    permissions = where + (
        f" and Office 365 Exchange Online > Application permissions > {IMAP_ROLE} (the bounce "
        "mailbox)"
        if imap
        else ""
    )
    steps = [
        f"Microsoft 365: what an administrator does once for account {name!r} "
        f"(mailbox {user}, tenant {o.tenant}, sending by {'Graph' if graph else 'SMTP'})",
        "",
        "1. Microsoft Entra admin center > App registrations > New registration "
        '("proit-notify", single tenant). Its Application (client) ID is client_id '
        f"(now {o.client_id!r}), its Directory (tenant) ID is tenant.",
        f"2. Certificates & secrets: {credential}.",
        "3. API permissions > Add a permission > APIs my organization uses > "
        f"{permissions}; then Grant admin consent.",
    ]
    exchange = not graph or imap  # SMTP and IMAP need the app in Exchange; Graph does not
    if not exchange:
        return [
            *steps,
            "4. Optional, recommended: limit the app to this mailbox (Exchange Online "
            "PowerShell): New-ApplicationAccessPolicy -AppId "
            f'{o.client_id} -PolicyScopeGroupId <a mail-enabled group with {user}> '
            '-AccessRight RestrictAccess -Description "proit-notify"',
            f"5. Then: {test}",
        ]
    lines = [
        "4. Enterprise applications > proit-notify: note its Object ID. It is NOT "
        "the Object ID of the app registration; Exchange refuses the wrong one "
        "with 535 5.7.3.",
        "5. Exchange Online PowerShell (Connect-ExchangeOnline):",
        f"     New-ServicePrincipal -AppId {o.client_id} -ObjectId <OBJECT_ID> "
        '-DisplayName "proit-notify"',
    ]
    mailboxes = [user]
    if imap and account.imap is not None and account.imap.username != user:
        mailboxes.append(account.imap.username)
    lines += [
        f'     Add-MailboxPermission -Identity "{box}" -User <OBJECT_ID> -AccessRights FullAccess'
        for box in mailboxes
    ]
    if not graph:
        lines.append(
            f'     Set-CASMailbox -Identity "{user}" -SmtpClientAuthenticationDisabled $false'
        )
    lines += ["   (<OBJECT_ID>: the Object ID of step 4)", f"6. Then: {test}"]
    return [*steps, *lines]
