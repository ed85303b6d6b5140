"""Report periods: ISO weeks and calendar months, always in UTC.

A period is the half-open interval ``[start, end)``. Parsing is strict so a malformed week or
month is a clear client error (``PeriodError``), never a silently different period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
MIN_YEAR = 1971
MAX_YEAR = 9998


class PeriodError(ValueError):
    """A week or month that does not parse or does not exist."""


@dataclass(frozen=True)
class Period:
    """A report period: its label (``2026-W47``, ``2026-11``) and UTC bounds ``[start, end)``."""

    label: str
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def _utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def iso_week(year: int, week: int) -> Period:
    try:
        monday = date.fromisocalendar(year, week, 1)
    except ValueError as error:
        raise PeriodError(
            f"{year}-W{week:02d} does not exist: {year} has no ISO week {week}"
        ) from error
    start = _utc_midnight(monday)
    return Period(f"{year}-W{week:02d}", start, start + timedelta(days=7))


def parse_week(text: str) -> Period:
    """``2026-W47`` -> Monday 2026-11-16 00:00 UTC to Monday 2026-11-23 00:00 UTC."""
    match = _WEEK.match(text.strip())
    if not match:
        raise PeriodError(
            f"week {text!r} is not an ISO 8601 week; expected YYYY-Www, e.g. 2026-W47"
        )
    year, week = int(match.group(1)), int(match.group(2))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"week {text!r}: year must be between {MIN_YEAR} and {MAX_YEAR}")
    if not 1 <= week <= 53:
        raise PeriodError(f"week {text!r}: the week number must be 01-53")
    return iso_week(year, week)


def month_period(year: int, month: int) -> Period:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return Period(f"{year:04d}-{month:02d}", start, end)


def parse_month(text: str) -> Period:
    """``2026-11`` -> 2026-11-01 00:00 UTC to 2026-12-01 00:00 UTC."""
    match = _MONTH.match(text.strip())
    if not match:
        raise PeriodError(f"month {text!r} is not a calendar month; expected YYYY-MM, e.g. 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PeriodError(f"month {text!r}: year must be between {MIN_YEAR} and {MAX_YEAR}")
    if not 1 <= month <= 12:
        raise PeriodError(f"month {text!r}: the month must be 01-12")
    return month_period(year, month)


def week_of(moment: datetime) -> Period:
    """The ISO week containing ``moment`` (in UTC)."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return iso_week(year, week)


def month_of(moment: datetime) -> Period:
    utc = moment.astimezone(UTC)
    return month_period(utc.year, utc.month)


def previous_week(period: Period) -> Period:
    return week_of(period.start - timedelta(days=1))


def previous_month(period: Period) -> Period:
    return month_of(period.start - timedelta(days=1))


def week_label(moment: datetime) -> str:
    return week_of(moment).label


CoverageStatus = Literal["complete", "partial", "no_data", "future"]


@dataclass(frozen=True)
class Coverage:
    """How much of a period the read model can speak for, as of a report's ``now``.

    Data exist from the first event the read model holds (``data_since``) up to ``now``: a
    period entirely before that first event has *no data* (its zeros would be a guess, not a
    count), one that starts after ``now`` is in the *future*, and one cut by either bound is
    *partial*. Rates are taken over the covered part only (``covered_from`` to
    ``covered_until``).
    """

    status: CoverageStatus
    covered_from: datetime | None
    covered_until: datetime | None

    @property
    def covered(self) -> bool:
        return self.status in ("complete", "partial")

    @property
    def days(self) -> float:
        """Covered length in days (0.0 without data)."""
        if self.covered_from is None or self.covered_until is None:
            return 0.0
        return (self.covered_until - self.covered_from).total_seconds() / 86_400.0


def coverage(period: Period, data_since: datetime | None, now: datetime) -> Coverage:
    """The part of ``period`` between the first event (``data_since``) and ``now``."""
    if now <= period.start:
        return Coverage("future", None, None)
    if data_since is None or data_since >= min(period.end, now):
        return Coverage("no_data", None, None)
    start = max(period.start, data_since)
    end = min(period.end, now)
    status: CoverageStatus = "complete" if (start, end) == (period.start, period.end) else "partial"
    return Coverage(status, start, end)
