"""A batch whose work outlasts the consumer group's session timeout, on the real broker.

Intake's application step is CPU-bound (the semantic encoder costs milliseconds per ticket, more
on a loaded machine). Run on the event loop, a long batch starves aiokafka's heartbeat: the
broker drops the member, the batch's commit is refused and the batch comes back, again and again
under load. The step runs off the event loop, so the member keeps its session: the batch is
decided once, committed once, and nothing is read twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from riskrelay.intake.app import create_app
from riskrelay.intake.domain import TicketAssessment
from riskrelay.intake.semantic.config import DetectionSettings
from riskrelay.intake.service import AssessedTicket, Intake
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.events import TicketEvent
from riskrelay.shared.kafka import true_end_offsets
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.shared.topics import TICKET_EVENTS, topic_name
from riskrelay.testing import eventually, produce, running

from .test_intake_service import ticket_event

pytestmark = pytest.mark.integration

TICKETS = 40


@dataclass(frozen=True)
class SlowFirstStepIntake(Intake):
    """The service's intake, whose first batch step first holds the CPU, and the GIL, for
    ``first_step_seconds``: the encoder on a large batch of a loaded machine, made certain.
    It counts what it assessed (each record decoded) and completed (each ticket decided)."""

    first_step_seconds: float = 0.0
    assessed: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    step_seconds: list[float] = field(default_factory=list)

    def assess(self, event: TicketEvent) -> TicketAssessment:
        self.assessed[event.id] += 1
        return super().assess(event)

    def complete(self, tickets: Sequence[AssessedTicket]) -> list[AssessedTicket]:
        started = time.perf_counter()
        if not self.step_seconds:
            while time.perf_counter() - started < self.first_step_seconds:
                pass  # pure Python: the GIL is let go only at the interpreter's switch interval
        done = super().complete(tickets)
        self.completed.update(ticket.id for ticket in tickets)
        self.step_seconds.append(time.perf_counter() - started)
        return done


async def committed_and_ends(
    kafka: KafkaSettings, group: str
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """The group's committed offsets on ``ticket-events`` and the partitions' ends."""
    probe = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False
    )
    await probe.start()
    try:
        topic = topic_name(TICKET_EVENTS, kafka.topic_prefix)
        await probe._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in sorted(probe.partitions_for_topic(topic))]
        committed = {tp: (await probe.committed(tp)) or 0 for tp in partitions}
        return committed, await true_end_offsets(probe, partitions)
    finally:
        await probe.stop()


async def processed_event_ids(database: DatabaseSettings) -> list[str]:
    connection = await asyncpg.connect(database.url.get_secret_value())
    try:
        rows = await connection.fetch(
            f'SELECT event_id FROM "{database.schema_name}".processed_events'
        )
    finally:
        await connection.close()
    return [row["event_id"] for row in rows]


async def group_members(kafka: KafkaSettings, group: str) -> tuple[str, list[str]]:
    """The group's state and its members' ids, as the broker sees them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [description] = response.to_object()["groups"]
    return description["state"], sorted(m["member_id"] for m in description["members"])


async def test_a_batch_longer_than_the_session_timeout_is_committed_once(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    session_seconds = kafka_settings.session_timeout_ms / 1000
    # The learned models are left out: the step's length comes from the CPU it is made to hold.
    settings = IntakeSettings(
        kafka=kafka_settings,
        database=database_settings,
        detection=DetectionSettings(semantic=False),
    )
    group = settings.consumer_group
    intake = replace(
        SlowFirstStepIntake.from_settings(settings), first_step_seconds=session_seconds * 1.5
    )
    assert isinstance(intake, SlowFirstStepIntake)
    events = [
        ticket_event(n, f"Order {n}: the checkout page crashes when I press pay", product="Shop")
        for n in range(TICKETS)
    ]
    ids = {event["id"] for event in events}
    members: list[str] = []

    async def joined() -> bool:
        state, members[:] = await group_members(kafka_settings, group)
        return state == "Stable" and len(members) == 1

    async def all_committed() -> bool:
        committed, ends = await committed_and_ends(kafka_settings, group)
        return sum(ends.values()) == TICKETS and committed == ends

    async with running(create_app(settings, intake)):
        await eventually(joined, timeout=60)
        member = members[0]
        await produce(
            kafka_settings.bootstrap,
            topic_name(TICKET_EVENTS, kafka_settings.topic_prefix),
            [(e["data"]["ticket_id"].encode(), json.dumps(e).encode()) for e in events],
        )
        await eventually(all_committed, timeout=30 + 2 * session_seconds)
        # Longer than a session: a member the broker had dropped would have rejoined (under a
        # new id) and read its uncommitted records again by now.
        await asyncio.sleep(session_seconds * 1.5)
        committed, ends = await committed_and_ends(kafka_settings, group)
        state, members_after = await group_members(kafka_settings, group)

    assert intake.step_seconds[0] > session_seconds, "the first batch did not outlast a session"
    assert (state, members_after) == ("Stable", [member]), "the member lost its session"
    assert committed == ends
    assert set(intake.assessed) == ids
    assert set(intake.assessed.values()) == {1}, "records were read again"
    assert set(intake.completed) == ids
    assert set(intake.completed.values()) == {1}, "tickets were decided again"
    assert sorted(await processed_event_ids(database_settings)) == sorted(ids)
