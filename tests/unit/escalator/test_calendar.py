"""Business calendars: business days, same-business-day closes, weekly reviews, DST edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from riskrelay.escalator.calendar import BusinessCalendar, CalendarError

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TEN = time(10, 0)


def sunday_calendar(opening: str, closing: str, zone: str = "Europe/Berlin") -> BusinessCalendar:
    # DST changes happen on Sundays in Europe and the US, so DST edge cases need Sunday hours.
    return BusinessCalendar.model_validate(
        {"timezone": zone, "business_hours": {"sun": (opening, closing)}}
    )


# -- business days ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 12, 23), True),  # Wednesday
        (date(2026, 12, 24), False),  # extra closed day
        (date(2026, 12, 25), False),  # Christmas Day
        (date(2026, 12, 26), False),  # Second Day of Christmas (also a Saturday)
        (date(2026, 12, 27), False),  # Sunday
        (date(2026, 12, 28), True),  # Monday
        (date(2026, 12, 31), False),  # extra closed day
        (date(2027, 1, 1), False),  # New Year's Day
        (date(2027, 1, 4), True),
        (date(2026, 3, 14), False),  # Saturday
        (date(2026, 4, 3), False),  # Good Friday
        (date(2026, 4, 6), False),  # Easter Monday
    ],
)
def test_business_days_in_berlin(calendar: BusinessCalendar, day: date, expected: bool) -> None:
    assert calendar.is_business_day(day) is expected


def test_berlin_only_holiday_is_closed_in_berlin_but_not_in_bavaria() -> None:
    # International Women's Day is a public holiday in Berlin only (a Monday in 2027).
    hours = {"mon": ("09:00", "17:00")}
    berlin = BusinessCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "business_hours": hours,
            "holidays": {"country": "DE", "subdivision": "BE"},
        }
    )
    bavaria = BusinessCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "business_hours": hours,
            "holidays": {"country": "DE", "subdivision": "BY"},
        }
    )
    assert not berlin.is_business_day(date(2027, 3, 8))
    assert bavaria.is_business_day(date(2027, 3, 8))


def test_us_observed_holiday_closes_the_friday(us_calendar: BusinessCalendar) -> None:
    # July 4th 2026 is a Saturday; the holiday is observed on Friday July 3rd.
    assert not us_calendar.is_business_day(date(2026, 7, 3))
    assert us_calendar.is_business_day(date(2026, 7, 2))


def test_is_open_includes_opening_and_excludes_closing(calendar: BusinessCalendar) -> None:
    assert calendar.is_open(datetime(2026, 3, 10, 9, 0, tzinfo=BERLIN))
    assert calendar.is_open(datetime(2026, 3, 10, 16, 59, tzinfo=BERLIN))
    assert not calendar.is_open(datetime(2026, 3, 10, 17, 0, tzinfo=BERLIN))
    assert not calendar.is_open(datetime(2026, 3, 10, 8, 59, tzinfo=BERLIN))
    assert not calendar.is_open(datetime(2026, 3, 14, 12, 0, tzinfo=BERLIN))  # Saturday


def test_naive_instants_are_refused(calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.same_business_day_close(datetime(2026, 3, 10, 12, 0))


def test_a_calendar_that_never_opens_says_so() -> None:
    closed = BusinessCalendar.model_validate(
        {
            "timezone": "UTC",
            "business_hours": {"mon": ("09:00", "17:00")},
            "extra_closed_days": [
                (date(2026, 3, 2) + timedelta(weeks=week)).isoformat() for week in range(110)
            ],
        }
    )
    with pytest.raises(CalendarError, match="no business day"):
        closed.same_business_day_close(datetime(2026, 3, 1, tzinfo=UTC))


# -- same business day --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flagged", "expected"),
    [
        # before opening on a business day: that day's close
        (datetime(2026, 3, 10, 7, 0, tzinfo=BERLIN), datetime(2026, 3, 10, 17, 0, tzinfo=BERLIN)),
        # during business hours: that day's close
        (datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN), datetime(2026, 3, 10, 17, 0, tzinfo=BERLIN)),
        # exactly at closing: the next business day's close
        (datetime(2026, 3, 10, 17, 0, tzinfo=BERLIN), datetime(2026, 3, 11, 17, 0, tzinfo=BERLIN)),
        # after closing on a Friday: Monday's close
        (datetime(2026, 3, 13, 18, 0, tzinfo=BERLIN), datetime(2026, 3, 16, 17, 0, tzinfo=BERLIN)),
        # Saturday: Monday's close
        (datetime(2026, 3, 14, 11, 0, tzinfo=BERLIN), datetime(2026, 3, 16, 17, 0, tzinfo=BERLIN)),
        # Christmas: 24th closed, 25th/26th holidays, weekend -> Monday the 28th
        (
            datetime(2026, 12, 23, 18, 0, tzinfo=BERLIN),
            datetime(2026, 12, 28, 17, 0, tzinfo=BERLIN),
        ),
        (
            datetime(2026, 12, 25, 10, 0, tzinfo=BERLIN),
            datetime(2026, 12, 28, 17, 0, tzinfo=BERLIN),
        ),
        # New Year: 31st closed, 1st holiday, weekend -> Monday January 4th
        (datetime(2026, 12, 30, 20, 0, tzinfo=BERLIN), datetime(2027, 1, 4, 17, 0, tzinfo=BERLIN)),
        # Friday evening before the spring-forward Sunday: Monday 17:00 in summer time
        (datetime(2026, 3, 27, 18, 0, tzinfo=BERLIN), datetime(2026, 3, 30, 17, 0, tzinfo=BERLIN)),
        # Friday evening before the fall-back Sunday: Monday 17:00 in winter time
        (
            datetime(2026, 10, 23, 18, 0, tzinfo=BERLIN),
            datetime(2026, 10, 26, 17, 0, tzinfo=BERLIN),
        ),
    ],
)
def test_same_business_day_close_berlin(
    calendar: BusinessCalendar, flagged: datetime, expected: datetime
) -> None:
    assert calendar.same_business_day_close(flagged) == expected


def test_same_business_day_close_across_dst_has_the_right_offset(
    calendar: BusinessCalendar,
) -> None:
    close = calendar.same_business_day_close(datetime(2026, 3, 27, 18, 0, tzinfo=BERLIN))
    assert close == datetime(2026, 3, 30, 15, 0, tzinfo=UTC)  # 17:00 CEST
    close = calendar.same_business_day_close(datetime(2026, 10, 23, 18, 0, tzinfo=BERLIN))
    assert close == datetime(2026, 10, 26, 16, 0, tzinfo=UTC)  # 17:00 CET


@pytest.mark.parametrize(
    ("flagged", "expected"),
    [
        # spring forward (March 8th): Friday evening -> Monday 17:00 EDT
        (datetime(2026, 3, 6, 18, 0, tzinfo=NEW_YORK), datetime(2026, 3, 9, 21, 0, tzinfo=UTC)),
        # fall back (November 1st): Friday evening -> Monday 17:00 EST
        (datetime(2026, 10, 30, 17, 30, tzinfo=NEW_YORK), datetime(2026, 11, 2, 22, 0, tzinfo=UTC)),
        # observed Independence Day on Friday July 3rd: Thursday evening -> Monday
        (datetime(2026, 7, 2, 18, 0, tzinfo=NEW_YORK), datetime(2026, 7, 6, 21, 0, tzinfo=UTC)),
        # Thanksgiving (Thursday November 26th): Wednesday evening -> Friday
        (datetime(2026, 11, 25, 18, 0, tzinfo=NEW_YORK), datetime(2026, 11, 27, 22, 0, tzinfo=UTC)),
        # a flag written in another zone is read on the team's clock: 23:30 UTC is 18:30 in NY
        (datetime(2026, 3, 10, 23, 30, tzinfo=UTC), datetime(2026, 3, 11, 21, 0, tzinfo=UTC)),
    ],
)
def test_same_business_day_close_new_york(
    us_calendar: BusinessCalendar, flagged: datetime, expected: datetime
) -> None:
    assert us_calendar.same_business_day_close(flagged) == expected


# -- wall times on DST days -----------------------------------------------------------------------


def test_opening_in_the_spring_forward_gap_opens_when_the_clocks_jump() -> None:
    calendar = sunday_calendar("02:30", "17:00")
    opening, closing = calendar.hours_on(date(2026, 3, 29)) or pytest.fail("closed")
    assert opening == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert opening.astimezone(BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"
    assert closing == datetime(2026, 3, 29, 15, 0, tzinfo=UTC)


def test_closing_in_the_spring_forward_gap_closes_when_the_clocks_jump() -> None:
    calendar = sunday_calendar("00:30", "02:30")
    opening, closing = calendar.hours_on(date(2026, 3, 29)) or pytest.fail("closed")
    assert opening == datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 00:30 CET
    assert closing == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, 1.5 h later


def test_hours_that_vanish_in_the_gap_make_the_day_closed() -> None:
    calendar = sunday_calendar("02:15", "02:45")
    assert calendar.hours_on(date(2026, 3, 29)) is None
    assert not calendar.is_business_day(date(2026, 3, 29))
    assert calendar.is_business_day(date(2026, 3, 22))


def test_time_in_the_repeated_fall_back_hour_is_its_first_occurrence() -> None:
    calendar = sunday_calendar("02:30", "17:00")
    opening, closing = calendar.hours_on(date(2026, 10, 25)) or pytest.fail("closed")
    assert opening == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, not CET
    assert closing == datetime(2026, 10, 25, 16, 0, tzinfo=UTC)  # 17:00 CET
    # Both 02:30 CEST and 02:45 CET show as "02:xx"; only the first is before opening.
    assert calendar.is_open(datetime(2026, 10, 25, 0, 45, tzinfo=UTC))
    assert not calendar.is_open(datetime(2026, 10, 25, 0, 15, tzinfo=UTC))


def test_new_york_gap_and_fold() -> None:
    # New York springs forward 02:00 -> 03:00 and falls back 02:00 EDT -> 01:00 EST.
    gap = sunday_calendar("02:30", "12:00", zone="America/New_York")
    opening, _ = gap.hours_on(date(2026, 3, 8)) or pytest.fail("closed")
    assert opening.astimezone(NEW_YORK).isoformat() == "2026-03-08T03:00:00-04:00"
    fold = sunday_calendar("01:30", "12:00", zone="America/New_York")
    opening, _ = fold.hours_on(date(2026, 11, 1)) or pytest.fail("closed")
    assert opening.astimezone(NEW_YORK).isoformat() == "2026-11-01T01:30:00-04:00"


def test_same_business_day_close_on_a_spring_forward_day() -> None:
    calendar = sunday_calendar("02:30", "17:00")
    # 01:30 CET is before the jump and before opening: that day's close, 17:00 CEST.
    assert calendar.same_business_day_close(datetime(2026, 3, 29, 0, 30, tzinfo=UTC)) == datetime(
        2026, 3, 29, 15, 0, tzinfo=UTC
    )
    assert calendar.next_open_moment(datetime(2026, 3, 29, 0, 30, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 0, tzinfo=UTC
    )


# -- next opening ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN), datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN)),
        (datetime(2026, 3, 10, 7, 0, tzinfo=BERLIN), datetime(2026, 3, 10, 9, 0, tzinfo=BERLIN)),
        (datetime(2026, 3, 13, 17, 0, tzinfo=BERLIN), datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN)),
        (datetime(2026, 12, 23, 20, 0, tzinfo=BERLIN), datetime(2026, 12, 28, 9, 0, tzinfo=BERLIN)),
    ],
)
def test_next_open_moment(calendar: BusinessCalendar, at: datetime, expected: datetime) -> None:
    assert calendar.next_open_moment(at) == expected


# -- weekly review --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # Monday before 10:00: the same morning
        (datetime(2026, 3, 9, 9, 30, tzinfo=BERLIN), datetime(2026, 3, 9, 10, 0, tzinfo=BERLIN)),
        # exactly 10:00 on Monday: strictly after, so next week
        (datetime(2026, 3, 9, 10, 0, tzinfo=BERLIN), datetime(2026, 3, 16, 10, 0, tzinfo=BERLIN)),
        (datetime(2026, 3, 11, 15, 0, tzinfo=BERLIN), datetime(2026, 3, 16, 10, 0, tzinfo=BERLIN)),
        # Sunday before the spring-forward: Monday 10:00 CEST
        (datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), datetime(2026, 3, 30, 10, 0, tzinfo=BERLIN)),
        # Easter Monday is a holiday: Tuesday is the first business day of that week
        (datetime(2026, 4, 3, 12, 0, tzinfo=BERLIN), datetime(2026, 4, 7, 10, 0, tzinfo=BERLIN)),
        # Christmas week: Monday the 21st already passed -> Monday the 28th
        (
            datetime(2026, 12, 23, 12, 0, tzinfo=BERLIN),
            datetime(2026, 12, 28, 10, 0, tzinfo=BERLIN),
        ),
    ],
)
def test_weekly_review_after(
    calendar: BusinessCalendar, after: datetime, expected: datetime
) -> None:
    assert calendar.weekly_review_after(after, TEN) == expected


def test_weekly_review_moves_to_opening_on_a_short_day() -> None:
    calendar = BusinessCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "business_hours": {"mon": ("12:00", "16:00"), "tue": ("09:00", "17:00")},
        }
    )
    review = calendar.weekly_review_after(datetime(2026, 3, 8, 12, 0, tzinfo=BERLIN), TEN)
    assert review == datetime(2026, 3, 9, 12, 0, tzinfo=BERLIN)


def test_weekly_review_respects_week_start(calendar: BusinessCalendar) -> None:
    sunday_week = BusinessCalendar.model_validate(
        {
            "timezone": "America/New_York",
            "business_hours": dict.fromkeys(
                ("sun", "mon", "tue", "wed", "thu"), ("09:00", "17:00")
            ),
        }
    )
    after = datetime(2026, 3, 10, 12, 0, tzinfo=NEW_YORK)  # Tuesday
    assert sunday_week.weekly_review_after(after, TEN, "sun") == datetime(
        2026, 3, 15, 10, 0, tzinfo=NEW_YORK
    )
    assert sunday_week.weekly_review_after(after, TEN, "mon") == datetime(
        2026, 3, 16, 10, 0, tzinfo=NEW_YORK
    )
