"""Settings: the TOML file of SPEC §2, validated completely into frozen models.

``load_settings`` reports every problem at once (file, key path, what is wrong, what is
allowed) as one :class:`ConfigError`; nothing is sent before the settings are valid.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import time
from email.utils import parseaddr
from pathlib import Path, PureWindowsPath
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from .clock import SendDays, holiday_calendar, parse_days
from .errors import ConfigError
from .logical import LOGICAL_SCHEMA, OPTIONAL_FIELDS
from .redaction import odbc_pairs, register

CONFIG_ENV = "PROIT_NOTIFY_CONFIG"
DEFAULT_CONFIG_NAME = "proit-notify.toml"

InfoType = Literal["email", "sms", "email_sms", "none"]
INFO_TYPES: tuple[InfoType, ...] = ("email", "sms", "email_sms", "none")
SmsProvider = Literal["aspsms", "ecall", "smsup", "seven", "twilio", "http"]

IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]*$")



def parse_window(text: str) -> tuple[time, time]:
    """``"07:00-20:00"`` -> (07:00, 20:00); a window may pass midnight ("22:00-06:00")."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValueError(
            f'{text!r} is not a time window; write local hours as "07:00-20:00"'
        ) from None
    if start == end:
        raise ValueError(f"{text!r}: start and end are the same; leave the key out for all day")
    return start, end


def _parsed_by(parse: Callable[[str], object]) -> AfterValidator:
    """A validator of an optional text setting: ``parse`` must read it (its ValueError
    says how to write it)."""

    def check(value: str | None) -> str | None:
        if value is not None:
            parse(value)
        return value

    return AfterValidator(check)


#: "07:00-20:00"
WindowText = Annotated[str | None, _parsed_by(parse_window)]
#: "Mon-Sat"
DaysText = Annotated[str | None, _parsed_by(parse_days)]
#: "CH-ZH"
HolidaysText = Annotated[str | None, _parsed_by(lambda code: holiday_calendar(code, 2026))]


def check_identifier(name: str) -> str:
    """Refuse a table or column name that could carry SQL (SPEC §3)."""
    parts = name.split(".")
    if len(parts) > 2 or not all(IDENTIFIER_RE.match(p) for p in parts):
        raise ValueError(
            f"{name!r} is not a plain table or column name: letters, digits, '_' and spaces, "
            "not starting with a digit (a table may be prefixed by its schema, 'dbo.Kunden'), "
            'for an expression use { sql = "..." }'
        )
    return name


def check_column_name(name: str) -> str:
    """A column name: like a table name, but never schema-qualified."""
    if "." in name:
        raise ValueError(f"{name!r}: a column name cannot contain '.'")
    return check_identifier(name)


