"""Rebuild the Risk Register from the ``risk-registered`` topic alone.

Every change publishes the entry's full state, keyed by risk id, so the latest version of each
risk on the topic *is* the register. Reading from the start keeps, per risk, the highest
version seen: duplicates (at-least-once delivery) and, on a compacted topic, the missing older
versions change nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from riskrelay.shared.events import RiskRegisteredEvent, RiskRegisterEntry
from riskrelay.shared.kafka import aiokafka_client_options, true_end_offsets
from riskrelay.shared.settings import KafkaSettings


class RebuildError(RuntimeError):
    """The topic could not be read completely, or holds something that is not an entry."""


def fold_entries(entries: Iterable[RiskRegisterEntry]) -> dict[str, RiskRegisterEntry]:
    """The register the entries describe: the highest version of each risk."""
    register: dict[str, RiskRegisterEntry] = {}
    for entry in entries:
        known = register.get(entry.risk_id)
        if known is None or entry.version > known.version:
            register[entry.risk_id] = entry
    return register


async def read_registered(
    kafka: KafkaSettings | str, topic: str, *, timeout: float = 60.0
) -> list[RiskRegisterEntry]:
    """Every entry on ``topic`` from the beginning up to its end at the time of the call."""
    settings = kafka if isinstance(kafka, KafkaSettings) else KafkaSettings(bootstrap=kafka)
    consumer = AIOKafkaConsumer(
        **aiokafka_client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() >= deadline:
                raise RebuildError(f"topic {topic!r} not found")
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                await asyncio.sleep(0.1)
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        end = await true_end_offsets(consumer, assignment)
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        entries: list[RiskRegisterEntry] = []
        unfinished = {tp for tp in assignment if await consumer.position(tp) < end[tp]}
        while unfinished:
            if time.monotonic() >= deadline:
                raise RebuildError(f"{topic!r} not read to its end within {timeout} s")
            batch = await consumer.getmany(*unfinished, timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    if record.value is None:
                        raise RebuildError(f"{tp.topic}/{tp.partition}@{record.offset}: tombstone")
                    try:
                        entries.append(RiskRegisteredEvent.model_validate_json(record.value).data)
                    except ValueError as error:
                        raise RebuildError(
                            f"{tp.topic}/{tp.partition}@{record.offset}: not an entry: {error}"
                        ) from error
            for tp in list(unfinished):
                if await consumer.position(tp) >= end[tp]:
                    unfinished.discard(tp)
        return entries
    finally:
        await consumer.stop()


async def rebuild_from_topic(
    kafka: KafkaSettings | str, topic: str, *, timeout: float = 60.0
) -> dict[str, RiskRegisterEntry]:
    """The register as ``topic`` (the physical risk-registered topic name) describes it."""
    return fold_entries(await read_registered(kafka, topic, timeout=timeout))
