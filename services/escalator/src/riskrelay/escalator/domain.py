"""Escalation plans: what the protocol asks of whom, and by when, for one classified risk.

Everything here is a pure function of its arguments (no clock, no I/O), so a replay of the same
events yields the same plans, timer keys and decisions.

A plan is built once, when a risk is classified or changes level, and frozen: it carries the
deadlines it computed *and* a copy of the rules and calendar it used, so later edits of the
policy or calendar files never change an escalation that is already running (the lesson of
grafana/oncall's escalation snapshots). Acknowledgements return a new plan with the step closed;
a level change builds a new plan version that supersedes the old one.

All instants in a plan are UTC; :func:`preview` renders them on the team's clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import AwareDatetime, Field

from riskrelay.escalator.calendar import BusinessCalendar, require_aware
from riskrelay.escalator.policy import (
    AckDueRule,
    EscalationPolicy,
    LevelPolicy,
    NotifyWhen,
    Reminders,
    StepKind,
    StepPolicy,
    TimeframeRule,
    WeeklyReviewPolicy,
)
from riskrelay.shared.envelope import Contract, derive_event_id
from riskrelay.shared.events import EscalationDue, EscalationReason, ReviewDecision, RiskLevel, Role

PLAN_SCHEMA_VERSION = 1

# The Customer Support chain, lowest first: a role may acknowledge a step of a role below it
# (a director covering for an absent manager), never the other way round.
SUPPORT_CHAIN: tuple[Role, ...] = (
    Role.AGENT,
    Role.TEAM_LEAD,
    Role.SUPPORT_MANAGER,
    Role.SUPPORT_DIRECTOR,
)


class StepStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"
    """Closed without its own acknowledgement: superseded by a review decision."""


class PlanRules(Contract):
    """The rules a plan was built with, frozen on it for the decisions that come later."""

    policy_version: str = Field(description="Version of the policy file used.")
    level_policy: LevelPolicy = Field(description="The level's rules at build time.")
    weekly_review: WeeklyReviewPolicy = Field(description="Weekly Risk Review settings.")
    pre_breach_warning_fraction: float = Field(description="Share of a window before warning.")
    calendar: BusinessCalendar = Field(description="The team's calendar at build time.")


class PlanStep(Contract):
    """One role's part of the plan: when it is told and when its acknowledgement is due."""

    index: int = Field(ge=0, description="Position in the plan; EscalationDue.step.")
    escalation_id: str = Field(description="Deterministic id of this step (risk, version, role).")
    role: Role = Field(description="Role notified.")
    kind: StepKind = Field(description="Acknowledge, review (with a decision) or weekly review.")
    notify_at: AwareDatetime = Field(description="When the role is notified (UTC).")
    ack_due_at: AwareDatetime | None = Field(description="When the acknowledgement is due.")
    pre_breach_warning_at: AwareDatetime | None = Field(description="Warning before breach.")
    breach_notifies: Role | None = Field(description="Next role reached on breach.")
    reminders: Reminders | None = Field(description="Repeats after breach.")
    added_because: Literal["review_confirmed", "review_not_confirmed"] | None = Field(
        default=None, description="Set on steps added by an acknowledgement, not at build."
    )
    status: StepStatus = Field(default=StepStatus.OPEN, description="Open or closed.")
    closed_at: AwareDatetime | None = Field(default=None, description="When it was closed.")
    acknowledged_role: Role | None = Field(default=None, description="Role that acknowledged.")
    decision: ReviewDecision | None = Field(default=None, description="Review decision.")


