"""Similar reports by meaning: clusters of problem reports, the topics they recur as, and surges.

Who clusters
    Only problem reports. A ticket takes part when the semantic cascade gave it a vector
    (:attr:`~riskrelay.intake.domain.TicketAssessment.cluster_vector`: the sentence encoder's
    embedding of its redacted subject and description, set only when the ticket reports
    something broken, wrong or harmful). Routine requests (how-to questions, account changes,
    billing dates) never join or start a cluster, however many customers ask the same thing, and
    a ticket flagged by rules alone, without a vector, stays on its own.

Vectors
    Kept as Q15 fixed point (int16, value x 32767): a centroid is 768 bytes, and every similarity
    is an exact integer dot product (computed in float64, which is exact below 2**53 whatever the
    BLAS kernel or row order), so two instances and a replay agree to the bit.

Clusters
    A problem report joins the most similar open cluster of its product whose centroid (the
    running mean of its members' vectors) has cosine >= ``similarity_threshold``, else it starts
    a new cluster. 0.44 by default, measured: whole tickets (greetings, details, sign-offs) sit
    far apart even when they report one incident. On the evaluation set's seven incidents (58
    reports worded as several industries' customers write, among 266 other tickets), with the
    fp32 encoder the multiple-similar-reports F1 was 0.31 at 0.55 (recall 0.19: most reports
    stay alone), 0.67 at 0.50, 0.76 at 0.48, 0.90 at 0.45 (precision 0.91, recall 0.90) and
    0.91 at 0.42 (precision 0.89); with the int8 encoder (cosine 0.99 to fp32) it is 0.86 at
    0.45 (recall 0.83), 0.91 at 0.44 (precision 0.90, recall 0.91) and 0.90 at 0.43. Short
    paraphrases are easy at any of these: six wordings of one data exposure sit at
    0.52-0.81 from each other and form one cluster in all of 300 random arrival orders at 0.45
    (99 % with five other incidents arriving among them).
    What 0.45 costs is related incidents of one product sharing a cluster: six incidents of six
    wordings each, in random orders, merge a login failure with reset e-mails that never arrive
    in 24 % of the runs and a double charge with cards declined at checkout in 32 %, anything
    else in 2 %. A cluster is open for ``join_window`` of event time from its first ticket (24 h),
    so a problem that recurs day after day forms a new cluster each day, judged against its
    topic's history. Cluster ids derive from product and first ticket.

Topics
    A topic is a recurring problem of one product: a centroid (running mean of every report of
    its clusters) and a rate baseline, kept long after its clusters closed, for as long as the
    baseline can still tell a surge something: until it decays to ``baseline_floor`` (a problem
    reported once is forgotten after about three days, one whose busiest hour held 8 customers
    after about nine) and at most ``topic_retention`` (30 days). A new cluster belongs to the
    most similar live topic (same threshold) or starts one. The baseline is an EWMA (``baseline_alpha``) over days
    (``baseline_bucket``) of the topic's busiest surge window: the most distinct customers one of
    its clusters had within ``surge_window`` that day, starting from its first day's. Days
    without a report count as zeros, so a topic that goes quiet loses its baseline, as
    :mod:`riskrelay.intake.patterns` does with hours.

Surge
    Several customers reporting the same problem more than usual. A cluster surges when a
    ``surge_window`` holding its new ticket has at least ``surge_customers`` distinct customers
    (one customer writing five times is one customer) and, when its topic has a history, that
    count is unlikely under the topic's baseline: the Poisson tail ``P(X >= count)`` is below
    ``surge_tail_probability``, the test the unusual-pattern baseline applies to ticket rates. A
    problem with no history (a baseline of at most ``baseline_floor``) surges at 5 customers
    within the hour; one whose busiest hour usually holds 8 customers needs 19. The surge is
    latched for the cluster: when it starts, every earlier member must now be flagged
    (``tickets_to_flag``), and later members are flagged as they arrive.

State
    :class:`ClusterIndex` is the whole state, explicit and JSON-serializable (centroids as base64),
    so the service can keep it in PostgreSQL. :func:`assign_to_cluster` mutates the index it is
    given and reports which clusters and topics changed, so a store can upsert just those. The
    centroid matrices used to search are derived data, rebuilt from the clusters when needed.
"""

