"""The Risk Register's pure decisions: lifecycle, scoring, review cadence, merging, history.

Nothing here talks to Kafka or PostgreSQL or reads the clock: every function takes the time it
needs as an argument, so a replay of the same events produces the same register, version by
version. ``handlers.py`` decodes events, calls these functions, persists what they return and
publishes it.

Lifecycle (the protocol's flowchart "Risk Management Notification -> Joint Assessment ->
Response Plan Development", continued through mitigation to a verified closure)::

    identified             -> escalated | under_joint_assessment | closed
    escalated              -> under_joint_assessment | closed
    under_joint_assessment -> response_planned | closed
    response_planned       -> mitigating | monitoring | under_joint_assessment
    mitigating             -> monitoring | response_planned
    monitoring             -> closed | mitigating
    closed                 -> reopened
    reopened               -> escalated | under_joint_assessment

Every move to ``closed`` needs a resolution verification.

:data:`TRANSITIONS` is the authoritative table, with the roles allowed for each move and why
the move exists; everything else (``ALLOWED_TARGETS``, the error messages, the tests) is derived
from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from riskrelay.shared.events import (
    EscalationAcknowledged,
    EscalationDue,
    EscalationReason,
    MitigationPlan,
    ReviewDecision,
    RiskClassified,
    RiskLevel,
    RiskRegisterEntry,
    RiskStatus,
    Role,
    Treatment,
)

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class RegisterError(Exception):
    """Base of every refusal the register's domain makes; handlers map it to 409/422 or a DLQ."""


class IllegalTransition(RegisterError):
    """The lifecycle table has no edge from ``current`` to ``target``."""

    def __init__(self, current: RiskStatus, target: RiskStatus) -> None:
        self.current = current
        self.target = target
        self.allowed_targets = ALLOWED_TARGETS[current]
        allowed = ", ".join(sorted(self.allowed_targets)) or "none"
        super().__init__(
            f"cannot move a risk from {current.value!r} to {target.value!r}; "
            f"allowed from {current.value!r}: {allowed}"
        )


class TransitionNotPermitted(RegisterError):
    """The transition exists, but the acting role may not perform it."""

    def __init__(self, current: RiskStatus, target: RiskStatus, role: Role) -> None:
        self.current = current
        self.target = target
        self.role = role
        self.allowed_roles = TRANSITIONS[(current, target)].roles
        allowed = ", ".join(sorted(self.allowed_roles))
        super().__init__(
            f"role {role.value!r} may not move a risk from {current.value!r} to "
            f"{target.value!r}; allowed roles: {allowed}"
        )


class ResolutionVerificationRequired(RegisterError):
    """Closing needs the resolution verification Risk Management asked for (protocol, 'From
    Risk Management to Customer Support: Resolution verification requirements')."""

    def __init__(self, current: RiskStatus) -> None:
        self.current = current
        super().__init__(
            f"cannot close a risk (from {current.value!r}) without a resolution verification"
        )


class NotRegistrable(RegisterError):
    """Levels 1-2 are documented in the ticket and the weekly review, not in the register."""

    def __init__(self, risk_id: str, level: RiskLevel) -> None:
        self.risk_id = risk_id
        self.level = level
        super().__init__(
            f"risk {risk_id!r} is level {int(level)} ({level.label}); only levels "
            f"{int(MIN_REGISTRABLE_LEVEL)}-5 are recorded in the Risk Register"
        )


class RiskMismatch(RegisterError):
    """A classification was merged into the entry of a different risk: a handler bug."""


class InvalidScore(RegisterError):
    """A likelihood, impact or residual score outside its range."""


# ---------------------------------------------------------------------------------------------
# Lifecycle table
# ---------------------------------------------------------------------------------------------

S = RiskStatus
_RM = Role.RISK_MANAGEMENT
_SM = Role.SUPPORT_MANAGER
_ADMIN = Role.ADMIN


@dataclass(frozen=True)
class Transition:
    """One edge of the lifecycle: who may take it, whether the service takes it on its own."""

    source: RiskStatus
    target: RiskStatus
    roles: frozenset[Role]
    automatic: bool
    why: str


def _edge(
    source: RiskStatus, target: RiskStatus, roles: Iterable[Role], why: str, *, auto: bool = False
) -> tuple[tuple[RiskStatus, RiskStatus], Transition]:
    # Admin can always correct a mistaken status, so it is on every edge by construction.
    return (source, target), Transition(source, target, frozenset({*roles, _ADMIN}), auto, why)


