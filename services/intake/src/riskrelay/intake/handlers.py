"""Intake edges: ticket events in (Kafka and HTTP), ticket-flagged out through the outbox.

Decoding a record runs the whole stateless assessment (validation, size limits, vocabularies,
normalization, redaction, single-ticket rules, fingerprint), so anything intake refuses is
dead-lettered with its reason by the shared consumer. The stateful part (clusters, surges, rate
baselines, follow-ups) runs per batch in one transaction, under the product locks described in
:mod:`riskrelay.intake.store`, in event-time order. Decisions are made by
:mod:`riskrelay.intake.domain`; this module only loads, saves and publishes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from prometheus_client import Counter as MetricCounter

from riskrelay.intake.clustering import ClusterMember, product_key
from riskrelay.intake.domain import (
    AssessmentConfig,
    TicketAssessment,
    assess_ticket,
    decide_ticket,
    flagged_event,
    reflag_for_surge,
    remembered_assessment,
)
from riskrelay.intake.errors import IntakeRejection
from riskrelay.intake.followups import ordered as ordered_indicators
from riskrelay.intake.patterns import RateBaselines, rate_key
from riskrelay.intake.rules import RulePack, load_rule_pack
from riskrelay.intake.settings import IntakeSettings
from riskrelay.intake.store import (
    BatchChanges,
    CachedProduct,
    ClusterCache,
    TicketMemory,
    load_batch,
    load_tickets,
    product_locks,
    prune_expired,
    save_batch,
)
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.events import Indicator, TicketEvent
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.store import Connection, claim_new
from riskrelay.shared.topics import TICKET_EVENTS, TICKET_FLAGGED


@dataclass(frozen=True, slots=True)
class AssessedTicket:
    """A decoded ticket event with its stateless assessment."""

    event: TicketEvent
    assessment: TicketAssessment

    @property
    def id(self) -> str:
        return self.event.id


@dataclass
class IntakeMetrics:
    tickets: MetricCounter
    detections: MetricCounter
    rejected: MetricCounter
    surges: MetricCounter

    @classmethod
    def register(cls, context: ServiceContext) -> IntakeMetrics:
        registry = context.registry
        return cls(
            tickets=MetricCounter(
                "riskrelay_intake_tickets",
                "Ticket events processed, by canonical channel, product and whether flagged.",
                ["channel", "product", "flagged"],
                registry=registry,
            ),
            detections=MetricCounter(
                "riskrelay_intake_detections",
                "Indicators on published ticket-flagged events.",
                ["indicator"],
                registry=registry,
            ),
            rejected=MetricCounter(
                "riskrelay_intake_rejected",
                "Ticket events refused (dead-lettered or answered 4xx), by reason.",
                ["reason"],
                registry=registry,
            ),
            surges=MetricCounter(
                "riskrelay_intake_surges",
                "Clusters that reached the surge threshold.",
                registry=registry,
            ),
        )


@dataclass
class Intake:
    """Intake's configuration and per-instance cache, built once at start-up."""

    rule_pack: RulePack
    config: AssessmentConfig
    cluster_retention_seconds: float
    metrics: IntakeMetrics
    cache: ClusterCache = field(default_factory=ClusterCache)

    def assess(self, event: TicketEvent) -> TicketAssessment:
        try:
            return assess_ticket(event, self.rule_pack, self.config)
        except IntakeRejection as rejection:
            self.metrics.rejected.labels(type(rejection).__name__).inc()
            raise

    def decoder(self) -> Callable[[bytes], AssessedTicket]:
        def decode(raw: bytes) -> AssessedTicket:
            try:
                event = TicketEvent.model_validate_json(raw)
            except ValueError:
                self.metrics.rejected.labels("ValidationError").inc()
                raise
            return AssessedTicket(event, self.assess(event))

        return decode