class EscalationPlan(Contract):
    """The frozen escalation plan of one risk at one level; stored by the service as JSON."""

    schema_version: Literal[1] = Field(default=1, description="Layout of this stored plan.")
    risk_id: str = Field(description="The risk.")
    plan_version: int = Field(ge=1, description="Increases with every level change (a fence).")
    level: RiskLevel = Field(description="Level the plan was built for.")
    flagged_at: AwareDatetime = Field(description="When the risk reached this level (UTC).")
    timeframe_due_at: AwareDatetime = Field(description="The level's protocol deadline.")
    weekly_review_at: AwareDatetime | None = Field(
        description="First Weekly Risk Review after flagging, when the level goes there."
    )
    steps: tuple[PlanStep, ...] = Field(description="Steps in path order.")
    rules: PlanRules = Field(description="Rules and calendar the plan was built with.")


class PlannedTimer(Contract):
    """A timer the service stores and fires; everything an EscalationDue needs is here."""

    key: str = Field(description="Deterministic, unique key: `{escalation_id}:{reason}:{n}`.")
    escalation_id: str = Field(description="The step's escalation id.")
    risk_id: str = Field(description="The risk.")
    plan_version: int = Field(ge=1, description="Plan version (fence).")
    level: RiskLevel = Field(description="Plan level.")
    step: int = Field(ge=0, description="Step index in the plan.")
    role: Role = Field(description="Role to notify when it fires.")
    reason: EscalationReason = Field(description="Why it fires.")
    fire_at: AwareDatetime = Field(description="When it fires (UTC).")
    attempt: int = Field(ge=1, description="1 for first notices, 2+ for reminders.")
    ack_due_at: AwareDatetime | None = Field(description="The step's acknowledgement deadline.")
    timeframe_due_at: AwareDatetime = Field(description="The level's protocol deadline.")
    repeat_every: timedelta | None = Field(
        default=None, description="Interval of the reminder series it belongs to (reminders only)."
    )


class AckStatus(StrEnum):
    ACCEPTED = "accepted"
    ALREADY_CLOSED = "already_closed"
    """A repeat (or the step was superseded): nothing changes."""
    REJECTED = "rejected"
    """Unknown step, a role that may not acknowledge it, or a missing/misplaced decision."""


class AckOutcome(Contract):
    """What an acknowledgement does to a plan. The service applies it in one transaction."""

    status: AckStatus = Field(description="Accepted, a no-op repeat, or rejected.")
    plan: EscalationPlan = Field(description="The plan after the acknowledgement.")
    step: int = Field(description="The acknowledged step's index.")
    late: bool = Field(default=False, description="Acknowledged after its deadline.")
    late_by: timedelta | None = Field(default=None, description="How late, when late.")
    cancel_timer_keys: tuple[str, ...] = Field(
        default=(), description="Timers to cancel (those not yet fired; others are harmless)."
    )
    added_steps: tuple[PlanStep, ...] = Field(default=(), description="Steps appended.")
    new_timers: tuple[PlannedTimer, ...] = Field(default=(), description="Their timers.")
    routed_to_weekly_review_at: AwareDatetime | None = Field(
        default=None, description="The weekly review a not-confirmed review sends the risk to."
    )
    detail: str | None = Field(default=None, description="Why it was rejected or a no-op.")

    @property
    def notifies_risk_management(self) -> bool:
        return any(step.role is Role.RISK_MANAGEMENT for step in self.added_steps)


class Supersession(Contract):
    """A new plan version for a level change, and the old plan's timers to cancel."""

    plan: EscalationPlan = Field(description="The new plan.")
    cancel_timer_keys: tuple[str, ...] = Field(description="Every timer key of the old plan.")


# ---------------------------------------------------------------------------------------------
# Building plans
# ---------------------------------------------------------------------------------------------


def escalation_id_for(
    risk_id: str,
    plan_version: int,
    level: RiskLevel,
    kind: StepKind,
    role: Role,
    occasion: datetime | None = None,
) -> str:
    """Deterministic id of a step (UUIDv5), the same on every replay.

    ``occasion`` tells weekly-review steps of one plan apart (a not-confirmed review may add a
    later review after the first one passed).
    """
    step = f"v{plan_version}/level-{int(level)}/{kind.value}/{role.value}"
    if occasion is not None:
        step += f"/{occasion.isoformat()}"
    return derive_event_id(f"riskrelay.escalation:{risk_id}", step)


