"""The opt-out list (SPEC §5, §7): addresses that objected to review requests.

A review request is advertising (German Federal Court of Justice, VI ZR 225/17): whoever
asked not to get one, by mail, phone or the List-Unsubscribe link, is put on this list with
``proit-notify optout add ADDRESS`` and gets none. The list lives next to the ledger table
(``<ledger.table>_optout``), so hosts that share a ledger share it too. Other messages
(shipping confirmations, reminders, delivery dates) are not advertising and still go out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from .clock import from_utc_text, to_utc_text
from .db import Database, Dialect
from .errors import ErpError, LedgerError, MissingObjectError, UsageError
from .phones import to_e164

_PHONE_NOISE_RE = re.compile(r"[\s\-./()]")


def normalize(address: str, region: str = "CH") -> str | None:
    """The one form an address is kept and compared in, or None when it is neither an
    email address nor a phone number:

    - email: Unicode NFC (a decomposed umlaut is the same address), the local part case-
      folded, the domain in its IDNA ASCII form (``bücher.ch`` and ``xn--bcher-kva.ch`` are
      one domain);
    - phone: E.164 read with ``region`` for a number without country prefix, exactly as the
      ERP's numbers are read (``079 123 45 67`` and ``+41 79 123 45 67`` are one number).
    """
    text = unicodedata.normalize("NFC", address.strip())
    if "@" in text:
        local, _, domain = text.rpartition("@")
        try:
            ascii_domain = idna_domain(domain)
        except UnicodeError:
            return None
        if not local or not ascii_domain or any(c.isspace() for c in local):
            return None
        return f"{local.casefold()}@{ascii_domain}"
    return to_e164(text, region)


def idna_domain(domain: str) -> str:
    """A domain in its ASCII form, lower case (``xn--`` labels as they are)."""
    labels = domain.strip().rstrip(".").split(".")
    if not all(labels):
        raise UnicodeError("empty label")
    return ".".join(
        label.lower() if label.isascii() else label.encode("idna").decode("ascii").lower()
        for label in labels
    )


def legacy_form(address: str) -> str:
    """The form versions before 0.2 kept an address in (lower case; a number without
    blanks, dashes, dots and brackets, ``00`` as ``+``): entries made then still match."""
    text = address.strip()
    if "@" in text:
        return text.casefold()
    number = _PHONE_NOISE_RE.sub("", text)
    return "+" + number[2:] if number.startswith("00") else number


def forms(address: str | None, region: str) -> set[str]:
    """Every form an entry of ``address`` (an ERP value) may be kept in on the list."""
    if not address or not address.strip():
        return set()
    found = {legacy_form(address)}
    key = normalize(address, region)
    if key is not None:
        found.add(key)
    return found


# --- one-click unsubscribe (RFC 8058) -----------------------------------------------------

#: the placeholder of ``review.list_unsubscribe`` that becomes each recipient's token
TOKEN = "{token}"  # noqa: S105 - a placeholder, not a password


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token_for(address: str, secret: str) -> str:
    """The unsubscribe token of ``address``: the address and its HMAC-SHA256 under
    ``review.unsubscribe_secret``, URL-safe. A one-click POST to the link then says WHO
    objected (RFC 8058), and nobody can make a token for an address of their choosing."""
    payload = _b64(unicodedata.normalize("NFC", address.strip()).encode("utf-8"))
    mac = hmac.new(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256)
    return f"{payload}.{_b64(mac.digest()[:16])}"


def address_of_token(token: str, secret: str) -> str:
    """The address a token was made for (:func:`token_for`), or a usage error when it was
    not made with this secret (altered, or of another installation)."""
    payload, _, mac = token.strip().partition(".")
    try:
        expected = token_for(_unb64(payload).decode("utf-8"), secret)
    except (ValueError, UnicodeError):
        expected = ""
    if not expected or not hmac.compare_digest(expected, f"{payload}.{mac}"):
        raise UsageError(
            "the token is not valid: not made with this review.unsubscribe_secret (or altered)"
        )
    return _unb64(payload).decode("utf-8")


def ddl(table: str, dialect: Dialect) -> list[str]:
    """The opt-out table (created with the ledger's)."""
    vc = "NVARCHAR" if dialect is Dialect.MSSQL else "VARCHAR"
    exists = "" if dialect is Dialect.MSSQL else "IF NOT EXISTS "
    return [
        f"CREATE TABLE {exists}{dialect.quote(table)} ("
        f"address {vc}(320) NOT NULL, added_at {vc}(19) NOT NULL, host {vc}(200) NOT NULL, "
        "PRIMARY KEY (address))"
    ]


@dataclass(frozen=True)
class OptOut:
    """One address on the list."""

    address: str
    added_at: datetime
    host: str


class OptOutList:
    """The opt-out list of one ledger database."""

    def __init__(self, db: Database, table: str, host: str) -> None:
        self.db = db
        self.table = table
        self.host = host
        self._q = db.dialect.quote(table)

    def add(self, key: str, now: datetime) -> bool:
        """Put ``key`` (:func:`checked`) on the list; False when it was on it already."""
        try:
            added = self.db.insert_unique(
                f"INSERT INTO {self._q} (address, added_at, host) VALUES (?, ?, ?)",
                [key, to_utc_text(now), self.host[:200]],
            )
            self.db.commit()
        except ErpError as exc:
            raise LedgerError(f"writing the opt-out list ({self.table}) failed: {exc}") from None
        return added

    def remove(self, keys: Iterable[str]) -> bool:
        """Take an address off the list (every form it may be kept in, :func:`forms`);
        False when it was not on it."""
        keys = sorted(set(keys))
        marks = ", ".join("?" for _ in keys)
        try:
            removed = self.db.execute(
                f"DELETE FROM {self._q} WHERE address IN ({marks})", keys
            )
            self.db.commit()
        except ErpError as exc:
            raise LedgerError(f"writing the opt-out list ({self.table}) failed: {exc}") from None
        return removed > 0

    def entries(self) -> list[OptOut]:
        """Every address on the list, in the order added."""
        rows = self._read(f"SELECT address, added_at, host FROM {self._q} ORDER BY added_at", [])
        return [
            OptOut(str(r["address"]), from_utc_text(str(r["added_at"])), str(r["host"]))
            for r in rows
        ]

    def holding(self, keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` (forms of addresses, :func:`forms`) are on the list."""
        keys = sorted(set(keys))
        if not keys:
            return set()
        marks = ", ".join("?" for _ in keys)
        rows = self._read(f"SELECT address FROM {self._q} WHERE address IN ({marks})", keys)
        return {str(r["address"]) for r in rows}

    def _read(self, sql: str, params: Sequence[object]) -> list[dict[str, object]]:
        try:
            return list(self.db.stream(sql, params))
        except MissingObjectError:
            return []  # a ledger made before the list existed, read by a dry run
        except ErpError as exc:
            raise LedgerError(f"reading the opt-out list ({self.table}) failed: {exc}") from None


def checked(address: str, region: str) -> str:
    """``address`` as the list keeps it (:func:`normalize`), or a usage error that says
    why it is refused: anything that is neither an email address nor a phone number."""
    key = normalize(address, region)
    if key is None or len(key) > 320:
        raise UsageError(
            f"{address!r} is neither an email address nor a valid phone number (a number "
            f"without country prefix is read as a number of {region}, service.country)"
        )
    return key
