"""Intake on the real broker and PostgreSQL: a mixed stream, two instances, the HTTP API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from riskrelay.intake.app import create_app
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.clock import CLOCK
from riskrelay.shared.events import (
    TICKET_EVENT_TYPES,
    Indicator,
    TicketEventKind,
    TicketFlaggedEvent,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import header, produce, read_topic, running

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SAMPLES = Path(__file__).parent.parent / "unit" / "intake" / "samples"


def ticket_event(
    number: int,
    description: str,
    *,
    ticket: str | None = None,
    customer: str | None = None,
    product: str = "Web Shop",
    minutes: float | None = None,
    comment: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    ticket_id = ticket or f"T{number}"
    kind = TicketEventKind.COMMENTED if comment else TicketEventKind.CREATED
    return {
        "specversion": "1.0",
        "id": event_id or f"up-{number}",
        "source": "zendesk://acme",
        "type": TICKET_EVENT_TYPES[kind],
        "time": (T0 + timedelta(minutes=number if minutes is None else minutes)).isoformat(),
        "subject": ticket_id,
        "data": {
            "ticket_id": ticket_id,
            "subject": "Help needed",
            "description": description,
            "channel": "email",
            "customer": {"id": customer or f"C{number}", "segment": "smb"},
            "product": product,
            "priority": "normal",
            "comment": {"author_type": "customer", "body": comment} if comment else None,
        },
    }


CHECKOUT = [  # six customers, one problem: a surge of similar reports
    "The checkout page crashes when I press pay",
    "Payment page crashed again at checkout when paying",
    "app checkout crash on pay button",
    "The site crashes at checkout every time I click the pay button",
    "Pressing pay at checkout crashes the whole page",
    "checkout crashes as soon as I hit the pay button, please fix",
]
SURGE = {f"T{n}" for n in (3, 4, 5, 6, 7, 11)}


def mixed_stream() -> tuple[list[tuple[bytes | None, bytes]], dict[str, set[Indicator]], int]:
    """Records, the expected flags (ticket -> indicators its flags must carry; the learned
    models may add their own) and the expected dead letters."""
    events = [
        ticket_event(
            0,
            "I can see another customer's invoices and home address in my account page. "
            "My e-mail is jane.doe@example.com and my card 4111 1111 1111 1111.",
            product="Billing Portal",
        ),
        ticket_event(1, "How do I change my delivery address?"),
        ticket_event(2, "This is not a security issue, just asking how to export my data to CSV."),
        *[
            ticket_event(3 + n, text, product="Checkout", minutes=3 + n)
            for n, text in enumerate(CHECKOUT[:5])
        ],
        ticket_event(
            8,
            "We will report you to the data protection authority and our lawyer is preparing "
            "a lawsuit",
            product="Billing Portal",
        ),
        ticket_event(
            9,
            "Update",
            ticket="T1",
            customer="C1",
            minutes=20,
            comment="Also, someone logged into my account without my permission and changed "
            "my password.",
        ),
        ticket_event(
            10,
            "Update",
            ticket="T0",
            customer="C0",
            product="Billing Portal",
            minutes=21,
            comment="As I said, I can see another customer's invoices and home address.",
        ),
        ticket_event(11, CHECKOUT[5], product="Checkout", minutes=11),
    ]
    records: list[tuple[bytes | None, bytes]] = [
        (e["data"]["ticket_id"].encode(), json.dumps(e).encode()) for e in events
    ]
    records.append((b"T0", json.dumps(events[0]).encode()))  # the same upstream event again
    unknown_version = ticket_event(12, "hello")
    unknown_version["type"] = "riskrelay.ticket.created.v9"
    wrong_type = ticket_event(13, "hello")
    wrong_type["data"]["customer"] = "C13"
    missing = ticket_event(14, "hello")
    del missing["data"]["product"]
    oversized = ticket_event(15, "x" * 200_001)
    records += [
        (b"bad-json", b"{not json"),
        (b"T12", json.dumps(unknown_version).encode()),
        (b"T13", json.dumps(wrong_type).encode()),
        (b"T14", json.dumps(missing).encode()),
        (b"T15", json.dumps(oversized).encode()),
    ]
    expected = {
        "T0": {Indicator.DATA_CONCERN},
        "T1": {Indicator.SECURITY_ISSUE},
        "T8": {Indicator.COMPLIANCE_QUESTION},
        **{f"T{n}": {Indicator.MULTIPLE_SIMILAR_REPORTS} for n in (3, 4, 5, 6, 7, 11)},
    }
    return records, expected, 5


def settings_for(kafka: KafkaSettings, database: DatabaseSettings, **extra: Any) -> IntakeSettings:
    return IntakeSettings(kafka=kafka, database=database, **extra)


def assert_flags(flags: dict[str, set[Indicator]], expected: dict[str, set[Indicator]]) -> None:
    """Exactly the expected tickets are flagged, each with at least its expected indicators,
    and only the surge's tickets as multiple similar reports."""
    assert set(flags) == set(expected)
    for ticket, indicators in expected.items():
        assert indicators <= flags[ticket], ticket
    similar = {t for t, found in flags.items() if Indicator.MULTIPLE_SIMILAR_REPORTS in found}
    assert similar == SURGE


