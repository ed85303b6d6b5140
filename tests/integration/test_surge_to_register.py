"""A surge from intake to the Risk Register on the real broker and PostgreSQL: every ticket of
the cluster, the earlier ones intake re-flags when it surges included, is listed by the register
entry and its risk-registered record, and the counts are those of the list."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from riskrelay.classifier.app import create_app as create_classifier
from riskrelay.classifier.settings import ClassifierSettings
from riskrelay.intake.app import create_app as create_intake
from riskrelay.intake.settings import IntakeSettings
from riskrelay.register import store
from riskrelay.register.app import create_app as create_register
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.events import (
    TICKET_EVENT_TYPES,
    RiskClassifiedEvent,
    RiskRegisteredEvent,
    RiskRegisterEntry,
    TicketEventKind,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, read_topic, running

pytestmark = pytest.mark.integration

Clock = Callable[[], datetime]

CHECKOUT_FAILURES = [
    "The checkout page crashes when I press pay",
    "The site crashes at checkout every time I click the pay button",
    "Payment page crashed again at checkout when paying",
    "app checkout crash on pay button",
    "checkout page crash when paying, tried three times",
    "checkout crashes as soon as I hit the pay button, please fix",
    "The checkout keeps crashing when I try to pay for my order",
    "Pay button at checkout crashes the page every time",
]
TICKET_IDS = [f"ZD-{42680 + n}" for n in range(len(CHECKOUT_FAILURES))]
ANALYST = {"Authorization": "Bearer analyst-token"}


def checkout_surge(clock: Clock) -> list[dict[str, Any]]:
    """Eight customers report the same checkout failure on one product, two minutes apart,
    ending at ``clock()``."""
    end = clock()
    first = end - timedelta(minutes=2 * (len(CHECKOUT_FAILURES) - 1))
    return [
        {
            "specversion": "1.0",
            "id": f"zendesk-{ticket_id}-created",
            "source": "zendesk://acme",
            "type": TICKET_EVENT_TYPES[TicketEventKind.CREATED],
            "time": (first + timedelta(minutes=2 * n)).isoformat(),
            "subject": ticket_id,
            "data": {
                "ticket_id": ticket_id,
                "subject": "Checkout problem",
                "description": text,
                "channel": "email",
                "customer": {"id": f"C-{n}", "segment": "smb"},
                "product": "Checkout",
                "priority": "normal",
            },
        }
        for n, (ticket_id, text) in enumerate(zip(TICKET_IDS, CHECKOUT_FAILURES, strict=True))
    ]


def in_schema(database: DatabaseSettings, service: str) -> DatabaseSettings:
    """The service's own schema: the services' tables share names (``risks``, ``outbox``)."""
    return database.model_copy(update={"schema_name": f"{database.schema_name}_{service}"})


@asynccontextmanager
async def pipeline(
    kafka: KafkaSettings, database: DatabaseSettings, tokens: Path, clock: Clock
) -> AsyncIterator[FastAPI]:
    """Intake, classifier and register running on one broker; yields the register."""
    register = create_register(
        RegisterSettings(
            kafka=kafka,
            database=in_schema(database, "register"),
            auth=AuthSettings(tokens_file=tokens),
        )
    )
    apps = [
        create_intake(IntakeSettings(kafka=kafka, database=in_schema(database, "intake"))),
        create_classifier(
            ClassifierSettings(kafka=kafka, database=in_schema(database, "classifier"))
        ),
        register,
    ]
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(running(app))
        register.state.context.state["clock"] = clock
        yield register


def assert_counts_match_the_list(entry: RiskRegisterEntry) -> None:
    assert entry.ticket_count == len(entry.ticket_ids), entry
    assert entry.distinct_customers <= entry.ticket_count, entry


async def test_an_eight_customer_surge_lists_all_eight_tickets_in_the_register(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)

    def clock() -> datetime:
        return now

    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"analyst": "analyst-token"}))
    events = checkout_surge(clock)
    async with pipeline(kafka_settings, database_settings, tokens, clock) as register:
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}ticket-events",
            [(e["subject"].encode(), json.dumps(e).encode()) for e in events],
        )
        db = register.state.context.db

        async def all_tickets_registered() -> bool:
            entries = await store.load_all_entries(db)
            return any(len(entry.ticket_ids) == len(TICKET_IDS) for entry in entries.values())

        await eventually(all_tickets_registered, timeout=90)
        entries = await store.load_all_entries(db)
        assert len(entries) == 1, "one cluster is one risk"
        (risk_id,) = entries

        transport = httpx.ASGITransport(app=register)
        async with httpx.AsyncClient(transport=transport, base_url="http://register") as client:
            response = await client.get(f"/v1/risks/{risk_id}", headers=ANALYST)
        assert response.status_code == 200, response.text
        detail = response.json()
        entry = RiskRegisterEntry.model_validate(detail["entry"])
        assert sorted(entry.ticket_ids) == sorted(TICKET_IDS)
        assert (entry.ticket_count, entry.distinct_customers) == (8, 8)
        assert entry.level >= 3
        assert sorted(link["ticket_id"] for link in detail["tickets"]) == sorted(TICKET_IDS)
        brief = detail["information_to_risk_management"]
        assert sorted(brief["ticket_ids"]) == sorted(TICKET_IDS)
        assert (brief["ticket_count"], brief["affected_customers"]) == (8, 8)

        registered = await read_topic(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-registered",
            expected=entry.version,
            settle=1,
        )
        versions = [RiskRegisteredEvent.model_validate_json(r.value).data for r in registered]
        assert sorted(v.version for v in versions) == list(range(1, entry.version + 1))
        for version in versions:
            assert_counts_match_the_list(version)
        latest = max(versions, key=lambda v: v.version)
        assert sorted(latest.ticket_ids) == sorted(TICKET_IDS)
        assert (latest.ticket_count, latest.distinct_customers) == (8, 8)

        classified = await read_topic(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            timeout=5,
            settle=0,
        )
        risk_events = [RiskClassifiedEvent.model_validate_json(r.value).data for r in classified]
        for event in risk_events:
            assert event.risk_id == risk_id
            assert event.ticket_count == len(event.ticket_ids)
            assert event.distinct_customers <= event.ticket_count
        named = {t for event in risk_events for t in [event.ticket_id, *event.ticket_ids]}
        assert named == set(TICKET_IDS)