def build_plan(
    *,
    risk_id: str,
    level: RiskLevel | int,
    flagged_at: datetime,
    policy: EscalationPolicy,
    calendar: BusinessCalendar,
    plan_version: int = 1,
) -> EscalationPlan:
    """Build the frozen plan of ``risk_id`` at ``level``, its clock starting at ``flagged_at``."""
    level = RiskLevel(level)
    flagged = require_aware(flagged_at, "flagged_at")
    rules = PlanRules(
        policy_version=policy.version,
        level_policy=policy.for_level(level),
        weekly_review=policy.weekly_review,
        pre_breach_warning_fraction=policy.pre_breach_warning_fraction,
        calendar=calendar,
    )
    timeframe_due_at = _timeframe_due(rules, flagged)
    weekly_review_at = (
        _next_weekly_review(rules, flagged) if rules.level_policy.weekly_review else None
    )
    plan = EscalationPlan(
        risk_id=risk_id,
        plan_version=plan_version,
        level=level,
        flagged_at=flagged,
        timeframe_due_at=timeframe_due_at,
        weekly_review_at=weekly_review_at,
        steps=(),
        rules=rules,
    )
    steps = [
        _step_from_policy(plan, index, step_policy, reference=flagged)
        for index, step_policy in enumerate(rules.level_policy.steps)
    ]
    if weekly_review_at is not None:
        steps.append(_weekly_review_step(plan, len(steps), weekly_review_at))
    return plan.model_copy(update={"steps": tuple(steps)})


def supersede(
    previous: EscalationPlan,
    *,
    level: RiskLevel | int,
    flagged_at: datetime,
    policy: EscalationPolicy,
    calendar: BusinessCalendar,
) -> Supersession:
    """Plan a level change of the same risk: the next plan version, and what to cancel."""
    plan = build_plan(
        risk_id=previous.risk_id,
        level=level,
        flagged_at=flagged_at,
        policy=policy,
        calendar=calendar,
        plan_version=previous.plan_version + 1,
    )
    return Supersession(plan=plan, cancel_timer_keys=superseded_timer_keys(previous))


def superseded_timer_keys(plan: EscalationPlan) -> tuple[str, ...]:
    """Every timer key ``plan`` ever produced, whatever its steps' status.

    Cancelling a key that already fired or was cancelled is a no-op for the service, so the
    complete list is the safe answer after crashes and partial applications.
    """
    return tuple(timer.key for step in plan.steps for timer in _step_timers(plan, step))


class PlanChange(Contract):
    """What a classification does to a risk's escalation: a first plan, or a level change."""

    plan: EscalationPlan = Field(description="The plan to store and run.")
    superseded: EscalationPlan | None = Field(
        default=None, description="The previous plan, its open steps closed, when superseded."
    )
    cancel_timer_keys: tuple[str, ...] = Field(
        default=(), description="Timers of the previous plan to cancel (every key it produced)."
    )


def plan_for_classification(
    active: EscalationPlan | None,
    *,
    risk_id: str,
    level: RiskLevel | int,
    flagged_at: datetime,
    policy: EscalationPolicy,
    calendar: BusinessCalendar,
) -> PlanChange | None:
    """The plan a classification of ``risk_id`` calls for, or None when the running one stands.

    A risk classified again at the level its plan was built for keeps that plan: it is frozen,
    so neither a re-sent classification nor an edited policy restarts its clock. A different
    level (an upgrade, or a human override either way) supersedes it.
    """
    level = RiskLevel(level)
    if active is None:
        plan = build_plan(
            risk_id=risk_id, level=level, flagged_at=flagged_at, policy=policy, calendar=calendar
        )
        return PlanChange(plan=plan)
    if active.risk_id != risk_id:
        raise ValueError(f"plan of {active.risk_id!r} given for risk {risk_id!r}")
    if active.level == level:
        return None
    change = supersede(active, level=level, flagged_at=flagged_at, policy=policy, calendar=calendar)
    return PlanChange(
        plan=change.plan,
        superseded=close_plan(active, flagged_at),
        cancel_timer_keys=change.cancel_timer_keys,
    )