Identifier = Annotated[str, AfterValidator(check_identifier)]
#: TOML has no path type: accept the string form even in strict models
FilePath = Annotated[Path, Field(strict=False)]
ColumnName = Annotated[str, AfterValidator(check_column_name)]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: traffic that never leaves the machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _Model(BaseModel):
    # strict: TOML has real types, so "yes" for a bool or "30" for an int is a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ServiceSettings(_Model):
    """``[service]``."""

    enabled: bool = True
    default_info_type: InfoType = "email"
    timezone: str = "Europe/Zurich"
    country: str = "CH"
    language: str = "de"
    #: local hours in which jobs may send, "07:00-20:00"; outside them a run sends nothing
    send_window: WindowText = None
    #: the days jobs may send on, "Mon-Sat" (default: every day)
    send_days: DaysText = None
    #: no sending on the public holidays of a country or canton, "CH-ZH" (holidays library)
    holidays: HolidaysText = None
    #: log lines are appended here too (rotated at 10 MB, 5 kept): the Task Scheduler keeps
    #: no output
    log_file: FilePath | None = None

    @property
    def window(self) -> tuple[time, time] | None:
        return parse_window(self.send_window) if self.send_window else None

    @property
    def days(self) -> SendDays:
        """The days jobs may send on: ``send_days`` without ``holidays``."""
        weekdays = parse_days(self.send_days) if self.send_days else frozenset(range(7))
        return SendDays(weekdays, self.holidays.strip().upper() if self.holidays else None)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone, use an IANA name like 'Europe/Zurich'") from None
        return value

    @field_validator("country")
    @classmethod
    def _region(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError("a two-letter ISO country code in capitals, like 'CH' or 'DE'")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class HttpGatewaySettings(_Model):
    """``[sms.http]``: a generic HTTP SMS gateway (provider ``http``)."""

    method: Literal["GET", "POST", "POST_JSON"] = "POST"
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    number_format: Literal["e164", "digits", "00"] = "e164"
    success_status: list[int] = Field(default_factory=lambda: [200, 201, 202])
    success_contains: str | None = None
    message_id_regex: str | None = None


class SmsSettings(_Model):
    """``[sms]``."""

    provider: SmsProvider | None = None
    username: str = ""
    password: str = Field(default="", repr=False)
    public_ip: str | None = None
    phone_field: ColumnName | None = None
    sender: str | None = None
    fallback_to_email: bool = True
    url: str | None = None
    max_segments: int = Field(default=1, ge=1, le=10)
    timeout: float = Field(default=30, gt=0)
    http: HttpGatewaySettings | None = None
    #: local hours SMS may go out, "08:00-20:00" (default: service.send_window)
    send_window: WindowText = None

    @model_validator(mode="after")
    def _http_gateway(self) -> SmsSettings:
        problems = []
        if self.provider == "http" and self.http is None:
            problems.append("provider 'http' needs an [sms.http] table describing the gateway")
        if self.provider == "http" and not self.url:
            problems.append("provider 'http' needs sms.url (the gateway's address)")
        if self.url:
            parts = urlsplit(self.url)
            if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
                problems.append(
                    f"url {self.url!r}: plain http would send the credentials unencrypted; "
                    "use https:// (http:// is allowed only to localhost)"
                )
            elif parts.scheme not in {"http", "https"} or not parts.hostname:
                problems.append(f"url {self.url!r}: not an https:// address")
        if problems:
            raise ValueError("\n".join(problems))
        return self


#: the shipped tracking pages (SPEC §11), by carrier code; ``[shipping.carriers]`` adds to
#: them or replaces one. Their addresses as the carriers published them (not reachable from
#: where the tool was built: a merchant checks one link of each carrier it uses).
DEFAULT_CARRIERS: dict[str, str] = {
    "post": "https://service.post.ch/ekp-web/ui/entry/search/{number}",
    "dhl": "https://www.dhl.com/ch-de/home/tracking.html?tracking-id={number}&submit=1",
    "dpd": "https://www.dpdgroup.com/ch/mydpd/my-parcels/search?parcelNumber={number}",
    "ups": "https://www.ups.com/track?loc=de_CH&tracknum={number}",
    "gls": "https://gls-group.com/CH/de/paketverfolgung?match={number}",
    "planzer": "https://tracking.planzer.ch/{number}",
}


def _tracking_urls(value: dict[str, str]) -> dict[str, str]:
    problems = []
    for code, url in value.items():
        parts = urlsplit(url)
        if "{number}" not in url:
            problems.append(f"carriers.{code}: the address needs {{number}} (the tracking number)")
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            problems.append(f"carriers.{code}: {url!r} is not an https:// address")
    if problems:
        raise ValueError("\n".join(problems))
    return {**DEFAULT_CARRIERS, **value}


class ShippingSettings(_Model):
    """``[shipping]``."""

    on_delivery_note_print: bool = True
    to_contact: bool = False
    max_age_days: int = Field(default=14, ge=0)
    #: carrier code -> tracking page with {number}; the shipped ones unless replaced
    carriers: Annotated[dict[str, str], AfterValidator(_tracking_urls)] = Field(
        default_factory=lambda: dict(DEFAULT_CARRIERS)
    )
    #: the carrier of notes whose ERP row names none (None: such a note shows the number
    #: without a link)
    default_carrier: str | None = None

    @model_validator(mode="after")
    def _default_known(self) -> ShippingSettings:
        if self.default_carrier is not None and self.default_carrier not in self.carriers:
            raise ValueError(
                f"default_carrier {self.default_carrier!r} is not a carrier (known: "
                f"{', '.join(sorted(self.carriers))}; add it under [shipping.carriers])"
            )
        return self


class ReviewSettings(_Model):
    """``[review]``."""

    delay_days: int = Field(default=7, ge=0)
    default_status: bool = False
    only_complete_delivery: bool = False
    on_auto_processing: bool = False
    on_delivery_note_print: bool = False
    max_age_days: int = Field(default=14, ge=0)
    portal_url: str = ""
    #: the List-Unsubscribe address of review requests: mailto:... or https://...; an https
    #: address with {token} gets each recipient's signed token there, and one-click
    list_unsubscribe: str = ""
    #: the key the {token} of list_unsubscribe is signed with (use ${ENV})
    unsubscribe_secret: str = Field(default="", repr=False)

    @field_validator("list_unsubscribe")
    @classmethod
    def _unsubscribe(cls, value: str) -> str:
        value = value.strip()
        if value and not re.match(r"^(mailto:[^\s@<>]+@[^\s@<>]+|https://[^\s<>]+)$", value):
            raise ValueError(
                "use a mailto: or https: address, e.g. "
                '"mailto:abmelden@example.ch" or "https://www.example.ch/abmelden?t={token}"'
            )
        return value

    @model_validator(mode="after")
    def _token(self) -> ReviewSettings:
        has_token = "{token}" in self.list_unsubscribe
        if has_token and not self.list_unsubscribe.startswith("https:"):
            raise ValueError("list_unsubscribe: {token} belongs in an https: address only")
        if has_token and len(self.unsubscribe_secret) < 16:
            raise ValueError(
                "list_unsubscribe has {token}: set review.unsubscribe_secret to a random "
                'text of at least 16 characters (unsubscribe_secret = "${UNSUBSCRIBE_SECRET}")'
            )
        return self

    @property
    def one_click(self) -> bool:
        """Whether review requests offer RFC 8058 one-click: only with a token that says
        who clicked (an https link that is the same for everyone cannot)."""
        return self.list_unsubscribe.startswith("https:") and "{token}" in self.list_unsubscribe


class Creditor(_Model):
    """Who is paid (the QR-bill's creditor): a structured address, as the Swiss Payment
    Standards 2.3 require since 21 November 2025."""

    name: str = Field(min_length=1, max_length=70)
    street: str = Field(default="", max_length=70)
    house_num: str = Field(default="", max_length=16)
    pcode: str = Field(min_length=1, max_length=16)
    city: str = Field(min_length=1, max_length=35)
    country: str = Field(default="CH", pattern=r"^[A-Z]{2}$")


class QrBillSettings(_Model):
    """``[prepayment.qr_bill]`` (SPEC §11): a Swiss QR-bill for the open amount."""

    #: the IBAN or QR-IBAN payments go to (CH or LI)
    account: str
    creditor: Creditor

    @field_validator("account")
    @classmethod
    def _iban(cls, value: str) -> str:
        from stdnum import iban
        from stdnum.exceptions import ValidationError

        compact = iban.compact(value)
        try:
            iban.validate(compact)
        except ValidationError as exc:
            raise ValueError(f"{value!r} is not a valid IBAN ({exc})") from None
        if compact[:2] not in {"CH", "LI"}:
            raise ValueError(f"{value!r}: a QR-bill is paid to a Swiss or Liechtenstein account")
        return compact

    @property
    def qr_iban(self) -> bool:
        """A QR-IBAN (its institution id 30000-31999): payments need a QR reference."""
        return 30000 <= int(self.account[4:9]) <= 31999


class PrepaymentSettings(_Model):
    """``[prepayment]``."""

    delay_days: int = Field(default=7, ge=0)
    repeat_days: int = Field(default=7, ge=1)
    max_mails: int = Field(default=3, ge=0)
    #: a FIRST reminder due longer ago is never sent; a started series never ages out
    max_age_days: int = Field(default=60, ge=0)
    #: a QR-bill PDF with each reminder that has no invoice PDF attached
    qr_bill: QrBillSettings | None = None


FIELD_RE = re.compile(r"\{([^{}]*)\}")
#: the fields a path template of [attachments] may name (the document's own)
ATTACHMENT_FIELDS = ("number", "id", "order_number")


def _path_template(value: str | None) -> str | None:
    if value is None:
        return None
    unknown = [f for f in FIELD_RE.findall(value) if f not in ATTACHMENT_FIELDS]
    if unknown:
        raise ValueError(
            f"{value!r}: unknown field(s) {', '.join('{' + f + '}' for f in unknown)} (known: "
            + ", ".join("{" + f + "}" for f in ATTACHMENT_FIELDS) + ")"
        )
    if os.name != "nt" and PureWindowsPath(value).drive:
        raise ValueError(
            f"{value!r} is a Windows path (a share or a drive), and this machine is not "
            "Windows: mount the folder here and give its path"
        )
    if not FIELD_RE.search(value.replace("\\", "/").rpartition("/")[2]):
        raise ValueError(
            f"{value!r}: the file name needs a field, e.g. LS_{{number}}.pdf (else every "
            "message gets the same file)"
        )
    return value


class AttachmentSettings(_Model):
    """``[attachments]`` (SPEC §11): the ERP's PDFs, by path template."""

    #: shipping confirmations attach it: "\\\\srv\\archiv\\LS_{number}.pdf"
    delivery_note: Annotated[str | None, AfterValidator(_path_template)] = None
    #: prepayment reminders attach it
    invoice: Annotated[str | None, AfterValidator(_path_template)] = None
    max_total_mb: float = Field(default=10, gt=0, le=100)
    #: a file that is not there yet is waited for this long (the ERP may still write it)
    wait_hours: float = Field(default=24, ge=0)


class DeliveryDateSettings(_Model):
    """``[delivery_date]``."""

    edit_before_send: bool = False
    #: false: the first run takes the current dates as the baseline and sends nothing
    notify_existing: bool = False
    #: no longer used (the baseline replaced the order-age rule); accepted so that a settings
    #: file of an earlier version still loads, and ``check`` says it can go
    max_age_days: int | None = Field(default=None, ge=0)


class AlertSettings(_Model):
    """``[alerts]`` (SPEC §6): a summary mail after a command run with problems."""

    to: list[str] = Field(default_factory=list)
    on: Literal["problems", "never"] = "problems"
    #: the sending account (default: email.default_account)
    account: str | None = None

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = []
        for address in value:
            try:
                validate_email(address, check_deliverability=False)
            except EmailNotValidError as exc:
                bad.append(f"{address!r} is not an email address ({exc})")
        if bad:
            raise ValueError("\n".join(bad))
        return value

    @property
    def enabled(self) -> bool:
        return self.on == "problems" and bool(self.to)


#: Microsoft 365's own sending limits per mailbox: 30 messages a minute, 10,000
#: recipients a day (Exchange Online limits); its SMTP hosts get the minute limit by default
M365_PER_MINUTE = 30
M365_SMTP_HOSTS = frozenset({"smtp.office365.com", "smtp-legacy.office365.com"})
#: where Microsoft's identity platform lives (national clouds and tests override it)
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
#: where Microsoft Graph lives (national clouds and tests override it: graph_url)
GRAPH_URL = "https://graph.microsoft.com"


class OAuth2Settings(_Model):
    """``[email.accounts.<name>.oauth2]``: how the account gets its access token (SPEC §9)."""

    provider: Literal["microsoft", "google", "command"]
    #: microsoft: the directory (tenant) id or the tenant's domain
    tenant: str = ""
    client_id: str = ""
    client_secret: str = Field(default="", repr=False)
    #: microsoft, instead of a secret: the certificate (PEM with its private key) and the
    #: thumbprint shown under "Certificates & secrets" of the app registration
    certificate_file: FilePath | None = None
    certificate_thumbprint: str = ""
    authority: str = MICROSOFT_AUTHORITY
    #: google: the service account's JSON key (domain-wide delegation)
    service_account_file: FilePath | None = None
    #: command: prints an access token on its first line (like msmtp's passwordeval)
    token_command: str = ""

    @model_validator(mode="after")
    def _provider_needs(self) -> OAuth2Settings:
        problems = []
        if self.provider == "microsoft":
            if not self.tenant:
                problems.append("provider microsoft needs tenant (the directory id or domain)")
            if not self.client_id:
                problems.append("provider microsoft needs client_id (the app's client id)")
            has_certificate = self.certificate_file is not None
            if bool(self.client_secret) == has_certificate:
                problems.append(
                    "provider microsoft needs either client_secret or certificate_file with "
                    "certificate_thumbprint (not both)"
                )
            thumbprint = self.certificate_thumbprint
            if has_certificate and not re.fullmatch(r"[0-9A-Fa-f]{40}", thumbprint):
                problems.append(
                    "certificate_thumbprint: the 40 hex digits of the certificate's SHA-1 "
                    "thumbprint, as the app registration shows it"
                )
            parts = urlsplit(self.authority)
            if parts.scheme != "https" or not parts.hostname:
                problems.append(f"authority {self.authority!r}: an https:// address")
        elif self.provider == "google" and self.service_account_file is None:
            problems.append("provider google needs service_account_file (the JSON key)")
        elif self.provider == "command" and not self.token_command.strip():
            problems.append("provider command needs token_command")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class ImapSettings(_Model):
    """``[email.accounts.<name>.imap]``: the mailbox that receives the account's bounces
    (SPEC §10)."""

    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["ssl", "starttls", "none"] = "ssl"
    #: default: the account's username (its mailbox)
    username: str = ""
    password: str = Field(default="", repr=False)
    #: default: "oauth2" when the account logs in by OAuth2 and no password is given here
    auth: Literal["password", "oauth2"] | None = None
    folder: str = "INBOX"
    processed_folder: str = "proit-notify-bounces"
    #: default: the account's timeout
    timeout: float | None = Field(default=None, gt=0)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 993 if self.security == "ssl" else 143


class BouncesSettings(_Model):
    """``[bounces]`` (SPEC §10): how far back the mailboxes are read, and what a hard
    bounce does."""

    since_days: int = Field(default=14, ge=1, le=365)
    #: "sms": the bounced notification goes out once by SMS when the customer has a valid
    #: mobile (else the alert says it); "alert": the alert only
    on_hard: Literal["sms", "alert"] = "alert"


class AccountSettings(_Model):
    """``[email.accounts.<name>]``: one sending account."""

    model_config = ConfigDict(populate_by_name=True)

    transport: Literal["smtp", "file", "graph"] = "smtp"
    host: str = ""
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    #: the login (the mailbox with OAuth2); with auth = "oauth2" the from address by default
    username: str = ""
    password: str = Field(default="", repr=False)
    auth: Literal["password", "oauth2"] = "password"
    oauth2: OAuth2Settings | None = None
    from_: str = Field(alias="from")
    reply_to: str | None = None
    bcc: str | None = None
    timeout: float = Field(default=30, gt=0)
    max_per_minute: int | None = Field(default=None, ge=1)
    max_per_day: int | None = Field(default=None, ge=1)
    connections: int = Field(default=1, ge=1, le=16)
    directory: FilePath | None = None
    ca_file: FilePath | None = None
    #: send the password over a connection without TLS to a host other than loopback
    allow_plaintext_auth: bool = False
    #: transport "graph": where Microsoft Graph is (national clouds, a test stand-in)
    graph_url: str = GRAPH_URL
    #: the mailbox that receives this account's bounces (SPEC §10)
    imap: ImapSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Defaults that depend on other keys: an OAuth2 account logs in as its from
        address; Microsoft 365 (its SMTP hosts, Graph) sends at most 30 messages a minute;
        the bounce mailbox logs in as the account, by its way."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        sender = data.get("from", data.get("from_"))
        if data.get("transport") == "graph":
            data.setdefault("auth", "oauth2")
        if data.get("auth") == "oauth2" and not data.get("username") and isinstance(sender, str):
            data["username"] = parseaddr(sender)[1]
        host = data.get("host")
        m365 = isinstance(host, str) and host.strip().lower() in M365_SMTP_HOSTS
        if m365 or data.get("transport") == "graph":
            data.setdefault("max_per_minute", M365_PER_MINUTE)
        imap = data.get("imap")
        if isinstance(imap, dict):
            imap = dict(imap)
            if not imap.get("username"):
                imap["username"] = data.get("username") or (
                    parseaddr(sender)[1] if isinstance(sender, str) else ""
                )
            if imap.get("auth") is None:
                oauth2 = data.get("auth") == "oauth2" and not imap.get("password")
                imap["auth"] = "oauth2" if oauth2 else "password"
            imap.setdefault("timeout", data.get("timeout", 30.0))
            data["imap"] = imap
        return data

    @model_validator(mode="after")
    def _transport_needs(self) -> AccountSettings:
        if self.transport == "graph":
            if self.oauth2 is None or self.oauth2.provider == "google":
                raise ValueError(
                    'transport "graph" sends through Microsoft Graph with an app token: it needs '
                    'auth = "oauth2" and an [oauth2] table with provider = "microsoft" (or '
                    '"command")'
                )
            parts = urlsplit(self.graph_url)
            if parts.scheme != "https" or not parts.hostname:
                raise ValueError(f"graph_url {self.graph_url!r}: an https:// address")
        if self.auth == "oauth2" and self.oauth2 is None:
            raise ValueError(
                'auth = "oauth2" needs an [email.accounts.NAME.oauth2] table (provider = '
                '"microsoft", "google" or "command")'
            )
        if self.auth == "oauth2" and self.password:
            raise ValueError('auth = "oauth2" logs in with a token: remove password')
        if self.transport == "smtp" and not self.host:
            raise ValueError("transport 'smtp' needs 'host' (the SMTP server's name)")
        if self.transport == "file" and self.directory is None:
            raise ValueError("transport 'file' needs 'directory' (where .eml files are written)")
        imap = self.imap
        if imap is not None:
            if imap.auth == "oauth2" and self.oauth2 is None:
                raise ValueError(
                    'imap: auth = "oauth2" uses the account\'s [oauth2] table, which is missing; '
                    "or give imap.password"
                )
            if imap.auth == "password" and not imap.password:
                raise ValueError('imap: give password (or auth = "oauth2": the account\'s token)')
            plain = imap.security == "none" and not is_loopback(imap.host)
            if plain and not self.allow_plaintext_auth:
                raise ValueError(
                    f'imap: security = "none" would send the login to {imap.host} unencrypted: use '
                    '"ssl" (port 993) or "starttls"'
                )
        if (
            self.transport == "smtp"
            and self.security == "none"
            and self.username
            and not is_loopback(self.host)
            and not self.allow_plaintext_auth
        ):
            raise ValueError(
                f'security = "none" with a username would send the password to {self.host} '
                'unencrypted: use security = "starttls" or "ssl", or, if the network is '
                "trusted, set allow_plaintext_auth = true"
            )
        if not self.password.isascii() and self.transport == "smtp" and self.auth == "password":
            # smtplib's AUTH encodes ASCII only (a non-ASCII password crashed the run)
            raise ValueError(
                "password: only ASCII characters can be sent by SMTP AUTH here; "
                "choose a password without umlauts or other non-ASCII characters"
            )
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"ssl": 465, "starttls": 587, "none": 25}[self.security]


