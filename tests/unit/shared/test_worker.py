"""The worker loop: steps run on its thread while the caller's loop stays free, their I/O goes
back to the caller's loop, errors and cancellation cross over."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from riskrelay.shared.worker import WorkerLoop, run_on


@pytest.fixture
def worker() -> Iterator[WorkerLoop]:
    worker = WorkerLoop("test-worker")
    yield worker
    worker.close()


async def test_the_callers_loop_keeps_running_while_a_step_holds_the_cpu(
    worker: WorkerLoop,
) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    def hold_the_cpu() -> str:
        deadline = time.perf_counter() + 0.5
        while time.perf_counter() < deadline:
            pass
        return threading.current_thread().name

    ticker = asyncio.create_task(tick())
    name = await worker.call(hold_the_cpu)
    ticker.cancel()
    assert name == "test-worker"
    assert ticks >= 5  # about 50 on an idle machine; a loop held for the 0.5 s has one at most


async def test_a_steps_io_runs_on_the_loop_that_owns_it(worker: WorkerLoop) -> None:
    home = asyncio.get_running_loop()

    async def where() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def step() -> tuple[asyncio.AbstractEventLoop, asyncio.AbstractEventLoop]:
        return asyncio.get_running_loop(), await run_on(home, where())

    step_loop, io_loop = await worker.run(step)
    assert step_loop is not home
    assert io_loop is home


async def test_errors_reach_the_caller_and_the_worker_goes_on(worker: WorkerLoop) -> None:
    def fail() -> None:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        await worker.call(fail)
    assert await worker.call(lambda: 42) == 42


async def test_cancelling_the_caller_cancels_the_step(worker: WorkerLoop) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def step() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(worker.run(step))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(cancelled.wait, 5)


async def test_a_closed_worker_starts_again_on_its_next_step(worker: WorkerLoop) -> None:
    first = await worker.call(threading.current_thread)
    worker.close()
    assert not first.is_alive()
    second = await worker.call(threading.current_thread)
    assert second is not first
    assert second.is_alive()
