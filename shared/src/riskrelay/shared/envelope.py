"""The one event envelope: CloudEvents 1.0 in structured JSON mode.

Every message on every riskrelay topic is one JSON object shaped like this, with the payload under
``data``. Two extension attributes carry tracing: ``correlationid`` names the ticket or risk the
event is about (it stays the same along the whole chain), ``causationid`` names the event that
caused this one. Derived events get deterministic ids (:func:`derive_event_id`) so that a
re-delivered input produces the same output id and consumers can drop the duplicate.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

DataT = TypeVar("DataT", bound=BaseModel)

# A fixed namespace so derived ids are the same on every machine and in every replay.
EVENT_ID_NAMESPACE = uuid.UUID("6f1c1d3e-8a52-4b8e-9d0e-2a7c5a1f0b11")


def derive_event_id(causing_event_id: str, step: str) -> str:
    """Return the id of the event that ``step`` derives from ``causing_event_id``.

    UUIDv5 is a pure function of its inputs: processing the same input twice yields the same
    output id, which is what lets every consumer deduplicate by id.
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{causing_event_id}/{step}"))


class Contract(BaseModel):
    """Base of every payload: immutable, and unknown fields are an error, not silently kept."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event in structured JSON mode, with riskrelay's tracing extensions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = Field(default="1.0", description="CloudEvents spec version.")
    id: str = Field(
        min_length=1,
        max_length=256,
        description="Unique per source. Upstream: the helpdesk's event id. Derived: UUIDv5.",
    )
    source: str = Field(
        min_length=1,
        max_length=512,
        description="URI-reference of the producer, e.g. `zendesk://acme` or `riskrelay/intake`.",
    )
    type: str = Field(description="Event type with version, e.g. `riskrelay.risk.classified.v1`.")
    time: AwareDatetime = Field(description="When the occurrence happened (event time), RFC 3339.")
    subject: str | None = Field(
        default=None,
        max_length=512,
        description="The entity the event is about (ticket or risk id).",
    )
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Media type of `data`."
    )
    dataschema: str | None = Field(
        default=None, max_length=1024, description="URI of the JSON Schema `data` adheres to."
    )
    correlationid: str | None = Field(
        default=None,
        max_length=256,
        description="Extension: the ticket or risk this event traces, constant along a chain.",
    )
    causationid: str | None = Field(
        default=None, max_length=256, description="Extension: id of the event that caused this one."
    )
    data: DataT = Field(description="The event payload; its model is fixed by `type`.")

    def to_json_bytes(self) -> bytes:
        """Serialize in structured mode, dropping absent optional attributes."""
        return self.model_dump_json(exclude_none=True).encode()

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """Headers that let tools route and trace without parsing the body (binary-mode hints)."""
        headers = [("ce_type", self.type.encode()), ("ce_id", self.id.encode())]
        if self.correlationid:
            headers.append(("ce_correlationid", self.correlationid.encode()))
        return headers


def derived_envelope_fields(
    cause: CloudEvent[Any], step: str, *, source: str, time: datetime
) -> dict[str, Any]:
    """Envelope attributes for an event derived from ``cause`` by ``step``.

    Keeps the correlation id of the chain and points ``causationid`` at the cause.
    """
    return {
        "id": derive_event_id(cause.id, step),
        "source": source,
        "time": time,
        "correlationid": cause.correlationid or cause.subject or cause.id,
        "causationid": cause.id,
    }