def assert_clusters(clusters: set[frozenset[str]]) -> None:
    """The surge is one cluster; any other holds a single report (problems of other kinds)."""
    assert frozenset(SURGE) in clusters
    others = clusters - {frozenset(SURGE)}
    assert all(len(members) == 1 for members in others), others


async def flagged_by_ticket(kafka: KafkaSettings, expected: int) -> dict[str, set[Indicator]]:
    records = await read_topic(
        kafka.bootstrap,
        f"{kafka.topic_prefix}ticket-flagged",
        expected=expected,
        timeout=60,
        settle=3,
    )
    flags: dict[str, set[Indicator]] = {}
    ids = [TicketFlaggedEvent.model_validate_json(r.value).id for r in records]
    assert len(ids) == len(set(ids)), "an event was published twice"
    for record in records:
        event = TicketFlaggedEvent.model_validate_json(record.value)
        assert record.key == event.data.ticket_id.encode()
        known = flags.setdefault(event.data.ticket_id, set())
        # A ticket is flagged again only for what it was not flagged with (a model detection
        # first, the surge of its cluster later), never for the same indicator twice.
        repeated = known & set(event.data.new_indicators)
        assert not repeated, f"{event.data.ticket_id} flagged twice for {repeated}"
        known.update(event.data.new_indicators)
    return flags


async def clusters_in(database: DatabaseSettings) -> set[frozenset[str]]:
    connection = await asyncpg.connect(database.url.get_secret_value())
    try:
        rows = await connection.fetch(
            "SELECT array_agg(m.ticket_id) AS members"
            f' FROM "{database.schema_name}".clusters c'
            f' JOIN "{database.schema_name}".cluster_members m USING (cluster_id)'
            " GROUP BY c.cluster_id"
        )
    finally:
        await connection.close()
    return {frozenset(row["members"]) for row in rows}


async def test_mixed_stream_yields_exactly_the_expected_flags_and_dead_letters(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    records, expected, dead = mixed_stream()
    app = create_app(settings_for(kafka_settings, database_settings))
    async with running(app):
        await produce(
            kafka_settings.bootstrap, f"{kafka_settings.topic_prefix}ticket-events", records
        )
        flags = await flagged_by_ticket(kafka_settings, expected=len(expected))
        dead_letters = await read_topic(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}ticket-events.dlq",
            expected=dead,
            timeout=10,
            settle=1,
        )
    assert_flags(flags, expected)
    reasons = sorted(header(r, "dlq_error") or "" for r in dead_letters)
    assert len(reasons) == dead
    assert any("json" in reason.lower() for reason in reasons)
    assert any("type" in reason and "v9" in reason for reason in reasons)
    assert any("data.customer" in reason for reason in reasons)
    assert any("data.product" in reason and "required" in reason.lower() for reason in reasons)
    assert any("data.description" in reason and "200000" in reason for reason in reasons)
    assert not any("xxxxxxxx" in reason for reason in reasons), "ticket text leaked into a reason"
    assert_clusters(await clusters_in(database_settings))


async def test_flagged_events_carry_no_personal_data_and_a_data_classification(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    records, _, _ = mixed_stream()
    app = create_app(settings_for(kafka_settings, database_settings))
    async with running(app):
        await produce(
            kafka_settings.bootstrap, f"{kafka_settings.topic_prefix}ticket-events", records[:1]
        )
        out = await read_topic(
            kafka_settings.bootstrap, f"{kafka_settings.topic_prefix}ticket-flagged", expected=1
        )
    raw = out[0].value
    assert b"jane.doe@example.com" not in raw
    assert b"4111" not in raw
    event = TicketFlaggedEvent.model_validate_json(raw)
    assert "[EMAIL]" in event.data.redacted_summary
    assert "[CARD]" in event.data.redacted_summary
    assert {str(kind) for kind in event.data.data_classification} >= {"email", "card"}
    detection = event.data.indicators[0]
    assert detection.rule_id
    assert detection.evidence
    assert 0 < detection.confidence <= 1


async def test_two_instances_make_the_same_clusters_and_flags(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    records, expected, _ = mixed_stream()
    settings = settings_for(kafka_settings, database_settings)
    first, second = create_app(settings), create_app(settings)
    async with running(first), running(second):
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}ticket-events",
            records + records,  # and everything again
        )
        flags = await flagged_by_ticket(kafka_settings, expected=len(expected))
    assert_flags(flags, expected)
    assert_clusters(await clusters_in(database_settings))


