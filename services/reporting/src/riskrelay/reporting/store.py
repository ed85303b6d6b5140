"""Reporting's SQL: applying events to the read model, and the aggregations behind every report.

Writes are batched: one ``INSERT ... SELECT FROM unnest(...)`` per table per batch, idempotent
through primary keys (``ON CONFLICT DO NOTHING``) or order-independent upserts (``LEAST`` /
``GREATEST``), so a replayed or reordered event changes nothing.

Reads are aggregations (``GROUP BY``, ``GROUPING SETS``, ``FILTER``, ``percentile_cont``,
``date_trunc``); lists are capped with the full count alongside. A ticket belongs to the risk
whose ``risk-classified`` ticket list names it, else to the risk of its cluster; its level and
category are its risk's latest as of the report's ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

import asyncpg

from riskrelay.reporting import review_store
from riskrelay.reporting.feedback_store import feedback_inputs
from riskrelay.reporting.model import (
    CountRow,
    EscalationRow,
    MitigationRow,
    MonthlyInputs,
    NearMissRow,
    PeriodCountRow,
    RecurringRow,
    RiskActivityRow,
    RiskItem,
    RiskList,
    TrendRow,
    WeeklyInputs,
)
from riskrelay.reporting.periods import Period
from riskrelay.shared.events import (
    EscalationAcknowledgedEvent,
    EscalationDueEvent,
    EscalationReason,
    RiskClassifiedEvent,
    RiskRegisteredEvent,
    TicketEvent,
    TicketEventKind,
    TicketFlaggedEvent,
)
from riskrelay.shared.store import Connection as Connection

LIST_LIMIT = 100
# Report queries hash-join and aggregate a month of tickets: enough memory to stay off disk.
REPORT_WORK_MEM = "64MB"

# A plain connection or one borrowed from a pool: the same API.

# ---------------------------------------------------------------------------------------------
# Applying events
# ---------------------------------------------------------------------------------------------


def normalized_label(value: str) -> str:
    """Channel and product labels as grouped in reports (upstream spelling varies in case)."""
    return " ".join(value.split()).lower() or "unknown"


async def apply_ticket_events(connection: Connection, events: Sequence[TicketEvent]) -> None:
    """Only ids, channel, product and times are kept: upstream text may hold personal data."""
    tickets: dict[str, list[Any]] = {}
    for event in sorted(events, key=lambda e: (e.time, e.id)):
        data = event.data
        closed = event.time if event.kind is TicketEventKind.CLOSED else None
        row = tickets.get(data.ticket_id)
        if row is None:
            tickets[data.ticket_id] = [
                data.ticket_id,
                normalized_label(data.channel),
                data.product.strip() or "unknown",
                event.time,
                event.time,
                closed,
            ]
        else:
            row[4] = max(row[4], event.time)
            row[5] = closed or row[5]
    if not tickets:
        return
    await connection.execute(
        """
        INSERT INTO tickets AS t (ticket_id, channel, product, first_seen_at, last_event_at, closed_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                             $5::timestamptz[], $6::timestamptz[])
        ON CONFLICT (ticket_id) DO UPDATE SET
            channel = CASE WHEN excluded.first_seen_at < t.first_seen_at
                           THEN excluded.channel ELSE t.channel END,
            product = CASE WHEN excluded.first_seen_at < t.first_seen_at
                           THEN excluded.product ELSE t.product END,
            first_seen_at = LEAST(t.first_seen_at, excluded.first_seen_at),
            last_event_at = GREATEST(t.last_event_at, excluded.last_event_at),
            closed_at = GREATEST(t.closed_at, excluded.closed_at)
        """,
        *_columns(tickets.values(), 6),
    )


def _columns(rows: Iterable[Sequence[Any]], width: int) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for index in range(width):
            columns[index].append(row[index])
    return columns


async def apply_flags(connection: Connection, events: Sequence[TicketFlaggedEvent]) -> None:
    tickets: dict[str, list[Any]] = {}
    clusters: dict[str, list[Any]] = {}
    for event in sorted(events, key=lambda e: (e.data.occurred_at, e.id)):
        data = event.data
        at = data.occurred_at
        cluster_id = data.cluster.cluster_id if data.cluster else None
        row = tickets.get(data.ticket_id)
        if row is None:
            tickets[data.ticket_id] = [
                data.ticket_id,
                at,
                at,
                normalized_label(data.channel),
                data.product.strip() or "unknown",
                data.customer_segment,
                cluster_id,
            ]
        else:
            row[2] = max(row[2], at)
            row[6] = row[6] or cluster_id
        if data.cluster is not None:
            info = data.cluster
            known = clusters.get(info.cluster_id)
            if known is None:
                clusters[info.cluster_id] = [
                    info.cluster_id,
                    info.size,
                    info.distinct_customers,
                    info.surging,
                    info.first_seen_at,
                    at,
                    data.product.strip() or "unknown",
                ]
            else:
                known[1] = max(known[1], info.size)
                known[2] = max(known[2], info.distinct_customers)
                known[3] = known[3] or info.surging
                known[4] = min(known[4], info.first_seen_at)
                known[5] = max(known[5], at)
    if tickets:
        await connection.execute(
            """
            INSERT INTO flagged_tickets AS f (ticket_id, first_flagged_at, last_flagged_at, channel,
                                              product, customer_segment, cluster_id)
            SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[],
                                 $5::text[], $6::text[], $7::text[])
            ON CONFLICT (ticket_id) DO UPDATE SET
                channel = CASE WHEN excluded.first_flagged_at < f.first_flagged_at
                               THEN excluded.channel ELSE f.channel END,
                product = CASE WHEN excluded.first_flagged_at < f.first_flagged_at
                               THEN excluded.product ELSE f.product END,
                customer_segment = CASE WHEN excluded.first_flagged_at < f.first_flagged_at
                               THEN excluded.customer_segment ELSE f.customer_segment END,
                cluster_id = COALESCE(f.cluster_id, excluded.cluster_id),
                first_flagged_at = LEAST(f.first_flagged_at, excluded.first_flagged_at),
                last_flagged_at = GREATEST(f.last_flagged_at, excluded.last_flagged_at)
            """,
            *_columns(tickets.values(), 7),
        )
    if clusters:
        await connection.execute(
            """
            INSERT INTO clusters AS c (cluster_id, size, distinct_customers, surging, first_seen_at,
                                       last_flagged_at, product)
            SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::bool[], $5::timestamptz[],
                                 $6::timestamptz[], $7::text[])
            ON CONFLICT (cluster_id) DO UPDATE SET
                size = GREATEST(c.size, excluded.size),
                distinct_customers = GREATEST(c.distinct_customers, excluded.distinct_customers),
                surging = c.surging OR excluded.surging,
                first_seen_at = LEAST(c.first_seen_at, excluded.first_seen_at),
                last_flagged_at = GREATEST(c.last_flagged_at, excluded.last_flagged_at)
            """,
            *_columns(clusters.values(), 7),
        )


async def apply_classifications(
    connection: Connection, events: Sequence[RiskClassifiedEvent]
) -> None:
    if not events:
        return
    rows = [
        (
            event.id,
            event.data.risk_id,
            int(event.data.level),
            int(event.data.previous_level) if event.data.previous_level is not None else None,
            event.data.category.value,
            event.data.cluster_id,
            event.data.title,
            event.data.ticket_count,
            event.data.first_reported_at,
            event.data.flagged_at,
            event.time,
            event.data.override is not None,
        )
        for event in events
    ]
    await connection.execute(
        """
        INSERT INTO risk_classifications (event_id, risk_id, level, previous_level, category,
            cluster_id, title, ticket_count, first_reported_at, flagged_at, classified_at, overridden)
        SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[], $4::smallint[], $5::text[],
            $6::text[], $7::text[], $8::int[], $9::timestamptz[], $10::timestamptz[],
            $11::timestamptz[], $12::bool[])
        ON CONFLICT (event_id) DO NOTHING
        """,
        *_columns(rows, 12),
    )
    ticket_risk: dict[str, str] = {}
    cluster_risk: dict[str, str] = {}
    for event in events:
        risk_id = event.data.risk_id
        for ticket_id in [event.data.ticket_id, *event.data.ticket_ids]:
            ticket_risk[ticket_id] = min(ticket_risk.get(ticket_id, risk_id), risk_id)
        if event.data.cluster_id:
            known = cluster_risk.get(event.data.cluster_id, risk_id)
            cluster_risk[event.data.cluster_id] = min(known, risk_id)
    # The smallest risk id wins whatever the arrival order, so replays and reorders agree.
    await connection.execute(
        """
        INSERT INTO ticket_risks AS t (ticket_id, risk_id)
        SELECT * FROM unnest($1::text[], $2::text[])
        ON CONFLICT (ticket_id) DO UPDATE SET risk_id = excluded.risk_id
        WHERE excluded.risk_id < t.risk_id
        """,
        list(ticket_risk),
        list(ticket_risk.values()),
    )
    if cluster_risk:
        await connection.execute(
            """
            INSERT INTO cluster_risks AS c (cluster_id, risk_id)
            SELECT * FROM unnest($1::text[], $2::text[])
            ON CONFLICT (cluster_id) DO UPDATE SET risk_id = excluded.risk_id
            WHERE excluded.risk_id < c.risk_id
            """,
            list(cluster_risk),
            list(cluster_risk.values()),
        )


async def apply_escalation_notices(
    connection: Connection, events: Sequence[EscalationDueEvent]
) -> None:
    if not events:
        return
    rows = [
        (
            e.id,
            e.data.escalation_id,
            e.data.risk_id,
            int(e.data.level),
            e.data.step,
            e.data.target_role.value,
            e.data.reason.value,
            e.data.due_at,
            e.data.ack_due_at,
            e.data.timeframe_due_at,
            e.data.attempt,
        )
        for e in events
    ]
    await connection.execute(
        """
        INSERT INTO escalation_notices (event_id, escalation_id, risk_id, level, step, target_role,
            reason, due_at, ack_due_at, timeframe_due_at, attempt)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::int[],
            $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[],
            $11::int[])
        ON CONFLICT (event_id) DO NOTHING
        """,
        *_columns(rows, 11),
    )


async def apply_acknowledgements(
    connection: Connection, events: Sequence[EscalationAcknowledgedEvent]
) -> None:
    if not events:
        return
    rows = [
        (
            e.id,
            e.data.escalation_id,
            e.data.risk_id,
            e.data.role.value,
            e.data.acknowledged_by,
            e.data.acknowledged_at,
            e.data.decision.value if e.data.decision else None,
        )
        for e in events
    ]
    await connection.execute(
        """
        INSERT INTO escalation_acks (event_id, escalation_id, risk_id, role, acknowledged_by,
            acknowledged_at, decision)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
            $6::timestamptz[], $7::text[])
        ON CONFLICT (event_id) DO NOTHING
        """,
        *_columns(rows, 7),
    )


async def apply_register_entries(
    connection: Connection, events: Sequence[RiskRegisteredEvent]
) -> None:
    if not events:
        return
    rows = [
        (
            e.data.risk_id,
            e.data.version,
            e.id,
            int(e.data.level),
            e.data.category.value,
            e.data.status.value,
            e.data.title,
            e.data.owner,
            e.data.treatment.value if e.data.treatment else None,
            e.data.first_reported_at,
            e.data.ticket_count,
            e.data.next_review_at,
            e.data.updated_at,
        )
        for e in events
    ]
    await connection.execute(
        """
        INSERT INTO register_versions (risk_id, version, event_id, level, category, status, title,
            owner, treatment, first_reported_at, ticket_count, next_review_at, updated_at)
        SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::smallint[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::int[],
            $12::timestamptz[], $13::timestamptz[])
        ON CONFLICT (risk_id, version) DO NOTHING
        """,
        *_columns(rows, 13),
    )


@dataclass(frozen=True)
class DeadLetterRow:
    """One record of a dead-letter topic: where it is, and the source record it stands for
    (``source_partition``/``source_offset`` None when its headers do not say)."""

    topic: str
    partition: int
    offset: int
    source_topic: str
    failed_at: datetime | None
    source_partition: int | None = None
    source_offset: int | None = None
    consumer_group: str | None = None


async def apply_dead_letters(connection: Connection, rows: Sequence[DeadLetterRow]) -> int:
    """Record dead letters by position (idempotent); returns how many were new."""
    if not rows:
        return 0
    inserted = await connection.fetch(
        """
        INSERT INTO dead_letters (topic, partition, "offset", source_topic, failed_at,
                                  source_partition, source_offset, consumer_group)
        SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[], $5::timestamptz[],
                             $6::int[], $7::bigint[], $8::text[])
        ON CONFLICT DO NOTHING
        RETURNING 1
        """,
        *_columns(
            [
                (
                    r.topic,
                    r.partition,
                    r.offset,
                    r.source_topic,
                    r.failed_at,
                    r.source_partition,
                    r.source_offset,
                    r.consumer_group,
                )
                for r in rows
            ],
            8,
        ),
    )
    return len(inserted)


# ---------------------------------------------------------------------------------------------
# Shared query fragments
# ---------------------------------------------------------------------------------------------


def _risk_now(now: str) -> str:
    """Each risk's latest classification known at ``now`` (a SQL parameter reference)."""
    return f"""
    risk_now AS (
        SELECT DISTINCT ON (risk_id) risk_id, level, category, title, cluster_id, ticket_count,
               first_reported_at
        FROM risk_classifications
        WHERE classified_at <= {now}
        ORDER BY risk_id, classified_at DESC, event_id DESC
    )"""


