"""A service's AsyncAPI 3.0 document, built from what its code registers and the topic registry.

The document lists what the service really does, because it is read from the registrations
the running code uses: every topic it consumes (:meth:`ServiceContext.consume`) is a *receive*
operation, every topic it publishes to (:meth:`ServiceContext.publishes`, the only way its
code obtains a topic to publish on) a *send* operation, and so is the dead-letter twin of each
consumed topic, where its consumer puts the records it cannot process. Each channel carries the
topic's envelope class (:attr:`TopicSpec.envelope`): the CloudEvents envelope with its ``data``
payload, as the JSON Schema pydantic generates from the event models. A model change is
therefore a change of every document that mentions it, which the contract drift test catches.

The same function serves ``/docs/asyncapi.json`` and ``/docs/asyncapi`` of a running service
and writes ``docs/contracts`` (``python -m riskrelay.contracts``), so the two cannot differ.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from riskrelay.shared.envelope import CloudEvent
from riskrelay.shared.settings import ServiceSettings
from riskrelay.shared.topics import DLQ_SUFFIX, TopicSpec, topic_name

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
CLOUDEVENTS_JSON = "application/cloudevents+json"
SCHEMA_REF = "#/components/schemas/{model}"
DEAD_LETTER_MESSAGE = "DeadLetter"


# Kafka headers of every event record (``CloudEvent.kafka_headers``): CloudEvents binary-mode
# hints for routing and tracing without parsing the body, which stays authoritative.
EVENT_HEADERS = {
    "ce_type": "The envelope's `type`.",
    "ce_id": "The envelope's `id`.",
    "ce_correlationid": "The envelope's `correlationid` (absent when it has none).",
}
OPTIONAL_EVENT_HEADERS = frozenset({"ce_correlationid"})
# Headers a consumer adds to a dead letter (``riskrelay.shared.kafka.dead_letter_headers``),
# next to the record's original headers.
DEAD_LETTER_HEADERS = {
    "dlq_error": "Why the record could not be processed (never the record's free text).",
    "dlq_source_topic": "Topic of the original record.",
    "dlq_source_partition": "Its partition (decimal).",
    "dlq_source_offset": "Its offset (decimal).",
    "dlq_attempts": "Batch attempts before it was isolated (decimal).",
    "dlq_consumer_group": "Consumer group that gave up on it.",
    "dlq_failed_at": "When, RFC 3339.",
}


@dataclass(frozen=True)
class Registrations:
    """What one service registered: the topics it consumes and those it publishes to."""

    consumes: Sequence[TopicSpec]
    publishes: Sequence[TopicSpec]

    def dead_letter_twins(self) -> list[TopicSpec]:
        """Where the service's consumer sends what it cannot process (event topics only: the
        dead-letter topics it may read carry no contract to break)."""
        return [spec.dlq for spec in self.consumes if spec.envelope is not None]


def _event_types(envelope: type[CloudEvent[Any]]) -> list[str]:
    annotation = envelope.model_fields["type"].annotation
    return [str(value) for value in getattr(annotation, "__args__", ())]


def _unique(specs: Iterable[TopicSpec]) -> list[TopicSpec]:
    found: dict[str, TopicSpec] = {}
    for spec in specs:
        found.setdefault(spec.name, spec)
    return list(found.values())


def _headers_schema(
    described: dict[str, str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": d} for name, d in described.items()},
        "required": [name for name in described if name not in optional],
    }


def _docstring(model: type[BaseModel]) -> str | None:
    text = " ".join((model.__doc__ or "").split())
    return text or None


def _event_message(envelope: type[CloudEvent[Any]], keys: list[str]) -> dict[str, Any]:
    types = _event_types(envelope)
    headers = _headers_schema(EVENT_HEADERS, OPTIONAL_EVENT_HEADERS)
    headers["properties"]["ce_type"]["enum"] = types
    payload = envelope.model_fields["data"].annotation
    description = _docstring(envelope) or (
        _docstring(payload)
        if isinstance(payload, type) and issubclass(payload, BaseModel)
        else None
    )
    message: dict[str, Any] = {
        "name": envelope.__name__,
        "title": ", ".join(types),
        "summary": f"{' or '.join(types)} in a CloudEvents 1.0 envelope (structured JSON).",
        "contentType": CLOUDEVENTS_JSON,
        "payload": {"$ref": SCHEMA_REF.format(model=envelope.__name__)},
        "headers": headers,
        "correlationId": {
            "description": "The ticket or risk this event traces, constant along a chain.",
            "location": "$message.payload#/correlationid",
        },
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": f"The record key: {' or '.join(keys)}."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }
    if description is not None:
        message["description"] = description
    return message


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER_MESSAGE,
        "title": "Dead letter",
        "summary": "A record its consumer could not process, with why and where it came from.",
        "description": (
            "The original record's key, value and headers, unchanged (the value may be anything:"
            " invalid bytes are a reason to be here), plus the `dlq_*` headers."
        ),
        "contentType": "application/octet-stream",
        "payload": {"description": "The original record's value, byte for byte."},
        "headers": _headers_schema(DEAD_LETTER_HEADERS),
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original record's key."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _message_id(spec: TopicSpec) -> str:
    return spec.envelope.__name__ if spec.envelope is not None else DEAD_LETTER_MESSAGE


def _channel(spec: TopicSpec, prefix: str) -> dict[str, Any]:
    address = topic_name(spec, prefix)
    message = _message_id(spec)
    return {
        "address": address,
        "title": spec.name,
        "description": spec.description,
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {
            "kafka": {
                "topic": address,
                "partitions": spec.partitions,
                "topicConfiguration": {
                    "cleanup.policy": spec.cleanup_policy.split(","),
                    "retention.ms": spec.retention_ms,
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def _operation(
    action: str, spec: TopicSpec, summary: str, bindings: dict[str, Any]
) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{spec.name}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{spec.name}/messages/{_message_id(spec)}"}],
        "bindings": {"kafka": {**bindings, "bindingVersion": KAFKA_BINDING_VERSION}},
    }


def _server(settings: ServiceSettings) -> dict[str, Any]:
    kafka = settings.kafka
    secure = kafka.security_protocol in ("SSL", "SASL_SSL")
    return {
        "host": kafka.bootstrap,
        "protocol": "kafka-secure" if secure else "kafka",
        "description": (
            f"The Kafka cluster (bootstrap from KAFKA__BOOTSTRAP, {kafka.security_protocol}"
            f"{', SASL ' + kafka.sasl_mechanism if kafka.sasl_mechanism else ''})."
        ),
    }


def build_document(
    *,
    title: str,
    version: str,
    description: str,
    settings: ServiceSettings,
    registrations: Registrations,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of one service (a JSON-ready dict)."""
    prefix = settings.kafka.topic_prefix
    group = settings.consumer_group
    client_id = f"riskrelay-{settings.service_name}"
    receives = _unique(registrations.consumes)
    sends = _unique([*registrations.publishes, *registrations.dead_letter_twins()])
    channels = _unique([*receives, *sends])

    envelopes: dict[str, type[CloudEvent[Any]]] = {}
    keys: dict[str, list[str]] = {}
    for spec in channels:
        if spec.envelope is not None:
            envelopes.setdefault(spec.envelope.__name__, spec.envelope)
            keys.setdefault(spec.envelope.__name__, [])
            if spec.key not in keys[spec.envelope.__name__]:
                keys[spec.envelope.__name__].append(spec.key)
    _, definitions = models_json_schema(
        [(envelope, "validation") for envelope in envelopes.values()], ref_template=SCHEMA_REF
    )
    messages = {name: _event_message(cls, keys[name]) for name, cls in envelopes.items()}
    if any(spec.envelope is None for spec in channels):
        messages[DEAD_LETTER_MESSAGE] = _dead_letter_message()

    operations: dict[str, dict[str, Any]] = {}
    for spec in receives:
        operations[f"receive-{spec.name}"] = _operation(
            "receive",
            spec,
            f"{settings.service_name} consumes {spec.name} in batches, at least once"
            f" (effects once per event id); what it cannot process goes to"
            f" {spec.name}{DLQ_SUFFIX}.",
            {
                "groupId": {"type": "string", "enum": [group]},
                "clientId": {"type": "string", "enum": [client_id]},
            },
        )
    for spec in sends:
        what = "dead letters" if spec.envelope is None else ", ".join(_event_types(spec.envelope))
        operations[f"send-{spec.name}"] = _operation(
            "send",
            spec,
            f"{settings.service_name} publishes {what} to {spec.name}.",
            {"clientId": {"type": "string", "enum": [client_id]}},
        )

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "defaultContentType": CLOUDEVENTS_JSON,
        "servers": {"kafka": _server(settings)},
        "channels": {spec.name: _channel(spec, prefix) for spec in channels},
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions.get("$defs", {})},
    }


@dataclass(frozen=True)
class Document:
    """A built document in the shape FastStream's AsyncAPI page renderer reads."""

    content: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.content["info"]["title"])

    def to_jsonable(self) -> Any:
        return self.content

    def to_json(self) -> str:
        return json.dumps(self.content, sort_keys=True, ensure_ascii=False)

    def to_yaml(self) -> str:
        return self.to_json()  # JSON is YAML; nothing here asks for the block style
