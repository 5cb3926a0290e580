"""Languages as ERPs store them (``languages.language_of``), and the opt-out addresses."""

from __future__ import annotations

import pytest

from proit_notify.languages import language_of, region_of
from proit_notify.objections import normalize


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("de", "de"), ("DE", "de"), ("D", "de"), ("deu", "de"), ("ger", "de"),
        ("Deutsch", "de"), ("deutsch ", "de"), ("de-CH", "de"), ("de_AT", "de"),
        ("F", "fr"), ("fr", "fr"), ("FRA", "fr"), ("fre", "fr"), ("Français", "fr"),
        ("francais", "fr"), ("Französisch", "fr"), ("fr_CH", "fr"), ("fr-ch", "fr"),
        ("I", "it"), ("ita", "it"), ("Italiano", "it"), ("italienisch", "it"), ("it_CH", "it"),
        ("E", "en"), ("eng", "en"), ("English", "en"), ("Englisch", "en"), ("en-GB", "en"),
        ("R", "rm"), ("Rumantsch", "rm"), ("roh", "rm"),
        ("es", "es"), ("PT", "pt"),  # other ISO codes: templates.dir may have them
        ("X", None), ("", None), ("  ", None), (None, None), ("Klingonisch", None), (7, None),
    ],
)  # fmt: skip
def test_the_spellings_erps_hold(value: object, expected: str | None) -> None:
    assert language_of(value) == expected


def test_the_erps_own_codes_come_first() -> None:
    codes = {"fr": ["W", "welsch"], "it": ["T"], "de": ["F"]}  # F means something else here
    assert language_of("w", codes) == "fr"
    assert language_of(" Welsch ", codes) == "fr"
    assert language_of("T", codes) == "it"
    assert language_of("F", codes) == "de"
    assert language_of("Italiano", codes) == "it"  # the built-in reading still applies


def test_region_of_a_locale() -> None:
    assert region_of("de-CH") == "CH"
    assert region_of("fr_ch") == "CH"
    assert region_of("F") == ""
    assert region_of(None) == ""


@pytest.mark.parametrize(
    ("address", "kept"),
    [
        ("Kunde@Example.CH ", "kunde@example.ch"),
        ("+41 79 123 45 67", "+41791234567"),
        ("0041 79 123-45-67", "+41791234567"),
        ("(079) 123.45.67", "+41791234567"),  # as the ERP's numbers are read (issue 21)
        ("0041781871326", "+41781871326"),
        ("Jürg@Bücher.CH", "jürg@xn--bcher-kva.ch"),
        ("jürg@xn--bcher-kva.ch", "jürg@xn--bcher-kva.ch"),
        ("Ju\u0308rg@example.ch", "jürg@example.ch"),  # NFD: a decomposed umlaut
        ("nonsense", None),
        ("079", None),
    ],
)
def test_opt_out_addresses_are_kept_in_one_form(address: str, kept: str | None) -> None:
    assert normalize(address, "CH") == kept
