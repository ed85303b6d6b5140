"""Reports say true things: months before the first event are 'no data' (never zero, never
tested) and weeks that have not begun are not drawn, in every format.

Every time here is relative to a clock passed in (``now``), never the wall clock."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from riskrelay.reporting.model import (
    MonthlyInputs,
    PeriodCountRow,
    RiskList,
    TrendRow,
    WeeklyInputs,
)
from riskrelay.reporting.periods import coverage, parse_month, parse_week, previous_month
from riskrelay.reporting.render import ReportFormat, render
from riskrelay.reporting.reports import change_item, monthly_report, weekly_report

pytestmark = pytest.mark.unit

DECEMBER = parse_month("2026-12")


def december_inputs(data_since: datetime, current: int, previous: int) -> MonthlyInputs:
    """Flagged tickets of December (all Critical, in its first full week) and November."""
    rows = [PeriodCountRow("current", "total", None, current)]
    rows += [PeriodCountRow("current", "level", "5", current)] if current else []
    rows += [PeriodCountRow("previous", "total", None, previous)]
    rows += [PeriodCountRow("previous", "level", "5", previous)] if previous else []
    trend = [TrendRow(datetime(2026, 12, 7, tzinfo=UTC), "level", "5", current)] if current else []
    return MonthlyInputs(
        trend=trend,
        period_counts=rows,
        new_risks=1,
        recurring_total=0,
        recurring=[],
        mitigation=[],
        escalations=[],
        near_miss_total=0,
        near_misses=[],
        near_miss_categories=[],
        data_since=data_since,
    )


def test_coverage_of_a_period_between_the_first_event_and_now() -> None:
    week = parse_week("2026-W50")  # Monday 7 to Monday 14 December
    now = week.start + timedelta(days=3, hours=12)
    assert coverage(week, week.start - timedelta(days=30), now).status == "partial"
    assert coverage(week, week.start - timedelta(days=30), now).days == 3.5
    assert coverage(week, week.start - timedelta(days=30), week.end).status == "complete"
    assert coverage(week, week.end, week.end + timedelta(days=1)).status == "no_data"
    assert coverage(week, None, week.end + timedelta(days=1)).status == "no_data"
    assert coverage(week, week.start - timedelta(days=30), week.start).status == "future"
    started_inside = coverage(week, week.start + timedelta(days=2), week.end)
    assert (started_inside.status, started_inside.days) == ("partial", 5.0)


def test_a_month_before_the_first_event_is_no_data_and_not_tested() -> None:
    # The read model's first event is on 3 December; the report is made on 20 December.
    first_event = datetime(2026, 12, 3, 9, tzinfo=UTC)
    now = datetime(2026, 12, 20, 7, tzinfo=UTC)
    report = monthly_report(
        december_inputs(first_event, 12, 0), DECEMBER, previous_month(DECEMBER), now
    )
    total = report.month_over_month.total
    assert report.previous_period.coverage == "no_data"
    assert report.period.coverage == "partial"
    assert (total.current, total.previous, total.previous_per_day) == (12, None, None)
    assert not total.tested
    assert (total.p_value, total.rate_ratio, total.ci_low, total.significant) == (
        None, None, None, False,
    )  # fmt: skip
    assert total.note is not None
    assert "2026-11 (no data)" in total.note
    assert all(not c.tested and not c.significant for c in report.month_over_month.by_level)
    assert any("No data for 2026-11" in note for note in report.notes)
    # The rate is over the covered days only: 3 Dec 09:00 to 20 Dec 07:00.
    covered_days = (now - first_event).total_seconds() / 86_400
    assert total.current_per_day == round(12 / covered_days, 4)

    # The same counts against a November the data do cover (a real zero) are tested.
    covered = monthly_report(
        december_inputs(datetime(2026, 10, 1, tzinfo=UTC), 12, 0),
        DECEMBER,
        previous_month(DECEMBER),
        now,
    )
    assert covered.month_over_month.total.tested
    assert covered.month_over_month.total.previous == 0
    assert covered.month_over_month.total.significant

    as_json = json.loads(render(report, ReportFormat.JSON))
    assert as_json["month_over_month"]["total"]["previous"] is None
    assert as_json["month_over_month"]["total"]["p_value"] is None
    html = render(report, ReportFormat.HTML)
    row = re.search(r'<tr data-change="total-total"[^>]*>(.*?)</tr>', html, re.S)
    assert row is not None
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1])]
    assert cells[1:3] == ["12", "no data"]
    assert cells[6] == "not tested"
    assert "<b>*</b>" not in html
    markdown = render(report, ReportFormat.MARKDOWN)
    assert "| All flagged tickets | 12 | no data | – | – | not tested |" in markdown
    rows = list(csv.DictReader(io.StringIO(render(report, ReportFormat.CSV))))
    values = {(r["section"], r["item"], r["field"]): r["value"] for r in rows}
    assert values[("month_over_month.total", "", "previous")] == ""
    assert values[("month_over_month.total", "", "tested")] == "False"
    assert "no data" in values[("month_over_month.total", "", "note")]
    assert values[("previous_period", "", "coverage")] == "no_data"


def test_a_month_with_no_data_at_all_says_so_instead_of_zero() -> None:
    now = datetime(2026, 12, 20, 7, tzinfo=UTC)
    report = monthly_report(
        december_inputs(datetime(2026, 12, 3, tzinfo=UTC), 0, 0),
        previous_month(DECEMBER),
        previous_month(previous_month(DECEMBER)),
        now,
    )
    assert report.period.coverage == "no_data"
    assert report.flagged_tickets is None
    assert report.notes[0].startswith("No data for 2026-11")
    assert all(s.total is None for s in report.weekly_trend.by_level)
    html = render(report, ReportFormat.HTML)
    assert re.search(r'id="kpi-flagged"><b>no data</b>', html)
    assert "**no data** risk-flagged tickets" in render(report, ReportFormat.MARKDOWN)


def test_weeks_that_have_not_begun_are_not_drawn() -> None:
    # Generated on Wednesday 9 December: W49 (its December days) is over, W50 is under way,
    # W51-W53 have not begun.
    now = datetime(2026, 12, 9, 12, tzinfo=UTC)
    report = monthly_report(
        december_inputs(datetime(2026, 10, 1, tzinfo=UTC), 4, 9),
        DECEMBER,
        previous_month(DECEMBER),
        now,
    )
    weeks = report.weekly_trend.weeks
    assert [(w.week, w.coverage) for w in weeks] == [
        ("2026-W49", "complete"),
        ("2026-W50", "partial"),
        ("2026-W51", "future"),
        ("2026-W52", "future"),
        ("2026-W53", "future"),
    ]
    critical = report.weekly_trend.by_level[0]
    drawn = {p.week: (p.tickets, p.ci_low is not None) for p in critical.weeks}
    assert drawn == {
        "2026-W49": (0, True),
        "2026-W50": (4, True),
        "2026-W51": (None, False),
        "2026-W52": (None, False),
        "2026-W53": (None, False),
    }
    assert critical.total == 4
    # December's rate is over its 8.5 days so far.
    assert report.month_over_month.total.current_per_day == round(4 / 8.5, 4)
    assert any("not over yet" in note for note in report.notes)

    html = render(report, ReportFormat.HTML)
    chart = html[html.index("<svg") : html.index("</svg>")]
    bars = re.findall(r"<rect [^>]*><title>([^<]*)</title>", chart)
    assert bars, "the weeks that happened are drawn"
    assert not [b for b in bars if re.search(r"W5[123]", b)]
    assert chart.count(">not begun</text>") == 3
    row = re.search(r'<tr data-trend="level-5">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1])]
    assert cells[3:6] == ["not begun"] * 3
    assert "| Critical (Level 5) | 0 [0.0–3.7] | 4 [1.1–10.2] | not begun | not begun |" in (
        render(report, ReportFormat.MARKDOWN)
    )
    rows = list(csv.DictReader(io.StringIO(render(report, ReportFormat.CSV))))
    w52 = {
        r["field"]: r["value"]
        for r in rows
        if r["section"] == "weekly_trend.by_level[5].weeks" and r["item"] == "2026-W52"
    }
    assert w52 == {"week": "2026-W52", "coverage": "future", "tickets": "", "ci_low": "",
                   "ci_high": ""}  # fmt: skip


def test_a_weekly_summary_of_a_week_not_begun_or_before_the_data_says_so() -> None:
    week = parse_week("2026-W51")
    empty = WeeklyInputs([], [], [], RiskList(0), RiskList(0), RiskList(0), week.start)
    before = weekly_report(empty, week, week.start - timedelta(days=2))
    assert before.period.coverage == "future"
    assert before.notes == [f"2026-W51 has not begun at {(week.start - timedelta(days=2)).isoformat()}: there is nothing to report."]  # fmt: skip
    no_data = weekly_report(
        WeeklyInputs([], [], [], RiskList(0), RiskList(0), RiskList(0), week.end),
        week,
        week.end + timedelta(days=1),
    )
    assert no_data.period.coverage == "no_data"
    assert no_data.notes[0].startswith("No data for 2026-W51")
    assert "this summary is empty" not in " ".join(no_data.notes)
    assert re.search(r'id="kpi-flagged"><b>no data</b>', render(no_data, ReportFormat.HTML))
    assert "**no data** risk-flagged tickets" in render(no_data, ReportFormat.MARKDOWN)
    assert re.search(r'id="kpi-flagged"><b>not begun</b>', render(before, ReportFormat.HTML))


def test_change_item_without_a_month_of_data_runs_no_test() -> None:
    item = change_item("total", "All", 30, None, 30.0, 0.0, "2026-11 (no data): not tested")
    assert (item.tested, item.p_value, item.significant) == (False, None, False)
    assert item.note == "2026-11 (no data): not tested"
