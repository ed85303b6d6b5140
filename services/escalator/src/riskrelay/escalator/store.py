"""Escalator persistence: frozen plans, their step projection, timers and acknowledgements.

Every change of one risk's escalation runs in a transaction that first takes a transaction-scoped
advisory lock on the risk id (sorted, so two transactions never deadlock): a classification, an
acknowledgement from the topic and one over HTTP for the same risk are applied one after the
other, whichever instance receives them. The timer loop takes no such lock: it only claims timer
rows (``FOR UPDATE SKIP LOCKED``), and a transaction that cancels timers waits for a claim in
flight and then leaves the fired ones alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from riskrelay.escalator.domain import (
    EscalationPlan,
    PlannedTimer,
    due_event_id,
    has_open_steps,
)
from riskrelay.shared.events import ReviewDecision, Role
from riskrelay.shared.store import Connection as Connection
from riskrelay.shared.store import LockSpace, lock_keys, unnest_columns

PlanState = Literal["active", "completed", "superseded"]
AckSource = Literal["http", "topic", "link"]


@dataclass(frozen=True)
class StoredPlan:
    plan: EscalationPlan
    state: PlanState
    title: str


@dataclass(frozen=True)
class StepLocation:
    """Where an escalation id points: its risk and plan version (enough to lock and load)."""

    escalation_id: str
    risk_id: str
    plan_version: int


RISK_LOCKS = LockSpace("escalator:", seed=7)


async def lock_risks(connection: Connection, risk_ids: Iterable[str]) -> None:
    await lock_keys(connection, RISK_LOCKS.of(risk_ids))


def plan_state(plan: EscalationPlan) -> PlanState:
    return "active" if has_open_steps(plan) else "completed"


async def load_current_plans(
    connection: Connection, risk_ids: Iterable[str]
) -> dict[str, StoredPlan]:
    """Each risk's running (not superseded) plan, where it has one."""
    rows = await connection.fetch(
        "SELECT risk_id, plan::text AS plan, state, title FROM escalations"
        " WHERE risk_id = ANY($1::text[]) AND state <> 'superseded'",
        sorted(set(risk_ids)),
    )
    return {row["risk_id"]: _stored(row) for row in rows}


async def load_plan(connection: Connection, risk_id: str, plan_version: int) -> StoredPlan | None:
    row = await connection.fetchrow(
        "SELECT plan::text AS plan, state, title FROM escalations"
        " WHERE risk_id = $1 AND plan_version = $2",
        risk_id,
        plan_version,
    )
    return None if row is None else _stored(row)


def _stored(row: asyncpg.Record) -> StoredPlan:
    return StoredPlan(
        plan=EscalationPlan.model_validate_json(row["plan"]), state=row["state"], title=row["title"]
    )


async def risk_known(connection: Connection, risk_id: str) -> bool:
    found: bool = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM escalations WHERE risk_id = $1)", risk_id
    )
    return found


@dataclass(frozen=True)
class NewPlan:
    """A plan to insert, with the timers it starts."""

    plan: EscalationPlan
    title: str
    cause_event_id: str | None
    timers: Sequence[PlannedTimer]
    details: dict[str, Any] | None = None
    """What people's notices show of the risk (:class:`riskrelay.escalator.notice.RiskDetails`)."""


_STEP_UPSERT = (
    "ON CONFLICT (escalation_id) DO UPDATE SET status = EXCLUDED.status,"
    " closed_at = EXCLUDED.closed_at, acknowledged_role = EXCLUDED.acknowledged_role,"
    " decision = EXCLUDED.decision, updated_at = now()"
    " WHERE escalation_steps.status IS DISTINCT FROM EXCLUDED.status"
)