def _register_now(now: str) -> str:
    return f"""
    register_now AS (
        SELECT DISTINCT ON (risk_id) risk_id, level, status, title, owner, ticket_count,
               next_review_at, first_reported_at
        FROM register_versions
        WHERE updated_at <= {now}
        ORDER BY risk_id, version DESC
    )"""


def _flagged(start: str, end: str, now: str) -> str:
    """Tickets first flagged in ``[start, end)`` (and by ``now``), with the risk they belong to."""
    return f"""
    flagged AS (
        SELECT f.ticket_id, f.channel, f.product, f.first_flagged_at,
               COALESCE(tr.risk_id, cr.risk_id) AS risk_id
        FROM flagged_tickets f
        LEFT JOIN ticket_risks tr ON tr.ticket_id = f.ticket_id
        LEFT JOIN cluster_risks cr ON cr.cluster_id = f.cluster_id
        WHERE f.first_flagged_at >= {start} AND f.first_flagged_at < {end}
          AND f.first_flagged_at <= {now}
    )"""


def _tickets_after(risks: str, after_column: str, now: str) -> str:
    """Tickets of each risk in CTE ``risks`` first flagged after its ``after_column``, found
    through the ticket list or the cluster (index lookups, no scan of every ticket)."""
    return f"""
    tickets_after AS (
        SELECT k.risk_id, f.ticket_id, f.first_flagged_at
        FROM {risks} k
        JOIN ticket_risks tr ON tr.risk_id = k.risk_id
        JOIN flagged_tickets f ON f.ticket_id = tr.ticket_id
        WHERE f.first_flagged_at > k.{after_column} AND f.first_flagged_at <= {now}
        UNION
        SELECT k.risk_id, f.ticket_id, f.first_flagged_at
        FROM {risks} k
        JOIN cluster_risks cr ON cr.risk_id = k.risk_id
        JOIN flagged_tickets f ON f.cluster_id = cr.cluster_id
        WHERE f.first_flagged_at > k.{after_column} AND f.first_flagged_at <= {now}
          AND NOT EXISTS (SELECT 1 FROM ticket_risks other
                          WHERE other.ticket_id = f.ticket_id AND other.risk_id <> k.risk_id)
    )"""


