"""The catch-up rule: reminder series found more than a repeat behind fire once, breaches stay."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from riskrelay.escalator.calendar import BusinessCalendar
from riskrelay.escalator.domain import (
    CatchUp,
    DueTimer,
    EscalationPlan,
    MissedReminders,
    PlannedTimer,
    build_plan,
    catch_up,
    due_event_id,
    escalation_due,
    plan_timers,
)
from riskrelay.escalator.metrics import EscalatorMetrics
from riskrelay.escalator.policy import EscalationPolicy, load_policy
from riskrelay.escalator.roster import Roster, build_notifications
from riskrelay.escalator.timers import StagedFiring, TimerLoop
from riskrelay.shared.events import EscalationDueEvent, EscalationReason, RiskLevel, Role

pytestmark = pytest.mark.unit

R = EscalationReason
NOW = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
EVERY = timedelta(minutes=15)  # the protocol policy's Level 5 reminder interval
POLICY: EscalationPolicy = load_policy()

# Every escalation role on one channel, Risk Management on two (as the demo roster has it).
ROSTER = Roster.model_validate(
    {
        "roles": {
            role.value: {
                "channels": [{"type": "webhook", "url": f"https://hooks.example.invalid/{role}"}]
                + (
                    [{"type": "pagerduty", "routing_key": "RK"}]
                    if role is Role.RISK_MANAGEMENT
                    else []
                )
            }
            for role in (
                Role.TEAM_LEAD,
                Role.SUPPORT_MANAGER,
                Role.SUPPORT_DIRECTOR,
                Role.RISK_MANAGEMENT,
            )
        }
    }
)


def critical_plan(flagged_at: datetime, calendar: BusinessCalendar) -> EscalationPlan:
    return build_plan(
        risk_id="risk-old",
        level=RiskLevel.CRITICAL,
        flagged_at=flagged_at,
        policy=POLICY,
        calendar=calendar,
    )


def claim(plan: EscalationPlan, now: datetime) -> tuple[list[PlannedTimer], CatchUp]:
    """The plan's timers a claim at ``now`` finds due, and what the rule does with them."""
    due = [timer for timer in plan_timers(plan) if timer.fire_at <= now]
    return due, catch_up([DueTimer.of(timer) for timer in due], now)


def fired_events(
    plan: EscalationPlan, due: list[PlannedTimer], decision: CatchUp
) -> list[EscalationDueEvent]:
    return [
        EscalationDueEvent(
            id=due_event_id(timer.key, timer.plan_version),
            source="riskrelay/escalator",
            time=timer.fire_at,
            subject=plan.risk_id,
            data=escalation_due(plan, timer, missed=decision.missed.get(position)),
        )
        for position, timer in enumerate(due)
        if decision.fires(position)
    ]


# -- a Critical risk five days old ---------------------------------------------------------------


def test_a_five_day_old_critical_risk_sends_one_reminder_per_step_and_role(
    calendar: BusinessCalendar,
) -> None:
    plan = critical_plan(NOW - timedelta(days=5), calendar)
    due, decision = claim(plan, NOW)
    assert len(due) == 60  # 3 steps x (initial, warning, 2 breaches, 8 reminders x 2 roles)

    events = fired_events(plan, due, decision)
    reminders = [event.data for event in events if event.data.reason is R.REMINDER]
    per_series = Counter((d.step, d.target_role) for d in reminders)
    assert per_series == {
        (step, role): 1
        for step in range(3)
        for role in (plan.steps[step].role, Role.SUPPORT_DIRECTOR)
    }
    first_reminder_due = plan.steps[0].ack_due_at + EVERY  # type: ignore[operator]
    for data in reminders:
        assert data.attempt == 9, "the latest due reminder (the 8th) is the one sent"
        assert (data.missed_reminders, data.missed_since) == (7, first_reminder_due)

    # The rest of the plan fires as before: every step's first notice, warning and breach.
    others = Counter(event.data.reason for event in events if event.data.reason is not R.REMINDER)
    assert others == {R.INITIAL: 3, R.PRE_BREACH_WARNING: 3, R.BREACH: 6}
    assert len(events) == 18
    assert len(decision.covered_by) == 42

    notifications = [
        (event.data.step, event.data.target_role, notification)
        for event in events
        if event.data.reason is R.REMINDER
        for notification in build_notifications(ROSTER, event)
    ]
    per_channel = Counter((step, role, n.channel) for step, role, n in notifications)
    assert set(per_channel.values()) == {1}
    assert len(per_channel) == 7  # Risk Management hears on two channels
    pagerduty = [n for _, _, n in notifications if n.channel == "pagerduty"]
    assert (
        pagerduty[0]
        .payload["payload"]["summary"]
        .startswith(
            "Level 5 (Critical) risk still unacknowledged (reminder 8; 7 earlier reminders missed"
            f" since {first_reminder_due:%Y-%m-%d %H:%M} UTC)"
        )
    )
    assert pagerduty[0].payload["payload"]["custom_details"]["missed_reminders"] == 7


