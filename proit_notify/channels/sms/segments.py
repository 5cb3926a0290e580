"""SMS length: how many parts a text takes, and shortening it to ``sms.max_segments``.

A text that uses only the GSM 03.38 alphabet (GSM-7) fits 160 characters in one SMS and
153 per part when it is split; the extension characters (``^{}\\[~]|€`` and form feed)
take two of those places. Any other character (emoji, "…", "ć", ...) switches the whole
message to UCS-2: 70 UTF-16 units in one SMS, 67 per part. A character is never split
across two parts.
"""

from __future__ import annotations

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

#: appended to a shortened text: "…" is not GSM-7 and would turn a GSM-7 text into UCS-2
#: (70 instead of 160 characters), so GSM-7 texts end in three dots instead
ELLIPSIS_GSM7 = "..."
ELLIPSIS_UCS2 = "…"


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` has a GSM-7 encoding."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _units(text: str) -> tuple[list[int], int, int]:
    """Size of each character in its encoding, and the single / per-part capacity."""
    if is_gsm7(text):
        return [2 if c in GSM7_EXTENSION else 1 for c in text], 160, 153
    return [2 if ord(c) > 0xFFFF else 1 for c in text], 70, 67


def count_segments(text: str) -> int:
    """The number of SMS parts ``text`` is sent as (0 for an empty text)."""
    if not text:
        return 0
    sizes, single, per_part = _units(text)
    if sum(sizes) <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:  # this character starts the next part
            parts, used = parts + 1, 0
        used += size
    return parts


def fit_segments(text: str, max_segments: int) -> str:
    """``text`` unchanged if it fits ``max_segments`` parts, else cut with an ellipsis."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if count_segments(text) <= max_segments:
        return text
    ellipsis = ELLIPSIS_GSM7 if is_gsm7(text) else ELLIPSIS_UCS2

    def candidate(length: int) -> str:
        return text[:length].rstrip() + ellipsis

    # the part count grows with the prefix length: find the longest prefix that fits
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count_segments(candidate(middle)) <= max_segments:
            low = middle
        else:
            high = middle - 1
    return candidate(low)
