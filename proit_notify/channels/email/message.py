"""Building the email: headers, text and HTML parts, the Message-ID, address checks.

Nothing here talks to a server: :func:`build` turns an :class:`Outgoing` into the
``EmailMessage`` and its envelope recipient, or into a ``failed`` result saying why not
(a line break in a header value, an invalid address, what the email package refuses).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import EmailPolicy
from email.utils import formatdate

from email_validator import EmailNotValidError, validate_email

from ...settings import AccountSettings
from .. import Outgoing, SendResult

# 7bit: a non-ASCII text part gets quoted-printable/base64 instead of raw 8bit, which a
# server without 8BITMIME (and send_message does not announce BODY=8BITMIME) may mangle.
POLICY = SMTP_POLICY.clone(cte_type="7bit")
POLICY_UTF8 = POLICY.clone(utf8=True)  # what send_message uses for SMTPUTF8 addresses

_HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ':'


def _has_crlf(value: str) -> bool:
    return "\r" in value or "\n" in value


def build(
    settings: AccountSettings, message_id_domain: str, message: Outgoing
) -> tuple[EmailMessage, str] | SendResult:
    """The message and its envelope recipient, or a "failed" result saying why not."""
    for what, value in (
        ("recipient address", message.to),
        ("recipient name", message.to_name or ""),
        ("subject", message.subject),
        *((f"header {n}", f"{n}{v}") for n, v in message.headers),
    ):
        if _has_crlf(value):
            return SendResult("failed", f"{what} contains a line break (CR/LF): refused")
    for header_name, _ in message.headers:
        if not _HEADER_NAME_RE.match(header_name):
            return SendResult("failed", f"header name {header_name!r} is not valid")
    checked = check_address(message.to)
    if checked.envelope is None:
        return SendResult("failed", checked.problem or "no email address")
    recipient = checked.envelope
    try:
        msg = EmailMessage(policy=POLICY)
        msg["From"] = settings.from_
        msg["To"] = Address(display_name=message.to_name or "", addr_spec=recipient)
        msg["Subject"] = message.subject
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = message_id(message.key, message.channel, message_id_domain)
        if settings.reply_to:
            msg["Reply-To"] = settings.reply_to
        if settings.bcc:
            msg["Bcc"] = settings.bcc
        for header_name, value in message.headers:
            # an extra header replaces ours of the same name (e.g. a shop's Reply-To)
            del msg[header_name]
            msg[header_name] = value
        msg.set_content(message.text)
        if message.html is not None:
            msg.add_alternative(message.html, subtype="html")
    except (ValueError, TypeError, IndexError) as exc:
        # the email package refuses what it cannot encode (also a CR/LF we missed)
        return SendResult("failed", f"cannot build the message: {exc}")
    return msg, recipient


def message_id(key: str, channel: str, domain: str) -> str:
    """The same Message-ID for every attempt at one notification on one channel, so a
    receiver can drop a resent copy (SPEC §6). Hashed: a key holds ERP text."""
    digest = hashlib.sha256(f"{key}\0{channel}".encode()).hexdigest()[:32]
    return f"<proit-notify.{digest}@{domain}>"


@dataclass(frozen=True)
class CheckedAddress:
    """An email address as SMTP gets it (``envelope``), or why it cannot be used."""

    envelope: str | None
    problem: str | None


@functools.lru_cache(maxsize=4096)
def check_address(address: str) -> CheckedAddress:
    """Validate an address: the runner picks the channel with it, and the channel sends to
    the result (IDNA domain in ASCII; only a non-ASCII local part needs SMTPUTF8). Cached,
    because both ask about the same address moments apart."""
    if not address:
        return CheckedAddress(None, "no email address")
    try:
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return CheckedAddress(None, f"invalid email address {address!r}: {exc}")
    return CheckedAddress(valid.ascii_email or valid.normalized, None)


def flatten_policy(*addresses: str) -> EmailPolicy[EmailMessage]:
    """The policy ``smtplib.send_message`` would flatten with (UTF-8 when addresses need it)."""
    return POLICY if "".join(addresses).isascii() else POLICY_UTF8
