"""Persistence helpers every service with a database uses (SQL for a service's own tables lives
in that service's ``store.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection, or what ``pool.acquire()`` hands out (asyncpg types the two apart)."""


async def claim_new_event_ids(connection: Connection, event_ids: Iterable[str]) -> set[str]:
    """Record ``event_ids`` as processed and return the ones not seen before.

    Call inside the transaction that applies the events' effects: if the transaction rolls back,
    the ids are not recorded either, so the redelivered events are processed again.
    """
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    rows = await connection.fetch(
        "INSERT INTO processed_events (event_id) SELECT unnest($1::text[])"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        ids,
    )
    return {row["event_id"] for row in rows}


async def lock_keys(connection: Connection, keys: Iterable[str], *, seed: int = 0) -> None:
    """Take a transaction-scoped advisory lock on each key, all in one statement. ``unnest``
    yields the sorted keys in array order and nothing re-orders them, so every transaction locks
    in the same order and two that lock overlapping sets never deadlock."""
    ordered = sorted(set(keys))
    if ordered:
        await connection.execute(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(k, $2)))"
            " FROM unnest($1::text[]) WITH ORDINALITY AS keys (k, n)",
            ordered,
            seed,
        )


ItemT = TypeVar("ItemT")


async def claim_new(
    connection: Connection, items: Iterable[ItemT], event_id: Callable[[ItemT], str]
) -> list[ItemT]:
    """:func:`claim_new_event_ids` for whole items: the items seen for the first time, in their
    order, each id once (a duplicate inside one batch counts once)."""
    items = list(items)
    fresh = await claim_new_event_ids(connection, (event_id(item) for item in items))
    kept: list[ItemT] = []
    for item in items:
        key = event_id(item)
        if key in fresh:
            kept.append(item)
            fresh.discard(key)
    return kept
