"""Transactional outbox: an event that follows a database change is written in the same
transaction as the change, so neither can happen without the other.

Two paths publish outbox rows, and duplicates between them are harmless because event ids are
deterministic and every consumer drops ids it has seen:

* the fast path: the batch handler returns the events it wrote; the consumer publishes them and
  hands their ids to :meth:`Outbox.published`, and a background marker records them in bulk,
  off the consumer's path (marking inline would cost every batch a database round trip while
  the next batch waits; a mark that is late or lost only means the relay publishes that row
  again, under the same id);
* the relay: a background loop claims rows still unpublished after ``grace`` (the process died
  between commit and publish, or the broker was down) with ``FOR UPDATE SKIP LOCKED``, publishes
  them and marks them, so several instances can relay side by side.

The ``outbox`` table is one of the platform migrations (``riskrelay/shared/migrations``) that
:func:`riskrelay.shared.migrations.migrate` applies to every service schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Sequence
from datetime import timedelta

import asyncpg
from prometheus_client import Gauge

from riskrelay.shared.kafka import EventProducer, OutgoingEvent, describe_error
from riskrelay.shared.logging import get_logger
from riskrelay.shared.store import Connection

log = get_logger(__name__)


def _headers_json(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[k, v.decode()] for k, v in headers])


def outbox_insert(first: int) -> str:
    """The statement :meth:`Outbox.write` runs, taking the five columns of
    :meth:`Outbox.columns` from parameters ``$first`` to ``$first + 4``: a service that already
    writes its batch in one statement stages the batch's events in a CTE of it."""
    arrays = ", ".join(
        f"${first + n}::{kind}[]"
        for n, kind in enumerate(("text", "text", "text", "bytea", "jsonb"))
    )
    return (
        "INSERT INTO outbox (event_id, topic, key, payload, headers)"
        f" SELECT * FROM unnest({arrays}) ON CONFLICT (event_id) DO NOTHING"
    )


_WRITE = outbox_insert(1)


