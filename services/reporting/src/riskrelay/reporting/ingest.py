"""Applying decoded events to the read model: checks, idempotency, dispatch to the store.

The decoders used by the consumer run :func:`unappliable_reason` after contract validation, so an
event the read model cannot hold (empty ids, NUL characters PostgreSQL text rejects) is
dead-lettered at once with the reason instead of failing its batch again and again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import asyncpg
from pydantic import BaseModel

from riskrelay.reporting import console_store, feedback_store, store
from riskrelay.shared.envelope import CloudEvent
from riskrelay.shared.events import (
    EscalationAcknowledgedEvent,
    EscalationDueEvent,
    RiskClassifiedEvent,
    RiskFeedbackEvent,
    RiskRegisteredEvent,
    TicketEvent,
    TicketFlaggedEvent,
)
from riskrelay.shared.store import claim_new

EventT = TypeVar("EventT", bound=CloudEvent[Any])


class UnappliableEventError(ValueError):
    """A valid event the read model cannot apply; raised by decoders so it is dead-lettered."""


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _strings(getattr(value, name))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)


def _required_ids(event: CloudEvent[Any]) -> dict[str, str]:
    data = event.data
    if isinstance(event, TicketEvent):
        return {"data.ticket_id": event.data.ticket_id}
    if isinstance(event, TicketFlaggedEvent):
        return {"data.ticket_id": event.data.ticket_id}
    if isinstance(event, RiskClassifiedEvent):
        ids = {"data.risk_id": event.data.risk_id, "data.ticket_id": event.data.ticket_id}
        ids.update({f"data.ticket_ids[{i}]": t for i, t in enumerate(event.data.ticket_ids)})
        return ids
    if isinstance(event, EscalationDueEvent | EscalationAcknowledgedEvent):
        return {"data.escalation_id": data.escalation_id, "data.risk_id": data.risk_id}
    if isinstance(event, RiskRegisteredEvent):
        return {"data.risk_id": event.data.risk_id}
    if isinstance(event, RiskFeedbackEvent):
        named = {"data.ticket_id": event.data.ticket_id, "data.risk_id": event.data.risk_id}
        return {name: value for name, value in named.items() if value is not None}
    return {}


def unappliable_reason(event: CloudEvent[Any]) -> str | None:
    """Why the read model cannot apply ``event``, or None when it can."""
    for field, value in _required_ids(event).items():
        if not value.strip():
            return f"{field} is empty: the read model keys rows by it"
    # Only what reporting stores matters, but a NUL anywhere is a broken producer; reject it whole.
    if any("\x00" in text for text in _strings(event)):
        return "a text field contains a NUL character, which PostgreSQL text cannot store"
    return None


def checked_decoder(envelope: type[EventT]) -> Callable[[bytes], EventT]:
    """Contract validation plus the read model's own checks, as one decoder."""

    def decode(raw: bytes) -> EventT:
        event = envelope.model_validate_json(raw)
        reason = unappliable_reason(event)
        if reason is not None:
            raise UnappliableEventError(
                f"read model cannot apply {event.type} {event.id}: {reason}"
            )
        return event

    decode.__name__ = f"decode_{envelope.__name__}"
    return decode


def claim_key(event: CloudEvent[Any]) -> str:
    """The idempotency key: upstream ids are only unique per source, derived ids everywhere."""
    if isinstance(event, TicketEvent):
        return f"upstream:{event.source}:{event.id}"
    return event.id


async def apply_events(connection: store.Connection, events: Sequence[CloudEvent[Any]]) -> int:
    """Apply the events not applied before (call inside a transaction); returns how many."""
    chosen = await claim_new(cast(asyncpg.Connection, connection), events, claim_key)
    await store.apply_ticket_events(connection, [e for e in chosen if isinstance(e, TicketEvent)])
    flags = [e for e in chosen if isinstance(e, TicketFlaggedEvent)]
    await store.apply_flags(connection, flags)
    await console_store.apply_flag_details(connection, flags)
    classifications = [e for e in chosen if isinstance(e, RiskClassifiedEvent)]
    await store.apply_classifications(connection, classifications)
    await console_store.apply_risk_explanations(connection, classifications)
    await store.apply_escalation_notices(
        connection, [e for e in chosen if isinstance(e, EscalationDueEvent)]
    )
    await store.apply_acknowledgements(
        connection, [e for e in chosen if isinstance(e, EscalationAcknowledgedEvent)]
    )
    await store.apply_register_entries(
        connection, [e for e in chosen if isinstance(e, RiskRegisteredEvent)]
    )
    await feedback_store.apply_feedback(
        connection, [e for e in chosen if isinstance(e, RiskFeedbackEvent)]
    )
    return len(chosen)