def close_plan(plan: EscalationPlan, at: datetime) -> EscalationPlan:
    """``plan`` with every open step cancelled at ``at`` (a superseded plan takes no more acks)."""
    at = require_aware(at, "at")
    steps = tuple(
        step.model_copy(update={"status": StepStatus.CANCELLED, "closed_at": at})
        if step.status is StepStatus.OPEN
        else step
        for step in plan.steps
    )
    return plan.model_copy(update={"steps": steps})


def has_open_steps(plan: EscalationPlan) -> bool:
    return any(step.status is StepStatus.OPEN for step in plan.steps)


def due_event_id(timer_key: str, plan_version: int) -> str:
    """Deterministic id of the ``escalation-due`` event a timer emits.

    The same timer fires the same id on every instance and after every crash, which is what
    lets consumers drop a re-published duplicate.
    """
    return derive_event_id(f"riskrelay.escalation-timer:{timer_key}", f"due/v{plan_version}")


def acknowledged_event_id(escalation_id: str) -> str:
    """Id of the ``escalation-acks`` event the service publishes for an accepted HTTP ack.

    A step is accepted at most once, so the step's id alone makes it deterministic.
    """
    return derive_event_id(f"riskrelay.escalation:{escalation_id}", "acknowledged")


class StepState(StrEnum):
    """How the API shows a step: the stored status, with overdue told apart from open."""

    OPEN = "open"
    OVERDUE = "overdue"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"


def step_state(status: StepStatus, ack_due_at: datetime | None, now: datetime) -> StepState:
    """Open steps past their acknowledgement deadline are overdue; closed steps keep status."""
    if status is StepStatus.ACKNOWLEDGED:
        return StepState.ACKNOWLEDGED
    if status is StepStatus.CANCELLED:
        return StepState.CANCELLED
    if ack_due_at is not None and require_aware(now, "now") >= ack_due_at:
        return StepState.OVERDUE
    return StepState.OPEN


def _timeframe_due(rules: PlanRules, flagged: datetime) -> datetime:
    timeframe = rules.level_policy.timeframe
    if timeframe.rule is TimeframeRule.ELAPSED:
        assert timeframe.within is not None  # the policy model guarantees it
        return flagged + timeframe.within  # UTC arithmetic: real elapsed time
    if timeframe.rule is TimeframeRule.SAME_BUSINESS_DAY:
        return rules.calendar.same_business_day_close(flagged)
    return _next_weekly_review(rules, flagged)


def _next_weekly_review(rules: PlanRules, after: datetime) -> datetime:
    review = rules.weekly_review
    return rules.calendar.weekly_review_after(after, review.time, review.week_starts_on)


def _is_business_time(rules: PlanRules, ack_due: AckDueRule | timedelta) -> bool:
    if ack_due is AckDueRule.SAME_BUSINESS_DAY:
        return True
    return ack_due is AckDueRule.TIMEFRAME and rules.level_policy.timeframe.rule in {
        TimeframeRule.SAME_BUSINESS_DAY,
        TimeframeRule.WEEKLY_REVIEW,
    }


