"""What the services rely on from the broker, checked on whichever broker the suite runs on
(``RISKRELAY_TEST_BROKER``): where tansu and Apache Kafka differ, each is held to its own
behaviour, and the workaround for tansu is shown to be needed there and unused on Kafka.

The figures each test measures are recorded as test properties (``--junitxml`` shows them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from riskrelay.register.app import create_app as create_register
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.kafka import broker_reports_exact_end_offsets, true_end_offsets
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.shared.topics import ALL_TOPICS, RISK_REGISTERED, TopicSpec, topic_name
from riskrelay.testing import create_topics, produce, read_topic, running

pytestmark = pytest.mark.integration

RecordProperty = Callable[[str, object], None]


async def started_consumer(bootstrap: str, **options: object) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    await consumer.start()
    return consumer


async def test_end_offsets_are_the_partition_end_and_the_workaround_runs_only_on_tansu(
    kafka_settings: KafkaSettings, broker_kind: str, record_property: RecordProperty
) -> None:
    spec = TopicSpec("offsets", key="k", partitions=1)
    await create_topics(kafka_settings.bootstrap, [spec], kafka_settings.topic_prefix)
    topic = topic_name(spec, kafka_settings.topic_prefix)
    await produce(kafka_settings.bootstrap, topic, [(b"k", b"%d" % n) for n in range(5)])
    partition = TopicPartition(topic, 0)
    consumer = await started_consumer(kafka_settings.bootstrap)
    try:
        reported = (await consumer.end_offsets([partition]))[partition]
        exact = await broker_reports_exact_end_offsets(consumer)
        ends = await true_end_offsets(consumer, [partition])
    finally:
        await consumer.stop()
    record_property("list_offsets_latest", reported)
    assert ends == {partition: 5}
    assert exact is (broker_kind == "kafka")
    if broker_kind == "kafka":
        # Kafka answers ListOffsets(latest) with the high watermark: no fetch is needed.
        assert reported == 5
    else:
        # tansu's answer is the base offset of the last batch plus one (one batch of five here).
        assert reported < 5


async def test_a_fetch_returns_when_data_arrives_on_kafka(
    kafka_settings: KafkaSettings, broker_kind: str, record_property: RecordProperty
) -> None:
    """``KAFKA__FETCH_MAX_WAIT_MS`` is how long a fetch may wait for data. Kafka answers as
    soon as a record arrives, so the wait only sets how often an idle consumer asks; tansu holds
    the fetch (0.8-1.3 s of a 3 s wait, measured here), so there the wait is added to every
    hop (hence the 25 ms default)."""
    spec = TopicSpec("fetch-wait", key="k", partitions=1)
    await create_topics(kafka_settings.bootstrap, [spec], kafka_settings.topic_prefix)
    topic = topic_name(spec, kafka_settings.topic_prefix)
    partition = TopicPartition(topic, 0)
    consumer = await started_consumer(kafka_settings.bootstrap, fetch_max_wait_ms=3_000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap, acks="all")
    await producer.start()
    delays: list[float] = []
    try:
        consumer.assign([partition])
        await consumer.seek_to_end(partition)
        await consumer.getmany(timeout_ms=500)  # an idle fetch is now waiting at the broker
        for n in range(3):
            await asyncio.sleep(0.2)
            sent = time.monotonic()
            await producer.send_and_wait(topic, b"%d" % n, partition=0)
            batch: dict[TopicPartition, list[object]] = {}
            while not batch.get(partition):
                batch = dict(await consumer.getmany(partition, timeout_ms=5_000))
                assert time.monotonic() - sent < 10, "the record never arrived"
            delays.append(time.monotonic() - sent)
    finally:
        await producer.stop()
        await consumer.stop()
    record_property("delivery_seconds_with_3s_fetch_wait", [round(d, 3) for d in delays])
    if broker_kind == "kafka":
        assert max(delays) < 0.5, delays


async def _seconds_until_assigned(consumer: AIOKafkaConsumer, limit: float) -> float:
    started = time.monotonic()
    while not consumer.assignment():
        assert time.monotonic() - started < limit, f"no assignment within {limit:.0f} s"
        await consumer.getmany(timeout_ms=100)
    return time.monotonic() - started


async def test_a_member_that_left_is_replaced_at_once_on_kafka(
    kafka_settings: KafkaSettings, broker_kind: str, record_property: RecordProperty
) -> None:
    """A process that stops cleanly leaves its group (LeaveGroup); on Kafka the next member is
    assigned right away. tansu makes the newcomer wait seconds (about 11 s measured here, up to
    18 s), which is why the tests' session timeouts are short and their waits long."""
    spec = TopicSpec("rejoin", key="k", partitions=2)
    await create_topics(kafka_settings.bootstrap, [spec], kafka_settings.topic_prefix)
    topic = topic_name(spec, kafka_settings.topic_prefix)
    group = f"{kafka_settings.topic_prefix}rejoin"
    options = {"group_id": group, "session_timeout_ms": 6_000, "heartbeat_interval_ms": 500}
    timings: dict[str, float] = {}
    first_started = time.monotonic()
    first = AIOKafkaConsumer(topic, bootstrap_servers=kafka_settings.bootstrap, **options)
    await first.start()
    await _seconds_until_assigned(first, limit=60)
    timings["first_join"] = time.monotonic() - first_started
    await first.stop()
    second_started = time.monotonic()
    second = AIOKafkaConsumer(topic, bootstrap_servers=kafka_settings.bootstrap, **options)
    await second.start()
    try:
        await _seconds_until_assigned(second, limit=60)
        timings["join_after_a_clean_leave"] = time.monotonic() - second_started
        assert second.assignment() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    finally:
        await second.stop()
    record_property("group_seconds", {k: round(v, 2) for k, v in timings.items()})
    if broker_kind == "kafka":
        assert timings["first_join"] < 3, timings
        assert timings["join_after_a_clean_leave"] < 3, timings


