"""An event loop on a thread of its own, for the CPU-bound part of a consumer's batch.

A consumer's event loop also runs aiokafka's group heartbeat. Work that holds that loop longer
than the group's session timeout (``KAFKA__SESSION_TIMEOUT_MS``) gets the member dropped by the
broker: the batch's commit is refused and the batch comes back, however often it is retried.
A step that is mostly computation runs on a :class:`WorkerLoop` instead, while the consumer's
loop keeps heartbeating; the step's own I/O goes back to the loop that owns the connections
(:func:`run_on`), since asyncpg connections and aiokafka clients belong to one loop.

Numpy and onnxruntime release the GIL while they compute; pure Python holds it, but hands it on
at the interpreter's switch interval (5 ms), often enough for a heartbeat either way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def run_on(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on ``loop`` (another thread's) and await its result from this one."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))


class WorkerLoop:
    """One thread, one event loop; started on first use, so configuring a service (which also
    happens offline, to write its documents) starts no thread.

    One thread keeps a consumer's steps in the order it hands them over.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def run(self, step: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``step()`` on the worker's loop; cancelling the caller cancels the step."""
        return await run_on(self._running_loop(), step())

    async def call(self, function: Callable[[], T]) -> T:
        """Call ``function()`` on the worker's thread."""

        async def call() -> T:
            return function()

        return await self.run(call)

    def close(self) -> None:
        """Stop the thread (after the step it runs, if any) and close its loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
