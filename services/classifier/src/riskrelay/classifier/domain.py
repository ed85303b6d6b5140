"""Pure classification: flagged tickets in, risks with levels, categories and reasons out.

No clock, no I/O, no randomness: every time comes from the inputs, so replaying the same
``ticket-flagged`` sequence yields the same risks and the same ``risk-classified`` payloads.

**One risk per cluster.** The flagged tickets of one intake cluster are one risk whose id is
derived from the cluster id. A ticket flagged outside any cluster is its own risk, with an id
derived from the ticket id. When that ticket later arrives with cluster information, the
cluster's risk counts it from then on; the lone risk is left as it is (no event retracts it,
a human closes it in the register), and a human override on the lone risk does not carry over.

**When a RiskClassified is published** (:class:`EmitReason`), at most once per input:

- on the risk's first classification;
- when the level rises (``previous_level`` set, ``flagged_at`` moves to ``cause_time`` so
  escalation clocks restart for the new level);
- when the category changes at the same level. This is bounded: at the same level the
  category only moves to a rule of strictly higher precedence, and there are finitely many;
- when a ticket joins the risk (:attr:`EmitReason.TICKET_JOINED`): the register lists every
  ticket of a risk, and this event is how it learns of one that changes nothing else, such as
  the earlier members intake re-flags when their cluster surges. Within one consumer batch,
  :func:`redundant_publications` drops such an event when a later event of the same risk lists
  its ticket, so a surge of many tickets is a few events, not one per ticket.

Anything else (a follow-up on a ticket the risk already has, at the same level and category,
or a repeated input) updates the state silently.

**Tickets and counts.** ``ticket_ids`` lists the risk's tickets in the order they joined, the
first :data:`MAX_TICKET_IDS`; ``ticket_count`` and ``distinct_customers`` count the tickets that
joined and their customers, so they equal the lengths of the lists while those hold everything.
Once the list is full a ticket not in it counts as new, but never beyond intake's size of the
cluster (which counts each ticket once), so a follow-up cannot inflate the count of a surging
cluster whose members all joined. The policy sees more: intake's cluster size and distinct
customers cover similar reports that were never flagged (see :func:`facts_of`).

**Never downgraded automatically.** A lower computed level keeps the level already reached
(the explanation then names ``classifier.no_automatic_downgrade`` as decisive). Only a human
override (:func:`apply_override`, by a Support Manager, Risk Management or an admin, with a
reason) may lower a level. After an override, automatic classification neither lowers the
human's level nor re-raises it on the evidence the human already judged: it raises the level
only when the computed level exceeds both the human's level and the highest level ever
computed before the override.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from riskrelay.classifier.policy import (
    CategoryRank,
    DetectionFact,
    PolicyDecision,
    RiskFacts,
    RiskPolicy,
    evaluate,
)
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    Detection,
    Indicator,
    Override,
    PersonalDataKind,
    RiskCategory,
    RiskClassified,
    RiskLevel,
    Role,
    RuleContribution,
    TicketFlagged,
)

# Bounds that keep one risk's state small however large its cluster grows. Counts beyond the
# bounds come from intake's ClusterInfo, which sees every ticket.
MAX_TICKET_IDS = 1_000
MAX_CUSTOMER_IDS = 1_000
MAX_LABELS = 100
MAX_DETECTION_FACTS = 200
MAX_TITLE = 500

OVERRIDE_ROLES: frozenset[Role] = frozenset(
    {Role.SUPPORT_MANAGER, Role.RISK_MANAGEMENT, Role.ADMIN}
)

NO_DOWNGRADE_RULE_ID = "classifier.no_automatic_downgrade"
OVERRIDE_HOLD_RULE_ID = "classifier.human_override_holds"
OVERRIDE_RULE_ID = "human_override"
_HOLD_RULE_IDS = frozenset({NO_DOWNGRADE_RULE_ID, OVERRIDE_HOLD_RULE_ID})


class EmitReason(StrEnum):
    """Why a RiskClassified was published."""

    FIRST_CLASSIFICATION = "first_classification"
    UPGRADE = "upgrade"
    CATEGORY_CHANGE = "category_change"
    TICKET_JOINED = "ticket_joined"
    OVERRIDE = "override"


class RiskMismatchError(ValueError):
    """The state passed to :func:`classify` belongs to another risk than the ticket's."""


