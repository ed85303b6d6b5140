"""HTTP API of the escalator: acknowledge a step, list and read escalations.

An escalation here is one step of a frozen plan (one role's part), named by its deterministic
escalation id, the id every ``escalation-due`` event and acknowledgement carries.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from riskrelay.escalator import store
from riskrelay.escalator.domain import AckStatus, StepState, StepStatus, step_state
from riskrelay.shared.auth import Principal, require_roles
from riskrelay.shared.events import ReviewDecision, RiskLevel, Role
from riskrelay.shared.outbox import Outbox
from riskrelay.shared.store import claim_new_event_ids

if TYPE_CHECKING:
    from riskrelay.escalator.handlers import Escalator

ESCALATION_ROLES = (
    Role.AGENT,
    Role.TEAM_LEAD,
    Role.SUPPORT_MANAGER,
    Role.SUPPORT_DIRECTOR,
    Role.RISK_MANAGEMENT,
)
# Module-level so FastAPI can resolve them in the (postponed) annotations of the routes.
ACKNOWLEDGERS = require_roles(*ESCALATION_ROLES)
READERS = require_roles(*ESCALATION_ROLES, Role.ANALYST)


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: ReviewDecision | None = Field(
        default=None,
        description="Level 3 review only: `confirmed` (Risk Management is told) or "
        "`not_confirmed` (the risk goes to the Weekly Risk Review).",
    )
    note: str | None = Field(default=None, max_length=4_000, description="Free text.")


class AddedStep(BaseModel):
    escalation_id: str
    role: Role
    notify_at: datetime
    ack_due_at: datetime | None


class AckResponse(BaseModel):
    escalation_id: str
    risk_id: str
    status: Literal["accepted", "already_closed"]
    late: bool = Field(description="Acknowledged after its deadline (recorded, not an error).")
    late_by_seconds: float | None
    decision: ReviewDecision | None
    detail: str | None
    added_steps: list[AddedStep] = Field(description="Steps a review decision added.")
    routed_to_weekly_review_at: datetime | None
    event_id: str | None = Field(description="The escalation-acks event published, if any.")


class EscalationView(BaseModel):
    escalation_id: str
    risk_id: str
    title: str
    level: RiskLevel
    plan_version: int
    step: int
    role: Role
    kind: str
    state: StepState
    notify_at: datetime
    ack_due_at: datetime | None
    closed_at: datetime | None
    acknowledged_role: Role | None
    acknowledged_by: str | None
    decision: ReviewDecision | None
    added_because: str | None
    plan_superseded: bool


class EscalationPage(BaseModel):
    items: list[EscalationView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class EscalationDetail(EscalationView):
    timers: list[dict[str, Any]]
    acknowledgements: list[dict[str, Any]]
    notifications: list[dict[str, Any]]


def _view(row: asyncpg.Record, now: datetime) -> dict[str, Any]:
    return {
        "escalation_id": row["escalation_id"],
        "risk_id": row["risk_id"],
        "title": row["title"],
        "level": row["level"],
        "plan_version": row["plan_version"],
        "step": row["step"],
        "role": row["role"],
        "kind": row["kind"],
        "state": step_state(StepStatus(row["status"]), row["ack_due_at"], now),
        "notify_at": row["notify_at"],
        "ack_due_at": row["ack_due_at"],
        "closed_at": row["closed_at"],
        "acknowledged_role": row["acknowledged_role"],
        "acknowledged_by": row["acknowledged_by"],
        "decision": row["decision"],
        "added_because": row["added_because"],
        "plan_superseded": row["plan_state"] == "superseded",
    }


def encode_cursor(notify_at: datetime, escalation_id: str) -> str:
    raw = json.dumps([notify_at.isoformat(), escalation_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        notify_at, escalation_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(notify_at), str(escalation_id)
    except (binascii.Error, ValueError, TypeError) as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "invalid cursor") from error


def build_router(escalator: Escalator) -> APIRouter:
    from riskrelay.escalator.handlers import AckRequest

    router = APIRouter(prefix="/v1", tags=["escalations"])
    context = escalator.context

    @router.post(
        "/escalations/{escalation_id}/ack",
        summary="Acknowledge an escalation step (a Level 3 review carries its decision).",
        responses={
            403: {"description": "the caller's role is not one that may acknowledge this step"},
            404: {"description": "unknown escalation id"},
            422: {"description": "a review without a decision, or a decision on a non-review"},
        },
    )
    async def acknowledge(
        escalation_id: str,
        body: AckBody,
        principal: Annotated[Principal, Depends(ACKNOWLEDGERS)],
    ) -> AckResponse:
        published = None
        async with context.db.acquire() as connection, connection.transaction():
            request = AckRequest(
                escalation_id=escalation_id,
                role=await escalator.acting_role(
                    connection, escalation_id, principal.ordered_roles()
                ),
                acknowledged_by=principal.actor,
                decision=body.decision,
                note=body.note,
                at=escalator.now(),
                source="http",
            )
            result = await escalator.acknowledge(connection, request)
            if result is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"unknown escalation {escalation_id}"
                )
            if result.accepted:
                published = escalator.acknowledged_event(result, request)
                # Our own consumer must not apply the event it will read back.
                await claim_new_event_ids(connection, [published.event.id])
                await Outbox.write(connection, [published])
        outcome = result.outcome
        if outcome is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {request.role.value} may not acknowledge the"
                f" {result.step.role.value} step of this escalation",
            )
        if outcome.status is AckStatus.REJECTED:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, outcome.detail)
        if published is not None:
            escalator.observe_ack(result, request.at)
            escalator.wake_timers()
            await escalator.publish_after_commit([published])
        return AckResponse(
            escalation_id=escalation_id,
            risk_id=result.risk_id,
            status="accepted" if outcome.status is AckStatus.ACCEPTED else "already_closed",
            late=outcome.late,
            late_by_seconds=outcome.late_by.total_seconds() if outcome.late_by else None,
            decision=body.decision,
            detail=outcome.detail,
            added_steps=[
                AddedStep(
                    escalation_id=step.escalation_id,
                    role=step.role,
                    notify_at=step.notify_at,
                    ack_due_at=step.ack_due_at,
                )
                for step in outcome.added_steps
            ],
            routed_to_weekly_review_at=outcome.routed_to_weekly_review_at,
            event_id=published.event.id if published else None,
        )

    @router.get("/escalations", summary="List escalation steps by state, oldest first.")
    async def list_escalations(
        _: Annotated[Principal, Depends(READERS)],
        state: Annotated[
            Literal["open", "overdue", "acknowledged"] | None,
            Query(description="open (overdue included), overdue, or acknowledged; all if unset"),
        ] = None,
        risk_id: Annotated[str | None, Query(max_length=256)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=1024)] = None,
    ) -> EscalationPage:
        now = escalator.now()
        after = decode_cursor(cursor) if cursor else None
        async with context.db.acquire() as connection:
            rows = await store.list_steps(
                connection, state=state, now=now, risk_id=risk_id, after=after, limit=limit + 1
            )
        page = rows[:limit]
        next_cursor = (
            encode_cursor(page[-1]["notify_at"], page[-1]["escalation_id"])
            if len(rows) > limit
            else None
        )
        return EscalationPage(
            items=[EscalationView.model_validate(_view(row, now)) for row in page],
            next_cursor=next_cursor,
        )

    @router.get(
        "/escalations/{escalation_id}",
        summary="One escalation step with its timers, acknowledgements and notifications.",
        responses={404: {"description": "unknown escalation id"}},
    )
    async def get_escalation(
        escalation_id: str, _: Annotated[Principal, Depends(READERS)]
    ) -> EscalationDetail:
        now = escalator.now()
        async with context.db.acquire() as connection:
            row = await store.get_step(connection, escalation_id)
            if row is None:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, f"unknown escalation {escalation_id}"
                )
            timers = await store.step_timers(connection, escalation_id)
            acks = await store.step_acknowledgements(connection, escalation_id)
            notifications = await store.step_notifications(connection, escalation_id)
        return EscalationDetail.model_validate(
            {
                **_view(row, now),
                "timers": [dict(item) for item in timers],
                "acknowledgements": [dict(item) for item in acks],
                "notifications": [dict(item) for item in notifications],
            }
        )

    return router