class EmailSettings(_Model):
    """``[email]``."""

    default_account: str = "default"
    accounts: dict[str, AccountSettings] = Field(default_factory=dict)
    shop_accounts: dict[str, str] = Field(default_factory=dict)
    items_as_table: bool = True
    #: local hours emails may go out, "07:00-21:00" (default: service.send_window)
    send_window: WindowText = None

    @model_validator(mode="after")
    def _accounts_exist(self) -> EmailSettings:
        defined = ", ".join(sorted(self.accounts)) or "none: add an [email.accounts.NAME] table"
        problems = []
        if self.default_account not in self.accounts:
            problems.append(
                f"default_account {self.default_account!r} is not defined here "
                f"(defined accounts: {defined})"
            )
        for shop, account in sorted(self.shop_accounts.items()):
            if account not in self.accounts:
                problems.append(
                    f"shop_accounts.{shop} = {account!r} is not a defined account "
                    f"(defined accounts: {defined})"
                )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def account_for_shop(self, shop: str | None) -> str:
        """The account name for an order's shop (SPEC §4 'Account')."""
        if shop is not None and shop in self.shop_accounts:
            return self.shop_accounts[shop]
        return self.default_account


class ShopSettings(_Model):
    """``[shops."CODE"]`` (SPEC §11): one web shop's own face."""

    #: its email account (as ``email.shop_accounts`` says, which stays valid)
    account: str | None = None
    #: its templates, over ``templates.dir`` and the shipped ones
    templates_dir: FilePath | None = None
    #: its review portal (``review.portal_url`` for the others)
    portal_url: str | None = None
    #: the name its emails come from ("Beispiel Shop <shop@example.ch>": the account's address)
    sender_name: str | None = Field(default=None, max_length=100)

    @field_validator("sender_name")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n<>\""):
            raise ValueError("sender_name: one line, without < > or quotes (just the name)")
        return value


