"""Kafka plumbing shared by every service: client security, the producer, and batch consumption.

Delivery is *at least once, effects exactly once*:

* a batch subscriber reads raw records (no per-message framework decoding);
* records that cannot be decoded go to the topic's dead-letter twin with the reason;
* the service's ``process`` function does its effects (idempotent by event id) and returns the
  events to publish;
* those events (and dead letters) are sent without waiting for each ack, then awaited together;
* only then does the handler return, and FastStream (``AckPolicy.NACK_ON_ERROR``) commits the
  consumer's position. An exception instead rewinds every partition of the batch to its first
  record, so the batch is delivered again.

A batch that keeps failing for a non-transient reason is split: records are processed one by one
and each one that still fails is dead-lettered with the error and attempt count, so one poison
record cannot stop a partition. Transient failures (database or broker unreachable) are retried
with backoff for as long as they last; nothing is dead-lettered because a dependency was down.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import ValidationError

from riskrelay.shared.envelope import CloudEvent
from riskrelay.shared.logging import get_logger
from riskrelay.shared.settings import KafkaSettings
from riskrelay.shared.topics import DLQ_SUFFIX
from riskrelay.shared.worker import WorkerLoop

log = get_logger(__name__)

EventT = TypeVar("EventT")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    KafkaError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


# ---------------------------------------------------------------------------------------------
# Client options
# ---------------------------------------------------------------------------------------------


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.ssl_certfile:
        context.load_cert_chain(
            str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
        )
    return context


def aiokafka_client_options(kafka: KafkaSettings) -> dict[str, Any]:
    """Connection and security options for raw aiokafka clients (producer, admin, consumer)."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "security_protocol": kafka.security_protocol,
    }
    context = _ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def faststream_security(kafka: KafkaSettings) -> BaseSecurity | None:
    """The same options, in FastStream's form (it also documents them in AsyncAPI)."""
    context = _ssl_context(kafka)
    use_ssl = context is not None
    username = kafka.sasl_username or ""
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else ""
    if kafka.sasl_mechanism == "PLAIN":
        return SASLPlaintext(username, password, ssl_context=context, use_ssl=use_ssl)
    if kafka.sasl_mechanism == "SCRAM-SHA-256":
        return SASLScram256(username, password, ssl_context=context, use_ssl=use_ssl)
    if kafka.sasl_mechanism == "SCRAM-SHA-512":
        return SASLScram512(username, password, ssl_context=context, use_ssl=use_ssl)
    if use_ssl:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None


def create_broker(
    kafka: KafkaSettings, client_id: str, middlewares: Sequence[Any] = ()
) -> KafkaBroker:
    return KafkaBroker(
        kafka.bootstrap,
        client_id=client_id,
        security=faststream_security(kafka),
        middlewares=tuple(middlewares),
        logger=None,
        # Handlers take the raw batch (see BatchConsumer.subscribe), so nothing is injected; with
        # injection on, FastDepends resolved the message annotation in a worker thread, a thread
        # hand-off for every batch.
        apply_types=False,
    )


# ---------------------------------------------------------------------------------------------
# Producing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingEvent:
    """An event to publish: physical topic, message key and the envelope."""

    topic: str
    key: str
    event: CloudEvent[Any]

    @cached_property
    def payload(self) -> bytes:
        """The serialized envelope, computed once (the outbox and the producer both need it)."""
        return self.event.to_json_bytes()

    @cached_property
    def headers(self) -> list[tuple[str, bytes]]:
        return self.event.kafka_headers()


class EventProducer:
    """One aiokafka producer per process: non-blocking sends, awaited once per batch.

    ``acks=all`` so an awaited send is durable on the broker. The idempotent producer is off
    on purpose: the embedded broker does not implement InitProducerId, and duplicates are already
    harmless because every event id is deterministic and consumers deduplicate by id.
    """

    def __init__(self, kafka: KafkaSettings, client_id: str) -> None:
        self._kafka = kafka
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            **aiokafka_client_options(self._kafka),
            client_id=self._client_id,
            acks="all",
            enable_idempotence=False,
            linger_ms=self._kafka.linger_ms,
            max_batch_size=256 * 1024,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def send_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[Any]:
        """Queue one record; the returned future resolves when the broker acknowledged it."""
        if self._producer is None:
            raise RuntimeError("producer not started")
        future: asyncio.Future[Any] = await self._producer.send(
            topic, value=value, key=key, headers=list(headers)
        )
        return future

    async def publish(self, events: Sequence[OutgoingEvent]) -> None:
        """Send all events and wait until the broker acknowledged every one."""
        futures = [
            await self.send_raw(
                item.topic,
                item.key.encode(),
                item.payload,
                item.headers,
            )
            for item in events
        ]
        if futures:
            await asyncio.gather(*futures)


