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
from urllib.parse import quote, quote_plus

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
    for secret, user in secrets:
        if secret:
            known |= forms_of(secret, user)
    _forms[:] = sorted(known, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every registered secret and every ODBC password replaced by ``***``."""
    for form in _forms:
        if form in text:
            text = text.replace(form, MASK)
    return _ODBC_SECRET_RE.sub(rf"\1{MASK}", text)


#: C0 and C1 controls (CR, LF, NUL, TAB, ESC, NEL ...), DEL and the Unicode line and
#: paragraph separators: what breaks a log line or a header (also used by the mail builder)
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """Control characters (CR, LF, ESC, ...) shown escaped: ERP data cannot forge a line."""
    return CONTROL_RE.sub(lambda m: repr(m.group())[1:-1], text)
