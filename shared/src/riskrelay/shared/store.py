"""Persistence helpers every service with a database uses (SQL for a service's own tables lives
in that service's ``store.py``)."""

from __future__ import annotations

from collections.abc import Iterable

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
