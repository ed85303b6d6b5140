"""Intake's cluster storage on the real PostgreSQL: members live in their own rows, centroids in
a bytea column, topics outlive their clusters, a fresh instance loads exactly the clusters and
topics another one saved, and the migrations keep every member (0002) and drop the MinHash state
that has no vector to compare with (0003)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from riskrelay.intake.clustering import (
    ClusterAssignment,
    ClusterIndex,
    Pruned,
    Vector,
    assign_to_cluster,
)
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
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # event time only: nothing here reads a clock


def report(problem: int, wording: int) -> Vector:
    """A fake problem-report embedding: the problem's direction plus a little wording noise."""
    base = np.random.default_rng(problem).standard_normal(384)
    noise = np.random.default_rng(1_000 + wording).standard_normal(384)
    vector = base / np.linalg.norm(base) + 0.5 * noise / np.linalg.norm(noise)
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float32)


def assign(
    index: ClusterIndex, ticket: str, customer: str, at: datetime, vector: Vector
) -> ClusterAssignment:
    assignment = assign_to_cluster(
        index,
        ticket_id=ticket,
        customer_id=customer,
        occurred_at=at,
        product=PRODUCT,
        vector=vector,
    )
    assert assignment is not None
    return assignment


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


async def test_a_fresh_instance_loads_the_clusters_topics_and_members_another_saved(
    connection: asyncpg.Connection, database_settings: DatabaseSettings
) -> None:
    await migrate(connection, database_settings.schema_name)
    index = ClusterIndex()
    added = []
    started = set()
    # Two tickets at the same instant: their order must survive the round trip. The fifth
    # customer makes the cluster surge; the last report is another problem.
    times = [START, START + timedelta(minutes=3), START + timedelta(minutes=3), START]
    reports = [(f"T-{'b' if n == 2 else 'B'}{n}", at, report(1, n)) for n, at in enumerate(times)]
    reports += [("T-B4", START + timedelta(minutes=9), report(1, 4))]
    reports += [("T-X", START + timedelta(minutes=10), report(2, 0))]
    for n, (ticket, at, vector) in enumerate(reports):
        assignment = assign(index, ticket, f"C{n}", at, vector)
        if assignment.is_new_cluster:
            started.add(assignment.cluster_id)
        assert assignment.added_member is not None
        added.append((assignment.cluster_id, PRODUCT, assignment.added_member))
    assert len(index.clusters) == 2, "five reports of one incident, one of another"
    assert len(index.topics) == 2
    assert any(cluster.surging for cluster in index.clusters.values())
    cached = {PRODUCT: CachedProduct(0, index)}
    async with connection.transaction():
        await save_batch(
            connection,
            BatchChanges(
                cached,
                changed_clusters={PRODUCT: set(index.clusters)},
                changed_topics={PRODUCT: set(index.topics)},
                added_members=added,
                started_cluster_ids=started,
            ),
        )

    rows = await connection.fetch("SELECT state::text AS state, centroid FROM clusters")
    for row in rows:
        assert {"members", "centroid"}.isdisjoint(json.loads(row["state"]))
        assert len(row["centroid"]) == 768, "384 int16 values"
        assert len(row["state"]) < 1_000, "the header stays small"
    assert await connection.fetchval("SELECT count(*) FROM cluster_members") == 6
    assert await connection.fetchval("SELECT count(*) FROM cluster_topics") == 2

    loaded = await load_indexes(connection, PRODUCT)
    assert loaded[PRODUCT].version == 1
    assert loaded[PRODUCT].index.clusters == index.clusters
    assert loaded[PRODUCT].index.topics == index.topics
    assert loaded[PRODUCT].index.ticket_clusters == index.ticket_clusters
    # The loaded copy decides the next report exactly as the saving one does.
    at = START + timedelta(minutes=11)
    here = assign(index, "T-Z", "C-Z", at, report(1, 9))
    there = assign(loaded[PRODUCT].index, "T-Z", "C-Z", at, report(1, 9))
    assert (here.cluster_id, here.similarity, here.info) == (
        there.cluster_id,
        there.similarity,
        there.info,
    )