from __future__ import annotations

import base64
import bisect
import math
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated

import numpy as np
from numpy.typing import NDArray
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
)

from riskrelay.intake.patterns import poisson_tail
from riskrelay.shared.events import ClusterInfo, Detection, Indicator

# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------


class ClusterConfig(BaseModel):
    """Tuning of similar-report clustering; all durations are event time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    similarity_threshold: float = Field(
        default=0.44,
        gt=0.0,
        le=1.0,
        description="Cosine with a cluster's (or topic's) centroid at which a report joins it.",
    )
    join_window: timedelta = Field(
        default=timedelta(hours=24),
        description="How long after its first ticket a cluster accepts more.",
    )
    surge_customers: int = Field(default=5, ge=2, description="Distinct customers for a surge.")
    surge_window: timedelta = Field(default=timedelta(minutes=60))
    surge_tail_probability: float = Field(
        default=1e-3,
        gt=0.0,
        lt=1.0,
        description="A window's count surges when P(X >= count) under the topic's baseline is below.",
    )
    baseline_alpha: float = Field(
        default=0.3, gt=0.0, le=1.0, description="EWMA weight of a topic's latest day."
    )
    baseline_floor: float = Field(
        default=0.5,
        gt=0.0,
        description="A topic whose baseline is at most this is as good as new: its surges need"
        " only ``surge_customers``.",
    )
    baseline_bucket: timedelta = Field(
        default=timedelta(days=1), description="Period of a topic's baseline (its busiest window)."
    )
    topic_retention: timedelta = Field(
        default=timedelta(days=30),
        description="Longest a topic is kept after its latest report (see topic_is_live).",
    )
    max_members: int = Field(default=1_000, ge=1, description="Member tickets kept per cluster.")


DEFAULT_CLUSTER_CONFIG = ClusterConfig()


def product_key(product: str) -> str:
    return " ".join(product.casefold().split())


# ---------------------------------------------------------------------------------------------
# Vectors
# ---------------------------------------------------------------------------------------------

Q15 = 32_767
"""Fixed-point scale of stored vectors: components of unit vectors and of their means are in
[-1, 1], so int16 holds them with a step of 3e-5."""
_DTYPE = "<i2"

Vector = NDArray[np.float32]
Quantized = NDArray[np.int16]


def quantize(vector: NDArray[np.floating]) -> Quantized:
    """A (unit-length) vector in the stored fixed-point form."""
    scaled = np.rint(np.asarray(vector, dtype=np.float64) * Q15)
    return np.clip(scaled, -Q15, Q15).astype(_DTYPE)


def centroid_array(centroid: bytes) -> Quantized:
    return np.frombuffer(centroid, dtype=_DTYPE)


def _running_mean(centroid: bytes, vector: Quantized, count: int) -> bytes:
    """The mean of ``count`` vectors from the mean of the first ``count - 1`` and the last."""
    previous = centroid_array(centroid).astype(np.float64)
    mean = previous + (vector.astype(np.float64) - previous) / count
    return np.rint(mean).astype(_DTYPE).tobytes()


def cosine(left: bytes, right: bytes) -> float:
    """Cosine similarity of two stored vectors (0 when either is zero or they differ in size)."""
    a = centroid_array(left).astype(np.float64)
    b = centroid_array(right).astype(np.float64)
    if a.shape != b.shape:
        return 0.0
    norms = math.sqrt(float(a @ a)) * math.sqrt(float(b @ b))
    return float(a @ b) / norms if norms else 0.0


def _centroid_from_json(value: object) -> object:
    if isinstance(value, str):
        return base64.b64decode(value, validate=True)
    return value


def _centroid_to_json(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Centroid = Annotated[
    bytes,
    BeforeValidator(_centroid_from_json),
    PlainSerializer(_centroid_to_json, return_type=str, when_used="json"),
]
"""A mean of unit vectors as little-endian Q15 int16 values; base64 in JSON. The store keeps it
in a ``bytea`` column of its own, outside the JSON header."""


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------

CLUSTER_ID_NAMESPACE = uuid.UUID("0b7f3c1e-5f0e-4a53-9a43-3c1d2e8b6f21")
TOPIC_ID_NAMESPACE = uuid.UUID("5d0f8a4e-2b61-4c8e-9e3f-71a2c4b9d013")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def cluster_id_for(product: str, first_ticket_id: str) -> str:
    """Deterministic cluster id: the same first ticket always names the same cluster."""
    return "cl-" + str(uuid.uuid5(CLUSTER_ID_NAMESPACE, f"{product}\x1f{first_ticket_id}"))


def topic_id_for(product: str, first_ticket_id: str) -> str:
    """Deterministic topic id, named by the first ticket of its first cluster."""
    return "tp-" + str(uuid.uuid5(TOPIC_ID_NAMESPACE, f"{product}\x1f{first_ticket_id}"))


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterMember(_State):
    ticket_id: str
    customer_id: str
    occurred_at: AwareDatetime


class Cluster(_State):
    """One incident: problem reports of one product that mean the same, within the join window."""

    cluster_id: str
    product: str = Field(description="Normalized product key.")
    topic_id: str = Field(description="The recurring problem this cluster is an occurrence of.")
    first_ticket_id: str
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime
    size: int = Field(default=0, description="Member tickets (the centroid averages them all).")
    customer_ids: list[str] = Field(default_factory=list, description="Distinct, sorted.")
    members: list[ClusterMember] = Field(default_factory=list, description="By event time.")
    centroid: Centroid = Field(default=b"", description="Mean of the members' vectors (Q15).")
    surging: bool = False
    surging_since: AwareDatetime | None = None
    surge_evidence: str | None = Field(
        default=None, description="Why it surged: the window's count against the topic baseline."
    )

    def info(self) -> ClusterInfo:
        return ClusterInfo(
            cluster_id=self.cluster_id,
            size=max(self.size, 1),
            distinct_customers=max(len(self.customer_ids), 1),
            surging=self.surging,
            first_seen_at=self.first_seen_at,
        )


class Topic(_State):
    """A recurring problem of one product, with the rate at which its clusters usually grow."""

    topic_id: str
    product: str = Field(description="Normalized product key.")
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime
    reports: int = Field(default=0, ge=0, description="Reports averaged into the centroid.")
    centroid: Centroid = Field(default=b"", description="Mean of its reports' vectors (Q15).")
    bucket_start: AwareDatetime = Field(description="Start of the current baseline period.")
    bucket_peak: int = Field(
        default=0, ge=0, description="Most distinct customers in one surge window this period."
    )
    baseline: float = Field(
        default=0.0, ge=0.0, description="EWMA of the busiest window of the closed periods."
    )
    periods_observed: int = Field(default=0, ge=0, description="Closed periods in the baseline.")


@dataclass(eq=False)
class _CentroidTable:
    """Normalized-free search matrix over stored centroids of one product and vector size."""

    ids: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    matrix: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    norms: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    starts: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))

    def put(self, key: str, centroid: bytes, start: datetime) -> None:
        values = centroid_array(centroid).astype(np.float64)
        row = self.rows.get(key)
        if row is None:
            row = len(self.ids)
            if row == len(self.norms):
                self._grow(values.shape[0])
            self.ids.append(key)
            self.rows[key] = row
        self.matrix[row] = values
        self.norms[row] = math.sqrt(float(values @ values))
        self.starts[row] = (start - _EPOCH).total_seconds()

    def _grow(self, dim: int) -> None:
        capacity = max(16, 2 * len(self.norms))
        matrix = np.zeros((capacity, dim))
        if self.ids:
            matrix[: len(self.ids)] = self.matrix[: len(self.ids)]
        self.matrix = matrix
        self.norms = np.resize(self.norms, capacity)
        self.starts = np.resize(self.starts, capacity)

    def most_similar(self, similarities: NDArray[np.float64], rows: list[int]) -> int:
        """The row of ``rows`` most similar; ties go to the oldest, then the smallest id, the
        same way on every replica and replay."""
        return min(rows, key=lambda row: (-similarities[row], self.starts[row], self.ids[row]))

    def similarities(self, vector: Quantized) -> NDArray[np.float64]:
        """Cosine of ``vector`` with every stored centroid, in row order."""
        count = len(self.ids)
        values = vector.astype(np.float64)
        norm = math.sqrt(float(values @ values))
        dots = self.matrix[:count] @ values
        norms = self.norms[:count] * norm
        return np.divide(dots, norms, out=np.zeros(count), where=norms > 0)


class ClusterIndex(_State):
    """All clustering state. Serialize with ``model_dump(mode="json")``, load with ``model_validate``.

    It may also be kept per product (clusters and topics never span products) to keep rows small.
    """

    clusters: dict[str, Cluster] = Field(default_factory=dict)
    topics: dict[str, Topic] = Field(default_factory=dict)
    ticket_clusters: dict[str, str] = Field(default_factory=dict, description="ticket -> cluster")
    _cluster_tables: dict[tuple[str, int], _CentroidTable] | None = PrivateAttr(default=None)
    _topic_tables: dict[tuple[str, int], _CentroidTable] | None = PrivateAttr(default=None)

    def cluster_table(self, product: str, dim: int) -> _CentroidTable:
        if self._cluster_tables is None:
            self._cluster_tables = _search_tables(
                (c.cluster_id, c.product, c.centroid, c.first_seen_at)
                for c in self.clusters.values()
            )
        return self._cluster_tables.setdefault((product, dim), _CentroidTable())

    def topic_table(self, product: str, dim: int) -> _CentroidTable:
        if self._topic_tables is None:
            self._topic_tables = _search_tables(
                (t.topic_id, t.product, t.centroid, t.first_seen_at) for t in self.topics.values()
            )
        return self._topic_tables.setdefault((product, dim), _CentroidTable())

    def forget_search_tables(self) -> None:
        """Drop the derived matrices (after clusters or topics were removed)."""
        self._cluster_tables = None
        self._topic_tables = None

    def __eq__(self, other: object) -> bool:
        # The state, not the derived search matrices (built or not) that ride along with it.
        if not isinstance(other, ClusterIndex):
            return NotImplemented
        return (self.clusters, self.topics, self.ticket_clusters) == (
            other.clusters,
            other.topics,
            other.ticket_clusters,
        )


def _search_tables(
    entries: Iterable[tuple[str, str, bytes, datetime]],
) -> dict[tuple[str, int], _CentroidTable]:
    """Search matrices per (product, vector size) over (id, product, centroid, first seen)."""
    tables: dict[tuple[str, int], _CentroidTable] = {}
    for key, product, centroid, start in sorted(entries, key=lambda e: (e[3], e[0])):
        table = tables.setdefault((product, len(centroid) // 2), _CentroidTable())
        table.put(key, centroid, start)
    return tables


# ---------------------------------------------------------------------------------------------
# Assignment
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterAssignment:
    """What :func:`assign_to_cluster` decided, and what the handler must now do."""

    cluster_id: str
    topic_id: str
    info: ClusterInfo
    similarity: float
    is_new_cluster: bool
    already_member: bool
    surge_started: bool
    tickets_to_flag: tuple[str, ...]
    changed_cluster_ids: tuple[str, ...]
    changed_topic_ids: tuple[str, ...] = ()
    added_member: ClusterMember | None = None
    """The member this ticket added (``None`` when already a member or the cluster is full)."""
    surge: Detection | None = None
    """The MULTIPLE_SIMILAR_REPORTS detection, while the cluster surges."""

    @property
    def surging(self) -> bool:
        return self.info.surging


def assign_to_cluster(
    index: ClusterIndex,
    *,
    ticket_id: str,
    customer_id: str,
    occurred_at: datetime,
    product: str,
    vector: Vector | None,
    config: ClusterConfig = DEFAULT_CLUSTER_CONFIG,
) -> ClusterAssignment | None:
    """Put a problem report into its cluster (existing or new), mutating ``index``; detect surges.

    A ticket that is already a member (a follow-up event) stays where it is and changes nothing;
    one that is not and has no vector (not a problem report) takes no part: ``None``.
    """
    known = index.ticket_clusters.get(ticket_id)
    if known is not None and (member_of := index.clusters.get(known)) is not None:
        return ClusterAssignment(
            cluster_id=known,
            topic_id=member_of.topic_id,
            info=member_of.info(),
            similarity=1.0,
            is_new_cluster=False,
            already_member=True,
            surge_started=False,
            tickets_to_flag=(),
            changed_cluster_ids=(),
            surge=_surge_detection(member_of),
        )
    if vector is None:
        return None
    quantized = quantize(vector)
    if not quantized.any():
        return None  # an empty text's zero vector is similar to nothing
    key = product_key(product)

    cluster, similarity = _best_open_cluster(index, key, quantized, occurred_at, config)
    is_new = cluster is None
    if cluster is None:
        cluster, similarity = _start_cluster(index, key, quantized, ticket_id, occurred_at, config)
    else:
        cluster.centroid = _running_mean(cluster.centroid, quantized, cluster.size + 1)
    topic = index.topics[cluster.topic_id]
    member = ClusterMember(ticket_id=ticket_id, customer_id=customer_id, occurred_at=occurred_at)
    added = _add_member(index, cluster, member, config)
    index.cluster_table(key, len(quantized)).put(
        cluster.cluster_id, cluster.centroid, cluster.first_seen_at
    )
    _add_report(index, topic, quantized, occurred_at, config)
    tickets_to_flag = _judge_surge(cluster, topic, member, added, config)
    return ClusterAssignment(
        cluster_id=cluster.cluster_id,
        topic_id=topic.topic_id,
        info=cluster.info(),
        similarity=similarity,
        is_new_cluster=is_new,
        already_member=False,
        surge_started=tickets_to_flag is not None,
        tickets_to_flag=tickets_to_flag or (),
        changed_cluster_ids=(cluster.cluster_id,),
        changed_topic_ids=(topic.topic_id,),
        added_member=member if added else None,
        surge=_surge_detection(cluster),
    )


def _start_cluster(
    index: ClusterIndex,
    product: str,
    vector: Quantized,
    ticket_id: str,
    occurred_at: datetime,
    config: ClusterConfig,
) -> tuple[Cluster, float]:
    """A new cluster for ``ticket_id``, in the topic it recurs as (or a new topic)."""
    topic = _topic_for(index, product, vector, ticket_id, occurred_at, config)
    cluster = Cluster(
        cluster_id=cluster_id_for(product, ticket_id),
        product=product,
        topic_id=topic.topic_id,
        first_ticket_id=ticket_id,
        first_seen_at=occurred_at,
        last_seen_at=occurred_at,
        centroid=vector.tobytes(),
    )
    if cluster.cluster_id in index.clusters:  # a pruned-and-reused id: start it afresh
        index.forget_search_tables()
    index.clusters[cluster.cluster_id] = cluster
    return cluster, 1.0


def _add_member(
    index: ClusterIndex, cluster: Cluster, member: ClusterMember, config: ClusterConfig
) -> bool:
    """Count ``member`` into ``cluster``; whether it was kept in the member list (not full)."""
    cluster.size += 1
    cluster.first_seen_at = min(cluster.first_seen_at, member.occurred_at)
    cluster.last_seen_at = max(cluster.last_seen_at, member.occurred_at)
    if member.customer_id not in cluster.customer_ids:
        bisect.insort(cluster.customer_ids, member.customer_id)
    index.ticket_clusters[member.ticket_id] = cluster.cluster_id
    if len(cluster.members) >= config.max_members:
        return False
    bisect.insort(cluster.members, member, key=_member_order)
    return True


def _judge_surge(
    cluster: Cluster, topic: Topic, member: ClusterMember, added: bool, config: ClusterConfig
) -> tuple[str, ...] | None:
    """Record the busiest window ``member`` is in on its topic and latch the cluster's surge
    when that window is one; the earlier members to flag when the surge starts now, else
    ``None``."""
    members = cluster.members
    if not added:  # a full member list: count the new ticket all the same
        members = sorted([*members, member], key=_member_order)
    in_window = _busiest_window(members, member.occurred_at, config.surge_window)
    if _advance_period(topic, member.occurred_at, config):
        topic.bucket_peak = max(topic.bucket_peak, in_window)
    if cluster.surging or in_window < config.surge_customers:
        return None
    tail = poisson_tail(in_window, max(topic.baseline, config.baseline_floor))
    if topic.baseline > config.baseline_floor and tail >= config.surge_tail_probability:
        return None
    cluster.surging = True
    cluster.surging_since = member.occurred_at
    cluster.surge_evidence = _surge_evidence(cluster, topic, in_window, tail, config)
    return tuple(
        dict.fromkeys(m.ticket_id for m in cluster.members if m.ticket_id != member.ticket_id)
    )


def _member_order(member: ClusterMember) -> tuple[datetime, str]:
    return (member.occurred_at, member.ticket_id)


def _best_open_cluster(
    index: ClusterIndex,
    product: str,
    vector: Quantized,
    occurred_at: datetime,
    config: ClusterConfig,
) -> tuple[Cluster | None, float]:
    """The most similar cluster of ``product`` still open at ``occurred_at`` and at the
    threshold; ties go to the oldest cluster, the same way on every replica and replay."""
    table = index.cluster_table(product, len(vector))
    if not table.ids:
        return None, 0.0
    similarities = table.similarities(vector)
    moment = (occurred_at - _EPOCH).total_seconds()
    reach = config.join_window.total_seconds()
    starts = table.starts[: len(table.ids)]
    eligible = np.flatnonzero(
        (similarities >= config.similarity_threshold) & (np.abs(moment - starts) <= reach)
    )
    if not len(eligible):
        return None, 0.0
    best = table.most_similar(similarities, [int(row) for row in eligible])
    return index.clusters[table.ids[best]], float(similarities[best])


def _topic_for(
    index: ClusterIndex,
    product: str,
    vector: Quantized,
    ticket_id: str,
    occurred_at: datetime,
    config: ClusterConfig,
) -> Topic:
    """The recurring topic a new cluster belongs to: the most similar one, or a new one."""
    table = index.topic_table(product, len(vector))
    if table.ids:
        similarities = table.similarities(vector)
        eligible = [
            int(row)
            for row in np.flatnonzero(similarities >= config.similarity_threshold)
            if topic_is_live(index.topics[table.ids[row]], occurred_at, config)
        ]
        if eligible:
            return index.topics[table.ids[table.most_similar(similarities, eligible)]]
    topic = Topic(
        topic_id=topic_id_for(product, ticket_id),
        product=product,
        first_seen_at=occurred_at,
        last_seen_at=occurred_at,
        centroid=vector.tobytes(),
        bucket_start=_period_start(occurred_at, config),
    )
    if topic.topic_id in index.topics:
        index.forget_search_tables()
    index.topics[topic.topic_id] = topic
    return topic


def _add_report(
    index: ClusterIndex,
    topic: Topic,
    vector: Quantized,
    occurred_at: datetime,
    config: ClusterConfig,
) -> None:
    topic.reports += 1
    if topic.reports > 1:  # a new topic starts at its first report's vector
        topic.centroid = _running_mean(topic.centroid, vector, topic.reports)
    topic.first_seen_at = min(topic.first_seen_at, occurred_at)
    topic.last_seen_at = max(topic.last_seen_at, occurred_at)
    index.topic_table(topic.product, len(vector)).put(
        topic.topic_id, topic.centroid, topic.first_seen_at
    )


def _period_start(moment: datetime, config: ClusterConfig) -> datetime:
    period = config.baseline_bucket
    return _EPOCH + ((moment - _EPOCH) // period) * period


def _advance_period(topic: Topic, occurred_at: datetime, config: ClusterConfig) -> bool:
    """Close the topic's period (and any empty ones after it) into its baseline when
    ``occurred_at`` is past it; whether ``occurred_at`` is in the (now) current period. Late
    reports are counted nowhere: the baseline moves forward only."""
    period = _period_start(occurred_at, config)
    if period > topic.bucket_start:
        topic.baseline, closed = _closed_baseline(topic, period, config)
        topic.periods_observed += closed
        topic.bucket_start = period
        topic.bucket_peak = 0
    return period == topic.bucket_start


def _closed_baseline(topic: Topic, period: datetime, config: ClusterConfig) -> tuple[float, int]:
    """The topic's baseline once every period before ``period`` is closed, and how many that
    closes (at least one: ``period`` is past the topic's current one)."""
    alpha = config.baseline_alpha
    closed = (period - topic.bucket_start) // config.baseline_bucket
    if topic.periods_observed == 0:
        baseline = float(topic.bucket_peak)  # the first period is all it knows
    else:
        baseline = alpha * topic.bucket_peak + (1 - alpha) * topic.baseline
    return baseline * (1 - alpha) ** (closed - 1), closed


def topic_is_live(topic: Topic, at: datetime, config: ClusterConfig) -> bool:
    """Whether a new cluster at ``at`` may still belong to ``topic``: reported within
    ``topic_retention``, and either within the join window or with a baseline above the floor.
    A topic whose baseline has decayed to the floor tells a surge nothing a new topic would not,
    so it ends there; this depends on event time alone, so when pruning removes it from the
    state changes no decision."""
    idle = at - topic.last_seen_at
    if idle > config.topic_retention:
        return False
    if idle <= config.join_window:
        return True
    period = _period_start(at, config)
    if period <= topic.bucket_start:
        return True
    return _closed_baseline(topic, period, config)[0] > config.baseline_floor


def _busiest_window(members: list[ClusterMember], at: datetime, window: timedelta) -> int:
    """Most distinct customers in one ``window`` of event time that holds ``at`` (members sorted
    by event time, the ticket at ``at`` among them)."""
    low = bisect.bisect_left(members, at - window, key=_member_time)
    high = bisect.bisect_right(members, at + window, key=_member_time)
    nearby = members[low:high]
    in_window: Counter[str] = Counter()
    start = 0
    best = 0
    for member in nearby:  # a window ends at each member; those ending at or after ``at`` hold it
        in_window[member.customer_id] += 1
        while member.occurred_at - nearby[start].occurred_at > window:
            leaving = nearby[start].customer_id
            in_window[leaving] -= 1
            if not in_window[leaving]:
                del in_window[leaving]
            start += 1
        if member.occurred_at >= at:
            best = max(best, len(in_window))
    return best


def _member_time(member: ClusterMember) -> datetime:
    return member.occurred_at


def _surge_evidence(
    cluster: Cluster, topic: Topic, in_window: int, tail: float, config: ClusterConfig
) -> str:
    minutes = int(config.surge_window.total_seconds() // 60)
    if topic.periods_observed:
        hours = config.baseline_bucket.total_seconds() / 3600
        period = "day" if hours == 24 else f"{hours:g} h"
        history = (
            f"its topic's busiest {minutes} minutes of a {period} usually hold"
            f" {topic.baseline:.1f} customers (EWMA over {topic.periods_observed} periods)"
        )
    else:
        history = "a problem with no history on this product"
    return (
        f"cluster {cluster.cluster_id}: {in_window} distinct customers within {minutes} minutes,"
        f" {history}; P(X>={in_window}) = {tail:.2g} < {config.surge_tail_probability:g}"
    )


def _surge_detection(cluster: Cluster) -> Detection | None:
    if not cluster.surging or cluster.surge_evidence is None:
        return None
    return Detection(
        indicator=Indicator.MULTIPLE_SIMILAR_REPORTS,
        rule_id="cluster.surge",
        evidence=cluster.surge_evidence,
        confidence=0.9,
    )


# ---------------------------------------------------------------------------------------------
# Pruning
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pruned:
    clusters: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.clusters or self.topics)


def prune(
    index: ClusterIndex,
    *,
    older_than: datetime,
    at: datetime,
    config: ClusterConfig = DEFAULT_CLUSTER_CONFIG,
) -> Pruned:
    """Drop clusters whose latest ticket is before ``older_than`` and topics no longer live at
    ``at`` (:func:`topic_is_live`; never one a remaining cluster belongs to).

    The caller chooses the horizon (the latest event time minus the cluster retention) and
    ``at`` (the latest event time); pruning is what keeps the persisted state bounded.
    """
    clusters = sorted(cid for cid, c in index.clusters.items() if c.last_seen_at < older_than)
    for cluster_id in clusters:
        del index.clusters[cluster_id]
    if clusters:
        gone = set(clusters)
        index.ticket_clusters = {t: c for t, c in index.ticket_clusters.items() if c not in gone}
    referenced = {cluster.topic_id for cluster in index.clusters.values()}
    topics = sorted(
        tid
        for tid, topic in index.topics.items()
        if tid not in referenced and not topic_is_live(topic, at, config)
    )
    for topic_id in topics:
        del index.topics[topic_id]
    pruned = Pruned(clusters, topics)
    if pruned:
        index.forget_search_tables()
    return pruned
