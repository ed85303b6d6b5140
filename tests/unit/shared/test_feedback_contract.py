"""The risk-feedback payload: what a person's judgement of a detection must say."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from riskrelay.shared.events import (
    FeedbackKind,
    Indicator,
    RiskFeedback,
    RiskFeedbackEvent,
    RiskLevel,
    decode_event,
)
from riskrelay.shared.topics import ALL_TOPICS, RISK_FEEDBACK

pytestmark = pytest.mark.unit

GIVEN_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def feedback(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kind": "not_a_risk",
        "ticket_id": "T-1",
        "given_by": "lead@example.org",
        "role": "team_lead",
        "given_at": GIVEN_AT.isoformat(),
        "indicators": ["security_issue"],
        "texts": [
            {"text": "my card was [CARD] declined", "source": "sentence",
             "indicator": "security_issue"},
        ],
    }  # fmt: skip
    return {**base, **fields}


def envelope(data: dict[str, Any]) -> str:
    return RiskFeedbackEvent.model_validate(
        {"id": "fb-1", "source": "riskrelay/console", "time": GIVEN_AT.isoformat(), "data": data}
    ).model_dump_json()


def test_a_not_a_risk_feedback_decodes_through_the_event_union() -> None:
    event = decode_event(envelope(feedback()))
    assert isinstance(event, RiskFeedbackEvent)
    assert event.data.kind is FeedbackKind.NOT_A_RISK
    assert event.data.texts[0].indicator is Indicator.SECURITY_ISSUE


def test_the_topic_is_registered_with_its_envelope_and_dead_letter_twin() -> None:
    assert RISK_FEEDBACK.envelope is RiskFeedbackEvent
    assert {spec.name for spec in ALL_TOPICS} >= {"risk-feedback", "risk-feedback.dlq"}


def test_wrong_level_carries_the_right_level() -> None:
    parsed = RiskFeedback.model_validate(feedback(kind="wrong_level", correct_level=2, level=4))
    assert parsed.correct_level is RiskLevel.LOW
    with pytest.raises(ValidationError, match="correct_level is required"):
        RiskFeedback.model_validate(feedback(kind="wrong_level"))
    with pytest.raises(ValidationError, match="correct_level is required"):
        RiskFeedback.model_validate(feedback(correct_level=2))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ticket_id": None}, "names a ticket_id, a risk_id or both"),
        ({"kind": "missed_risk", "ticket_id": None, "risk_id": "R-1"}, "names the ticket"),
        ({"kind": "missed_risk", "indicators": ["data_concern", "security_issue"]}, "at most one"),
        ({"indicators": ["data_concern", "data_concern"]}, "listed once"),
        ({"kind": "unsure"}, "kind"),
        ({"given_by": ""}, "given_by"),
        ({"given_at": "2026-11-20T09:30:00"}, "timezone"),
        ({"texts": [{"text": "", "source": "summary"}]}, "texts"),
        ({"ticket_text": "unredacted"}, "Extra inputs"),
    ],
)
def test_inconsistent_feedback_is_refused_with_the_reason(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        RiskFeedback.model_validate(feedback(**fields))


def test_a_missed_risk_may_name_no_indicator() -> None:
    parsed = RiskFeedback.model_validate(
        feedback(kind="missed_risk", indicators=[], texts=[], note="customer lost money")
    )
    assert parsed.indicators == []
    assert parsed.ticket_id == "T-1"
