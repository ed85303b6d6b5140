"""The escalation policy: who is told what, and by when, for each protocol level.

The policy file is the protocol's "Escalation Timeframes" table made executable. The defaults in
``config/policy.yaml`` are the protocol's; every number and route can be changed without code. A
plan copies the parts it needs when it is built (see :mod:`riskrelay.escalator.domain`), so
editing this file never changes an escalation that is already running.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from riskrelay.escalator.calendar import ConfigModel, LocalTime, Weekday, load_config_file
from riskrelay.shared.events import RiskLevel, Role

_SHORT_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_short_duration(value: Any) -> Any:
    # "15m", "24h", "2d" read better in a policy file than "PT15M"; ISO 8601 still works.
    if isinstance(value, str) and (match := _SHORT_DURATION.match(value.strip())):
        return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be a positive duration")
    return value


Duration = Annotated[timedelta, BeforeValidator(_parse_short_duration), AfterValidator(_positive)]
"""A positive duration: ISO 8601 (`PT15M`) or short form (`15m`, `24h`, `2d`)."""

# Roles that stand in the protocol's escalation path; the others (upstream systems, analysts,
# administrators) authenticate to the API but are never the target of an escalation.
ESCALATION_ROLES = frozenset(
    {
        Role.AGENT,
        Role.TEAM_LEAD,
        Role.SUPPORT_MANAGER,
        Role.SUPPORT_DIRECTOR,
        Role.RISK_MANAGEMENT,
    }
)


def _escalation_role(value: Role) -> Role:
    if value not in ESCALATION_ROLES:
        allowed = ", ".join(sorted(role.value for role in ESCALATION_ROLES))
        raise ValueError(f"{value.value!r} is not in the escalation path (use one of: {allowed})")
    return value


EscalationRole = Annotated[Role, AfterValidator(_escalation_role)]


class TimeframeRule(StrEnum):
    """How a level's protocol deadline is computed from the moment the risk was flagged."""

    ELAPSED = "elapsed"
    """Real time after flagging (`within`), whatever the wall clock does meanwhile."""
    SAME_BUSINESS_DAY = "same_business_day"
    """Close of the flag's business day, or of the next one when flagged after closing."""
    WEEKLY_REVIEW = "weekly_review"
    """The first Weekly Risk Review after flagging."""


class NotifyWhen(StrEnum):
    IMMEDIATELY = "immediately"
    """At the flag (or, for steps added later, the decision that added them)."""
    BUSINESS_HOURS = "business_hours"
    """Then if the team is open, otherwise at the next opening: nobody is woken up for it."""


class AckDueRule(StrEnum):
    TIMEFRAME = "timeframe"
    """The level's protocol deadline."""
    SAME_BUSINESS_DAY = "same_business_day"
    """Close of the business day of the notification (the next one after closing)."""


class StepKind(StrEnum):
    """What a plan step asks of its role."""

    ACKNOWLEDGE = "acknowledge"
    """Confirm the escalation was received."""
    REVIEW = "review"
    """Review the risk and decide: confirmed (Risk Management is told) or not (weekly review)."""
    WEEKLY_REVIEW = "weekly_review"
    """The risk is on the agenda of a Weekly Risk Review (added by plans, never in a policy)."""


class Timeframe(ConfigModel):
    rule: TimeframeRule = Field(description="How the deadline is computed.")
    within: Duration | None = Field(
        default=None, description="Real time after flagging; only (and always) for `elapsed`."
    )

    @model_validator(mode="after")
    def _within_matches_rule(self) -> Self:
        if self.rule is TimeframeRule.ELAPSED and self.within is None:
            raise ValueError("`within` is required when rule is `elapsed`")
        if self.rule is not TimeframeRule.ELAPSED and self.within is not None:
            raise ValueError(f"`within` is only allowed when rule is `elapsed`, not {self.rule}")
        return self


class StepPolicy(ConfigModel):
    """One role of a level's escalation path."""

    role: EscalationRole = Field(description="Role notified by this step.")
    kind: Literal[StepKind.ACKNOWLEDGE, StepKind.REVIEW] = Field(
        default=StepKind.ACKNOWLEDGE, description="Acknowledge receipt, or review and decide."
    )
    notify: NotifyWhen = Field(default=NotifyWhen.IMMEDIATELY, description="When to notify.")
    ack_due: AckDueRule | Duration = Field(
        default=AckDueRule.TIMEFRAME,
        description="When the acknowledgement is due: a rule, or a duration after notification.",
    )