TANSU_CLUSTER_ID = "tansu_cluster"
"""The cluster id tansu reports unless started with ``--cluster-id`` (riskrelay starts it so)."""

_exact_end_offsets: weakref.WeakKeyDictionary[AIOKafkaConsumer, bool] = weakref.WeakKeyDictionary()


async def broker_reports_exact_end_offsets(consumer: AIOKafkaConsumer) -> bool:
    """Whether the broker's ListOffsets(latest) answer is the partition's end, as Kafka
    documents (the high watermark). tansu (0.6) answers with the *base* offset of the
    partition's last record batch plus one instead, which falls short whenever that batch holds
    several records. tansu is recognised by the cluster id it reports; asked once per consumer.
    """
    known = _exact_end_offsets.get(consumer)
    if known is None:
        client = consumer._client
        response = await client.send(client.get_random_node(), MetadataRequest([]))
        known = response.to_object().get("cluster_id") != TANSU_CLUSTER_ID
        _exact_end_offsets[consumer] = known
    return known


async def true_end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], timeout: float = 15.0
) -> dict[TopicPartition, int]:
    """The offset after each partition's last record.

    On Kafka that is what ``end_offsets`` answers. On tansu (see
    :func:`broker_reports_exact_end_offsets`) a fetch from the reported offset minus one
    returns the partition's last batch with the broker's (correct) high watermark, so the true
    end is known; there this assigns ``consumer`` to ``partitions`` and moves its positions.
    """
    reported: dict[TopicPartition, int] = await consumer.end_offsets(list(partitions))
    ends = dict(reported)
    pending = {tp for tp in partitions if reported[tp] > 0}
    if not pending or await broker_reports_exact_end_offsets(consumer):
        return ends
    consumer.assign(list(partitions))
    for tp in pending:
        consumer.seek(tp, reported[tp] - 1)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=300, max_records=10_000)
        for tp, records in batch.items():
            if records:
                highwater = consumer.highwater(tp) or 0
                ends[tp] = max(ends[tp], records[-1].offset + 1, highwater)
                pending.discard(tp)
    if pending:
        raise TimeoutError(f"no end offset for {sorted(map(str, pending))}")
    return ends


# ---------------------------------------------------------------------------------------------
# Dead letters
# ---------------------------------------------------------------------------------------------


def describe_error(error: BaseException) -> str:
    """A one-paragraph reason for a dead letter: what failed and where, no stack trace."""
    if isinstance(error, ValidationError):
        parts = []
        for item in error.errors(include_url=False)[:10]:
            location = ".".join(str(p) for p in item["loc"]) or "(message)"
            received = item.get("input")
            # Never echo free text: an input string may be a customer's words or personal data,
            # and this reason goes to logs and dead-letter headers. Values of closed vocabularies
            # (event type, version, enums) are safe and are what an operator needs to see.
            vocabulary = item["type"] in ("literal_error", "enum")
            shown = (
                f" (got {received!r:.100})"
                if isinstance(received, int | float | bool)
                or (vocabulary and isinstance(received, str))
                else ""
            )
            parts.append(f"{location}: {item['msg']}{shown}")
        return "invalid event: " + "; ".join(parts)
    return f"{type(error).__name__}: {error}"[:2_000]


def dead_letter_headers(
    record: ConsumerRecord[bytes, bytes],
    error: str,
    attempts: int,
    consumer_group: str,
    failed_at: datetime,
) -> list[tuple[str, bytes]]:
    """The original headers plus what an operator needs to understand and replay the record."""
    original = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq_")]
    return [
        *original,
        ("dlq_error", error.encode()),
        ("dlq_source_topic", record.topic.encode()),
        ("dlq_source_partition", str(record.partition).encode()),
        ("dlq_source_offset", str(record.offset).encode()),
        ("dlq_attempts", str(attempts).encode()),
        ("dlq_consumer_group", consumer_group.encode()),
        ("dlq_failed_at", failed_at.isoformat().encode()),
    ]


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord[bytes, bytes]
    error: str
    attempts: int = 1