# Where the read model's knowledge starts: its earliest fact of any kind (indexed minimums). Dead
# letters are left out: their times are when a consumer failed, not when anything happened.
_DATA_SINCE = """
SELECT LEAST(
    (SELECT min(first_seen_at) FROM tickets),
    (SELECT min(first_flagged_at) FROM flagged_tickets),
    (SELECT min(classified_at) FROM risk_classifications),
    (SELECT min(due_at) FROM escalation_notices),
    (SELECT min(updated_at) FROM register_versions)
)
"""


async def data_since(connection: Connection) -> datetime | None:
    """Time of the first event the read model holds; None when it holds none."""
    found: datetime | None = await connection.fetchval(_DATA_SINCE)
    return found


def _risk_item(row: asyncpg.Record) -> RiskItem:
    return RiskItem(
        risk_id=row["risk_id"],
        level=row["level"],
        category=row["category"],
        title=row["title"],
        status=row["status"],
        owner=row["owner"],
        first_reported_at=row["first_reported_at"],
        ticket_count=row["ticket_count"],
        tickets_in_period=row["tickets_in_period"],
        next_review_at=row["next_review_at"],
    )


def _risk_list(rows: Sequence[asyncpg.Record]) -> RiskList:
    return RiskList(total=rows[0]["total"] if rows else 0, items=[_risk_item(r) for r in rows])


