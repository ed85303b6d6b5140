"""Intake persistence: clusters, rate baselines and ticket memories, shared by every instance.

Tickets are keyed by ticket id, so one product's tickets spread over all partitions and all
intake instances. Clusters never span products, so a product is the unit of serialization:
every batch takes a transaction-scoped advisory lock per product it touches, in sorted order
(no deadlocks), before it reads that product's clusters and baselines. A second instance waits
and then sees the first one's clusters, so the two can never split a cluster or count a ticket
twice.

A cluster is stored as a small JSON header (``clusters.state``: counts, customer ids, surge),
its centroid as 768 bytes beside it (``clusters.centroid``) and one ``cluster_members`` row per
member, so a report joining a large incident writes one row and rewrites only the header. A
recurring topic is one ``cluster_topics`` row (centroid and baseline), kept after its clusters.

Reading every cluster of a product for every batch would dominate the cost, so each instance
keeps the last :class:`ClusterIndex` it saw per product together with the product's version
(bumped by every writer). Under the lock a version check (one small query) tells whether the
cached copy is still current; only a stale copy is reloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg

from riskrelay.intake.clustering import (
    Cluster,
    ClusterConfig,
    ClusterIndex,
    ClusterMember,
    Pruned,
    Topic,
    prune,
)
from riskrelay.intake.domain import TicketAssessment
from riskrelay.intake.patterns import RateState
from riskrelay.shared.events import Indicator
from riskrelay.shared.kafka import OutgoingEvent
from riskrelay.shared.outbox import Outbox, outbox_insert
from riskrelay.shared.store import Connection, Locks, LockSpace, unnest_columns

_PRODUCT_LOCKS = LockSpace("riskrelay.intake.product:")
# Stored as rows of cluster_members and as the centroid column, not in the cluster's JSON.
_OUTSIDE_CLUSTER_JSON = {"members", "centroid"}
_OUTSIDE_TOPIC_JSON = {"centroid"}


@dataclass
class CachedProduct:
    version: int
    index: ClusterIndex
    pruned_before: datetime | None = None


@dataclass
class ClusterCache:
    """Per-instance cache of product cluster indexes; see the module docstring."""

    products: dict[str, CachedProduct] = field(default_factory=dict)

    def forget(self, product_keys: Iterable[str]) -> None:
        """Drop cached copies a failed transaction may have changed in memory."""
        for key in product_keys:
            self.products.pop(key, None)


@dataclass(frozen=True)
class TicketMemory:
    """What intake remembers of a ticket between its events."""

    ticket_id: str
    product_key: str
    cluster_id: str | None
    assessment: TicketAssessment
    known_indicators: list[Indicator]
    risk_flag_level: int | None
    first_seen_at: datetime
    last_event_at: datetime


def product_locks(product_keys: Iterable[str]) -> Locks:
    return _PRODUCT_LOCKS.of(product_keys)


@dataclass
class BatchReads:
    """What a batch reads before deciding: cluster indexes, rate baselines, ticket memories."""

    indexes: dict[str, CachedProduct]
    rates: dict[str, RateState]
    tickets: dict[str, TicketMemory]


# Product versions, rate baselines and ticket memories in one round trip (a UNION of three
# row shapes, told apart by ``kind``); a stale cluster index costs a second one.
_LOAD_BATCH = """
SELECT 'version' AS kind, product_key AS key, version, NULL::text AS state,
       NULL::text AS product_key, NULL::text AS cluster_id, NULL::text[] AS known_indicators,
       NULL::int AS risk_flag_level, NULL::timestamptz AS first_seen_at,
       NULL::timestamptz AS last_event_at
FROM cluster_products WHERE product_key = ANY($1::text[])
UNION ALL
SELECT 'rate', rate_key, NULL, state::text, NULL, NULL, NULL, NULL, NULL, NULL
FROM rate_baselines WHERE rate_key = ANY($2::text[])
UNION ALL
SELECT 'ticket', ticket_id, NULL, assessment::text, product_key, cluster_id, known_indicators,
       risk_flag_level, first_seen_at, last_event_at
