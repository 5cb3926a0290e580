"""Time: "now" (or ``--as-of``) in the ERP's time zone, and the day arithmetic of SPEC §4.

ERP dates and timestamps carry no zone; they are local times in ``service.timezone``.
Delays count whole calendar days there: an event on day D with a delay of N days is due
from 00:00 of day D+N, and ages out when its due day lies more than ``max_age_days``
before today.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .errors import UsageError

#: weekday names as ``service.send_days`` takes them (English or German, 0 = Monday)
_DAY_NAMES = {
    name: i
    for i, names in enumerate(
        [("mon", "mo"), ("tue", "di"), ("wed", "mi"), ("thu", "do"), ("fri", "fr"),
         ("sat", "sa"), ("sun", "so")]
    )
    for name in names
}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def parse_days(text: str) -> frozenset[int]:
    """``"Mon-Sat"``, ``"Mo-Fr"``, ``"Mon,Wed,Fri"`` -> the weekdays (0 = Monday); a range
    may wrap (``"Sat-Mon"``). ValueError says how to write it."""
    days: set[int] = set()
    for part in re.split(r"\s*,\s*", text.strip()):
        ends = [_DAY_NAMES.get(p.strip().lower()[:3], _DAY_NAMES.get(p.strip().lower()[:2]))
                for p in part.split("-")]  # fmt: skip
        if not 1 <= len(ends) <= 2 or None in ends:
            raise ValueError(
                f"{text!r}: days like 'Mon-Sat', 'Mo-Fr' or 'Mon,Wed,Fri' (English or German)"
            )
        day, last = ends[0], ends[-1]
        assert day is not None
        assert last is not None
        days.add(day)
        while day != last:
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


@functools.lru_cache(maxsize=64)
def holiday_calendar(code: str, year: int) -> Mapping[date, str]:
    """The public holidays of ``code`` in ``year`` (``"CH-ZH"``: Switzerland, canton of
    Zurich; ``"DE-BY"``; ``"AT"``), from the holidays library. ValueError for a code it
    does not know."""
    import holidays

    country, _, subdivision = code.strip().upper().partition("-")
    try:
        found: Mapping[date, str] = holidays.country_holidays(
            country, subdiv=subdivision or None, years=year
        )
    except NotImplementedError:
        raise ValueError(f"{code!r}: no holidays known for the country {country!r}") from None
    except ValueError as exc:
        raise ValueError(f"{code!r}: {exc}") from None
    return dict(found)


@dataclass(frozen=True)
class SendDays:
    """The days messages may go out on (SPEC §11): ``service.send_days`` and
    ``service.holidays``. Every day by default."""

    weekdays: frozenset[int] = frozenset(range(7))
    holidays: str | None = None

    @property
    def every_day(self) -> bool:
        return len(self.weekdays) == 7 and self.holidays is None

    def closed(self, day: date) -> str | None:
        """Why nothing is sent on ``day`` ("Sunday", "a public holiday in CH-ZH:
        Weihnachten"), or None on a send day."""
        if day.weekday() not in self.weekdays:
            return f"{WEEKDAYS[day.weekday()]} is not in service.send_days"
        if self.holidays is not None:
            name = holiday_calendar(self.holidays, day.year).get(day)
            if name is not None:
                return f"{day:%d.%m.%Y} is a public holiday in {self.holidays} ({name})"
        return None


@dataclass(frozen=True)
class Clock:
    """The moment a run acts at, as a naive local time in ``tz``; ``days``: the send days,
    which is what notifications age by (a closed day never counts against them)."""

    now: datetime  # naive, local
    tz: ZoneInfo
    days: SendDays = field(default_factory=SendDays)

    @classmethod
    def real(cls, tz: ZoneInfo) -> Clock:
        return cls(datetime.now(tz).replace(tzinfo=None, microsecond=0), tz)

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo, option: str = "--as-of") -> Clock:
        """``--as-of``: ``2026-11-27`` (00:00 of that day) or ``2026-11-27T08:00`` (local),
        or as the output and Swiss users write it: ``27.11.2026`` or ``27.11.2026 08:00``."""
        value = _moment(text.strip())
        if value is None:
            raise UsageError(
                f"{option} {text!r}: use a date (2026-11-27 or 27.11.2026) or a local time "
                "(2026-11-27T08:00 or '27.11.2026 08:00')"
            )
        if value.tzinfo is not None:
            value = value.astimezone(tz).replace(tzinfo=None)
        return cls(value, tz)

    def in_window(self, window: tuple[time, time] | None) -> bool:
        """Whether now lies in a daily window of local hours (which may pass midnight)."""
        if window is None:
            return True
        start, end = window
        now = self.now.time()
        if start < end:
            return start <= now < end
        return now >= start or now < end

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def utc(self) -> datetime:
        """Now as an aware UTC datetime (what the ledger stores)."""
        return self.now.replace(tzinfo=self.tz).astimezone(UTC)

    def start_of(self, day: date) -> datetime:
        """00:00 local of ``day`` (naive)."""
        return datetime.combine(day, time(0, 0))

    def oldest_due_day(self, max_age_days: int) -> date:
        """The earliest due day that is still sent (older ones have aged out).

        Only send days count (SPEC §11: nothing ages out because of the send days): with
        ``Mon-Fri``, what fell due on Saturday is still sent on Monday at ``max_age_days = 0``;
        what fell due on Friday is not."""
        if self.days.every_day:
            return self.today - timedelta(days=max_age_days)
        day, left = self.today, max_age_days
        for _ in range(max_age_days + 2 * 366):  # a year of closed days at most, then stop
            before = day - timedelta(days=1)
            if left == 0 and self.days.closed(before) is None:
                break
            if self.days.closed(before) is None:
                left -= 1
            day = before
        return day

    def event_window(self, delay_days: int, max_age_days: int) -> tuple[datetime, datetime]:
        """[start, end] of event times whose notification is due now and not aged out.

        Due day = event day + delay; due when due day <= today; sent when due day >=
        today - max_age. End is capped at now: rows dated after now are not seen.
        """
        first_day = self.oldest_due_day(max_age_days) - timedelta(days=delay_days)
        last_day = self.today - timedelta(days=delay_days)
        end = min(self.now, datetime.combine(last_day, time(23, 59, 59)))
        return self.start_of(first_day), end

    def local_of(self, stamp: datetime) -> datetime:
        """An aware timestamp (from the ledger) as naive local time."""
        return stamp.astimezone(self.tz).replace(tzinfo=None)


def _moment(text: str) -> datetime | None:
    try:
        # a bare date is 00:00 of that day, as datetime.fromisoformat reads it
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for form in ("%d.%m.%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%YT%H:%M"):
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    return None


def to_utc_text(moment: datetime) -> str:
    """The ledger's time format: UTC, to the second, sortable as text on every database."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def from_utc_text(text: str) -> datetime:
    """Inverse of :func:`to_utc_text` (aware, UTC)."""
    return datetime.strptime(text.strip()[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