def test_skipped_reminders_are_covered_by_the_latest_of_their_own_series(
    calendar: BusinessCalendar,
) -> None:
    plan = critical_plan(NOW - timedelta(days=5), calendar)
    due, decision = claim(plan, NOW)
    for skipped, covering in decision.covered_by.items():
        assert due[skipped].reason is R.REMINDER
        assert due[covering].reason is R.REMINDER
        assert (due[skipped].escalation_id, due[skipped].role) == (
            due[covering].escalation_id,
            due[covering].role,
        )
        assert due[skipped].fire_at < due[covering].fire_at
        assert decision.fires(covering)


def test_breaches_and_first_notices_are_never_coalesced(calendar: BusinessCalendar) -> None:
    plan = critical_plan(NOW - timedelta(days=30), calendar)
    due, decision = claim(plan, NOW)
    for position, timer in enumerate(due):
        if timer.reason is not R.REMINDER:
            assert decision.fires(position), timer.key
            assert position not in decision.missed
    breaches = [t for p, t in enumerate(due) if t.reason is R.BREACH and decision.fires(p)]
    assert {(t.step, t.role) for t in breaches} == {
        (step.index, role) for step in plan.steps for role in (step.role, Role.SUPPORT_DIRECTOR)
    }
    # The plan's deadlines are the plan's: the rule only chooses which reminders to send.
    assert all(t.ack_due_at == plan.timeframe_due_at for t in breaches)


# -- at most one interval late: as before --------------------------------------------------------


def test_a_risk_one_interval_overdue_fires_every_reminder_as_usual(
    calendar: BusinessCalendar,
) -> None:
    # The first reminder fell due one interval ago, the second is due now.
    plan = critical_plan(NOW - timedelta(minutes=15) - 2 * EVERY, calendar)
    due, decision = claim(plan, NOW)
    assert decision == CatchUp()
    reminders = [t for t in due if t.reason is R.REMINDER]
    assert sorted({t.attempt for t in reminders}) == [2, 3]
    assert len(fired_events(plan, due, decision)) == len(due)


def test_a_reminder_more_than_one_interval_overdue_is_coalesced(
    calendar: BusinessCalendar,
) -> None:
    flagged = NOW - timedelta(minutes=15) - 2 * EVERY - timedelta(seconds=1)
    plan = critical_plan(flagged, calendar)
    due, decision = claim(plan, NOW)
    assert len(decision.covered_by) == 6  # the first reminder of each step, for both roles
    assert {due[p].attempt for p in decision.covered_by} == {2}
    assert set(decision.missed.values()) == {
        MissedReminders(1, flagged + timedelta(minutes=15) + EVERY)
    }
    events = fired_events(plan, due, decision)
    to_risk_management = next(
        e
        for e in events
        if e.data.reason is R.REMINDER and e.data.target_role is Role.RISK_MANAGEMENT
    )
    webhook, pagerduty = build_notifications(ROSTER, to_risk_management)
    assert webhook.payload["data"]["missed_reminders"] == 1
    assert "(reminder 2; 1 earlier reminder missed since" in pagerduty.payload["payload"]["summary"]


