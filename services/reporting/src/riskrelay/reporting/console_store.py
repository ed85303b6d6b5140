"""The console's facts in the read model: why tickets and risks were flagged, and the queries
behind the risk page.

Only what intake and the classifier publish already redacted is kept (the redacted subject and
summary, each detection's redacted sentence); the upstream ticket text never reaches reporting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from riskrelay.shared.events import RiskClassifiedEvent, TicketFlaggedEvent
from riskrelay.shared.store import Connection

TICKETS_SHOWN = 200
FLAGS_READ = 500
TIMELINE_SHOWN = 500


def _json(models: Sequence[Any]) -> str:
    return json.dumps([model.model_dump(mode="json") for model in models])


async def apply_flag_details(connection: Connection, events: Sequence[TicketFlaggedEvent]) -> None:
    if not events:
        return
    await connection.execute(
        """
        INSERT INTO ticket_flag_details (event_id, ticket_id, occurred_at, redacted_subject,
                                         detections)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[])
        ON CONFLICT (event_id) DO NOTHING
        """,
        [event.id for event in events],
        [event.data.ticket_id for event in events],
        [event.data.occurred_at for event in events],
        [event.data.redacted_subject for event in events],
        [_json(event.data.indicators) for event in events],
    )


async def apply_risk_explanations(
    connection: Connection, events: Sequence[RiskClassifiedEvent]
) -> None:
    if not events:
        return
    await connection.execute(
        """
        INSERT INTO risk_explanations (event_id, risk_id, classified_at, distinct_customers,
            redacted_summary, policy_version, rules_fired, evidence, override)
        SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::text[],
                             $6::text[], $7::jsonb[], $8::jsonb[], $9::jsonb[])
        ON CONFLICT (event_id) DO NOTHING
        """,
        [event.id for event in events],
        [event.data.risk_id for event in events],
        [event.time for event in events],
        [event.data.distinct_customers for event in events],
        [event.data.redacted_summary for event in events],
        [event.data.policy_version for event in events],
        [_json(event.data.rules_fired) for event in events],
        [_json(event.data.evidence) for event in events],
        [
            json.dumps(event.data.override.model_dump(mode="json")) if event.data.override else None
            for event in events
        ],
    )


# ---------------------------------------------------------------------------------------------
# The risk page
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskFacts:
    risk_id: str
    title: str
    level: int
    category: str
    cluster_id: str | None
    ticket_count: int
    distinct_customers: int | None
    first_reported_at: datetime
    last_reported_at: datetime | None
    classified_at: datetime
    redacted_summary: str | None
    policy_version: str | None
    rules_fired: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    override: dict[str, Any] | None


@dataclass(frozen=True)
class Classification:
    classified_at: datetime
    level: int
    previous_level: int | None
    category: str
    overridden: bool


@dataclass(frozen=True)
class RiskTicket:
    ticket_id: str
    channel: str
    product: str
    customer_segment: str
    first_flagged_at: datetime
    last_flagged_at: datetime
    redacted_subject: str | None


@dataclass(frozen=True)
class TicketFlag:
    ticket_id: str
    occurred_at: datetime
    detections: list[dict[str, Any]]


@dataclass(frozen=True)
class TimelineEvent:
    """A notice, acknowledgement or breach of one of the risk's escalation steps."""

    at: datetime
    kind: str  # initial, reminder, pre_breach_warning, breach, weekly_review, acknowledged
    escalation_id: str
    step: int | None
    role: str
    level: int | None
    attempt: int | None = None
    acknowledged_by: str | None = None
    decision: str | None = None


@dataclass(frozen=True)
class RegisterEntry:
    version: int
    status: str
    level: int
    owner: str | None
    treatment: str | None
    next_review_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class RiskPage:
    facts: RiskFacts
    classifications: list[Classification]
    tickets: list[RiskTicket]
    ticket_total: int
    flags: list[TicketFlag]
    timeline: list[TimelineEvent]
    register: RegisterEntry | None


