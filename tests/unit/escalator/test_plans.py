"""Escalation plans for every level, their timers, upgrades, freezing and the preview."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from riskrelay.escalator.calendar import BusinessCalendar
from riskrelay.escalator.domain import (
    EscalationPlan,
    build_plan,
    escalation_due,
    plan_timers,
    preview,
    supersede,
    superseded_timer_keys,
)
from riskrelay.escalator.policy import EscalationPolicy, StepKind
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import EscalationReason, RiskLevel, Role

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
R = EscalationReason


def plan_for(
    level: int, flagged_at: datetime, policy: EscalationPolicy, calendar: BusinessCalendar
) -> EscalationPlan:
    return build_plan(
        risk_id="risk-42", level=level, flagged_at=flagged_at, policy=policy, calendar=calendar
    )


# -- Level 5 --------------------------------------------------------------------------------------


def test_level_5_notifies_the_chain_at_once_and_expects_ack_in_15_minutes(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    flagged = datetime(2026, 3, 14, 3, 7, tzinfo=BERLIN)  # a Saturday night: no business hours
    plan = plan_for(5, flagged, policy, calendar)
    assert plan.timeframe_due_at == flagged + timedelta(minutes=15)
    assert plan.weekly_review_at is None
    assert [(s.role, s.notify_at, s.ack_due_at) for s in plan.steps] == [
        (Role.TEAM_LEAD, flagged, flagged + timedelta(minutes=15)),
        (Role.SUPPORT_MANAGER, flagged, flagged + timedelta(minutes=15)),
        (Role.RISK_MANAGEMENT, flagged, flagged + timedelta(minutes=15)),
    ]


def test_level_5_timers_warn_breach_and_repeat_to_the_support_director(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    flagged = datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN)
    plan = plan_for(5, flagged, policy, calendar)
    timers = plan_timers(plan)
    team_lead = [t for t in timers if t.step == 0]
    first = plan.steps[0].escalation_id
    by_key = {t.key: t for t in team_lead}
    assert by_key[f"{first}:initial:1"].fire_at == flagged
    assert by_key[f"{first}:pre_breach_warning:1"].fire_at == flagged + timedelta(
        minutes=11, seconds=15
    )
    assert by_key[f"{first}:breach:1"].role is Role.TEAM_LEAD
    director_breach = by_key[f"{first}:breach:1:support_director"]
    assert director_breach.role is Role.SUPPORT_DIRECTOR
    assert director_breach.fire_at == flagged + timedelta(minutes=15)
    reminders = sorted(
        (t for t in team_lead if t.reason is R.REMINDER and t.role is Role.TEAM_LEAD),
        key=lambda t: t.fire_at,
    )
    assert [t.fire_at - flagged for t in reminders] == [
        timedelta(minutes=15 + 15 * n) for n in range(1, 9)
    ]
    assert [t.attempt for t in reminders] == list(range(2, 10))
    assert Counter(t.role for t in team_lead if t.reason is R.REMINDER) == {
        Role.TEAM_LEAD: 8,
        Role.SUPPORT_DIRECTOR: 8,
    }
    # 3 steps x (initial + warning + 2 breaches + 16 reminders)
    assert len(timers) == 60
    assert len({t.key for t in timers}) == 60
    assert [t.fire_at for t in timers] == sorted(t.fire_at for t in timers)


# -- Level 4 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flagged", "due", "warning"),
    [
        # during hours: that day's close; warning at 75 % of the remaining business time
        (
            datetime(2026, 3, 10, 13, 0, tzinfo=BERLIN),
            datetime(2026, 3, 10, 17, 0, tzinfo=BERLIN),
            datetime(2026, 3, 10, 16, 0, tzinfo=BERLIN),
        ),
        # before opening: that day's close; the warning counts from opening
        (
            datetime(2026, 3, 10, 7, 0, tzinfo=BERLIN),
            datetime(2026, 3, 10, 17, 0, tzinfo=BERLIN),
            datetime(2026, 3, 10, 15, 0, tzinfo=BERLIN),
        ),
        # after closing on Friday, across the spring-forward weekend: Monday, warned Monday
        (
            datetime(2026, 3, 27, 18, 0, tzinfo=BERLIN),
            datetime(2026, 3, 30, 17, 0, tzinfo=BERLIN),
            datetime(2026, 3, 30, 15, 0, tzinfo=BERLIN),
        ),
        # holiday (Christmas Day): the next business day is Monday the 28th
        (
            datetime(2026, 12, 25, 11, 0, tzinfo=BERLIN),
            datetime(2026, 12, 28, 17, 0, tzinfo=BERLIN),
            datetime(2026, 12, 28, 15, 0, tzinfo=BERLIN),
        ),
    ],
)
def test_level_4_same_business_day(
    policy: EscalationPolicy,
    calendar: BusinessCalendar,
    flagged: datetime,
    due: datetime,
    warning: datetime,
) -> None:
    plan = plan_for(4, flagged, policy, calendar)
    assert plan.timeframe_due_at == due
    assert [s.role for s in plan.steps] == [
        Role.TEAM_LEAD,
        Role.SUPPORT_MANAGER,
        Role.RISK_MANAGEMENT,
    ]
    assert all(s.notify_at == flagged and s.ack_due_at == due for s in plan.steps)
    assert all(s.pre_breach_warning_at == warning for s in plan.steps)
    reasons = Counter(t.reason for t in plan_timers(plan))
    assert reasons == {R.INITIAL: 3, R.PRE_BREACH_WARNING: 3, R.BREACH: 3}


def test_level_4_in_new_york_across_the_fall_back(
    policy: EscalationPolicy, us_calendar: BusinessCalendar
) -> None:
    plan = plan_for(4, datetime(2026, 10, 30, 17, 30, tzinfo=NEW_YORK), policy, us_calendar)
    assert plan.timeframe_due_at.astimezone(NEW_YORK).isoformat() == "2026-11-02T17:00:00-05:00"


# -- Level 3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flagged", "expected_local_due"),
    [
        # Berlin spring forward (2026-03-29): 24 real hours show as 25 on the wall clock
        (datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN), "2026-03-29T13:00:00+02:00"),
        # Berlin fall back (2026-10-25): 24 real hours show as 23
        (datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN), "2026-10-25T11:00:00+01:00"),
        # New York spring forward (2026-03-08) and fall back (2026-11-01)
        (datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK), "2026-03-08T13:00:00-04:00"),
        (datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK), "2026-11-01T11:00:00-05:00"),
    ],
)
def test_level_3_review_is_due_after_exactly_24_real_hours(
    policy: EscalationPolicy, flagged: datetime, expected_local_due: str
) -> None:
    zone = flagged.tzinfo
    assert isinstance(zone, ZoneInfo)
    calendar = BusinessCalendar.model_validate(
        {"timezone": zone.key, "business_hours": {"mon": ("09:00", "17:00")}}
    )
    plan = plan_for(3, flagged, policy, calendar)
    assert plan.timeframe_due_at - flagged == timedelta(hours=24)
    assert plan.timeframe_due_at.timestamp() - flagged.timestamp() == 86_400
    assert plan.timeframe_due_at.astimezone(zone).isoformat() == expected_local_due


def test_level_3_plan_team_lead_review_and_weekly_review(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    flagged = datetime(2026, 3, 11, 15, 0, tzinfo=BERLIN)  # Wednesday
    plan = plan_for(3, flagged, policy, calendar)
    assert [(s.role, s.kind) for s in plan.steps] == [
        (Role.TEAM_LEAD, StepKind.ACKNOWLEDGE),
        (Role.SUPPORT_MANAGER, StepKind.REVIEW),
        (Role.SUPPORT_MANAGER, StepKind.WEEKLY_REVIEW),
    ]
    assert plan.steps[1].ack_due_at == flagged + timedelta(hours=24)
    assert plan.weekly_review_at == datetime(2026, 3, 16, 10, 0, tzinfo=BERLIN)
    weekly = [t for t in plan_timers(plan) if t.reason is R.WEEKLY_REVIEW]
    assert len(weekly) == 1
    assert weekly[0].fire_at == plan.weekly_review_at
    assert weekly[0].step == 2


# -- Levels 2 and 1 -------------------------------------------------------------------------------


def test_level_2_documented_within_48_hours_then_weekly_review(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    flagged = datetime(2026, 10, 23, 18, 0, tzinfo=BERLIN)  # Friday before the fall-back
    plan = plan_for(2, flagged, policy, calendar)
    assert plan.timeframe_due_at - flagged == timedelta(hours=48)
    assert plan.timeframe_due_at.astimezone(BERLIN).isoformat() == "2026-10-25T17:00:00+01:00"
    assert plan.steps[0].role is Role.AGENT
    assert plan.steps[0].ack_due_at == plan.timeframe_due_at
    assert plan.weekly_review_at == datetime(2026, 10, 26, 10, 0, tzinfo=BERLIN)
    assert Counter(t.reason for t in plan_timers(plan)) == {
        R.INITIAL: 1,
        R.PRE_BREACH_WARNING: 1,
        R.BREACH: 1,
        R.WEEKLY_REVIEW: 1,
    }


def test_level_1_goes_to_the_weekly_review_only(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    plan = plan_for(1, datetime(2026, 4, 2, 16, 0, tzinfo=BERLIN), policy, calendar)
    # Good Friday and Easter Monday are holidays: the week's first business day is Tuesday.
    assert plan.weekly_review_at == datetime(2026, 4, 7, 10, 0, tzinfo=BERLIN)
    assert plan.timeframe_due_at == plan.weekly_review_at
    assert [s.kind for s in plan.steps] == [StepKind.WEEKLY_REVIEW]
    assert [(t.reason, t.role) for t in plan_timers(plan)] == [
        (R.WEEKLY_REVIEW, Role.SUPPORT_MANAGER)
    ]


# -- identity, freezing, upgrades -----------------------------------------------------------------


def test_escalation_ids_are_deterministic_and_distinct(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    flagged = datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN)
    once = plan_for(5, flagged, policy, calendar)
    again = plan_for(5, flagged, policy, calendar)
    assert once == again
    assert plan_timers(once) == plan_timers(again)
    assert once.steps[0].escalation_id == derive_event_id(
        "riskrelay.escalation:risk-42", "v1/level-5/acknowledge/team_lead"
    )
    assert len({s.escalation_id for s in once.steps}) == 3
    other_risk = build_plan(
        risk_id="risk-43", level=5, flagged_at=flagged, policy=policy, calendar=calendar
    )
    assert not {s.escalation_id for s in once.steps} & {s.escalation_id for s in other_risk.steps}


def test_plan_survives_json_and_keeps_its_rules_when_the_policy_changes(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    flagged = datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN)
    plan = plan_for(3, flagged, policy, calendar)
    stored = plan.model_dump_json()
    assert EscalationPlan.model_validate_json(stored) == plan
    assert json.loads(stored)["rules"]["calendar"]["business_hours"]["mon"] == ["09:00", "17:00"]

    stricter = policy.model_copy(
        update={
            "levels": policy.levels
            | {
                RiskLevel.MEDIUM: policy.for_level(3).model_copy(
                    update={"timeframe": policy.for_level(5).timeframe}
                )
            }
        }
    )
    assert plan_for(3, flagged, stricter, calendar).timeframe_due_at != plan.timeframe_due_at
    restored = EscalationPlan.model_validate_json(stored)
    assert restored.timeframe_due_at == flagged.astimezone(UTC) + timedelta(hours=24)
    assert plan_timers(restored) == plan_timers(plan)


def test_upgrade_builds_the_next_version_and_cancels_every_old_timer(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    medium = plan_for(3, datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN), policy, calendar)
    upgraded_at = datetime(2026, 3, 10, 14, 0, tzinfo=BERLIN)
    upgrade = supersede(
        medium, level=RiskLevel.CRITICAL, flagged_at=upgraded_at, policy=policy, calendar=calendar
    )
    assert upgrade.plan.plan_version == 2
    assert upgrade.plan.level is RiskLevel.CRITICAL
    assert upgrade.plan.flagged_at == upgraded_at
    assert set(upgrade.cancel_timer_keys) == {t.key for t in plan_timers(medium)}
    assert set(upgrade.cancel_timer_keys) == set(superseded_timer_keys(medium))
    new_keys = {t.key for t in plan_timers(upgrade.plan)}
    assert not new_keys & set(upgrade.cancel_timer_keys)
    assert all(t.plan_version == 2 for t in plan_timers(upgrade.plan))


def test_escalation_due_payload_from_a_timer(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    plan = plan_for(5, datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN), policy, calendar)
    reminder = next(t for t in plan_timers(plan) if t.reason is R.REMINDER)
    due = escalation_due(plan, reminder, title="Card data visible to other customers")
    assert due.escalation_id == plan.steps[reminder.step].escalation_id
    assert due.level is RiskLevel.CRITICAL
    assert due.reason is R.REMINDER
    assert due.attempt == 2
    assert due.due_at == reminder.fire_at
    assert due.ack_due_at == plan.steps[reminder.step].ack_due_at
    assert due.timeframe_due_at == plan.timeframe_due_at
    assert due.plan_version == 1


# -- preview --------------------------------------------------------------------------------------


def test_preview_shape_and_offsets(policy: EscalationPolicy, calendar: BusinessCalendar) -> None:
    result = preview(4, datetime(2026, 3, 27, 17, 0, tzinfo=UTC), policy, calendar)
    assert result == {
        "level": 4,
        "flagged_at": "2026-03-27T18:00:00+01:00",
        "timeframe_due_at": "2026-03-30T17:00:00+02:00",
        "weekly_review_at": None,
        "steps": [
            {
                "role": role,
                "notify_at": "2026-03-27T18:00:00+01:00",
                "ack_due_at": "2026-03-30T17:00:00+02:00",
            }
            for role in ("team_lead", "support_manager", "risk_management")
        ],
    }
    json.dumps(result)  # JSON-ready as it is


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_preview_every_level(
    level: int, policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    flagged = datetime(2026, 10, 23, 18, 30, tzinfo=BERLIN)
    result = preview(level, flagged, policy, calendar)
    assert list(result) == ["level", "flagged_at", "timeframe_due_at", "weekly_review_at", "steps"]
    assert result == preview(level, flagged, policy, calendar)
    for step in result["steps"]:
        assert list(step) == ["role", "notify_at", "ack_due_at"]
    times = [result["flagged_at"], result["timeframe_due_at"], result["weekly_review_at"]]
    times += [
        value for step in result["steps"] for value in (step["notify_at"], step["ack_due_at"])
    ]
    for value in filter(None, times):
        assert datetime.fromisoformat(value).utcoffset() is not None
    if level <= 3:
        assert result["weekly_review_at"] == "2026-10-26T10:00:00+01:00"
    else:
        assert result["weekly_review_at"] is None
    if level == 1:
        assert result["timeframe_due_at"] == result["weekly_review_at"]
        assert result["steps"] == []


def test_preview_shows_a_weekly_review_for_level_4_when_the_policy_routes_it(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    routed = policy.model_copy(
        update={
            "levels": policy.levels
            | {RiskLevel.HIGH: policy.for_level(4).model_copy(update={"weekly_review": True})}
        }
    )
    result = preview(4, datetime(2026, 3, 10, 12, 0, tzinfo=BERLIN), routed, calendar)
    assert result["weekly_review_at"] == "2026-03-16T10:00:00+01:00"
    assert len(result["steps"]) == 3


# -- policy options -------------------------------------------------------------------------------


def with_steps(
    policy: EscalationPolicy, level: RiskLevel, steps: list[dict[str, object]]
) -> EscalationPolicy:
    rules = policy.for_level(level).model_dump()
    return EscalationPolicy.model_validate(
        policy.model_dump()
        | {"levels": policy.model_dump()["levels"] | {level: rules | {"steps": steps}}}
    )


def test_business_hours_notification_waits_for_the_next_opening(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    quiet = with_steps(
        policy,
        RiskLevel.HIGH,
        [
            {"role": "team_lead", "notify": "business_hours"},
            {"role": "support_manager", "notify": "business_hours", "ack_due": "2h"},
        ],
    )
    plan = plan_for(4, datetime(2026, 3, 13, 18, 0, tzinfo=BERLIN), quiet, calendar)
    monday_opening = datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN)
    lead, manager = plan.steps
    assert (lead.notify_at, lead.ack_due_at) == (
        monday_opening,
        datetime(2026, 3, 16, 17, 0, tzinfo=BERLIN),
    )
    assert (manager.notify_at, manager.ack_due_at) == (
        monday_opening,
        monday_opening + timedelta(hours=2),
    )
    assert manager.pre_breach_warning_at == monday_opening + timedelta(minutes=90)


def test_an_elapsed_deadline_never_falls_before_a_delayed_notification(
    policy: EscalationPolicy, calendar: BusinessCalendar
) -> None:
    odd = with_steps(
        policy, RiskLevel.CRITICAL, [{"role": "team_lead", "notify": "business_hours"}]
    )
    plan = plan_for(5, datetime(2026, 3, 14, 3, 0, tzinfo=BERLIN), odd, calendar)
    [step] = plan.steps
    assert step.notify_at == datetime(2026, 3, 16, 9, 0, tzinfo=BERLIN)
    assert step.ack_due_at == step.notify_at  # breached on notification, not before it
    assert step.pre_breach_warning_at is None


def test_naive_flag_times_are_refused(policy: EscalationPolicy, calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="flagged_at must be timezone-aware"):
        plan_for(3, datetime(2026, 3, 10, 12, 0), policy, calendar)
