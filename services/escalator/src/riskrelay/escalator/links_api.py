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

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Depends, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from riskrelay.escalator import store
from riskrelay.escalator.api import ACKNOWLEDGERS
from riskrelay.escalator.domain import AckStatus, StepState, StepStatus, step_state
from riskrelay.escalator.links import LinkClaims, LinkRefused, RefusalReason, same_person
from riskrelay.escalator.notice import reader_time
from riskrelay.escalator.roster import Roster
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
    time_zone: str = Field(
        default="UTC", description="The person's time zone in the roster (else UTC)."
    )
    ack_due_text: str | None = Field(
        default=None,
        description="The step's acknowledgement deadline as the person reads it, in their time"
        " zone: `Tue 1 Dec, 14:30 EST` (the year when it is not the current one).",
    )
    expires_text: str | None = Field(
        default=None, description="When the link expires, in the same form."
    )


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


def recipient_zone(roster: Roster, email: str) -> ZoneInfo:
    """The time zone of the roster's person with this e-mail (UTC for someone it lacks)."""
    people = [*roster.people.values()] + [
        person for role in roster.roles for person in roster.people_of(role)
    ]
    for person in people:
        if same_person(email, person.email):
            return roster.person_zone(person)
    return ZoneInfo("UTC")


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


@dataclass(frozen=True)
class Presenter:
    """Who presents a link: their e-mail (a person's token, or the roster's person behind a
    Slack user), what records name them, and the roles they act in."""

    email: str | None
    actor: str
    roles: list[Role]

    @classmethod
    def of(cls, principal: Principal) -> Presenter:
        return cls(principal.email, principal.actor, principal.ordered_roles())


class AckRefused(Exception):
    """The link is good but the escalator refused the acknowledgement (role, decision)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class LinkDesk:
    """Inspects and redeems links for the HTTP routes and for Slack's buttons."""

    def __init__(self, escalator: Escalator) -> None:
        self.escalator = escalator
        self.context = escalator.context

    async def record_refusal(
        self, refusal: LinkRefused, presenter: Presenter, now: datetime
    ) -> None:
        claims = refusal.claims
        async with self.context.db.acquire() as connection:
            await store.record_link_refusal(
                connection,
                link_id=claims.link_id if claims else None,
                escalation_id=claims.escalation_id if claims else None,
                person=claims.person if claims else None,
                presented_by=presenter.actor,
                reason=refusal.reason,
                detail=refusal.detail,
                refused_at=now,
            )

    async def checked(
        self, connection: store.Connection, token: str, presenter: Presenter, now: datetime
    ) -> tuple[LinkClaims, asyncpg.Record]:
        """The link's claims and its step, or :class:`LinkRefused`."""
        links = self.escalator.links
        if links is None:
            raise LinkRefused("tampered", "this escalator issues no links: it has no signing key")
        claims = links.verify(token, now)
        if not same_person(claims.person, presenter.email):
            raise LinkRefused(
                "wrong_person",
                f"this link was sent to {claims.person}; you are signed in as {presenter.actor}",
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

    async def inspect(self, token: str, presenter: Presenter, now: datetime) -> LinkInspection:
        """What the link would do; :class:`LinkRefused` (recorded) when it must not."""
        try:
            async with self.context.db.acquire() as connection:
                claims, row = await self.checked(connection, token, presenter, now)
        except LinkRefused as refusal:
            await self.record_refusal(refusal, presenter, now)
            raise
        zone = recipient_zone(self.escalator.roster, claims.person)
        step = _step(row, now)
        return LinkInspection(
            person=claims.person,
            channel=claims.channel,
            decision=claims.decision,
            expires_at=claims.expires_at,
            step=step,
            time_zone=zone.key,
            ack_due_text=reader_time(step.ack_due_at, zone, now) if step.ack_due_at else None,
            expires_text=reader_time(claims.expires_at, zone, now),
        )

    async def redeem(self, token: str, presenter: Presenter, now: datetime) -> LinkRedemption:
        """Acknowledge the link's step as ``presenter``, once. Raises :class:`LinkRefused`
        (recorded) or :class:`AckRefused`."""
        from riskrelay.escalator.handlers import AckRequest

        escalator = self.escalator
        published = None
        try:
            async with self.context.db.acquire() as connection, connection.transaction():
                claims, _ = await self.checked(connection, token, presenter, now)
                request = AckRequest(
                    escalation_id=claims.escalation_id,
                    role=await escalator.acting_role(
                        connection, claims.escalation_id, presenter.roles
                    ),
                    acknowledged_by=presenter.actor,
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
            await self.record_refusal(refusal, presenter, now)
            raise
        if outcome is None:
            raise AckRefused(
                status.HTTP_403_FORBIDDEN,
                f"your role {request.role.value} may not acknowledge the"
                f" {result.step.role.value} step",
            )
        if outcome.status is AckStatus.REJECTED:
            raise AckRefused(status.HTTP_422_UNPROCESSABLE_CONTENT, outcome.detail or "refused")
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


def refusal_response(refusal: LinkRefused) -> JSONResponse:
    body = LinkRefusal(reason=refusal.reason, detail=refusal.detail)
    return JSONResponse(body.model_dump(mode="json"), status_code=REFUSAL_STATUS[refusal.reason])


_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": LinkRefusal, "description": "tampered or unreadable link"},
    403: {"model": LinkRefusal, "description": "the link was sent to someone else"},
    404: {"model": LinkRefusal, "description": "the link names no known step"},
    409: {"model": LinkRefusal, "description": "the link was used already"},
    410: {"model": LinkRefusal, "description": "the link expired"},
}


def build_links_router(escalator: Escalator) -> APIRouter:
    router = APIRouter(prefix="/v1/ack-links", tags=["acknowledgement links"])
    desk = LinkDesk(escalator)

    @router.post(
        "/inspect",
        summary="What an acknowledgement link would do (changes nothing but the refusal log).",
        responses=_REFUSALS,
        response_model=LinkInspection,
    )
    async def inspect(
        body: LinkBody, principal: Annotated[Principal, Depends(ACKNOWLEDGERS)]
    ) -> LinkInspection | JSONResponse:
        try:
            return await desk.inspect(body.token, Presenter.of(principal), escalator.now())
        except LinkRefused as refusal:
            return refusal_response(refusal)

    @router.post(
        "/redeem",
        summary="Acknowledge the link's step (a Level 3 review: with its decision), once.",
        responses={
            **_REFUSALS,
            403: {"description": "the link was sent to someone else, or the role may not act"},
            422: {"description": "the escalator refused the acknowledgement"},
        },
        response_model=LinkRedemption,
    )
    async def redeem(
        body: LinkBody, principal: Annotated[Principal, Depends(ACKNOWLEDGERS)]
    ) -> LinkRedemption | JSONResponse:
        try:
            return await desk.redeem(body.token, Presenter.of(principal), escalator.now())
        except LinkRefused as refusal:
            return refusal_response(refusal)
        except AckRefused as refused:
            return JSONResponse({"detail": refused.detail}, status_code=refused.status_code)

    return router
