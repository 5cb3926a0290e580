"""Day arithmetic of SPEC §4 in the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from proit_notify.clock import Clock, from_utc_text, to_utc_text
from proit_notify.errors import UsageError
from proit_notify.settings import parse_window

ZURICH = ZoneInfo("Europe/Zurich")


def test_a_bare_as_of_date_is_midnight_local_and_a_time_is_kept() -> None:
    assert Clock.parse("2026-11-27", ZURICH).now == datetime(2026, 11, 27, 0, 0)
    assert Clock.parse("2026-11-27T08:15", ZURICH).now == datetime(2026, 11, 27, 8, 15)
    # an explicit offset is converted into the ERP's local time
    assert Clock.parse("2026-11-27T07:00+00:00", ZURICH).now == datetime(2026, 11, 27, 8, 0)


def test_the_swiss_date_our_output_prints_is_read_too() -> None:
    assert Clock.parse("27.11.2026", ZURICH).now == datetime(2026, 11, 27, 0, 0)
    assert Clock.parse("27.11.2026 08:15", ZURICH).now == datetime(2026, 11, 27, 8, 15)


def test_a_wrong_date_is_a_usage_error_naming_its_option() -> None:
    with pytest.raises(UsageError, match=r"--as-of '31\.11\.2026'.*27\.11\.2026"):
        Clock.parse("31.11.2026", ZURICH)
    with pytest.raises(UsageError, match="--since 'gestern'"):
        Clock.parse("gestern", ZURICH, "--since")


def test_event_window_counts_calendar_days_due_from_midnight() -> None:
    clock = Clock.parse("2026-11-27T08:00", ZURICH)
    start, end = clock.event_window(delay_days=3, max_age_days=2)
    # due day = event day + 3 must lie in [25th, 27th]: events of the 22nd to the 24th
    assert start == datetime(2026, 11, 22, 0, 0)
    assert end == datetime(2026, 11, 24, 23, 59, 59)
    # with no delay the window ends now: later rows are not seen
    assert clock.event_window(0, 0) == (datetime(2026, 11, 27, 0, 0), clock.now)


def test_utc_of_local_time_follows_daylight_saving() -> None:
    summer = Clock.parse("2026-07-01T08:00", ZURICH)
    winter = Clock.parse("2026-12-01T08:00", ZURICH)
    assert summer.utc == datetime(2026, 7, 1, 6, 0, tzinfo=UTC)
    assert winter.utc == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert from_utc_text(to_utc_text(winter.utc)) == winter.utc


@pytest.mark.parametrize(
    ("window", "hour", "inside"),
    [
        ("07:00-20:00", 6, False),
        ("07:00-20:00", 7, True),
        ("07:00-20:00", 19, True),
        ("07:00-20:00", 20, False),
        ("22:00-06:00", 23, True),
        ("22:00-06:00", 3, True),
        ("22:00-06:00", 12, False),
    ],
)
def test_send_window_including_one_that_passes_midnight(
    window: str, hour: int, inside: bool
) -> None:
    clock = Clock(datetime(2026, 11, 27, hour, 0), ZURICH)
    assert clock.in_window(parse_window(window)) is inside


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="07:00-20:00"):
        parse_window("7 bis 20")
    with pytest.raises(ValueError, match="same"):
        parse_window("08:00-08:00")
    assert parse_window(" 07:30 - 20:00 ") == (time(7, 30), time(20, 0))
