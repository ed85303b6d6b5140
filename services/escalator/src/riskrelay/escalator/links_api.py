"""HTTP API for acknowledgement links: inspect a link (read-only) and redeem it (once).

The console calls both with the signed-in person's own token and the link's token, so the
escalator itself checks the link's signature and expiry, that it was sent to this person, and
that it was never used, and records the acknowledgement as that person, with the channel the
link came in. Inspecting changes nothing about the step (a mail scanner or a preview fetching
the page acknowledges nothing); only redeeming, the confirmation page's button, does. Every
refused link (expired, reused, tampered, another person's, unknown step) is recorded in
``ack_link_refusals`` with who presented it, and answered with a 4xx naming the reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from riskrelay.escalator import store
from riskrelay.escalator.api import ACKNOWLEDGERS
from riskrelay.escalator.domain import AckStatus, StepState, StepStatus, step_state
from riskrelay.escalator.links import LinkClaims, LinkRefused, RefusalReason, same_person
from riskrelay.shared.auth import Principal
from riskrelay.shared.events import ReviewDecision, RiskLevel, Role
from riskrelay.shared.outbox import Outbox
from riskrelay.shared.store import claim_new_event_ids

if TYPE_CHECKING:
    from riskrelay.escalator.handlers import Escalator

REFUSAL_STATUS: dict[RefusalReason, int] = {
    "tampered": status.HTTP_400_BAD_REQUEST,
    "wrong_person": status.HTTP_403_FORBIDDEN,
    "unknown_step": status.HTTP_404_NOT_FOUND,
    "reused": status.HTTP_409_CONFLICT,
    "expired": status.HTTP_410_GONE,
}


class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=4_096, description="The link's `token`.")


class LinkStep(BaseModel):
    escalation_id: str
    risk_id: str
    title: str
    level: RiskLevel
    role: Role
    kind: str
    state: StepState
    ack_due_at: datetime | None
    acknowledged_by: str | None
    decision: ReviewDecision | None


class LinkInspection(BaseModel):
    status: Literal["valid"] = "valid"
    person: str = Field(description="Whom the link was sent to.")
    channel: str = Field(description="The channel it was sent through.")
    decision: ReviewDecision | None = Field(description="A Level 3 review link's decision.")
    expires_at: datetime
    step: LinkStep


class LinkRefusal(BaseModel):
    status: Literal["refused"] = "refused"
    reason: RefusalReason
    detail: str
    step: LinkStep | None = None


class LinkRedemption(BaseModel):
    status: Literal["accepted", "already_closed"]
    late: bool
    decision: ReviewDecision | None
    channel: str
    detail: str | None
    step: LinkStep
    event_id: str | None = Field(description="The escalation-acks event published, if any.")


def _step(row: asyncpg.Record, now: datetime) -> LinkStep:
    return LinkStep(
        escalation_id=row["escalation_id"],
        risk_id=row["risk_id"],
        title=row["title"],
        level=RiskLevel(row["level"]),
        role=Role(row["role"]),
        kind=row["kind"],
        state=step_state(StepStatus(row["status"]), row["ack_due_at"], now),
        ack_due_at=row["ack_due_at"],
        acknowledged_by=row["acknowledged_by"],
        decision=ReviewDecision(row["decision"]) if row["decision"] else None,
    )


def build_links_router(escalator: Escalator) -> APIRouter:
    from riskrelay.escalator.handlers import AckRequest

    router = APIRouter(prefix="/v1/ack-links", tags=["acknowledgement links"])
    context = escalator.context
    links = escalator.links

    async def refuse(
        refusal: LinkRefused, principal: Principal, now: datetime, step: LinkStep | None = None
    ) -> JSONResponse:
        claims = refusal.claims
        async with context.db.acquire() as connection:
            await store.record_link_refusal(
                connection,
                link_id=claims.link_id if claims else None,
                escalation_id=claims.escalation_id if claims else None,
                person=claims.person if claims else None,
                presented_by=principal.actor,
                reason=refusal.reason,
                detail=refusal.detail,
                refused_at=now,
            )
        body = LinkRefusal(reason=refusal.reason, detail=refusal.detail, step=step)
        return JSONResponse(
            body.model_dump(mode="json"), status_code=REFUSAL_STATUS[refusal.reason]
        )

    async def checked(
        connection: store.Connection, token: str, principal: Principal, now: datetime
    ) -> tuple[LinkClaims, asyncpg.Record]:
        """The link's claims and its step, or :class:`LinkRefused`."""
        if links is None:
            raise LinkRefused("tampered", "this escalator issues no links: it has no signing key")
        claims = links.verify(token, now)
        if not same_person(claims.person, principal.email):
            raise LinkRefused(
                "wrong_person",
                f"this link was sent to {claims.person}; you are signed in as {principal.actor}",
                claims,
            )
        row = await store.get_step(connection, claims.escalation_id)
        if row is None:
            raise LinkRefused("unknown_step", "the link names a step that does not exist", claims)
        used = await store.link_use(connection, claims.link_id)
        if used is not None:
            by = f" by {row['acknowledged_by']}" if row["acknowledged_by"] else ""
            raise LinkRefused(
                "reused",
                f"this link was already used at {used['used_at']:%Y-%m-%d %H:%M} UTC; the step"
                f" is {row['status']}{by}",
                claims,
            )
        return claims, row

    @router.post(
        "/inspect",
        summary="What an acknowledgement link would do (changes nothing but the refusal log).",
        responses={
            400: {"model": LinkRefusal, "description": "tampered or unreadable link"},
            403: {"model": LinkRefusal, "description": "the link was sent to someone else"},
            404: {"model": LinkRefusal, "description": "the link names no known step"},
            409: {"model": LinkRefusal, "description": "the link was used already"},
            410: {"model": LinkRefusal, "description": "the link expired"},
        },
        response_model=LinkInspection,
    )
    async def inspect(
        body: LinkBody, principal: Annotated[Principal, Depends(ACKNOWLEDGERS)]
    ) -> LinkInspection | JSONResponse:
        now = escalator.now()
        step: LinkStep | None = None
        try:
            async with context.db.acquire() as connection:
                claims, row = await checked(connection, body.token, principal, now)
        except LinkRefused as refusal:
            return await refuse(refusal, principal, now, step)
        return LinkInspection(
            person=claims.person,
            channel=claims.channel,
            decision=claims.decision,
            expires_at=claims.expires_at,
            step=_step(row, now),
        )

    @router.post(
        "/redeem",
        summary="Acknowledge the link's step (a Level 3 review: with its decision), once.",
        responses={
            400: {"model": LinkRefusal, "description": "tampered or unreadable link"},
            403: {"description": "the link was sent to someone else, or the role may not act"},
            404: {"model": LinkRefusal, "description": "the link names no known step"},
            409: {"model": LinkRefusal, "description": "the link was used already"},
            410: {"model": LinkRefusal, "description": "the link expired"},
            422: {"description": "the escalator refused the acknowledgement"},
        },
        response_model=LinkRedemption,
    )
    async def redeem(
        body: LinkBody, principal: Annotated[Principal, Depends(ACKNOWLEDGERS)]
    ) -> LinkRedemption | JSONResponse:
        now = escalator.now()
        published = None
        try:
            async with context.db.acquire() as connection, connection.transaction():
                claims, _ = await checked(connection, body.token, principal, now)
                request = AckRequest(
                    escalation_id=claims.escalation_id,
                    role=await escalator.acting_role(
                        connection, claims.escalation_id, principal.ordered_roles()
                    ),
                    acknowledged_by=principal.actor,
                    decision=claims.decision,
                    note=None,
                    at=now,
                    source="link",
                    channel=claims.channel,
                )
                result = await escalator.acknowledge(connection, request)
                assert result is not None  # checked() found the step
                outcome = result.outcome
                usable = outcome is not None and outcome.status is not AckStatus.REJECTED
                # Two clicks at once: the second waits on the risk's lock in acknowledge() and
                # then finds the link spent here.
                if usable and not await store.claim_link(
                    connection,
                    link_id=claims.link_id,
                    escalation_id=claims.escalation_id,
                    person=claims.person,
                    decision=claims.decision,
                    channel=claims.channel,
                    outcome="accepted" if result.accepted else "already_closed",
                    used_at=now,
                ):
                    raise LinkRefused("reused", "this link was used a moment ago", claims)
                if result.accepted:
                    published = escalator.acknowledged_event(result, request)
                    await claim_new_event_ids(connection, [published.event.id])
                    await Outbox.write(connection, [published])
                row = await store.get_step(connection, claims.escalation_id)
        except LinkRefused as refusal:
            return await refuse(refusal, principal, now)
        if outcome is None:
            return JSONResponse(
                {
                    "detail": f"your role {request.role.value} may not acknowledge the"
                    f" {result.step.role.value} step"
                },
                status_code=status.HTTP_403_FORBIDDEN,
            )
        if outcome.status is AckStatus.REJECTED:
            return JSONResponse(
                {"detail": outcome.detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
            )
        if published is not None:
            escalator.observe_ack(result, now)
            escalator.wake_timers()
            await escalator.publish_after_commit([published])
        assert row is not None
        return LinkRedemption(
            status="accepted" if result.accepted else "already_closed",
            late=outcome.late,
            decision=claims.decision,
            channel=claims.channel,
            detail=outcome.detail,
            step=_step(row, now),
            event_id=published.event.id if published else None,
        )

    return router
