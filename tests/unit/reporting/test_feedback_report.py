"""The monthly report's reviewer judgement: precision and misses from people's feedback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from riskrelay.reporting.feedback_report import reviewer_judgement
from riskrelay.reporting.model import FeedbackInputs, MissedRiskRow

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 19, 10, 0, tzinfo=UTC)


def inputs(flagged: int, not_a_risk: int, missed: int) -> FeedbackInputs:
    rows = [MissedRiskRow(f"T-{n}", None, AT, "agent") for n in range(min(missed, 2))]
    return FeedbackInputs(
        flagged=flagged,
        reviewed=not_a_risk + 1,
        not_a_risk=not_a_risk,
        wrong_level=2,
        level_too_high=1,
        level_too_low=1,
        missed_total=missed,
        missed=rows,
    )


def test_precision_counts_unmarked_flags_as_right_and_carries_wilsons_interval() -> None:
    judged = reviewer_judgement(inputs(flagged=10, not_a_risk=2, missed=1))
    assert judged.precision == 0.8
    assert judged.precision_ci_low == pytest.approx(0.4902, abs=1e-4)
    assert judged.precision_ci_high == pytest.approx(0.9433, abs=1e-4)
    # One miss against eight flags judged right.
    assert judged.missed_share == pytest.approx(1 / 9, abs=1e-4)
    assert (judged.marked_not_a_risk, judged.missed_risks, judged.shown) == (2, 1, 1)


def test_a_month_without_flags_or_misses_has_no_rates() -> None:
    judged = reviewer_judgement(inputs(flagged=0, not_a_risk=0, missed=0))
    assert judged.precision is None
    assert judged.precision_ci_low is None
    assert judged.missed_share is None


def test_the_list_of_misses_may_be_shorter_than_their_total() -> None:
    judged = reviewer_judgement(inputs(flagged=3, not_a_risk=3, missed=5))
    assert judged.precision == 0.0
    assert (judged.missed_risks, judged.shown) == (5, 2)
    assert judged.missed_share == 1.0
