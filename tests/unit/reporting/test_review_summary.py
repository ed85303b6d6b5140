"""The Weekly Risk Summary carries the review's overdue items and what the review decided."""

from __future__ import annotations

from datetime import datetime, timedelta

from riskrelay.reporting.model import (
    CountRow,
    ReviewDecisionRow,
    RiskItem,
    RiskList,
    WeeklyInputs,
)
from riskrelay.reporting.periods import parse_week
from riskrelay.reporting.render import ReportFormat, render
from riskrelay.reporting.reports import weekly_report

WEEK = parse_week("2026-W47")
NOW = WEEK.end + timedelta(hours=7)


def decision(decision_id: str, at: datetime, decision: str, **values: object) -> ReviewDecisionRow:
    fields: dict[str, object] = {
        "decision_id": decision_id,
        "risk_id": "R-1",
        "title": "Refunds | delayed",
        "level": 2,
        "agenda": "level_1_2",
        "decision": decision,
        "detail": None,
        "note": None,
        "decided_by": "sam@example.org",
        "decided_by_name": "Sam Manager",
        "decided_at": at,
    }
    fields.update(values)
    return ReviewDecisionRow(**fields)  # type: ignore[arg-type]


def test_the_summary_lists_overdue_reviews_and_the_decisions_in_the_order_taken() -> None:
    overdue = RiskItem(
        risk_id="R-9",
        level=4,
        category="operational",
        title="Stuck payouts",
        status="monitoring",
        owner="rita@example.org",
        first_reported_at=WEEK.start - timedelta(days=30),
        ticket_count=7,
        next_review_at=WEEK.start + timedelta(days=2),
    )
    later = decision("b", WEEK.start + timedelta(days=3), "level_changed", detail="level 2 → 3")
    earlier = decision("a", WEEK.start + timedelta(days=1), "monitored", note="watch | refunds")
    report = weekly_report(
        WeeklyInputs(
            [CountRow("total", None, 0)],
            [],
            [],
            RiskList(0),
            RiskList(0),
            RiskList(0),
            WEEK.start,
            agenda_overdue=RiskList(1, [overdue]),
            review_decisions=[later, earlier],
        ),
        WEEK,
        NOW,
    )
    listing = report.weekly_review_agenda.overdue_reviews
    assert [item.risk_id for item in listing.items] == ["R-9"]
    assert listing.items[0].review_overdue
    assert [d.decision for d in report.review_decisions] == ["monitored", "level_changed"]
    assert report.review_decisions[0].label == "Reviewed: keep monitoring"
    assert report.review_decisions[1].label == "Level changed"

    markdown = render(report, ReportFormat.MARKDOWN)
    section = markdown.split("## Decisions of the Weekly Risk Review")[1]
    assert "Sam Manager (sam@example.org)" in section
    assert "watch \\| refunds" in section
    assert "Level changed (level 2 → 3)" in section
    assert "### Overdue reviews" in markdown
    html = render(report, ReportFormat.HTML)
    assert html.count('data-decision="R-1"') == 2
    assert "none recorded" not in html
    csv = render(report, ReportFormat.CSV)
    assert "review_decisions" in csv
    assert "level 2 → 3" in csv


def test_a_summary_without_decisions_says_none_were_recorded() -> None:
    report = weekly_report(
        WeeklyInputs(
            [CountRow("total", None, 0)], [], [], RiskList(0), RiskList(0), RiskList(0), None
        ),
        WEEK,
        NOW,
    )
    assert report.review_decisions == []
    assert "none recorded" in render(report, ReportFormat.HTML)
    assert "| none recorded |" in render(report, ReportFormat.MARKDOWN)