class TemplateSettings(_Model):
    """``[templates]``."""

    dir: FilePath | None = None


class LedgerSettings(_Model):
    """``[ledger]``."""

    sqlite: FilePath | None = None
    erp: bool = False
    table: Identifier = "proit_notify_ledger"
    lock_file: FilePath | None = None


class RetrySettings(_Model):
    """``[retry]``: back-off of deferred notifications (our design, SPEC §2 leaves it open)."""

    first_delay_minutes: int = Field(default=15, ge=0)
    max_delay_hours: int = Field(default=24, ge=1)
    max_attempts: int = Field(default=10, ge=1)


class SqlExpression(_Model):
    """A field given as ``{ sql = "..." }``: a raw SQL expression over its table."""

    sql: str = Field(min_length=1)


ColumnSpec = ColumnName | SqlExpression


_Key = TypeVar("_Key", bound=str)


def _codes_listed_twice(value: Mapping[_Key, list[str]]) -> list[str]:
    """An ERP code under two keys of ``[erp.info_types]`` / ``[erp.language_codes]`` (codes
    compare without blanks and case, as the ERP's CHAR(n) columns hold them)."""
    seen: dict[str, _Key] = {}
    problems = []
    for key, codes in value.items():
        for code in codes:
            folded = code.strip().casefold()
            if folded in seen and seen[folded] != key:
                problems.append(f"code {code!r} is listed under both {seen[folded]!r} and {key!r}")
            seen[folded] = key
    return problems


