"""Kafka subscribers of the intake service: decode, apply, emit.

Foundation slice: every input topic is consumed in batches, invalid events are dead-lettered
with the reason, and each valid event id is recorded once in `processed_events`. The
service's domain behaviour is added on top of this in its own issue.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from riskrelay.shared.app import ServiceContext
from riskrelay.shared.events import TicketEvent
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.store import claim_new_event_ids
from riskrelay.shared.topics import TICKET_EVENTS


async def record_processed(
    context: ServiceContext, batch: list[Received[Any]]
) -> list[OutgoingEvent]:
    async with context.db.acquire() as connection, connection.transaction():
        await claim_new_event_ids(connection, (item.event.id for item in batch))
    return []


def configure(context: ServiceContext) -> None:
    context.consume(
        TICKET_EVENTS, TicketEvent.model_validate_json, partial(record_processed, context)
    )
