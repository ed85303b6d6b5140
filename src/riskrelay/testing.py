"""Helpers for tests and benchmarks that talk to a real broker: run an app, read a topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

from riskrelay.shared.topics import TopicSpec, ensure_topics


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run a service app's lifespan (broker, database, background tasks) in this event loop."""
    async with app.router.lifespan_context(app):
        yield app


async def create_topics(bootstrap: str, specs: Iterable[TopicSpec], prefix: str = "") -> None:
    """Create topics the way the services' start-up does (``ensure_topics``), for a test that
    produces before any service ran: Apache Kafka, as deployed, creates no topic on first use."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await ensure_topics(admin, specs, prefix)
    finally:
        await admin.close()


async def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes]],
    headers: Sequence[tuple[str, bytes]] = (),
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=list(headers))
            for key, value in records
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expected: int | None = None,
    timeout: float = 20.0,
    settle: float = 1.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning without a consumer group.

    Stops when ``expected`` records arrived (then waits ``settle`` seconds more to catch
    extras, so a test can assert *exactly* N), or when ``timeout`` passes.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = None
        deadline = time.monotonic() + timeout
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
        if not partitions:
            return []
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        records: list[ConsumerRecord[bytes, bytes]] = []
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if now >= deadline or (settle_until is not None and now >= settle_until):
                break
            batch = await consumer.getmany(timeout_ms=100)
            for items in batch.values():
                records.extend(items)
            if expected is not None and settle_until is None and len(records) >= expected:
                settle_until = time.monotonic() + settle
        return records
    finally:
        await consumer.stop()


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Wait until ``check()`` is true; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)
