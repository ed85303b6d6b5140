"""Calendars and policies the escalator's unit tests share."""

from __future__ import annotations

import pytest

from riskrelay.escalator.calendar import BusinessCalendar
from riskrelay.escalator.policy import EscalationPolicy, load_policy

WEEKDAY_HOURS = dict.fromkeys(("mon", "tue", "wed", "thu", "fri"), ("09:00", "17:00"))


def berlin_calendar() -> BusinessCalendar:
    return BusinessCalendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "business_hours": WEEKDAY_HOURS,
            "holidays": {"country": "DE", "subdivision": "BE"},
            "extra_closed_days": ["2026-12-24", "2026-12-31"],
        }
    )


def new_york_calendar() -> BusinessCalendar:
    return BusinessCalendar.model_validate(
        {
            "timezone": "America/New_York",
            "business_hours": WEEKDAY_HOURS,
            "holidays": {"country": "US", "subdivision": "NY"},
        }
    )


@pytest.fixture(scope="session")
def calendar() -> BusinessCalendar:
    return berlin_calendar()


@pytest.fixture(scope="session")
def us_calendar() -> BusinessCalendar:
    return new_york_calendar()


@pytest.fixture(scope="session")
def policy() -> EscalationPolicy:
    return load_policy()
