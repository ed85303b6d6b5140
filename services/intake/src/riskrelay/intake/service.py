"""Intake's application step: one batch of assessed ticket events in, the flags and the state
changes it causes out.

:func:`intake_step` is the one decision path of intake. The service's Kafka handler runs it over
each batch inside a transaction (repository: PostgreSQL, see :mod:`riskrelay.intake.handlers`);
``riskrelay classify`` and ``make eval`` run it over a file (repository:
:class:`MemoryIntakeRepository`). Both hand it tickets already assessed by :meth:`Intake.assess`
(input intake refuses never reaches the step) and in the order to decide them, event-time order.

The step reads through an :class:`IntakeRepository` (cluster indexes per product, rate baselines,
ticket memories), calls :mod:`riskrelay.intake.domain` for every decision, updates the cluster
indexes and rate baselines in place and returns the ``ticket-flagged`` events to publish, surge
re-flags of earlier tickets included, with everything the caller must persist. It reads no clock
and does no I/O of its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from riskrelay.intake.clustering import ClusterIndex, ClusterMember, Pruned, product_key
from riskrelay.intake.domain import (
    DEFAULT_ASSESSMENT_CONFIG,
    AssessmentConfig,
    IntakeDecision,
    TicketAssessment,
    assess_ticket,
    complete_assessments,
    decide_ticket,
    flagged_event,
    reflag_for_surge,
    remembered_assessment,
)
from riskrelay.intake.followups import ordered as ordered_indicators
from riskrelay.intake.patterns import RateBaselines
from riskrelay.intake.rules import RulePack, load_rule_pack
from riskrelay.intake.semantic.load import load_semantic_detector
from riskrelay.intake.settings import DEFAULT_CLUSTER_RETENTION_HOURS, IntakeSettings
from riskrelay.intake.store import BatchChanges, CachedProduct, TicketMemory, prune_expired
from riskrelay.shared.events import Indicator, TicketEvent, TicketFlaggedEvent

TicketCount = tuple[datetime, str, str, bool]
"""(hour, canonical channel, product, flagged): the key of intake's ticket counts."""


@dataclass(frozen=True)
class Intake:
    """Intake's configuration, built once at start-up; every step runs with it."""

    rule_pack: RulePack
    config: AssessmentConfig = DEFAULT_ASSESSMENT_CONFIG
    cluster_retention_seconds: float = DEFAULT_CLUSTER_RETENTION_HOURS * 3600

    @classmethod
    def from_settings(cls, settings: IntakeSettings, rule_pack: RulePack | None = None) -> Intake:
        """Load and validate the rule pack (a bad pack stops start-up with the rule and reason;
        pass ``rule_pack`` when the caller loaded it already) and the semantic detector."""
        return cls(
            rule_pack=rule_pack or load_rule_pack(settings.rule_pack_extensions),
            config=AssessmentConfig(
                clusters=settings.cluster_config(),
                semantic=load_semantic_detector(settings.detection, settings.encoder),
            ),
            cluster_retention_seconds=settings.cluster_retention_hours * 3600,
        )

    def assess(self, event: TicketEvent) -> TicketAssessment:
        """The stateless assessment; raises :class:`~riskrelay.intake.errors.IntakeRejection`."""
        return assess_ticket(event, self.rule_pack, self.config)

    def complete(self, tickets: Sequence[AssessedTicket]) -> list[AssessedTicket]:
        """Stage two of the semantic cascade over a batch (one full-encoder call)."""
        completed = complete_assessments([t.assessment for t in tickets], self.config.semantic)
        return [
            ticket if assessment is ticket.assessment else replace(ticket, assessment=assessment)
            for ticket, assessment in zip(tickets, completed, strict=True)
        ]


@dataclass(frozen=True, slots=True)
class AssessedTicket:
    """A decoded ticket event with its stateless assessment."""

    event: TicketEvent
    assessment: TicketAssessment

    @property
    def id(self) -> str:
        return self.event.id