class Outbox:
    """Writes, relays and marks outbox rows of one service."""

    def __init__(
        self,
        producer: EventProducer,
        grace: timedelta = timedelta(seconds=5),
        mark_window: float = 0.1,
    ) -> None:
        self._producer = producer
        self._grace = grace
        self._mark_window = mark_window
        self._unmarked: list[str] = []
        self._marking: list[str] = []
        self._marks_waiting = asyncio.Event()

    def published(self, event_ids: Iterable[str]) -> None:
        """Note rows the broker acknowledged; :meth:`run_marker` marks them in bulk."""
        before = len(self._unmarked)
        self._unmarked.extend(event_ids)
        if len(self._unmarked) > before:
            self._marks_waiting.set()

    @property
    def awaiting_mark(self) -> list[str]:
        """Ids the broker acknowledged that are not marked published yet (they are published)."""
        return [*self._marking, *self._unmarked]

    async def publish_after_commit(self, events: Sequence[OutgoingEvent]) -> None:
        """Publish rows just committed; if the broker fails, the relay publishes them later."""
        if not events:
            return
        try:
            await self._producer.publish(events)
        except Exception as error:
            log.warning(
                "publish after commit failed; the outbox relay will publish",
                error=describe_error(error),
                events=len(events),
            )
            return
        self.published(item.event.id for item in events)

    async def run_marker(self, pool: asyncpg.Pool) -> None:
        """Background loop: mark noted rows published, one statement per ``mark_window``."""
        try:
            while True:
                await self._marks_waiting.wait()
                await asyncio.sleep(self._mark_window)
                self._marks_waiting.clear()
                self._marking, self._unmarked = self._unmarked, []
                try:
                    await self.mark_published(pool, self._marking)
                except Exception as error:
                    log.warning(
                        "marking published rows failed; the relay will publish them again",
                        error=describe_error(error),
                        events=len(self._marking),
                    )
                self._marking = []
        finally:
            # On shutdown, mark what was published so a restart does not publish it again.
            left = [*self._marking, *self._unmarked]
            if left:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.mark_published(pool, left))

    @staticmethod
    async def write(connection: Connection, events: Sequence[OutgoingEvent]) -> None:
        """Stage events in the caller's transaction (an id already staged is kept as is)."""
        if not events:
            return
        # One statement for the whole batch: far cheaper than a round of binds per row.
        await connection.execute(_WRITE, *Outbox.columns(events))

    @staticmethod
    def columns(events: Sequence[OutgoingEvent]) -> list[list[str] | list[bytes]]:
        """The parameters of :func:`outbox_insert` for ``events``."""
        return [
            [e.event.id for e in events],
            [e.topic for e in events],
            [e.key for e in events],
            [e.payload for e in events],
            [_headers_json(e.headers) for e in events],
        ]

    @staticmethod
    async def mark_published(pool: asyncpg.Pool, event_ids: Sequence[str]) -> None:
        if event_ids:
            await pool.execute(
                "UPDATE outbox SET published_at = now()"
                " WHERE event_id = ANY($1::text[]) AND published_at IS NULL",
                list(event_ids),
            )

    async def relay_once(self, pool: asyncpg.Pool, limit: int = 500) -> int:
        """Publish up to ``limit`` rows left unpublished longer than the grace period.

        One relay at a time per schema (a transaction-scoped advisory lock): two relays taking
        rows of the same key in parallel could publish an entity's versions out of order, and a
        compacted topic would then keep the older one.
        """
        async with pool.acquire() as connection, connection.transaction():
            if not await connection.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended('riskrelay.outbox.relay', 0))"
            ):
                return 0
            rows = await connection.fetch(
                "SELECT position, topic, key, payload, headers FROM outbox"
                " WHERE published_at IS NULL AND created_at < now() - $1::interval"
                " ORDER BY position LIMIT $2 FOR UPDATE SKIP LOCKED",
                self._grace,
                limit,
            )
            if not rows:
                return 0
            futures = [
                await self._producer.send_raw(
                    row["topic"],
                    row["key"].encode(),
                    bytes(row["payload"]),
                    [(k, v.encode()) for k, v in json.loads(row["headers"])],
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await connection.execute(
                "UPDATE outbox SET published_at = now() WHERE position = ANY($1::bigint[])",
                [row["position"] for row in rows],
            )
        log.info("outbox relayed events left unpublished", count=len(rows))
        return len(rows)

    async def run_relay(
        self,
        pool: asyncpg.Pool,
        interval: float = 1.0,
        *,
        pending: Gauge | None = None,
        keep_published: timedelta = timedelta(hours=1),
    ) -> None:
        """Background loop: relay stragglers forever, report the backlog, and delete published
        rows after ``keep_published`` (the topic is the record then) so the table stays small.
        The marker (:meth:`run_marker`) runs beside it."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.run_marker(pool), name="outbox-marker")
            group.create_task(
                self._relay_forever(pool, interval, pending, keep_published), name="outbox-relay"
            )

    async def _relay_forever(
        self,
        pool: asyncpg.Pool,
        interval: float,
        pending: Gauge | None,
        keep_published: timedelta,
    ) -> None:
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        while True:
            relayed = await self.relay_once(pool)
            if pending is not None:
                pending.set(
                    await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                )
            if loop.time() >= next_purge:
                await self.purge_published(pool, keep_published)
                next_purge = loop.time() + 60.0
            if not relayed:
                await asyncio.sleep(interval)

    @staticmethod
    async def purge_published(pool: asyncpg.Pool, older_than: timedelta) -> int:
        """Delete rows published before ``older_than`` ago (the topic is the record now)."""
        result: str = await pool.execute(
            "DELETE FROM outbox WHERE published_at < now() - $1::interval", older_than
        )
        return int(result.split()[-1])
