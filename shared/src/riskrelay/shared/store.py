"""Persistence helpers every service with a database uses (SQL for a service's own tables lives
in that service's ``store.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection, or what ``pool.acquire()`` hands out (asyncpg types the two apart)."""


@dataclass(frozen=True)
class Locks:
    """Transaction-scoped advisory locks to take, as sorted key strings hashed with ``seed``."""

    keys: list[str]
    seed: int = 0


NO_LOCKS = Locks([])


@dataclass(frozen=True)
class LockSpace:
    """One family of advisory locks (a service's risks, intake's products): the prefix and seed
    keep families apart. Changing either lets old and new instances run side by side unlocked
    during a rolling upgrade, so both stay as they are."""

    prefix: str = ""
    seed: int = 0

    def of(self, names: Iterable[str]) -> Locks:
        return Locks(sorted({self.prefix + name for name in names}), self.seed)


# ``unnest ... WITH ORDINALITY`` yields the sorted keys in array order and nothing re-orders
# them, so every transaction locks in the same order and two that lock overlapping sets never
# deadlock.
_LOCK = (
    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, {seed})))"
    " FROM unnest({keys}::text[]) WITH ORDINALITY AS keys (k, n)"
)

# The locks first (the one-row CTE is complete before the join yields a row to insert), then
# the claim: one round trip instead of two for every batch.
_CLAIM_LOCKED = f"""
WITH locked AS MATERIALIZED ({_LOCK.format(keys="$2", seed="$3")})
INSERT INTO processed_events (event_id)
SELECT ids.event_id FROM locked, unnest($1::text[]) AS ids (event_id)
ON CONFLICT (event_id) DO NOTHING RETURNING event_id
"""


async def claim_new_event_ids(
    connection: Connection, event_ids: Iterable[str], *, lock: Locks = NO_LOCKS
) -> set[str]:
    """Take ``lock``, record ``event_ids`` as processed and return the ones not seen before,
    in one statement.

    Call inside the transaction that applies the events' effects: if the transaction rolls back,
    the ids are not recorded either, so the redelivered events are processed again. Lock what
    every event of the batch would touch, new or not: a repeat's keys are locked needlessly but
    harmlessly, and the later reads then need no statement of their own to wait behind.
    """
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    rows = await connection.fetch(_CLAIM_LOCKED, ids, lock.keys, lock.seed)
    return {row["event_id"] for row in rows}


async def lock_keys(connection: Connection, lock: Locks) -> None:
    """Take ``lock`` (all its keys in one statement, in sorted order)."""
    if lock.keys:
        await connection.execute(_LOCK.format(keys="$1", seed="$2"), lock.keys, lock.seed)


def unnest_columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as column lists, the parameters of one ``INSERT ... SELECT FROM unnest(...)`` per
    batch (far cheaper than ``executemany``, which binds and executes every row on its own)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


ItemT = TypeVar("ItemT")


async def claim_new(
    connection: Connection,
    items: Iterable[ItemT],
    event_id: Callable[[ItemT], str],
    *,
    lock: Locks = NO_LOCKS,
) -> list[ItemT]:
    """:func:`claim_new_event_ids` for whole items: the items seen for the first time, in their
    order, each id once (a duplicate inside one batch counts once)."""
    items = list(items)
    fresh = await claim_new_event_ids(connection, (event_id(item) for item in items), lock=lock)
    kept: list[ItemT] = []
    for item in items:
        key = event_id(item)
        if key in fresh:
            kept.append(item)
            fresh.discard(key)
    return kept
