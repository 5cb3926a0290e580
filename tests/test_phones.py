"""Mobile-number normalisation (SPEC §4 'Recipient and channel')."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proit_notify.phones import PhoneCheck, to_e164_mobile


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("079 123 45 67", "CH", "+41791234567"),
        ("+41 79 123 45 67", "CH", "+41791234567"),
        ("0041 79 123 45 67", "CH", "+41791234567"),
        ("  079/123.45.67 ", "CH", "+41791234567"),
        ("0176 12345678", "DE", "+4917612345678"),
        ("+49 176 12345678", "DE", "+4917612345678"),
        # an international number does not depend on the customer's country
        ("+41 79 123 45 67", "DE", "+41791234567"),
        ("0041 79 123 45 67", "DE", "+41791234567"),
        ("079 123 45 67", "ch", "+41791234567"),
    ],
)
def test_mobile_numbers_become_e164(raw: str, region: str, expected: str) -> None:
    assert to_e164_mobile(raw, region) == PhoneCheck(expected, None)


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("044 123 45 67", "CH", "not a mobile number: 044 123 45 67"),
        ("030 1234567", "DE", "not a mobile number: 030 1234567"),
        ("abc", "CH", "not a valid phone number: 'abc'"),
        ("079 123", "CH", "not a valid phone number: '079 123'"),
        ("", "CH", "no mobile number"),
        ("   ", "CH", "no mobile number"),
        (None, "CH", "no mobile number"),
    ],
)
def test_refused_numbers_say_why(raw: str | None, region: str, reason: str) -> None:
    result = to_e164_mobile(raw, region)
    assert result == PhoneCheck(None, reason)
    assert not result.ok


def test_national_number_needs_the_right_country() -> None:
    # a Swiss mobile written nationally is no German mobile
    assert not to_e164_mobile("079 123 45 67", "DE").ok


@given(st.one_of(st.none(), st.text()), st.sampled_from(["CH", "DE", "AT", "US", "", "XX", "c h"]))
def test_never_raises(raw: str | None, region: str) -> None:
    result = to_e164_mobile(raw, region)
    assert (result.e164 is None) != (result.reason is None)
    if result.e164 is not None:
        assert result.e164.startswith("+")
        assert result.e164[1:].isdigit()


@given(st.from_regex(r"\A\+?[0-9 ()./-]{0,30}\Z"))
def test_digit_like_strings_never_raise(raw: str) -> None:
    to_e164_mobile(raw, "CH")