def _step_from_policy(
    plan: EscalationPlan,
    index: int,
    step_policy: StepPolicy,
    *,
    reference: datetime,
    added_because: Literal["review_confirmed", "review_not_confirmed"] | None = None,
) -> PlanStep:
    rules = plan.rules
    calendar = rules.calendar
    if step_policy.notify is NotifyWhen.BUSINESS_HOURS:
        notify_at = calendar.next_open_moment(reference)
    else:
        notify_at = reference
    ack_due = step_policy.ack_due
    if ack_due is AckDueRule.TIMEFRAME:
        ack_due_at = plan.timeframe_due_at
    elif ack_due is AckDueRule.SAME_BUSINESS_DAY:
        ack_due_at = calendar.same_business_day_close(notify_at)
    else:
        ack_due_at = notify_at + ack_due
    # A step notified at the next opening may be told after an elapsed deadline has passed; its
    # acknowledgement is then due on notification (an immediate breach), never before it.
    ack_due_at = max(ack_due_at, notify_at)
    return PlanStep(
        index=index,
        escalation_id=escalation_id_for(
            plan.risk_id, plan.plan_version, plan.level, step_policy.kind, step_policy.role
        ),
        role=step_policy.role,
        kind=step_policy.kind,
        notify_at=notify_at,
        ack_due_at=ack_due_at,
        pre_breach_warning_at=_pre_breach_warning(
            rules, notify_at, ack_due_at, business_time=_is_business_time(rules, ack_due)
        ),
        breach_notifies=rules.level_policy.breach_notifies,
        reminders=rules.level_policy.reminders,
        added_because=added_because,
    )


def _pre_breach_warning(
    rules: PlanRules, notify_at: datetime, ack_due_at: datetime, *, business_time: bool
) -> datetime | None:
    """The instant the configured share of the acknowledgement window has passed.

    For a business-time deadline the window counts only that day's business hours: a Friday
    evening flag due Monday at close warns Monday afternoon, not on Sunday night. (The deadline
    is the close of the first business day on or after notification, so the business time in the
    window is that one day's hours after notification.)
    """
    window_start = notify_at
    if business_time:
        hours = rules.calendar.hours_on(rules.calendar.local_date(ack_due_at))
        if hours is not None:
            window_start = max(notify_at, hours[0])
    warning = window_start + (ack_due_at - window_start) * rules.pre_breach_warning_fraction
    return warning if notify_at < warning < ack_due_at else None


def _weekly_review_step(
    plan: EscalationPlan,
    index: int,
    review_at: datetime,
    added_because: Literal["review_confirmed", "review_not_confirmed"] | None = None,
) -> PlanStep:
    role = plan.rules.weekly_review.role
    return PlanStep(
        index=index,
        escalation_id=escalation_id_for(
            plan.risk_id, plan.plan_version, plan.level, StepKind.WEEKLY_REVIEW, role, review_at
        ),
        role=role,
        kind=StepKind.WEEKLY_REVIEW,
        notify_at=review_at,
        ack_due_at=None,
        pre_breach_warning_at=None,
        breach_notifies=None,
        reminders=None,
        added_because=added_because,
    )


# ---------------------------------------------------------------------------------------------
# Timers
# ---------------------------------------------------------------------------------------------


def plan_timers(plan: EscalationPlan) -> list[PlannedTimer]:
    """Timers of the plan's open steps, in firing order.

    Timers of acknowledged or cancelled steps are left out; :class:`AckOutcome` names them for
    cancellation when the step closes.
    """
    timers = [
        timer
        for step in plan.steps
        if step.status is StepStatus.OPEN
        for timer in _step_timers(plan, step)
    ]
    return sorted(timers, key=lambda timer: (timer.fire_at, timer.step, timer.key))


def timer_key(
    escalation_id: str, reason: EscalationReason, n: int, role: Role | None = None
) -> str:
    """``{escalation_id}:{reason}:{n}``, suffixed with ``:{role}`` for the next role's copy."""
    key = f"{escalation_id}:{reason.value}:{n}"
    return key if role is None else f"{key}:{role.value}"


