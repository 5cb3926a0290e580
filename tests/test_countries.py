"""Countries as ERPs store them, read as ISO codes (phone region and message formats)."""

from __future__ import annotations

import pytest

from proit_notify.countries import country_code


@pytest.mark.parametrize(
    ("stored", "code"),
    [
        ("CH", "CH"),
        (" ch ", "CH"),
        ("Schweiz", "CH"),
        ("SCHWEIZ", "CH"),
        ("Switzerland", "CH"),
        ("Suisse", "CH"),
        ("Svizzera", "CH"),
        ("Deutschland", "DE"),
        ("Germany", "DE"),
        ("D", "DE"),
        ("Österreich", "AT"),
        ("A", "AT"),
        ("FL", "LI"),
        ("Liechtenstein", "LI"),
        ("UK", "GB"),
        ("GB", "GB"),
        ("Frankreich", "FR"),
    ],
)
def test_codes_names_and_plate_codes_are_recognised(stored: str, code: str) -> None:
    assert country_code(stored) == code


@pytest.mark.parametrize("stored", [None, "", "  ", "XX", "Atlantis", "001", "Q"])
def test_anything_else_is_none_so_service_country_applies(stored: str | None) -> None:
    assert country_code(stored) is None
