"""The outbox marker: acknowledged rows are marked published in bulk, off the consumer's path,
and nothing noted is left unmarked at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast

import asyncpg
import pytest

from riskrelay.shared.kafka import EventProducer
from riskrelay.shared.outbox import Outbox

pytestmark = pytest.mark.unit


class RecordingPool:
    """Stands in for the pool: records each UPDATE's ids (the SQL is covered by integration)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.marked: list[list[str]] = []
        self._failures_left = fail_first

    async def execute(self, query: str, *args: Any) -> str:
        assert query.startswith("UPDATE outbox SET published_at")
        if self._failures_left:
            self._failures_left -= 1
            raise ConnectionError("database unreachable")
        ids = cast(Sequence[str], args[0])
        self.marked.append(list(ids))
        return f"UPDATE {len(ids)}"


def outbox(mark_window: float = 0.05) -> Outbox:
    return Outbox(cast(EventProducer, object()), mark_window=mark_window)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_rows_noted_within_one_window_are_marked_in_one_statement() -> None:
    box, pool = outbox(), RecordingPool()
    marker = asyncio.create_task(box.run_marker(cast(asyncpg.Pool, pool)))
    box.published(["a", "b"])
    box.published(["c"])
    await asyncio.sleep(0.2)
    assert pool.marked == [["a", "b", "c"]]
    assert box.awaiting_mark == []
    box.published(["d"])
    await asyncio.sleep(0.2)
    assert pool.marked == [["a", "b", "c"], ["d"]]
    await stop(marker)


async def test_shutdown_marks_what_is_still_waiting() -> None:
    box, pool = outbox(mark_window=10.0), RecordingPool()
    marker = asyncio.create_task(box.run_marker(cast(asyncpg.Pool, pool)))
    await asyncio.sleep(0)
    box.published(["x", "y"])
    await asyncio.sleep(0.05)
    assert pool.marked == []
    assert box.awaiting_mark == ["x", "y"]
    await stop(marker)
    assert pool.marked == [["x", "y"]]


async def test_a_failed_mark_is_logged_and_the_marker_goes_on() -> None:
    box, pool = outbox(), RecordingPool(fail_first=1)
    marker = asyncio.create_task(box.run_marker(cast(asyncpg.Pool, pool)))
    box.published(["lost-mark"])
    await asyncio.sleep(0.2)
    box.published(["next"])
    await asyncio.sleep(0.2)
    # The first rows stay unmarked in the database; the relay publishes them again (same ids).
    assert pool.marked == [["next"]]
    assert not marker.done()
    await stop(marker)


async def test_nothing_noted_means_no_statement() -> None:
    box, pool = outbox(), RecordingPool()
    marker = asyncio.create_task(box.run_marker(cast(asyncpg.Pool, pool)))
    box.published([])
    await asyncio.sleep(0.15)
    assert pool.marked == []
    await stop(marker)


class HangingFirstPool(RecordingPool):
    """The first UPDATE never answers (the process is stopped while it is in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def execute(self, query: str, *args: Any) -> str:
        self.calls += 1
        if self.calls == 1:
            await asyncio.Event().wait()
        return await super().execute(query, *args)


async def test_rows_whose_mark_was_in_flight_at_shutdown_are_marked_and_count_as_published() -> (
    None
):
    box, pool = outbox(), HangingFirstPool()
    marker = asyncio.create_task(box.run_marker(cast(asyncpg.Pool, pool)))
    box.published(["in-flight"])
    await asyncio.sleep(0.15)
    assert box.awaiting_mark == ["in-flight"], "in flight is still published, not yet marked"
    box.published(["later"])
    await stop(marker)
    assert pool.marked == [["in-flight", "later"]]