@pytest.fixture
def tokens(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text(
        json.dumps(
            {
                "upstream": [{"token": "zendesk-acme-token", "subject": "zendesk-acme"}],
                "analyst": "analyst-token",
            }
        )
    )
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_http_ingestion_accepts_checks_and_maps_webhooks(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tokens: Path
) -> None:
    settings = settings_for(
        kafka_settings,
        database_settings,
        auth=AuthSettings(tokens_file=tokens),
        max_request_bytes=300_000,
        webhook_default_product="Web Shop",
    )
    app = create_app(settings)
    upstream = bearer("zendesk-acme-token")
    one = ticket_event(0, "I can see another customer's invoices in my account.")
    batch = [ticket_event(n, "How do I reset my password?") for n in (1, 2)]
    async with (
        running(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake"
        ) as client,
    ):
        assert (await client.post("/v1/tickets", json=one)).status_code == 401
        wrong_role = await client.post("/v1/tickets", json=one, headers=bearer("analyst-token"))
        assert wrong_role.status_code == 403

        single = await client.post("/v1/tickets", json=one, headers=upstream)
        assert single.status_code == 202, single.text
        assert single.json() == {"accepted": ["up-0"]}
        many = await client.post("/v1/tickets", json=batch, headers=upstream)
        assert many.status_code == 202
        assert many.json() == {"accepted": ["up-1", "up-2"]}

        broken = ticket_event(3, "hello")
        del broken["data"]["customer"]
        invalid = await client.post("/v1/tickets", json=[batch[0], broken], headers=upstream)
        assert invalid.status_code == 422
        assert invalid.json()["errors"][0]["field"] == "body.1.data.customer"
        unknown_channel = ticket_event(4, "hello")
        unknown_channel["data"]["channel"] = "carrier pigeon"
        vocabulary = await client.post("/v1/tickets", json=unknown_channel, headers=upstream)
        assert vocabulary.status_code == 422
        assert vocabulary.json()["errors"][0]["field"] == "body.0.data.channel"
        not_json = await client.post(
            "/v1/tickets",
            content=b"{nope",
            headers={**upstream, "Content-Type": "application/json"},
        )
        assert not_json.status_code == 400
        assert "not valid JSON" in not_json.json()["detail"]
        too_big = await client.post(
            "/v1/tickets", json=ticket_event(5, "y" * 400_000), headers=upstream
        )
        assert too_big.status_code == 413
        assert "exceeds the limit" in too_big.json()["detail"]

        zendesk = json.loads((SAMPLES / "zendesk_event_ticket_created.json").read_text())
        mapped = await client.post("/v1/webhooks/zendesk/acme", json=zendesk, headers=upstream)
        assert mapped.status_code == 202, mapped.text
        zammad = json.loads((SAMPLES / "zammad_ticket_created.json").read_text())
        mapped_zammad = await client.post(
            "/v1/webhooks/zammad/helpdesk.example.com",
            json=zammad,
            headers={**upstream, "X-Zammad-Delivery": "delivery-1"},
        )
        assert mapped_zammad.status_code == 202, mapped_zammad.text
        not_a_ticket = await client.post(
            "/v1/webhooks/zammad/helpdesk.example.com", json={"hello": 1}, headers=upstream
        )
        assert not_a_ticket.status_code == 422
        assert not_a_ticket.json()["errors"][0]["field"] == "body.ticket"

        accepted = {
            "up-0",
            "up-1",
            "up-2",
            mapped.json()["accepted"][0],
            mapped_zammad.json()["accepted"][0],
        }
        topic_records = await read_topic(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}ticket-events",
            expected=len(accepted),
        )
        assert {json.loads(r.value)["id"] for r in topic_records} == accepted
        flagged = await read_topic(
            kafka_settings.bootstrap, f"{kafka_settings.topic_prefix}ticket-flagged", expected=1
        )
        assert {
            TicketFlaggedEvent.model_validate_json(r.value).data.ticket_id for r in flagged
        } >= {"T0"}
        # The events' own dates, not the default window before the wall clock.
        window = {
            "since": (T0 - timedelta(days=1)).isoformat(),
            "until": (T0 + timedelta(days=1)).isoformat(),
        }
        rates = await client.get("/v1/flag-rates", params=window, headers=bearer("analyst-token"))
        assert rates.status_code == 200
        assert sum(row["total"] for row in rates.json()) >= 1
        # Without a window: the 7 days before the service's clock, set beside the events.
        app.state.context.state[CLOCK] = lambda: T0 + timedelta(days=1)
        recent = await client.get("/v1/flag-rates", headers=bearer("analyst-token"))
        assert sum(row["total"] for row in recent.json()) >= 1
        app.state.context.state[CLOCK] = lambda: T0 + timedelta(days=30)
        later = await client.get("/v1/flag-rates", headers=bearer("analyst-token"))
        assert later.status_code == 200
        assert later.json() == []
