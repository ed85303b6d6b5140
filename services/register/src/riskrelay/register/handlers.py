"""Register edges on Kafka: risk-classified, escalation-due and escalation-acks in, the full
entry on risk-registered out, through the outbox in the same transaction as the change.

Decisions are made by :mod:`riskrelay.register.domain`; this module decodes, locks, loads,
persists and publishes. Every new version of an entry is one history row and one
``riskrelay.risk.registered.v1`` event whose id is derived from the risk id and the version,
so the same change always has the same event id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from riskrelay.register import store
from riskrelay.register.domain import (
    ChangeKind,
    RegisterError,
    RegisterPolicy,
    apply_escalation_signal,
    diff_entries,
    merge_classification,
    should_register,
    signal_matters_once_registered,
)
from riskrelay.register.metrics import RegisterMetrics
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.clock import now_of, system_clock
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    EscalationAcknowledged,
    EscalationAcknowledgedEvent,
    EscalationDue,
    EscalationDueEvent,
    RiskClassifiedEvent,
    RiskRegisteredEvent,
    RiskRegisterEntry,
    Role,
)
from riskrelay.shared.kafka import OutgoingEvent, Received, dead_letter_headers, describe_error
from riskrelay.shared.logging import get_logger
from riskrelay.shared.outbox import Outbox
from riskrelay.shared.store import claim_new
from riskrelay.shared.topics import DLQ_SUFFIX, RISK_REGISTERED

log = get_logger(__name__)

SOURCE = "riskrelay/register"


def registered_event_id(risk_id: str, version: int) -> str:
    """The id of the risk-registered event announcing ``version`` of ``risk_id``."""
    return derive_event_id(risk_id, f"v{version}")


@dataclass(frozen=True)
class Change:
    """One new version of an entry, and who or what made it."""

    kind: ChangeKind
    before: RiskRegisterEntry | None
    after: RiskRegisterEntry
    cause_event_id: str | None = None
    actor: str | None = None
    role: Role | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TicketLinks:
    risk_id: str
    ticket_ids: Sequence[str]
    at: datetime
    cause_event_id: str


@dataclass
class Register:
    """The register's runtime: its context (I/O), policy and metrics. ``clock`` is read through
    ``context.state['clock']`` on every use, so tests can set the time of a running app."""

    context: ServiceContext
    policy: RegisterPolicy
    metrics: RegisterMetrics
    _registered_topic: str = field(init=False)

    def __post_init__(self) -> None:
        self._registered_topic = self.context.topic(RISK_REGISTERED)

    def now(self) -> datetime:
        return now_of(self.context.state)

    def outgoing(self, change: Change) -> OutgoingEvent:
        entry = change.after
        event = RiskRegisteredEvent(
            id=registered_event_id(entry.risk_id, entry.version),
            source=SOURCE,
            time=entry.updated_at,
            subject=entry.risk_id,
            correlationid=entry.risk_id,
            causationid=change.cause_event_id,
            data=entry,
        )
        return OutgoingEvent(self._registered_topic, entry.risk_id, event)

    async def commit(
        self,
        connection: store.Connection,
        changes: Sequence[Change],
        links: Sequence[TicketLinks] = (),
    ) -> list[OutgoingEvent]:
        """Persist ``changes`` (in order) in the caller's transaction and stage their events.

        Returns the events that may be published right after commit: a risk with an older
        event still unpublished is left to the relay, which publishes in outbox order, so the
        last record of a risk on the compacted topic is always its latest version.
        """
        first_before: dict[str, RiskRegisterEntry | None] = {}
        last_after: dict[str, RiskRegisterEntry] = {}
        registered_at: dict[str, datetime] = {}
        for change in changes:
            risk_id = change.after.risk_id
            if risk_id not in first_before:
                first_before[risk_id] = change.before
            last_after[risk_id] = change.after
            if change.before is None:
                registered_at[risk_id] = change.after.updated_at
        for risk_id, after in last_after.items():
            await store.save_entry(
                connection,
                first_before[risk_id],
                after,
                registered_at.get(risk_id, after.updated_at),
            )
        for link in links:
            await store.link_tickets(
                connection, link.risk_id, link.ticket_ids, link.at, link.cause_event_id
            )
        await store.append_history(
            connection,
            [
                (
                    change.kind,
                    diff_entries(
                        change.before,
                        change.after,
                        actor=change.actor,
                        role=change.role,
                        cause_event_id=change.cause_event_id,
                        reason=change.reason,
                    ),
                )
                for change in changes
            ],
        )
        assert self.context.outbox is not None
        held = await store.risks_with_unpublished_events(
            connection, self._registered_topic, last_after, self.context.outbox.awaiting_mark
        )
        outgoing = [self.outgoing(change) for change in changes]
        await Outbox.write(connection, outgoing)
        return [item for item in outgoing if item.key not in held]

    async def publish_now(self, events: Sequence[OutgoingEvent]) -> None:
        """Publish after commit; on failure the relay publishes them later, so log and go on."""
        assert self.context.outbox is not None
        await self.context.outbox.publish_after_commit(events)

    async def dead_letter(self, refused: Sequence[tuple[Received[Any], str]]) -> None:
        """Send events the domain refused to ``<topic>.dlq`` with the reason, at once: a
        refusal is deterministic, so retrying the batch would only delay the rest."""
        now = system_clock()
        futures = []
        for item, reason in refused:
            record = item.record
            futures.append(
                await self.context.producer.send_raw(
                    record.topic + DLQ_SUFFIX,
                    record.key,
                    record.value or b"",
                    dead_letter_headers(
                        record, reason, 1, self.context.settings.consumer_group, now
                    ),
                )
            )
            self.context.consumer_metrics.dead_lettered.labels(record.topic).inc()
            log.warning("event refused, dead-lettered", topic=record.topic, error=reason)
        for future in futures:
            await future


async def _release(
    connection: store.Connection, refused: Sequence[tuple[Received[Any], str]]
) -> None:
    # A refused event is not "processed": after a fix, `riskrelay dlq replay` must apply it.
    if refused:
        await connection.execute(
            "DELETE FROM processed_events WHERE event_id = ANY($1::text[])",
            [item.event.id for item, _ in refused],
        )


def _signal_change(
    before: RiskRegisterEntry,
    after: RiskRegisterEntry,
    event_id: str,
    signal: EscalationDue | EscalationAcknowledged,
) -> Change:
    if isinstance(signal, EscalationDue):
        reason = f"{signal.reason.value} notice to {signal.target_role.value} (step {signal.step})"
        return Change(ChangeKind.ESCALATION, before, after, cause_event_id=event_id, reason=reason)
    decision = f" ({signal.decision.value})" if signal.decision else ""
    note = f": {signal.note}" if signal.note else ""
    return Change(
        ChangeKind.ACKNOWLEDGEMENT,
        before,
        after,
        cause_event_id=event_id,
        actor=signal.acknowledged_by,
        role=signal.role,
        reason=f"acknowledged by {signal.role.value}{decision}{note}",
    )


async def apply_classifications(
    register: Register, batch: list[Received[RiskClassifiedEvent]]
) -> list[OutgoingEvent]:
    changes: list[Change] = []
    links: list[TicketLinks] = []
    refused: list[tuple[Received[Any], str]] = []
    async with register.context.db.acquire() as connection, connection.transaction():
        items = await claim_new(
            connection,
            batch,
            lambda item: item.event.id,
            lock=store.RISK_LOCKS.of(item.event.data.risk_id for item in batch),
        )
        if not items:
            return []
        risk_ids = [item.event.data.risk_id for item in items]
        entries = await store.load_entries(connection, risk_ids)
        for item in items:
            event: RiskClassifiedEvent = item.event
            classified = event.data
            entry = entries.get(classified.risk_id)
            if not should_register(entry, classified):
                continue  # levels 1-2 are not the register's business; recorded as processed
            try:
                after = merge_classification(entry, classified, event.time, policy=register.policy)
            except (RegisterError, ValidationError) as error:
                refused.append((item, describe_error(error)))
                continue
            links.append(
                TicketLinks(
                    classified.risk_id,
                    [*classified.ticket_ids, classified.ticket_id],
                    event.time,
                    event.id,
                )
            )
            if after is entry:
                continue
            override = classified.override
            changes.append(
                Change(
                    ChangeKind.REGISTERED if entry is None else ChangeKind.CLASSIFICATION,
                    entry,
                    after,
                    cause_event_id=event.id,
                    actor=override.by if override else None,
                    role=override.role if override else None,
                    reason=(
                        f"override: {override.reason}"
                        if override
                        else f"classified level {int(classified.level)} ({classified.category.value})"
                    ),
                )
            )
            entries[classified.risk_id] = after
            if entry is None:
                changes.extend(
                    await _apply_pending_signals(connection, entries, classified.risk_id)
                )
        await _release(connection, refused)
        publishable = await register.commit(connection, changes, links)
    register.metrics.count_changes([change.kind for change in changes])
    await register.dead_letter(refused)
    return publishable


async def _apply_pending_signals(
    connection: store.Connection, entries: dict[str, RiskRegisterEntry], risk_id: str
) -> list[Change]:
    changes = []
    for pending in await store.take_pending_signals(connection, risk_id):
        before = entries[risk_id]
        after = apply_escalation_signal(before, pending.signal, pending.at)
        if after is not before:
            changes.append(_signal_change(before, after, pending.event_id, pending.signal))
            entries[risk_id] = after
    return changes


async def apply_escalation_signals(
    register: Register,
    batch: list[Received[EscalationDueEvent]] | list[Received[EscalationAcknowledgedEvent]],
) -> list[OutgoingEvent]:
    changes: list[Change] = []
    refused: list[tuple[Received[Any], str]] = []
    async with register.context.db.acquire() as connection, connection.transaction():
        items: list[Received[Any]] = await claim_new(
            connection,
            batch,
            lambda item: item.event.id,
            lock=store.RISK_LOCKS.of(item.event.data.risk_id for item in batch),
        )
        if not items:
            return []
        risk_ids = [item.event.data.risk_id for item in items]
        entries = await store.load_entries(connection, risk_ids)
        for item in items:
            event: EscalationDueEvent | EscalationAcknowledgedEvent = item.event
            signal = event.data
            entry = entries.get(signal.risk_id)
            if entry is None:
                if signal_matters_once_registered(signal):
                    await store.keep_pending_signal(connection, event.id, event.time, signal)
                continue
            try:
                after = apply_escalation_signal(entry, signal, event.time)
            except (RegisterError, ValidationError) as error:
                refused.append((item, describe_error(error)))
                continue
            if after is entry:
                continue
            changes.append(_signal_change(entry, after, event.id, signal))
            entries[signal.risk_id] = after
        await _release(connection, refused)
        publishable = await register.commit(connection, changes)
    register.metrics.count_changes([change.kind for change in changes])
    await register.dead_letter(refused)
    return publishable
