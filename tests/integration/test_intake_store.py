"""Intake's cluster storage on the real PostgreSQL: members live in their own rows, a fresh
instance loads exactly the clusters another one saved, and the migration that moved members out
of the cluster JSON keeps every member."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from riskrelay.intake.clustering import ClusterIndex, assign_to_cluster, fingerprint
from riskrelay.intake.domain import assess_ticket
from riskrelay.intake.patterns import RateState
from riskrelay.intake.rules import load_rule_pack
from riskrelay.intake.store import (
    BatchChanges,
    CachedProduct,
    ClusterCache,
    TicketMemory,
    load_batch,
    save_batch,
)
from riskrelay.shared.events import Indicator, TicketEvent
from riskrelay.shared.migrations import apply_migrations, load_migrations
from riskrelay.shared.settings import DatabaseSettings

pytestmark = pytest.mark.integration

PRODUCT = "mobile app"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REPORTS = [
    "can't log in to the app since this morning",
    "sign-in fails with error 500 since 9am",
    "Login not working - keeps spinning and then shows an error",
    "Unable to sign in on my phone, tried twice",
]


@pytest.fixture
async def connection(database_settings: DatabaseSettings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_settings.url.get_secret_value())
    schema = database_settings.schema_name
    await connection.execute(f'CREATE SCHEMA "{schema}"')
    await connection.execute(f'SET search_path TO "{schema}", public')
    try:
        yield connection
    finally:
        await connection.close()


async def load_indexes(connection: asyncpg.Connection, product: str) -> dict[str, CachedProduct]:
    reads = await load_batch(
        connection, ClusterCache(), product_keys=[product], rate_keys=[], ticket_ids=[]
    )
    return reads.indexes


async def migrate(connection: asyncpg.Connection, schema: str, upto: int | None = None) -> None:
    migrations = [
        m for m in load_migrations("riskrelay.intake") if upto is None or m.version <= upto
    ]
    platform = load_migrations("riskrelay.shared")  # the outbox the batch write stages events in
    await apply_migrations(connection, schema, platform, table="platform_migrations")
    await apply_migrations(connection, schema, migrations)


async def test_a_fresh_instance_loads_the_clusters_and_members_another_saved(
    connection: asyncpg.Connection, database_settings: DatabaseSettings
) -> None:
    await migrate(connection, database_settings.schema_name)
    index = ClusterIndex()
    added = []
    started = set()
    # Two tickets at the same instant: their order must survive the round trip.
    times = [START, START + timedelta(minutes=3), START + timedelta(minutes=3), START]
    for n, (text, at) in enumerate(zip(REPORTS, times, strict=True)):
        assignment = assign_to_cluster(
            index,
            ticket_id=f"T-{'b' if n == 2 else 'B'}{n}",
            customer_id=f"C{n}",
            occurred_at=at,
            fp=fingerprint(text, PRODUCT),
        )
        if assignment.is_new_cluster:
            started.add(assignment.cluster_id)
        assert assignment.added_member is not None
        added.append((assignment.cluster_id, PRODUCT, assignment.added_member))
    assert len(index.clusters) == 1, "the four reports are one incident"
    cached = {PRODUCT: CachedProduct(0, index)}
    async with connection.transaction():
        await save_batch(
            connection,
            BatchChanges(
                cached,
                changed_clusters={PRODUCT: set(index.clusters)},
                added_members=added,
                started_cluster_ids=started,
            ),
        )

    stored = await connection.fetchval("SELECT state::text FROM clusters")
    assert "members" not in json.loads(stored), "members are rows, not part of the JSON"
    assert await connection.fetchval("SELECT count(*) FROM cluster_members") == 4

    loaded = await load_indexes(connection, PRODUCT)
    assert loaded[PRODUCT].version == 1
    assert loaded[PRODUCT].index.clusters == index.clusters
    assert loaded[PRODUCT].index.ticket_clusters == index.ticket_clusters


async def test_pruning_and_reusing_a_cluster_id_leaves_no_stale_members(
    connection: asyncpg.Connection, database_settings: DatabaseSettings
) -> None:
    await migrate(connection, database_settings.schema_name)
    first = ClusterIndex()
    assignment = assign_to_cluster(
        first,
        ticket_id="T-1",
        customer_id="C1",
        occurred_at=START,
        fp=fingerprint(REPORTS[0], PRODUCT),
    )
    assert assignment.added_member is not None
    cached = {PRODUCT: CachedProduct(0, first)}
    member = (assignment.cluster_id, PRODUCT, assignment.added_member)
    await save_batch(
        connection,
        BatchChanges(
            cached,
            changed_clusters={PRODUCT: {assignment.cluster_id}},
            added_members=[member],
            started_cluster_ids={assignment.cluster_id},
        ),
    )
    assert await connection.fetchval("SELECT count(*) FROM clusters") == 1
    # The cluster is pruned, then a cluster with the same id starts again with another member.
    await save_batch(
        connection, BatchChanges(cached, removed_clusters={PRODUCT: [assignment.cluster_id]})
    )
    assert await connection.fetchval("SELECT count(*) FROM cluster_members") == 0
    assert await connection.fetchval("SELECT count(*) FROM clusters") == 0
    again = (
        assignment.cluster_id,
        PRODUCT,
        assignment.added_member.model_copy(update={"ticket_id": "T-2"}),
    )
    await save_batch(
        connection,
        BatchChanges(cached, added_members=[again], started_cluster_ids={assignment.cluster_id}),
    )
    rows = await connection.fetch("SELECT ticket_id FROM cluster_members")
    assert [r["ticket_id"] for r in rows] == ["T-2"]


async def test_the_migration_moves_every_member_out_of_the_cluster_json(
    connection: asyncpg.Connection, database_settings: DatabaseSettings
) -> None:
    schema = database_settings.schema_name
    await migrate(connection, schema, upto=1)
    index = ClusterIndex()
    for n, text in enumerate(REPORTS):
        assign_to_cluster(
            index,
            ticket_id=f"T-{n}",
            customer_id=f"C{n}",
            occurred_at=START + timedelta(minutes=n),
            fp=fingerprint(text, PRODUCT),
        )
    (cluster,) = index.clusters.values()
    await connection.execute(
        "INSERT INTO clusters (cluster_id, product_key, last_seen_at, surging, size,"
        " distinct_customers, state) VALUES ($1, $2, $3, false, $4, $4, $5::jsonb)",
        cluster.cluster_id,
        PRODUCT,
        cluster.last_seen_at,
        cluster.size,
        cluster.model_dump_json(),  # the old layout: members inside the JSON
    )
    await migrate(connection, schema)
    assert await connection.fetchval("SELECT state ? 'members' FROM clusters") is False
    loaded = await load_indexes(connection, PRODUCT)
    assert loaded[PRODUCT].index.clusters == index.clusters


async def test_one_read_returns_the_rates_and_ticket_memories_a_batch_saved(
    connection: asyncpg.Connection, database_settings: DatabaseSettings
) -> None:
    await migrate(connection, database_settings.schema_name)
    event = TicketEvent.model_validate(
        {
            "specversion": "1.0",
            "id": "evt-1",
            "source": "zendesk://acme",
            "type": "riskrelay.ticket.created.v1",
            "time": START.isoformat(),
            "data": {
                "ticket_id": "T-1",
                "subject": "Charged twice",
                "description": "I was charged twice for my subscription, refund please",
                "channel": "email",
                "customer": {"id": "C-1", "segment": "smb"},
                "tags": [],
                "product": PRODUCT,
                "priority": "high",
            },
        }
    )
    assessment = assess_ticket(event, load_rule_pack())
    memory = TicketMemory(
        ticket_id="T-1",
        product_key=PRODUCT,
        cluster_id=None,
        assessment=assessment,
        known_indicators=[Indicator.MULTIPLE_SIMILAR_REPORTS],
        risk_flag_level=3,
        first_seen_at=START,
        last_event_at=START + timedelta(minutes=5),
    )
    rate = RateState(bucket_start=START, bucket_count=4)
    cache = ClusterCache()
    empty = await load_batch(
        connection, cache, product_keys=[PRODUCT], rate_keys=["r"], ticket_ids=["T-1"]
    )
    assert (empty.indexes[PRODUCT].version, empty.rates, empty.tickets) == (0, {}, {})
    await save_batch(
        connection,
        BatchChanges(
            cached=empty.indexes,
            changed_clusters={PRODUCT: set()},
            rates={"r": rate},
            rate_products={"r": PRODUCT},
            tickets=[memory],
        ),
    )

    reads = await load_batch(
        connection, cache, product_keys=[PRODUCT], rate_keys=["r", "other"], ticket_ids=["T-1"]
    )
    assert reads.indexes[PRODUCT].version == 1
    assert reads.rates == {"r": rate}
    assert reads.tickets == {"T-1": memory}
