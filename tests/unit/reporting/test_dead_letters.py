"""Dead letters: which source record each one stands for, and the dashboard's figures from the
counts (each source record once, per consumer as the detail)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord

from riskrelay.reporting.dashboard import dead_letter_figures
from riskrelay.reporting.handlers import dead_letter_row
from riskrelay.reporting.store import DeadLetterCount
from riskrelay.shared.kafka import dead_letter_headers

pytestmark = pytest.mark.unit

FAILED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def record(
    topic: str, partition: int, offset: int, headers: list[tuple[str, bytes]]
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic, partition, offset, 0, 0, b"T-1", b"{bad", None, 3, 4, tuple(headers)
    )


def test_a_dead_letter_names_its_source_record_and_consumer() -> None:
    source = record("x.ticket-events", 4, 1207, [("ce_type", b"riskrelay.ticket.created.v1")])
    headers = dead_letter_headers(source, "invalid event", 2, "x.riskrelay-intake", FAILED_AT)
    row = dead_letter_row(record("x.ticket-events.dlq", 4, 9, headers), prefix="x.")
    assert (row.topic, row.partition, row.offset) == ("x.ticket-events.dlq", 4, 9)
    assert (row.source_topic, row.source_partition, row.source_offset) == ("ticket-events", 4, 1207)
    assert row.consumer_group == "riskrelay-intake"
    assert row.failed_at == FAILED_AT


def test_missing_or_malformed_source_headers_are_left_out_not_guessed() -> None:
    bare = dead_letter_row(record("ticket-events.dlq", 0, 3, []), prefix="")
    assert (bare.source_topic, bare.source_partition, bare.source_offset) == (
        "ticket-events", None, None,
    )  # fmt: skip
    assert bare.consumer_group is None
    half = dead_letter_row(
        record(
            "ticket-events.dlq",
            0,
            4,
            [("dlq_source_partition", b"2"), ("dlq_source_offset", b"twelve")],
        ),
        prefix="",
    )
    assert (half.source_partition, half.source_offset) == (None, None)


def test_figures_count_source_records_once_with_each_consumer_as_detail() -> None:
    rows = [
        DeadLetterCount("ticket-events", False, None, 2, 5, FAILED_AT),
        DeadLetterCount("ticket-events", True, "riskrelay-intake", 2, 3, FAILED_AT),
        DeadLetterCount("ticket-events", True, "riskrelay-reporting", 2, 2, None),
        DeadLetterCount("ticket-events", True, None, 1, 1, None),
        DeadLetterCount("risk-classified", False, None, 1, 1, None),
        DeadLetterCount("risk-classified", True, "riskrelay-register", 1, 1, None),
    ]
    figures = {figure.topic: figure for figure in dead_letter_figures(rows)}
    events = figures["ticket-events"]
    assert (events.records, events.dead_letters) == (2, 5)
    assert [(c.consumer_group, c.records) for c in events.consumers] == [
        ("riskrelay-intake", 2),
        ("riskrelay-reporting", 2),
        ("unknown", 1),
    ]
    assert [c.consumer_group for c in figures["risk-classified"].consumers] == [
        "riskrelay-register"
    ]


def test_header_text_postgresql_cannot_store_is_dropped() -> None:
    row = dead_letter_row(
        record(
            "ticket-events.dlq",
            0,
            5,
            [("dlq_source_topic", b"ticket-\x00events"), ("dlq_consumer_group", b"g\x00")],
        ),
        prefix="",
    )
    assert (row.source_topic, row.consumer_group) == ("ticket-events", "g")