TRANSITIONS: Mapping[tuple[RiskStatus, RiskStatus], Transition] = dict(
    [
        _edge(
            S.IDENTIFIED,
            S.ESCALATED,
            [_RM, _SM],
            "Risk Management was notified: an escalation step reached it (levels 4-5), or the "
            "Support Manager confirmed a level 3 risk (flowchart G -> H).",
            auto=True,
        ),
        _edge(
            S.IDENTIFIED,
            S.UNDER_JOINT_ASSESSMENT,
            [_RM],
            "Risk Management picked the risk up from the register topic before the escalation "
            "notice reached it; starting the assessment implies it was notified.",
        ),
        _edge(
            S.IDENTIFIED,
            S.CLOSED,
            [_RM, _SM],
            "A false positive, or a level 3 risk the Support Manager did not confirm and that "
            "was resolved in Customer Support; needs a resolution verification.",
        ),
        _edge(
            S.ESCALATED,
            S.UNDER_JOINT_ASSESSMENT,
            [_RM, _SM],
            "Joint Assessment starts (flowchart H -> I); either side of the joint team may.",
        ),
        _edge(
            S.ESCALATED,
            S.CLOSED,
            [_RM],
            "Risk Management dismisses the risk after notification; needs a verification.",
        ),
        _edge(
            S.UNDER_JOINT_ASSESSMENT,
            S.RESPONSE_PLANNED,
            [_RM],
            "Risk Management leads the formal assessment and develops the response plan "
            "(flowchart I -> J).",
        ),
        _edge(
            S.UNDER_JOINT_ASSESSMENT,
            S.CLOSED,
            [_RM],
            "The assessment finds no residual risk to treat; needs a verification.",
        ),
        _edge(
            S.RESPONSE_PLANNED,
            S.MITIGATING,
            [_RM, _SM],
            "Mitigation starts; the Support Manager oversees mitigation in Customer Support.",
        ),
        _edge(
            S.RESPONSE_PLANNED,
            S.MONITORING,
            [_RM],
            "The chosen treatment is to accept (or transfer) the risk: nothing to mitigate, "
            "only to monitor.",
        ),
        _edge(
            S.RESPONSE_PLANNED,
            S.UNDER_JOINT_ASSESSMENT,
            [_RM],
            "The plan was rejected; the risk goes back to assessment.",
        ),
        _edge(
            S.MITIGATING,
            S.MONITORING,
            [_RM, _SM],
            "Mitigation is in place; its effectiveness is now monitored.",
        ),
        _edge(
            S.MITIGATING,
            S.RESPONSE_PLANNED,
            [_RM],
            "The mitigation cannot be carried out as planned; the plan is revised.",
        ),
        _edge(
            S.MONITORING,
            S.CLOSED,
            [_RM],
            "Risk Management verified the resolution (monitoring effectiveness is its role).",
        ),
        _edge(
            S.MONITORING,
            S.MITIGATING,
            [_RM, _SM],
            "Monitoring shows the mitigation is not effective; mitigation resumes.",
        ),
        _edge(
            S.CLOSED,
            S.REOPENED,
            [_RM, _SM],
            "The risk recurred: new reports arrived for it, or someone found the resolution "
            "did not hold.",
            auto=True,
        ),
        _edge(
            S.REOPENED,
            S.ESCALATED,
            [_RM, _SM],
            "Risk Management is notified of the recurrence.",
            auto=True,
        ),
        _edge(
            S.REOPENED,
            S.UNDER_JOINT_ASSESSMENT,
            [_RM, _SM],
            "The joint team reassesses the recurrence directly.",
        ),
    ]
)

ALLOWED_TARGETS: Mapping[RiskStatus, frozenset[RiskStatus]] = {
    status: frozenset(target for (source, target) in TRANSITIONS if source == status)
    for status in RiskStatus
}

OPEN_STATUSES: frozenset[RiskStatus] = frozenset(RiskStatus) - {RiskStatus.CLOSED}

MIN_REGISTRABLE_LEVEL = RiskLevel.MEDIUM


def is_registrable(level: RiskLevel | int) -> bool:
    """Whether a *new* risk of this level enters the register (protocol: levels 3-5)."""
    return int(level) >= int(MIN_REGISTRABLE_LEVEL)


def should_register(entry: RiskRegisterEntry | None, classified: RiskClassified) -> bool:
    """Whether a classification is the register's business.

    A risk that was once registered stays registered even when a human override later lowers
    it below level 3: dropping it would erase the audit trail of a risk people already acted on.
    """
    return entry is not None or is_registrable(classified.level)


def is_transition_allowed(current: RiskStatus, target: RiskStatus) -> bool:
    return (current, target) in TRANSITIONS


def check_transition(
    current: RiskStatus,
    target: RiskStatus,
    *,
    role: Role | None,
    resolution_verification: str | None = None,
) -> Transition:
    """Validate one move; return its table row or raise the specific refusal.

    ``role=None`` means the service itself acts on an event; it may take only the edges marked
    ``automatic``. The order of checks matters for the message people see: an edge that does not
    exist is reported as such even to a role that could not take it anyway.
    """
    transition = TRANSITIONS.get((current, target))
    if transition is None:
        raise IllegalTransition(current, target)
    if role is None:
        if not transition.automatic:
            raise IllegalTransition(current, target)
    elif role not in transition.roles:
        raise TransitionNotPermitted(current, target, role)
    if target is RiskStatus.CLOSED and not (resolution_verification or "").strip():
        raise ResolutionVerificationRequired(current)
    return transition


# ---------------------------------------------------------------------------------------------
# Automatic transitions driven by escalation events
# ---------------------------------------------------------------------------------------------

# A weekly-review notice goes to the joint meeting, not to Risk Management as an escalation of
# this risk, so it does not count as "Risk Management notified".
_NOTIFYING_REASONS = frozenset(
    {
        EscalationReason.INITIAL,
        EscalationReason.REMINDER,
        EscalationReason.PRE_BREACH_WARNING,
        EscalationReason.BREACH,
    }
)