class IntakeRepository(Protocol):
    """What :func:`intake_step` reads, and where its changes are written."""

    @property
    def rates(self) -> RateBaselines:
        """The rate baselines of the batch's (product, channel) pairs; updated in place."""
        ...

    def cluster_index(self, product_key: str) -> CachedProduct:
        """The cluster index of one of the batch's products; updated in place."""
        ...

    async def tickets(self, ticket_ids: Collection[str]) -> Mapping[str, TicketMemory]:
        """The memories of those of ``ticket_ids`` intake has seen before."""
        ...

    async def save(self, changes: BatchChanges) -> None:
        """Persist what one step changed (its :attr:`IntakeStepResult.changes`)."""
        ...


@dataclass(frozen=True, slots=True)
class IntakeStepResult:
    flags: list[TicketFlaggedEvent]
    """To publish, in decision order; a surge's re-flags follow the flag of the ticket that
    started it."""
    changes: BatchChanges
    """To persist (``outgoing`` is left for the caller, who knows the topic)."""
    surges: int
    """Clusters that reached the surge threshold in this batch."""


async def intake_step(
    intake: Intake, repository: IntakeRepository, tickets: Sequence[AssessedTicket]
) -> IntakeStepResult:
    """Decide a batch of new ticket events, in the given order (event time)."""
    tickets = intake.complete(tickets)
    memories = dict(await repository.tickets({t.assessment.ticket_id for t in tickets}))
    batch = _Batch(intake, repository, memories)
    for ticket in tickets:
        decision = batch.decide(ticket)
        if decision.reflag_ticket_ids:
            missing = [t for t in decision.reflag_ticket_ids if t not in memories]
            if missing:
                memories.update(await repository.tickets(missing))
            batch.reflag(ticket, decision)
    return IntakeStepResult(batch.flags, batch.changes(tickets), batch.surges)