class OverrideError(Exception):
    """Base of the errors :func:`apply_override` raises."""


class OverrideNotAllowedError(OverrideError, PermissionError):
    """The caller's role may not override risk levels."""

    def __init__(self, role: str) -> None:
        self.role = role
        allowed = ", ".join(sorted(role.value for role in OVERRIDE_ROLES))
        super().__init__(f"role {role!r} may not override a risk level (allowed: {allowed})")


class InvalidOverrideError(OverrideError, ValueError):
    """The override request itself is malformed (no reason, no author, naive time)."""


class RiskState(BaseModel):
    """Everything the classifier remembers about one risk, serializable as JSON.

    Lists keep first-seen order (deterministic for a given input sequence) and are bounded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_version: Literal[1] = Field(default=1, description="Shape of this record.")
    risk_id: str = Field(max_length=256)
    cluster_id: str | None = Field(default=None, max_length=128)

    level: RiskLevel = Field(description="Published level; never lowered automatically.")
    level_source: Literal["policy", "override"] = "policy"
    category: RiskCategory
    category_rank: CategoryRank = Field(description="Precedence of the rule behind the category.")
    category_locked: bool = Field(default=False, description="A human set the category.")
    computed_level: RiskLevel = Field(description="What the policy said last time.")
    peak_computed_level: RiskLevel = Field(description="The highest level the policy ever said.")
    policy_version: str = Field(max_length=64)
    rules_fired: tuple[RuleContribution, ...] = ()

    first_reported_at: AwareDatetime
    last_reported_at: AwareDatetime
    flagged_at: AwareDatetime = Field(description="When the risk reached its current level.")

    ticket_ids: tuple[str, ...] = Field(description=f"First {MAX_TICKET_IDS} tickets.")
    ticket_count: int = Field(ge=1, description="Tickets that joined the risk.")
    customer_ids: tuple[str, ...] = Field(description=f"First {MAX_CUSTOMER_IDS} customers.")
    distinct_customers: int = Field(ge=1, description="Customers of those tickets.")
    last_ticket_id: str = Field(max_length=256)
    title: str = Field(max_length=MAX_TITLE)
    redacted_summary: str = Field(max_length=2_000)

    indicators: tuple[Indicator, ...] = ()
    detections: tuple[DetectionFact, ...] = ()
    evidence: tuple[Detection, ...] = ()
    tags: tuple[str, ...] = ()
    customer_segments: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    data_classification: tuple[PersonalDataKind, ...] = ()
    vulnerable_customer: bool = False
    max_financial_amount: float | None = None
    cluster_size: int | None = Field(default=None, description="Largest size intake reported.")
    cluster_customers: int | None = Field(
        default=None, description="Most distinct customers intake reported for the cluster."
    )
    surging: bool = Field(default=False, description="Sticky: the cluster surged at some point.")
    agent_level: RiskLevel | None = Field(default=None, description="Highest agent Risk Flag.")
    agent_category: RiskCategory | None = None

    override: Override | None = None
    overridden_at: AwareDatetime | None = None
    override_baseline: RiskLevel | None = Field(
        default=None, description="peak_computed_level when the human decided."
    )


@dataclass(frozen=True, slots=True)
class ClassificationOutcome:
    """The risk's new state (always persist it) and what to publish, if anything."""

    state: RiskState
    classified: RiskClassified | None
    reason: EmitReason | None
    decision: PolicyDecision | None = None

    @property
    def event_step(self) -> str | None:
        """A step name for :func:`derive_event_id`, unique per output of one input event."""
        if self.classified is None or self.reason is None:
            return None
        return f"risk-classified/{self.state.risk_id}/{self.reason.value}"


# ---------------------------------------------------------------------------------------------
# Risk ids
# ---------------------------------------------------------------------------------------------


def cluster_risk_id(cluster_id: str) -> str:
    """Risk id of a cluster: the same on every replica and every replay."""
    return "risk-" + derive_event_id(f"cluster:{cluster_id}", "risk")


def ticket_risk_id(ticket_id: str) -> str:
    """Risk id of a ticket flagged outside any cluster."""
    return "risk-" + derive_event_id(f"ticket:{ticket_id}", "risk")