def _automatic_target(current: RiskStatus, target: RiskStatus) -> RiskStatus | None:
    transition = TRANSITIONS.get((current, target))
    return target if transition is not None and transition.automatic else None


def status_after_escalation_due(current: RiskStatus, due: EscalationDue) -> RiskStatus | None:
    """The status an escalation notice moves the risk to, or ``None`` when it changes nothing.

    Only a notice addressed to Risk Management counts (flowchart H). Later notices (reminders
    while the risk is already under assessment) are no-ops rather than errors: the escalator
    does not know the register's status, and a late timer must not break the consumer.
    """
    if due.target_role is not Role.RISK_MANAGEMENT or due.reason not in _NOTIFYING_REASONS:
        return None
    return _automatic_target(current, RiskStatus.ESCALATED)


def status_after_acknowledgement(
    current: RiskStatus, ack: EscalationAcknowledged
) -> RiskStatus | None:
    """The status an acknowledgement moves the risk to, or ``None``.

    A Support Manager's *confirmed* Level 3 review sends the risk to Risk Management
    (flowchart G -> H). An acknowledgement by Risk Management itself proves it was notified.
    A *not confirmed* review changes nothing here: closing needs a resolution verification,
    which only a person can give, and the risk stays on the weekly review until then.
    """
    confirmed = ack.role is Role.SUPPORT_MANAGER and ack.decision is ReviewDecision.CONFIRMED
    if confirmed or ack.role is Role.RISK_MANAGEMENT:
        return _automatic_target(current, RiskStatus.ESCALATED)
    return None


def apply_escalation_signal(
    entry: RiskRegisterEntry, signal: EscalationDue | EscalationAcknowledged, at: datetime
) -> RiskRegisterEntry:
    """The entry after an escalation notice or acknowledgement (the same object if unchanged)."""
    if isinstance(signal, EscalationDue):
        target = status_after_escalation_due(entry.status, signal)
    else:
        target = status_after_acknowledgement(entry.status, signal)
    if target is None:
        return entry
    return apply_transition(entry, target, role=None, at=at)


def signal_matters_once_registered(signal: EscalationDue | EscalationAcknowledged) -> bool:
    """Whether a signal for a risk the register does not know yet must be kept for later.

    The escalator and the register read different topics, so Risk Management's notice can
    arrive before the classification that registers the risk; a new entry starts
    ``identified``, so a signal that would move an ``identified`` entry is worth keeping.
    """
    if isinstance(signal, EscalationDue):
        return status_after_escalation_due(RiskStatus.IDENTIFIED, signal) is not None
    return status_after_acknowledgement(RiskStatus.IDENTIFIED, signal) is not None


# ---------------------------------------------------------------------------------------------
# Policy (configuration)
# ---------------------------------------------------------------------------------------------

_POLICY_CONFIG = ConfigDict(frozen=True, extra="forbid")


def _strictly_increasing(name: str, values: Sequence[float]) -> None:
    if any(later <= earlier for earlier, later in pairwise(values)):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)}")


class ScoringPolicy(BaseModel):
    """How default likelihood/impact and the residual score are derived.

    Defaults (all configurable):

    - **likelihood** (1-5): a tier from *distinct customers* (1 -> 1, 2-4 -> 2, 5-9 -> 3,
      10-49 -> 4, 50+ -> 5). The *report rate* (tickets per day between first and last report,
      the span counted as at least one hour) gives a second tier (<1 -> 1, 1-2 -> 2, 3-9 -> 3,
      10-49 -> 4, 50+ -> 5) that may raise likelihood by at most one step over the customer tier,
      because one customer writing often is not a widespread risk. A level floor then applies
      (level 3 -> 2, level 4 -> 3, level 5 -> 4): the protocol defines level 4 as "multiple
      customers" and level 5 as an immediate threat.
    - **impact** (1-5): the risk level itself (3, 4, 5), plus one step (capped at 5) when a
      high-impact segment (enterprise, public sector) is affected.
    - **residual**: an analyst-provided residual score wins (it must not exceed the inherent
      score). Otherwise, with a treatment chosen, ``ceil(inherent x factor)`` with factors
      accept 1.0, transfer 0.6, mitigate 0.5, avoid 0.2 (at least 1). Without a treatment the
      residual score stays unset: nothing has been assessed yet.
    """

    model_config = _POLICY_CONFIG

    customer_thresholds: tuple[int, int, int, int] = Field(
        default=(2, 5, 10, 50),
        description="Distinct customers at which likelihood reaches 2, 3, 4 and 5.",
    )
    daily_rate_thresholds: tuple[float, float, float, float] = Field(
        default=(1.0, 3.0, 10.0, 50.0),
        description="Reports per day at which the rate tier reaches 2, 3, 4 and 5.",
    )
    likelihood_floor_by_level: dict[RiskLevel, int] = Field(
        default={RiskLevel.MEDIUM: 2, RiskLevel.HIGH: 3, RiskLevel.CRITICAL: 4},
        description="Minimum likelihood per level.",
    )
    high_impact_segments: frozenset[str] = Field(
        default=frozenset({"enterprise", "public_sector"}),
        description="Customer segments that raise impact by one step.",
    )
    treatment_factors: dict[Treatment, float] = Field(
        default={
            Treatment.ACCEPT: 1.0,
            Treatment.TRANSFER: 0.6,
            Treatment.MITIGATE: 0.5,
            Treatment.AVOID: 0.2,
        },
        description="Residual = ceil(inherent x factor) when no analyst residual is given.",
    )

    @field_validator("customer_thresholds", "daily_rate_thresholds")
    @classmethod
    def _increasing(cls, value: tuple[float, ...], info: ValidationInfo) -> tuple[float, ...]:
        name = info.field_name or "thresholds"
        _strictly_increasing(name, value)
        if value[0] <= 0:
            raise ValueError(f"{name} must be positive, got {list(value)}")
        return value

    @field_validator("likelihood_floor_by_level")
    @classmethod
    def _floors_in_range(cls, value: dict[RiskLevel, int]) -> dict[RiskLevel, int]:
        for level, floor in value.items():
            if not 1 <= floor <= 5:
                raise ValueError(f"likelihood floor for level {int(level)} must be 1-5: {floor}")
        return value

    @field_validator("treatment_factors")
    @classmethod
    def _factors_complete(cls, value: dict[Treatment, float]) -> dict[Treatment, float]:
        missing = set(Treatment) - set(value)
        if missing:
            raise ValueError(f"treatment_factors lacks: {', '.join(sorted(missing))}")
        for treatment, factor in value.items():
            if not 0.0 < factor <= 1.0:
                raise ValueError(f"treatment factor for {treatment.value!r} must be in (0, 1]")
        return value