# ---------------------------------------------------------------------------------------------
# Weekly queries
# ---------------------------------------------------------------------------------------------

_FLAGGED_COUNTS = f"""
WITH {_risk_now("$3")}, {_flagged("$1", "$2", "$3")},
per_risk AS (
    SELECT f.risk_id, f.channel, f.product, count(*) AS tickets
    FROM flagged f
    GROUP BY 1, 2, 3
),
fine AS (
    SELECT r.level, r.category, p.channel, p.product, sum(p.tickets) AS tickets
    FROM per_risk p
    LEFT JOIN risk_now r ON r.risk_id = p.risk_id
    GROUP BY 1, 2, 3, 4
)
SELECT CASE WHEN GROUPING(level) = 0 THEN 'level'
            WHEN GROUPING(category) = 0 THEN 'category'
            WHEN GROUPING(channel) = 0 THEN 'channel'
            WHEN GROUPING(product) = 0 THEN 'product'
            ELSE 'total' END AS dimension,
       CASE WHEN GROUPING(level) = 0 THEN level::text
            WHEN GROUPING(category) = 0 THEN category
            WHEN GROUPING(channel) = 0 THEN channel
            WHEN GROUPING(product) = 0 THEN product END AS key,
       COALESCE(sum(tickets), 0)::bigint AS tickets
FROM fine
GROUP BY GROUPING SETS ((level), (category), (channel), (product), ())
"""

_RISK_ACTIVITY = f"""
WITH {_risk_now("$3")}, {_flagged("$1", "$2", "$3")},
active AS (
    SELECT risk_id FROM flagged WHERE risk_id IS NOT NULL
    UNION
    SELECT risk_id FROM risk_classifications
    WHERE classified_at >= $1 AND classified_at < $2 AND classified_at <= $3
),
first_seen AS (
    SELECT risk_id, min(classified_at) AS first_classified_at
    FROM risk_classifications
    WHERE risk_id IN (SELECT risk_id FROM active)
    GROUP BY risk_id
),
closed_before AS (
    SELECT DISTINCT risk_id FROM register_versions WHERE status = 'closed' AND updated_at < $1
)
SELECT r.level,
       count(*) AS active,
       count(*) FILTER (WHERE s.first_classified_at >= $1) AS new,
       count(*) FILTER (WHERE s.first_classified_at < $1) AS recurring,
       count(c.risk_id) AS returned_after_closure
FROM active a
JOIN risk_now r USING (risk_id)
JOIN first_seen s USING (risk_id)
LEFT JOIN closed_before c USING (risk_id)
GROUP BY r.level
"""

_ESCALATIONS = f"""
WITH steps AS (
    SELECT escalation_id, max(level) AS level, min(due_at) AS first_due_at,
           min(ack_due_at) AS ack_due_at
    FROM escalation_notices
    WHERE reason <> '{EscalationReason.BREACH.value}' AND due_at <= $3
    GROUP BY escalation_id
    HAVING min(due_at) >= $1 AND min(due_at) < $2
),
acks AS (
    SELECT escalation_id, min(acknowledged_at) AS acknowledged_at
    FROM escalation_acks
    WHERE acknowledged_at <= $3 AND escalation_id IN (SELECT escalation_id FROM steps)
    GROUP BY escalation_id
),
per_step AS (
    SELECT s.level, s.ack_due_at, a.acknowledged_at,
           extract(epoch FROM a.acknowledged_at - s.first_due_at)::float8 AS ack_seconds
    FROM steps s LEFT JOIN acks a USING (escalation_id)
),
per_level AS (
    SELECT level,
           count(*) AS steps,
           count(ack_due_at) AS with_deadline,
           count(acknowledged_at) AS acknowledged,
           count(*) FILTER (WHERE acknowledged_at <= ack_due_at) AS in_time,
           count(*) FILTER (WHERE acknowledged_at > ack_due_at) AS late,
           count(*) FILTER (WHERE acknowledged_at IS NULL AND ack_due_at < $3) AS overdue,
           count(*) FILTER (WHERE acknowledged_at IS NULL AND ack_due_at >= $3) AS pending,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ack_seconds) AS median_seconds,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY ack_seconds) AS p90_seconds
    FROM per_step
    GROUP BY GROUPING SETS ((level), ())
),
breaches AS (
    SELECT level, count(DISTINCT escalation_id) AS notices
    FROM escalation_notices
    WHERE reason = '{EscalationReason.BREACH.value}'
      AND due_at >= $1 AND due_at < $2 AND due_at <= $3
    GROUP BY GROUPING SETS ((level), ())
)
SELECT COALESCE(p.level, b.level) AS level,
       COALESCE(p.steps, 0) AS steps, COALESCE(p.with_deadline, 0) AS with_deadline,
       COALESCE(p.acknowledged, 0) AS acknowledged, COALESCE(p.in_time, 0) AS in_time,
       COALESCE(p.late, 0) AS late, COALESCE(p.overdue, 0) AS overdue,
       COALESCE(p.pending, 0) AS pending, COALESCE(b.notices, 0) AS breach_notices,
       p.median_seconds, p.p90_seconds
FROM per_level p
FULL JOIN breaches b ON COALESCE(b.level, 0) = COALESCE(p.level, 0)
"""

_OPEN_RISKS = f"""
WITH {_risk_now("$1")}, {_register_now("$1")}
SELECT r.risk_id, r.level, r.category, COALESCE(g.title, r.title) AS title, g.status, g.owner,
       r.first_reported_at, GREATEST(r.ticket_count, COALESCE(g.ticket_count, 0)) AS ticket_count,
       0 AS tickets_in_period, g.next_review_at, count(*) OVER () AS total
FROM risk_now r
LEFT JOIN register_now g USING (risk_id)
WHERE r.level >= 3 AND COALESCE(g.status, '') <> 'closed'
ORDER BY r.level DESC, r.first_reported_at, r.risk_id
LIMIT $2
"""