def _step_timers(plan: EscalationPlan, step: PlanStep) -> Iterator[PlannedTimer]:
    def timer(
        reason: EscalationReason,
        n: int,
        fire_at: datetime,
        role: Role,
        attempt: int = 1,
        repeat_every: timedelta | None = None,
    ) -> PlannedTimer:
        return PlannedTimer(
            key=timer_key(step.escalation_id, reason, n, None if role is step.role else role),
            escalation_id=step.escalation_id,
            risk_id=plan.risk_id,
            plan_version=plan.plan_version,
            level=plan.level,
            step=step.index,
            role=role,
            reason=reason,
            fire_at=fire_at,
            attempt=attempt,
            ack_due_at=step.ack_due_at,
            timeframe_due_at=plan.timeframe_due_at,
            repeat_every=repeat_every,
        )

    if step.kind is StepKind.WEEKLY_REVIEW:
        yield timer(EscalationReason.WEEKLY_REVIEW, 1, step.notify_at, step.role)
        return
    yield timer(EscalationReason.INITIAL, 1, step.notify_at, step.role)
    if step.pre_breach_warning_at is not None:
        yield timer(EscalationReason.PRE_BREACH_WARNING, 1, step.pre_breach_warning_at, step.role)
    if step.ack_due_at is None:
        return
    targets = [step.role] if step.breach_notifies is None else [step.role, step.breach_notifies]
    for role in targets:
        yield timer(EscalationReason.BREACH, 1, step.ack_due_at, role)
    if step.reminders is None:
        return
    for n in range(1, step.reminders.max_count + 1):
        every = step.reminders.every
        fire_at = step.ack_due_at + every * n
        for role in targets:
            yield timer(EscalationReason.REMINDER, n, fire_at, role, n + 1, every)


def escalation_due(
    plan: EscalationPlan,
    timer: PlannedTimer,
    *,
    title: str = "",
    missed: MissedReminders | None = None,
) -> EscalationDue:
    """The ``escalation-due`` payload of a fired timer (``missed``: the reminders it stands for)."""
    return EscalationDue(
        escalation_id=timer.escalation_id,
        risk_id=plan.risk_id,
        level=plan.level,
        step=timer.step,
        target_role=timer.role,
        reason=timer.reason,
        due_at=timer.fire_at,
        ack_due_at=timer.ack_due_at,
        timeframe_due_at=plan.timeframe_due_at,
        attempt=timer.attempt,
        title=title[:500],
        plan_version=plan.plan_version,
        missed_reminders=missed.number if missed else 0,
        missed_since=missed.since if missed else None,
    )


# ---------------------------------------------------------------------------------------------
# Catching up
# ---------------------------------------------------------------------------------------------


class DueTimer(NamedTuple):
    """What the catch-up rule reads of a claimed timer (a :class:`PlannedTimer`, or its row)."""

    escalation_id: str
    role: Role
    reason: EscalationReason
    due_at: datetime
    repeat_every: timedelta | None

    @classmethod
    def of(cls, timer: PlannedTimer) -> DueTimer:
        return cls(timer.escalation_id, timer.role, timer.reason, timer.fire_at, timer.repeat_every)


class MissedReminders(NamedTuple):
    """Reminders a firing stands for: how many were not sent, and since when they were due."""

    number: int
    since: datetime


@dataclass(frozen=True)
class CatchUp:
    """What a claim does with its timers, by their position in the claim.

    A position in ``covered_by`` is skipped (recorded, not sent), covered by the firing at the
    position it maps to; every other position fires, with ``missed`` when it stands for skipped
    reminders.
    """

    covered_by: dict[int, int] = field(default_factory=dict)
    missed: dict[int, MissedReminders] = field(default_factory=dict)

    def fires(self, position: int) -> bool:
        return position not in self.covered_by


