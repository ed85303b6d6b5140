"""The service's pure parts: classification decisions, ids, step states, event building,
delivery outcomes, cursors and start-up validation of the configuration files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import HTTPException

from riskrelay.escalator.api import decode_cursor, encode_cursor
from riskrelay.escalator.app import create_app
from riskrelay.escalator.calendar import BusinessCalendar, ConfigFileError
from riskrelay.escalator.domain import (
    AckStatus,
    MissedReminders,
    PlanChange,
    StepState,
    StepStatus,
    acknowledged_event_id,
    apply_acknowledgement,
    close_plan,
    due_event_id,
    escalation_due,
    plan_for_classification,
    plan_timers,
    step_state,
    superseded_timer_keys,
)
from riskrelay.escalator.notifications import AttemptResult, attempt_outcome, parse_retry_after
from riskrelay.escalator.policy import EscalationPolicy
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.escalator.timers import due_event
from riskrelay.shared.events import EscalationDueEvent, RiskLevel, Role

pytestmark = pytest.mark.unit

FLAGGED = datetime(2026, 3, 10, 11, 0, tzinfo=UTC)  # a Tuesday, inside business hours


def first_plan(policy: EscalationPolicy, calendar: BusinessCalendar, level: int = 3) -> PlanChange:
    change = plan_for_classification(
        None, risk_id="risk-1", level=level, flagged_at=FLAGGED, policy=policy, calendar=calendar
    )
    assert change is not None
    return change


# -- classifications -----------------------------------------------------------------------------


def test_a_new_risk_gets_plan_version_1_and_nothing_to_cancel(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    change = first_plan(policy, calendar)
    assert change.plan.plan_version == 1
    assert change.plan.level is RiskLevel.MEDIUM
    assert change.superseded is None
    assert change.cancel_timer_keys == ()


def test_the_same_level_again_keeps_the_frozen_plan(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    plan = first_plan(policy, calendar).plan
    later = FLAGGED + timedelta(hours=5)
    assert (
        plan_for_classification(
            plan, risk_id="risk-1", level=3, flagged_at=later, policy=policy, calendar=calendar
        )
        is None
    )


@pytest.mark.parametrize("new_level", [5, 1])
def test_a_level_change_supersedes_closing_the_old_steps(
    policy: EscalationPolicy, calendar: BusinessCalendar, new_level: int
) -> None:
    plan = first_plan(policy, calendar).plan
    upgraded = FLAGGED + timedelta(minutes=30)
    change = plan_for_classification(
        plan,
        risk_id="risk-1",
        level=new_level,
        flagged_at=upgraded,
        policy=policy,
        calendar=calendar,
    )
    assert change is not None
    assert change.plan.plan_version == 2
    assert change.plan.level == new_level
    assert change.plan.flagged_at == upgraded
    assert change.superseded is not None
    assert {s.status for s in change.superseded.steps} == {StepStatus.CANCELLED}
    assert {s.closed_at for s in change.superseded.steps} == {upgraded}
    assert set(change.cancel_timer_keys) == set(superseded_timer_keys(plan))
    assert not {t.key for t in plan_timers(change.plan)} & set(change.cancel_timer_keys)


def test_a_plan_of_another_risk_is_refused(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    plan = first_plan(policy, calendar).plan
    with pytest.raises(ValueError, match="risk-2"):
        plan_for_classification(
            plan, risk_id="risk-2", level=5, flagged_at=FLAGGED, policy=policy, calendar=calendar
        )


def test_closing_a_plan_keeps_acknowledged_steps(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    plan = first_plan(policy, calendar).plan
    acked = apply_acknowledgement(plan, 0, Role.TEAM_LEAD, None, FLAGGED + timedelta(minutes=1))
    closed = close_plan(acked.plan, FLAGGED + timedelta(hours=1))
    assert closed.steps[0].status is StepStatus.ACKNOWLEDGED
    assert closed.steps[0].closed_at == FLAGGED + timedelta(minutes=1)
    assert {s.status for s in closed.steps[1:]} == {StepStatus.CANCELLED}
    # An acknowledgement of a closed plan is a recorded no-op, not a change.
    late = apply_acknowledgement(closed, 1, Role.SUPPORT_MANAGER, None, FLAGGED)
    assert late.status is AckStatus.ALREADY_CLOSED


# -- ids and states ------------------------------------------------------------------------------


def test_event_ids_are_deterministic_and_differ_per_timer_and_version() -> None:
    assert due_event_id("esc:breach:1", 1) == due_event_id("esc:breach:1", 1)
    assert due_event_id("esc:breach:1", 1) != due_event_id("esc:breach:1", 2)
    assert due_event_id("esc:breach:1", 1) != due_event_id("esc:reminder:1", 1)
    assert acknowledged_event_id("esc") == acknowledged_event_id("esc")
    assert acknowledged_event_id("esc") != acknowledged_event_id("esc2")


def test_every_timer_of_a_plan_has_its_own_event_id(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    plan = first_plan(policy, calendar, level=5).plan
    timers = plan_timers(plan)
    assert len({due_event_id(t.key, t.plan_version) for t in timers}) == len(timers)


@pytest.mark.parametrize(
    ("status", "due_in", "expected"),
    [
        (StepStatus.OPEN, timedelta(minutes=1), StepState.OPEN),
        (StepStatus.OPEN, timedelta(0), StepState.OVERDUE),
        (StepStatus.OPEN, -timedelta(minutes=1), StepState.OVERDUE),
        (StepStatus.OPEN, None, StepState.OPEN),
        (StepStatus.ACKNOWLEDGED, -timedelta(minutes=1), StepState.ACKNOWLEDGED),
        (StepStatus.CANCELLED, -timedelta(minutes=1), StepState.CANCELLED),
    ],
)
def test_step_state(status: StepStatus, due_in: timedelta | None, expected: StepState) -> None:
    due = None if due_in is None else FLAGGED + due_in
    assert step_state(status, due, FLAGGED) is expected


# -- the event a claimed timer row becomes -------------------------------------------------------


@pytest.mark.parametrize(
    "missed", [None, MissedReminders(7, FLAGGED + timedelta(minutes=30))], ids=["plain", "catch-up"]
)
def test_a_claimed_row_becomes_the_validated_escalation_due_of_its_timer(
    policy: EscalationPolicy, calendar: BusinessCalendar, missed: MissedReminders | None
) -> None:
    plan = first_plan(policy, calendar, level=5).plan
    for timer in plan_timers(plan):
        row = {
            "event_id": due_event_id(timer.key, timer.plan_version),
            "escalation_id": timer.escalation_id,
            "risk_id": timer.risk_id,
            "plan_version": timer.plan_version,
            "level": int(timer.level),
            "step": timer.step,
            "role": timer.role.value,
            "reason": timer.reason.value,
            "attempt": timer.attempt,
            "due_at": timer.fire_at,
            "ack_due_at": timer.ack_due_at,
            "timeframe_due_at": timer.timeframe_due_at,
            "title": "Checkout down",
            "cause_event_id": "cause-1",
        }
        event = due_event(row, missed)  # type: ignore[arg-type]
        # Built without validation for speed: it must still be exactly the contract's event.
        assert EscalationDueEvent.model_validate_json(event.to_json_bytes()) == event
        assert event.data == escalation_due(plan, timer, title="Checkout down", missed=missed)
        assert event.id == row["event_id"]
        assert event.subject == event.correlationid == "risk-1"
        assert event.causationid == "cause-1"


# -- deliveries ----------------------------------------------------------------------------------


def result(status: int | None) -> AttemptResult:
    return AttemptResult(
        status_code=status,
        error=None if status else "ConnectError",
        retry_after=None,
        duration_ms=1.0,
    )


@pytest.mark.parametrize(
    ("status", "next_delay", "expected"),
    [
        (200, None, "delivered"),
        (202, timedelta(seconds=1), "delivered"),
        (500, timedelta(seconds=1), "retry"),
        (429, timedelta(seconds=1), "retry"),
        (None, timedelta(seconds=1), "retry"),
        (500, None, "failed"),
        (None, None, "failed"),
        (404, timedelta(seconds=1), "failed"),  # a wrong URL does not heal by waiting
        (400, timedelta(seconds=1), "failed"),
    ],
)
def test_attempt_outcome(status: int | None, next_delay: timedelta | None, expected: str) -> None:
    assert attempt_outcome(result(status), next_delay) == expected


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == timedelta(seconds=30)
    assert parse_retry_after("Tue, 10 Mar 2026 12:01:00 GMT", now) == timedelta(minutes=1)
    assert parse_retry_after("Tue, 10 Mar 2026 11:00:00 GMT", now) == timedelta(0)
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# -- the API's cursor ----------------------------------------------------------------------------


def test_cursor_round_trip() -> None:
    at = datetime(2026, 3, 10, 12, 0, 1, 5, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "esc-1")) == (at, "esc-1")


@pytest.mark.parametrize("cursor", ["!!!", "bm90IGpzb24", "WzFd"])
def test_a_forged_cursor_is_a_422(cursor: str) -> None:
    with pytest.raises(HTTPException) as raised:
        decode_cursor(cursor)
    assert raised.value.status_code == 422


# -- start-up ------------------------------------------------------------------------------------


def test_invalid_policy_calendar_or_roster_stops_start_up_naming_the_field(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        'version: "x"\nlevels:\n  5: {timeframe: {rule: elapsed, within: soon}}\n'
        "  4: {timeframe: {rule: same_business_day}}\n  3: {timeframe: {rule: weekly_review}}\n"
        "  2: {timeframe: {rule: weekly_review}}\n  1: {timeframe: {rule: weekly_review}}\n"
    )
    with pytest.raises(ConfigFileError, match=r"levels\.5\.timeframe\.within"):
        create_app(EscalatorSettings(policy_path=policy))
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("timezone: Mars/Olympus\nbusiness_hours: {mon: ['09:00', '17:00']}\n")
    with pytest.raises(ConfigFileError, match="timezone"):
        create_app(EscalatorSettings(calendar_path=calendar))
    roster = tmp_path / "roster.yaml"
    roster.write_text(
        "roles:\n  team_lead:\n    channels: [{type: pagerduty, routing_key: k, min_level: 2}]\n"
    )
    with pytest.raises(ConfigFileError, match=r"roles\.team_lead\.channels\.0.*min_level"):
        create_app(EscalatorSettings(roster_path=roster))
    with pytest.raises(ConfigFileError, match="cannot read"):
        create_app(EscalatorSettings(roster_path=tmp_path / "missing.yaml"))


def test_timer_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKRELAY_ESCALATOR_TIMERS__BATCH_SIZE", "200")
    monkeypatch.setenv("RISKRELAY_ESCALATOR_TIMERS__WORKERS", "3")
    monkeypatch.setenv("RISKRELAY_ESCALATOR_DELIVERY__TIMEOUT_S", "2.5")
    settings = EscalatorSettings()
    assert settings.timers.batch_size == 200
    assert settings.timers.workers == 3
    assert settings.timers.idle_interval_ms == 50
    assert settings.delivery.timeout_s == 2.5
