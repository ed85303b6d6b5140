"""Broker-facing commands: publish ticket events, tail a topic, replay dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from riskrelay.shared.events import TicketEvent
from riskrelay.shared.kafka import describe_error, true_end_offsets
from riskrelay.shared.topics import DLQ_SUFFIX


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


async def publish_lines(
    bootstrap: str,
    topic: str,
    lines: list[ParsedLine],
    on_progress: Callable[[int], None] = lambda n: None,
    chunk: int = 500,
) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        for start in range(0, len(lines), chunk):
            part = lines[start : start + chunk]
            futures = [await producer.send(topic, value=p.value, key=p.key) for p in part]
            await asyncio.gather(*futures)
            on_progress(len(part))
    finally:
        await producer.stop()
    return len(lines)


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
    await consumer.start()
    seen = 0
    try:
        async for record in consumer:
            on_record(record)
            seen += 1
            if limit is not None and seen >= limit:
                break
    finally:
        await consumer.stop()
    return seen


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
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    seen = sent = 0
    try:
        deadline = asyncio.get_running_loop().time() + assignment_timeout
        while not consumer.assignment():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"no partitions of {dlq} assigned after {assignment_timeout:.0f} s"
                )
            await consumer.getmany(timeout_ms=100)  # drives the group join
        partitions = list(consumer.assignment())
        probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await probe.start()
        try:
            end_offsets = await true_end_offsets(probe, partitions)
        finally:
            await probe.stop()
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
    finally:
        await producer.stop()
        await consumer.stop()
    return seen, sent


def read_jsonl(path: Path) -> list[str]:
    return path.read_text().splitlines()


def pretty(record: ConsumerRecord[bytes, bytes]) -> str:
    try:
        body = json.dumps(json.loads(record.value or b"null"), indent=2)
    except json.JSONDecodeError:
        body = repr(record.value)
    return body
