"""Feedback in the read model: the risk-feedback events (for the monthly report's reviewer-judged
precision and misses) and what the console's feedback forms need to know of a ticket.

A feedback's redacted texts are not kept here: intake stores them as labelled examples. The
console takes the texts it puts in a feedback from this read model (what intake and the
classifier published redacted), never from the browser.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from riskrelay.reporting.model import FeedbackInputs, MissedRiskRow
from riskrelay.shared.events import RiskFeedbackEvent
from riskrelay.shared.store import Connection


async def apply_feedback(connection: Connection, events: Sequence[RiskFeedbackEvent]) -> None:
    if not events:
        return
    await connection.execute(
        """
        INSERT INTO risk_feedback (event_id, kind, ticket_id, risk_id, given_by, role, given_at,
                                   level, correct_level, indicators)
        SELECT event_id, kind, ticket_id, risk_id, given_by, role, given_at, level,
               correct_level, ARRAY(SELECT jsonb_array_elements_text(indicators))
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::timestamptz[], $8::smallint[], $9::smallint[], $10::jsonb[])
             AS u(event_id, kind, ticket_id, risk_id, given_by, role, given_at, level,
                  correct_level, indicators)
        ON CONFLICT (event_id) DO NOTHING
        """,
        [event.id for event in events],
        [event.data.kind.value for event in events],
        [event.data.ticket_id for event in events],
        [event.data.risk_id for event in events],
        [event.data.given_by for event in events],
        [event.data.role.value for event in events],
        [event.data.given_at for event in events],
        [event.data.level for event in events],
        [event.data.correct_level for event in events],
        [json.dumps([str(i) for i in event.data.indicators]) for event in events],
    )


@dataclass(frozen=True)
class TicketFacts:
    """What the read model knows of one ticket, for its feedback form."""

    ticket_id: str
    seen: bool
    """An upstream event of the ticket reached reporting."""
    flagged: bool
    redacted_subject: str | None
    detections: list[dict[str, Any]] = field(default_factory=list)
    """Every detection of every flag of the ticket, oldest flag first."""
    risk_id: str | None = None
    risk_title: str | None = None
    risk_level: int | None = None
    first_flagged_at: datetime | None = None

    @property
    def known(self) -> bool:
        return self.seen or self.flagged


async def ticket_facts(connection: Connection, ticket_id: str) -> TicketFacts:
    """The ticket's flags, its redacted subject and its risk (listed by a classification, else
    through its cluster, the rule the reports use) with the risk's latest level."""
    row = await connection.fetchrow(
        """
        SELECT EXISTS (SELECT 1 FROM tickets WHERE ticket_id = $1) AS seen,
               f.ticket_id IS NOT NULL AS flagged, f.first_flagged_at,
               coalesce(tr.risk_id, cr.risk_id) AS risk_id
        FROM (SELECT $1::text AS ticket_id) asked
        LEFT JOIN flagged_tickets f USING (ticket_id)
        LEFT JOIN ticket_risks tr USING (ticket_id)
        LEFT JOIN cluster_risks cr ON cr.cluster_id = f.cluster_id
        """,
        ticket_id,
    )
    assert row is not None  # the query always answers one row
    flags = await connection.fetch(
        "SELECT redacted_subject, detections::text AS detections FROM ticket_flag_details"
        " WHERE ticket_id = $1 ORDER BY occurred_at, event_id LIMIT 50",
        ticket_id,
    )
    risk = None
    if row["risk_id"] is not None:
        risk = await connection.fetchrow(
            "SELECT title, level FROM risk_classifications WHERE risk_id = $1"
            " ORDER BY classified_at DESC, event_id DESC LIMIT 1",
            row["risk_id"],
        )
    return TicketFacts(
        ticket_id=ticket_id,
        seen=row["seen"],
        flagged=row["flagged"],
        redacted_subject=flags[-1]["redacted_subject"] if flags else None,
        detections=[d for flag in flags for d in json.loads(flag["detections"])],
        risk_id=row["risk_id"] if risk is not None else None,
        risk_title=risk["title"] if risk is not None else None,
        risk_level=risk["level"] if risk is not None else None,
        first_flagged_at=row["first_flagged_at"],
    )


# ---------------------------------------------------------------------------------------------
# The Monthly Risk Report ($1 = start, $2 = end of the month, $3 = the report's time)
# ---------------------------------------------------------------------------------------------

_JUDGED_FLAGS = """
WITH flagged AS (
    SELECT f.ticket_id, coalesce(tr.risk_id, cr.risk_id) AS risk_id
    FROM flagged_tickets f
    LEFT JOIN ticket_risks tr USING (ticket_id)
    LEFT JOIN cluster_risks cr ON cr.cluster_id = f.cluster_id
    WHERE f.first_flagged_at >= $1 AND f.first_flagged_at < $2 AND f.first_flagged_at < $3
),
judged AS (
    SELECT flagged.ticket_id,
           bool_or(s.kind = 'not_a_risk') AS not_a_risk,
           count(s.event_id) > 0 AS reviewed
    FROM flagged
    LEFT JOIN risk_feedback s
      ON s.given_at < $3
     AND (s.ticket_id = flagged.ticket_id
          OR (s.ticket_id IS NULL AND s.risk_id = flagged.risk_id))
    GROUP BY flagged.ticket_id
)
SELECT count(*) AS flagged,
       count(*) FILTER (WHERE reviewed) AS reviewed,
       count(*) FILTER (WHERE not_a_risk) AS not_a_risk
FROM judged
"""

_WRONG_LEVELS = """
SELECT count(*) AS wrong_level,
       count(*) FILTER (WHERE correct_level < level) AS too_high,
       count(*) FILTER (WHERE correct_level > level) AS too_low
FROM risk_feedback
WHERE kind = 'wrong_level' AND given_at >= $1 AND given_at < $2 AND given_at < $3
"""

# Each ticket once, at its first report in the month.
_MISSED = """
SELECT ticket_id, indicators[1] AS indicator, given_at, role, count(*) OVER () AS total
FROM (
    SELECT DISTINCT ON (ticket_id) ticket_id, indicators, given_at, role
    FROM risk_feedback
    WHERE kind = 'missed_risk' AND given_at >= $1 AND given_at < $2 AND given_at < $3
    ORDER BY ticket_id, given_at, event_id
) first_reports
ORDER BY given_at, ticket_id
LIMIT $4
"""


async def feedback_inputs(
    connection: Connection, start: datetime, end: datetime, now: datetime, limit: int
) -> FeedbackInputs:
    judged = await connection.fetchrow(_JUDGED_FLAGS, start, end, now)
    levels = await connection.fetchrow(_WRONG_LEVELS, start, end, now)
    missed = await connection.fetch(_MISSED, start, end, now, limit)
    # Aggregates always answer one row.
    assert judged is not None
    assert levels is not None
    return FeedbackInputs(
        flagged=judged["flagged"],
        reviewed=judged["reviewed"],
        not_a_risk=judged["not_a_risk"],
        wrong_level=levels["wrong_level"],
        level_too_high=levels["too_high"],
        level_too_low=levels["too_low"],
        missed_total=missed[0]["total"] if missed else 0,
        missed=[
            MissedRiskRow(row["ticket_id"], row["indicator"], row["given_at"], row["role"])
            for row in missed
        ],
    )
