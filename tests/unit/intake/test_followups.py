"""Follow-ups emit a new flag only when they add indicators (or raise the agent's Risk Flag)."""

from __future__ import annotations

import pytest

from riskrelay.intake.followups import decide_follow_up, ordered
from riskrelay.shared.events import Indicator, RiskLevel

pytestmark = pytest.mark.unit

DATA = Indicator.DATA_CONCERN
SECURITY = Indicator.SECURITY_ISSUE
FLAG = Indicator.AGENT_RISK_FLAG


def test_first_flag_is_all_new() -> None:
    decision = decide_follow_up([SECURITY, DATA], [])
    assert decision.emit
    assert decision.new_indicators == [DATA, SECURITY]


def test_repeated_indicators_do_not_emit() -> None:
    decision = decide_follow_up([DATA], [DATA, SECURITY])
    assert not decision.emit
    assert decision.new_indicators == []
    assert decision.all_indicators == [DATA, SECURITY]


def test_an_added_indicator_emits_only_that_one_as_new() -> None:
    decision = decide_follow_up([DATA, Indicator.COMPLIANCE_QUESTION], [DATA])
    assert decision.emit
    assert decision.new_indicators == [Indicator.COMPLIANCE_QUESTION]
    assert decision.all_indicators == [DATA, Indicator.COMPLIANCE_QUESTION]


def test_nothing_detected_on_a_follow_up_does_not_emit() -> None:
    assert not decide_follow_up([], [DATA]).emit
    assert not decide_follow_up([], []).emit


def test_raised_risk_flag_level_emits_even_without_new_indicators() -> None:
    raised = decide_follow_up(
        [FLAG],
        [FLAG],
        current_risk_flag_level=RiskLevel.CRITICAL,
        known_risk_flag_level=RiskLevel.MEDIUM,
    )
    assert raised.emit
    assert raised.risk_flag_raised
    assert raised.new_indicators == []
    same = decide_follow_up(
        [FLAG],
        [FLAG],
        current_risk_flag_level=RiskLevel.MEDIUM,
        known_risk_flag_level=RiskLevel.MEDIUM,
    )
    assert not same.emit
    lowered = decide_follow_up(
        [FLAG],
        [FLAG],
        current_risk_flag_level=RiskLevel.LOW,
        known_risk_flag_level=RiskLevel.MEDIUM,
    )
    assert not lowered.emit


def test_ordered_follows_the_protocol_order_and_deduplicates() -> None:
    assert ordered([FLAG, DATA, Indicator.MULTIPLE_SIMILAR_REPORTS, DATA]) == [
        Indicator.MULTIPLE_SIMILAR_REPORTS,
        DATA,
        FLAG,
    ]