def risk_id_for(flagged: TicketFlagged) -> str:
    """The risk a flagged ticket belongs to now: its cluster's when it has one."""
    if flagged.cluster is not None:
        return cluster_risk_id(flagged.cluster.cluster_id)
    return ticket_risk_id(flagged.ticket_id)


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _extend(existing: Sequence[str], new: Iterable[str], limit: int) -> tuple[str, ...]:
    merged = list(existing)
    seen = set(merged)
    for value in new:
        if len(merged) >= limit:
            break
        if value and value not in seen:
            merged.append(value)
            seen.add(value)
    return tuple(merged)


def _merge_detections(
    existing: Sequence[DetectionFact], detections: Iterable[Detection]
) -> tuple[DetectionFact, ...]:
    by_key = {(fact.indicator, fact.rule_id): fact for fact in existing}
    for detection in detections:
        key = (detection.indicator, detection.rule_id)
        known = by_key.get(key)
        if known is None:
            if len(by_key) < MAX_DETECTION_FACTS:
                by_key[key] = DetectionFact(
                    indicator=detection.indicator,
                    rule_id=detection.rule_id,
                    confidence=detection.confidence,
                )
        elif detection.confidence > known.confidence:
            by_key[key] = known.model_copy(update={"confidence": detection.confidence})
    return tuple(by_key.values())


def _merge_evidence(
    existing: Sequence[Detection], detections: Iterable[Detection], policy: RiskPolicy
) -> tuple[Detection, ...]:
    """Keep a few distinct examples per intake rule, so one noisy rule cannot crowd out others."""
    kept = list(existing)
    per_rule: dict[str, int] = {}
    seen = set()
    for item in kept:
        per_rule[item.rule_id] = per_rule.get(item.rule_id, 0) + 1
        seen.add((item.rule_id, item.evidence))
    for detection in detections:
        if len(kept) >= policy.evidence_limit:
            break
        key = (detection.rule_id, detection.evidence)
        if key in seen or per_rule.get(detection.rule_id, 0) >= policy.evidence_per_rule:
            continue
        kept.append(detection)
        seen.add(key)
        per_rule[detection.rule_id] = per_rule.get(detection.rule_id, 0) + 1
    return tuple(kept)


def _ordered_indicators(indicators: Iterable[Indicator]) -> tuple[Indicator, ...]:
    present = set(indicators)
    return tuple(indicator for indicator in Indicator if indicator in present)


def _title(flagged: TicketFlagged) -> str:
    subject = " ".join(flagged.redacted_subject.split())
    if not subject:
        subject = f"{flagged.indicators[0].indicator.value.replace('_', ' ')} on {flagged.product}"
    return subject[:MAX_TITLE]


def _max_optional(left: float | None, right: float | None) -> float | None:
    if left is None:
        return right
    if right is None:
        return left
    return max(left, right)


def _agent_view(
    state: RiskState | None, flagged: TicketFlagged
) -> tuple[RiskLevel | None, RiskCategory | None]:
    """The highest Risk Flag seen on the risk; its category is the first given at that level."""
    level = state.agent_level if state else None
    category = state.agent_category if state else None
    flag = flagged.risk_flag
    if flag is not None:
        if level is None or flag.level > level:
            level, category = flag.level, flag.category
        elif flag.level == level and category is None:
            category = flag.category
    return level, category


def _member_count(
    previous: int | None,
    before: Sequence[str],
    after: Sequence[str],
    value: str,
    *,
    limit: int,
    bound: int | None,
) -> int:
    """Distinct tickets (or customers) of a risk once ``value`` is folded in.

    Exact while the list (``before`` -> ``after``, at most ``limit`` long) holds them all.
    Once it is full, a value missing from it may be new or one seen after it filled, so it
    counts as new but never past ``bound``, intake's count for the cluster, which sees every
    ticket once.
    """
    if previous is None or len(after) < limit:
        return len(after)
    if value in before or len(after) > len(before):
        return max(previous, len(after))
    grown = previous + 1
    return grown if bound is None else max(previous, min(grown, bound))


