"""Secrets never appear in output, logs or tracebacks, in any encoding (SPEC §7).

:func:`redact` hides every secret the settings named (:func:`register`, called when the
settings are loaded) in each form it can take in a text: as typed, URL-encoded, JSON- and
HTML-escaped, base64 of itself, of ``user:password`` (HTTP Basic) and of AUTH PLAIN's
``\\0user\\0password``; and any ``PWD=`` / ``PASSWORD=`` value of an ODBC connection string,
braces (``{ge;heim}}x}``) included. :func:`odbc_pairs` is the one brace-aware parser of
connection strings.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, unquote_plus

#: an ODBC value: ``{...}`` (``}}`` is an escaped brace, ``;`` is allowed inside) or plain
_ODBC_VALUE = r"\{(?:[^}]|\}\})*\}|[^;]*"
_ODBC_PAIR_RE = re.compile(rf"\s*([^=;]+?)\s*=\s*({_ODBC_VALUE})\s*(?:;|$)")
# In free text (a JSON line, a message) a plain value ends at a quote, a blank or a bracket
# too, so that the text around it survives; the full values of the settings' connection
# string are registered secrets and hidden whole anyway.
_ODBC_SECRET_RE = re.compile(
    r"((?:PWD|PASSWORD)\s*=\s*)(\{(?:[^}]|\}\})*\}|[^;\"'\s)\\]*)", re.IGNORECASE
)
#: a secret shorter than this is not searched in free text (it would blank out words);
#: it is still hidden as an ODBC value and never logged by us
MIN_LENGTH = 4
MASK = "***"

_forms: list[str] = []  # every form of every registered secret, longest first
_secrets: list[str] = []  # the registered secrets themselves (for :func:`reveals`)
#: what a text that holds a secret in an encoding we cannot mask in place is replaced by
WITHHELD = "(not shown: this text holds a password or token in an encoded form)"


def odbc_pairs(conn_str: str) -> list[tuple[str, str]]:
    """``KEY=value`` pairs of a connection string, braces removed from values."""
    pairs = []
    for key, value in _ODBC_PAIR_RE.findall(conn_str):
        if value.startswith("{") and value.endswith("}"):
            value = value[1:-1].replace("}}", "}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def _b64(text: str) -> set[str]:
    raw = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return {raw, raw.rstrip("=")}


def forms_of(secret: str, user: str | None = None) -> set[str]:
    """What ``secret`` looks like in a text, as far as a gateway, a driver or a log shows it."""
    forms = {
        secret,
        quote_plus(secret),
        quote(secret, safe=""),
        quote(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        *_b64(secret),
    }
    if user is not None:
        forms |= _b64(f"{user}:{secret}") | _b64(f"\0{user}\0{secret}")
    return {f for f in forms if len(f) >= MIN_LENGTH}


def register(secrets: Iterable[tuple[str, str | None]]) -> None:
    """Remember ``(secret, user)`` pairs; :func:`redact` hides them from now on."""
    known = set(_forms)
    raw = set(_secrets)
    for secret, user in secrets:
        if secret:
            known |= forms_of(secret, user)
            if len(secret) >= MIN_LENGTH:
                raw.add(secret)
    _forms[:] = sorted(known, key=len, reverse=True)
    _secrets[:] = sorted(raw, key=len, reverse=True)


def register_bearer(token: str, user: str | None) -> None:
    """Hide an access token (or a private key) from now on, also inside the SASL XOAUTH2
    string that carries it (``user=...\\x01auth=Bearer ...\\x01\\x01``, base64)."""
    if not token:
        return
    register([(token, user)])
    if user is not None:
        sasl = f"user={user}\x01auth=Bearer {token}\x01\x01"
        known = set(_forms) | forms_of(sasl)
        _forms[:] = sorted(known, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every registered secret and every ODBC password replaced by ``***``.

    A line that still holds a secret once decoded (an echo in an escaping no list of forms
    can foresee: PHP's ``\\/``, .NET's ``\\u002B``, JSON inside JSON or XML, lower-case
    ``%xx``) is replaced as a whole by :data:`WITHHELD`: decode, then compare.
    """
    for form in _forms:
        if form in text:
            text = text.replace(form, MASK)
    text = _ODBC_SECRET_RE.sub(rf"\1{MASK}", text)
    if _secrets and _ESCAPES_RE.search(text) and reveals(text, _secrets):
        text = "\n".join(
            WITHHELD if reveals(line, _secrets) else line for line in text.split("\n")
        )
    return text


# --- decode, then compare -------------------------------------------------------------------

#: a text without any of these holds no escaped form of anything
_ESCAPES_RE = re.compile(r"[%\\&+]")
_JSON_ESCAPE_RE = re.compile(r"\\(u[0-9A-Fa-f]{4}|[\"\\/bfnrt])")
_JSON_SIMPLE = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
#: layers of escaping looked through (JSON inside JSON inside a URL is three)
DECODE_ROUNDS = 3
#: a longer text is looked at in its first part only (a gateway's answer is short)
DECODE_LIMIT = 100_000


def _json_unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] == "u" else _JSON_SIMPLE[code]

    return _JSON_ESCAPE_RE.sub(one, text)


_DECODERS = (unquote, unquote_plus, _json_unescape, html.unescape)


def decodings(text: str) -> set[str]:
    """``text`` and every reading of it after up to :data:`DECODE_ROUNDS` layers of URL
    (any case of ``%xx``), JSON (``\\uXXXX`` in any case, ``\\/``) and HTML/XML unescaping."""
    seen = {text[:DECODE_LIMIT]}
    frontier = set(seen)
    for _ in range(DECODE_ROUNDS):
        found = {decode(t) for t in frontier for decode in _DECODERS} - seen
        if not found:
            break
        seen |= found
        frontier = found
    return seen


def reveals(text: str, needles: Iterable[str], *, ignore_case: bool = False) -> bool:
    """Whether ``text``, decoded in any of the ways :func:`decodings` knows, contains one
    of ``needles`` (those shorter than :data:`MIN_LENGTH` are not looked for)."""
    wanted = [n.casefold() if ignore_case else n for n in needles if len(n) >= MIN_LENGTH]
    if not wanted:
        return False
    for reading in decodings(text):
        if ignore_case:
            reading = reading.casefold()
        if any(n in reading for n in wanted):
            return True
    return False


#: C0 and C1 controls (CR, LF, NUL, TAB, ESC, NEL ...), DEL and the Unicode line and
#: paragraph separators: what breaks a log line or a header (also used by the mail builder)
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """Control characters (CR, LF, ESC, ...) shown escaped: ERP data cannot forge a line."""
    return CONTROL_RE.sub(_escaped, text)


#: what :func:`printable` escapes: every control character but line feed and tab
_TERMINAL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """Text of several lines for a terminal: line feeds and tabs kept, every other control
    character shown escaped, so ERP text cannot move the cursor, clear the screen, set the
    title or write the clipboard (ESC sequences, OSC 52, C1 controls such as CSI)."""
    return _TERMINAL_RE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


#: in JSON: what ``json.dumps(ensure_ascii=False)`` leaves raw but a terminal obeys
_JSON_RAW_RE = re.compile("[\x7f-\x9f\u2028\u2029]")


def json_safe(document: str) -> str:
    """A JSON text with the C1 controls, DEL and the line separators written as ``\\uXXXX``
    (still the same JSON), so that printing it cannot drive a terminal."""
    return _JSON_RAW_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", document)