# Plans, their steps and their timers in one statement: a batch of new risks used to cost four
# round trips per risk. The steps' foreign key is checked at the end of the statement, when the
# plans are in.
_INSERT_PLANS = f"""
WITH saved_plans AS (
    INSERT INTO escalations
        (risk_id, plan_version, level, state, plan, title, flagged_at, cause_event_id, details)
    SELECT r, v, l, s, p::jsonb, t, f, c, d::jsonb
    FROM unnest($1::text[], $2::int[], $3::smallint[], $4::text[], $5::text[], $6::text[],
                $7::timestamptz[], $8::text[], $38::text[]) AS rows (r, v, l, s, p, t, f, c, d)
), saved_steps AS (
    INSERT INTO escalation_steps (escalation_id, risk_id, plan_version, step, level, role,
        kind, notify_at, ack_due_at, status, closed_at, acknowledged_role, decision,
        added_because)
    SELECT * FROM unnest($9::text[], $10::text[], $11::int[], $12::int[], $13::smallint[],
        $14::text[], $15::text[], $16::timestamptz[], $17::timestamptz[], $18::text[],
        $19::timestamptz[], $20::text[], $21::text[], $22::text[])
    {_STEP_UPSERT}
)
INSERT INTO timers (timer_key, escalation_id, risk_id, plan_version, level, step, role,
    step_role, reason, attempt, due_at, ack_due_at, timeframe_due_at, event_id, repeat_every)
SELECT * FROM unnest($23::text[], $24::text[], $25::text[], $26::int[], $27::smallint[],
    $28::int[], $29::text[], $30::text[], $31::text[], $32::int[], $33::timestamptz[],
    $34::timestamptz[], $35::timestamptz[], $36::text[], $37::interval[])
ON CONFLICT (timer_key) DO NOTHING
"""


async def insert_plans(connection: Connection, plans: Sequence[NewPlan]) -> None:
    """Insert new plans (none may be a risk's running plan yet) with steps and timers."""
    if not plans:
        return
    plan_rows = [
        (
            new.plan.risk_id,
            new.plan.plan_version,
            int(new.plan.level),
            plan_state(new.plan),
            new.plan.model_dump_json(),
            new.title,
            new.plan.flagged_at,
            new.cause_event_id,
        )
        for new in plans
    ]
    step_rows = [row for new in plans for row in _step_rows(new.plan)]
    timer_rows = [row for new in plans for row in _timer_rows(new.plan, new.timers)]
    await connection.execute(
        _INSERT_PLANS,
        *unnest_columns(plan_rows, 8),
        *unnest_columns(step_rows, 14),
        *unnest_columns(timer_rows, 15),
        [json.dumps(new.details) if new.details is not None else None for new in plans],
    )


async def update_plan(
    connection: Connection, plan: EscalationPlan, state: PlanState | None = None
) -> None:
    """Store a changed plan (acknowledged, closed) and its steps; bumps the row version."""
    await connection.execute(
        "UPDATE escalations SET plan = $3::jsonb, state = $4, version = version + 1,"
        " updated_at = now() WHERE risk_id = $1 AND plan_version = $2",
        plan.risk_id,
        plan.plan_version,
        plan.model_dump_json(),
        state or plan_state(plan),
    )
    await save_steps(connection, plan)


async def save_steps(connection: Connection, plan: EscalationPlan) -> None:
    await connection.executemany(
        "INSERT INTO escalation_steps (escalation_id, risk_id, plan_version, step, level, role,"
        " kind, notify_at, ack_due_at, status, closed_at, acknowledged_role, decision,"
        " added_because) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        + _STEP_UPSERT,
        _step_rows(plan),
    )


def _step_rows(plan: EscalationPlan) -> list[tuple[Any, ...]]:
    return [
        (
            step.escalation_id,
            plan.risk_id,
            plan.plan_version,
            step.index,
            int(plan.level),
            step.role.value,
            step.kind.value,
            step.notify_at,
            step.ack_due_at,
            step.status.value,
            step.closed_at,
            step.acknowledged_role.value if step.acknowledged_role else None,
            step.decision.value if step.decision else None,
            step.added_because,
        )
        for step in plan.steps
    ]


