"""Mobile numbers from the ERP, normalised to E.164 for the SMS gateways (SPEC §4).

ERP phone columns hold whatever was typed: "079 123 45 67", "+41 79 123 45 67",
"0041 79 123 45 67", a landline, a name. ``to_e164_mobile`` parses with the customer's
country as the default region (the caller passes it, falling back to ``service.country``)
and accepts only numbers phonenumbers rates valid and of type MOBILE or
FIXED_LINE_OR_MOBILE. The latter is accepted on purpose: in countries whose numbering plan
does not tell mobiles from landlines (US, CA, ...) every mobile number has that type, so
refusing it would refuse every mobile there. CH and DE mobiles are plain MOBILE, their
landlines FIXED_LINE (refused).
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

_MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


@dataclass(frozen=True)
class PhoneCheck:
    """The normalised number (``e164``), or why there is none (``reason``)."""

    e164: str | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.e164 is not None


def _valid(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    """``text`` parsed (``region``: for a number without country prefix), if valid."""
    region_code = region.strip().upper() if region else ""
    try:
        number = phonenumbers.parse(text, region_code or None)
    except NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def to_e164(raw: str | None, region: str) -> str | None:
    """``raw`` as an E.164 number of any type ("+41441234567"), or None: the one reading
    of a number that the opt-out list and the SMS rules share."""
    number = _valid(str(raw or "").strip(), region)
    return None if number is None else phonenumbers.format_number(number, PhoneNumberFormat.E164)


def to_e164_mobile(raw: str | None, region: str) -> PhoneCheck:
    """``raw`` as an E.164 mobile number ("+41791234567"), or the reason it is not one.

    ``region`` is a two-letter country code for numbers written without a country prefix.
    Never raises: anything that is not a valid mobile number comes back with a reason a
    user understands.
    """
    text = "" if raw is None else str(raw).strip()
    if not text:
        return PhoneCheck(None, "no mobile number")
    number = _valid(text, region)
    if number is None:
        return PhoneCheck(None, f"not a valid phone number: {text!r}")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return PhoneCheck(None, f"not a mobile number: {text}")
    return PhoneCheck(phonenumbers.format_number(number, PhoneNumberFormat.E164), None)
