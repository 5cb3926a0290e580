"""Building the email: headers, text and HTML parts, the Message-ID, address checks.

Nothing here talks to a server: :func:`build` turns an :class:`Outgoing` into a
:class:`Wire` (the bytes the server gets and the envelope recipient), or into a ``failed``
result saying why not (a line break in a header value, an invalid address, what the email
package refuses).

The bytes are assembled here: To and Subject encoded and folded by this module (RFC 2047
words, a quoted-string, or UTF-8 under SMTPUTF8), the account's own headers folded once
by the policy ``smtplib.send_message`` would flatten with, each body part 7bit,
quoted-printable or base64 (``binascii``), whichever the email package would pick, with
CRLF line ends and no Bcc header. A receiver reads the same message ``EmailMessage`` +
``send_message`` make, at a fraction of the CPU (``bench/README.md``); it is made in the
runner's thread, so a sending thread only talks to the socket. The whole header block is
checked against a strict grammar before it may go (:func:`verify_headers`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import EmailPolicy
from email.utils import formatdate, parseaddr
from urllib.parse import quote

from email_validator import EmailNotValidError, validate_email

from ...redaction import CONTROL_RE
from ...settings import AccountSettings
from .. import Attachment, Outgoing, SendResult

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
#: a longer subject is refused: an ERP value in it is junk (a receiver's parser would spend
#: gigabytes on a subject of megabytes)
MAX_SUBJECT = 500


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


@dataclass(frozen=True)
class Wire:
    """A message as the server gets it: the bytes (CRLF, no Bcc header) and its envelope."""

    data: bytes
    recipient: str  # the envelope recipient (IDNA domain; a non-ASCII local part as is)
    #: MAIL options: SMTPUTF8 and BODY=8BITMIME when an address needs them (send_message's)
    options: tuple[str, ...] = ()
    key: str = ""  # the ledger key
    message_id: str = ""  # what the Message-ID header says (kept in the ledger, SPEC §10)


#: RFC 5322 atext: a display name of only these (and single blanks) needs no quotes
_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]"
_ATOM_RE = re.compile(rf"^{_ATEXT}+( {_ATEXT}+)*$")
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"'
_WORD = r"=\?utf-8\?b\?[A-Za-z0-9+/]*={0,2}\?="
#: the To header's value as :func:`to_header` writes it, unfolded: the address alone, or a
#: phrase (atoms, one quoted-string, or RFC 2047 base64 words of UTF-8) and ``<address>``
_TO_RE = re.compile(
    rf"(?:(?P<words>{_WORD}(?: {_WORD})*)|(?P<text>{_ATEXT}+(?: {_ATEXT}+)*|{_QUOTED}))"
    r" <(?P<bracketed>[^<>\s]+)>|(?P<bare>[^<>\s]+)"
)


def verify_headers(
    block: list[tuple[str, bytes]], recipient: str, *, utf8: bool = False
) -> str | None:
    """Check the header block as it goes on the wire (each header's name and folded bytes)
    against a strict grammar: every line ``Name: value`` or a continuation that starts with
    a blank and is not blank itself, CRLF only, no NUL, no line over :data:`MAX_LINE`, each
    name once, and a To header of exactly the one recipient in the form :func:`to_header`
    writes. None when it is right.

    Total and cheap (no parser): the hypothesis properties of the tests prove that what it
    lets through reads back, in the email package, as exactly these headers and this one
    recipient. Python releases before 3.11.10 / 3.12.5 do not check what they fold; this
    does, on every Python the project admits. ``utf8``: the block is SMTPUTF8 (UTF-8 in
    quoted names and addresses is then allowed).
    """
    names: set[str] = set()
    to: str | None = None
    for name, folded in block:
        text = folded.decode("utf-8", "surrogateescape")
        lines = text.split("\r\n")
        if lines[-1] != "" or any("\r" in line or "\n" in line for line in lines):
            return f"header {name} would carry a bare line break: refused"
        if "\x00" in text:
            return f"header {name} would carry a NUL character: refused"
        if not _HEADER_NAME_RE.match(name) or not lines[0].lower().startswith(name.lower() + ":"):
            return f"header {name} is not well-formed: refused"
        if any(line[:1] not in (" ", "\t") for line in lines[1:-1]):
            return f"header {name} would start a new header line: refused"
        # a blank continuation line ends the header block for some receivers
        if any(not line.strip(" \t") for line in lines[1:-1]):
            return f"header {name} would carry a blank line: refused"
        if any(len(line) > MAX_LINE for line in lines):
            return f"header {name} has a word longer than {MAX_LINE} characters: refused"
        if not utf8 and not text.isascii():
            return f"header {name} would carry 8-bit text without SMTPUTF8: refused"
        if name.lower() in names:
            return f"header {name} would be there twice: refused"
        names.add(name.lower())
        if name.lower() == "to":
            to = "".join(lines)[len(name) + 1 :].strip(" \t")
    found = _TO_RE.fullmatch(to or "")
    address = found and (found.group("bracketed") or found.group("bare"))
    if not found or not address or address.lower() != recipient.lower():
        return "the To header would not parse back to the one recipient: refused"
    # an encoded word is decoded by receivers wherever it stands: only ours, and clean
    if "=?" in (found.group("text") or "") or _hidden(found.group("words") or ""):
        return "the To header's name would not parse back as written: refused"
    return None


def _hidden(words: str) -> bool:
    """True when RFC 2047 words (as :func:`to_header` writes them) are not UTF-8 or hide a
    control character."""
    try:
        data = b"".join(base64.b64decode(w[10:-2], validate=True) for w in words.split())
        return CONTROL_RE.search(data.decode("utf-8")) is not None
    except (binascii.Error, UnicodeDecodeError):
        return True


def build(
    settings: AccountSettings,
    message_id_domain: str,
    message: Outgoing,
    envelope: tuple[str, ...] = (),
) -> Wire | SendResult:
    """The message as the server gets it, or a "failed" result saying why not. Total: no
    ERP text makes it raise (one row never stops a run).

    ``envelope``: the other envelope addresses (sender, Bcc): one that is not ASCII makes
    the message SMTPUTF8, as ``send_message`` would.
    """
    try:
        return _build(settings, message_id_domain, message, envelope)
    except Exception as exc:  # noqa: BLE001 - the email package raises assorted errors on
        # odd input (TypeError, AttributeError, IndexError from its parser): whatever it
        # is, it is this message's failure, never the run's
        return SendResult("failed", f"cannot build the message: {type(exc).__name__}: {exc}")


def _build(
    settings: AccountSettings,
    message_id_domain: str,
    message: Outgoing,
    envelope: tuple[str, ...],
) -> Wire | SendResult:
    for what, value in (
        ("recipient address", message.to),
        ("recipient name", message.to_name or ""),
        ("subject", message.subject),
        *((f"header {n}", f"{n}{v}") for n, v in message.headers),
    ):
        problem = header_problem(what, value)
        if problem is not None:
            return SendResult("failed", problem)
    if len(message.subject) > MAX_SUBJECT:
        return SendResult(
            "failed",
            f"the subject is {len(message.subject):,} characters long (at most {MAX_SUBJECT}): "
            "refused; an ERP value in it is too long",
        )
    for header_name, _ in message.headers:
        if not _HEADER_NAME_RE.match(header_name):
            return SendResult("failed", f"header name {header_name!r} is not valid")
    checked = check_address(message.to)
    if checked.envelope is None:
        return SendResult("failed", checked.problem or "no email address")
    recipient = checked.envelope
    policy = flatten_policy(recipient, *envelope)
    mid = message_id(message.key, message.channel, message_id_domain)
    name = " ".join((message.to_name or "").split())
    if len(name) > MAX_NAME:
        name = name[: MAX_NAME - 1] + "…"
    try:
        headers: list[tuple[str, object]] = [
            ("From", _sender(settings.from_, message.from_name)),
            ("To", _Folded(to_header(name, recipient, utf8=bool(policy.utf8)))),
            ("Subject", _Folded(subject_header(message.subject, utf8=bool(policy.utf8)))),
            ("Date", formatdate(localtime=True)),
            ("Message-ID", mid),
        ]
        if settings.reply_to:
            headers.append(("Reply-To", settings.reply_to))
        for header_name, value in message.headers:
            # an extra header replaces ours of the same name (e.g. a shop's Reply-To)
            headers = [h for h in headers if h[0].lower() != header_name.lower()]
            headers.append((header_name, value))
        block = [(n, _fold(policy, n, v)) for n, v in headers]
        body = _body(message.text, message.html, message.attachments)
    except (ValueError, TypeError, IndexError, UnicodeError) as exc:
        # the email package refuses what it cannot encode (also a CR/LF we missed)
        return SendResult("failed", f"cannot build the message: {exc}")
    block += body[0]
    problem = verify_headers(block, recipient, utf8=bool(policy.utf8))
    if problem is not None:
        return SendResult("failed", problem)
    data = b"".join(folded for _, folded in block) + b"\r\n" + body[1]
    options = ("SMTPUTF8", "BODY=8BITMIME") if policy.utf8 else ()
    return Wire(data, recipient, options, message.key, mid)


class _Folded(str):
    """A whole header, encoded and folded here (:func:`to_header`, :func:`subject_header`),
    written as is."""


#: bytes of UTF-8 per RFC 2047 word: 45 bytes are 60 base64 characters, 72 with the frame
_WORD_BYTES = 45
#: a folded line of the To header aims at this length (RFC 5322's 78, a little under)
_FOLD_AT = 76


def to_header(name: str, address: str, *, utf8: bool = False) -> str:
    """``To: name <address>`` as it goes on the wire, CRLF and all, folded at our points.

    Why not the email package: its folder drops the quotes of some names it folds
    (``"SBB, Infrastruktur, ..."``), and its parser then raises or reads two recipients.
    Here: no name -> the address alone; a name of atoms -> as it is; other ASCII -> a
    quoted-string (``\\`` and ``\"`` escaped), folded at its blanks, in UTF-8 too under
    SMTPUTF8 (``utf8``: RFC 6532, as ``send_message`` writes it); anything else (non-ASCII,
    or text that looks like an encoded word) -> RFC 2047 base64 words of UTF-8, one per
    line. ``address`` is ASCII or, under SMTPUTF8, UTF-8 (the caller checked it).
    """
    if not name:
        return f"To: {address}\r\n"
    if (utf8 or name.isascii()) and name.isprintable() and "=?" not in name:
        phrase = name if _ATOM_RE.match(name) else _quoted(name)
        return _fold_words("To:", [*phrase.split(" "), f"<{address}>"])
    return "To: " + "\r\n ".join(_encoded_words(name, _WORD_BYTES)) + f" <{address}>\r\n"


def subject_header(subject: str, *, utf8: bool = False) -> str:
    """``Subject: ...`` as it goes on the wire, CRLF and all. Printable ASCII (any
    printable text under SMTPUTF8) as it is, folded before blanks; anything else, or text
    that looks like an encoded word, as RFC 2047 base64 words of UTF-8, one per line. The
    caller refused control characters (:func:`header_problem`); a receiver drops the blanks
    around the value, so they are dropped here."""
    subject = subject.strip(" ")
    if (utf8 or subject.isascii()) and subject.isprintable() and "=?" not in subject:
        return _fold_words("Subject:", subject.split(" "))
    # "Subject: " and the first word stay under 78 characters
    return "Subject: " + "\r\n ".join(_encoded_words(subject, 39)) + "\r\n"


def _encoded_words(text: str, first: int) -> list[str]:
    """``text`` as RFC 2047 base64 words of UTF-8: the first of at most ``first`` bytes,
    the others of :data:`_WORD_BYTES`; a character is never split between two words."""
    data = text.encode("utf-8")
    words, start, size = [], 0, first
    while start < len(data):
        end = min(start + size, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1  # back to the start of the character's bytes
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode('ascii')}?=")
        start, size = end, _WORD_BYTES
    return words


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fold_words(head: str, words: list[str]) -> str:
    """``head`` and ``words`` joined by blanks; a line that would pass :data:`_FOLD_AT` is
    folded before the blank (CRLF + the blank: unfolding gives the same text back), never
    before an empty word (a run of blanks): no line is blank."""
    lines, line = [], head
    for word in words:
        if word and len(line) + 1 + len(word) > _FOLD_AT and line != head:
            lines.append(line)
            line = ""
        line += " " + word
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


#: headers whose value this module makes (formatdate, message_id): short printable ASCII
_OURS = frozenset({"Date", "Message-ID"})


def _fold(policy: EmailPolicy[EmailMessage], name: str, value: object) -> bytes:
    """One header as the policy folds it on the wire; the constant ones (From, Reply-To)
    are folded once per batch, our own ASCII ones need no folding."""
    if isinstance(value, _Folded):
        return value.encode("utf-8")
    if name in _OURS and isinstance(value, str) and value.isascii() and len(value) < 70:
        return f"{name}: {value}\r\n".encode("ascii")
    if isinstance(value, str):
        return _fold_text(policy, name, value)
    return policy.fold_binary(name, policy.header_factory(name, value))


@functools.lru_cache(maxsize=256)
def _fold_text(policy: EmailPolicy[EmailMessage], name: str, value: str) -> bytes:
    return policy.fold_binary(name, policy.header_factory(name, value))


def _sender(from_: str, name: str | None) -> str | Address:
    """The From header: the account's ``from``, with a shop's own display name if any."""
    if not name:
        return from_
    address = Address(addr_spec=parseaddr(from_)[1])
    return Address(display_name=name, username=address.username, domain=address.domain)


Part = tuple[list[tuple[str, bytes]], bytes]  # a MIME part's headers and its content


def _body(
    text: str, html: str | None, attachments: Sequence[Attachment] = ()
) -> tuple[list[tuple[str, bytes]], bytes]:
    """The MIME headers and the body: text/plain, or multipart/alternative with HTML; in a
    multipart/mixed with the attachments when there are any."""
    content = _part(text, "plain") if html is None else _multipart(
        "alternative", [_part(text, "plain"), _part(html, "html")]
    )
    if attachments:
        content = _multipart("mixed", [content, *(_file(a) for a in attachments)])
    return [("MIME-Version", b"MIME-Version: 1.0\r\n"), *content[0]], content[1]


def _multipart(subtype: str, parts: Sequence[Part]) -> Part:
    boundary = _boundary()
    while any(boundary.encode() in content for _, content in parts):
        boundary = _boundary()  # a 7bit part holds it: the email package picks another too
    # the CRLF before a delimiter belongs to the delimiter (RFC 2046), not to the part
    delimiter = b"--" + boundary.encode() + b"\r\n"
    body = b"\r\n".join(
        delimiter + b"".join(h for _, h in head) + b"\r\n" + c for head, c in parts
    )
    # folded before the boundary, as the email package writes it: lines stay under 78
    header = f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n'.encode()
    return [("Content-Type", header)], body + b"\r\n--" + boundary.encode() + b"--\r\n"


def _file(attachment: Attachment) -> Part:
    """An attachment part: base64, its name as a quoted ASCII string or, otherwise, in
    RFC 2231 form (``filename*=utf-8''...``), as the email package writes it."""
    name = attachment.filename
    if name.isascii() and name.isprintable() and not any(c in name for c in '"\\'):
        param = f'filename="{name}"'
    else:
        param = "filename*=utf-8''" + quote(name, safe="")
    maintype, _, subtype = attachment.content_type.partition("/")
    headers = [
        ("Content-Type", f"Content-Type: {maintype}/{subtype}\r\n".encode("ascii")),
        ("Content-Transfer-Encoding", b"Content-Transfer-Encoding: base64\r\n"),
        ("Content-Disposition", f"Content-Disposition: attachment;\r\n {param}\r\n".encode()),
    ]
    return headers, base64.encodebytes(attachment.data).replace(b"\n", b"\r\n")


def _boundary() -> str:
    """The email package's form of boundary; random, not secret (the check above makes it
    unique in the message), so no system call per message."""
    return "=" * 15 + str(random.randrange(10**19)).zfill(19) + "=="  # noqa: S311


def _part(content: str, subtype: str) -> tuple[list[tuple[str, bytes]], bytes]:
    """One text part: 7bit when it is ASCII with short lines, else quoted-printable or
    base64, whichever is shorter (the email package's choice for 7bit transports)."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    raw = "\n".join(lines).encode("utf-8") + b"\n"
    longest = max((len(line) for line in lines), default=0)
    if raw.isascii() and longest <= (POLICY.max_line_length or 78):
        cte, encoded = "7bit", raw
    else:
        qp = binascii.b2a_qp(raw, istext=True)
        b64 = base64.encodebytes(raw)
        cte, encoded = ("base64", b64) if len(qp) > len(b64) else ("quoted-printable", qp)
    headers = [
        ("Content-Type", f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode()),
        ("Content-Transfer-Encoding", f"Content-Transfer-Encoding: {cte}\r\n".encode()),
    ]
    return headers, encoded.replace(b"\n", b"\r\n")


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
