"""Business calendars: when a team is open, in its own time zone, holidays included.

The protocol's business-time rules ("same business day", "the weekly review on the first business
day of the week") only make sense on a team's local clock, so every rule here is computed in the
calendar's IANA zone and every instant it returns is in UTC. Comparing instants in UTC is
deliberate: Python compares two datetimes that share a ``tzinfo`` by wall time and ignores
``fold``, which gives wrong answers inside the repeated hour of a daylight-saving fall-back.

This module also holds the small YAML loading helpers the escalator's configuration files share,
because the calendar is the lowest layer of the configuration (the policy builds on it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_data
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

# ---------------------------------------------------------------------------------------------
# Configuration file plumbing
# ---------------------------------------------------------------------------------------------

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigFileError(ValueError):
    """A configuration file is missing, not YAML, or breaks a rule; the message names the field."""


class ConfigModel(BaseModel):
    """Base of the escalator's configuration models: immutable, and unknown keys are typos."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each starting with the dotted path of the offending field."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(file)"
        # Our own validators' messages read better without pydantic's "Value error, " prefix.
        cause = problem.get("ctx", {}).get("error") if problem["type"] == "value_error" else None
        lines.append(f"{where}: {cause if cause is not None else problem['msg']}")
    return "; ".join(lines)


def parse_config_mapping(model: type[ModelT], raw: Any, *, origin: str) -> ModelT:
    """Validate already-parsed YAML against ``model``; errors name ``origin`` and the field."""
    if not isinstance(raw, dict):
        raise ConfigFileError(f"{origin}: expected a mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ConfigFileError(f"{origin}: {describe_validation_error(error)}") from error


def load_config_file(model: type[ModelT], path: Path | None, default_name: str) -> ModelT:
    """Load ``path``, or the file ``default_name`` shipped in this package's ``config/`` folder."""
    if path is None:
        resource = resources.files("riskrelay.escalator").joinpath("config", default_name)
        origin, text = f"default {default_name}", resource.read_text(encoding="utf-8")
    else:
        origin = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigFileError(f"{origin}: cannot read: {error.strerror or error}") from error
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigFileError(f"{origin}: not valid YAML: {error}") from error
    return parse_config_mapping(model, raw, origin=origin)


# ---------------------------------------------------------------------------------------------
# Local wall-clock times
# ---------------------------------------------------------------------------------------------

_HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _parse_hh_mm(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not _HH_MM.match(value):
        raise ValueError(f'expected a local time as "HH:MM" (00:00-23:59), got {value!r}')
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


LocalTime = Annotated[
    time,
    BeforeValidator(_parse_hh_mm),
    # Serialize back to "HH:MM" so a model dumped to JSON (a frozen plan) loads again.
    PlainSerializer(lambda value: value.strftime("%H:%M"), return_type=str),
]
"""A wall-clock time written "HH:MM" in configuration files."""

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# How far ahead a search for the next open day may look before the calendar is declared unusable
# (for example: every day of the next two years is an extra closed day).
_SEARCH_LIMIT_DAYS = 2 * 366


class CalendarError(ValueError):
    """The calendar cannot answer: no business day within the search limit."""


def require_aware(value: datetime, name: str = "instant") -> datetime:
    """Reject naive datetimes: an instant without an offset is ambiguous across time zones."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


@lru_cache(maxsize=512)
def _holiday_dates(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    # The `holidays` package computes a year's dates on demand; caching per (country,
    # subdivision, year) keeps business-day searches cheap without mutable state on the model.
    return frozenset(holiday_data.country_holidays(country, subdiv=subdivision, years=year).keys())


class HolidaySource(ConfigModel):
    """Public holidays of a country (optionally one subdivision), from the `holidays` package."""

    country: str = Field(description="ISO 3166-1 alpha-2 country code, e.g. `DE`, `US`.")
    subdivision: str | None = Field(
        default=None, description="Subdivision code as the `holidays` package names it, e.g. `BE`."
    )

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value not in holiday_data.list_supported_countries():
            raise ValueError(f"{value!r} is not a country the holidays package supports")
        return value

    @model_validator(mode="after")
    def _known_subdivision(self) -> Self:
        if self.subdivision is None:
            return self
        known = holiday_data.list_supported_countries()[self.country]
        if self.subdivision not in known:
            raise ValueError(
                f"subdivision {self.subdivision!r} is not one of {self.country}'s: "
                f"{', '.join(known) or 'none'}"
            )
        return self

    def dates_in(self, year: int) -> frozenset[date]:
        return _holiday_dates(self.country, self.subdivision, year)


class BusinessCalendar(ConfigModel):
    """A team's working time: zone, opening hours per weekday, holidays and extra closed days."""

    timezone: str = Field(description="IANA time zone, e.g. `Europe/Berlin`.")
    business_hours: dict[Weekday, tuple[LocalTime, LocalTime]] = Field(
        description="Opening and closing time per weekday; a weekday left out is closed."
    )
    holidays: HolidaySource | None = Field(
        default=None, description="Public holidays that close the team."
    )
    extra_closed_days: tuple[date, ...] = Field(
        default=(), description="Further closed dates (company holidays, bridge days)."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{value!r} is not an IANA time zone") from error
        return value

    @field_validator("business_hours")
    @classmethod
    def _sane_hours(
        cls, value: dict[Weekday, tuple[time, time]]
    ) -> dict[Weekday, tuple[time, time]]:
        if not value:
            raise ValueError("at least one weekday needs business hours")
        for weekday, (opening, closing) in value.items():
            if opening >= closing:
                raise ValueError(
                    f"{weekday}: opening {opening:%H:%M} must be before closing {closing:%H:%M}"
                )
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    # -- days ------------------------------------------------------------------------------------

    def local_date(self, instant: datetime) -> date:
        """The calendar date on the team's wall clock at ``instant``."""
        return require_aware(instant).astimezone(self.zone).date()

    def is_holiday(self, day: date) -> bool:
        return self.holidays is not None and day in self.holidays.dates_in(day.year)

    def is_business_day(self, day: date) -> bool:
        """Open that day: it has business hours and is neither a holiday nor an extra closed day."""
        return self.hours_on(day) is not None

    def business_days_from(self, day: date) -> Iterator[date]:
        """Business days on or after ``day``, in order; raises when none is found in two years."""
        for offset in range(_SEARCH_LIMIT_DAYS):
            candidate = day + timedelta(days=offset)
            if self.is_business_day(candidate):
                yield candidate
        raise CalendarError(
            f"no business day within {_SEARCH_LIMIT_DAYS} days of {day.isoformat()}"
        )

    def next_business_day(self, day: date) -> date:
        """The first business day on or after ``day``."""
        return next(self.business_days_from(day))

    # -- instants --------------------------------------------------------------------------------

    def at_local(self, day: date, wall_time: time) -> datetime:
        """The instant (UTC) the team's clock reaches ``wall_time`` on ``day``.

        Daylight saving makes this partial. On a fall-back day a time inside the repeated hour
        shows twice: the earlier instant is taken (the clock reached it then). On a spring-forward
        day a time inside the skipped hour never shows: the instant the clocks jump is taken,
        because that is when the clock passes it (an 02:30 opening when 02:00 jumps to 03:00
        opens at 03:00). Both rules keep later wall times at later-or-equal instants, so a day's
        opening can never move after its closing.
        """
        naive = datetime.combine(day, wall_time)
        earlier = naive.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if self._wall_clock(earlier) == naive:
            return earlier
        # In a gap, fold=1 reads the time with the offset after the jump: an instant before it.
        before = int(naive.replace(tzinfo=self.zone, fold=1).astimezone(UTC).timestamp())
        after = int(earlier.timestamp())
        while after - before > 1:  # bisect to the jump; tz transitions fall on whole seconds
            middle = (before + after) // 2
            if self._wall_clock(datetime.fromtimestamp(middle, UTC)) >= naive:
                after = middle
            else:
                before = middle
        return datetime.fromtimestamp(after, UTC)

    def _wall_clock(self, instant: datetime) -> datetime:
        return instant.astimezone(self.zone).replace(tzinfo=None, fold=0)

    def hours_on(self, day: date) -> tuple[datetime, datetime] | None:
        """Opening and closing instants (UTC) of ``day``, or None when it is not a business day.

        A day whose hours vanish in a daylight-saving gap (open 02:30, close 03:00 on the day
        02:00 jumps to 03:00) has no business time and is not a business day.
        """
        if (
            WEEKDAYS[day.weekday()] not in self.business_hours
            or day in self.extra_closed_days
            or self.is_holiday(day)
        ):
            return None
        opening, closing = self.business_hours[WEEKDAYS[day.weekday()]]
        hours = self.at_local(day, opening), self.at_local(day, closing)
        return hours if hours[0] < hours[1] else None

    def is_open(self, instant: datetime) -> bool:
        """Whether ``instant`` is within business hours; opening included, closing excluded."""
        at = require_aware(instant)
        hours = self.hours_on(self.local_date(at))
        return hours is not None and hours[0] <= at < hours[1]

    def next_open_moment(self, instant: datetime) -> datetime:
        """``instant`` itself when open, otherwise the next opening."""
        at = require_aware(instant)
        for day in self.business_days_from(self.local_date(at)):
            opening, closing = self._hours(day)
            if at < closing:
                return max(at, opening)
        raise AssertionError("unreachable: business_days_from raises when exhausted")

    def same_business_day_close(self, instant: datetime) -> datetime:
        """The protocol's "same business day" deadline for something flagged at ``instant``.

        Flagged before closing on a business day (before opening included): that day's close.
        Flagged at or after closing, or on a day that is not a business day: the close of the
        following business day.
        """
        at = require_aware(instant)
        for day in self.business_days_from(self.local_date(at)):
            closing = self._hours(day)[1]
            if at < closing:
                return closing
        raise AssertionError("unreachable: business_days_from raises when exhausted")

    def weekly_review_after(
        self, instant: datetime, review_time: time, week_starts_on: Weekday = "mon"
    ) -> datetime:
        """The first weekly review strictly after ``instant``.

        The review is held on the first business day of each week at ``review_time`` on the team's
        clock; if that day's hours do not include ``review_time`` (a short day), the review moves
        to that day's opening, so it never lands outside business hours. A week without any
        business day has no review.
        """
        at = require_aware(instant)
        today = self.local_date(at)
        first_weekday = WEEKDAYS.index(week_starts_on)
        week_start = today - timedelta(days=(today.weekday() - first_weekday) % 7)
        for week in range(_SEARCH_LIMIT_DAYS // 7 + 1):
            start = week_start + timedelta(weeks=week)
            review_day = self.next_business_day(start)
            if review_day >= start + timedelta(days=7):
                continue
            opening, closing = self._hours(review_day)
            review = self.at_local(review_day, review_time)
            if not opening <= review < closing:
                review = opening
            if review > at:
                return review
        raise CalendarError(f"no weekly review within {_SEARCH_LIMIT_DAYS} days of {today}")

    def _hours(self, business_day: date) -> tuple[datetime, datetime]:
        hours = self.hours_on(business_day)
        if hours is None:
            raise AssertionError(f"{business_day} is not a business day")
        return hours


DEFAULT_CALENDAR_FILE = "calendar.yaml"


def load_calendar(path: Path | None = None) -> BusinessCalendar:
    """Load a calendar file, or the default shipped in ``config/calendar.yaml``."""
    return load_config_file(BusinessCalendar, path, DEFAULT_CALENDAR_FILE)