class RegisterPolicy(BaseModel):
    """The register's configuration (YAML; see :func:`load_register_policy`).

    Review cadence defaults: level 5 weekly, level 4 every two weeks, level 3 every 30 days.
    Durations are ISO 8601 (``P7D``) or seconds. A risk lowered below level 3 by an override
    stays registered and is reviewed on the level 3 cadence.
    """

    model_config = _POLICY_CONFIG

    review_intervals: dict[RiskLevel, timedelta] = Field(
        default={
            RiskLevel.CRITICAL: timedelta(days=7),
            RiskLevel.HIGH: timedelta(days=14),
            RiskLevel.MEDIUM: timedelta(days=30),
        },
        description="Time from a review (or registration) to the next, per level 3-5.",
    )
    reopen_on_new_reports: bool = Field(
        default=True,
        description="A classification bringing a ticket the closed entry has not seen reopens it.",
    )
    max_ticket_ids: int = Field(
        default=1000, ge=1, le=1000, description="Linked ticket ids kept on an entry."
    )
    scoring: ScoringPolicy = Field(default_factory=ScoringPolicy)

    @field_validator("review_intervals")
    @classmethod
    def _intervals_complete(cls, value: dict[RiskLevel, timedelta]) -> dict[RiskLevel, timedelta]:
        required = {RiskLevel.MEDIUM, RiskLevel.HIGH, RiskLevel.CRITICAL}
        missing = required - set(value)
        if missing:
            raise ValueError(
                "review_intervals needs levels 3, 4 and 5; missing: "
                + ", ".join(str(int(level)) for level in sorted(missing))
            )
        for level, interval in value.items():
            if interval <= timedelta(0):
                raise ValueError(f"review interval for level {int(level)} must be positive")
        return value


DEFAULT_POLICY = RegisterPolicy()


class RegisterPolicyError(ValueError):
    """The policy file is missing, not YAML, or violates the schema; the message names where."""