async def set_acknowledged_by(
    connection: Connection, escalation_id: str, acknowledged_by: str
) -> None:
    await connection.execute(
        "UPDATE escalation_steps SET acknowledged_by = $2 WHERE escalation_id = $1",
        escalation_id,
        acknowledged_by,
    )


async def insert_timers(
    connection: Connection, plan: EscalationPlan, timers: Sequence[PlannedTimer]
) -> None:
    await connection.executemany(
        "INSERT INTO timers (timer_key, escalation_id, risk_id, plan_version, level, step, role,"
        " step_role, reason, attempt, due_at, ack_due_at, timeframe_due_at, event_id,"
        " repeat_every) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        " ON CONFLICT (timer_key) DO NOTHING",
        _timer_rows(plan, timers),
    )


def _timer_rows(plan: EscalationPlan, timers: Sequence[PlannedTimer]) -> list[tuple[Any, ...]]:
    step_roles = {step.index: step.role for step in plan.steps}
    return [
        (
            timer.key,
            timer.escalation_id,
            timer.risk_id,
            timer.plan_version,
            int(timer.level),
            timer.step,
            timer.role.value,
            step_roles[timer.step].value,
            timer.reason.value,
            timer.attempt,
            timer.fire_at,
            timer.ack_due_at,
            timer.timeframe_due_at,
            due_event_id(timer.key, timer.plan_version),
            timer.repeat_every,
        )
        for timer in timers
    ]


async def cancel_timers(connection: Connection, timer_keys: Sequence[str], reason: str) -> int:
    """Cancel the pending ones among ``timer_keys``; fired and cancelled ones stay as they are."""
    if not timer_keys:
        return 0
    result: str = await connection.execute(
        "UPDATE timers SET state = 'cancelled', cancelled_reason = $2"
        " WHERE timer_key = ANY($1::text[]) AND state = 'pending'",
        list(timer_keys),
        reason,
    )
    return int(result.split()[-1])


async def locate_step(connection: Connection, escalation_id: str) -> StepLocation | None:
    row = await connection.fetchrow(
        "SELECT escalation_id, risk_id, plan_version FROM escalation_steps"
        " WHERE escalation_id = $1",
        escalation_id,
    )
    if row is None:
        return None
    return StepLocation(row["escalation_id"], row["risk_id"], row["plan_version"])


async def record_acknowledgement(
    connection: Connection,
    *,
    event_id: str | None,
    escalation_id: str,
    risk_id: str,
    plan_version: int | None,
    role: Role,
    acknowledged_by: str,
    acknowledged_at: datetime,
    decision: ReviewDecision | None,
    note: str | None,
    source: AckSource,
    outcome: str,
    late: bool,
    late_by_seconds: float | None,
    detail: str | None,
    channel: str | None = None,
) -> None:
    await connection.execute(
        "INSERT INTO acknowledgements (event_id, escalation_id, risk_id, plan_version, role,"
        " acknowledged_by, acknowledged_at, decision, note, source, outcome, late,"
        " late_by_seconds, detail, channel)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        event_id,
        escalation_id,
        risk_id,
        plan_version,
        role.value,
        acknowledged_by,
        acknowledged_at,
        decision.value if decision else None,
        note,
        source,
        outcome,
        late,
        late_by_seconds,
        detail,
        channel,
    )


# ---------------------------------------------------------------------------------------------
# Acknowledgement links
# ---------------------------------------------------------------------------------------------


async def link_use(connection: Connection, link_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT link_id, escalation_id, person, decision, channel, outcome, used_at"
        " FROM ack_link_uses WHERE link_id = $1",
        link_id,
    )
    return row