class Reminders(ConfigModel):
    """Repeats of an unacknowledged step after its acknowledgement deadline passed."""

    every: Duration = Field(description="Interval between repeats, counted from the breach.")
    max_count: int = Field(ge=1, le=100, description="Repeats at most; timers are finite.")


class LevelPolicy(ConfigModel):
    """Escalation rules of one risk level."""

    timeframe: Timeframe = Field(description="The protocol deadline of the level.")
    steps: tuple[StepPolicy, ...] = Field(default=(), description="Roles notified, in path order.")
    reminders: Reminders | None = Field(
        default=None, description="Repeat unacknowledged steps after the breach."
    )
    breach_notifies: EscalationRole | None = Field(
        default=None,
        description="Next role reached when a step breaches (and by its reminders).",
    )
    weekly_review: bool = Field(
        default=False, description="Put the risk on the agenda of the next Weekly Risk Review."
    )
    on_review_confirmed: StepPolicy | None = Field(
        default=None, description="Step added when the review step's decision confirms the risk."
    )

    @field_validator("steps")
    @classmethod
    def _distinct_steps(cls, steps: tuple[StepPolicy, ...]) -> tuple[StepPolicy, ...]:
        # A step's escalation id derives from its role and kind, so they must be unique.
        seen: set[tuple[Role, StepKind]] = set()
        for step in steps:
            if (step.role, step.kind) in seen:
                raise ValueError(f"role {step.role.value!r} appears twice as a {step.kind} step")
            seen.add((step.role, step.kind))
        if sum(step.kind is StepKind.REVIEW for step in steps) > 1:
            raise ValueError("at most one step may be a review")
        return steps

    @model_validator(mode="after")
    def _confirmation_needs_review(self) -> Self:
        if self.on_review_confirmed is None:
            return self
        if not any(step.kind is StepKind.REVIEW for step in self.steps):
            raise ValueError("on_review_confirmed needs a step with kind `review`")
        if self.on_review_confirmed.kind is not StepKind.ACKNOWLEDGE:
            raise ValueError("on_review_confirmed must be an `acknowledge` step")
        if any(
            step.kind is StepKind.ACKNOWLEDGE and step.role is self.on_review_confirmed.role
            for step in self.steps
        ):
            raise ValueError(
                f"on_review_confirmed.role {self.on_review_confirmed.role.value!r} already has "
                "an acknowledge step in this level"
            )
        if self.on_review_confirmed.ack_due is AckDueRule.TIMEFRAME:
            raise ValueError(
                "on_review_confirmed.ack_due cannot be `timeframe`: the level's deadline may "
                "already have passed when the review confirms the risk"
            )
        return self


_DEFAULT_REVIEW_TIME = time(10, 0)


class WeeklyReviewPolicy(ConfigModel):
    """The Weekly Risk Review: the first business day of each week, at a fixed local time."""

    time: LocalTime = Field(default=_DEFAULT_REVIEW_TIME, description="Local start time, `HH:MM`.")
    week_starts_on: Weekday = Field(default="mon", description="First day of the week.")
    role: EscalationRole = Field(
        default=Role.SUPPORT_MANAGER, description="Role told that the risk is on the agenda."
    )


class EscalationPolicy(ConfigModel):
    """The whole escalation policy file."""

    version: str = Field(
        min_length=1, max_length=64, description="Policy version, recorded in every plan."
    )
    pre_breach_warning_fraction: float = Field(
        default=0.75,
        gt=0.0,
        lt=1.0,
        description="Warn when this share of an acknowledgement window has passed.",
    )
    weekly_review: WeeklyReviewPolicy = Field(
        default_factory=WeeklyReviewPolicy, description="When the Weekly Risk Review is held."
    )
    levels: dict[RiskLevel, LevelPolicy] = Field(description="Rules for each level, 1 to 5.")

    @field_validator("levels")
    @classmethod
    def _every_level(cls, levels: dict[RiskLevel, LevelPolicy]) -> dict[RiskLevel, LevelPolicy]:
        missing = [str(int(level)) for level in RiskLevel if level not in levels]
        if missing:
            raise ValueError(f"missing level(s) {', '.join(missing)}: every level needs rules")
        return levels

    def for_level(self, level: RiskLevel | int) -> LevelPolicy:
        return self.levels[RiskLevel(level)]


DEFAULT_POLICY_FILE = "policy.yaml"


def load_policy(path: Path | None = None) -> EscalationPolicy:
    """Load a policy file, or the protocol defaults shipped in ``config/policy.yaml``."""
    return load_config_file(EscalationPolicy, path, DEFAULT_POLICY_FILE)