def test_reminders_not_yet_due_and_steps_without_reminders_are_left_alone(
    calendar: BusinessCalendar,
) -> None:
    plan = critical_plan(NOW - timedelta(days=5), calendar)
    early = [DueTimer.of(t) for t in plan_timers(plan)]
    # Claimed "before" they were due: nothing is behind yet.
    assert catch_up(early, plan.flagged_at) == CatchUp()
    high = build_plan(
        risk_id="risk-high",
        level=RiskLevel.HIGH,
        flagged_at=NOW - timedelta(days=5),
        policy=POLICY,
        calendar=calendar,
    )
    timers = [t for t in plan_timers(high) if t.fire_at <= NOW]
    assert timers
    assert all(t.repeat_every is None for t in timers)
    assert catch_up([DueTimer.of(t) for t in timers], NOW) == CatchUp()


def test_the_rule_needs_an_aware_clock(calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="now"):
        catch_up([], datetime(2026, 3, 10, 11, 0))


# -- properties over outage lengths and claim orders ---------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=6)),
    seed=st.integers(0, 2**16),
)
def test_every_series_fires_its_latest_reminder_and_accounts_for_the_rest(
    calendar: BusinessCalendar, age: timedelta, seed: int
) -> None:
    plan = critical_plan(NOW - age, calendar)
    due = [t for t in plan_timers(plan) if t.fire_at <= NOW]
    random.Random(seed).shuffle(due)  # a claim returns rows in any order
    decision = catch_up([DueTimer.of(t) for t in due], NOW)

    series: dict[tuple[str, Role], list[int]] = {}
    for position, timer in enumerate(due):
        if timer.reason is R.REMINDER:
            series.setdefault((timer.escalation_id, timer.role), []).append(position)
        else:
            assert decision.fires(position)
    for positions in series.values():
        latest = max(positions, key=lambda p: due[p].fire_at)
        assert decision.fires(latest), "the latest due reminder of a series always fires"
        skipped = [p for p in positions if not decision.fires(p)]
        for position in skipped:
            assert NOW - due[position].fire_at > EVERY
            assert decision.covered_by[position] == latest
        for position in positions:
            if position != latest and decision.fires(position):
                assert NOW - due[position].fire_at <= EVERY
        if skipped:
            assert decision.missed[latest] == MissedReminders(
                len(skipped), min(due[p].fire_at for p in skipped)
            )
        else:
            assert latest not in decision.missed
    assert sum(m.number for m in decision.missed.values()) == len(decision.covered_by)


# -- what the timer loop records ------------------------------------------------------------------


def test_skipped_reminders_are_counted_and_breaches_still_counted_once_per_step(
    calendar: BusinessCalendar,
) -> None:
    plan = critical_plan(NOW - timedelta(days=5), calendar)
    due, decision = claim(plan, NOW)
    roles = {step.index: step.role for step in plan.steps}

    def row(timer: PlannedTimer) -> dict[str, Any]:
        return {
            "reason": timer.reason.value,
            "level": int(timer.level),
            "role": timer.role.value,
            "step_role": roles[timer.step].value,
            "due_at": timer.fire_at,
        }

    registry = CollectorRegistry()
    loop = TimerLoop(
        cast(Any, None),
        cast(Any, None),
        cast(Any, None),
        topic="escalation-due",
        roster=Roster(),
        metrics=EscalatorMetrics(registry),
        clock=lambda: NOW,
    )
    live = [row(t) for p, t in enumerate(due) if decision.fires(p)]
    skipped = [row(due[p]) for p in decision.covered_by]
    loop.committed(StagedFiring(len(due), cast(Any, live), cast(Any, skipped), [], 0, NOW))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("riskrelay_escalation_reminders_skipped_total", level="5") == 42
    assert sample("riskrelay_escalation_breaches_total", level="5") == 3
    assert sample("riskrelay_escalation_fired_total", reason="reminder") == 6
    assert sample("riskrelay_escalation_fired_total", reason="breach") == 6
