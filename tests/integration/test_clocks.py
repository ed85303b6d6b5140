"""The clocks the services read agree with the tests' clock: PostgreSQL's now() and the timestamps
of broker records. CI runs the suite a second time with the clock moved a year ahead
(scripts/moved-clock.sh); these tests fail when a server in that run did not see the move
(a server given through RISKRELAY_TEST_*, a container), instead of letting other tests pass or
fail for a reason nobody would look for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.shared.topics import TopicSpec
from riskrelay.testing import create_topics, produce, read_topic

pytestmark = pytest.mark.integration

# Servers on this machine read the same clock to the millisecond; a clock that was not moved is
# off by the whole move (days or more).
TOLERANCE = timedelta(seconds=30)


async def test_postgresql_now_is_the_tests_clock(database_settings: DatabaseSettings) -> None:
    connection = await asyncpg.connect(database_settings.url.get_secret_value())
    try:
        before = datetime.now(UTC)
        server_now: datetime = await connection.fetchval("SELECT now()")
        after = datetime.now(UTC)
    finally:
        await connection.close()
    assert before - TOLERANCE <= server_now <= after + TOLERANCE, (
        f"PostgreSQL says {server_now.isoformat()}, the tests "
        f"{before.isoformat()}: its clock was not moved with the tests'"
    )


async def test_record_timestamps_are_the_producers_clock(
    kafka_settings: KafkaSettings,
) -> None:
    spec = TopicSpec("clock-check", key="k", partitions=1)
    await create_topics(kafka_settings.bootstrap, [spec], kafka_settings.topic_prefix)
    topic = f"{kafka_settings.topic_prefix}clock-check"
    before = datetime.now(UTC)
    await produce(kafka_settings.bootstrap, topic, [(b"k", b"v")])
    after = datetime.now(UTC)
    [record] = await read_topic(kafka_settings.bootstrap, topic, expected=1)
    stamped = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    assert before - TOLERANCE <= stamped <= after + TOLERANCE, (
        f"the broker stamped {stamped.isoformat()}, the producer's "
        f"clock said {before.isoformat()}: records carry a clock the tests do not share"
    )