_AGENDA_LOW = f"""
WITH {_risk_now("$3")}, {_flagged("$1", "$2", "$3")},
per_risk AS (
    SELECT risk_id, count(*) AS tickets FROM flagged WHERE risk_id IS NOT NULL GROUP BY risk_id
),
active AS (
    SELECT risk_id FROM per_risk
    UNION
    SELECT risk_id FROM risk_classifications
    WHERE classified_at >= $1 AND classified_at < $2 AND classified_at <= $3
)
SELECT r.risk_id, r.level, r.category, r.title, NULL::text AS status, NULL::text AS owner,
       r.first_reported_at, r.ticket_count, COALESCE(p.tickets, 0) AS tickets_in_period,
       NULL::timestamptz AS next_review_at, count(*) OVER () AS total
FROM active a
JOIN risk_now r USING (risk_id)
LEFT JOIN per_risk p USING (risk_id)
WHERE r.level <= 2
ORDER BY r.level DESC, tickets_in_period DESC, r.first_reported_at, r.risk_id
LIMIT $4
"""

_AGENDA_LEVEL3 = f"""
WITH {_risk_now("$1")}, {_register_now("$1")}
SELECT r.risk_id, r.level, r.category, COALESCE(g.title, r.title) AS title, g.status, g.owner,
       r.first_reported_at, GREATEST(r.ticket_count, COALESCE(g.ticket_count, 0)) AS ticket_count,
       0 AS tickets_in_period, g.next_review_at, count(*) OVER () AS total
FROM risk_now r
LEFT JOIN register_now g USING (risk_id)
WHERE r.level = 3 AND COALESCE(g.status, '') <> 'closed'
  AND NOT EXISTS (
      SELECT 1 FROM escalation_acks a
      WHERE a.risk_id = r.risk_id AND a.decision IS NOT NULL AND a.acknowledged_at <= $1)
ORDER BY r.first_reported_at, r.risk_id
LIMIT $2
"""

# Open register entries whose next review was due before now, most overdue first.
_AGENDA_OVERDUE = """
WITH register_now AS (
    SELECT DISTINCT ON (risk_id) risk_id, level, category, status, title, owner, ticket_count,
           next_review_at, first_reported_at
    FROM register_versions
    WHERE updated_at <= $1
    ORDER BY risk_id, version DESC
)
SELECT risk_id, level, category, title, status, owner, first_reported_at, ticket_count,
       0 AS tickets_in_period, next_review_at, count(*) OVER () AS total
FROM register_now
WHERE status <> 'closed' AND next_review_at < $1
ORDER BY next_review_at, risk_id
LIMIT $2
"""


@dataclass(frozen=True)
class AgendaLists:
    """The Weekly Risk Review's agenda as the summary computes it."""

    level_1_2: RiskList
    level_3_awaiting_review: RiskList
    overdue_reviews: RiskList


async def review_agenda(
    connection: Connection, period: Period, now: datetime, limit: int = LIST_LIMIT
) -> AgendaLists:
    """Level 1-2 risks active in ``period``, level 3 risks with no review decision yet, and
    open register entries whose review is overdue (the Weekly Risk Summary's agenda)."""
    low = await connection.fetch(_AGENDA_LOW, period.start, period.end, now, limit)
    level3 = await connection.fetch(_AGENDA_LEVEL3, now, limit)
    overdue = await connection.fetch(_AGENDA_OVERDUE, now, limit)
    return AgendaLists(_risk_list(low), _risk_list(level3), _risk_list(overdue))


def _escalation_rows(rows: Sequence[asyncpg.Record]) -> list[EscalationRow]:
    return [
        EscalationRow(
            level=row["level"],
            steps=row["steps"],
            with_deadline=row["with_deadline"],
            acknowledged=row["acknowledged"],
            acknowledged_in_time=row["in_time"],
            acknowledged_late=row["late"],
            unacknowledged_overdue=row["overdue"],
            pending=row["pending"],
            breach_notices=row["breach_notices"],
            median_ack_seconds=row["median_seconds"],
            p90_ack_seconds=row["p90_seconds"],
        )
        for row in rows
    ]


async def escalation_rows(
    connection: Connection, period: Period, now: datetime
) -> list[EscalationRow]:
    return _escalation_rows(await connection.fetch(_ESCALATIONS, period.start, period.end, now))


async def weekly_inputs(
    connection: Connection, period: Period, now: datetime, limit: int = LIST_LIMIT
) -> WeeklyInputs:
    """Everything the Weekly Risk Summary needs, read in one repeatable-read snapshot."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        await connection.execute(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")
        counts = await connection.fetch(_FLAGGED_COUNTS, period.start, period.end, now)
        activity = await connection.fetch(_RISK_ACTIVITY, period.start, period.end, now)
        escalations = await escalation_rows(connection, period, now)
        open_risks = await connection.fetch(_OPEN_RISKS, now, limit)
        agenda = await review_agenda(connection, period, now, limit)
        decisions = await review_store.decisions_between(connection, period.start, period.end, now)
        since = await data_since(connection)
    return WeeklyInputs(
        counts=[CountRow(r["dimension"], r["key"], r["tickets"]) for r in counts],
        activity=[
            RiskActivityRow(
                r["level"], r["active"], r["new"], r["recurring"], r["returned_after_closure"]
            )
            for r in activity
        ],
        escalations=escalations,
        open_risks=_risk_list(open_risks),
        agenda_low=agenda.level_1_2,
        agenda_level3=agenda.level_3_awaiting_review,
        data_since=since,
        agenda_overdue=agenda.overdue_reviews,
        review_decisions=decisions,
    )


# ---------------------------------------------------------------------------------------------
# Monthly queries
# ---------------------------------------------------------------------------------------------

# $1 previous month start, $2 month start, $3 month end, $4 now
_MONTH_COUNTS = f"""
WITH {_risk_now("$4")}, {_flagged("$1", "$3", "$4")},
per_risk AS (
    -- One pass over the tickets into (period, week, risk) groups, joined to levels after that.
    SELECT CASE WHEN f.first_flagged_at >= $2 THEN 'current' ELSE 'previous' END AS period,
           CASE WHEN f.first_flagged_at >= $2
                THEN date_trunc('week', f.first_flagged_at, 'UTC') END AS week,
           f.risk_id, count(*) AS tickets
    FROM flagged f
    GROUP BY 1, 2, 3
),
fine AS (
    SELECT p.period, p.week, r.level, r.category, sum(p.tickets) AS tickets
    FROM per_risk p
    LEFT JOIN risk_now r ON r.risk_id = p.risk_id
    GROUP BY 1, 2, 3, 4
)
SELECT GROUPING(period) = 0 AS by_period, GROUPING(level) = 0 AS by_level,
       GROUPING(category) = 0 AS by_category, period, week, level::text AS level, category,
       sum(tickets)::bigint AS tickets