@dataclass
class _Batch:
    """What one step has read and changed so far."""

    intake: Intake
    repository: IntakeRepository
    memories: dict[str, TicketMemory]
    indexes: dict[str, CachedProduct] = field(default_factory=dict)
    flags: list[TicketFlaggedEvent] = field(default_factory=list)
    changed_clusters: dict[str, set[str]] = field(default_factory=dict)
    changed_topics: dict[str, set[str]] = field(default_factory=dict)
    started_clusters: set[str] = field(default_factory=set)
    added_members: list[tuple[str, str, ClusterMember]] = field(default_factory=list)
    changed_rates: set[str] = field(default_factory=set)
    rate_products: dict[str, str] = field(default_factory=dict)
    changed_tickets: set[str] = field(default_factory=set)
    counts: Counter[TicketCount] = field(default_factory=Counter)
    surges: int = 0

    def index(self, key: str) -> ClusterIndex:
        cached = self.indexes.get(key)
        if cached is None:
            cached = self.indexes[key] = self.repository.cluster_index(key)
        return cached.index

    def decide(self, ticket: AssessedTicket) -> IntakeDecision:
        intake, assessment = self.intake, ticket.assessment
        key = product_key(assessment.product)
        index = self.index(key)
        memory = self.memories.get(assessment.ticket_id)
        decision = decide_ticket(
            ticket.event,
            intake.rule_pack,
            clusters=index,
            rates=self.repository.rates,
            known_ticket=memory is not None,
            known_indicators=memory.known_indicators if memory else (),
            known_risk_flag_level=memory.risk_flag_level if memory else None,
            config=intake.config,
            assessment=assessment,
        )
        assignment = decision.cluster
        if assignment is not None:
            self.changed_clusters.setdefault(key, set()).update(assignment.changed_cluster_ids)
            self.changed_topics.setdefault(key, set()).update(assignment.changed_topic_ids)
            if assignment.is_new_cluster:
                self.started_clusters.add(assignment.cluster_id)
            if assignment.added_member is not None:
                self.added_members.append((assignment.cluster_id, key, assignment.added_member))
        if decision.rate is not None:
            self.changed_rates.add(decision.rate.key)
            self.rate_products[decision.rate.key] = key
        flag_level = assessment.risk_flag.level if assessment.risk_flag else None
        self.memories[assessment.ticket_id] = TicketMemory(
            ticket_id=assessment.ticket_id,
            product_key=key,
            cluster_id=(
                assignment.cluster_id
                if assignment is not None
                else (memory.cluster_id if memory else None)
            ),
            assessment=remembered_assessment(memory.assessment if memory else None, assessment),
            known_indicators=(
                decision.known_indicators_after
                if decision.flagged
                else (memory.known_indicators if memory else [])
            ),
            risk_flag_level=max(
                (
                    level
                    for level in (flag_level, memory.risk_flag_level if memory else None)
                    if level
                ),
                default=None,
            ),
            first_seen_at=memory.first_seen_at if memory else assessment.occurred_at,
            last_event_at=assessment.occurred_at,
        )
        self.changed_tickets.add(assessment.ticket_id)
        hour = assessment.occurred_at.replace(minute=0, second=0, microsecond=0)
        self.counts[
            (hour, assessment.channel, assessment.product, decision.flagged is not None)
        ] += 1
        if decision.flagged is not None:
            self.flags.append(
                flagged_event(decision.flagged, cause_event_id=ticket.id, time=ticket.event.time)
            )
        if assignment is not None and assignment.surge_started:
            self.surges += 1
        return decision

    def reflag(self, ticket: AssessedTicket, decision: IntakeDecision) -> None:
        """Flag the earlier members of the cluster ``decision`` made surge (memories loaded)."""
        surge = decision.cluster
        if surge is None:
            return
        for earlier_id in decision.reflag_ticket_ids:
            earlier = self.memories.get(earlier_id)
            if earlier is None:
                continue  # forgotten after retention: nothing left to flag it from
            payload = reflag_for_surge(
                earlier.assessment, surge, known_indicators=earlier.known_indicators
            )
            if payload is None:
                continue
            self.flags.append(
                flagged_event(payload, cause_event_id=ticket.id, time=ticket.event.time)
            )
            self.memories[earlier_id] = replace(
                earlier,
                cluster_id=surge.cluster_id,
                known_indicators=ordered_indicators(
                    [*earlier.known_indicators, Indicator.MULTIPLE_SIMILAR_REPORTS]
                ),
            )
            self.changed_tickets.add(earlier_id)

    def changes(self, tickets: Iterable[AssessedTicket]) -> BatchChanges:
        """Prune idle clusters up to the batch's latest event of each product; collect changes."""
        latest: dict[str, datetime] = {}
        for ticket in tickets:
            key = product_key(ticket.assessment.product)
            latest[key] = max(latest.get(key, ticket.event.time), ticket.event.time)
        removed: dict[str, Pruned] = {
            key: prune_expired(
                self.indexes[key],
                moment,
                self.intake.cluster_retention_seconds,
                self.intake.config.clusters,
            )
            for key, moment in latest.items()
        }
        rates = self.repository.rates.keys
        return BatchChanges(
            cached=self.indexes,
            changed_clusters=self.changed_clusters,
            changed_topics=self.changed_topics,
            removed=removed,
            added_members=self.added_members,
            started_cluster_ids=self.started_clusters,
            rates={key: rates[key] for key in self.changed_rates},
            rate_products=self.rate_products,
            tickets=[self.memories[t] for t in sorted(self.changed_tickets)],
            counts=self.counts,
        )


@dataclass
class MemoryIntakeRepository:
    """All of intake's state in memory, for the offline tools (and tests of the step)."""

    products: dict[str, CachedProduct] = field(default_factory=dict)
    rates: RateBaselines = field(default_factory=RateBaselines)
    memories: dict[str, TicketMemory] = field(default_factory=dict)
    counts: Counter[TicketCount] = field(default_factory=Counter)

    def cluster_index(self, product_key: str) -> CachedProduct:
        cached = self.products.get(product_key)
        if cached is None:
            cached = self.products[product_key] = CachedProduct(0, ClusterIndex())
        return cached

    async def tickets(self, ticket_ids: Collection[str]) -> dict[str, TicketMemory]:
        memories = self.memories
        return {t: memories[t] for t in ticket_ids if t in memories}

    async def save(self, changes: BatchChanges) -> None:
        # Cluster indexes and rate baselines were changed in place (pruning included).
        self.memories.update((memory.ticket_id, memory) for memory in changes.tickets)
        self.counts.update(changes.counts)
