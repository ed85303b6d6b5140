from __future__ import annotations

from datetime import UTC, datetime

import pytest

from riskrelay.reporting.periods import (
    PeriodError,
    parse_month,
    parse_week,
    previous_month,
    previous_week,
    week_of,
)

pytestmark = pytest.mark.unit


def test_iso_week_bounds_are_monday_to_monday_in_utc() -> None:
    week = parse_week("2026-W47")
    assert week.start == datetime(2026, 11, 16, tzinfo=UTC)
    assert week.end == datetime(2026, 11, 23, tzinfo=UTC)
    assert week.days == 7


def test_week_53_exists_only_in_long_years() -> None:
    assert parse_week("2026-W53").start == datetime(2026, 12, 28, tzinfo=UTC)
    with pytest.raises(PeriodError, match="no ISO week 53"):
        parse_week("2025-W53")


@pytest.mark.parametrize(
    "text", ["2026-47", "2026-W7", "W47", "2026-W00", "2026-W54", "", "1900-W01"]
)
def test_malformed_weeks_are_rejected_with_the_expected_form(text: str) -> None:
    with pytest.raises(PeriodError):
        parse_week(text)


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026/11", "11-2026", "2026-1"])
def test_malformed_months_are_rejected(text: str) -> None:
    with pytest.raises(PeriodError, match="month"):
        parse_month(text)


def test_months_and_previous_periods() -> None:
    december = parse_month("2026-12")
    assert december.end == datetime(2027, 1, 1, tzinfo=UTC)
    assert previous_month(parse_month("2027-01")).label == "2026-12"
    assert previous_week(parse_week("2027-W01")).label == "2026-W53"
    assert week_of(datetime(2027, 1, 1, 12, tzinfo=UTC)).label == "2026-W53"
