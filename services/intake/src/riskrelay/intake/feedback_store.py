"""Intake's risk_feedback table: people's feedback kept as labelled examples.

:func:`save_feedback` runs in the consumer's transaction (each event once, by id);
:func:`load_feedback` is what ``riskrelay train --with-feedback`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from riskrelay.intake.feedback import StoredFeedback, with_ticket_texts
from riskrelay.shared.events import RiskFeedback, RiskFeedbackEvent
from riskrelay.shared.store import Connection, claim_new

_INSERT = """
INSERT INTO risk_feedback (event_id, kind, ticket_id, risk_id, given_by, role, given_at, level,
                           correct_level, indicators, texts, note)
SELECT event_id, kind, ticket_id, risk_id, given_by, role, given_at, level, correct_level,
       ARRAY(SELECT jsonb_array_elements_text(payload->'indicators')), payload->'texts', note
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::timestamptz[], $8::smallint[], $9::smallint[], $10::jsonb[], $11::text[])
     AS u(event_id, kind, ticket_id, risk_id, given_by, role, given_at, level, correct_level,
          payload, note)
ON CONFLICT (event_id) DO NOTHING
"""


async def _ticket_texts(connection: Connection, ticket_ids: set[str]) -> dict[str, tuple[str, str]]:
    """The redacted subject and summary intake remembers of each ticket it has seen."""
    if not ticket_ids:
        return {}
    rows = await connection.fetch(
        "SELECT ticket_id, assessment->>'redacted_subject' AS subject,"
        " assessment->>'redacted_summary' AS summary FROM tickets WHERE ticket_id = ANY($1)",
        sorted(ticket_ids),
    )
    return {row["ticket_id"]: (row["subject"] or "", row["summary"] or "") for row in rows}


async def save_feedback(
    connection: Connection, events: Sequence[RiskFeedbackEvent]
) -> list[RiskFeedback]:
    """Store the feedback events not stored before, each completed with the redacted texts
    intake keeps of its ticket; returns those stored. Call inside a transaction."""
    fresh = await claim_new(connection, events, lambda event: event.id)
    if not fresh:
        return []
    memory = await _ticket_texts(connection, {e.data.ticket_id for e in fresh if e.data.ticket_id})
    rows = []
    for event in fresh:
        feedback = event.data
        if feedback.ticket_id in memory:
            feedback = with_ticket_texts(feedback, *memory[feedback.ticket_id])
        rows.append((event.id, feedback))
    await connection.execute(
        _INSERT,
        [event_id for event_id, _ in rows],
        [f.kind.value for _, f in rows],
        [f.ticket_id for _, f in rows],
        [f.risk_id for _, f in rows],
        [f.given_by for _, f in rows],
        [f.role.value for _, f in rows],
        [f.given_at for _, f in rows],
        [f.level for _, f in rows],
        [f.correct_level for _, f in rows],
        [f.model_dump_json(include={"indicators", "texts"}, exclude_none=True) for _, f in rows],
        [f.note for _, f in rows],
    )
    return [feedback for _, feedback in rows]


async def load_feedback(connection: Connection) -> list[StoredFeedback]:
    """Every stored feedback, oldest first."""
    rows = await connection.fetch(
        """
        SELECT event_id, kind, ticket_id, risk_id, given_by, role, given_at, level,
               correct_level, indicators, texts::text AS texts, note
        FROM risk_feedback ORDER BY given_at, event_id
        """
    )
    return [
        StoredFeedback(
            row["event_id"],
            RiskFeedback(
                kind=row["kind"],
                ticket_id=row["ticket_id"],
                risk_id=row["risk_id"],
                given_by=row["given_by"],
                role=row["role"],
                given_at=row["given_at"],
                level=row["level"],
                correct_level=row["correct_level"],
                indicators=list(row["indicators"]),
                texts=json.loads(row["texts"]),
                note=row["note"],
            ),
        )
        for row in rows
    ]