def catch_up(timers: Sequence[DueTimer], now: datetime) -> CatchUp:
    """The catch-up rule for timers claimed at ``now``: coalesce reminders that fell behind.

    Reminders of one step for one role form a series, ``repeat_every`` apart. When a claim finds
    reminders of a series due that are overdue by more than that interval (after a backlog, a
    replay of old events, or hours of downtime), only the latest due one fires, telling how many
    were missed and since when; the others are skipped, and the caller records them as such. A
    reminder at most one interval late fires as usual, and so does every other reason: a step's
    first notification, its pre-breach warning and its breach (with the next role's copy) are
    never coalesced, so deadlines and breaches stay as they were.
    """
    now = require_aware(now, "now")
    series: dict[tuple[str, Role], list[int]] = {}
    for position, timer in enumerate(timers):
        if (
            timer.reason is EscalationReason.REMINDER
            and timer.repeat_every is not None
            and timer.due_at <= now
        ):
            series.setdefault((timer.escalation_id, timer.role), []).append(position)
    result = CatchUp()
    for positions in series.values():
        latest = max(positions, key=lambda position: timers[position].due_at)
        behind = [
            position
            for position in positions
            if position != latest and _more_than_a_repeat_late(timers[position], now)
        ]
        if not behind:
            continue
        for position in behind:
            result.covered_by[position] = latest
        since = min(timers[position].due_at for position in behind)
        result.missed[latest] = MissedReminders(len(behind), since)
    return result


def _more_than_a_repeat_late(timer: DueTimer, now: datetime) -> bool:
    return timer.repeat_every is not None and now - timer.due_at > timer.repeat_every


# ---------------------------------------------------------------------------------------------
# Acknowledgements
# ---------------------------------------------------------------------------------------------


def find_step(plan: EscalationPlan, escalation_id: str) -> int | None:
    """Index of the step with ``escalation_id`` (what an acknowledgement names), or None."""
    return next((step.index for step in plan.steps if step.escalation_id == escalation_id), None)


def may_acknowledge(step: PlanStep, role: Role) -> bool:
    """The step's own role, the role its breach reaches, a higher support role, or an admin."""
    if role in {step.role, step.breach_notifies, Role.ADMIN}:
        return True
    return (
        step.role in SUPPORT_CHAIN
        and role in SUPPORT_CHAIN
        and SUPPORT_CHAIN.index(role) > SUPPORT_CHAIN.index(step.role)
    )


def apply_acknowledgement(
    plan: EscalationPlan,
    step: int,
    role: Role,
    decision: ReviewDecision | None,
    at: datetime,
) -> AckOutcome:
    """What acknowledging step ``step`` of ``plan`` as ``role`` at ``at`` does.

    A review step's acknowledgement is the Support Manager's decision: confirmed adds the
    Risk Management step (and drops the weekly review), not confirmed routes the risk to the next
    Weekly Risk Review. Either way the review supersedes acknowledgements still pending from
    roles earlier in the path.
    """
    at = require_aware(at, "at")
    if not 0 <= step < len(plan.steps):
        return _refused(plan, step, AckStatus.REJECTED, f"the plan has no step {step}")
    target = plan.steps[step]
    if target.status is not StepStatus.OPEN:
        return _refused(
            plan, step, AckStatus.ALREADY_CLOSED, f"step {step} is already {target.status.value}"
        )
    if not may_acknowledge(target, role):
        return _refused(
            plan,
            step,
            AckStatus.REJECTED,
            f"role {role.value!r} may not acknowledge the {target.role.value} step",
        )
    if target.kind is StepKind.REVIEW and decision is None:
        return _refused(plan, step, AckStatus.REJECTED, "a review needs a decision")
    if target.kind is not StepKind.REVIEW and decision is not None:
        return _refused(
            plan, step, AckStatus.REJECTED, f"step {step} is not a review; it takes no decision"
        )

    steps = list(plan.steps)
    cancel: list[str] = []

    def close(index: int, status: StepStatus, **changes: Any) -> None:
        steps[index] = steps[index].model_copy(
            update={"status": status, "closed_at": at, **changes}
        )
        cancel.extend(timer.key for timer in _step_timers(plan, plan.steps[index]))

    close(step, StepStatus.ACKNOWLEDGED, acknowledged_role=role, decision=decision)
    added: list[PlanStep] = []
    routed_at: datetime | None = None
    if target.kind is StepKind.REVIEW:
        for earlier in plan.steps[:step]:
            if earlier.kind is StepKind.ACKNOWLEDGE and earlier.status is StepStatus.OPEN:
                close(earlier.index, StepStatus.CANCELLED)
        if decision is ReviewDecision.CONFIRMED:
            added, confirmed_cancels = _confirm(plan, steps, at)
            cancel.extend(confirmed_cancels)
        else:
            added, routed_at = _route_to_weekly_review(plan, steps, at)

    updated = plan.model_copy(update={"steps": (*steps, *added)})
    late_by = at - target.ack_due_at if target.ack_due_at and at > target.ack_due_at else None
    return AckOutcome(
        status=AckStatus.ACCEPTED,
        plan=updated,
        step=step,
        late=late_by is not None,
        late_by=late_by,
        cancel_timer_keys=tuple(dict.fromkeys(cancel)),
        added_steps=tuple(added),
        new_timers=tuple(
            sorted(
                (timer for new_step in added for timer in _step_timers(updated, new_step)),
                key=lambda timer: (timer.fire_at, timer.key),
            )
        ),
        routed_to_weekly_review_at=routed_at,
    )