def load_register_policy(path: Path) -> RegisterPolicy:
    """Read and validate the policy file; the only I/O in this module."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise RegisterPolicyError(f"{path}: cannot read register policy: {error}") from error
    try:
        return RegisterPolicy.model_validate(raw or {})
    except ValidationError as error:
        raise RegisterPolicyError(f"{path}: invalid register policy:\n{error}") from error


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def _check_scale(name: str, value: int) -> None:
    if not 1 <= value <= 5:
        raise InvalidScore(f"{name} must be 1-5, got {value}")


def inherent_score(likelihood: int, impact: int) -> int:
    """Likelihood x impact on the usual 5x5 matrix (1-25)."""
    _check_scale("likelihood", likelihood)
    _check_scale("impact", impact)
    return likelihood * impact


def residual_score(
    inherent: int,
    treatment: Treatment | None,
    *,
    analyst_residual: int | None = None,
    policy: ScoringPolicy = DEFAULT_POLICY.scoring,
) -> int | None:
    """Score after treatment; see :class:`ScoringPolicy` for the rule."""
    if not 1 <= inherent <= 25:
        raise InvalidScore(f"inherent score must be 1-25, got {inherent}")
    if analyst_residual is not None:
        if not 1 <= analyst_residual <= inherent:
            raise InvalidScore(
                f"residual score must be between 1 and the inherent score {inherent}, "
                f"got {analyst_residual}"
            )
        return analyst_residual
    if treatment is None:
        return None
    return max(1, math.ceil(inherent * policy.treatment_factors[treatment]))


def _tier(value: float, thresholds: Sequence[float]) -> int:
    return 1 + sum(1 for threshold in thresholds if value >= threshold)


def default_likelihood(
    level: RiskLevel,
    *,
    distinct_customers: int,
    ticket_count: int,
    first_reported_at: datetime,
    last_reported_at: datetime,
    policy: ScoringPolicy = DEFAULT_POLICY.scoring,
) -> int:
    """Likelihood from the evidence; see :class:`ScoringPolicy` for the rule."""
    customer_tier = _tier(distinct_customers, policy.customer_thresholds)
    span = max(last_reported_at - first_reported_at, timedelta(hours=1))
    per_day = ticket_count / (span / timedelta(days=1))
    rate_tier = _tier(per_day, policy.daily_rate_thresholds)
    likelihood = max(customer_tier, min(rate_tier, customer_tier + 1))
    floor = policy.likelihood_floor_by_level.get(level, 1)
    return min(5, max(likelihood, floor))


def default_impact(
    level: RiskLevel,
    *,
    customer_segments: Iterable[str],
    policy: ScoringPolicy = DEFAULT_POLICY.scoring,
) -> int:
    """Impact from the level and the segments hit; see :class:`ScoringPolicy`."""
    bump = 1 if policy.high_impact_segments.intersection(customer_segments) else 0
    return min(5, int(level) + bump)


# ---------------------------------------------------------------------------------------------
# Review cadence
# ---------------------------------------------------------------------------------------------


def review_interval(level: RiskLevel, policy: RegisterPolicy = DEFAULT_POLICY) -> timedelta:
    return policy.review_intervals.get(level, policy.review_intervals[RiskLevel.MEDIUM])


def next_review_at(
    level: RiskLevel, at: datetime, policy: RegisterPolicy = DEFAULT_POLICY
) -> datetime:
    """When the next review is due after a review (or registration) at ``at``."""
    return at + review_interval(level, policy)


def is_review_overdue(entry: RiskRegisterEntry, at: datetime) -> bool:
    """Whether the entry's review is late at ``at``.

    A closed risk is never overdue. An open risk without a scheduled review counts as overdue:
    it should not exist, and surfacing it is better than letting it sit unseen.
    """
    if entry.status is RiskStatus.CLOSED:
        return False
    return entry.next_review_at is None or entry.next_review_at <= at


# ---------------------------------------------------------------------------------------------
# Merging classifications
# ---------------------------------------------------------------------------------------------


def _union(existing: Iterable[Any], new: Iterable[Any], cap: int | None = None) -> list[Any]:
    """Order-preserving union: existing first, so replays keep a stable order."""
    merged = list(dict.fromkeys([*existing, *new]))
    return merged if cap is None else merged[:cap]


def _scores(
    likelihood: int, impact: int, treatment: Treatment | None, policy: ScoringPolicy
) -> tuple[int, int | None]:
    inherent = inherent_score(likelihood, impact)
    return inherent, residual_score(inherent, treatment, policy=policy)


def _new_entry(
    classified: RiskClassified, at: datetime, policy: RegisterPolicy
) -> RiskRegisterEntry:
    if not is_registrable(classified.level):
        raise NotRegistrable(classified.risk_id, classified.level)
    last_reported = max(classified.first_reported_at, classified.flagged_at, at)
    ticket_ids = _union([], [*classified.ticket_ids, classified.ticket_id], policy.max_ticket_ids)
    ticket_count = max(classified.ticket_count, len(ticket_ids))
    likelihood = default_likelihood(
        classified.level,
        distinct_customers=classified.distinct_customers,
        ticket_count=ticket_count,
        first_reported_at=classified.first_reported_at,
        last_reported_at=last_reported,
        policy=policy.scoring,
    )
    impact = default_impact(
        classified.level, customer_segments=classified.customer_segments, policy=policy.scoring
    )
    inherent, _ = _scores(likelihood, impact, None, policy.scoring)
    return RiskRegisterEntry(
        risk_id=classified.risk_id,
        version=1,
        title=classified.title,
        redacted_summary=classified.redacted_summary,
        level=classified.level,
        category=classified.category,
        status=RiskStatus.IDENTIFIED,
        first_reported_at=classified.first_reported_at,
        last_reported_at=last_reported,
        ticket_count=ticket_count,
        distinct_customers=classified.distinct_customers,
        customer_segments=_union([], classified.customer_segments),
        products=_union([], classified.products),
        indicators=_union([], classified.indicators),
        policy_version=classified.policy_version,
        likelihood=likelihood,
        impact=impact,
        inherent_score=inherent,
        next_review_at=next_review_at(classified.level, at, policy),
        updated_at=at,
        ticket_ids=ticket_ids,
    )


def merge_classification(
    entry: RiskRegisterEntry | None,
    classified: RiskClassified,
    at: datetime,
    *,
    policy: RegisterPolicy = DEFAULT_POLICY,
) -> RiskRegisterEntry:
    """Fold one classification into the risk's single register entry.

    ``at`` is the classification event's time (its CloudEvents ``time``, the event time of the
    ticket behind it), never the wall clock, so replays are identical.

    Rules, each chosen so that re-delivery and out-of-order delivery are harmless:

    - no entry yet: a new one (version 1, ``identified``); levels 1-2 raise :class:`NotRegistrable`.
    - level: the maximum seen, unless the classification carries a human override, which wins
      in both directions (a downgraded risk stays registered). Category, title and summary
      follow the classification that holds the current level.
    - segments, products, indicators, ticket ids: order-preserving unions; counts: maxima
      (classifications carry running totals, so the larger one is the newer truth).
    - likelihood/impact: raised to the evidence-based defaults, never lowered automatically
      (an analyst may have raised them); an override recomputes impact from the new level,
      since an override is an explicit statement about impact. When the inherent score
      changes, a treatment's residual is recomputed (an analyst's figure was relative to
      the old score).
    - review: an upgrade pulls the next review forward to the new level's cadence.
    - a closed entry that receives a ticket it has not seen is reopened (recurrence), if the
      policy says so; the old verification no longer holds and is cleared.
    - nothing changed: the same object is returned, version unchanged, so merging the same
      classification twice is idempotent and the handler can skip the write and the publish.
    """
    if entry is None:
        return _new_entry(classified, at, policy)
    if entry.risk_id != classified.risk_id:
        raise RiskMismatch(
            f"classification of {classified.risk_id!r} merged into entry {entry.risk_id!r}"
        )

    overridden = classified.override is not None
    takes_lead = overridden or classified.level >= entry.level
    level = classified.level if overridden else max(entry.level, classified.level)
    category = classified.category if takes_lead else entry.category
    title = classified.title if takes_lead else entry.title
    summary = classified.redacted_summary if takes_lead else entry.redacted_summary

    ticket_ids = _union(
        entry.ticket_ids, [*classified.ticket_ids, classified.ticket_id], policy.max_ticket_ids
    )
    ticket_count = max(entry.ticket_count, classified.ticket_count, len(ticket_ids))
    distinct_customers = max(entry.distinct_customers, classified.distinct_customers)
    segments = _union(entry.customer_segments, classified.customer_segments)
    first_reported = min(entry.first_reported_at, classified.first_reported_at)
    last_reported = max(entry.last_reported_at, classified.flagged_at, at)

    evidence_likelihood = default_likelihood(
        level,
        distinct_customers=distinct_customers,
        ticket_count=ticket_count,
        first_reported_at=first_reported,
        last_reported_at=last_reported,
        policy=policy.scoring,
    )
    evidence_impact = default_impact(level, customer_segments=segments, policy=policy.scoring)
    likelihood = max(entry.likelihood or 1, evidence_likelihood)
    impact = evidence_impact if overridden else max(entry.impact or 1, evidence_impact)
    inherent = inherent_score(likelihood, impact)
    residual = entry.residual_score
    if inherent != entry.inherent_score and entry.treatment is not None:
        residual = residual_score(inherent, entry.treatment, policy=policy.scoring)

    status = entry.status
    verification = entry.resolution_verification
    review_at = entry.next_review_at
    new_ticket = classified.ticket_id not in entry.ticket_ids
    if status is RiskStatus.CLOSED and new_ticket and policy.reopen_on_new_reports:
        status = RiskStatus.REOPENED
        verification = None
        review_at = next_review_at(level, at, policy)
    elif status is not RiskStatus.CLOSED and level != entry.level:
        tighter = next_review_at(level, at, policy)
        review_at = tighter if review_at is None else min(review_at, tighter)

    changes: dict[str, Any] = {
        "level": level,
        "category": category,
        "title": title,
        "redacted_summary": summary,
        "status": status,
        "resolution_verification": verification,
        "first_reported_at": first_reported,
        "last_reported_at": last_reported,
        "ticket_count": ticket_count,
        "distinct_customers": distinct_customers,
        "customer_segments": segments,
        "products": _union(entry.products, classified.products),
        "indicators": _union(entry.indicators, classified.indicators),
        "policy_version": classified.policy_version,
        "likelihood": likelihood,
        "impact": impact,
        "inherent_score": inherent,
        "residual_score": residual,
        "next_review_at": review_at,
        "ticket_ids": ticket_ids,
    }
    if all(getattr(entry, name) == value for name, value in changes.items()):
        return entry
    return _bump(entry, at, changes)


def _bump(entry: RiskRegisterEntry, at: datetime, changes: Mapping[str, Any]) -> RiskRegisterEntry:
    # Validate the result instead of model_copy(update=...), which would skip validation and
    # could publish an entry that violates the contract.
    data = entry.model_dump()
    data.update(changes)
    data["version"] = entry.version + 1
    data["updated_at"] = max(entry.updated_at, at)
    return RiskRegisterEntry.model_validate(data)


# ---------------------------------------------------------------------------------------------
# People's changes: status transitions and assessments
# ---------------------------------------------------------------------------------------------


def apply_transition(
    entry: RiskRegisterEntry,
    target: RiskStatus,
    *,
    role: Role | None,
    at: datetime,
    resolution_verification: str | None = None,
    policy: RegisterPolicy = DEFAULT_POLICY,
) -> RiskRegisterEntry:
    """Move the entry to ``target`` after :func:`check_transition`; returns the next version.

    Closing records the verification and ends the review schedule; reopening clears the
    verification (it no longer holds) and restarts the schedule from ``at``.
    """
    verification = resolution_verification or entry.resolution_verification
    check_transition(entry.status, target, role=role, resolution_verification=verification)
    changes: dict[str, Any] = {"status": target}
    if target is RiskStatus.CLOSED:
        changes["resolution_verification"] = verification
        changes["next_review_at"] = None
    elif target is RiskStatus.REOPENED:
        changes["resolution_verification"] = None
        changes["next_review_at"] = next_review_at(entry.level, at, policy)
    return _bump(entry, at, changes)


class Assessment(BaseModel):
    """What Risk Management records on an entry (protocol, "From Risk Management to Customer
    Support").

    A field left out is unchanged; a field given as ``None`` is cleared (a blank text too), as
    :func:`apply_assessment` says. Which fields were given is pydantic's ``model_fields_set``,
    so ``Assessment(owner=None)`` clears the owner while ``Assessment()`` changes nothing."""

    model_config = _POLICY_CONFIG

    owner: str | None = Field(default=None, max_length=256)
    likelihood: int | None = Field(default=None, ge=1, le=5)
    impact: int | None = Field(default=None, ge=1, le=5)
    treatment: Treatment | None = None
    residual_score: int | None = Field(
        default=None, ge=1, le=25, description="Analyst's residual; must not exceed inherent."
    )
    assessment: str | None = Field(default=None, max_length=20_000)
    mitigation: MitigationPlan | None = None
    communication_template: str | None = Field(default=None, max_length=20_000)
    resolution_verification: str | None = Field(default=None, max_length=8_000)
    prevention_measures: str | None = Field(default=None, max_length=8_000)
    reviewed: bool = Field(
        default=False, description="This update is a review: restart the review schedule."
    )


class ClearRefused(RegisterError):
    """A field the entry's current status depends on was cleared (see :data:`REQUIRED_WHILE`)."""

    def __init__(self, field: str, status: RiskStatus, why: str) -> None:
        self.field = field
        self.status = status
        self.why = why
        super().__init__(
            f"{field} cannot be cleared while the risk is {status.value.replace('_', ' ')}: {why}"
        )


@dataclass(frozen=True)
class Requirement:
    """The statuses in which an entry must keep a field once it has one, and why."""

    statuses: frozenset[RiskStatus]
    why: str


_PLANNED = frozenset({S.RESPONSE_PLANNED, S.MITIGATING, S.MONITORING})
_SCORED = Requirement(
    _PLANNED,
    "the response plan and its residual score were made against this score; set another "
    "value, or take the risk back to under joint assessment to reassess it",
)

# What the lifecycle depends on: the protocol has Risk Management lead the formal assessment
# and develop the response, so an entry in assessment or treatment needs an accountable owner;
# a planned response is a chosen treatment against an assessed score; mitigating carries out a
# mitigation plan; and a closed risk is closed only with a resolution verification.
REQUIRED_WHILE: Mapping[str, Requirement] = {
    "owner": Requirement(
        frozenset({S.UNDER_JOINT_ASSESSMENT, *_PLANNED}),
        "a risk under assessment or treatment needs an accountable owner; set another owner",
    ),
    "likelihood": _SCORED,
    "impact": _SCORED,
    "treatment": Requirement(
        _PLANNED,
        "the response plan is this treatment; choose another one, or take the risk back to "
        "under joint assessment to drop the plan",
    ),
    "mitigation": Requirement(
        frozenset({S.MITIGATING}),
        "the risk is being mitigated by this plan; change the plan, or move the risk back to "
        "response planned first",
    ),
    "resolution_verification": Requirement(
        frozenset({S.CLOSED}),
        "a risk is closed only with a resolution verification; reopen it first",
    ),
}

_TEXTS = (
    "owner",
    "assessment",
    "communication_template",
    "resolution_verification",
    "prevention_measures",
)
_SCORE_INPUTS = frozenset({"likelihood", "impact", "treatment", "residual_score"})


def _given(update: Assessment) -> dict[str, Any]:
    """The fields the update gives, with a blank text as ``None`` (both clear)."""
    given = {name: getattr(update, name) for name in update.model_fields_set if name != "reviewed"}
    for name in _TEXTS:
        if name in given and not (given[name] or "").strip():
            given[name] = None
    return given


def check_clears(entry: RiskRegisterEntry, changes: Mapping[str, Any]) -> None:
    """Refuse a change that empties a field the entry's status requires (:data:`REQUIRED_WHILE`).

    Only a real clear is refused: a field that is already empty stays so without complaint."""
    for name, requirement in REQUIRED_WHILE.items():
        if (
            name in changes
            and changes[name] is None
            and getattr(entry, name) is not None
            and entry.status in requirement.statuses
        ):
            raise ClearRefused(name, entry.status, requirement.why)


def apply_assessment(
    entry: RiskRegisterEntry,
    update: Assessment,
    at: datetime,
    *,
    policy: RegisterPolicy = DEFAULT_POLICY,
) -> RiskRegisterEntry:
    """Record an analyst's assessment; scores are recomputed with the rules of :class:`ScoringPolicy`.

    Clearing (a field given as ``None``):

    - likelihood or impact: the inherent score derived from them is cleared, and with it the
      residual score (there is nothing to score a treatment against);
    - treatment: the residual it gave is cleared, unless the update gives an analyst's residual;
    - residual score: the analyst's figure is dropped, so the residual follows the treatment
      again (``ceil(inherent x factor)``), and is empty without a treatment;
    - owner, mitigation and the free texts: simply emptied.

    A clear of a field the status requires raises :class:`ClearRefused`; a residual score given
    while likelihood or impact is empty raises :class:`InvalidScore`.
    """
    given = _given(update)
    changes: dict[str, Any] = {
        name: value for name, value in given.items() if name not in _SCORE_INPUTS
    }
    # Scores are recomputed only when the update touches them: an owner change must not replace
    # an analyst's residual with the treatment-factor figure.
    if given.keys() & _SCORE_INPUTS:
        likelihood = given.get("likelihood", entry.likelihood)
        impact = given.get("impact", entry.impact)
        treatment = given.get("treatment", entry.treatment)
        analyst_residual = given.get("residual_score")
        inherent: int | None = None
        residual: int | None = None
        if likelihood is not None and impact is not None:
            inherent = inherent_score(likelihood, impact)
            residual = residual_score(
                inherent, treatment, analyst_residual=analyst_residual, policy=policy.scoring
            )
        elif analyst_residual is not None:
            raise InvalidScore("a residual score needs likelihood and impact to be known")
        changes.update(
            likelihood=likelihood,
            impact=impact,
            treatment=treatment,
            inherent_score=inherent,
            residual_score=residual,
        )
    check_clears(entry, changes)
    if update.reviewed and entry.status is not RiskStatus.CLOSED:
        changes["next_review_at"] = next_review_at(entry.level, at, policy)
    if all(getattr(entry, name) == value for name, value in changes.items()):
        return entry
    return _bump(entry, at, changes)


# ---------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------


class FieldChange(BaseModel):
    """One field's value before and after, in JSON form so the history table stores it as is."""

    model_config = _POLICY_CONFIG

    before: JsonValue
    after: JsonValue


class HistoryRecord(BaseModel):
    """One append-only history row: which version, when, who or what caused it, and the diff."""

    model_config = _POLICY_CONFIG

    risk_id: str
    version: int = Field(ge=1)
    at: AwareDatetime
    changes: dict[str, FieldChange]
    actor: str | None = Field(default=None, description="Person (token subject), if any.")
    role: Role | None = Field(default=None, description="Their role; None for the service.")
    cause_event_id: str | None = Field(default=None, description="Event that caused it.")
    reason: str | None = Field(default=None, max_length=4_000)


# Bookkeeping fields that change on every version; the record carries them itself.
_NOT_DIFFED = frozenset({"version", "updated_at"})


def diff_entries(
    before: RiskRegisterEntry | None,
    after: RiskRegisterEntry,
    *,
    actor: str | None = None,
    role: Role | None = None,
    cause_event_id: str | None = None,
    reason: str | None = None,
) -> HistoryRecord:
    """The history record that takes ``before`` (``None`` when newly registered) to ``after``."""
    if before is not None and before.risk_id != after.risk_id:
        raise RiskMismatch(f"diff between {before.risk_id!r} and {after.risk_id!r}")
    old = before.model_dump(mode="json") if before is not None else {}
    new = after.model_dump(mode="json")
    changes = {
        name: FieldChange(before=old.get(name), after=value)
        for name, value in new.items()
        if name not in _NOT_DIFFED and old.get(name) != value
    }
    return HistoryRecord(
        risk_id=after.risk_id,
        version=after.version,
        at=after.updated_at,
        changes=changes,
        actor=actor,
        role=role,
        cause_event_id=cause_event_id,
        reason=reason,
    )


class ChangeKind(StrEnum):
    """What caused a new version; the history's ``kind`` and the changes metric's label."""

    REGISTERED = "registered"
    CLASSIFICATION = "classification"
    ESCALATION = "escalation"
    ACKNOWLEDGEMENT = "acknowledgement"
    ASSESSMENT = "assessment"
    TRANSITION = "transition"


# ---------------------------------------------------------------------------------------------
# Information sharing (protocol, "Information Sharing")
# ---------------------------------------------------------------------------------------------


class CustomerImpact(BaseModel):
    """Customer Support's view of the impact: level, impact score and who/what is hit."""

    model_config = _POLICY_CONFIG

    level: RiskLevel
    level_label: str
    impact: int | None
    customer_segments: list[str]
    products: list[str]
    indicators: list[str]


class SupportBrief(BaseModel):
    """What Customer Support sends Risk Management (protocol, "From Customer Support to Risk
    Management"), derived from the entry so it is current whenever the entry is."""

    model_config = _POLICY_CONFIG

    description: str = Field(description="Title and redacted description of the risk.")
    affected_customers: int = Field(description="Distinct customers who reported it.")
    ticket_count: int = Field(description="Reports linked to the risk.")
    first_reported_at: AwareDatetime
    last_reported_at: AwareDatetime
    reports_per_day: float = Field(
        description="Reports per day between first and last report (span at least one hour)."
    )
    customer_impact: CustomerImpact
    ticket_ids: list[str]


def support_brief(entry: RiskRegisterEntry) -> SupportBrief:
    span = max(entry.last_reported_at - entry.first_reported_at, timedelta(hours=1))
    return SupportBrief(
        description=f"{entry.title}: {entry.redacted_summary}"
        if entry.redacted_summary
        else entry.title,
        affected_customers=entry.distinct_customers,
        ticket_count=entry.ticket_count,
        first_reported_at=entry.first_reported_at,
        last_reported_at=entry.last_reported_at,
        reports_per_day=round(entry.ticket_count / (span / timedelta(days=1)), 3),
        customer_impact=CustomerImpact(
            level=entry.level,
            level_label=entry.level.label,
            impact=entry.impact,
            customer_segments=list(entry.customer_segments),
            products=list(entry.products),
            indicators=[indicator.value for indicator in entry.indicators],
        ),
        ticket_ids=list(entry.ticket_ids),
    )
