"""Personal data through intake, the classifier and the register on the real broker and
PostgreSQL: names, addresses, dates of birth, secrets, identity-document numbers and disguised
e-mail addresses that tickets carry (in their text, in ``customer.name`` and ``agent_name``, in
a Zendesk webhook) appear in no record any service produced, in no log line and in no
``/metrics`` output."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
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
    PersonalDataKind,
    RiskRegisteredEvent,
    TicketEventKind,
    TicketFlaggedEvent,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.shared.topics import ALL_TOPICS, TICKET_EVENTS, topic_name
from riskrelay.testing import eventually, produce, read_topic, running

pytestmark = pytest.mark.integration

Clock = Callable[[], datetime]

# Every value below must vanish; each is distinctive enough not to occur by chance in an id,
# a timestamp or a metric.
CUSTOMER = "Aleksandra Kowalski"
AGENT = "Oluwaseun Adeyemi"
WEBHOOK_REQUESTER = "Siobhán Gallagher"
SECRETS = {
    "name": ["Aleksandra", "Kowalski", "Oluwaseun", "Adeyemi", "Anna Yilmaz", "Yilmaz"],
    "webhook name": ["Siobhán", "Gallagher"],
    "address": ["221B Baker Street", "NW1 6XE", "Hauptstraße 5", "10115 Berlin"],
    "date of birth": ["04/07/1985", "1985-07-04"],
    "secret": ["Hunter2!!Zq", "58274913", "ghp_Zq81kLm29XcVb47NpRt05YwEa63UdSf82HjK"],
    "identity document": ["X12345678", "D1234-56789-01234", "MORGA657054SM9IJ"],
    "disguised e-mail": ["jane dot doe", "jane[at]example[dot]com", "gmail dot com"],
}
ALL_VALUES = [value for values in SECRETS.values() for value in values]
ANALYST = {"Authorization": "Bearer analyst-token"}
UPSTREAM = {"Authorization": "Bearer upstream-token"}


def ticket(number: int, when: datetime, subject: str, description: str) -> dict[str, Any]:
    ticket_id = f"PII-{number}"
    return {
        "specversion": "1.0",
        "id": f"pii-evt-{number}",
        "source": "zendesk://acme",
        "type": TICKET_EVENT_TYPES[TicketEventKind.CREATED],
        "time": when.isoformat(),
        "subject": ticket_id,
        "data": {
            "ticket_id": ticket_id,
            "subject": subject,
            "description": description,
            "channel": "email",
            "customer": {"id": f"C-PII-{number}", "segment": "consumer", "name": CUSTOMER},
            "product": "Online Banking",
            "priority": "high",
            "agent_id": "agent-7",
            "agent_name": AGENT,
            "risk_flag": {
                "level": 4,
                "category": "data_security_privacy",
                "description": f"{AGENT} escalated: Kowalski reports an account takeover",
                "affected_customers": 1,
            },
        },
    }


def tickets(clock: Clock) -> list[dict[str, Any]]:
    now = clock()
    return [
        ticket(
            1,
            now - timedelta(minutes=3),
            "Kowalski: someone logged into my account",
            "Name: Aleksandra Kowalski\nE-mail: jane dot doe at gmail dot com\n\n"
            "Someone logged into my account without permission and changed my password. "
            "My old password was Hunter2!!Zq and my PIN 58274913 no longer works. "
            "I live at 221B Baker Street, London NW1 6XE. DOB 04/07/1985.\n\n"
            "Kind regards,\nAleksandra Kowalski",
        ),
        ticket(
            2,
            now - timedelta(minutes=2),
            "Another customer's data in my account",
            "Hi, I'm Anna Yilmaz. In my account I can see another customer's passport number "
            "X12345678, their driver licence D1234-56789-01234 and date of birth: 1985-07-04. "
            "Write to jane[at]example[dot]com. Your API token "
            "ghp_Zq81kLm29XcVb47NpRt05YwEa63UdSf82HjK was also shown.\n\nThanks,\nAnna Yilmaz",
        ),
    ]


def zendesk_trigger(clock: Clock) -> dict[str, Any]:
    when = (clock() - timedelta(minutes=1)).isoformat()
    return {
        "ticket": {
            "id": "PII-3",
            "subject": "Data breach: Gallagher's records exposed",
            "description": (
                "Siobhán here. My records are visible to strangers: licence MORGA657054SM9IJ and "
                "my address Hauptstraße 5, 10115 Berlin. Someone accessed my account without "
                "permission.\n\nBest,\nSiobhán Gallagher"
            ),
            "status": "open",
            "priority": "urgent",
            "via": "Web Form",
            "tags": "product:Online_Banking segment:consumer risk_level_4",
            "requester": {"id": "5501", "name": WEBHOOK_REQUESTER},
            "assignee": {"id": "77", "name": AGENT},
            "created_at": when,
            "updated_at": when,
        }
    }


def in_schema(database: DatabaseSettings, service: str) -> DatabaseSettings:
    """The service's own schema: the services' tables share names (``risks``, ``outbox``)."""
    return database.model_copy(update={"schema_name": f"{database.schema_name}_{service}"})


@asynccontextmanager
async def pipeline(
    kafka: KafkaSettings, database: DatabaseSettings, tokens: Path, clock: Clock
) -> AsyncIterator[list[FastAPI]]:
    """Intake, classifier and register on one broker, logging at DEBUG (the most they say)."""
    auth = AuthSettings(tokens_file=tokens)
    intake = create_intake(
        IntakeSettings(
            kafka=kafka, database=in_schema(database, "intake"), auth=auth, log_level="DEBUG"
        )
    )
    classifier = create_classifier(
        ClassifierSettings(
            kafka=kafka, database=in_schema(database, "classifier"), log_level="DEBUG"
        )
    )
    register = create_register(
        RegisterSettings(
            kafka=kafka, database=in_schema(database, "register"), auth=auth, log_level="DEBUG"
        )
    )
    async with AsyncExitStack() as stack:
        for app in (intake, classifier, register):
            await stack.enter_async_context(running(app))
        register.state.context.state["clock"] = clock
        yield [intake, classifier, register]


def as_text(record: ConsumerRecord[bytes, bytes]) -> str:
    """Key, value and headers of a record, as text."""
    parts = [record.key or b"", record.value or b""]
    for header, value in record.headers or ():
        parts += [header.encode(), value]
    return "\n".join(part.decode("utf-8", "replace") for part in parts)


def leaks(blob: str) -> list[str]:
    return [value for value in ALL_VALUES if value.casefold() in blob.casefold()]


async def test_no_personal_data_reaches_any_topic_log_or_metric(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    now = datetime.now(UTC)

    def clock() -> datetime:
        return now

    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"analyst": "analyst-token", "upstream": "upstream-token"}))
    prefix = kafka_settings.topic_prefix
    metrics: list[str] = []
    async with pipeline(kafka_settings, database_settings, tokens, clock) as apps:
        intake, _, register = apps
        await produce(
            kafka_settings.bootstrap,
            f"{prefix}ticket-events",
            [(e["subject"].encode(), json.dumps(e).encode()) for e in tickets(clock)],
        )
        transport = httpx.ASGITransport(app=intake)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            mapped = await client.post(
                "/v1/webhooks/zendesk/acme", json=zendesk_trigger(clock), headers=UPSTREAM
            )
        assert mapped.status_code == 202, mapped.text

        db = register.state.context.db

        async def every_ticket_registered() -> bool:
            entries = await store.load_all_entries(db)
            listed = {t for entry in entries.values() for t in entry.ticket_ids}
            return listed >= {"PII-1", "PII-2", "PII-3"}

        await eventually(every_ticket_registered, timeout=90)
        for app in apps:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                response = await client.get("/metrics")
            assert response.status_code == 200
            metrics.append(response.text)

        produced: dict[str, list[ConsumerRecord[bytes, bytes]]] = {}
        for spec in ALL_TOPICS:
            if spec is TICKET_EVENTS:
                continue  # the raw upstream input, kept for recovery only (docs/operations.md)
            name = topic_name(spec, prefix)
            produced[name] = await read_topic(kafka_settings.bootstrap, name, timeout=3, settle=0)
    logs = capfd.readouterr()

    flagged = [
        TicketFlaggedEvent.model_validate_json(r.value) for r in produced[f"{prefix}ticket-flagged"]
    ]
    assert {event.data.ticket_id for event in flagged} >= {"PII-1", "PII-2", "PII-3"}
    seen = {kind for event in flagged for kind in event.data.data_classification}
    assert seen >= {
        PersonalDataKind.NAME,
        PersonalDataKind.POSTAL_ADDRESS,
        PersonalDataKind.DATE_OF_BIRTH,
        PersonalDataKind.SECRET,
        PersonalDataKind.NATIONAL_ID,
        PersonalDataKind.EMAIL,
    }
    assert any("[NAME]" in event.data.redacted_summary for event in flagged)
    registered = [
        RiskRegisteredEvent.model_validate_json(r.value)
        for r in produced[f"{prefix}risk-registered"]
    ]
    assert {t for event in registered for t in event.data.ticket_ids} >= {"PII-1", "PII-2", "PII-3"}
    assert produced[f"{prefix}risk-classified"]

    for name, records in produced.items():
        for record in records:
            text = as_text(record)
            assert not leaks(text), f"{name}: {leaks(text)}"
    assert logs.out or logs.err, "the services logged nothing to inspect"
    assert not leaks(logs.out), leaks(logs.out)
    assert not leaks(logs.err), leaks(logs.err)
    for text in metrics:
        assert "riskrelay_" in text
        assert not leaks(text), leaks(text)