@dataclass
class _BatchState:
    """What one batch has read and changed, before it is saved."""

    indexes: dict[str, CachedProduct]
    rates: RateBaselines
    memories: dict[str, TicketMemory]
    changed_clusters: dict[str, set[str]] = field(default_factory=dict)
    started_clusters: set[str] = field(default_factory=set)
    added_members: list[tuple[str, str, ClusterMember]] = field(default_factory=list)
    changed_rates: set[str] = field(default_factory=set)
    changed_tickets: set[str] = field(default_factory=set)
    counts: Counter[tuple[datetime, str, str, bool]] = field(default_factory=Counter)
    rate_products: dict[str, str] = field(default_factory=dict)
    surges: int = 0


async def process_batch(
    context: ServiceContext, intake: Intake, batch: list[Received[AssessedTicket]]
) -> list[OutgoingEvent]:
    ordered = sorted((item.event for item in batch), key=lambda t: (t.event.time, t.event.id))
    async with context.db.acquire() as connection, connection.transaction():
        tickets = await claim_new(
            connection,
            ordered,
            lambda ticket: ticket.id,
            lock=product_locks(product_key(t.assessment.product) for t in ordered),
        )
        if not tickets:
            return []
        products = {product_key(t.assessment.product) for t in tickets}
        try:
            reads = await load_batch(
                connection,
                intake.cache,
                product_keys=products,
                rate_keys=(rate_key(t.assessment.product, t.assessment.channel) for t in tickets),
                ticket_ids=(t.assessment.ticket_id for t in tickets),
            )
            state = _BatchState(
                indexes=reads.indexes,
                rates=RateBaselines(keys=reads.rates),
                memories=reads.tickets,
            )
            outgoing = [
                item
                for ticket in tickets
                for item in await _decide(context, intake, connection, state, ticket)
            ]
            await _save(connection, intake, state, tickets, outgoing)
        except BaseException:
            intake.cache.forget(products)  # the cached indexes may hold uncommitted changes
            raise
    _count(intake.metrics, state, outgoing)
    return outgoing


async def _decide(
    context: ServiceContext,
    intake: Intake,
    connection: Connection,
    state: _BatchState,
    ticket: AssessedTicket,
) -> list[OutgoingEvent]:
    assessment = ticket.assessment
    key = product_key(assessment.product)
    index = state.indexes[key].index
    memory = state.memories.get(assessment.ticket_id)
    if memory is not None and memory.cluster_id is not None:
        # A known ticket whose cluster was pruned (or is past max_members) is still known.
        index.ticket_clusters.setdefault(assessment.ticket_id, memory.cluster_id)
    decision = decide_ticket(
        ticket.event,
        intake.rule_pack,
        clusters=index,
        rates=state.rates,
        known_indicators=memory.known_indicators if memory else (),
        known_risk_flag_level=memory.risk_flag_level if memory else None,
        config=intake.config,
        assessment=assessment,
    )
    assignment = decision.cluster
    state.changed_clusters.setdefault(key, set()).update(assignment.changed_cluster_ids)
    if assignment.is_new_cluster:
        state.started_clusters.add(assignment.cluster_id)
    if assignment.added_member is not None:
        state.added_members.append((assignment.cluster_id, key, assignment.added_member))
    if decision.rate is not None:
        state.changed_rates.add(decision.rate.key)
        state.rate_products[decision.rate.key] = key
    flag_level = assessment.risk_flag.level if assessment.risk_flag else None
    state.memories[assessment.ticket_id] = TicketMemory(
        ticket_id=assessment.ticket_id,
        product_key=key,
        cluster_id=decision.cluster.cluster_id,
        assessment=remembered_assessment(memory.assessment if memory else None, assessment),
        known_indicators=(
            decision.known_indicators_after
            if decision.flagged
            else (memory.known_indicators if memory else [])
        ),
        risk_flag_level=max(
            (level for level in (flag_level, memory.risk_flag_level if memory else None) if level),
            default=None,
        ),
        first_seen_at=memory.first_seen_at if memory else assessment.occurred_at,
        last_event_at=assessment.occurred_at,
    )
    state.changed_tickets.add(assessment.ticket_id)
    hour = assessment.occurred_at.replace(minute=0, second=0, microsecond=0)
    state.counts[(hour, assessment.channel, assessment.product, decision.flagged is not None)] += 1

    topic = context.topic(TICKET_FLAGGED)
    outgoing: list[OutgoingEvent] = []
    if decision.flagged is not None:
        event = flagged_event(decision.flagged, cause_event_id=ticket.id, time=ticket.event.time)
        outgoing.append(OutgoingEvent(topic, assessment.ticket_id, event))
    if decision.cluster.surge_started:
        state.surges += 1
    if decision.reflag_ticket_ids:
        missing = [t for t in decision.reflag_ticket_ids if t not in state.memories]
        if missing:
            state.memories.update(await load_tickets(connection, missing))
        for earlier_id in decision.reflag_ticket_ids:
            earlier = state.memories.get(earlier_id)
            if earlier is None:
                continue  # forgotten after retention: nothing left to flag it from
            payload = reflag_for_surge(
                earlier.assessment,
                decision.cluster.info,
                known_indicators=earlier.known_indicators,
                config=intake.config.clusters,
            )
            if payload is None:
                continue
            event = flagged_event(payload, cause_event_id=ticket.id, time=ticket.event.time)
            outgoing.append(OutgoingEvent(topic, earlier_id, event))
            state.memories[earlier_id] = replace(
                earlier,
                cluster_id=decision.cluster.cluster_id,
                known_indicators=ordered_indicators(
                    [*earlier.known_indicators, Indicator.MULTIPLE_SIMILAR_REPORTS]
                ),
            )
            state.changed_tickets.add(earlier_id)
    return outgoing


