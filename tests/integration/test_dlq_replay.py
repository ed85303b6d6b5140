"""`riskrelay dlq replay` on the real broker: dry run changes nothing; a replay sends each dead
letter back to its source topic once, with its original headers."""

from __future__ import annotations

import pytest

from riskrelay.cli.kafka_tools import replay_dead_letters
from riskrelay.shared.settings import KafkaSettings
from riskrelay.shared.topics import TICKET_EVENTS
from riskrelay.testing import create_topics, header, produce, read_topic

pytestmark = pytest.mark.integration


async def test_replay_dry_run_then_once(kafka_settings: KafkaSettings) -> None:
    source = f"{kafka_settings.topic_prefix}ticket-events"
    await create_topics(
        kafka_settings.bootstrap, [TICKET_EVENTS, TICKET_EVENTS.dlq], kafka_settings.topic_prefix
    )
    dead_headers = [
        ("trace", b"t-1"),
        ("dlq_error", b"invalid event: data.subject: Field required"),
        ("dlq_source_topic", source.encode()),
    ]
    await produce(
        kafka_settings.bootstrap,
        source + ".dlq",
        [(b"T-1", b'{"fixed": 1}'), (b"T-2", b'{"fixed": 2}')],
        dead_headers,
    )
    group = f"{kafka_settings.topic_prefix}replay"
    seen, sent = await replay_dead_letters(
        kafka_settings.bootstrap, source, dry_run=True, group_id=group
    )
    assert (seen, sent) == (2, 0)
    assert await read_topic(kafka_settings.bootstrap, source, timeout=2) == []

    seen, sent = await replay_dead_letters(
        kafka_settings.bootstrap, source, dry_run=False, group_id=group
    )
    assert (seen, sent) == (2, 2)
    replayed = await read_topic(kafka_settings.bootstrap, source, expected=2, timeout=10)
    assert sorted(r.value for r in replayed) == [b'{"fixed": 1}', b'{"fixed": 2}']
    for record in replayed:
        assert header(record, "trace") == "t-1"
        assert header(record, "dlq_error") is None
        assert (header(record, "dlq_replayed_from") or "").startswith(source + ".dlq@")

    again = await replay_dead_letters(
        kafka_settings.bootstrap, source, dry_run=False, group_id=group
    )
    assert again == (0, 0)


async def test_replay_reaches_every_letter_of_one_record_batch(
    kafka_settings: KafkaSettings,
) -> None:
    """Regression: the embedded broker reports a partition's end as the last *batch's* base
    offset + 1, so letters sent together (as the consumer sends them) were partly skipped."""
    source = f"{kafka_settings.topic_prefix}ticket-events"
    await create_topics(
        kafka_settings.bootstrap, [TICKET_EVENTS, TICKET_EVENTS.dlq], kafka_settings.topic_prefix
    )
    letters = [(b"same-key", f'{{"letter": {n}}}'.encode()) for n in range(4)]
    await produce(
        kafka_settings.bootstrap, source + ".dlq", letters, [("dlq_source_topic", source.encode())]
    )
    seen, sent = await replay_dead_letters(
        kafka_settings.bootstrap,
        source,
        dry_run=False,
        group_id=f"{kafka_settings.topic_prefix}replay-batch",
    )
    assert (seen, sent) == (4, 4)
    replayed = await read_topic(kafka_settings.bootstrap, source, expected=4, timeout=10)
    assert sorted(r.value for r in replayed) == sorted(value for _, value in letters)