FROM tickets WHERE ticket_id = ANY($3::text[])
"""


async def load_batch(
    connection: Connection,
    cache: ClusterCache,
    *,
    product_keys: Iterable[str],
    rate_keys: Iterable[str],
    ticket_ids: Iterable[str],
) -> BatchReads:
    """Everything a batch reads (call with its products locked)."""
    keys = sorted(set(product_keys))
    rows = await connection.fetch(
        _LOAD_BATCH, keys, sorted(set(rate_keys)), sorted(set(ticket_ids))
    )
    versions = {row["key"]: row["version"] for row in rows if row["kind"] == "version"}
    return BatchReads(
        indexes=await _current_indexes(connection, cache, keys, versions),
        rates={
            row["key"]: RateState.model_validate_json(row["state"])
            for row in rows
            if row["kind"] == "rate"
        },
        tickets={
            row["key"]: _ticket_memory(row["key"], row) for row in rows if row["kind"] == "ticket"
        },
    )


async def _current_indexes(
    connection: Connection, cache: ClusterCache, keys: list[str], versions: Mapping[str, int]
) -> dict[str, CachedProduct]:
    """The cached index of each product, reloaded where another writer moved its version."""
    stale = [
        key
        for key in keys
        if (cached := cache.products.get(key)) is None or cached.version != versions.get(key, 0)
    ]
    if stale:
        indexes = await _read_indexes(connection, stale)
        for key in stale:
            cache.products[key] = CachedProduct(versions.get(key, 0), indexes[key])
    return {key: cache.products[key] for key in keys}


# Clusters and topics of several products in one query (told apart by ``kind``), members in
# another.
_READ_CLUSTERS = """
SELECT 'cluster' AS kind, product_key, state::text AS state, centroid FROM clusters
WHERE product_key = ANY($1::text[])
UNION ALL
SELECT 'topic', product_key, state::text, centroid FROM cluster_topics
WHERE product_key = ANY($1::text[])
"""


async def _read_indexes(connection: Connection, product_keys: list[str]) -> dict[str, ClusterIndex]:
    """The stored clusters and topics of several products with the clusters' members."""
    rows = await connection.fetch(_READ_CLUSTERS, product_keys)
    members = await connection.fetch(
        "SELECT cluster_id, ticket_id, customer_id, occurred_at FROM cluster_members"
        " WHERE product_key = ANY($1::text[])"
        # Byte order of ticket ids, like Python's, whatever the database collation.
        ' ORDER BY cluster_id, occurred_at, ticket_id COLLATE "C"',
        product_keys,
    )
    indexes = {key: ClusterIndex() for key in product_keys}
    by_id: dict[str, tuple[str, Cluster]] = {}
    for row in rows:
        index = indexes[row["product_key"]]
        if row["kind"] == "topic":
            topic = Topic.model_validate_json(row["state"])
            topic.centroid = row["centroid"]
            index.topics[topic.topic_id] = topic
            continue
        cluster = Cluster.model_validate_json(row["state"])
        cluster.centroid = row["centroid"]
        index.clusters[cluster.cluster_id] = cluster
        by_id[cluster.cluster_id] = (row["product_key"], cluster)
    for row in members:
        found = by_id.get(row["cluster_id"])
        if found is None:
            continue  # no such cluster any more: nothing to attach the member to
        key, cluster = found
        # Rows come in (occurred_at, ticket_id) order, the order the domain keeps members in.
        cluster.members.append(
            ClusterMember(
                ticket_id=row["ticket_id"],
                customer_id=row["customer_id"],
                occurred_at=row["occurred_at"],
            )
        )
        indexes[key].ticket_clusters[row["ticket_id"]] = cluster.cluster_id
    return indexes


@dataclass
class BatchChanges:
    """Everything one intake batch changed, to be written by :func:`save_batch`."""

    cached: Mapping[str, CachedProduct]
    changed_clusters: Mapping[str, set[str]] = field(default_factory=dict)
    changed_topics: Mapping[str, set[str]] = field(default_factory=dict)
    removed: Mapping[str, Pruned] = field(default_factory=dict)
    """Clusters and topics pruned, per product."""
    added_members: Sequence[tuple[str, str, ClusterMember]] = ()
    """(cluster id, product key, member)."""
    started_cluster_ids: Iterable[str] = ()
    """Clusters created in this batch: the id may be a pruned cluster's, whose rows go first."""
    rates: Mapping[str, RateState] = field(default_factory=dict)
    rate_products: Mapping[str, str] = field(default_factory=dict)
    tickets: Sequence[TicketMemory] = ()
    counts: Mapping[tuple[datetime, str, str, bool], int] = field(default_factory=dict)
    outgoing: Sequence[OutgoingEvent] = ()
    """Events the batch publishes, staged in the outbox by the same statement."""


