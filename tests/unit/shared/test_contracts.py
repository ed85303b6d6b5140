from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from riskrelay.shared.envelope import derive_event_id, derived_envelope_fields
from riskrelay.shared.events import (
    Detection,
    Indicator,
    RiskClassifiedEvent,
    TicketEvent,
    TicketFlaggedEvent,
    decode_event,
)
from riskrelay.shared.schemas import export_schemas, render

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
README_EXAMPLE = {
    "specversion": "1.0",
    "id": "zd-evt-8812",
    "source": "zendesk://acme",
    "type": "riskrelay.ticket.created.v1",
    "time": "2026-11-20T09:14:03+01:00",
    "subject": "T-1001",
    "data": {
        "ticket_id": "T-1001",
        "subject": "Someone logged into my account",
        "description": "I got an e-mail that my password changed. I did not do this.",
        "channel": "email",
        "customer": {"id": "C-77", "segment": "smb", "name": "Jane Roe"},
        "product": "Payments API",
        "priority": "high",
        "tags": ["account"],
        "agent_id": "agent-12",
        "agent_name": "Sam Lee",
    },
}


def test_upstream_example_round_trips_byte_for_byte_stable() -> None:
    event = TicketEvent.model_validate(README_EXAMPLE)
    again = TicketEvent.model_validate_json(event.to_json_bytes())
    assert again == event
    assert again.to_json_bytes() == event.to_json_bytes()
    assert event.time.utcoffset() is not None


def test_decode_event_picks_the_class_by_type() -> None:
    event = decode_event(json.dumps(README_EXAMPLE))
    assert isinstance(event, TicketEvent)
    assert event.kind.value == "created"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"type": "riskrelay.ticket.created.v2"}, "does not match any of the expected tags"),
        ({"type": "zendesk.ticket"}, "does not match any of the expected tags"),
        ({"time": "2026-11-20T09:14:03"}, "timezone"),
        ({"specversion": "0.3"}, "specversion"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_envelopes_are_rejected_with_the_reason(
    change: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError) as error:
        decode_event(json.dumps({**README_EXAMPLE, **change}))
    assert fragment in str(error.value)


def test_missing_required_data_field_is_named() -> None:
    data = dict(README_EXAMPLE["data"])  # type: ignore[arg-type]
    del data["ticket_id"]
    with pytest.raises(ValidationError) as error:
        TicketEvent.model_validate({**README_EXAMPLE, "data": data})
    problems = error.value.errors()
    assert [(p["loc"], p["type"]) for p in problems] == [(("data", "ticket_id"), "missing")]


def test_commented_event_requires_a_comment() -> None:
    with pytest.raises(ValidationError, match=r"data\.comment is required"):
        TicketEvent.model_validate({**README_EXAMPLE, "type": "riskrelay.ticket.commented.v1"})
    ok = TicketEvent.model_validate(
        {
            **README_EXAMPLE,
            "type": "riskrelay.ticket.commented.v1",
            "data": {
                **README_EXAMPLE["data"],
                "comment": {"author_type": "customer", "body": "hi"},
            },  # type: ignore[dict-item]
        }
    )
    assert ok.data.comment is not None


def test_payloads_are_frozen() -> None:
    event = TicketEvent.model_validate(README_EXAMPLE)
    with pytest.raises(ValidationError):
        event.data.ticket_id = "other"  # type: ignore[misc]


def test_derived_ids_are_deterministic_and_step_specific() -> None:
    assert derive_event_id("evt-1", "flag") == derive_event_id("evt-1", "flag")
    assert derive_event_id("evt-1", "flag") != derive_event_id("evt-1", "classify")
    assert derive_event_id("evt-1", "flag") != derive_event_id("evt-2", "flag")


def test_derived_envelope_keeps_the_chain() -> None:
    cause = TicketEvent.model_validate({**README_EXAMPLE, "correlationid": "T-1001"})
    at = datetime(2026, 11, 20, 8, 14, 3, tzinfo=UTC)
    fields = derived_envelope_fields(cause, "flag", source="riskrelay/intake", time=at)
    assert fields["causationid"] == cause.id
    assert fields["correlationid"] == "T-1001"
    assert fields["id"] == derive_event_id(cause.id, "flag")


def test_internal_event_types_have_defaults_and_round_trip() -> None:
    detection = Detection(
        indicator=Indicator.SECURITY_ISSUE,
        rule_id="security_issue.x",
        evidence="[EMAIL]",
        confidence=0.9,
    )
    assert Detection.model_validate_json(detection.model_dump_json()) == detection
    assert TicketFlaggedEvent.model_fields["type"].default == "riskrelay.ticket.flagged.v1"
    assert RiskClassifiedEvent.model_fields["type"].default == "riskrelay.risk.classified.v1"


def test_committed_json_schemas_match_the_models() -> None:
    folder = REPO / "shared" / "schemas"
    exported = export_schemas()
    committed = {p.name for p in folder.glob("*.json")}
    assert committed == set(exported), "run: uv run python -m riskrelay.shared.schemas"
    for name, schema in exported.items():
        assert (folder / name).read_text() == render(schema), f"{name} drifted; regenerate it"


def test_schema_accepts_the_readme_example_and_rejects_a_broken_one() -> None:
    schema = export_schemas()["ticket.v1.json"]
    jsonschema.validate(README_EXAMPLE, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**README_EXAMPLE, "data": {"ticket_id": "x"}}, schema)