class ErpSettings(_Model):
    """``[erp]``: connection and the table/column mapping of SPEC §3."""

    sqlite: FilePath | None = None
    odbc: str | None = Field(default=None, repr=False)
    login_timeout: int = Field(default=15, ge=1)
    query_timeout: int = Field(default=120, ge=0)
    fetch_size: int = Field(default=1000, ge=1)
    tables: dict[str, Identifier] = Field(default_factory=dict)
    columns: dict[str, dict[str, ColumnSpec]] = Field(default_factory=dict)
    info_types: dict[InfoType, list[str]] = Field(default_factory=dict)
    #: language -> the ERP's own codes for it (``fr = ["W"]``), over the built-in reading
    language_codes: dict[str, list[str]] = Field(default_factory=dict)
    #: carrier code -> the ERP's own codes for it (``post = ["P", "PostPac"]``)
    carrier_codes: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("odbc")
    @classmethod
    def _names_a_driver(cls, value: str | None) -> str | None:
        if value is not None and not {k.upper() for k, _ in odbc_pairs(value)} & {
            "DRIVER", "DSN", "FILEDSN"
        }:
            raise ValueError(
                "the connection string names no driver: start it with DRIVER={ODBC Driver 18 "
                "for SQL Server}; (or DRIVER={PostgreSQL Unicode}, DRIVER={MariaDB Unicode}), "
                "or name a data source with DSN=..."
            )
        return value

    def carrier_of(self, value: object) -> str | None:
        """The carrier code an ERP value stands for: its own code, or one of
        ``[erp.carrier_codes]`` (compared without case and blanks)."""
        text = "" if value is None else str(value).strip().casefold()
        if not text:
            return None
        for carrier, codes in self.carrier_codes.items():
            if any(text == c.strip().casefold() for c in codes):
                return carrier
        return text

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [t for t in value if t not in LOGICAL_SCHEMA]
        if unknown:
            raise ValueError(
                f"unknown logical table(s) {', '.join(unknown)} "
                f"(known: {', '.join(LOGICAL_SCHEMA)})"
            )
        return value

    @field_validator("columns")
    @classmethod
    def _known_fields(
        cls, value: dict[str, dict[str, ColumnSpec]]
    ) -> dict[str, dict[str, ColumnSpec]]:
        problems = []
        for table, fields in value.items():
            if table not in LOGICAL_SCHEMA:
                known = ", ".join(LOGICAL_SCHEMA)
                problems.append(f"{table}: unknown logical table (known: {known})")
                continue
            for name in fields:
                allowed = LOGICAL_SCHEMA[table] + OPTIONAL_FIELDS.get(table, ())
                if name not in allowed:
                    known = ", ".join(allowed)
                    problems.append(f"{table}.{name}: unknown field (known: {known})")
        if problems:
            raise ValueError("\n".join(problems))
        return value

    @field_validator("info_types")
    @classmethod
    def _codes_unique(cls, value: dict[InfoType, list[str]]) -> dict[InfoType, list[str]]:
        problems = _codes_listed_twice(value)
        if problems:
            raise ValueError("\n".join(problems))
        return value

    @field_validator("language_codes")
    @classmethod
    def _languages(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        problems = [
            f"{language!r}: a language is a two-letter ISO code in lower case "
            '(de, fr, it, en), e.g. fr = ["W"]'
            for language in value
            if not re.fullmatch(r"[a-z]{2}", language)
        ]
        problems += _codes_listed_twice(value)
        if problems:
            raise ValueError("\n".join(problems))
        return value

    @model_validator(mode="after")
    def _one_connection(self) -> ErpSettings:
        if (self.sqlite is None) == (self.odbc is None):
            raise ValueError(
                'set exactly one of erp.sqlite = "path.db" or erp.odbc = "DRIVER={...};..."'
            )
        return self

    def table(self, logical: str) -> str:
        return self.tables.get(logical, logical)

    def column(self, table: str, field: str) -> ColumnSpec:
        return self.columns.get(table, {}).get(field, field)

    def describe(self, field: str, phone_field: str | None = None) -> str:
        """Where the logical ``table.field`` is read from, for a message that says what to
        fix in the ERP: "column 'Menge' of table 'Lieferschein Positionen'"."""
        table, _, name = field.partition(".")
        if table not in LOGICAL_SCHEMA:
            return field
        if name == "phone":
            return f"column {phone_field!r} of table {self.table(table)!r} (sms.phone_field)"
        spec = self.column(table, name)
        if isinstance(spec, SqlExpression):
            return f"the expression of erp.columns.{table}.{name} over table {self.table(table)!r}"
        return f"column {spec!r} of table {self.table(table)!r}"

    def maps(self, table: str, field: str) -> bool:
        """Whether ``field`` is read from the ERP (an optional field only when mapped)."""
        return field not in OPTIONAL_FIELDS.get(table, ()) or field in self.columns.get(table, {})

    def info_type_of(self, code: object, default: InfoType) -> InfoType:
        """Map an ERP info-type code to an info type; empty or unknown -> ``default``.

        Info types without an entry in ``[erp.info_types]`` keep their logical name as code.
        Codes compare without surrounding blanks and case (ERP code columns are often CHAR(n)).
        """
        text = "" if code is None else str(code).strip().casefold()
        if not text:
            return default
        for info_type in INFO_TYPES:
            codes = self.info_types.get(info_type, [info_type])
            if any(text == c.strip().casefold() for c in codes):
                return info_type
        return default


#: settings sections of jobs that plug-ins register (``jobs.registry.register``): section
#: -> its model; validated with the rest of the file
JOB_SECTIONS: dict[str, type[BaseModel]] = {}


def settings_model() -> type[Settings]:
    """The model a settings file is validated with: :class:`Settings`, with a section for
    each registered job that brings its own (:data:`JOB_SECTIONS`)."""
    return _with_sections(tuple(JOB_SECTIONS.items()))


@functools.cache
def _with_sections(sections: tuple[tuple[str, type[BaseModel]], ...]) -> type[Settings]:
    if not sections:
        return Settings
    fields: dict[str, Any] = {
        name: (model, Field(default_factory=model)) for name, model in sections
    }
    made: type[Settings] = create_model("Settings", __base__=Settings, **fields)
    return made


class Settings(_Model):
    """The whole settings file."""

    service: ServiceSettings = Field(default_factory=ServiceSettings)
    erp: ErpSettings
    email: EmailSettings
    sms: SmsSettings = Field(default_factory=SmsSettings)
    shipping: ShippingSettings = Field(default_factory=ShippingSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    prepayment: PrepaymentSettings = Field(default_factory=PrepaymentSettings)
    delivery_date: DeliveryDateSettings = Field(default_factory=DeliveryDateSettings)
    bounces: BouncesSettings = Field(default_factory=BouncesSettings)
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)
    shops: dict[str, ShopSettings] = Field(default_factory=dict)
    templates: TemplateSettings = Field(default_factory=TemplateSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    #: where the settings were read from (relative paths are resolved against its folder)
    source: FilePath = Field(default=Path(DEFAULT_CONFIG_NAME), exclude=True)

    @model_validator(mode="after")
    def _shops(self) -> Settings:
        defined = ", ".join(sorted(self.email.accounts))
        problems = [
            f"shops.{code}.account = {shop.account!r} is not a defined account (defined "
            f"accounts: {defined})"
            for code, shop in sorted(self.shops.items())
            if shop.account is not None and shop.account not in self.email.accounts
        ]
        problems += [
            f"shops.{code}.templates_dir {shop.templates_dir} is not a folder"
            for code, shop in sorted(self.shops.items())
            if shop.templates_dir is not None and not shop.templates_dir.is_dir()
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def account_for_shop(self, shop: str | None) -> str:
        """The email account of an order's shop: ``[shops]``, ``email.shop_accounts``, else
        the default account."""
        chosen = self.shops.get(shop) if shop is not None else None
        if chosen is not None and chosen.account is not None:
            return chosen.account
        return self.email.account_for_shop(shop)

    @property
    def shop_templates(self) -> list[Path]:
        """The shops' own template folders."""
        return [s.templates_dir for s in self.shops.values() if s.templates_dir is not None]

    def shop(self, code: str | None) -> ShopSettings | None:
        """The ``[shops."CODE"]`` of an order's shop, if there is one."""
        return self.shops.get(code.strip()) if code is not None else None

    def window_of(self, channel: str) -> tuple[str, str] | None:
        """The send window of ``channel`` ("email", "sms") as its key and text
        (``("sms.send_window", "08:00-20:00")``): its own, else ``service.send_window``;
        None: any time."""
        own = self.email.send_window if channel == "email" else self.sms.send_window
        if own:
            return f"{channel}.send_window", own
        if self.service.send_window:
            return "service.send_window", self.service.send_window
        return None

    def secrets(self) -> list[tuple[str, str | None]]:
        """Every secret of these settings with its user name (for :mod:`redaction`)."""
        found: list[tuple[str, str | None]] = [
            (a.password, a.username) for a in self.email.accounts.values()
        ]
        found += [
            (a.oauth2.client_secret, a.oauth2.client_id)
            for a in self.email.accounts.values()
            if a.oauth2 is not None
        ]
        found += [
            (a.imap.password, a.imap.username)
            for a in self.email.accounts.values()
            if a.imap is not None
        ]
        found.append((self.sms.password, self.sms.username))
        found.append((self.review.unsubscribe_secret, None))
        if self.erp.odbc:
            found += [(v, None) for v in odbc_secrets(self.erp.odbc)]
        return found

    def section(self, name: str) -> BaseModel:
        """A job's settings section by name (a registered job's own, too)."""
        found = getattr(self, name)
        assert isinstance(found, BaseModel)
        return found

    @property
    def alert_account(self) -> str:
        return self.alerts.account or self.email.default_account

    @property
    def base_dir(self) -> Path:
        return self.source.parent

    @property
    def ledger_path(self) -> Path:
        return self.ledger.sqlite or self.base_dir / "proit-notify-ledger.sqlite"

    @property
    def lock_path(self) -> Path:
        if self.ledger.lock_file is not None:
            return self.ledger.lock_file
        return self.ledger_path.with_name(self.ledger_path.name + ".lock")


# --- loading -------------------------------------------------------------------------------

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PATH_KEYS = {
    ("service", "log_file"),
    ("erp", "sqlite"),
    ("ledger", "sqlite"),
    ("ledger", "lock_file"),
    ("templates", "dir"),
}


def resolve_config_path(explicit: Path | None) -> Path:
    """``--config``, else ``$PROIT_NOTIFY_CONFIG``, else ``./proit-notify.toml`` (SPEC §2)."""
    if explicit is not None:
        return explicit
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path(DEFAULT_CONFIG_NAME)


def _substitute(
    value: Any, path: str, env: Mapping[str, str], problems: list[str], used: dict[str, str]
) -> Any:
    """``value`` with every ``${NAME}`` replaced (``used``: each value put in -> NAME)."""
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(
                    f"{path}: environment variable {name} is not set "
                    f"(set it, or write the value instead of ${{{name}}})"
                )
                return ""
            used[env[name]] = name
            return env[name]

        return _ENV_RE.sub(repl, value)
    if isinstance(value, dict):
        return {
            k: _substitute(v, f"{path}.{k}" if path else k, env, problems, used)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, f"{path}[{i}]", env, problems, used) for i, v in enumerate(value)]
    return value


def _as_written(problem: str, used: Mapping[str, str]) -> str:
    """A settings problem with each value that came from ``${NAME}`` shown as ``${NAME}``:
    the file's words, never a substituted secret (a token in ``sms.url``, say)."""
    for value, name in sorted(used.items(), key=lambda u: len(u[0]), reverse=True):
        if len(value) >= 4:
            problem = problem.replace(value, f"${{{name}}}")
    return problem


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in the file are relative to the file, not to the working directory."""
    for section, key in _PATH_KEYS:
        part = data.get(section)
        if isinstance(part, dict) and isinstance(part.get(key), str):
            part[key] = str(base / Path(part[key]).expanduser())
    email = data.get("email")
    accounts = email.get("accounts") if isinstance(email, dict) else None
    if isinstance(accounts, dict):
        for account in accounts.values():
            if isinstance(account, dict):
                for key in ("directory", "ca_file"):
                    if isinstance(account.get(key), str):
                        account[key] = str(base / Path(account[key]).expanduser())
                oauth2 = account.get("oauth2")
                if isinstance(oauth2, dict):
                    for key in ("certificate_file", "service_account_file"):
                        if isinstance(oauth2.get(key), str):
                            oauth2[key] = str(base / Path(oauth2[key]).expanduser())
    shops = data.get("shops")
    if isinstance(shops, dict):
        for shop in shops.values():
            if isinstance(shop, dict) and isinstance(shop.get("templates_dir"), str):
                shop["templates_dir"] = str(base / Path(shop["templates_dir"]).expanduser())


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str] | None:
    """The keys a table at ``loc`` allows, to say what is allowed next to an unknown key."""
    model: Any = settings_model()
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields is None or not isinstance(part, str) or part not in fields:
            # a dict level (accounts.<name>): step into its value type
            if model is settings_model() or fields is None:
                return None
            continue
        annotation = fields[part].annotation
        model = _model_in(annotation)
        if model is None:
            return None
    fields = getattr(model, "model_fields", None)
    if fields is None:
        return None
    return sorted((f.alias or name) for name, f in fields.items() if name != "source")


def _suggestion(loc: tuple[int | str, ...], allowed: list[str] | None) -> str:
    """What an unknown key probably meant: a near miss here (``delay_day`` ->
    ``delay_days``), or the section it belongs in (``max_mails`` under [review] ->
    [prepayment]); the keys allowed here otherwise."""
    name = str(loc[-1])
    near = difflib.get_close_matches(name, allowed or [], n=1, cutoff=0.75)
    listed = f"allowed here: {', '.join(allowed)}" if allowed else ""
    if near:
        return f" (did you mean {near[0]}? {listed})" if listed else f" (did you mean {near[0]}?)"
    homes = [
        section
        for section, field in settings_model().model_fields.items()
        if len(loc) == 2 and section != loc[0]
        and name in {(f.alias or n) for n, f in getattr(_model_in(field.annotation),
                                                          "model_fields", {}).items()}
    ]  # fmt: skip
    if homes:
        where = " or ".join(f"[{h}]" for h in homes)
        return f" (it belongs in {where}, not [{loc[0]}])"
    return f" ({listed})" if listed else ""


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation (Optional[X], dict[str, X])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


#: pydantic's words for TOML types, in the words of someone who edits the file
_PLAIN_TYPE_ERRORS = {
    "bool_type": "must be true or false (without quotes)",
    "int_type": "must be a whole number (without quotes)",
    "float_type": "must be a number (without quotes)",
    "string_type": 'must be text in quotes: "..."',
    "dict_type": "must be a table: [section] or { key = value }",
    "list_type": 'must be a list: ["...", "..."]',
}


def _format_error(file: Path, err: Mapping[str, Any]) -> list[str]:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    # pydantic names union branches in loc ('str', 'SqlExpression'): drop them for the reader
    loc = tuple(p for p in loc if p not in {"str", "SqlExpression", "constrained-str"})
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        return [f"{file}: {key}: unknown key{_suggestion(loc, allowed)}"]
    if kind == "missing":
        return [f"{file}: {key}: required key is missing"]
    msg = _PLAIN_TYPE_ERRORS.get(kind) or str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    if "password" in key or key.endswith("odbc"):
        shown = ""  # never echo secrets
    return [f"{file}: {key}: {part}{shown}" for part in msg.split("\n")]


def _cross_section_problems(data: Mapping[str, Any]) -> list[str]:
    """Keys that name something of another section (``alerts.account``)."""
    alerts, email = data.get("alerts"), data.get("email")
    name = alerts.get("account") if isinstance(alerts, dict) else None
    accounts = email.get("accounts") if isinstance(email, dict) else None
    if not isinstance(name, str) or not isinstance(accounts, dict) or name in accounts:
        return []
    defined = ", ".join(sorted(accounts)) or "none"
    return [f"alerts.account: {name!r} is not a defined account (defined accounts: {defined})"]


def parse_settings(
    data: dict[str, Any], source: Path, env: Mapping[str, str] | None = None
) -> Settings:
    """Validate an already-parsed TOML document (used by ``load_settings`` and tests)."""
    env = os.environ if env is None else env
    problems: list[str] = []
    used: dict[str, str] = {}  # what ${NAME} was replaced by -> NAME
    data = _substitute(data, "", env, problems, used)
    problems = [f"{source}: {p}" for p in problems]
    _resolve_paths(data, source.parent)
    try:
        settings = settings_model().model_validate({**data, "source": source})
    except ValidationError as exc:
        for err in exc.errors():
            problems.extend(_format_error(source, err))
        settings = None
    # between sections: checked on the raw data, so that they are reported with the rest
    problems.extend(f"{source}: {p}" for p in _cross_section_problems(data))
    if problems or settings is None:
        raise ConfigError(
            f"{source}: {len(problems)} problem(s) in the settings; nothing was sent",
            tuple(_as_written(p, used) for p in problems),
        )
    register(settings.secrets())
    return settings


def odbc_secrets(conn_str: str) -> list[str]:
    """The password values of an ODBC connection string."""
    return [v for k, v in odbc_pairs(conn_str) if k.upper() in {"PWD", "PASSWORD"}]


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings file at ``path``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"settings file {path} not found: pass --config PATH, set ${CONFIG_ENV}, "
            "or create one with 'proit-notify init'"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from None
    try:
        # utf-8-sig: Notepad and PowerShell 5's Out-File start the file with a BOM
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line L, column C)"
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    _check_file_mode(path, data)
    return parse_settings(data, path.resolve(), env)


def literal_secrets(data: Mapping[str, Any]) -> list[str]:
    """Keys that hold a secret written into the file (not through ``${ENV}``)."""

    def literal(value: object) -> bool:
        return isinstance(value, str) and bool(value.strip()) and not _ENV_RE.search(value)

    found = []
    sms = data.get("sms")
    if isinstance(sms, dict) and literal(sms.get("password")):
        found.append("sms.password")
    email = data.get("email")
    accounts = email.get("accounts") if isinstance(email, dict) else None
    if isinstance(accounts, dict):
        for name, account in accounts.items():
            if isinstance(account, dict) and literal(account.get("password")):
                found.append(f"email.accounts.{name}.password")
            oauth2 = account.get("oauth2") if isinstance(account, dict) else None
            if isinstance(oauth2, dict) and literal(oauth2.get("client_secret")):
                found.append(f"email.accounts.{name}.oauth2.client_secret")
            imap = account.get("imap") if isinstance(account, dict) else None
            if isinstance(imap, dict) and literal(imap.get("password")):
                found.append(f"email.accounts.{name}.imap.password")
    erp = data.get("erp")
    odbc = erp.get("odbc") if isinstance(erp, dict) else None
    if isinstance(odbc, str) and any(literal(v) for v in odbc_secrets(odbc)):
        found.append("erp.odbc: its PWD")
    return found


def _check_file_mode(path: Path, data: Mapping[str, Any]) -> None:
    """A literal secret in a file others can read is refused, as msmtp and libpq do (POSIX
    only: Windows has ACLs, not modes)."""
    if os.name != "posix":
        return
    secrets = literal_secrets(data)
    if not secrets:
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        raise ConfigError(
            f"{path} holds a password ({', '.join(secrets)}) and can be read by other users "
            f"(mode {mode & 0o777:o}): run 'chmod 600 {path}', or take the password out of "
            "the file with ${NAME} and an environment variable",
        )