async def test_pruning_and_reusing_a_cluster_id_leaves_no_stale_members(
    connection: asyncpg.Connection, database_settings: DatabaseSettings
) -> None:
    await migrate(connection, database_settings.schema_name)
    first = ClusterIndex()
    assignment = assign(first, "T-1", "C1", START, report(1, 0))
    assert assignment.added_member is not None
    cached = {PRODUCT: CachedProduct(0, first)}
    member = (assignment.cluster_id, PRODUCT, assignment.added_member)
    await save_batch(
        connection,
        BatchChanges(
            cached,
            changed_clusters={PRODUCT: {assignment.cluster_id}},
            changed_topics={PRODUCT: {assignment.topic_id}},
            added_members=[member],
            started_cluster_ids={assignment.cluster_id},
        ),
    )
    assert await connection.fetchval("SELECT count(*) FROM clusters") == 1
    # The cluster is pruned (its topic stays), then a cluster with the same id starts again.
    await save_batch(
        connection, BatchChanges(cached, removed={PRODUCT: Pruned([assignment.cluster_id])})
    )
    assert await connection.fetchval("SELECT count(*) FROM cluster_members") == 0
    assert await connection.fetchval("SELECT count(*) FROM clusters") == 0
    assert await connection.fetchval("SELECT count(*) FROM cluster_topics") == 1
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


def ticket_event(ticket_id: str, description: str) -> TicketEvent:
    return TicketEvent.model_validate(
        {
            "specversion": "1.0",
            "id": f"evt-{ticket_id}",
            "source": "zendesk://acme",
            "type": "riskrelay.ticket.created.v1",
            "time": START.isoformat(),
            "data": {
                "ticket_id": ticket_id,
                "subject": "Charged twice",
                "description": description,
                "channel": "email",
                "customer": {"id": "C-1", "segment": "smb"},
                "tags": [],
                "product": PRODUCT,
                "priority": "high",
            },
        }
    )


async def test_the_migrations_move_members_to_rows_then_drop_the_minhash_state(
    connection: asyncpg.Connection, database_settings: DatabaseSettings
) -> None:
    schema = database_settings.schema_name
    await migrate(connection, schema, upto=1)
    members = [
        {"ticket_id": f"T-{n}", "customer_id": f"C{n}", "occurred_at": START.isoformat()}
        for n in range(4)
    ]
    minhash = {"product": PRODUCT, "signature": [1, 2, 3], "concepts": ["login"], "word_count": 3}
    old_cluster = {  # the layout of migration 0001: members and MinHash exemplars in the JSON
        "cluster_id": "cl-old",
        "product": PRODUCT,
        "first_ticket_id": "T-0",
        "first_seen_at": START.isoformat(),
        "last_seen_at": START.isoformat(),
        "size": 4,
        "customer_ids": ["C0", "C1", "C2", "C3"],
        "members": members,
        "exemplars": [minhash],
        "surging": False,
        "surging_since": None,
    }
    await connection.execute(
        "INSERT INTO clusters (cluster_id, product_key, last_seen_at, surging, size,"
        " distinct_customers, state) VALUES ('cl-old', $1, $2, false, 4, 4, $3::jsonb)",
        PRODUCT,
        START,
        json.dumps(old_cluster),
    )
    await connection.execute("INSERT INTO cluster_products VALUES ($1, 7)", PRODUCT)
    assessment = assess_ticket(
        ticket_event("T-0", "Charged twice, refund please"), load_rule_pack()
    )
    stored = {**assessment.model_dump(mode="json"), "fingerprint": minhash}
    await connection.execute(
        "INSERT INTO tickets (ticket_id, product_key, cluster_id, assessment, first_seen_at,"
        " last_event_at) VALUES ('T-0', $1, 'cl-old', $2::jsonb, $3, $3)",
        PRODUCT,
        json.dumps(stored),
        START,
    )

    await migrate(connection, schema, upto=2)
    assert await connection.fetchval("SELECT count(*) FROM cluster_members") == 4
    assert await connection.fetchval("SELECT state ? 'members' FROM clusters") is False

    await migrate(connection, schema)
    assert await connection.fetchval("SELECT count(*) FROM cluster_members") == 0
    assert await connection.fetchval("SELECT count(*) FROM clusters") == 0
    assert await connection.fetchval("SELECT version FROM cluster_products") == 8
    reads = await load_batch(
        connection, ClusterCache(), product_keys=[PRODUCT], rate_keys=[], ticket_ids=["T-0"]
    )
    memory = reads.tickets["T-0"]
    assert memory.cluster_id is None
    assert memory.assessment == assessment, "the stored assessment loads without its fingerprint"
    assert reads.indexes[PRODUCT].index == ClusterIndex()


async def test_one_read_returns_the_rates_and_ticket_memories_a_batch_saved(
    connection: asyncpg.Connection, database_settings: DatabaseSettings
) -> None:
    await migrate(connection, database_settings.schema_name)
    event = ticket_event("T-1", "I was charged twice for my subscription, refund please")
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
