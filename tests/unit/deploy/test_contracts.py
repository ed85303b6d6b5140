"""docs/contracts/ (AsyncAPI and OpenAPI of every service) must match what the code generates,
and the AsyncAPI documents must say what the services really consume and publish, with the
event models' schemas."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
from jsonschema import Draft202012Validator
from pydantic import Field, create_model

from riskrelay.contracts import SERVICES, build_app, documents, generate
from riskrelay.shared.asyncapi import DEAD_LETTER_HEADERS, EVENT_HEADERS
from riskrelay.shared.envelope import CloudEvent
from riskrelay.shared.events import TicketFlagged, TicketFlaggedEvent, decode_event
from riskrelay.shared.kafka import dead_letter_headers
from riskrelay.shared.topics import TICKET_FLAGGED, TopicSpec

pytestmark = pytest.mark.unit

FIX = "docs/contracts is out of date: run `make contracts` and commit the result"
HISTORY = Path(__file__).parents[2] / "golden" / "reporting" / "history.jsonl"
MAIN = ["ticket-events", "ticket-flagged", "risk-classified", "escalation-due",
        "escalation-acks", "risk-registered", "risk-feedback"]  # fmt: skip
# What each service's code does, read from its handlers: the topics it consumes, and those it
# publishes to (its consumer also dead-letters into the .dlq twin of each event topic it reads).
EXPECTED = {
    "intake": ({"ticket-events", "risk-feedback"}, {"ticket-flagged", "ticket-events"}),
    "classifier": ({"ticket-flagged"}, {"risk-classified"}),
    "escalator": ({"risk-classified", "escalation-acks"}, {"escalation-due", "escalation-acks"}),
    "register": ({"risk-classified", "escalation-due", "escalation-acks"}, {"risk-registered"}),
    "reporting": ({*MAIN, *(f"{t}.dlq" for t in MAIN)}, {"risk-feedback"}),
}


def drift(committed_dir: Path, generated_dir: Path) -> dict[str, list[str]]:
    generated = {path.name: path.read_text() for path in generate(generated_dir)}
    committed = {path.name: path.read_text() for path in committed_dir.glob("*.json")}
    return {
        "missing": sorted(set(generated) - set(committed)),
        "stale": sorted(set(committed) - set(generated)),
        "changed": sorted(
            n for n in set(generated) & set(committed) if generated[n] != committed[n]
        ),
    }


def test_committed_contracts_match_the_code(kit: ModuleType, tmp_path: Path) -> None:
    found = drift(kit.ROOT / "docs" / "contracts", tmp_path)
    assert found == {"missing": [], "stale": [], "changed": []}, f"{FIX}: {found}"


@contextmanager
def envelope_of(spec: TopicSpec, envelope: type[CloudEvent[Any]]) -> Iterator[None]:
    """Swap the registry's envelope class of ``spec`` (the object every service registers)."""
    original = spec.envelope
    object.__setattr__(spec, "envelope", envelope)
    try:
        yield
    finally:
        object.__setattr__(spec, "envelope", original)


def flagged_envelope(**new_fields: Any) -> type[CloudEvent[Any]]:
    """``TicketFlaggedEvent`` rebuilt under the same names, its payload with ``new_fields``."""
    payload = create_model(
        "TicketFlagged", __base__=TicketFlagged, __doc__=TicketFlagged.__doc__, **new_fields
    )
    data = TicketFlaggedEvent.model_fields["data"]
    envelope: type[CloudEvent[Any]] = create_model(
        "TicketFlaggedEvent",
        __base__=TicketFlaggedEvent,
        __doc__=TicketFlaggedEvent.__doc__,
        data=(payload, Field(description=data.description)),
    )
    return envelope


def test_drift_test_fails_when_an_event_model_changes(tmp_path: Path) -> None:
    committed = tmp_path / "committed"  # as `make contracts` writes them for today's models
    generate(committed)
    # The same model, rebuilt: no drift, so what follows is the new field's doing alone.
    with envelope_of(TICKET_FLAGGED, flagged_envelope()):
        assert drift(committed, tmp_path / "same")["changed"] == []
    # A new payload field: every document with a ticket-flagged channel is stale, none other.
    with envelope_of(TICKET_FLAGGED, flagged_envelope(reviewer_note=(str | None, None))):
        found = drift(committed, tmp_path / "grown")
        document = documents("classifier")["classifier.asyncapi.json"]
    assert found["changed"] == [
        "classifier.asyncapi.json",
        "intake.asyncapi.json",
        "reporting.asyncapi.json",
    ]
    assert "reviewer_note" in document["components"]["schemas"]["TicketFlagged"]["properties"]


def asyncapi(service: str) -> dict[str, Any]:
    document: dict[str, Any] = documents(service)[f"{service}.asyncapi.json"]
    return document


@pytest.mark.parametrize("service", SERVICES)
def test_operations_are_what_the_service_consumes_and_publishes(service: str) -> None:
    document = asyncapi(service)
    consumes, publishes = EXPECTED[service]
    dead_letters = {f"{t}.dlq" for t in consumes if not t.endswith(".dlq")}
    operations = document["operations"]
    assert {op["channel"]["$ref"].removeprefix("#/channels/") for op in operations.values()
            if op["action"] == "receive"} == consumes  # fmt: skip
    assert {op["channel"]["$ref"].removeprefix("#/channels/") for op in operations.values()
            if op["action"] == "send"} == publishes | dead_letters  # fmt: skip
    assert set(document["channels"]) == consumes | publishes | dead_letters
    group = f"riskrelay-{service}"
    for name, operation in operations.items():
        bindings = operation["bindings"]["kafka"]
        assert bindings["clientId"]["enum"] == [group]
        if operation["action"] == "receive":
            assert bindings["groupId"]["enum"] == [group], name


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "$ref" and isinstance(inner, str):
                yield inner
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner)