def _accumulate(
    state: RiskState | None, flagged: TicketFlagged, risk_id: str, policy: RiskPolicy
) -> dict[str, object]:
    """The state's facts with ``flagged`` folded in (a dict of RiskState fields)."""
    cluster = flagged.cluster
    starts = [flagged.occurred_at] + ([cluster.first_seen_at] if cluster else [])
    cluster_size = max((state.cluster_size or 0) if state else 0, cluster.size if cluster else 0)
    cluster_customers = max(
        (state.cluster_customers or 0) if state else 0,
        cluster.distinct_customers if cluster else 0,
    )
    known_tickets = state.ticket_ids if state else ()
    ticket_ids = _extend(known_tickets, [flagged.ticket_id], MAX_TICKET_IDS)
    known_customers = state.customer_ids if state else ()
    customer_ids = _extend(known_customers, [flagged.customer_id], MAX_CUSTOMER_IDS)
    agent_level, agent_category = _agent_view(state, flagged)
    return {
        "risk_id": risk_id,
        "cluster_id": cluster.cluster_id if cluster else (state.cluster_id if state else None),
        "first_reported_at": min([*starts, *([state.first_reported_at] if state else [])]),
        "last_reported_at": max(
            [flagged.occurred_at, *([state.last_reported_at] if state else [])]
        ),
        "ticket_ids": ticket_ids,
        "ticket_count": _member_count(
            state.ticket_count if state else None,
            known_tickets,
            ticket_ids,
            flagged.ticket_id,
            limit=MAX_TICKET_IDS,
            bound=cluster_size or None,
        ),
        "customer_ids": customer_ids,
        "distinct_customers": _member_count(
            state.distinct_customers if state else None,
            known_customers,
            customer_ids,
            flagged.customer_id,
            limit=MAX_CUSTOMER_IDS,
            bound=cluster_customers or None,
        ),
        "last_ticket_id": flagged.ticket_id,
        "title": state.title if state else _title(flagged),
        "redacted_summary": state.redacted_summary if state else flagged.redacted_summary,
        "indicators": _ordered_indicators(
            [*(state.indicators if state else ()), *(d.indicator for d in flagged.indicators)]
        ),
        "detections": _merge_detections(state.detections if state else (), flagged.indicators),
        "evidence": _merge_evidence(state.evidence if state else (), flagged.indicators, policy),
        "tags": _extend(state.tags if state else (), flagged.tags, MAX_LABELS),
        "customer_segments": _extend(
            state.customer_segments if state else (), [flagged.customer_segment], MAX_LABELS
        ),
        "priorities": _extend(state.priorities if state else (), [flagged.priority], MAX_LABELS),
        "channels": _extend(state.channels if state else (), [flagged.channel], MAX_LABELS),
        "products": _extend(state.products if state else (), [flagged.product], MAX_LABELS),
        "data_classification": tuple(
            dict.fromkeys(
                [*(state.data_classification if state else ()), *flagged.data_classification]
            )
        ),
        "vulnerable_customer": (state.vulnerable_customer if state else False)
        or flagged.customer_vulnerable,
        "max_financial_amount": _max_optional(
            state.max_financial_amount if state else None, flagged.financial_amount
        ),
        "cluster_size": cluster_size or None,
        "cluster_customers": cluster_customers or None,
        "surging": (state.surging if state else False) or bool(cluster and cluster.surging),
        "agent_level": agent_level,
        "agent_category": agent_category,
    }


def _lowered(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value.lower() for value in values)


def facts_of(state: RiskState) -> RiskFacts:
    """The policy's view of a risk: its counts include intake's view of the cluster, since
    similar reports that were never flagged still show how many customers are affected."""
    return RiskFacts(
        detections=state.detections,
        tags=_lowered(state.tags),
        customer_segments=_lowered(state.customer_segments),
        priorities=_lowered(state.priorities),
        channels=_lowered(state.channels),
        products=_lowered(state.products),
        vulnerable_customer=state.vulnerable_customer,
        max_financial_amount=state.max_financial_amount,
        data_classification=frozenset(state.data_classification),
        distinct_customers=max(state.distinct_customers, state.cluster_customers or 0),
        ticket_count=max(state.ticket_count, state.cluster_size or 0),
        clustered=state.cluster_id is not None,
        surging=state.surging,
        agent_level=state.agent_level,
        agent_category=state.agent_category,
    )


