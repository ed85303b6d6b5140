"""Foundation on the real broker and PostgreSQL: topics, migrations, dead letters, redelivery,
and every service starting with healthy /healthz and /readyz."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from riskrelay.classifier.app import create_app as create_classifier
from riskrelay.classifier.settings import ClassifierSettings
from riskrelay.escalator.app import create_app as create_escalator
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.intake.app import create_app as create_intake
from riskrelay.intake.settings import IntakeSettings
from riskrelay.register.app import create_app as create_register
from riskrelay.register.settings import RegisterSettings
from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.settings import ReportingSettings
from riskrelay.shared.events import TicketEvent
from riskrelay.shared.kafka import (
    BatchConsumer,
    ConsumerMetrics,
    EventProducer,
    OutgoingEvent,
    Received,
    TopicRoute,
    create_broker,
)
from riskrelay.shared.migrations import Migration, MigrationError, apply_migrations
from riskrelay.shared.outbox import Outbox
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.shared.store import LockSpace, claim_new, claim_new_event_ids
from riskrelay.shared.topics import ALL_TOPICS, TopicSpec, ensure_topics
from riskrelay.testing import create_topics, header, produce, read_topic, running

pytestmark = pytest.mark.integration

VALID_EVENT = {
    "specversion": "1.0",
    "id": "evt-valid-1",
    "source": "zendesk://acme",
    "type": "riskrelay.ticket.created.v1",
    "time": "2026-11-20T09:14:03+01:00",
    "data": {
        "ticket_id": "T-1",
        "subject": "Hello",
        "description": "How do I export my invoices?",
        "channel": "email",
        "customer": {"id": "C-1", "segment": "smb"},
        "product": "Billing",
        "priority": "normal",
        "tags": [],
    },
}


async def test_ensure_topics_creates_every_topic_once(kafka_settings: KafkaSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap)
    await admin.start()
    try:
        created = await ensure_topics(admin, ALL_TOPICS, kafka_settings.topic_prefix)
        # Every topic of the registry, dead-letter topics included.
        assert len(created) == len(ALL_TOPICS) == 14
        assert f"{kafka_settings.topic_prefix}ticket-events.dlq" in created
        assert await ensure_topics(admin, ALL_TOPICS, kafka_settings.topic_prefix) == []
        listed = set(await admin.list_topics())
        assert set(created) <= listed
        described = await admin.describe_topics([f"{kafka_settings.topic_prefix}risk-classified"])
        assert len(described[0]["partitions"]) == 6
    finally:
        await admin.close()


async def test_migrations_apply_once_and_refuse_edits(database_settings: DatabaseSettings) -> None:
    dsn = database_settings.url.get_secret_value()
    schema = database_settings.schema_name
    first = [
        Migration(1, "0001_a.sql", "CREATE TABLE a (id int PRIMARY KEY);"),
        Migration(2, "0002_b.sql", "ALTER TABLE a ADD COLUMN b text;"),
    ]
    connections = [await asyncpg.connect(dsn) for _ in range(3)]
    try:
        # Three instances starting at once: the advisory lock serializes them.
        results = await asyncio.gather(*(apply_migrations(c, schema, first) for c in connections))
        assert sorted(len(r) for r in results) == [0, 0, 2]
        columns = await connections[0].fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = 'a' ORDER BY ordinal_position",
            schema,
        )
        assert [r["column_name"] for r in columns] == ["id", "b"]
        edited = [first[0], Migration(2, "0002_b.sql", "ALTER TABLE a ADD COLUMN c text;")]
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(connections[0], schema, edited)
    finally:
        for connection in connections:
            await connection.close()


async def test_intake_dead_letters_malformed_input_and_keeps_valid(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    settings = IntakeSettings(kafka=kafka_settings, database=database_settings)
    topic = f"{kafka_settings.topic_prefix}ticket-events"
    app = create_intake(settings)
    async with running(app):
        unknown_version = {**VALID_EVENT, "id": "evt-v9", "type": "riskrelay.ticket.created.v9"}
        missing_field = {**VALID_EVENT, "id": "evt-missing", "data": {"ticket_id": "T-2"}}
        await produce(
            kafka_settings.bootstrap,
            topic,
            [
                (b"T-0", b"{not json"),
                (b"T-9", json.dumps(unknown_version).encode()),
                (b"T-2", json.dumps(missing_field).encode()),
                (b"T-1", json.dumps(VALID_EVENT).encode()),
                (b"T-1", json.dumps(VALID_EVENT).encode()),  # redelivered duplicate
            ],
            headers=[("trace", b"abc")],
        )
        dead = await read_topic(kafka_settings.bootstrap, topic + ".dlq", expected=3, timeout=30)
        assert len(dead) == 3
        by_key = {r.key: r for r in dead}
        assert by_key[b"T-0"].value == b"{not json"
        assert "invalid event" in (header(by_key[b"T-0"], "dlq_error") or "")
        assert "riskrelay.ticket.created.v9" in (header(by_key[b"T-9"], "dlq_error") or "")
        assert "data.subject" in (header(by_key[b"T-2"], "dlq_error") or "")
        for record in dead:
            assert header(record, "dlq_source_topic") == topic
            assert header(record, "trace") == "abc"  # original headers are kept
        pool = app.state.context.db
        ids = await _wait_for_rows(pool, "SELECT event_id FROM processed_events", 1)
        assert ids == ["evt-valid-1"]


async def _wait_for_rows(
    pool: asyncpg.Pool, query: str, count: int, timeout: float = 20
) -> list[Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rows = [r[0] for r in await pool.fetch(query)]
        if len(rows) >= count or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.1)


async def test_failed_batch_is_redelivered_then_poison_record_isolated(
    kafka_settings: KafkaSettings,
) -> None:
    """At least once: an exception rewinds the batch; a record that keeps failing is
    dead-lettered with its attempt count while its neighbours are processed."""
    work = TopicSpec("work", key="k", partitions=1)
    await create_topics(kafka_settings.bootstrap, [work, work.dlq], kafka_settings.topic_prefix)
    topic = f"{kafka_settings.topic_prefix}work"
    seen: list[str] = []
    calls = {"n": 0}

    async def process(batch: list[Received[str]]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionResetError("database went away")  # transient: retried
        if any(item.event == "poison" for item in batch):
            raise ValueError("cannot apply poison")
        seen.extend(item.event for item in batch)
        return []

    producer = EventProducer(kafka_settings, "test")
    await producer.start()
    broker = create_broker(kafka_settings, "test")
    consumer = BatchConsumer(
        routes=[TopicRoute(topic, lambda raw: raw.decode(), process)],
        producer=producer,
        metrics=ConsumerMetrics(CollectorRegistry()),
        consumer_group="test-group",
        max_attempts=2,
        backoff_seconds=lambda attempt: 0.05,
    )
    consumer.subscribe(broker, kafka_settings.model_copy(update={"batch_max_records": 10}))
    await produce(kafka_settings.bootstrap, topic, [(b"k", b"a"), (b"k", b"poison"), (b"k", b"b")])
    await broker.start()
    try:
        dead = await read_topic(kafka_settings.bootstrap, topic + ".dlq", expected=1, timeout=40)
        for _ in range(100):
            if "b" in seen:
                break
            await asyncio.sleep(0.1)
    finally:
        await broker.stop()
        await producer.stop()
    assert [r.value for r in dead] == [b"poison"]
    assert header(dead[0], "dlq_error") == "ValueError: cannot apply poison"
    assert int(header(dead[0], "dlq_attempts") or 0) >= 3
    assert sorted(seen) == ["a", "b"]


SERVICES: list[tuple[str, Callable[[Any], FastAPI], type[Any]]] = [
    ("intake", create_intake, IntakeSettings),
    ("classifier", create_classifier, ClassifierSettings),
    ("escalator", create_escalator, EscalatorSettings),
    ("register", create_register, RegisterSettings),
    ("reporting", create_reporting, ReportingSettings),
]


@pytest.mark.parametrize(
    ("name", "factory", "settings_class"), SERVICES, ids=[s[0] for s in SERVICES]
)
async def test_service_starts_and_reports_health(
    name: str,
    factory: Callable[[Any], FastAPI],
    settings_class: type[Any],
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
) -> None:
    settings = settings_class(kafka=kafka_settings, database=database_settings)
    app = factory(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            health = await client.get("/healthz")
            assert health.status_code == 200
            assert health.json()["service"] == name
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"kafka": "ok", "database": "ok"}
            metrics = await client.get("/metrics")
            assert "riskrelay_ready 1.0" in metrics.text
            asyncapi = await client.get("/docs/asyncapi.json")
            assert asyncapi.status_code == 200
            assert asyncapi.json()["asyncapi"].startswith("3.")
        platform = await app.state.context.db.fetch(
            "SELECT name FROM platform_migrations ORDER BY 1"
        )
        assert [r["name"] for r in platform] == ["0001_processed_events.sql", "0002_outbox.sql"]


async def test_outbox_relay_publishes_what_a_crash_left_behind_exactly_once(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    """The process committed its change and its outbox row, then died before publishing:
    the relay publishes the event once; a second relay publishes nothing."""
    settings = IntakeSettings(kafka=kafka_settings, database=database_settings)
    app = create_intake(settings)
    topic = f"{kafka_settings.topic_prefix}ticket-flagged"
    async with running(app):
        context = app.state.context
        event = TicketEvent.model_validate(VALID_EVENT)
        async with context.db.acquire() as connection, connection.transaction():
            await Outbox.write(connection, [OutgoingEvent(topic, "T-1", event)])
            await Outbox.write(
                connection, [OutgoingEvent(topic, "T-1", event)]
            )  # staged twice: kept once
        relay = Outbox(context.producer, grace=timedelta(0))
        # The service's own relay may hold the schema's relay lock for a moment (then this
        # relay yields and publishes nothing); it publishes the row on a later try.
        published = 0
        for _ in range(100):
            published = await relay.relay_once(context.db)
            if published:
                break
            await asyncio.sleep(0.05)
        assert published == 1
        assert await relay.relay_once(context.db) == 0
        records = await read_topic(kafka_settings.bootstrap, topic, expected=1, timeout=10)
        assert len(records) == 1
        assert TicketEvent.model_validate_json(records[0].value) == event
        assert header(records[0], "ce_id") == "evt-valid-1"
        left = await context.db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        assert left == 0


async def test_a_claim_takes_its_locks_and_records_only_new_event_ids(
    database_settings: DatabaseSettings,
) -> None:
    dsn = database_settings.url.get_secret_value()
    schema = database_settings.schema_name
    first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    space = LockSpace("test:", seed=3)

    async def held_elsewhere(key: str) -> bool:
        async with second.transaction():
            taken: bool = await second.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 3))", key
            )
            return not taken

    try:
        await first.execute(f'CREATE SCHEMA "{schema}"')
        await first.execute(f'SET search_path TO "{schema}"')
        await first.execute("CREATE TABLE processed_events (event_id text PRIMARY KEY)")
        async with first.transaction():
            fresh = await claim_new(
                first, ["e1", "e2", "e1"], lambda item: item, lock=space.of(["b", "a"])
            )
            assert fresh == ["e1", "e2"]
            assert await held_elsewhere("test:a")
            assert await held_elsewhere("test:b")
            assert not await held_elsewhere("test:c")
        assert not await held_elsewhere("test:a"), "the locks end with the transaction"
        async with first.transaction():
            assert await claim_new_event_ids(first, ["e2", "e3"], lock=space.of(["a"])) == {"e3"}
        async with first.transaction():
            assert await claim_new_event_ids(first, ["e4"]) == {"e4"}, "no locks is fine too"
    finally:
        await first.close()
        await second.close()
