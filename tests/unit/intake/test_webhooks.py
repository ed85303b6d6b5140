"""Zendesk and Zammad webhook payloads mapped onto the upstream TicketEvent contract."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from riskrelay.intake.errors import FieldTooLargeError, WebhookMappingError
from riskrelay.intake.normalization import SizeLimits
from riskrelay.intake.webhooks import MappingOptions, map_zammad, map_zendesk
from riskrelay.shared.events import RiskCategory, RiskLevel, TicketEvent, TicketEventKind

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).parent / "samples"
BRANDS = MappingOptions(product_by_brand={"8447346621310": "Payments"})


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return loaded


# --- Zendesk event webhooks ----------------------------------------------------------------


def test_zendesk_ticket_created_event() -> None:
    event = map_zendesk(
        sample("zendesk_event_ticket_created.json"), subdomain="acme", options=BRANDS
    )
    assert event.id == "cbe4028c-7239-495d-b020-f22348516046"
    assert event.source == "zendesk://acme"
    assert event.type == "riskrelay.ticket.created.v1"
    assert event.kind is TicketEventKind.CREATED
    assert event.time == datetime(2025, 3, 3, 9, 14, 52, tzinfo=UTC)
    assert event.subject == event.correlationid == "5158"
    data = event.data
    assert data.ticket_id == "5158"
    assert data.subject == "Account used by someone else"
    assert "unauthorized purchases" in data.description
    assert data.channel == "web"
    assert data.priority == "high"
    assert data.product == "Payments"
    assert data.customer.id == "8447388090494"
    assert data.customer.segment == "consumer"
    assert data.agent_id == "8447388090494"
    assert data.comment is None
    # The mapped event is a valid wire message of the contract.
    assert TicketEvent.model_validate_json(event.to_json_bytes()) == event


def test_zendesk_comment_added_event() -> None:
    event = map_zendesk(sample("zendesk_event_comment_added.json"), subdomain="acme")
    assert event.kind is TicketEventKind.COMMENTED
    assert event.data.comment is not None
    assert event.data.comment.author_type == "customer"
    assert "report you to the ICO" in event.data.comment.body
    assert event.data.product == "Payments"  # from the product: tag
    assert event.data.priority == "urgent"
    assert event.data.risk_flag is not None
    assert event.data.risk_flag.level is RiskLevel.HIGH
    assert event.data.risk_flag.category is RiskCategory.DATA_SECURITY_PRIVACY


def test_zendesk_staff_comment_is_an_agent_comment() -> None:
    payload = sample("zendesk_event_comment_added.json")
    payload["event"]["comment"]["author"]["is_staff"] = True
    event = map_zendesk(payload, subdomain="acme")
    assert event.data.comment is not None
    assert event.data.comment.author_type == "agent"


def test_zendesk_status_change_to_solved_is_a_close() -> None:
    payload = sample("zendesk_event_comment_added.json")
    payload["type"] = "zen:event-type:ticket.status_changed"
    payload["detail"]["status"] = "SOLVED"
    payload["event"] = {"current": "SOLVED", "previous": "OPEN"}
    assert map_zendesk(payload, subdomain="acme").kind is TicketEventKind.CLOSED


def test_zendesk_other_ticket_events_are_updates() -> None:
    payload = sample("zendesk_event_comment_added.json")
    payload["type"] = "zen:event-type:ticket.priority_changed"
    payload["event"] = {"current": "URGENT", "previous": "HIGH"}
    assert map_zendesk(payload, subdomain="acme").kind is TicketEventKind.UPDATED


def test_zendesk_non_ticket_event_is_rejected() -> None:
    payload = sample("zendesk_event_ticket_created.json")
    payload["type"] = "zen:event-type:user.active_changed"
    with pytest.raises(WebhookMappingError, match="not a ticket event") as caught:
        map_zendesk(payload, subdomain="acme", options=BRANDS)
    assert caught.value.field == "type"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("detail", "id"), "detail.id"),
        (("detail", "requester_id"), "detail.requester_id"),
        (("detail", "via"), "detail.via.channel"),
        (("id",), "id"),
    ],
)
def test_zendesk_missing_fields_are_named(path: tuple[str, ...], field: str) -> None:
    payload = sample("zendesk_event_ticket_created.json")
    target = payload
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(WebhookMappingError) as caught:
        map_zendesk(payload, subdomain="acme", options=BRANDS)
    assert caught.value.field == field
    assert "missing" in str(caught.value)


def test_zendesk_without_product_source_names_the_product() -> None:
    with pytest.raises(WebhookMappingError, match="no default product") as caught:
        map_zendesk(sample("zendesk_event_ticket_created.json"), subdomain="acme")
    assert caught.value.field == "product"


def test_zendesk_default_product_is_used_last() -> None:
    event = map_zendesk(
        sample("zendesk_event_ticket_created.json"),
        subdomain="acme",
        options=MappingOptions(default_product="Everything"),
    )
    assert event.data.product == "Everything"


def test_zendesk_unknown_channel_is_named() -> None:
    payload = sample("zendesk_event_ticket_created.json")
    payload["detail"]["via"]["channel"] = "carrier_pigeon"
    with pytest.raises(WebhookMappingError, match="carrier_pigeon") as caught:
        map_zendesk(payload, subdomain="acme", options=BRANDS)
    assert caught.value.field == "detail.via.channel"


def test_zendesk_naive_timestamp_is_rejected() -> None:
    payload = sample("zendesk_event_ticket_created.json")
    payload["time"] = "2025-03-03T09:14:52"
    with pytest.raises(WebhookMappingError, match="no time zone"):
        map_zendesk(payload, subdomain="acme", options=BRANDS)


def test_zendesk_oversized_description_is_rejected_not_truncated() -> None:
    payload = sample("zendesk_event_ticket_created.json")
    payload["detail"]["description"] = "x" * 101
    options = MappingOptions(
        product_by_brand=BRANDS.product_by_brand, size_limits=SizeLimits(description=100)
    )
    with pytest.raises(FieldTooLargeError) as caught:
        map_zendesk(payload, subdomain="acme", options=options)
    assert caught.value.field == "description"
    assert caught.value.limit == 100


def test_zendesk_contract_violation_is_named() -> None:
    payload = sample("zendesk_event_ticket_created.json")
    payload["detail"]["tags"] = [f"t{i}" for i in range(101)]
    with pytest.raises(WebhookMappingError) as caught:
        map_zendesk(payload, subdomain="acme", options=BRANDS)
    assert caught.value.field == "tags"


# --- Zendesk trigger JSON ------------------------------------------------------------------


def test_zendesk_trigger_json() -> None:
    event = map_zendesk(sample("zendesk_trigger_ticket.json"), subdomain="acme")
    assert event.kind is TicketEventKind.CREATED
    assert event.source == "zendesk://acme"
    assert event.id == "zendesk:acme:4021:2025-03-03T09:20:00+00:00:created"
    data = event.data
    assert data.channel == "web"  # "Web Form"
    assert data.priority == "normal"
    assert data.tags == ["product:Mobile_App", "segment:smb", "vip"]
    assert data.product == "Mobile_App"
    assert data.customer.segment == "smb"
    assert data.customer.id == "39151"
    assert data.agent_id == "77"


def test_zendesk_trigger_id_is_stable_across_retries() -> None:
    first = map_zendesk(sample("zendesk_trigger_ticket.json"), subdomain="acme")
    second = map_zendesk(sample("zendesk_trigger_ticket.json"), subdomain="acme")
    assert first.id == second.id


def test_zendesk_trigger_with_comment_is_a_comment_event() -> None:
    payload = sample("zendesk_trigger_ticket.json")
    payload["ticket"]["updated_at"] = "2025-03-03T10:00:00+00:00"
    payload["ticket"]["comment"] = {"body": "Still broken", "author": {"role": "end-user"}}
    event = map_zendesk(payload, subdomain="acme")
    assert event.kind is TicketEventKind.COMMENTED
    assert event.data.comment is not None
    assert event.data.comment.body == "Still broken"


def test_zendesk_trigger_requester_email_only_is_pseudonymized() -> None:
    payload = sample("zendesk_trigger_ticket.json")
    del payload["ticket"]["requester"]["id"]
    event = map_zendesk(payload, subdomain="acme")
    assert event.data.customer.id.startswith("email-sha256:")
    assert "sam@example.org" not in event.to_json_bytes().decode()


def test_zendesk_trigger_missing_updated_at_is_named() -> None:
    payload = sample("zendesk_trigger_ticket.json")
    del payload["ticket"]["updated_at"]
    with pytest.raises(WebhookMappingError) as caught:
        map_zendesk(payload, subdomain="acme")
    assert caught.value.field == "ticket.updated_at"


def test_unrecognized_payload_is_rejected() -> None:
    with pytest.raises(WebhookMappingError) as caught:
        map_zendesk({"hello": "world"}, subdomain="acme")
    assert caught.value.field == "ticket"


# --- Zammad ---------------------------------------------------------------------------------


def test_zammad_ticket_created() -> None:
    event = map_zammad(
        sample("zammad_ticket_created.json"),
        host="support.example.com",
        delivery_id="a8c1-delivery",
    )
    assert event.id == "a8c1-delivery"
    assert event.source == "zammad://support.example.com"
    assert event.kind is TicketEventKind.CREATED
    assert event.time == datetime(2025, 3, 3, 8, 34, 35, 333000, tzinfo=UTC)
    data = event.data
    assert data.ticket_id == "10081"
    assert data.subject == "Possible data leak"
    assert "customer records were exposed" in data.description
    assert data.channel == "phone"
    assert data.priority == "high"
    assert data.product == "Online Banking"
    assert data.customer.id == "8"
    assert data.customer.segment == "enterprise"
    assert data.agent_id == "5"
    assert data.comment is None


def test_zammad_follow_up_article_is_a_comment() -> None:
    event = map_zammad(sample("zammad_article_added.json"), host="support.example.com")
    assert event.kind is TicketEventKind.COMMENTED
    assert event.id == "zammad:support.example.com:93:311:2025-03-03T11:45:10.000Z"
    assert event.data.description == ""
    assert event.data.comment is not None
    assert event.data.comment.author_type == "customer"
    assert "going to the press" in event.data.comment.body
    assert event.data.channel == "email"
    assert event.data.priority == "normal"
    assert event.data.agent_id is None  # Zammad user 1 is "nobody"
    assert event.data.customer.segment == "unknown"


def test_zammad_article_nested_in_ticket_is_accepted() -> None:
    payload = sample("zammad_ticket_created.json")
    payload["ticket"]["article"] = payload.pop("article")
    event = map_zammad(payload, host="h")
    assert "customer records were exposed" in event.data.description


def test_zammad_closed_state_is_a_close() -> None:
    payload = sample("zammad_article_added.json")
    payload["ticket"]["state"] = "closed"
    assert map_zammad(payload, host="h").kind is TicketEventKind.CLOSED


def test_zammad_without_article_is_an_update() -> None:
    payload = sample("zammad_article_added.json")
    del payload["article"]
    event = map_zammad(payload, host="h")
    assert event.kind is TicketEventKind.UPDATED
    assert event.data.channel == "email"


@pytest.mark.parametrize(
    ("remove", "field"),
    [
        (("ticket", "id"), "ticket.id"),
        (("ticket", "updated_at"), "ticket.updated_at"),
        (("ticket",), "ticket"),
    ],
)
def test_zammad_missing_fields_are_named(remove: tuple[str, ...], field: str) -> None:
    payload = sample("zammad_ticket_created.json")
    target = payload
    for key in remove[:-1]:
        target = target[key]
    del target[remove[-1]]
    with pytest.raises(WebhookMappingError) as caught:
        map_zammad(payload, host="h")
    assert caught.value.field == field


def test_zammad_customer_without_id_is_pseudonymized_or_named() -> None:
    payload = sample("zammad_ticket_created.json")
    del payload["ticket"]["customer_id"]
    del payload["ticket"]["customer"]["id"]
    assert map_zammad(payload, host="h").data.customer.id.startswith("email-sha256:")
    no_email = copy.deepcopy(payload)
    del no_email["ticket"]["customer"]["email"]
    with pytest.raises(WebhookMappingError) as caught:
        map_zammad(no_email, host="h")
    assert caught.value.field == "ticket.customer_id"


def test_zammad_unknown_priority_is_named() -> None:
    payload = sample("zammad_ticket_created.json")
    payload["ticket"]["priority"] = {"name": "4 apocalyptic"}
    with pytest.raises(WebhookMappingError, match="apocalyptic") as caught:
        map_zammad(payload, host="h")
    assert caught.value.field == "ticket.priority.name"


def test_zammad_group_as_product_can_be_switched_off() -> None:
    with pytest.raises(WebhookMappingError) as caught:
        map_zammad(
            sample("zammad_ticket_created.json"),
            host="h",
            options=MappingOptions(product_from_group=False),
        )
    assert caught.value.field == "product"


@pytest.mark.parametrize(
    ("rendered", "canonical"),
    [
        ("Web Form", "web"),
        ("Mail", "email"),
        ("Phone call (incoming)", "phone"),
        ("Web service (API)", "api"),
        ("native_messaging", "chat"),
        ("Twitter DM", "social"),
    ],
)
def test_zendesk_channel_names(rendered: str, canonical: str) -> None:
    payload = sample("zendesk_trigger_ticket.json")
    payload["ticket"]["via"] = rendered
    assert map_zendesk(payload, subdomain="acme").data.channel == canonical
