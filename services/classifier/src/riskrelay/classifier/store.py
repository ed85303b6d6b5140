"""Classifier persistence: one JSON state row per risk, serialized per risk across instances.

Two classifier instances may receive tickets of the same risk (tickets are keyed by ticket id,
so one cluster's tickets spread over partitions). Every transaction takes a transaction-scoped
advisory lock per risk id, in sorted order (no deadlocks), before reading the state: the second
instance waits and then sees the first one's result, so a risk never gets two ids or two
conflicting levels.
"""

from __future__ import annotations

from collections.abc import Iterable

from riskrelay.classifier.domain import RiskState
from riskrelay.shared.store import Connection, LockSpace, lock_keys

RISK_LOCKS = LockSpace()
"""A risk's lock key is its bare id (seed 0), as it has been since the first release."""


async def lock_risks(connection: Connection, risk_ids: Iterable[str]) -> None:
    await lock_keys(connection, RISK_LOCKS.of(risk_ids))


async def load_states(connection: Connection, risk_ids: Iterable[str]) -> dict[str, RiskState]:
    rows = await connection.fetch(
        "SELECT risk_id, state::text AS state FROM risks WHERE risk_id = ANY($1::text[])",
        list(set(risk_ids)),
    )
    return {row["risk_id"]: RiskState.model_validate_json(row["state"]) for row in rows}


async def save_states(connection: Connection, states: Iterable[RiskState]) -> None:
    rows = [(s.risk_id, s.model_dump_json(), int(s.level)) for s in states]
    if rows:
        await connection.executemany(
            "INSERT INTO risks (risk_id, state, level) VALUES ($1, $2::jsonb, $3)"
            " ON CONFLICT (risk_id) DO UPDATE SET state = EXCLUDED.state, level = EXCLUDED.level,"
            " updated_at = now()",
            rows,
        )
