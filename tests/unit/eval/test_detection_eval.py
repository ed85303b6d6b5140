"""The detection figures count what they say they count."""

from __future__ import annotations

import pytest

from riskrelay.detection_eval import Message, as_events, clinc_figures, heldout_figures
from riskrelay.offline import TicketOutcome

pytestmark = pytest.mark.unit


def _outcome(flagged: bool, *indicators: str) -> TicketOutcome:
    return TicketOutcome(
        ticket_id="t",
        flagged=flagged,
        level=3 if flagged else None,
        category=None,
        risk_id=None,
        indicators=list(indicators),
        explanation="",
    )


def test_clinc_recall_and_false_flags() -> None:
    messages = [
        Message("my card was stolen", "report_lost_card"),
        Message("fraud on my card", "report_fraud"),
        Message("what is my balance", "balance"),
        Message("book a table", "restaurant_reservation"),
    ]
    outcomes = [_outcome(True), _outcome(False), _outcome(True), _outcome(False)]
    figures = clinc_figures(messages, outcomes)
    assert figures["recall"] == 0.5
    assert figures["false_flag_rate"] == 0.5
    assert figures["false_flags_by_intent"] == {"balance": 1}


def test_heldout_per_indicator_figures() -> None:
    messages = [
        Message("a", "security_issue"),
        Message("b", "security_issue"),
        Message("c", "data_concern"),
        Message("d", "none"),
        Message("e", "none"),
    ]
    outcomes = [
        _outcome(True, "security_issue"),
        _outcome(True, "data_concern"),
        _outcome(False),
        _outcome(True, "security_issue"),
        _outcome(False),
    ]
    figures = heldout_figures(messages, outcomes)
    security = figures["indicators"]["security_issue"]
    assert security["recall_flagged"] == 1.0
    assert security["recall_indicator"] == 0.5
    assert security["false_flag_rate"] == 0.5
    assert figures["recall_flagged"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["false_flag_rate"] == 0.5


def test_messages_become_valid_events_two_hours_apart() -> None:
    lines = as_events([Message("one", "x"), Message("two", "y")], "p")
    assert all(line.event is not None for line in lines)
    first, second = (line.event for line in lines)
    assert first is not None
    assert second is not None
    assert (second.time - first.time).total_seconds() == 7200
    assert first.data.customer.id != second.data.customer.id