def resolve(document: dict[str, Any], reference: str) -> Any:
    assert reference.startswith("#/"), reference
    found: Any = document
    for part in reference[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(found, dict), f"{reference} does not resolve"
        assert part in found, f"{reference} does not resolve"
        found = found[part]
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_reference_resolves_and_operations_use_their_channels_messages(
    service: str,
) -> None:
    document = asyncapi(service)
    assert document["asyncapi"] == "3.0.0"
    for reference in references(document):
        resolve(document, reference)
    for name, operation in document["operations"].items():
        assert operation["action"] in ("send", "receive"), name
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(f"{channel}/messages/"), name


def payload_validator(document: dict[str, Any], channel: str) -> Draft202012Validator:
    """A validator of ``channel``'s message payload, its references resolved in ``document``."""
    [reference] = document["channels"][channel]["messages"].values()
    message = document["components"]["messages"][reference["$ref"].rsplit("/", 1)[1]]
    return Draft202012Validator({**document, "$ref": message["payload"]["$ref"]})


def history() -> list[tuple[str, dict[str, Any]]]:
    items = [json.loads(line) for line in HISTORY.read_text().splitlines()]
    return [(item["topic"], item["event"]) for item in items]


def test_channels_carry_the_real_envelope_and_payload_schemas() -> None:
    events = history()
    assert {topic for topic, _ in events} == set(MAIN)
    checked: set[str] = set()
    for service in SERVICES:
        document = asyncapi(service)
        for topic, event in events:
            if topic not in document["channels"]:
                continue
            validator = payload_validator(document, topic)
            decode_event(json.dumps(event))  # a real, valid event of that topic ...
            assert not list(validator.iter_errors(event)), (service, topic)  # ... is accepted
            broken = {**event, "data": {k: v for k, v in event["data"].items() if k != "risk_id"
                                        and k != "ticket_id"}}  # fmt: skip
            assert list(validator.iter_errors(broken)), (service, topic)
            surprise = {**event, "data": {**event["data"], "surprise": 1}}
            assert list(validator.iter_errors(surprise)), (service, topic)  # extra is an error
            wrong_type = {**event, "type": "riskrelay.unknown.v1"}
            assert list(validator.iter_errors(wrong_type)), (service, topic)
            checked.add(topic)
    assert checked == set(MAIN)


def test_dead_letter_channels_document_the_headers_consumers_write() -> None:
    document = asyncapi("reporting")
    message = document["components"]["messages"]["DeadLetter"]
    record = ConsumerRecord("ticket-events", 0, 5, 0, 0, b"k", b"v", None, 1, 1, ())
    written = dead_letter_headers(record, "why", 1, "group", datetime(2026, 1, 1, tzinfo=UTC))
    assert set(message["headers"]["properties"]) == {name for name, _ in written}
    assert set(message["headers"]["properties"]) == set(DEAD_LETTER_HEADERS)
    event = decode_event(json.dumps(history()[0][1]))
    assert {name for name, _ in event.kafka_headers()} <= set(EVENT_HEADERS)


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_serves_the_published_document(service: str) -> None:
    app = build_app(service)
    published = asyncapi(service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        served = await client.get("/docs/asyncapi.json")
        page = await client.get("/docs/asyncapi")
    assert served.status_code == 200
    assert served.json() == published
    assert page.status_code == 200
    rendered = re.search(r"AsyncApiStandalone\.render\(\s*(\{.*\}),\s*document", page.text, re.S)
    assert rendered, "the page renders no document"
    assert json.loads(json.loads(rendered[1])["schema"]) == published


def test_publishing_to_an_undeclared_topic_is_refused() -> None:
    context = build_app("reporting").state.context
    with pytest.raises(LookupError, match="reporting publishes to ticket-flagged without"):
        context.topic(TICKET_FLAGGED)
    assert build_app("intake").state.context.topic(TICKET_FLAGGED) == "ticket-flagged"


def test_generation_ignores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = {p.name: p.read_text() for p in generate(tmp_path / "a")}
    for service in SERVICES:
        monkeypatch.setenv(f"RISKRELAY_{service.upper()}_KAFKA__TOPIC_PREFIX", "elsewhere.")
        monkeypatch.setenv(f"RISKRELAY_{service.upper()}_KAFKA__BOOTSTRAP", "broker:1")
    second = {p.name: p.read_text() for p in generate(tmp_path / "b")}
    assert first == second


def test_every_service_publishes_both_documents(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{service}.{kind}.json" for service in SERVICES for kind in ("asyncapi", "openapi")
    )
    for path in written:
        document = json.loads(path.read_text())
        assert "asyncapi" in document or "openapi" in document
        assert path.read_text() == json.dumps(document, indent=2, sort_keys=True) + "\n"
    asyncapi = json.loads((tmp_path / "intake.asyncapi.json").read_text())
    assert any(c.get("address") == "ticket-events" for c in asyncapi["channels"].values())
    openapi = json.loads((tmp_path / "intake.openapi.json").read_text())
    assert {"/healthz", "/readyz"} <= set(openapi["paths"])
