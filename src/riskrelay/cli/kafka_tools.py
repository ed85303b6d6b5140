"""Broker-facing commands: publish ticket events, tail a topic, replay dead letters, wait for
the pipeline to settle."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError

from riskrelay.shared.events import TicketEvent
from riskrelay.shared.kafka import describe_error, true_end_offsets
from riskrelay.shared.topics import ALL_TOPICS, DLQ_SUFFIX, topic_name

Client = TypeVar("Client", AIOKafkaProducer, AIOKafkaConsumer)


class BrokerError(Exception):
    """A request to the broker at ``bootstrap`` failed; the message is one line for the user."""

    def __init__(self, bootstrap: str, message: str) -> None:
        self.bootstrap = bootstrap
        super().__init__(message)


class BrokerUnavailableError(BrokerError):
    """The broker at ``bootstrap`` did not answer."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(
            bootstrap,
            f"cannot reach the Kafka broker at {bootstrap} (is `riskrelay dev up` running?"
            " pass --bootstrap or set RISKRELAY_KAFKA_BOOTSTRAP)",
        )


def quiet_client_logs() -> None:
    """aiokafka logs every failed connection attempt; the commands report the outcome once."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@contextlib.asynccontextmanager
async def started(client: Client, bootstrap: str) -> AsyncIterator[Client]:
    """``client`` started and, whatever happens, stopped: a broker that cannot be reached is a
    :class:`BrokerUnavailableError`, and no client is left unclosed."""
    try:
        await client.start()
    except (KafkaError, OSError) as error:
        await client.stop()
        raise BrokerUnavailableError(bootstrap) from error
    try:
        yield client
    except KafkaConnectionError as error:
        raise BrokerUnavailableError(bootstrap) from error
    except KafkaError as error:
        message = f"the Kafka broker at {bootstrap} failed a request: {describe_error(error)}"
        raise BrokerError(bootstrap, message) from error
    finally:
        await client.stop()


@dataclass(frozen=True)
class InvalidLine:
    line_number: int
    reason: str


@dataclass(frozen=True)
class ParsedLine:
    line_number: int
    key: bytes | None
    value: bytes


def parse_ticket_lines(lines: Iterable[str]) -> tuple[list[ParsedLine], list[InvalidLine]]:
    """Validate JSONL ticket events against the upstream contract, keeping line numbers."""
    valid: list[ParsedLine] = []
    invalid: list[InvalidLine] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            event = TicketEvent.model_validate_json(text)
        except ValidationError as error:
            invalid.append(InvalidLine(number, describe_error(error)))
            continue
        valid.append(ParsedLine(number, event.data.ticket_id.encode(), text.encode()))
    return valid, invalid


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")


async def send_lines(
    producer: AIOKafkaProducer,
    topic: str,
    lines: list[ParsedLine],
    on_progress: Callable[[int], None] = lambda n: None,
    chunk: int = 500,
) -> int:
    for start in range(0, len(lines), chunk):
        part = lines[start : start + chunk]
        futures = [await producer.send(topic, value=p.value, key=p.key) for p in part]
        await asyncio.gather(*futures)
        on_progress(len(part))
    return len(lines)


async def publish_lines(
    bootstrap: str,
    topic: str,
    lines: list[ParsedLine],
    on_progress: Callable[[int], None] = lambda n: None,
) -> int:
    async with started(producer(bootstrap), bootstrap) as connected:
        return await send_lines(connected, topic, lines, on_progress)


async def tail_topic(
    bootstrap: str,
    topic: str,
    on_record: Callable[[ConsumerRecord[bytes, bytes]], None],
    from_beginning: bool,
    limit: int | None = None,
) -> int:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    seen = 0
    async with started(consumer, bootstrap):
        async for record in consumer:
            on_record(record)
            seen += 1
            if limit is not None and seen >= limit:
                break
    return seen


# Kafka's record timestamp types (ConsumerRecord.timestamp_type).
LOG_APPEND_TIME = 1


def _format_span(span: timedelta) -> str:
    seconds = int(abs(span).total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{seconds} s"


def event_time(value: bytes | None) -> datetime | None:
    """The CloudEvent ``time`` of a record's value, when it is an event that has one."""
    try:
        body = json.loads(value or b"null")
        stamp = body.get("time") if isinstance(body, dict) else None
        moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def record_times(value: bytes | None, timestamp_ms: int, timestamp_type: int = 0) -> str:
    """When a record's event happened and when it reached the broker, so a record that
    arrives now about an old event is not mistaken for an old record."""
    stamped = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    verb = "appended" if timestamp_type == LOG_APPEND_TIME else "arrived"
    arrived = f"{verb} {stamped.isoformat(timespec='milliseconds')}"
    happened = event_time(value)
    if happened is None:
        return f"event time -  {arrived}"
    shown = f"event {happened.astimezone(UTC).isoformat(timespec='seconds')}"
    gap = stamped - happened
    if abs(gap) < timedelta(minutes=1):
        return f"{shown}  {arrived}"
    relation = "after" if gap > timedelta(0) else "BEFORE"
    return f"{shown}  {arrived} ({_format_span(gap)} {relation} the event)"


@dataclass(frozen=True)
class DeadLetterView:
    partition: int
    offset: int
    key: str | None
    error: str
    source_topic: str
    value: bytes
    headers: list[tuple[str, bytes]]


def view_dead_letter(record: ConsumerRecord[bytes, bytes]) -> DeadLetterView:
    headers = [(k, bytes(v)) for k, v in record.headers or ()]
    found = dict(headers)
    return DeadLetterView(
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key else None,
        error=found.get("dlq_error", b"").decode(errors="replace"),
        source_topic=found.get("dlq_source_topic", b"").decode()
        or record.topic.removesuffix(DLQ_SUFFIX),
        value=record.value or b"",
        headers=[(k, v) for k, v in headers if not k.startswith("dlq_")],
    )