async def claim_link(
    connection: Connection,
    *,
    link_id: str,
    escalation_id: str,
    person: str,
    decision: ReviewDecision | None,
    channel: str,
    outcome: str,
    used_at: datetime,
) -> bool:
    """Record a link's use; False when it was used before (the link is spent)."""
    inserted: str | None = await connection.fetchval(
        "INSERT INTO ack_link_uses (link_id, escalation_id, person, decision, channel, outcome,"
        " used_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (link_id) DO NOTHING"
        " RETURNING link_id",
        link_id,
        escalation_id,
        person,
        decision.value if decision else None,
        channel,
        outcome,
        used_at,
    )
    return inserted is not None


async def record_link_refusal(
    connection: Connection,
    *,
    link_id: str | None,
    escalation_id: str | None,
    person: str | None,
    presented_by: str,
    reason: str,
    detail: str,
    refused_at: datetime,
) -> None:
    await connection.execute(
        "INSERT INTO ack_link_refusals (link_id, escalation_id, person, presented_by, reason,"
        " detail, refused_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        link_id,
        escalation_id,
        person,
        presented_by,
        reason,
        detail,
        refused_at,
    )


# ---------------------------------------------------------------------------------------------
# Reading for the API
# ---------------------------------------------------------------------------------------------

ListFilter = Literal["open", "overdue", "acknowledged"]

_STEP_COLUMNS = (
    "s.escalation_id, s.risk_id, s.plan_version, s.step, s.level, s.role, s.kind, s.notify_at,"
    " s.ack_due_at, s.status, s.closed_at, s.acknowledged_role, s.acknowledged_by, s.decision,"
    " s.added_because, e.title, e.state AS plan_state"
)


async def list_steps(
    connection: Connection,
    *,
    state: ListFilter | None,
    now: datetime,
    risk_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Steps in (notify_at, escalation_id) order after the keyset ``after``."""
    conditions = ["TRUE"]
    args: list[Any] = [now, limit]
    if state == "open":
        conditions.append("s.status = 'open'")
    elif state == "overdue":
        conditions.append("s.status = 'open' AND s.ack_due_at <= $1")
    elif state == "acknowledged":
        conditions.append("s.status = 'acknowledged'")
    if risk_id is not None:
        args.append(risk_id)
        conditions.append(f"s.risk_id = ${len(args)}")
    if after is not None:
        args.extend(after)
        conditions.append(f"(s.notify_at, s.escalation_id) > (${len(args) - 1}, ${len(args)})")
    rows: list[asyncpg.Record] = await connection.fetch(
        f"SELECT {_STEP_COLUMNS}, $1::timestamptz AS now FROM escalation_steps s"
        " JOIN escalations e USING (risk_id, plan_version)"
        f" WHERE {' AND '.join(conditions)}"
        " ORDER BY s.notify_at, s.escalation_id LIMIT $2",
        *args,
    )
    return rows


async def get_step(connection: Connection, escalation_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await connection.fetchrow(
        f"SELECT {_STEP_COLUMNS} FROM escalation_steps s"
        " JOIN escalations e USING (risk_id, plan_version) WHERE s.escalation_id = $1",
        escalation_id,
    )
    return row


async def step_timers(connection: Connection, escalation_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT timer_key, reason, role, attempt, due_at, state, fired_at, event_id,"
        " cancelled_reason, covered_by FROM timers WHERE escalation_id = $1"
        " ORDER BY due_at, timer_key",
        escalation_id,
    )
    return rows


async def step_acknowledgements(connection: Connection, escalation_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT role, acknowledged_by, acknowledged_at, decision, note, source, channel, outcome,"
        " late, late_by_seconds, detail, recorded_at FROM acknowledgements"
        " WHERE escalation_id = $1 ORDER BY id",
        escalation_id,
    )
    return rows


async def step_notifications(connection: Connection, escalation_id: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await connection.fetch(
        "SELECT id, event_id, reason, role, channel, target, state, attempts, last_error,"
        " created_at, finished_at FROM notifications WHERE escalation_id = $1 ORDER BY id",
        escalation_id,
    )
    return rows