# Every upsert of a batch in one statement (data-modifying CTEs all run, read or not): on a busy
# machine each round trip is a context switch, and a batch used to make six of them here.
_SAVE_BATCH = f"""
WITH saved_clusters AS (
    INSERT INTO clusters (cluster_id, product_key, last_seen_at, surging, size,
                          distinct_customers, state, centroid)
    SELECT c, p, l, s, n, d, st::jsonb, v
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bool[], $5::int[], $6::int[],
                $7::text[], $8::bytea[]) AS r (c, p, l, s, n, d, st, v)
    ON CONFLICT (cluster_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at,
        surging = EXCLUDED.surging, size = EXCLUDED.size,
        distinct_customers = EXCLUDED.distinct_customers, state = EXCLUDED.state,
        centroid = EXCLUDED.centroid
), saved_topics AS (
    INSERT INTO cluster_topics (topic_id, product_key, last_seen_at, state, centroid)
    SELECT t, p, l, st::jsonb, v
    FROM unnest($9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::bytea[])
        AS r (t, p, l, st, v)
    ON CONFLICT (topic_id) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at,
        state = EXCLUDED.state, centroid = EXCLUDED.centroid
), saved_members AS (
    INSERT INTO cluster_members (cluster_id, ticket_id, product_key, customer_id, occurred_at)
    SELECT * FROM unnest($14::text[], $15::text[], $16::text[], $17::text[], $18::timestamptz[])
    ON CONFLICT DO NOTHING
), saved_rates AS (
    INSERT INTO rate_baselines (rate_key, product_key, state)
    SELECT k, p, st::jsonb FROM unnest($20::text[], $21::text[], $22::text[]) AS r (k, p, st)
    ON CONFLICT (rate_key) DO UPDATE SET state = EXCLUDED.state
), saved_tickets AS (
    -- Indicator values are snake_case words, so a comma-joined string carries each list
    -- through unnest (which would flatten a two-dimensional array).
    INSERT INTO tickets (ticket_id, product_key, cluster_id, assessment, known_indicators,
                         risk_flag_level, first_seen_at, last_event_at)
    SELECT t, p, c, a::jsonb, string_to_array(k, ','), f, fs, le
    FROM unnest($23::text[], $24::text[], $25::text[], $26::text[], $27::text[], $28::int[],
                $29::timestamptz[], $30::timestamptz[]) AS r (t, p, c, a, k, f, fs, le)
    ON CONFLICT (ticket_id) DO UPDATE SET cluster_id = EXCLUDED.cluster_id,
        assessment = EXCLUDED.assessment, known_indicators = EXCLUDED.known_indicators,
        risk_flag_level = EXCLUDED.risk_flag_level,
        last_event_at = GREATEST(tickets.last_event_at, EXCLUDED.last_event_at)
), saved_outbox AS (
    {outbox_insert(36)}
), saved_counts AS (
    INSERT INTO ticket_counts (hour, channel, product, flagged, events)
    SELECT * FROM unnest($31::timestamptz[], $32::text[], $33::text[], $34::bool[], $35::int[])
    ON CONFLICT (hour, channel, product, flagged)
    DO UPDATE SET events = ticket_counts.events + EXCLUDED.events
)
INSERT INTO cluster_products (product_key, version) SELECT unnest($19::text[]), 1
ON CONFLICT (product_key) DO UPDATE SET version = cluster_products.version + 1
RETURNING product_key, version
"""