def _held_contributions(
    decision: PolicyDecision, held_level: RiskLevel, state: RiskState
) -> tuple[RuleContribution, ...]:
    """The decision's rules, no longer decisive, plus the reason the held level stands."""
    if state.level_source == "override" and state.override is not None:
        baseline = state.override_baseline or held_level
        hold = RuleContribution(
            rule_id=OVERRIDE_HOLD_RULE_ID,
            description=(
                f"A human override ({state.override.role.value}) set {held_level.label}; "
                "automatic classification never lowers it, and raises it only when the policy "
                f"computes more than {max(baseline, held_level).label}."
            ),
            level=held_level,
            effect="floor",
            decisive=True,
        )
    else:
        hold = RuleContribution(
            rule_id=NO_DOWNGRADE_RULE_ID,
            description=(
                f"The risk reached {held_level.label} earlier; risks are never downgraded "
                "automatically (only a human override may lower a level)."
            ),
            level=held_level,
            effect="floor",
            decisive=True,
        )
    return (
        hold,
        *(c.model_copy(update={"decisive": False}) for c in decision.contributions),
    )


def classify(
    flagged: TicketFlagged,
    state: RiskState | None,
    policy: RiskPolicy,
    cause_time: datetime,
) -> ClassificationOutcome:
    """Fold one flagged ticket into its risk and decide what, if anything, to publish.

    ``state`` is the stored state of ``risk_id_for(flagged)`` (None for a new risk).
    ``cause_time`` is the event time of the causing event (the flagged event's ``time``); a new
    level's ``flagged_at`` is set to it, since escalation clocks start there.
    """
    _require_aware(cause_time, "cause_time")
    risk_id = risk_id_for(flagged)
    if state is not None and state.risk_id != risk_id:
        raise RiskMismatchError(
            f"ticket {flagged.ticket_id!r} belongs to risk {risk_id!r}, not {state.risk_id!r}"
        )
    accumulated = _accumulate(state, flagged, risk_id, policy)
    facts_state = RiskState.model_validate(
        {
            **accumulated,
            # Placeholders so the facts can be read through the same model; replaced below.
            "level": RiskLevel.MINIMAL,
            "category": policy.default_category,
            "category_rank": (0, 0),
            "computed_level": RiskLevel.MINIMAL,
            "peak_computed_level": RiskLevel.MINIMAL,
            "policy_version": policy.version,
            "flagged_at": cause_time,
        }
    )
    decision = evaluate(facts_of(facts_state), policy)

    if state is None:
        new_state = facts_state.model_copy(
            update={
                "level": decision.level,
                "category": decision.category,
                "category_rank": decision.category_rank,
                "computed_level": decision.level,
                "peak_computed_level": decision.level,
                "rules_fired": decision.contributions,
            }
        )
        return ClassificationOutcome(
            state=new_state,
            classified=_publication(new_state, previous_level=None),
            reason=EmitReason.FIRST_CLASSIFICATION,
            decision=decision,
        )

    bar = max(state.level, state.override_baseline or RiskLevel.MINIMAL)
    upgraded = decision.level > bar
    if upgraded:
        level, level_source, flagged_at = decision.level, "policy", cause_time
        rules_fired = decision.contributions
    else:
        level, level_source, flagged_at = state.level, state.level_source, state.flagged_at
        rules_fired = (
            _held_contributions(decision, level, state)
            if level != decision.level
            else decision.contributions
        )

    if state.category_locked:
        category, category_rank = state.category, state.category_rank
    elif upgraded or decision.category_rank > state.category_rank:
        category, category_rank = decision.category, decision.category_rank
    else:
        category, category_rank = state.category, state.category_rank

    new_state = facts_state.model_copy(
        update={
            "level": level,
            "level_source": level_source,
            "category": category,
            "category_rank": category_rank,
            "category_locked": state.category_locked,
            "computed_level": decision.level,
            "peak_computed_level": max(state.peak_computed_level, decision.level),
            "rules_fired": rules_fired,
            "flagged_at": flagged_at,
            "override": state.override,
            "overridden_at": state.overridden_at,
            "override_baseline": state.override_baseline,
        }
    )

    reason: EmitReason | None = None
    if upgraded:
        reason = EmitReason.UPGRADE
    elif category != state.category:
        reason = EmitReason.CATEGORY_CHANGE
    elif flagged.ticket_id not in state.ticket_ids:
        reason = EmitReason.TICKET_JOINED
    classified = (
        None
        if reason is None
        else _publication(new_state, previous_level=state.level if upgraded else None)
    )
    return ClassificationOutcome(
        state=new_state, classified=classified, reason=reason, decision=decision
    )