FROM fine
GROUP BY GROUPING SETS ((period), (period, level), (period, category), (week, level),
                        (week, category))
"""

_NEW_RISKS = """
SELECT count(*) FROM (
    SELECT min(classified_at) AS first_at FROM risk_classifications
    WHERE classified_at <= $3 GROUP BY risk_id
) s
WHERE first_at >= $1 AND first_at < $2
"""

_RECURRING = f"""
WITH {_risk_now("$3")},
closures AS (
    SELECT risk_id, min(updated_at) AS closed_at
    FROM register_versions WHERE status = 'closed' AND updated_at <= $3
    GROUP BY risk_id
),
reopened AS (
    SELECT v.risk_id, min(v.updated_at) AS reopened_at
    FROM register_versions v JOIN closures c USING (risk_id)
    WHERE v.status = 'reopened' AND v.updated_at > c.closed_at AND v.updated_at <= $3
    GROUP BY v.risk_id
),
{_tickets_after("closures", "closed_at", "$3")},
after AS (
    SELECT risk_id, min(first_flagged_at) AS first_ticket_at, count(*) AS tickets
    FROM tickets_after GROUP BY risk_id
),
returns AS (
    SELECT c.risk_id, c.closed_at, LEAST(o.reopened_at, a.first_ticket_at) AS returned_at,
           o.reopened_at IS NOT NULL AS reopened, COALESCE(a.tickets, 0) AS tickets
    FROM closures c
    LEFT JOIN reopened o USING (risk_id)
    LEFT JOIN after a USING (risk_id)
    WHERE o.reopened_at IS NOT NULL OR a.first_ticket_at IS NOT NULL
)
SELECT t.risk_id, t.closed_at, t.returned_at, t.reopened, t.tickets, r.level, r.category,
       r.title, r.cluster_id, count(*) OVER () AS total
FROM returns t
JOIN risk_now r USING (risk_id)
WHERE t.returned_at >= $1 AND t.returned_at < $2
ORDER BY t.returned_at, t.risk_id
LIMIT $4
"""

_MITIGATION = f"""
WITH {_register_now("$3")},
register_history AS (
    SELECT risk_id,
           min(updated_at) FILTER (WHERE status IN ('monitoring', 'closed')) AS mitigated_at,
           min(first_reported_at) AS first_reported_at
    FROM register_versions WHERE updated_at <= $3
    GROUP BY risk_id
),
cohort AS (
    SELECT * FROM register_history WHERE mitigated_at >= $1 AND mitigated_at < $2
),
{_tickets_after("cohort", "mitigated_at", "$3")},
recurred AS (
    SELECT risk_id FROM tickets_after
    UNION
    SELECT v.risk_id FROM register_versions v JOIN cohort c USING (risk_id)
    WHERE v.status = 'reopened' AND v.updated_at > c.mitigated_at AND v.updated_at <= $3
)
SELECT g.level,
       count(*) AS mitigated,
       percentile_cont(0.5) WITHIN GROUP (
           ORDER BY extract(epoch FROM c.mitigated_at - c.first_reported_at)::float8) AS median,
       percentile_cont(0.9) WITHIN GROUP (
           ORDER BY extract(epoch FROM c.mitigated_at - c.first_reported_at)::float8) AS p90,
       count(*) FILTER (WHERE c.risk_id IN (SELECT risk_id FROM recurred)) AS recurred
FROM cohort c
JOIN register_now g USING (risk_id)
GROUP BY GROUPING SETS ((g.level), ())
"""

_UPGRADES = """
ordered AS (
    SELECT risk_id, level, category, title, classified_at, overridden, event_id,
           first_value(level) OVER w AS first_level,
           first_value(classified_at) OVER w AS first_at
    FROM risk_classifications
    WHERE classified_at <= $3
    WINDOW w AS (PARTITION BY risk_id ORDER BY classified_at, event_id)
),
upgrades AS (
    SELECT DISTINCT ON (risk_id) risk_id, first_level, first_at, level, classified_at,
           overridden, category, title
    FROM ordered
    WHERE first_level <= 2 AND level >= 3
    ORDER BY risk_id, classified_at, event_id
),
in_month AS (
    SELECT * FROM upgrades WHERE classified_at >= $1 AND classified_at < $2
)"""

_NEAR_MISSES = f"""
WITH {_UPGRADES}
SELECT risk_id, title, category, first_level, level, first_at, classified_at, overridden,
       count(*) OVER () AS total