async def _save(
    connection: Connection,
    intake: Intake,
    state: _BatchState,
    tickets: list[AssessedTicket],
    outgoing: list[OutgoingEvent],
) -> None:
    latest: dict[str, datetime] = {}
    for ticket in tickets:
        key = product_key(ticket.assessment.product)
        latest[key] = max(latest.get(key, ticket.event.time), ticket.event.time)
    removed = {
        key: prune_expired(
            state.indexes[key], moment, intake.cluster_retention_seconds, intake.config.clusters
        )
        for key, moment in latest.items()
    }
    await save_batch(
        connection,
        BatchChanges(
            cached=state.indexes,
            changed_clusters=state.changed_clusters,
            removed_clusters=removed,
            added_members=state.added_members,
            started_cluster_ids=state.started_clusters,
            rates={key: state.rates.keys[key] for key in state.changed_rates},
            rate_products=state.rate_products,
            tickets=[state.memories[t] for t in sorted(state.changed_tickets)],
            counts=state.counts,
            outgoing=outgoing,
        ),
    )


def _count(metrics: IntakeMetrics, state: _BatchState, outgoing: list[OutgoingEvent]) -> None:
    for (_, channel, product, flagged), n in state.counts.items():
        metrics.tickets.labels(channel, product, "true" if flagged else "false").inc(n)
    for item in outgoing:
        for indicator in getattr(item.event.data, "new_indicators", ()):
            metrics.detections.labels(str(indicator)).inc()
    if state.surges:
        metrics.surges.inc(state.surges)


def build_intake(context: ServiceContext, settings: IntakeSettings) -> Intake:
    """Load and validate the rule pack (a bad pack stops start-up with the rule and reason)."""
    return Intake(
        rule_pack=load_rule_pack(settings.rule_pack_extensions),
        config=AssessmentConfig(clusters=settings.cluster_config()),
        cluster_retention_seconds=settings.cluster_retention_hours * 3600,
        metrics=IntakeMetrics.register(context),
    )


def configure(context: ServiceContext) -> None:
    from riskrelay.intake.api import build_router

    settings = context.settings
    assert isinstance(settings, IntakeSettings)
    intake = build_intake(context, settings)
    context.state["intake"] = intake

    async def process(batch: list[Received[AssessedTicket]]) -> list[OutgoingEvent]:
        return await process_batch(context, intake, batch)

    context.consume(TICKET_EVENTS, intake.decoder(), process)
    context.routers.append(build_router(context, intake, settings))
    context.openapi_models.append(TicketEvent)
