"""The console's feedback: who may give which, and what a feedback carries (only the redacted
texts of the read model, the person, the levels)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from riskrelay.reporting.console_feedback import (
    FeedbackRefusedError,
    detection_texts,
    feedback_event,
    kinds_allowed,
    page_values,
    risk_feedback,
    ticket_feedback,
)
from riskrelay.reporting.console_store import RiskFacts
from riskrelay.reporting.feedback_store import TicketFacts
from riskrelay.shared.auth import Principal
from riskrelay.shared.events import (
    FeedbackKind,
    FeedbackTextSource,
    Indicator,
    RiskLevel,
    Role,
    decode_event,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LEAD = Principal("u-1", Role.TEAM_LEAD, name="Lee", email="lead@example.org")
AGENT = Principal("u-2", Role.AGENT, name="Ann", email="agent@example.org")
SENTENCE = "my card [CARD] was charged by someone else"


def detection(indicator: str, rule_id: str, evidence: str) -> dict[str, Any]:
    return {"indicator": indicator, "rule_id": rule_id, "evidence": evidence, "confidence": 0.8}


FLAGGED = TicketFacts(
    ticket_id="T-1",
    seen=True,
    flagged=True,
    redacted_subject="Charge I did not make",
    detections=[
        detection("security_issue", "model.security_issue", SENTENCE),
        detection("security_issue", "model.security_issue", SENTENCE),
        detection("compliance_question", "compliance.gdpr", "GDPR"),
    ],
    risk_id="R-1",
    risk_title="Card fraud",
    risk_level=4,
)
UNFLAGGED = TicketFacts(ticket_id="T-9", seen=True, flagged=False, redacted_subject=None)


def test_not_a_risk_on_a_ticket_carries_its_redacted_evidence_and_indicators() -> None:
    feedback = ticket_feedback(FeedbackKind.NOT_A_RISK, FLAGGED, LEAD, NOW, note="a refund")
    assert feedback.indicators == [Indicator.SECURITY_ISSUE, Indicator.COMPLIANCE_QUESTION]
    assert [(t.text, t.source, t.indicator) for t in feedback.texts] == [
        (SENTENCE, FeedbackTextSource.SENTENCE, Indicator.SECURITY_ISSUE),
        ("GDPR", FeedbackTextSource.MATCH, Indicator.COMPLIANCE_QUESTION),
        ("Charge I did not make", FeedbackTextSource.SUBJECT, None),
    ]
    assert (feedback.given_by, feedback.role, feedback.given_at) == (
        "lead@example.org",
        Role.TEAM_LEAD,
        NOW,
    )
    assert (feedback.ticket_id, feedback.risk_id, feedback.level) == ("T-1", "R-1", 4)


def test_wrong_level_needs_a_different_level() -> None:
    feedback = ticket_feedback(
        FeedbackKind.WRONG_LEVEL, FLAGGED, LEAD, NOW, correct_level=RiskLevel.LOW
    )
    assert (feedback.level, feedback.correct_level) == (RiskLevel.HIGH, RiskLevel.LOW)
    with pytest.raises(FeedbackRefusedError, match="choose the level"):
        ticket_feedback(FeedbackKind.WRONG_LEVEL, FLAGGED, LEAD, NOW)
    with pytest.raises(FeedbackRefusedError, match="already at level 4"):
        ticket_feedback(FeedbackKind.WRONG_LEVEL, FLAGGED, LEAD, NOW, correct_level=RiskLevel(4))


def test_an_unflagged_ticket_can_only_be_reported_as_a_missed_risk() -> None:
    with pytest.raises(FeedbackRefusedError, match="never flagged"):
        ticket_feedback(FeedbackKind.NOT_A_RISK, UNFLAGGED, LEAD, NOW)
    missed = ticket_feedback(
        FeedbackKind.MISSED_RISK, UNFLAGGED, AGENT, NOW, named_indicator=Indicator.DATA_CONCERN
    )
    assert missed.indicators == [Indicator.DATA_CONCERN]
    assert missed.texts == []  # reporting holds no text of it; intake adds what it keeps
    assert missed.role is Role.AGENT


def test_agents_report_misses_but_do_not_judge_detections() -> None:
    assert kinds_allowed(AGENT) == {FeedbackKind.MISSED_RISK}
    assert kinds_allowed(LEAD) == set(FeedbackKind)
    with pytest.raises(FeedbackRefusedError, match="may not report not a risk"):
        ticket_feedback(FeedbackKind.NOT_A_RISK, FLAGGED, AGENT, NOW)


def test_feedback_on_a_risk_carries_its_summary_and_evidence() -> None:
    facts = RiskFacts(
        risk_id="R-1", title="Card fraud", level=4, category="data_security_privacy",
        cluster_id=None, ticket_count=2, distinct_customers=2, first_reported_at=NOW,
        last_reported_at=NOW, classified_at=NOW, redacted_summary="Two customers see charges",
        policy_version="p1", rules_fired=[], override=None,
        evidence=[detection("security_issue", "model.security_issue", SENTENCE)],
    )  # fmt: skip
    feedback = risk_feedback(FeedbackKind.NOT_A_RISK, facts, LEAD, NOW)
    assert feedback.ticket_id is None
    assert feedback.risk_id == "R-1"
    assert [t.source for t in feedback.texts] == [
        FeedbackTextSource.SUMMARY,
        FeedbackTextSource.SENTENCE,
    ]
    with pytest.raises(FeedbackRefusedError, match="reported on the ticket"):
        risk_feedback(FeedbackKind.MISSED_RISK, facts, LEAD, NOW)


def test_the_event_round_trips_and_names_its_subject() -> None:
    event = feedback_event(ticket_feedback(FeedbackKind.NOT_A_RISK, FLAGGED, LEAD, NOW))
    decoded = decode_event(event.to_json_bytes())
    assert decoded == event
    assert (event.subject, event.correlationid, event.time) == ("T-1", "T-1", NOW)


def test_evidence_texts_are_trimmed_and_empty_ones_dropped() -> None:
    texts = detection_texts([detection("data_concern", "r", " "), detection("x", "r", "y" * 3000)])
    assert [(len(t.text), t.indicator) for t in texts] == [(2000, None)]


def render(principal: Principal, **values: Any) -> str:
    from riskrelay.reporting.render import environment

    return (
        environment()
        .get_template("console_feedback.html.j2")
        .render(
            csrf_field="csrf_token",
            csrf_token="tok",
            person=principal,
            **page_values(principal, **values),
        )
    )


def test_a_flagged_tickets_page_offers_every_form_to_a_reviewer_and_only_the_miss_to_an_agent() -> (
    None
):
    for_lead = render(LEAD, ticket=FLAGGED, ticket_indicators=["security_issue"])
    for kind in ("not_a_risk", "wrong_level", "missed_risk"):
        assert f'name="kind" value="{kind}"' in for_lead
    assert for_lead.count('<form method="post" action="/console/feedback"') == 3
    # Each of them, and the header's sign-out form, carries the CSRF token.
    assert for_lead.count('name="csrf_token" value="tok"') == 4
    # The current level (4) is not offered as the right one.
    assert '<option value="4">' not in for_lead
    for_agent = render(AGENT, ticket=FLAGGED, ticket_indicators=["security_issue"])
    assert 'value="missed_risk"' in for_agent
    assert 'value="not_a_risk"' not in for_agent


def test_an_unflagged_tickets_page_offers_only_the_missed_risk() -> None:
    page = render(LEAD, ticket=UNFLAGGED, ticket_indicators=[])
    assert 'value="missed_risk"' in page
    assert 'value="not_a_risk"' not in page
    assert "never flagged" in page
