"""Objections to advertising (SPEC §5, §7): who objected, in every spelling.

A review request is advertising (German Federal Court of Justice, VI ZR 225/17): whoever
asked not to get one, by mail, phone or the List-Unsubscribe link, is put on the opt-out
list (``proit-notify optout add ADDRESS``, kept by :mod:`proit_notify.ledger.optout`) and
gets none. Here: the one form an address is kept and compared in, and the signed token of
a one-click unsubscribe. Messages that are not advertising (shipping confirmations,
reminders, delivery dates) still go out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from dataclasses import replace
from urllib.parse import quote

from .countries import country_code
from .errors import UsageError
from .jobs import Notification, Party
from .phones import to_e164
from .settings import ReviewSettings, Settings

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


# --- the policy of an advertising job (SPEC §5) ----------------------------------------------

#: why an objecting customer gets no advertising (a ``skipped`` row says so)
NO_MARKETING = "the customer objected to advertising (customers.no_marketing): no review request"
OPTED_OUT = "{address} is on the opt-out list (proit-notify optout list): no review request"


def forms_of_party(party: Party, default_region: str) -> dict[str, set[str]]:
    """Each address of ``party`` and the forms it may be kept in on the list: a number read
    with the customer's country (else ``default_region``), as the SMS rules read it."""
    region = country_code(party.country) or default_region
    return {a: forms(a, region) for a in party.addresses if a}


def objection(party: Party, opted_out: set[str], default_region: str) -> str | None:
    """Why ``party`` gets no advertising, or None. ``opted_out``: the forms found on the list."""
    if party.no_marketing:
        return NO_MARKETING
    for address, kept in forms_of_party(party, default_region).items():
        if kept & opted_out:
            return OPTED_OUT.format(address=address)
    return None


def unsubscribe_link(review: ReviewSettings, recipient: str | None) -> str:
    """``review.list_unsubscribe`` for one recipient: an https link's ``{token}`` becomes
    the recipient's signed token (:func:`token_for`)."""
    link = review.list_unsubscribe
    if TOKEN not in link:
        return link
    token = token_for(recipient or "", review.unsubscribe_secret)
    return link.replace(TOKEN, quote(token, safe=""))


def unsubscribe_headers(review: ReviewSettings, link: str) -> tuple[tuple[str, str], ...]:
    """List-Unsubscribe (RFC 2369) with the recipient's ``link``; the one-click POST of
    RFC 8058 (the "unsubscribe" button of mail clients) only when the link carries the
    recipient's token: a link that is the same for everyone cannot say who objected."""
    if not link:
        return ()
    headers = [("List-Unsubscribe", f"<{link}>")]
    if review.one_click:
        headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return tuple(headers)


def advertised(n: Notification, opted_out: set[str], settings: Settings) -> Notification:
    """An advertising job's notification as it goes out: skipped with the reason when its
    customer objected, else with List-Unsubscribe and the way to object in its context
    (every advertising template says it: ``unsubscribe_url``)."""
    if n.skip is not None or n.problem is not None:
        return n
    why = objection(n.party, opted_out, settings.service.country)
    if why is not None:
        return replace(n, skip=why)
    link = unsubscribe_link(settings.review, n.party.email or n.party.phone)
    context = {**n.context, "unsubscribe_url": link.removeprefix("mailto:") if link else None}
    headers = (*n.headers, *unsubscribe_headers(settings.review, link))
    return replace(n, context=context, headers=headers)