async def test_risk_registered_is_compacted_to_the_latest_state_per_risk(
    kafka_settings: KafkaSettings, broker_kind: str, record_property: RecordProperty
) -> None:
    """The register's topic keeps every risk's latest state for good (compaction, no time
    limit), so a new reader rebuilds the register from it. Kafka's log cleaner drops the older
    versions from closed segments; tansu never compacts, so it keeps every version."""
    if broker_kind != "kafka":
        pytest.skip("tansu does not compact: every version stays on risk-registered")
    await create_topics(kafka_settings.bootstrap, [RISK_REGISTERED], kafka_settings.topic_prefix)
    topic = topic_name(RISK_REGISTERED, kafka_settings.topic_prefix)
    padding = b"x" * 4_000
    versions = 400  # 1.6 MB per risk: more than one 1 MiB segment, so one closes and is cleaned
    risks = [b"risk-a", b"risk-b"]
    written = [
        (risk, b"%s v%d " % (risk, version) + padding)
        for version in range(versions)
        for risk in risks
    ]
    for start in range(0, len(written), 100):
        await produce(kafka_settings.bootstrap, topic, written[start : start + 100])
    deadline = time.monotonic() + 60
    while True:
        records = await read_topic(kafka_settings.bootstrap, topic, timeout=3)
        if len(records) < len(written) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    record_property("records_written_and_kept", (len(written), len(records)))
    assert len(records) < len(written), "nothing was compacted within a minute"
    latest: dict[bytes, bytes] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None
        assert record.value is not None
        latest[record.key] = record.value
    for risk in risks:
        assert latest[risk].startswith(b"%s v%d " % (risk, versions - 1))
    versions_kept = [r.value.split(b" ")[1] for r in records if r.key == risks[0] and r.value]
    assert b"v0" not in versions_kept, "the oldest version survived compaction"


async def test_service_topics_match_the_registry_on_the_broker(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    broker_kind: str,
) -> None:
    """The topics a service creates at start-up carry the registry's partitions, replication and
    cleanup policy on the real broker, and its consumer group has the name the deployment files
    (KEDA triggers, the runbook) use; tests/unit/deploy holds those files to the same registry."""
    settings = RegisterSettings(kafka=kafka_settings, database=database_settings)
    prefix = kafka_settings.topic_prefix
    async with running(create_register(settings)):
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap)
        await admin.start()
        try:
            names = [topic_name(spec, prefix) for spec in ALL_TOPICS]
            described = {item["topic"]: item for item in await admin.describe_topics(names)}
            for spec in ALL_TOPICS:
                partitions = described[topic_name(spec, prefix)]["partitions"]
                assert len(partitions) == spec.partitions, spec.name
                assert all(
                    len(p["replicas"]) == kafka_settings.replication_factor for p in partitions
                ), spec.name
            if broker_kind == "kafka":
                resources = [
                    ConfigResource(ConfigResourceType.TOPIC, topic_name(spec, prefix))
                    for spec in ALL_TOPICS
                ]
                responses = await admin.describe_configs(resources)
                configs = {
                    resource[3]: {entry[0]: entry[1] for entry in resource[4]}
                    for response in responses
                    for resource in response.resources
                }
                for spec in ALL_TOPICS:
                    found = configs[topic_name(spec, prefix)]
                    for key, value in spec.config().items():
                        assert found[key] == value, (spec.name, key)
                assert configs[topic_name(RISK_REGISTERED, prefix)]["cleanup.policy"] == "compact"
                groups = {group for group, _ in await admin.list_consumer_groups()}
                deadline = time.monotonic() + 30
                while settings.consumer_group not in groups and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    groups = {group for group, _ in await admin.list_consumer_groups()}
                assert settings.consumer_group in groups
                assert settings.consumer_group == f"{prefix}riskrelay-register"
        finally:
            await admin.close()
