"""The live Customer Support Risk Dashboard: figures, consumer lag, and the self-updating page.

The figures are recomputed by one background task every ``dashboard.refresh_seconds`` (not per
request, so any number of open pages costs the database the same) and served as JSON at
``/v1/dashboard.json``; ``/dashboard`` is a static page whose script polls that JSON.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from riskrelay.reporting.model import Output
from riskrelay.reporting.periods import Period
from riskrelay.reporting.reports import LEVELS_DESCENDING, escalation_item, level_label
from riskrelay.reporting.store import DashboardInputs, DeadLetterCount
from riskrelay.shared.kafka import aiokafka_client_options, true_end_offsets
from riskrelay.shared.logging import get_logger
from riskrelay.shared.settings import KafkaSettings

log = get_logger(__name__)


class LevelFigure(Output):
    level: int
    label: str
    open_risks: int
    escalations_due: int
    escalations_overdue: int
    acknowledged_7d: int
    median_ack_minutes_7d: float | None
    p90_ack_minutes_7d: float | None


class ChannelFigure(Output):
    channel: str
    tickets: int
    flagged: int
    flag_rate: float | None


class ClusterFigure(Output):
    cluster_id: str
    title: str
    size: int
    distinct_customers: int
    surging: bool
    product: str
    first_seen_at: datetime
    last_flagged_at: datetime
    risk_id: str | None
    level: int | None


class DeadLetterConsumer(Output):
    """One consumer group's share of a topic's dead letters (``unknown``: not in the headers)."""

    consumer_group: str
    records: int
    last_failed_at: datetime | None


class DeadLetterFigure(Output):
    """Source records of one topic that were dead-lettered, each counted once; ``dead_letters``
    is how many dead-letter records stand for them (one per consumer that gave up, or more)."""

    topic: str
    records: int
    dead_letters: int
    last_failed_at: datetime | None
    consumers: list[DeadLetterConsumer]


class TopicLag(Output):
    topic: str
    lag: int


class ConsumerLag(Output):
    group: str
    scope: str = "reporting's own consumer group (records not yet applied to its read model)"
    available: bool
    total: int | None
    topics: list[TopicLag]
    measured_at: datetime | None
    error: str | None = None


class DashboardView(Output):
    generated_at: datetime
    window_hours: int
    refresh_seconds: float
    open_risks_total: int
    escalations_due_total: int
    escalations_overdue_total: int
    flagged_in_window: int
    levels: list[LevelFigure]
    flag_rate: list[ChannelFigure]
    clusters: list[ClusterFigure]
    dead_letters: list[DeadLetterFigure]
    dead_letters_total: int
    consumer_lag: ConsumerLag
    read_model_updated_at: datetime | None


def ack_window(now: datetime) -> Period:
    return Period("last 7 days", now - timedelta(days=7), now + timedelta(microseconds=1))


def dashboard_view(
    inputs: DashboardInputs,
    lag: ConsumerLag,
    now: datetime,
    window_hours: int,
    refresh_seconds: float,
    read_model_updated_at: datetime | None,
) -> DashboardView:
    """Pure: the dashboard's figures from the aggregated rows."""
    acks = {row.level: escalation_item(row) for row in inputs.time_to_ack if row.level}
    levels = []
    for level in LEVELS_DESCENDING:
        due, overdue = inputs.escalations.get(level, (0, 0))
        ack = acks.get(level)
        levels.append(
            LevelFigure(
                level=level,
                label=level_label(level),
                open_risks=inputs.open_by_level.get(level, 0),
                escalations_due=due,
                escalations_overdue=overdue,
                acknowledged_7d=ack.acknowledged if ack else 0,
                median_ack_minutes_7d=ack.median_ack_minutes if ack else None,
                p90_ack_minutes_7d=ack.p90_ack_minutes if ack else None,
            )
        )
    channels = [
        ChannelFigure(
            channel=channel,
            tickets=tickets,
            flagged=flagged,
            flag_rate=round(flagged / tickets, 4) if tickets else None,
        )
        for channel, tickets, flagged in inputs.flag_rate
    ]
    dead = dead_letter_figures(inputs.dead_letters)
    return DashboardView(
        generated_at=now,
        window_hours=window_hours,
        refresh_seconds=refresh_seconds,
        open_risks_total=sum(f.open_risks for f in levels),
        escalations_due_total=sum(f.escalations_due for f in levels),
        escalations_overdue_total=sum(f.escalations_overdue for f in levels),
        flagged_in_window=inputs.flagged_in_window,
        levels=levels,
        flag_rate=channels,
        clusters=[cluster_figure(row) for row in inputs.clusters],
        dead_letters=dead,
        dead_letters_total=sum(d.records for d in dead),
        consumer_lag=lag,
        read_model_updated_at=read_model_updated_at,
    )


