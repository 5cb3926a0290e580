"""A customer's country as an ISO 3166 alpha-2 code, from whatever the ERP stored.

ERPs hold the country as a code ("CH", "ch "), as a name in the shop's language
("Schweiz", "Switzerland", "Suisse", "Svizzera"), or as the international licence-plate
code older Swiss and German systems use ("D", "A", "FL"). The phone region (SMS) and the
number and date formats of a message both need the code; an unrecognised value gives
None, and the caller falls back to ``service.country``.
"""

from __future__ import annotations

from functools import cache

from babel import Locale

#: languages whose country names are recognised (the shop's customers write these)
NAME_LANGUAGES = ("de", "en", "fr", "it")

#: licence-plate codes (and "UK") that are not ISO codes: the usual ones in CH/DE ERPs
OTHER_CODES = {
    "D": "DE",
    "A": "AT",
    "FL": "LI",
    "I": "IT",
    "F": "FR",
    "B": "BE",
    "L": "LU",
    "E": "ES",
    "P": "PT",
    "S": "SE",
    "N": "NO",
    "H": "HU",
    "SLO": "SI",
    "UK": "GB",
}


@cache
def _known() -> dict[str, str]:
    """Casefolded code or name -> alpha-2 code."""
    known: dict[str, str] = {}
    for language in NAME_LANGUAGES:
        for code, name in Locale.parse(language).territories.items():
            if len(code) == 2 and code.isalpha():  # not the UN M.49 regions ("001", "150")
                known[code.casefold()] = code
                known.setdefault(name.casefold(), code)
    for other, code in OTHER_CODES.items():
        known.setdefault(other.casefold(), code)
    return known


def country_code(value: object) -> str | None:
    """The ISO code: CH for "CH", " ch", "Schweiz", "Switzerland"; DE for "D"; else None."""
    if value is None:
        return None
    return _known().get(str(value).strip().casefold())
