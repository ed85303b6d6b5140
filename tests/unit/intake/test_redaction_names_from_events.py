"""The names a helpdesk sends: mapped from Zendesk and Zammad payloads into ``customer.name``
and ``agent_name``, redacted from the ticket's text and never copied into what intake emits."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from riskrelay.intake.clustering import ClusterIndex
from riskrelay.intake.domain import assess_ticket, decide_ticket
from riskrelay.intake.patterns import RateBaselines
from riskrelay.intake.rules import RulePack
from riskrelay.intake.webhooks import MappingOptions, map_zammad, map_zendesk
from riskrelay.shared.events import PersonalDataKind, TicketEvent

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).parent / "samples"
OPTIONS = MappingOptions(default_product="Payments")


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return loaded


def test_zendesk_trigger_maps_requester_and_assignee_names() -> None:
    payload = sample("zendesk_trigger_ticket.json")
    payload["ticket"]["assignee"]["name"] = "Priya Natarajan"
    event = map_zendesk(payload, subdomain="acme", options=OPTIONS)
    assert event.data.customer.name == "Sam Example"
    assert event.data.agent_name == "Priya Natarajan"


def test_zendesk_comment_author_is_the_customer_or_the_agent() -> None:
    payload = sample("zendesk_event_comment_added.json")
    customer = map_zendesk(payload, subdomain="acme", options=OPTIONS)
    assert (customer.data.customer.name, customer.data.agent_name) == ("Jane Doe", None)
    staff = copy.deepcopy(payload)
    staff["event"]["comment"]["author"] = {"id": "9", "is_staff": True, "name": "Kenji Tanaka"}
    agent = map_zendesk(staff, subdomain="acme", options=OPTIONS)
    assert (agent.data.customer.name, agent.data.agent_name) == (None, "Kenji Tanaka")


def test_zendesk_event_without_names_maps_none() -> None:
    event = map_zendesk(sample("zendesk_event_ticket_created.json"), subdomain="a", options=OPTIONS)
    assert (event.data.customer.name, event.data.agent_name) == (None, None)


def test_zammad_maps_customer_and_owner_names() -> None:
    payload = sample("zammad_ticket_created.json")
    payload["ticket"]["owner"] = {"id": 5, "firstname": "Emma", "lastname": "Lindqvist"}
    event = map_zammad(payload, host="helpdesk.example.com", options=OPTIONS)
    assert event.data.customer.name == "Emily Adams"
    assert event.data.agent_name == "Emma Lindqvist"


def test_zammad_article_from_header_names_its_sender_but_an_address_never_does() -> None:
    payload = sample("zammad_ticket_created.json")
    del payload["ticket"]["customer"]
    event = map_zammad(payload, host="h", options=OPTIONS)
    assert event.data.customer.name == "Emily Adams"  # from "Emily Adams <emily@example.com>"
    payload["article"]["from"] = "emily@example.com"
    assert map_zammad(payload, host="h", options=OPTIONS).data.customer.name is None
    payload["ticket"]["owner"] = {"id": 5, "login": "emma@chrispresso.com"}
    assert map_zammad(payload, host="h", options=OPTIONS).data.agent_name is None


def test_a_long_name_is_cut_to_the_contract_limit() -> None:
    payload = sample("zendesk_trigger_ticket.json")
    payload["ticket"]["requester"]["name"] = "A" * 300
    name = map_zendesk(payload, subdomain="acme", options=OPTIONS).data.customer.name
    assert name is not None
    assert len(name) == 256


def names_event(rule_pack_description: str) -> TicketEvent:
    return TicketEvent.model_validate(
        {
            "specversion": "1.0",
            "id": "evt-names-1",
            "source": "test://helpdesk",
            "type": "riskrelay.ticket.created.v1",
            "time": "2026-11-20T09:00:00+00:00",
            "subject": "T-9",
            "data": {
                "ticket_id": "T-9",
                "subject": "Kowalski account hacked",
                "description": rule_pack_description,
                "channel": "email",
                "customer": {"id": "C-9", "segment": "consumer", "name": "Aleksandra Kowalski"},
                "product": "Payments",
                "priority": "high",
                "agent_id": "agent-3",
                "agent_name": "Oluwaseun Adeyemi",
                "risk_flag": {"level": 4, "description": "Adeyemi: Kowalski reports a takeover"},
            },
        }
    )


def test_the_events_names_are_redacted_everywhere_and_never_copied(rule_pack: RulePack) -> None:
    event = names_event(
        "Someone logged into my account without permission and changed my password. "
        "Please call aleksandra, not Ola. Oluwaseun said he would help.\n\nBest,\nAleksandra"
    )
    assessment = assess_ticket(event, rule_pack)
    stored = assessment.model_dump_json()
    decision = decide_ticket(
        event, rule_pack, clusters=ClusterIndex(), rates=RateBaselines(), assessment=assessment
    )
    assert decision.flagged is not None
    published = decision.flagged.model_dump_json()
    for wire in (stored, published):
        for name in ("Aleksandra", "aleksandra", "Kowalski", "Oluwaseun", "Adeyemi"):
            assert name not in wire
    assert PersonalDataKind.NAME in decision.flagged.data_classification
    assert "[NAME]" in decision.flagged.redacted_subject
    assert decision.flagged.risk_flag is not None
    assert decision.flagged.risk_flag.description == "[NAME]: [NAME] reports a takeover"