async def replay_dead_letters(
    bootstrap: str,
    topic: str,
    *,
    dry_run: bool,
    group_id: str = "riskrelay-dlq-replay",
    on_letter: Callable[[DeadLetterView, bool], None] = lambda v, sent: None,
    assignment_timeout: float = 30.0,
) -> tuple[int, int]:
    """Re-publish the dead letters of ``topic`` to their source topic, once.

    Reads up to the end offsets found at the start (letters arriving meanwhile wait for the
    next run). A consumer group remembers what was replayed, so running it twice sends nothing
    twice; a dry run reads without committing. Returns (dead letters seen, re-published).
    Records that still fail after the fix land in the dead-letter topic again.
    """
    dlq = topic if topic.endswith(DLQ_SUFFIX) else topic + DLQ_SUFFIX
    consumer = AIOKafkaConsumer(
        dlq,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
    )
    seen = sent = 0
    async with (
        started(consumer, bootstrap),
        started(AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all"), bootstrap) as producer,
    ):
        deadline = asyncio.get_running_loop().time() + assignment_timeout
        while not consumer.assignment():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"no partitions of {dlq} assigned after {assignment_timeout:.0f} s"
                )
            await consumer.getmany(timeout_ms=100)  # drives the group join
        partitions = list(consumer.assignment())
        probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        async with started(probe, bootstrap):
            end_offsets = await true_end_offsets(probe, partitions)
        while True:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= end_offsets[tp] for tp in partitions):
                break
            batch = await consumer.getmany(*partitions, timeout_ms=500)
            futures = []
            for records in batch.values():
                for record in records:
                    if record.offset >= end_offsets[TopicPartition(record.topic, record.partition)]:
                        continue
                    view = view_dead_letter(record)
                    seen += 1
                    if not dry_run:
                        origin = f"{dlq}@{record.partition}:{record.offset}".encode()
                        futures.append(
                            await producer.send(
                                view.source_topic,
                                value=view.value,
                                key=record.key,
                                headers=[*view.headers, ("dlq_replayed_from", origin)],
                            )
                        )
                        sent += 1
                    on_letter(view, not dry_run)
            if futures:
                await asyncio.gather(*futures)
            if not dry_run:
                await consumer.commit()
    return seen, sent


def read_jsonl(path: Path) -> list[str]:
    return path.read_text().splitlines()


def pretty(record: ConsumerRecord[bytes, bytes]) -> str:
    try:
        body = json.dumps(json.loads(record.value or b"null"), indent=2)
    except json.JSONDecodeError:
        body = repr(record.value)
    return body


@dataclass(frozen=True)
class PipelineProgress:
    """Records per topic (log end offsets summed) and records each consumer group has not
    committed yet, over the topics it consumes (those it committed an offset on)."""

    records: Mapping[str, int]
    lag: Mapping[str, int]

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())


async def _partitions(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()
    return [
        TopicPartition(topic, partition)
        for topic in topics
        for partition in sorted(consumer.partitions_for_topic(topic) or ())
    ]


async def pipeline_progress(
    probe: AIOKafkaConsumer,
    groups: Mapping[str, AIOKafkaConsumer],
    topics: Iterable[str],
    consumes: Mapping[str, Collection[str]] | None = None,
) -> PipelineProgress:
    """Records per topic and lag per group. A group's lag counts the topics it has committed on,
    and the topics ``consumes`` names for it even before its first commit (a service still busy
    with its first batch has lag, not none)."""
    partitions = await _partitions(probe, topics)
    ends = await true_end_offsets(probe, partitions) if partitions else {}
    records: dict[str, int] = {}
    for partition, end in ends.items():
        records[partition.topic] = records.get(partition.topic, 0) + end
    lag: dict[str, int] = {}
    for group, consumer in groups.items():
        committed = {tp: await consumer.committed(tp) for tp in partitions}
        consumed = {tp.topic for tp, offset in committed.items() if offset is not None}
        consumed.update((consumes or {}).get(group, ()))
        lag[group] = sum(
            max(0, end - (committed[tp] or 0)) for tp, end in ends.items() if tp.topic in consumed
        )
    return PipelineProgress(records, lag)


async def wait_until_settled(
    bootstrap: str,
    groups: Iterable[str],
    *,
    topic_prefix: str = "",
    timeout: float = 300.0,
    quiet_seconds: float = 3.0,
    poll_seconds: float = 1.0,
    consumes: Mapping[str, Collection[str]] | None = None,
) -> PipelineProgress:
    """Wait until every group has committed every record of the topics it consumes and no
    topic has grown for ``quiet_seconds``: what was published has gone through the pipeline."""
    topics = [topic_name(spec, topic_prefix) for spec in ALL_TOPICS]
    async with contextlib.AsyncExitStack() as stack:
        probe = await stack.enter_async_context(
            started(
                AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False), bootstrap
            )
        )
        readers = {
            group: await stack.enter_async_context(
                started(
                    AIOKafkaConsumer(
                        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
                    ),
                    bootstrap,
                )
            )
            for group in groups
        }
        deadline = time.monotonic() + timeout
        previous: PipelineProgress | None = None
        quiet_since = time.monotonic()
        while True:
            progress = await pipeline_progress(probe, readers, topics, consumes)
            if previous is None or progress.records != previous.records:
                quiet_since = time.monotonic()
            elif progress.total_lag == 0 and time.monotonic() - quiet_since >= quiet_seconds:
                return progress
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the pipeline did not settle in {timeout:.0f} s: {dict(progress.lag)}"
                )
            previous = progress
            await asyncio.sleep(poll_seconds)
