"""Intake's Kafka edge: ticket events in, ticket-flagged out through the outbox.

Decoding a record runs the whole stateless assessment (validation, size limits, vocabularies,
normalization, redaction, single-ticket rules), so anything intake refuses is
dead-lettered with its reason by the shared consumer. The stateful part runs per batch in one
transaction, under the product locks described in :mod:`riskrelay.intake.store`, in event-time
order: :func:`~riskrelay.intake.service.intake_step` decides; this module claims, loads, saves
and publishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

from prometheus_client import Counter as MetricCounter

from riskrelay.intake.clustering import product_key
from riskrelay.intake.domain import TicketAssessment
from riskrelay.intake.errors import IntakeRejection
from riskrelay.intake.patterns import RateBaselines, rate_key
from riskrelay.intake.service import AssessedTicket, Intake, IntakeStepResult, intake_step
from riskrelay.intake.store import (
    BatchChanges,
    BatchReads,
    CachedProduct,
    ClusterCache,
    TicketMemory,
    load_batch,
    load_tickets,
    product_locks,
    save_batch,
)
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.events import TicketEvent
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.store import Connection, claim_new
from riskrelay.shared.topics import TICKET_FLAGGED
from riskrelay.shared.worker import WorkerLoop, run_on


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

    def count(self, result: IntakeStepResult) -> None:
        for (_, channel, product, flagged), n in result.changes.counts.items():
            self.tickets.labels(channel, product, "true" if flagged else "false").inc(n)
        for flag in result.flags:
            for indicator in flag.data.new_indicators:
                self.detections.labels(str(indicator)).inc()
        if result.surges:
            self.surges.inc(result.surges)


class PostgresIntakeRepository:
    """The step's repository inside one batch transaction: :meth:`load` reads everything the
    batch's tickets need in one statement (two when a cached cluster index is stale); only the
    earlier members of a cluster that surges cost another."""

    def __init__(
        self, connection: Connection, reads: BatchReads, read_ticket_ids: Collection[str]
    ) -> None:
        self._connection = connection
        self._reads = reads
        self._read_ticket_ids = set(read_ticket_ids)
        self.rates = RateBaselines(keys=reads.rates)

    @classmethod
    async def load(
        cls, connection: Connection, cache: ClusterCache, tickets: Collection[AssessedTicket]
    ) -> PostgresIntakeRepository:
        """Read the batch's state (call with its products locked)."""
        ticket_ids = {t.assessment.ticket_id for t in tickets}
        reads = await load_batch(
            connection,
            cache,
            product_keys={product_key(t.assessment.product) for t in tickets},
            rate_keys=(rate_key(t.assessment.product, t.assessment.channel) for t in tickets),
            ticket_ids=ticket_ids,
        )
        return cls(connection, reads, ticket_ids)

    def cluster_index(self, product_key: str) -> CachedProduct:
        return self._reads.indexes[product_key]

    async def tickets(self, ticket_ids: Collection[str]) -> dict[str, TicketMemory]:
        known = self._reads.tickets
        unread = [t for t in ticket_ids if t not in self._read_ticket_ids]
        if unread:
            known.update(await load_tickets(self._connection, unread))
            self._read_ticket_ids.update(unread)
        return {t: known[t] for t in ticket_ids if t in known}

    async def save(self, changes: BatchChanges) -> None:
        await save_batch(self._connection, changes)


class OnLoopRepository:
    """A repository, for a step running on another thread's loop: reads and writes run on
    ``loop``, which owns the batch's connection; the in-memory state (cluster indexes, rate
    baselines) is the step's alone while the consumer's loop waits for it."""

    def __init__(self, repository: PostgresIntakeRepository, loop: asyncio.AbstractEventLoop):
        self._repository = repository
        self._loop = loop

    @property
    def rates(self) -> RateBaselines:
        return self._repository.rates

    def cluster_index(self, product_key: str) -> CachedProduct:
        return self._repository.cluster_index(product_key)

    async def tickets(self, ticket_ids: Collection[str]) -> dict[str, TicketMemory]:
        return await run_on(self._loop, self._repository.tickets(ticket_ids))

    async def save(self, changes: BatchChanges) -> None:
        await run_on(self._loop, self._repository.save(changes))


@dataclass
class IntakeConsumer:
    """Intake's consumer of ``ticket-events``: one per service instance."""

    intake: Intake
    metrics: IntakeMetrics
    cache: ClusterCache = field(default_factory=ClusterCache)
    """This instance's cluster indexes, checked per batch (see :mod:`riskrelay.intake.store`)."""
    worker: WorkerLoop = field(default_factory=lambda: WorkerLoop("intake-step"))
    """Where records are decoded and steps run, off the consumer's event loop."""

    def assess(self, event: TicketEvent) -> TicketAssessment:
        """:meth:`Intake.assess`, counting what it refuses."""
        try:
            return self.intake.assess(event)
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

    async def process(
        self, context: ServiceContext, batch: list[Received[AssessedTicket]]
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
            try:
                repository = await PostgresIntakeRepository.load(connection, self.cache, tickets)
                # The step computes for as long as its batch needs (the encoder, clustering):
                # on the worker, so this loop keeps the group's heartbeat going meanwhile.
                on_worker = OnLoopRepository(repository, asyncio.get_running_loop())
                result = await self.worker.run(lambda: intake_step(self.intake, on_worker, tickets))
                topic = context.topic(TICKET_FLAGGED)
                outgoing = [
                    OutgoingEvent(topic, flag.data.ticket_id, flag) for flag in result.flags
                ]
                await repository.save(replace(result.changes, outgoing=outgoing))
            except BaseException:
                # The cached indexes may hold changes this transaction will not commit.
                self.cache.forget(product_key(t.assessment.product) for t in tickets)
                raise
        self.metrics.count(result)
        return outgoing
