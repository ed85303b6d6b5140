"""The evaluation's arithmetic: counts, ratios, level agreement, baselines and label joins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from riskrelay.evaluation import (
    Counts,
    Expected,
    LabelError,
    Pair,
    category_accuracy,
    expected_per_ticket,
    flag_counts,
    indicator_counts,
    level_accuracy,
    level_confusion,
    micro_counts,
    parse_label,
    regressions,
    severity,
    within_one,
)
from riskrelay.offline import InputLine, TicketOutcome
from riskrelay.shared.events import TicketEvent

pytestmark = pytest.mark.unit


def expected(
    level: int | None, *indicators: str, category: str | None = None, ticket: str = "T"
) -> Expected:
    return Expected(ticket, frozenset(indicators), level, category or ("ops" if level else None))


def predicted(level: int | None, *indicators: str, category: str | None = None) -> TicketOutcome:
    return TicketOutcome(
        ticket_id="T",
        flagged=level is not None,
        level=level,
        category=category or ("ops" if level else None),
        risk_id="risk-1" if level else None,
        indicators=list(indicators),
        explanation="",
    )


def test_counts_ratios() -> None:
    counts = Counts(tp=3, fp=1, fn=2)
    assert counts.precision == pytest.approx(0.75)
    assert counts.recall == pytest.approx(0.6)
    assert counts.f1 == pytest.approx(2 * 0.75 * 0.6 / (0.75 + 0.6))
    assert counts.support == 5


def test_counts_undefined_ratios_are_none_not_zero() -> None:
    nothing = Counts()
    assert (nothing.precision, nothing.recall, nothing.f1) == (None, None, None)
    never_predicted = Counts(tp=0, fp=0, fn=4)
    assert never_predicted.precision is None
    assert never_predicted.recall == 0.0
    assert never_predicted.f1 == 0.0
    only_false_alarms = Counts(tp=0, fp=2, fn=0)
    assert (only_false_alarms.precision, only_false_alarms.recall) == (0.0, None)
    assert only_false_alarms.f1 == 0.0


def test_counts_add() -> None:
    counts = Counts().add(True, True).add(True, False).add(False, True).add(False, False)
    assert (counts.tp, counts.fp, counts.fn) == (1, 1, 1)


def test_indicator_flag_and_micro_counts() -> None:
    pairs = [
        Pair(expected(5, "data_concern"), predicted(5, "data_concern", "security_issue")),
        Pair(expected(3, "reputation_threat"), predicted(None)),
        Pair(expected(None), predicted(4, "multiple_similar_reports")),
        Pair(expected(None), predicted(None)),
    ]
    per_indicator = indicator_counts(pairs)
    assert per_indicator["data_concern"] == Counts(1, 0, 0)
    assert per_indicator["security_issue"] == Counts(0, 1, 0)
    assert per_indicator["reputation_threat"] == Counts(0, 0, 1)
    assert per_indicator["multiple_similar_reports"] == Counts(0, 1, 0)
    assert per_indicator["unusual_pattern"] == Counts()
    assert micro_counts(per_indicator) == Counts(1, 2, 1)
    assert flag_counts(pairs) == Counts(1, 1, 1)


def test_within_one_never_bridges_flagged_and_unflagged() -> None:
    assert within_one(4, 5)
    assert within_one(3, 3)
    assert within_one(None, None)
    assert not within_one(3, 5)
    assert not within_one(1, None)
    assert not within_one(None, 1)


def test_level_accuracy_and_confusion() -> None:
    pairs = [
        Pair(expected(5, "data_concern"), predicted(5, "data_concern")),
        Pair(expected(4, "security_issue"), predicted(5, "security_issue")),
        Pair(expected(2, "compliance_question"), predicted(4, "compliance_question")),
        Pair(expected(None), predicted(None)),
        Pair(expected(3, "severe_impact"), predicted(None)),
    ]
    exact, near = level_accuracy(pairs)
    assert exact == pytest.approx(2 / 5)
    assert near == pytest.approx(3 / 5)
    assert level_accuracy([]) == (None, None)
    matrix = level_confusion(pairs)
    # rows/columns: none, 1, 2, 3, 4, 5
    assert matrix[0][0] == 1
    assert matrix[5][5] == 1
    assert matrix[4][5] == 1
    assert matrix[2][4] == 1
    assert matrix[3][0] == 1
    assert sum(map(sum, matrix)) == len(pairs)


def test_category_accuracy_only_where_both_flagged() -> None:
    pairs = [
        Pair(expected(5, "data_concern", category="dsp"), predicted(5, category="dsp")),
        Pair(expected(4, "severe_impact", category="safety"), predicted(4, category="ops")),
        Pair(expected(3, "severe_impact", category="ops"), predicted(None)),
    ]
    assert category_accuracy(pairs) == (0.5, 2)
    assert category_accuracy([]) == (None, 0)


def test_severity_orders_by_level_distance_then_indicator_differences() -> None:
    missed_breach = Pair(expected(5, "data_concern"), predicted(None))
    off_by_one = Pair(expected(4, "security_issue"), predicted(5, "security_issue", "data_concern"))
    assert severity(missed_breach) == (5, 1)
    assert severity(off_by_one) == (1, 1)
    assert severity(missed_breach) > severity(off_by_one)


def report(f1: float | None, exact: float) -> dict[str, Any]:
    return {
        "indicators": {"data_concern": {"f1": f1}},
        "level": {"exact": exact, "within_one": 0.9},
    }


def test_regressions_flag_drops_beyond_the_tolerance() -> None:
    baseline = {
        "tolerance": 0.02,
        "indicators_f1": {"data_concern": 0.50},
        "level": {"exact": 0.60, "within_one": 0.90},
    }
    assert regressions(report(0.50, 0.60), baseline) == []
    assert regressions(report(0.49, 0.585), baseline) == []  # within the tolerance
    assert regressions(report(0.70, 0.80), baseline) == []  # improvements are fine
    found = regressions(report(0.47, 0.55), baseline)
    assert len(found) == 2
    assert found[0].startswith("data_concern F1")
    assert found[1].startswith("level exact")
    assert regressions(report(None, 0.60), baseline) == [
        "data_concern F1: n/a < baseline 0.5000 - 0.02"
    ]


def test_parse_label_validates() -> None:
    row = {"event_id": "e", "ticket_id": "T", "indicators": ["data_concern"], "level": 5}
    assert parse_label({**row, "category": "data_security_privacy"}).level == 5
    with pytest.raises(LabelError, match="unknown indicators"):
        parse_label({**row, "indicators": ["data_leak"]})
    with pytest.raises(LabelError, match="1-5"):
        parse_label({**row, "level": 7})
    with pytest.raises(LabelError, match="exactly when"):
        parse_label({**row, "indicators": []})


def _event(event_id: str, ticket: str, minutes: int) -> TicketEvent:
    return TicketEvent.model_validate(
        {
            "id": event_id,
            "source": "test://x",
            "type": "riskrelay.ticket.created.v1",
            "time": datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=minutes),
            "data": {
                "ticket_id": ticket,
                "subject": "s",
                "description": "d",
                "channel": "email",
                "customer": {"id": "c", "segment": "consumer"},
                "product": "p",
                "priority": "normal",
            },
        }
    )


def test_each_ticket_is_scored_against_its_latest_event_label() -> None:
    # The comment comes first in the file but happened later: its label wins.
    inputs = [
        InputLine(1, _event("e2", "T-1", minutes=30)),
        InputLine(2, _event("e1", "T-1", minutes=0)),
    ]
    labels = {
        "e1": Expected("T-1", frozenset(), None, None),
        "e2": Expected("T-1", frozenset({"reputation_threat"}), 3, "reputation"),
    }
    assert expected_per_ticket(inputs, labels)["T-1"].level == 3
    with pytest.raises(LabelError, match="no label"):
        expected_per_ticket(inputs, {"e1": labels["e1"]})