async def save_batch(connection: Connection, changes: BatchChanges) -> None:
    """Write a batch's changes: cluster headers, centroids and new members, topics, pruned
    clusters and topics, rate baselines, ticket memories, counts and the outbox; bump each
    touched product's version."""
    gone = [cid for pruned in changes.removed.values() for cid in pruned.clusters]
    gone_topics = [tid for pruned in changes.removed.values() for tid in pruned.topics]
    cleared = sorted({*gone, *changes.started_cluster_ids})
    if cleared or gone_topics:
        await connection.execute(
            "WITH members AS (DELETE FROM cluster_members WHERE cluster_id = ANY($1::text[])),"
            " topics AS (DELETE FROM cluster_topics WHERE topic_id = ANY($3::text[]))"
            " DELETE FROM clusters WHERE cluster_id = ANY($2::text[])",
            cleared,
            sorted(gone),
            sorted(gone_topics),
        )
    cluster_rows = [
        (
            cluster.cluster_id,
            key,
            cluster.last_seen_at,
            cluster.surging,
            cluster.size,
            len(cluster.customer_ids),
            cluster.model_dump_json(exclude=_OUTSIDE_CLUSTER_JSON),
            cluster.centroid,
        )
        for key, cluster in _changed(changes.changed_clusters, changes.cached, _clusters_of)
    ]
    topic_rows = [
        (
            topic.topic_id,
            key,
            topic.last_seen_at,
            topic.model_dump_json(exclude=_OUTSIDE_TOPIC_JSON),
            topic.centroid,
        )
        for key, topic in _changed(changes.changed_topics, changes.cached, _topics_of)
    ]
    member_rows = [
        (cluster_id, m.ticket_id, product, m.customer_id, m.occurred_at)
        for cluster_id, product, m in changes.added_members
    ]
    touched = sorted(
        {
            *changes.changed_clusters,
            *changes.changed_topics,
            *(key for key, pruned in changes.removed.items() if pruned),
        }
    )
    rate_rows = [
        (key, changes.rate_products[key], state.model_dump_json())
        for key, state in changes.rates.items()
    ]
    ticket_rows = [
        (
            t.ticket_id,
            t.product_key,
            t.cluster_id,
            t.assessment.model_dump_json(),
            ",".join(str(indicator) for indicator in t.known_indicators),
            t.risk_flag_level,
            t.first_seen_at,
            t.last_event_at,
        )
        for t in changes.tickets
    ]
    count_rows = sorted(
        (hour, channel, product, flagged, n)
        for (hour, channel, product, flagged), n in changes.counts.items()
    )
    versions = await connection.fetch(
        _SAVE_BATCH,
        *unnest_columns(cluster_rows, 8),
        *unnest_columns(topic_rows, 5),
        *unnest_columns(member_rows, 5),
        touched,
        *unnest_columns(rate_rows, 3),
        *unnest_columns(ticket_rows, 8),
        *unnest_columns(count_rows, 5),
        *Outbox.columns(changes.outgoing),
    )
    for row in versions:
        changes.cached[row["product_key"]].version = row["version"]


ItemT = TypeVar("ItemT", Cluster, Topic)


def _clusters_of(index: ClusterIndex) -> Mapping[str, Cluster]:
    return index.clusters


def _topics_of(index: ClusterIndex) -> Mapping[str, Topic]:
    return index.topics


def _changed(
    ids_by_product: Mapping[str, set[str]],
    cached: Mapping[str, CachedProduct],
    held: Callable[[ClusterIndex], Mapping[str, ItemT]],
) -> list[tuple[str, ItemT]]:
    """(product key, cluster or topic) of the changed ids still in their index, in id order."""
    found: list[tuple[str, ItemT]] = []
    for key, ids in ids_by_product.items():
        items = held(cached[key].index)
        found += [(key, items[i]) for i in sorted(ids) if i in items]
    return found


def prune_expired(
    cached: CachedProduct, latest_event_time: datetime, keep_for: float, config: ClusterConfig
) -> Pruned:
    """Prune clusters idle for ``keep_for`` seconds of event time and topics no longer live at
    the latest event time, at most once an hour."""
    horizon = latest_event_time - timedelta(seconds=keep_for)
    if cached.pruned_before is not None and horizon - cached.pruned_before < timedelta(hours=1):
        return Pruned()
    cached.pruned_before = horizon
    return prune(cached.index, older_than=horizon, at=latest_event_time, config=config)


async def load_tickets(
    connection: Connection, ticket_ids: Iterable[str]
) -> dict[str, TicketMemory]:
    """Ticket memories outside a batch's first read (earlier members a surge re-flags)."""
    rows = await connection.fetch(
        "SELECT ticket_id, product_key, cluster_id, assessment::text AS state,"
        " known_indicators, risk_flag_level, first_seen_at, last_event_at"
        " FROM tickets WHERE ticket_id = ANY($1::text[])",
        sorted(set(ticket_ids)),
    )
    return {row["ticket_id"]: _ticket_memory(row["ticket_id"], row) for row in rows}


def _ticket_memory(ticket_id: str, row: asyncpg.Record) -> TicketMemory:
    return TicketMemory(
        ticket_id=ticket_id,
        product_key=row["product_key"],
        cluster_id=row["cluster_id"],
        assessment=TicketAssessment.model_validate_json(row["state"]),
        known_indicators=[Indicator(value) for value in row["known_indicators"]],
        risk_flag_level=row["risk_flag_level"],
        first_seen_at=row["first_seen_at"],
        last_event_at=row["last_event_at"],
    )


async def flag_rates(
    connection: Connection, since: datetime, until: datetime
) -> Sequence[asyncpg.Record]:
    return await connection.fetch(
        "SELECT channel, product,"
        " sum(events) FILTER (WHERE flagged) AS flagged,"
        " sum(events) AS total"
        " FROM ticket_counts WHERE hour >= $1 AND hour < $2"
        " GROUP BY channel, product ORDER BY channel, product",
        since,
        until,
    )
