"""Time: "now" (or ``--as-of``) in the ERP's time zone, and the day arithmetic of SPEC §4.

ERP dates and timestamps carry no zone; they are local times in ``service.timezone``.
Delays count whole calendar days there: an event on day D with a delay of N days is due
from 00:00 of day D+N, and ages out when its due day lies more than ``max_age_days``
before today.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .errors import UsageError


@dataclass(frozen=True)
class Clock:
    """The moment a run acts at, as a naive local time in ``tz``."""

    now: datetime  # naive, local
    tz: ZoneInfo

    @classmethod
    def real(cls, tz: ZoneInfo) -> Clock:
        return cls(datetime.now(tz).replace(tzinfo=None, microsecond=0), tz)

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo) -> Clock:
        """``--as-of``: ``2026-11-27`` (00:00 of that day) or ``2026-11-27T08:00`` (local)."""
        try:
            # a bare date is 00:00 of that day, as datetime.fromisoformat reads it
            value = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(
                f"--as-of {text!r}: use a date (2026-11-27) or a local time (2026-11-27T08:00)"
            ) from None
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
        """The earliest due day that is still sent (older ones have aged out)."""
        return self.today - timedelta(days=max_age_days)

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


def to_utc_text(moment: datetime) -> str:
    """The ledger's time format: UTC, to the second, sortable as text on every database."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def from_utc_text(text: str) -> datetime:
    """Inverse of :func:`to_utc_text` (aware, UTC)."""
    return datetime.strptime(text.strip()[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