FROM in_month
ORDER BY classified_at, risk_id
LIMIT $4
"""

_NEAR_MISS_CATEGORIES = f"""
WITH {_UPGRADES}
SELECT category, count(*) AS risks FROM in_month GROUP BY category
"""


async def monthly_inputs(
    connection: Connection,
    period: Period,
    previous: Period,
    now: datetime,
    limit: int = LIST_LIMIT,
) -> MonthlyInputs:
    """Everything the Monthly Risk Report needs, read in one repeatable-read snapshot."""
    start, end = period.start, period.end
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        await connection.execute(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")
        counts = await connection.fetch(_MONTH_COUNTS, previous.start, start, end, now)
        new_risks = await connection.fetchval(_NEW_RISKS, start, end, now)
        recurring = await connection.fetch(_RECURRING, start, end, now, limit)
        mitigation = await connection.fetch(_MITIGATION, start, end, now)
        escalations = await escalation_rows(connection, period, now)
        near_misses = await connection.fetch(_NEAR_MISSES, start, end, now, limit)
        near_miss_categories = await connection.fetch(_NEAR_MISS_CATEGORIES, start, end, now)
        feedback = await feedback_inputs(connection, start, end, now, limit)
        since = await data_since(connection)
    trend: list[TrendRow] = []
    period_counts: list[PeriodCountRow] = []
    for row in counts:
        dimension: Literal["level", "category", "total"] = (
            "level" if row["by_level"] else "category" if row["by_category"] else "total"
        )
        key = row["level"] if row["by_level"] else row["category"] if row["by_category"] else None
        if row["by_period"]:
            period_counts.append(PeriodCountRow(row["period"], dimension, key, row["tickets"]))
        elif row["week"] is not None and dimension != "total":
            trend.append(TrendRow(row["week"], cast(Any, dimension), key, row["tickets"]))
    return MonthlyInputs(
        trend=trend,
        period_counts=period_counts,
        new_risks=new_risks,
        recurring_total=recurring[0]["total"] if recurring else 0,
        recurring=[
            RecurringRow(
                risk_id=r["risk_id"],
                title=r["title"],
                level=r["level"],
                category=r["category"],
                cluster_id=r["cluster_id"],
                closed_at=r["closed_at"],
                returned_at=r["returned_at"],
                reopened=r["reopened"],
                tickets_after_closure=r["tickets"],
            )
            for r in recurring
        ],
        mitigation=[
            MitigationRow(r["level"], r["mitigated"], r["median"], r["p90"], r["recurred"])
            for r in mitigation
        ],
        escalations=escalations,
        near_miss_total=near_misses[0]["total"] if near_misses else 0,
        near_misses=[
            NearMissRow(
                risk_id=r["risk_id"],
                title=r["title"],
                category=r["category"],
                initial_level=r["first_level"],
                upgraded_level=r["level"],
                first_classified_at=r["first_at"],
                upgraded_at=r["classified_at"],
                overridden=r["overridden"],
            )
            for r in near_misses
        ],
        near_miss_categories=[
            CountRow("category", r["category"], r["risks"]) for r in near_miss_categories
        ],
        data_since=since,
        feedback=feedback,
    )


# ---------------------------------------------------------------------------------------------
# Live dashboard queries ($1 = now, $2 = start of the dashboard window)
# ---------------------------------------------------------------------------------------------

ESCALATION_HORIZON_DAYS = 30
LOW_LEVEL_OPEN_DAYS = 7

_OPEN_BY_LEVEL = f"""
WITH {_risk_now("$1")}, {_register_now("$1")},
latest AS (
    SELECT risk_id, max(classified_at) AS last_classified_at
    FROM risk_classifications WHERE classified_at <= $1 GROUP BY risk_id
)
SELECT r.level, count(*) AS open
FROM risk_now r
JOIN latest l USING (risk_id)
LEFT JOIN register_now g USING (risk_id)
WHERE COALESCE(g.status, '') <> 'closed'
  AND (r.level >= 3 OR l.last_classified_at >= $1 - interval '{LOW_LEVEL_OPEN_DAYS} days')
GROUP BY r.level
"""

_OPEN_ESCALATIONS = f"""
WITH {_register_now("$1")},
steps AS (
    SELECT escalation_id, min(risk_id) AS risk_id, max(level) AS level,
           min(ack_due_at) AS ack_due_at
    FROM escalation_notices
    WHERE reason <> '{EscalationReason.BREACH.value}' AND due_at <= $1
      AND due_at >= $1 - interval '{ESCALATION_HORIZON_DAYS} days'
    GROUP BY escalation_id
)
SELECT s.level,
       count(*) FILTER (WHERE s.ack_due_at >= $1) AS due,
       count(*) FILTER (WHERE s.ack_due_at < $1) AS overdue
FROM steps s
LEFT JOIN register_now g USING (risk_id)
WHERE s.ack_due_at IS NOT NULL AND COALESCE(g.status, '') <> 'closed'
  AND NOT EXISTS (SELECT 1 FROM escalation_acks a
                  WHERE a.escalation_id = s.escalation_id AND a.acknowledged_at <= $1)
GROUP BY s.level
"""

_FLAG_RATE = """
SELECT t.channel, count(*) AS tickets, count(f.ticket_id) AS flagged
FROM tickets t
LEFT JOIN flagged_tickets f USING (ticket_id)
WHERE t.first_seen_at >= $2 AND t.first_seen_at <= $1
GROUP BY t.channel
ORDER BY tickets DESC, t.channel
"""

_ACTIVE_CLUSTERS = """
SELECT c.cluster_id, c.size, c.distinct_customers, c.surging, c.product, c.first_seen_at,
       c.last_flagged_at, cr.risk_id, r.level, r.title
