"""The Weekly Risk Review's record: what the meeting decided about each agenda item.

A decision is recorded here only after the owning service (escalator, classifier, register)
accepted the action it stands for, so the record never claims what did not happen.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from riskrelay.reporting.model import ReviewDecisionRow
from riskrelay.shared.store import Connection

DECISIONS_SHOWN = 500


def _row(record: asyncpg.Record) -> ReviewDecisionRow:
    return ReviewDecisionRow(
        decision_id=record["decision_id"],
        risk_id=record["risk_id"],
        title=record["title"],
        level=record["level"],
        agenda=record["agenda"],
        decision=record["decision"],
        detail=record["detail"],
        note=record["note"],
        decided_by=record["decided_by"],
        decided_by_name=record["decided_by_name"],
        decided_at=record["decided_at"],
    )


async def record_decision(connection: Connection, decision: ReviewDecisionRow) -> None:
    await connection.execute(
        """
        INSERT INTO review_decisions (decision_id, risk_id, title, level, agenda, decision,
                                      detail, note, decided_by, decided_by_name, decided_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (decision_id) DO NOTHING
        """,
        decision.decision_id,
        decision.risk_id,
        decision.title,
        decision.level,
        decision.agenda,
        decision.decision,
        decision.detail,
        decision.note,
        decision.decided_by,
        decision.decided_by_name,
        decision.decided_at,
    )


async def decisions_between(
    connection: Connection, start: datetime, end: datetime, now: datetime
) -> list[ReviewDecisionRow]:
    """Decisions taken in ``[start, end)`` and by ``now``, oldest first."""
    rows = await connection.fetch(
        """
        SELECT * FROM review_decisions
        WHERE decided_at >= $1 AND decided_at < $2 AND decided_at <= $3
        ORDER BY decided_at, decision_id
        LIMIT $4
        """,
        start,
        end,
        now,
        DECISIONS_SHOWN,
    )
    return [_row(row) for row in rows]


async def risk_facts(
    connection: Connection, risk_id: str, now: datetime
) -> tuple[str, int | None] | None:
    """A risk's latest title and level as the read model knows them (None: unknown risk)."""
    row = await connection.fetchrow(
        """
        SELECT title, level FROM (
            SELECT title, level, classified_at AS at, 1 AS source FROM risk_classifications
            WHERE risk_id = $1 AND classified_at <= $2
            UNION ALL
            SELECT title, level, updated_at AS at, 0 AS source FROM register_versions
            WHERE risk_id = $1 AND updated_at <= $2
        ) known
        ORDER BY at DESC, source DESC
        LIMIT 1
        """,
        risk_id,
        now,
    )
    return None if row is None else (row["title"], row["level"])


async def register_versions(connection: Connection, risk_ids: Sequence[str]) -> dict[str, int]:
    """The latest register version the read model holds of each risk (the If-Match base)."""
    if not risk_ids:
        return {}
    rows = await connection.fetch(
        "SELECT risk_id, max(version) AS version FROM register_versions"
        " WHERE risk_id = ANY($1::text[]) GROUP BY risk_id",
        list(risk_ids),
    )
    return {row["risk_id"]: row["version"] for row in rows}