def _loads(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


# The risk's tickets: those its classifications listed, and those of its cluster no other risk
# listed (the same rule the reports use).
_RISK_TICKETS = """
    risk_tickets AS (
        SELECT ticket_id FROM ticket_risks WHERE risk_id = $1
        UNION
        SELECT f.ticket_id
        FROM cluster_risks cr JOIN flagged_tickets f ON f.cluster_id = cr.cluster_id
        WHERE cr.risk_id = $1
          AND NOT EXISTS (SELECT 1 FROM ticket_risks other
                          WHERE other.ticket_id = f.ticket_id AND other.risk_id <> $1)
    )"""


async def risk_page(connection: Connection, risk_id: str) -> RiskPage | None:
    """Everything the read model knows of one risk; None when it knows nothing."""
    latest = await connection.fetchrow(
        f"""
        WITH {_RISK_TICKETS}
        SELECT c.risk_id, c.title, c.level, c.category, c.cluster_id, c.ticket_count,
               c.first_reported_at, c.classified_at,
               e.distinct_customers, e.redacted_summary, e.policy_version,
               e.rules_fired::text AS rules_fired, e.evidence::text AS evidence,
               e.override::text AS override,
               -- The latest flag of its tickets, else (no flag seen here) its latest
               -- classification's flag time.
               coalesce(
                   (SELECT max(f.last_flagged_at) FROM risk_tickets JOIN flagged_tickets f
                    USING (ticket_id)),
                   (SELECT max(flagged_at) FROM risk_classifications WHERE risk_id = $1)
               ) AS last_reported_at
        FROM risk_classifications c
        LEFT JOIN risk_explanations e USING (event_id)
        WHERE c.risk_id = $1
        ORDER BY c.classified_at DESC, c.event_id DESC
        LIMIT 1
        """,
        risk_id,
    )
    if latest is None:
        return None
    facts = RiskFacts(
        risk_id=latest["risk_id"],
        title=latest["title"],
        level=latest["level"],
        category=latest["category"],
        cluster_id=latest["cluster_id"],
        ticket_count=latest["ticket_count"],
        distinct_customers=latest["distinct_customers"],
        first_reported_at=latest["first_reported_at"],
        last_reported_at=latest["last_reported_at"],
        classified_at=latest["classified_at"],
        redacted_summary=latest["redacted_summary"],
        policy_version=latest["policy_version"],
        rules_fired=_loads(latest["rules_fired"]) or [],
        evidence=_loads(latest["evidence"]) or [],
        override=_loads(latest["override"]),
    )
    classifications = [
        Classification(
            classified_at=row["classified_at"],
            level=row["level"],
            previous_level=row["previous_level"],
            category=row["category"],
            overridden=row["overridden"],
        )
        for row in await connection.fetch(
            "SELECT classified_at, level, previous_level, category, overridden"
            " FROM risk_classifications WHERE risk_id = $1 ORDER BY classified_at, event_id",
            risk_id,
        )
    ]
    ticket_rows = await connection.fetch(
        f"""
        WITH {_RISK_TICKETS}
        SELECT f.ticket_id, f.channel, f.product, f.customer_segment, f.first_flagged_at,
               f.last_flagged_at, d.redacted_subject, count(*) OVER () AS total
        FROM risk_tickets JOIN flagged_tickets f USING (ticket_id)
        LEFT JOIN LATERAL (
            SELECT redacted_subject FROM ticket_flag_details d
            WHERE d.ticket_id = f.ticket_id ORDER BY occurred_at DESC, event_id DESC LIMIT 1
        ) d ON true
        ORDER BY f.first_flagged_at, f.ticket_id
        LIMIT {TICKETS_SHOWN}
        """,
        risk_id,
    )
    flag_rows = await connection.fetch(
        f"""
        WITH {_RISK_TICKETS}
        SELECT d.ticket_id, d.occurred_at, d.detections::text AS detections
        FROM risk_tickets JOIN ticket_flag_details d USING (ticket_id)
        ORDER BY d.occurred_at, d.event_id
        LIMIT {FLAGS_READ}
        """,
        risk_id,
    )
    return RiskPage(
        facts=facts,
        classifications=classifications,
        tickets=[_ticket(row) for row in ticket_rows],
        ticket_total=ticket_rows[0]["total"] if ticket_rows else 0,
        flags=[
            TicketFlag(row["ticket_id"], row["occurred_at"], json.loads(row["detections"]))
            for row in flag_rows
        ],
        timeline=await _timeline(connection, risk_id),
        register=await _register_entry(connection, risk_id),
    )


def _ticket(row: asyncpg.Record) -> RiskTicket:
    return RiskTicket(
        ticket_id=row["ticket_id"],
        channel=row["channel"],
        product=row["product"],
        customer_segment=row["customer_segment"],
        first_flagged_at=row["first_flagged_at"],
        last_flagged_at=row["last_flagged_at"],
        redacted_subject=row["redacted_subject"],
    )


async def _timeline(connection: Connection, risk_id: str) -> list[TimelineEvent]:
    rows = await connection.fetch(
        f"""
        (SELECT due_at AS at, reason AS kind, escalation_id, step, target_role AS role, level,
                attempt, NULL AS acknowledged_by, NULL AS decision, event_id
         FROM escalation_notices WHERE risk_id = $1)
        UNION ALL
        (SELECT acknowledged_at, 'acknowledged', escalation_id, NULL, role, NULL, NULL,
                acknowledged_by, decision, event_id
         FROM escalation_acks WHERE risk_id = $1)
        ORDER BY at, event_id
        LIMIT {TIMELINE_SHOWN}
        """,
        risk_id,
    )
    return [
        TimelineEvent(
            at=row["at"],
            kind=row["kind"],
            escalation_id=row["escalation_id"],
            step=row["step"],
            role=row["role"],
            level=row["level"],
            attempt=row["attempt"],
            acknowledged_by=row["acknowledged_by"],
            decision=row["decision"],
        )
        for row in rows
    ]


async def _register_entry(connection: Connection, risk_id: str) -> RegisterEntry | None:
    row = await connection.fetchrow(
        "SELECT version, status, level, owner, treatment, next_review_at, updated_at"
        " FROM register_versions WHERE risk_id = $1 ORDER BY version DESC LIMIT 1",
        risk_id,
    )
    if row is None:
        return None
    return RegisterEntry(
        version=row["version"],
        status=row["status"],
        level=row["level"],
        owner=row["owner"],
        treatment=row["treatment"],
        next_review_at=row["next_review_at"],
        updated_at=row["updated_at"],
    )
