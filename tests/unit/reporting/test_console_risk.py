"""The risk page's pure parts: distinct detections and each ticket's indicators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from riskrelay.reporting.console_risk import detections_summary, ticket_indicators
from riskrelay.reporting.console_store import TicketFlag

AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def detection(indicator: str, rule_id: str, evidence: str, confidence: float) -> dict[str, Any]:
    return {
        "indicator": indicator,
        "rule_id": rule_id,
        "evidence": evidence,
        "confidence": confidence,
        "explanation": {"score": confidence, "threshold": 0.6}
        if rule_id.startswith("model.")
        else None,
    }


def test_one_row_per_distinct_detection_counting_tickets_and_keeping_the_highest_confidence() -> (
    None
):
    leak = "I see [NAME]'s invoice"
    flags = [
        TicketFlag("T-1", AT, [detection("data_concern", "model.data_concern", leak, 0.7)]),
        TicketFlag("T-2", AT, [detection("data_concern", "model.data_concern", leak, 0.9)]),
        TicketFlag("T-2", AT, [detection("compliance_question", "compliance.gdpr", "GDPR", 0.8)]),
    ]
    evidence = [detection("severe_impact", "amount.over_threshold", "EUR 12,000", 0.95)]
    rows = detections_summary(evidence, flags)
    assert [(r.rule_id, len(r.tickets)) for r in rows] == [
        ("model.data_concern", 2),
        ("compliance.gdpr", 1),
        ("amount.over_threshold", 0),
    ]
    assert rows[0].confidence == 0.9
    assert rows[0].learned
    assert not rows[1].learned


def test_the_classifications_own_evidence_shows_when_no_flag_was_kept() -> None:
    rows = detections_summary([detection("data_concern", "data.other", "x", 0.5)], [])
    assert [r.rule_id for r in rows] == ["data.other"]
    assert detections_summary([], []) == []


def test_each_tickets_indicators_over_all_its_flags_in_order_first_seen() -> None:
    flags = [
        TicketFlag("T-1", AT, [detection("security_issue", "r1", "a", 0.5)]),
        TicketFlag(
            "T-1",
            AT,
            [
                detection("data_concern", "r2", "b", 0.5),
                detection("security_issue", "r3", "c", 0.5),
            ],
        ),
        TicketFlag("T-2", AT, []),
    ]
    assert ticket_indicators(flags) == {"T-1": ["security_issue", "data_concern"], "T-2": []}
