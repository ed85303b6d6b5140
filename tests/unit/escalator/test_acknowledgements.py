"""What acknowledgements and Level 3 review decisions do to a plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from riskrelay.escalator.calendar import BusinessCalendar
from riskrelay.escalator.domain import (
    AckStatus,
    EscalationPlan,
    StepStatus,
    apply_acknowledgement,
    build_plan,
    find_step,
    plan_timers,
)
from riskrelay.escalator.policy import EscalationPolicy, StepKind
from riskrelay.shared.events import EscalationReason, ReviewDecision, Role

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
CONFIRMED = ReviewDecision.CONFIRMED
NOT_CONFIRMED = ReviewDecision.NOT_CONFIRMED


def plan_for(
    level: int, flagged_at: datetime, policy: EscalationPolicy, calendar: BusinessCalendar
) -> EscalationPlan:
    return build_plan(
        risk_id="risk-7", level=level, flagged_at=flagged_at, policy=policy, calendar=calendar
    )


@pytest.fixture
def critical(policy: EscalationPolicy, calendar: BusinessCalendar) -> EscalationPlan:
    return plan_for(5, datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN), policy, calendar)


@pytest.fixture
def medium(policy: EscalationPolicy, calendar: BusinessCalendar) -> EscalationPlan:
    # Wednesday 15:00: review due Thursday 15:00, weekly review Monday 16th 10:00.
    return plan_for(3, datetime(2026, 3, 11, 15, 0, tzinfo=BERLIN), policy, calendar)


def keys_of_step(plan: EscalationPlan, step: int) -> set[str]:
    return {t.key for t in plan_timers(plan) if t.step == step}


def test_on_time_ack_closes_the_step_and_cancels_its_timers(critical: EscalationPlan) -> None:
    at = datetime(2026, 3, 10, 12, 10, tzinfo=BERLIN)
    outcome = apply_acknowledgement(critical, 0, Role.TEAM_LEAD, None, at)
    assert outcome.status is AckStatus.ACCEPTED
    assert not outcome.late
    assert outcome.late_by is None
    assert set(outcome.cancel_timer_keys) == keys_of_step(critical, 0)
    assert len(outcome.cancel_timer_keys) == 20  # including the director's breach and reminders
    step = outcome.plan.steps[0]
    assert (step.status, step.closed_at, step.acknowledged_role) == (
        StepStatus.ACKNOWLEDGED,
        at,
        Role.TEAM_LEAD,
    )
    remaining = plan_timers(outcome.plan)
    assert {t.step for t in remaining} == {1, 2}
    assert not {t.key for t in remaining} & set(outcome.cancel_timer_keys)
    assert outcome.added_steps == ()
    assert outcome.new_timers == ()
    assert critical.steps[0].status is StepStatus.OPEN  # the input plan is unchanged


def test_late_ack_is_recorded_as_late(critical: EscalationPlan) -> None:
    outcome = apply_acknowledgement(
        critical, 1, Role.SUPPORT_MANAGER, None, datetime(2026, 3, 10, 12, 20, tzinfo=BERLIN)
    )
    assert outcome.status is AckStatus.ACCEPTED
    assert outcome.late
    assert outcome.late_by == timedelta(minutes=5)


def test_ack_exactly_at_the_deadline_is_on_time(critical: EscalationPlan) -> None:
    outcome = apply_acknowledgement(
        critical, 2, Role.RISK_MANAGEMENT, None, datetime(2026, 3, 10, 12, 15, tzinfo=BERLIN)
    )
    assert outcome.status is AckStatus.ACCEPTED
    assert not outcome.late


def test_repeated_ack_changes_nothing(critical: EscalationPlan) -> None:
    first = apply_acknowledgement(
        critical, 0, Role.TEAM_LEAD, None, datetime(2026, 3, 10, 12, 5, tzinfo=BERLIN)
    )
    again = apply_acknowledgement(
        first.plan, 0, Role.TEAM_LEAD, None, datetime(2026, 3, 10, 12, 30, tzinfo=BERLIN)
    )
    assert again.status is AckStatus.ALREADY_CLOSED
    assert again.plan == first.plan
    assert again.cancel_timer_keys == ()
    assert not again.late
    assert again.plan.steps[0].closed_at == datetime(2026, 3, 10, 12, 5, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("role", "accepted"),
    [
        (Role.TEAM_LEAD, True),
        (Role.SUPPORT_MANAGER, True),  # a higher support role covers
        (Role.SUPPORT_DIRECTOR, True),  # the role the breach reaches
        (Role.ADMIN, True),
        (Role.AGENT, False),
        (Role.ANALYST, False),
        (Role.RISK_MANAGEMENT, False),
    ],
)
def test_who_may_acknowledge_a_team_lead_step(
    critical: EscalationPlan, role: Role, accepted: bool
) -> None:
    outcome = apply_acknowledgement(
        critical, 0, role, None, datetime(2026, 3, 10, 12, 5, tzinfo=BERLIN)
    )
    assert (outcome.status is AckStatus.ACCEPTED) is accepted
    if not accepted:
        assert outcome.status is AckStatus.REJECTED
        assert outcome.plan == critical
        assert outcome.detail is not None
        assert role.value in outcome.detail


def test_unknown_step_and_misplaced_decisions_are_rejected(
    critical: EscalationPlan, medium: EscalationPlan
) -> None:
    at = datetime(2026, 3, 11, 16, 0, tzinfo=BERLIN)
    assert apply_acknowledgement(critical, 9, Role.ADMIN, None, at).status is AckStatus.REJECTED
    decided = apply_acknowledgement(critical, 0, Role.TEAM_LEAD, CONFIRMED, at)
    assert decided.status is AckStatus.REJECTED
    undecided = apply_acknowledgement(medium, 1, Role.SUPPORT_MANAGER, None, at)
    assert undecided.status is AckStatus.REJECTED
    assert undecided.detail == "a review needs a decision"


def test_find_step_by_escalation_id(critical: EscalationPlan) -> None:
    assert find_step(critical, critical.steps[2].escalation_id) == 2
    assert find_step(critical, "not-an-escalation") is None


def test_level_3_confirmed_notifies_risk_management(medium: EscalationPlan) -> None:
    at = datetime(2026, 3, 12, 10, 0, tzinfo=BERLIN)  # Thursday morning, on time
    outcome = apply_acknowledgement(medium, 1, Role.SUPPORT_MANAGER, CONFIRMED, at)
    assert outcome.status is AckStatus.ACCEPTED
    assert not outcome.late
    assert outcome.notifies_risk_management
    assert outcome.routed_to_weekly_review_at is None
    [added] = outcome.added_steps
    assert (added.index, added.role, added.kind, added.added_because) == (
        3,
        Role.RISK_MANAGEMENT,
        StepKind.ACKNOWLEDGE,
        "review_confirmed",
    )
    assert added.notify_at == at
    assert added.ack_due_at == datetime(2026, 3, 12, 17, 0, tzinfo=BERLIN)  # same business day
    assert {t.reason for t in outcome.new_timers} == {
        EscalationReason.INITIAL,
        EscalationReason.PRE_BREACH_WARNING,
        EscalationReason.BREACH,
    }
    assert all(t.step == 3 and t.role is Role.RISK_MANAGEMENT for t in outcome.new_timers)
    steps = outcome.plan.steps
    assert steps[1].decision is CONFIRMED
    # the review supersedes the Team Lead's pending acknowledgement
    assert steps[0].status is StepStatus.CANCELLED
    # a confirmed risk goes to Risk Management instead of the weekly review
    assert steps[2].status is StepStatus.CANCELLED
    cancelled = set(outcome.cancel_timer_keys)
    assert keys_of_step(medium, 0) | keys_of_step(medium, 1) | keys_of_step(medium, 2) == cancelled
    assert {t.step for t in plan_timers(outcome.plan)} == {3}
    assert set(plan_timers(outcome.plan)) == set(outcome.new_timers)


def test_level_3_confirmation_uses_the_rules_frozen_on_the_plan(
    medium: EscalationPlan,
) -> None:
    stored = EscalationPlan.model_validate_json(medium.model_dump_json())
    at = datetime(2026, 3, 13, 18, 0, tzinfo=BERLIN)  # Friday after closing: late, too
    outcome = apply_acknowledgement(stored, 1, Role.SUPPORT_MANAGER, CONFIRMED, at)
    assert outcome.late
    assert outcome.late_by == timedelta(hours=27)
    assert outcome.added_steps[0].ack_due_at == datetime(2026, 3, 16, 17, 0, tzinfo=BERLIN)


def test_level_3_not_confirmed_before_the_weekly_review_keeps_it(medium: EscalationPlan) -> None:
    at = datetime(2026, 3, 12, 10, 0, tzinfo=BERLIN)
    outcome = apply_acknowledgement(medium, 1, Role.SUPPORT_MANAGER, NOT_CONFIRMED, at)
    assert outcome.status is AckStatus.ACCEPTED
    assert not outcome.notifies_risk_management
    assert outcome.added_steps == ()
    assert outcome.routed_to_weekly_review_at == datetime(2026, 3, 16, 10, 0, tzinfo=BERLIN)
    remaining = plan_timers(outcome.plan)
    assert [(t.reason, t.step) for t in remaining] == [(EscalationReason.WEEKLY_REVIEW, 2)]


def test_level_3_not_confirmed_after_the_weekly_review_adds_the_next_one(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    # Flagged Sunday evening; the weekly review on Monday 10:00 passes before the decision.
    plan = plan_for(3, datetime(2026, 3, 8, 20, 0, tzinfo=BERLIN), policy, calendar)
    assert plan.weekly_review_at == datetime(2026, 3, 9, 10, 0, tzinfo=BERLIN)
    at = datetime(2026, 3, 9, 15, 0, tzinfo=BERLIN)
    outcome = apply_acknowledgement(plan, 1, Role.SUPPORT_MANAGER, NOT_CONFIRMED, at)
    next_review = datetime(2026, 3, 16, 10, 0, tzinfo=BERLIN)
    assert outcome.routed_to_weekly_review_at == next_review
    [added] = outcome.added_steps
    assert (added.kind, added.notify_at, added.added_because) == (
        StepKind.WEEKLY_REVIEW,
        next_review,
        "review_not_confirmed",
    )
    assert added.escalation_id != plan.steps[2].escalation_id
    [timer] = outcome.new_timers
    assert (timer.reason, timer.fire_at, timer.step) == (
        EscalationReason.WEEKLY_REVIEW,
        next_review,
        3,
    )


def test_team_lead_ack_after_the_review_is_a_no_op(medium: EscalationPlan) -> None:
    reviewed = apply_acknowledgement(
        medium, 1, Role.SUPPORT_MANAGER, NOT_CONFIRMED, datetime(2026, 3, 12, 9, 0, tzinfo=BERLIN)
    )
    late_lead = apply_acknowledgement(
        reviewed.plan, 0, Role.TEAM_LEAD, None, datetime(2026, 3, 12, 9, 30, tzinfo=BERLIN)
    )
    assert late_lead.status is AckStatus.ALREADY_CLOSED
    assert late_lead.detail == "step 0 is already cancelled"


def test_a_second_review_decision_does_not_override_the_first(medium: EscalationPlan) -> None:
    first = apply_acknowledgement(
        medium, 1, Role.SUPPORT_MANAGER, NOT_CONFIRMED, datetime(2026, 3, 12, 9, 0, tzinfo=BERLIN)
    )
    second = apply_acknowledgement(
        first.plan, 1, Role.SUPPORT_MANAGER, CONFIRMED, datetime(2026, 3, 12, 9, 5, tzinfo=BERLIN)
    )
    assert second.status is AckStatus.ALREADY_CLOSED
    assert second.plan.steps[1].decision is NOT_CONFIRMED
    assert not second.notifies_risk_management


def test_acks_apply_identically_on_replay(critical: EscalationPlan) -> None:
    at = datetime(2026, 3, 10, 12, 3, tzinfo=BERLIN)
    assert apply_acknowledgement(critical, 0, Role.TEAM_LEAD, None, at) == apply_acknowledgement(
        critical, 0, Role.TEAM_LEAD, None, at
    )