def _confirm(
    plan: EscalationPlan, steps: list[PlanStep], at: datetime
) -> tuple[list[PlanStep], list[str]]:
    # A confirmed risk leaves the weekly-review route for Risk Management's joint assessment.
    cancel: list[str] = []
    for index, candidate in enumerate(steps):
        if candidate.kind is StepKind.WEEKLY_REVIEW and candidate.status is StepStatus.OPEN:
            steps[index] = candidate.model_copy(
                update={"status": StepStatus.CANCELLED, "closed_at": at}
            )
            cancel.extend(timer.key for timer in _step_timers(plan, candidate))
    confirmed = plan.rules.level_policy.on_review_confirmed
    if confirmed is None:
        return [], cancel
    new_step = _step_from_policy(
        plan, len(steps), confirmed, reference=at, added_because="review_confirmed"
    )
    return [new_step], cancel


def _route_to_weekly_review(
    plan: EscalationPlan, steps: list[PlanStep], at: datetime
) -> tuple[list[PlanStep], datetime]:
    upcoming = [
        step.notify_at
        for step in steps
        if step.kind is StepKind.WEEKLY_REVIEW
        and step.status is StepStatus.OPEN
        and step.notify_at > at
    ]
    if upcoming:
        return [], min(upcoming)
    review_at = _next_weekly_review(plan.rules, at)
    return [_weekly_review_step(plan, len(steps), review_at, "review_not_confirmed")], review_at


def _refused(plan: EscalationPlan, step: int, status: AckStatus, detail: str) -> AckOutcome:
    return AckOutcome(status=status, plan=plan, step=step, detail=detail)


# ---------------------------------------------------------------------------------------------
# Preview
# ---------------------------------------------------------------------------------------------


def preview(
    level: RiskLevel | int,
    flagged_at: datetime,
    policy: EscalationPolicy,
    calendar: BusinessCalendar,
) -> dict[str, Any]:
    """The plan a risk flagged at ``flagged_at`` would get, as JSON-ready data.

    Times are ISO 8601 with the offset of the team's clock at that instant. Weekly-review
    steps are summarized by ``weekly_review_at`` rather than listed under ``steps``.
    """
    plan = build_plan(
        risk_id="preview", level=level, flagged_at=flagged_at, policy=policy, calendar=calendar
    )

    def local(instant: datetime | None) -> str | None:
        return None if instant is None else instant.astimezone(calendar.zone).isoformat()

    return {
        "level": int(plan.level),
        "flagged_at": local(plan.flagged_at),
        "timeframe_due_at": local(plan.timeframe_due_at),
        "weekly_review_at": local(plan.weekly_review_at),
        "steps": [
            {
                "role": step.role.value,
                "notify_at": local(step.notify_at),
                "ack_due_at": local(step.ack_due_at),
            }
            for step in plan.steps
            if step.kind is not StepKind.WEEKLY_REVIEW
        ],
    }