def cluster_title(risk_title: str | None, product: str) -> str:
    """A cluster by its risk's title; one the classifier has not turned into a risk yet by its
    product (never by ticket text: the dashboard may be served without a sign-in)."""
    return risk_title or f"Unclassified reports about {product}"


def cluster_figure(row: dict[str, Any]) -> ClusterFigure:
    fields = {key: value for key, value in row.items() if key != "title"}
    return ClusterFigure(**fields, title=cluster_title(row.get("title"), row["product"]))


UNKNOWN_CONSUMER = "unknown"


def dead_letter_figures(rows: list[DeadLetterCount]) -> list[DeadLetterFigure]:
    """Per topic: source records once, with each consumer group's count as the detail."""
    consumers: dict[str, list[DeadLetterConsumer]] = {}
    for row in rows:
        if row.per_consumer:
            consumers.setdefault(row.source_topic, []).append(
                DeadLetterConsumer(
                    consumer_group=row.consumer_group or UNKNOWN_CONSUMER,
                    records=row.records,
                    last_failed_at=row.last_failed_at,
                )
            )
    return [
        DeadLetterFigure(
            topic=row.source_topic,
            records=row.records,
            dead_letters=row.dead_letters,
            last_failed_at=row.last_failed_at,
            consumers=consumers.get(row.source_topic, []),
        )
        for row in rows
        if not row.per_consumer
    ]


@dataclass
class LagMonitor:
    """Measures this service's consumer lag: log end offsets minus the group's committed ones.

    Committed offsets are read by a consumer that carries the group id but never subscribes, so
    it does not join the group (no rebalance); the admin API's group-offsets call is avoided
    because not every Kafka-protocol broker (the embedded one) answers it compatibly.
    """

    kafka: KafkaSettings
    group: str
    topics: list[str]
    prefix: str = ""
    latest: ConsumerLag | None = None
    _consumer: AIOKafkaConsumer | None = field(default=None, repr=False)

    def unavailable(self, error: str | None = None) -> ConsumerLag:
        return ConsumerLag(
            group=self.group, available=False, total=None, topics=[], measured_at=None, error=error
        )

    async def _client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **aiokafka_client_options(self.kafka),
                group_id=self.group,
                enable_auto_commit=False,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def measure(self, now: datetime) -> ConsumerLag:
        consumer = await self._client()
        partitions: list[TopicPartition] = []
        for topic in self.topics:
            found = consumer.partitions_for_topic(topic)
            if not found:
                await consumer._client.force_metadata_update()
                found = consumer.partitions_for_topic(topic) or set()
            partitions.extend(TopicPartition(topic, p) for p in sorted(found))
        ends = await true_end_offsets(consumer, partitions) if partitions else {}
        per_topic: dict[str, int] = {}
        for partition, end in ends.items():
            position = await consumer.committed(partition) or 0
            name = partition.topic.removeprefix(self.prefix)
            per_topic[name] = per_topic.get(name, 0) + max(0, end - position)
        topics = [TopicLag(topic=t, lag=n) for t, n in sorted(per_topic.items())]
        return ConsumerLag(
            group=self.group,
            available=True,
            total=sum(t.lag for t in topics),
            topics=topics,
            measured_at=now,
        )

    async def close(self) -> None:
        if self._consumer is not None:
            try:
                await self._consumer.stop()
            except Exception as error:  # closing must not mask the reason we stopped
                log.warning("closing lag monitor consumer failed", error=str(error))
        self._consumer = None

    async def refresh(self, now: datetime) -> ConsumerLag:
        try:
            async with asyncio.timeout(20):
                self.latest = await self.measure(now)
        except Exception as error:
            log.warning("consumer lag unavailable", error=f"{type(error).__name__}: {error}")
            await self.close()
            self.latest = self.unavailable(f"{type(error).__name__}")
        return self.latest