# ---------------------------------------------------------------------------------------------
# Consuming
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received(Generic[EventT]):
    """A decoded event with the record it came from."""

    event: EventT
    record: ConsumerRecord[bytes, bytes]


Decoder = Callable[[bytes], EventT]
Processor = Callable[[list[Received[EventT]]], Awaitable[list[OutgoingEvent]]]


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry
    consumed: Counter = field(init=False)
    lag: Gauge = field(init=False)
    dead_lettered: Counter = field(init=False)
    batch_seconds: Histogram = field(init=False)
    retries: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.consumed = Counter(
            "riskrelay_consumed_records_total",
            "Records consumed.",
            ["topic"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "riskrelay_dead_lettered_total",
            "Records sent to a dead-letter topic.",
            ["topic"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "riskrelay_batch_seconds",
            "Time to process one batch, publishes included.",
            ["topic"],
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.retries = Counter(
            "riskrelay_batch_retries_total",
            "Batches retried after an error.",
            ["topic", "kind"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "riskrelay_consumer_lag_records",
            "Records behind the partition end after the last batch, summed over the partitions"
            " this instance owns.",
            ["topic"],
            registry=self.registry,
        )

    def observe_lag(self, consumer: Any, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Lag per topic from the consumer's high-water marks (best effort, never raises)."""
        latest: dict[tuple[str, int], int] = {}
        for record in records:
            key = (record.topic, record.partition)
            latest[key] = max(latest.get(key, -1), record.offset)
        per_topic: dict[str, int] = {}
        for (topic, partition), offset in latest.items():
            try:
                highwater = consumer.highwater(TopicPartition(topic, partition))
            except Exception:
                continue
            if highwater is not None:
                per_topic[topic] = per_topic.get(topic, 0) + max(highwater - offset - 1, 0)
        for topic, lag in per_topic.items():
            self.lag.labels(topic).set(lag)


@dataclass(frozen=True)
class TopicRoute(Generic[EventT]):
    """How one input topic is decoded and applied."""

    topic: str
    decode: Decoder[EventT]
    process: Processor[EventT]
    decode_on: WorkerLoop | None = None
    """Where the batch's records are decoded when decoding costs CPU (see
    :mod:`riskrelay.shared.worker`); by default on the consumer's loop."""


class BatchConsumer:
    """Consumes a service's input topics in batches: at-least-once delivery, dead-lettering.

    One consumer (one group member) per service process reads all of its topics, so a service
    joins its group once instead of once per topic; records are dispatched by topic.
    """

    def __init__(
        self,
        *,
        routes: Sequence[TopicRoute[Any]],
        producer: EventProducer,
        metrics: ConsumerMetrics,
        consumer_group: str,
        max_attempts: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        backoff_seconds: Callable[[int], float] = lambda attempt: min(0.2 * 2**attempt, 10.0),
        on_published: Callable[[list[OutgoingEvent]], None] | None = None,
    ) -> None:
        self.routes = {route.topic: route for route in routes}
        self._on_published = on_published
        self._producer = producer
        self._metrics = metrics
        self._group = consumer_group
        self._max_attempts = max_attempts
        self._clock = clock
        self._backoff = backoff_seconds
        self._attempts: dict[tuple[str, int, int], int] = {}

    @property
    def topics(self) -> list[str]:
        return list(self.routes)

    async def handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Process one batch; raising makes FastStream rewind and redeliver it."""
        if not records:
            return
        started = time.perf_counter()
        batch_key = (records[0].topic, records[0].partition, records[0].offset)
        attempt = self._attempts.get(batch_key, 0) + 1
        try:
            if attempt > self._max_attempts:
                await self._process_one_by_one(records, attempt)
            else:
                await self._process_batch(records)
        except TRANSIENT_ERRORS as error:
            self._metrics.retries.labels(batch_key[0], "transient").inc()
            log.warning("transient failure, batch will be redelivered", error=describe_error(error))
            await asyncio.sleep(self._backoff(min(attempt, 6)))
            raise
        except Exception as error:
            self._attempts[batch_key] = attempt
            self._metrics.retries.labels(batch_key[0], "error").inc()
            log.error(
                "batch failed, will be redelivered",
                error=describe_error(error),
                attempt=attempt,
                trace=traceback.format_exc(limit=5),
            )
            await asyncio.sleep(self._backoff(attempt))
            raise
        self._attempts.pop(batch_key, None)
        elapsed = time.perf_counter() - started
        for topic, group in self._by_topic(records).items():
            self._metrics.consumed.labels(topic).inc(len(group))
        self._metrics.batch_seconds.labels(batch_key[0]).observe(elapsed)

    @staticmethod
    def _by_topic(
        records: Sequence[ConsumerRecord[bytes, bytes]],
    ) -> dict[str, list[ConsumerRecord[bytes, bytes]]]:
        grouped: dict[str, list[ConsumerRecord[bytes, bytes]]] = {}
        for record in records:
            grouped.setdefault(record.topic, []).append(record)
        return grouped

    async def _decode_all(
        self, route: TopicRoute[Any], records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[Received[Any]], list[DeadLetter]]:
        if route.decode_on is None:
            return self._decode_here(route, records)
        return await route.decode_on.call(lambda: self._decode_here(route, records))

    @staticmethod
    def _decode_here(
        route: TopicRoute[Any], records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[Received[Any]], list[DeadLetter]]:
        received: list[Received[Any]] = []
        dead: list[DeadLetter] = []
        for record in records:
            if record.value is None:
                dead.append(DeadLetter(record, "empty message value (tombstone) is not an event"))
                continue
            try:
                received.append(Received(route.decode(record.value), record))
            except (ValidationError, ValueError) as error:
                dead.append(DeadLetter(record, describe_error(error)))
        return received, dead

    async def _process_batch(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        outgoing: list[OutgoingEvent] = []
        dead: list[DeadLetter] = []
        for topic, group in self._by_topic(records).items():
            route = self.routes[topic]
            received, rejected = await self._decode_all(route, group)
            dead.extend(rejected)
            if received:
                outgoing.extend(await route.process(received))
        await self._emit(outgoing, dead)

    async def _process_one_by_one(
        self, records: Sequence[ConsumerRecord[bytes, bytes]], attempt: int
    ) -> None:
        outgoing: list[OutgoingEvent] = []
        dead: list[DeadLetter] = []
        for topic, group in self._by_topic(records).items():
            route = self.routes[topic]
            received, rejected = await self._decode_all(route, group)
            dead.extend(rejected)
            for item in received:
                try:
                    outgoing.extend(await route.process([item]))
                except TRANSIENT_ERRORS:
                    raise
                except Exception as error:
                    log.error("record keeps failing, dead-lettered", error=describe_error(error))
                    dead.append(DeadLetter(item.record, describe_error(error), attempt))
        await self._emit(outgoing, dead)

    async def _emit(self, outgoing: list[OutgoingEvent], dead: list[DeadLetter]) -> None:
        now = self._clock()
        futures = []
        for letter in dead:
            record = letter.record
            futures.append(
                await self._producer.send_raw(
                    record.topic + DLQ_SUFFIX,
                    record.key,
                    record.value or b"",
                    dead_letter_headers(record, letter.error, letter.attempts, self._group, now),
                )
            )
            self._metrics.dead_lettered.labels(record.topic).inc()
            log.warning(
                "dead-lettered",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                error=letter.error,
            )
        for item in outgoing:
            futures.append(
                await self._producer.send_raw(
                    item.topic,
                    item.key.encode(),
                    item.payload,
                    item.headers,
                )
            )
        if futures:
            await asyncio.gather(*futures)
        if outgoing and self._on_published is not None:
            self._on_published(outgoing)

    def subscribe(self, broker: KafkaBroker, kafka: KafkaSettings) -> None:
        """Register this consumer as a FastStream batch subscriber on ``broker``."""

        async def the_message_itself(message: KafkaMessage) -> KafkaMessage:
            return message  # records are decoded by the routes, not by the framework

        async def on_batch(message: KafkaMessage) -> None:
            raw = message.raw_message
            records = raw if isinstance(raw, tuple) else (raw,)
            await self.handle(records)
            self._metrics.observe_lag(getattr(message, "consumer", None), records)

        broker.subscriber(
            *self.topics,
            batch=True,
            group_id=self._group,
            auto_offset_reset="earliest",
            max_records=kafka.batch_max_records,
            batch_timeout_ms=kafka.batch_timeout_ms,
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            fetch_min_bytes=kafka.fetch_min_bytes,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=the_message_itself,
            title=f"{self._group}:{','.join(self.topics)}",
        )(on_batch)
