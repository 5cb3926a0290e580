"""Languages as ERPs store them: "F", "fra", "Français", "fr_CH", "de-CH" -> "fr", "de".

An ERP's language column holds whatever its users typed over the years: ISO codes in any
case, alpha-3 codes (ISO 639-2, both the bibliographic and terminology forms), the single
letters of Swiss ERPs (D, F, I, E, R), locales (``fr_CH``, ``de-CH``) and names in the four
languages. :func:`language_of` reads all of them; ``[erp.language_codes]`` adds an ERP's
own codes (``fr = ["W"]``) and wins over the built-in reading.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

#: every built-in spelling of a language, compared case- and accent-insensitively
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "de": (
        "de", "d", "deu", "ger", "deutsch", "german", "allemand", "tedesco",
        "schweizerdeutsch", "alemannisch",
    ),
    "fr": ("fr", "f", "fra", "fre", "francais", "french", "franzosisch", "francese"),
    "it": ("it", "i", "ita", "italiano", "italian", "italienisch", "italien"),
    "en": ("en", "e", "eng", "english", "englisch", "anglais", "inglese"),
    "rm": ("rm", "r", "roh", "rumantsch", "romansh", "ratoromanisch", "romanche", "romancio"),
}  # fmt: skip


def _fold(text: str) -> str:
    """Lower case, without accents and surrounding blanks: "Français " -> "francais"."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_BUILT_IN: dict[str, str] = {
    _fold(s): lang for lang, spellings in _SPELLINGS.items() for s in spellings
}
_LOCALE_RE = re.compile(r"^([A-Za-z]{2,3})[-_]([A-Za-z]{2}|\d{3})$")


def language_of(value: object, codes: Mapping[str, Sequence[str]] | None = None) -> str | None:
    """The ISO 639-1 code of an ERP language value, or None when it is not recognised.

    ``codes`` is ``[erp.language_codes]`` (language -> the ERP's codes for it); it is
    consulted first, so an ERP's own code may even reuse a built-in spelling.
    """
    if value is None:
        return None
    text = _fold(str(value))
    if not text:
        return None
    for lang, own in (codes or {}).items():
        if any(text == _fold(code) for code in own):
            return _fold(lang)
    if text in _BUILT_IN:
        return _BUILT_IN[text]
    locale = _LOCALE_RE.match(text)
    if locale and locale.group(1) in _BUILT_IN:
        return _BUILT_IN[locale.group(1)]
    if re.fullmatch(r"[a-z]{2}", text):
        return text  # another ISO code (es, pt): its templates may exist in templates.dir
    return None


def region_of(value: object) -> str:
    """The region of a locale-like value ("de-CH" -> "CH"), else ""."""
    locale = _LOCALE_RE.match(str(value or "").strip())
    return locale.group(2).upper() if locale else ""
