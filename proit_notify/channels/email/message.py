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
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP as SMTP_POLICY
from email.policy import EmailPolicy
from email.policy import default as default_policy
from email.utils import formatdate

from email_validator import EmailNotValidError, validate_email

from ...redaction import CONTROL_RE
from ...settings import AccountSettings
from .. import Outgoing, SendResult

# 7bit: a non-ASCII text part gets quoted-printable/base64 instead of raw 8bit, which a
# server without 8BITMIME (and send_message does not announce BODY=8BITMIME) may mangle.
POLICY = SMTP_POLICY.clone(cte_type="7bit")
POLICY_UTF8 = POLICY.clone(utf8=True)  # what send_message uses for SMTPUTF8 addresses

_HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ':'
#: an RFC 2047 encoded word: the email package decodes it when it parses a header value,
#: so its payload must be as clean as the text around it
_ENCODED_WORD_RE = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")
#: RFC 5322 §2.1.1: no line of a message may be longer (a server answers 500 otherwise)
MAX_LINE = 998
#: a display name longer than this is cut (ERP junk; it would not fit a line unfolded)
MAX_NAME = 200


def header_problem(what: str, value: str) -> str | None:
    """Why ``value`` cannot go into a header (None: it can), also inside encoded words."""
    found = CONTROL_RE.search(value)
    if found and found.group() in "\r\n\x85\u2028\u2029":
        return f"{what} contains a line break (CR/LF): refused"
    if found:
        return f"{what} contains the control character {found.group()!r}: refused"
    for word in _ENCODED_WORD_RE.findall(value):
        try:
            decoded = str(make_header(decode_header(word)))
        except (HeaderParseError, UnicodeError, LookupError, ValueError):
            return f"{what} contains a malformed encoded word {word[:40]!r}: refused"
        hidden = CONTROL_RE.search(decoded)
        if hidden:
            return (
                f"{what} contains an encoded word (=?...?=) that hides the control "
                f"character {hidden.group()!r}: refused"
            )
    return None


def verify_headers(msg: EmailMessage, recipient: str) -> str | None:
    """Check the header block as it goes on the wire: every line well-formed, nothing but
    the headers we set, the recipient the only one. None when it is right.

    Python releases before 3.11.10 / 3.12.5 do not check what they fold; this does, on
    every Python the project admits.
    """
    policy = flatten_policy(recipient)
    names: list[str] = []
    block = b""
    for name, value in msg.raw_items():
        folded = policy.fold_binary(name, value)
        text = folded.decode("utf-8", "surrogateescape")
        lines = text.split("\r\n")
        if lines[-1] != "" or any("\r" in line or "\n" in line for line in lines):
            return f"header {name} would carry a bare line break: refused"
        if "\x00" in text:
            return f"header {name} would carry a NUL character: refused"
        if not lines[0].lower().startswith(name.lower() + ":"):
            return f"header {name} is not well-formed: refused"
        if any(line[:1] not in (" ", "\t") for line in lines[1:-1]):
            return f"header {name} would start a new header line: refused"
        if any(len(line) > MAX_LINE for line in lines):
            return f"header {name} has a word longer than {MAX_LINE} characters: refused"
        names.append(name.lower())
        block += folded
    parsed = BytesHeaderParser(policy=default_policy).parsebytes(block + b"\r\n")
    if sorted(k.lower() for k in parsed) != sorted(names):
        extra = sorted(set(k.lower() for k in parsed) - set(names)) or sorted(names)
        return f"the header block would not parse back as built ({', '.join(extra)}): refused"
    to = parsed["To"]
    addresses: tuple[Address, ...] = tuple(getattr(to, "addresses", ()))
    if len(addresses) != 1 or addresses[0].addr_spec.lower() != recipient.lower():
        return "the To header would not parse back to the one recipient: refused"
    return None


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
        problem = header_problem(what, value)
        if problem is not None:
            return SendResult("failed", problem)
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
        name = message.to_name or ""
        if len(name) > MAX_NAME:
            name = name[: MAX_NAME - 1] + "…"
        msg["To"] = Address(display_name=name, addr_spec=recipient)
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
    problem = verify_headers(msg, recipient)
    if problem is not None:
        return SendResult("failed", problem)
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