FROM clusters c
LEFT JOIN cluster_risks cr USING (cluster_id)
LEFT JOIN LATERAL (
    SELECT level, title FROM risk_classifications k
    WHERE k.risk_id = cr.risk_id AND k.classified_at <= $1
    ORDER BY k.classified_at DESC, k.event_id DESC LIMIT 1
) r ON true
WHERE c.last_flagged_at >= $2 AND c.last_flagged_at <= $1
ORDER BY c.size DESC, c.last_flagged_at DESC, c.cluster_id
LIMIT $3
"""

# A source record is counted once however many consumers (or redeliveries) dead-lettered it;
# a dead letter that does not name its source record counts once by its own position.
_DEAD_LETTERS = """
SELECT source_topic, GROUPING(consumer_group) = 0 AS per_consumer, consumer_group,
       count(DISTINCT (source_partition, source_offset)) FILTER (WHERE source_offset IS NOT NULL)
           + count(*) FILTER (WHERE source_offset IS NULL) AS records,
       count(*) AS dead_letters,
       max(failed_at) AS last_failed_at
FROM dead_letters
GROUP BY GROUPING SETS ((source_topic), (source_topic, consumer_group))
ORDER BY source_topic, per_consumer, consumer_group NULLS LAST
"""


@dataclass(frozen=True)
class DeadLetterCount:
    """Source records dead-lettered from one topic (``per_consumer``: by one consumer group,
    None when the dead letters do not name it) and how many dead letters stand for them."""

    source_topic: str
    per_consumer: bool
    consumer_group: str | None
    records: int
    dead_letters: int
    last_failed_at: datetime | None


_FLAGGED_IN_WINDOW = """
SELECT count(*) FROM flagged_tickets WHERE first_flagged_at >= $2 AND first_flagged_at <= $1
"""


@dataclass(frozen=True)
class DashboardInputs:
    open_by_level: dict[int, int]
    escalations: dict[int, tuple[int, int]]
    time_to_ack: list[EscalationRow]
    flag_rate: list[tuple[str, int, int]]
    clusters: list[dict[str, Any]]
    dead_letters: list[DeadLetterCount]
    flagged_in_window: int


async def dashboard_inputs(
    connection: Connection, now: datetime, window_start: datetime, ack_window: Period,
    cluster_limit: int = 10,
) -> DashboardInputs:  # fmt: skip
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        open_rows = await connection.fetch(_OPEN_BY_LEVEL, now)
        escalations = await connection.fetch(_OPEN_ESCALATIONS, now)
        time_to_ack = await escalation_rows(connection, ack_window, now)
        flag_rate = await connection.fetch(_FLAG_RATE, now, window_start)
        clusters = await connection.fetch(_ACTIVE_CLUSTERS, now, window_start, cluster_limit)
        dead = await connection.fetch(_DEAD_LETTERS)
        flagged = await connection.fetchval(_FLAGGED_IN_WINDOW, now, window_start)
    return DashboardInputs(
        open_by_level={r["level"]: r["open"] for r in open_rows},
        escalations={r["level"]: (r["due"], r["overdue"]) for r in escalations},
        time_to_ack=time_to_ack,
        flag_rate=[(r["channel"], r["tickets"], r["flagged"]) for r in flag_rate],
        clusters=[dict(r) for r in clusters],
        dead_letters=[
            DeadLetterCount(
                r["source_topic"],
                r["per_consumer"],
                r["consumer_group"],
                r["records"],
                r["dead_letters"],
                r["last_failed_at"],
            )
            for r in dead
        ],
        flagged_in_window=flagged,
    )


# ---------------------------------------------------------------------------------------------
# Console
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenStep:
    """An escalation step somebody was notified of and nobody has acknowledged yet."""

    escalation_id: str
    risk_id: str
    title: str | None
    level: int
    step: int
    roles: list[str]
    ack_due_at: datetime | None
    timeframe_due_at: datetime | None
    first_notified_at: datetime
    notices: int
    breached: bool


async def open_steps(
    connection: Connection, roles: Sequence[str] | None, now: datetime
) -> list[OpenStep]:
    """Steps notified by ``now`` to any of ``roles`` (every role when None) with no
    acknowledgement, of the risk's current level (a level change supersedes the old plan)."""
    rows = await connection.fetch(
        """
        WITH notified AS (
            SELECT escalation_id, risk_id, max(level) AS level, min(step) AS step,
                   array_agg(DISTINCT target_role ORDER BY target_role) AS roles,
                   max(ack_due_at) AS ack_due_at, max(timeframe_due_at) AS timeframe_due_at,
                   min(due_at) AS first_notified_at, count(*) AS notices,
                   bool_or(reason = 'breach') AS breached
            FROM escalation_notices
            WHERE due_at <= $2
            GROUP BY escalation_id, risk_id
        ), latest AS (
            SELECT DISTINCT ON (risk_id) risk_id, level, title
            FROM risk_classifications
            ORDER BY risk_id, classified_at DESC, event_id DESC
        )
        SELECT n.*, l.title
        FROM notified n
        LEFT JOIN latest l USING (risk_id)
        WHERE ($1::text[] IS NULL OR n.roles && $1::text[])
          AND (l.level IS NULL OR l.level = n.level)
          AND NOT EXISTS (SELECT 1 FROM escalation_acks a WHERE a.escalation_id = n.escalation_id)
        ORDER BY coalesce(n.ack_due_at, n.timeframe_due_at) NULLS LAST, n.level DESC,
                 n.escalation_id
        LIMIT 500
        """,
        list(roles) if roles is not None else None,
        now,
    )
    return [
        OpenStep(
            escalation_id=row["escalation_id"],
            risk_id=row["risk_id"],
            title=row["title"],
            level=row["level"],
            step=row["step"],
            roles=list(row["roles"]),
            ack_due_at=row["ack_due_at"],
            timeframe_due_at=row["timeframe_due_at"],
            first_notified_at=row["first_notified_at"],
            notices=row["notices"],
            breached=row["breached"],
        )
        for row in rows
    ]
