"""The pure report computations: what is derived from the aggregated rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from riskrelay.reporting.model import (
    CountRow,
    EscalationRow,
    MonthlyInputs,
    PeriodCountRow,
    RiskList,
    TrendRow,
    WeeklyInputs,
)
from riskrelay.reporting.periods import parse_month, parse_week, previous_month
from riskrelay.reporting.render import ReportFormat, render
from riskrelay.reporting.reports import (
    change_item,
    escalation_item,
    flagged_breakdown,
    month_weeks,
    monthly_report,
    weekly_report,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 7, tzinfo=UTC)
DATA_SINCE = datetime(2026, 9, 1, tzinfo=UTC)  # before every period below: all fully covered


def test_breach_rate_counts_late_and_missed_acknowledgements_over_decided_steps() -> None:
    row = EscalationRow(4, 10, 9, 6, 4, 2, 1, 2, 1, 600.0, 1800.0)
    item = escalation_item(row)
    assert item.breached == 3
    assert item.breach_rate == pytest.approx(3 / 7, abs=1e-4)  # pending steps are not decided
    assert item.breach_rate_ci_low is not None
    assert item.breach_rate_ci_low < item.breach_rate
    assert item.median_ack_minutes == 10.0
    assert item.p90_ack_minutes == 30.0


def test_breakdown_lists_every_level_and_category_and_ranks_channels() -> None:
    rows = [
        CountRow("total", None, 5),
        CountRow("level", "4", 3),
        CountRow("level", None, 2),
        CountRow("category", "compliance", 5),
        CountRow("channel", "email", 2),
        CountRow("channel", "chat", 3),
    ]
    breakdown = flagged_breakdown(rows)
    assert [i.key for i in breakdown.by_level] == ["5", "4", "3", "2", "1", "unclassified"]
    assert [i.tickets for i in breakdown.by_level] == [0, 3, 0, 0, 0, 2]
    assert breakdown.by_level[1].share == 0.6
    assert len(breakdown.by_category) == 6
    assert [i.key for i in breakdown.by_channel] == ["chat", "email"]


def test_month_weeks_cover_partial_weeks_at_the_edges() -> None:
    weeks = month_weeks(parse_month("2026-11"), DATA_SINCE, NOW)
    assert [w.week for w in weeks] == [
        "2026-W44", "2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49",
    ]  # fmt: skip
    assert [w.days_in_month for w in weeks] == [1, 7, 7, 7, 7, 1]
    assert sum(w.days_in_month for w in weeks) == 30


def test_change_compares_daily_rates_so_month_length_does_not_matter() -> None:
    item = change_item("total", "All", 30, 31, 30, 31)
    assert item.change_pct == 0.0
    assert item.rate_ratio == 1.0
    assert not item.significant
    doubled = change_item("total", "All", 120, 50, 30, 31)
    assert doubled.significant
    assert doubled.ci_low is not None
    assert doubled.ci_low > 1.0


def test_empty_inputs_make_empty_reports_that_say_so() -> None:
    week = parse_week("2026-W47")
    weekly = weekly_report(
        WeeklyInputs(
            [CountRow("total", None, 0)], [], [], RiskList(0), RiskList(0), RiskList(0), DATA_SINCE
        ),
        week,
        NOW,
    )
    assert weekly.empty
    assert "empty" in weekly.notes[0]
    month = parse_month("2026-11")
    monthly = monthly_report(
        MonthlyInputs([], [], 0, 0, [], [], [], 0, [], [], DATA_SINCE),
        month,
        previous_month(month),
        NOW,
    )
    assert monthly.empty
    assert "empty" in monthly.notes[0]
    assert all(p.tickets == 0 for s in monthly.weekly_trend.by_level for p in s.weeks)
    for fmt in ReportFormat:
        assert "empty" in render(monthly, fmt)


def test_monthly_trend_intervals_and_month_over_month_from_rows() -> None:
    month = parse_month("2026-11")
    inputs = MonthlyInputs(
        trend=[TrendRow(datetime(2026, 11, 16, tzinfo=UTC), "level", "5", 4)],
        period_counts=[
            PeriodCountRow("current", "total", None, 4),
            PeriodCountRow("previous", "total", None, 2),
            PeriodCountRow("current", "level", "5", 4),
            PeriodCountRow("previous", "level", "5", 2),
        ],
        new_risks=1,
        recurring_total=0,
        recurring=[],
        mitigation=[],
        escalations=[],
        near_miss_total=0,
        near_misses=[],
        near_miss_categories=[],
        data_since=DATA_SINCE,
    )
    report = monthly_report(inputs, month, previous_month(month), NOW)
    critical = report.weekly_trend.by_level[0]
    w47 = next(p for p in critical.weeks if p.week == "2026-W47")
    assert (w47.tickets, w47.ci_low, w47.ci_high) == (4, 1.09, 10.242)
    assert critical.total == 4
    assert report.month_over_month.by_level[0].current == 4
    assert report.month_over_month.by_level[0].previous == 2
    assert report.month_over_month.total.rate_ratio == pytest.approx((4 / 30) / (2 / 31), abs=1e-4)


def test_markdown_cells_escape_table_syntax() -> None:
    week = parse_week("2026-W47")
    weekly = weekly_report(
        WeeklyInputs(
            [CountRow("total", None, 1), CountRow("product", "A|B\nC", 1)],
            [],
            [],
            RiskList(0),
            RiskList(0),
            RiskList(0),
            DATA_SINCE,
        ),
        week,
        NOW,
    )
    markdown = render(weekly, ReportFormat.MARKDOWN)
    assert "| A\\|B C | 1 |" in markdown
    html = render(weekly, ReportFormat.HTML)
    assert "A|B\nC" in html
    assert "<script" not in html