def _publication(state: RiskState, *, previous_level: RiskLevel | None) -> RiskClassified:
    return RiskClassified(
        risk_id=state.risk_id,
        level=state.level,
        category=state.category,
        previous_level=previous_level,
        ticket_id=state.last_ticket_id,
        ticket_ids=list(state.ticket_ids[:MAX_TICKET_IDS]),
        ticket_count=state.ticket_count,
        distinct_customers=state.distinct_customers,
        cluster_id=state.cluster_id,
        customer_segments=list(state.customer_segments),
        products=list(state.products),
        channels=list(state.channels),
        indicators=list(state.indicators),
        title=state.title,
        redacted_summary=state.redacted_summary,
        first_reported_at=state.first_reported_at,
        flagged_at=state.flagged_at,
        policy_version=state.policy_version,
        rules_fired=list(state.rules_fired),
        evidence=list(state.evidence),
        override=state.override if state.level_source == "override" else None,
        data_classification=list(state.data_classification),
    )


def redundant_publications(outcomes: Sequence[ClassificationOutcome]) -> frozenset[int]:
    """Positions in ``outcomes`` (one consumer batch, in order) whose publication may be dropped.

    A :attr:`EmitReason.TICKET_JOINED` event says only that its ticket joined; when a later
    event of the same risk in the batch lists that ticket, the later one says it too, with the
    newer state, so the earlier is redundant. Every other reason is always published. A ticket
    past the list's bound is never listed, so its event stays: the register links tickets from
    ``ticket_id`` as well.
    """
    listed_later: dict[str, set[str]] = {}
    redundant: set[int] = set()
    for position in range(len(outcomes) - 1, -1, -1):
        classified = outcomes[position].classified
        if classified is None:
            continue
        listed = listed_later.setdefault(classified.risk_id, set())
        if outcomes[position].reason is EmitReason.TICKET_JOINED and classified.ticket_id in listed:
            redundant.add(position)
            continue
        listed.update(classified.ticket_ids)
        listed.add(classified.ticket_id)
    return frozenset(redundant)


# ---------------------------------------------------------------------------------------------
# Human override
# ---------------------------------------------------------------------------------------------


def apply_override(
    state: RiskState,
    new_level: RiskLevel,
    reason: str,
    by: str,
    role: Role | str,
    at: datetime,
    *,
    category: RiskCategory | None = None,
) -> ClassificationOutcome:
    """A human sets the level (up or down) and optionally the category, with a reason.

    Raises :class:`OverrideNotAllowedError` for roles other than Support Manager, Risk
    Management and admin, and :class:`InvalidOverrideError` for a blank reason or author or a
    naive ``at``. Always publishes, even at the same level: the decision is part of the record.
    """
    try:
        parsed_role = Role(role)
    except ValueError:
        raise OverrideNotAllowedError(str(role)) from None
    if parsed_role not in OVERRIDE_ROLES:
        raise OverrideNotAllowedError(parsed_role.value)
    reason = reason.strip()
    if not reason:
        raise InvalidOverrideError("an override needs a reason")
    if not by.strip():
        raise InvalidOverrideError("an override needs the name of who made it")
    try:
        _require_aware(at, "at")
        override = Override(by=by.strip(), role=parsed_role, reason=reason)
        level = RiskLevel(new_level)
    except ValueError as error:
        raise InvalidOverrideError(str(error)) from error

    decision_rule = RuleContribution(
        rule_id=OVERRIDE_RULE_ID,
        description=(
            f"{parsed_role.value} set the level to {level.label} (was {state.level.label}); "
            "the reason is in `override`."
        ),
        level=level,
        category=category,
        effect="sets_level",
        decisive=True,
    )
    earlier_rules = tuple(
        contribution.model_copy(update={"decisive": False})
        for contribution in state.rules_fired
        if contribution.rule_id not in _HOLD_RULE_IDS and contribution.rule_id != OVERRIDE_RULE_ID
    )
    new_state = state.model_copy(
        update={
            "level": level,
            "level_source": "override",
            "category": category or state.category,
            "category_locked": state.category_locked or category is not None,
            "flagged_at": at if level != state.level else state.flagged_at,
            "rules_fired": (decision_rule, *earlier_rules),
            "override": override,
            "overridden_at": at,
            "override_baseline": state.peak_computed_level,
        }
    )
    return ClassificationOutcome(
        state=new_state,
        classified=_publication(new_state, previous_level=state.level),
        reason=EmitReason.OVERRIDE,
    )
