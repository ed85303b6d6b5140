"""Classifier edges: ticket-flagged in, risk-classified out (through the outbox), and the
human override endpoint. A batch is decided by :func:`~riskrelay.classifier.service.classify_step`
(the step ``riskrelay classify`` runs too); this module claims, loads, saves and publishes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, status
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from riskrelay.classifier import store
from riskrelay.classifier.domain import (
    OverrideError,
    OverrideNotAllowedError,
    apply_override,
    risk_id_for,
)
from riskrelay.classifier.policy import RiskPolicy, default_policy, load_policy
from riskrelay.classifier.service import classified_event, classify_step
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import Principal, require_roles
from riskrelay.shared.clock import now_of
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    RiskCategory,
    RiskClassifiedEvent,
    RiskLevel,
    Role,
    TicketFlaggedEvent,
)
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.outbox import Outbox
from riskrelay.shared.store import claim_new, claim_new_event_ids
from riskrelay.shared.topics import RISK_CLASSIFIED, TICKET_FLAGGED


def _outgoing(context: ServiceContext, event: RiskClassifiedEvent) -> OutgoingEvent:
    return OutgoingEvent(context.topic(RISK_CLASSIFIED), event.data.risk_id, event)


@dataclass(frozen=True)
class ClassifierMetrics:
    classified: Counter
    overrides: Counter

    @classmethod
    def register(cls, context: ServiceContext) -> ClassifierMetrics:
        return cls(
            classified=Counter(
                "riskrelay_classifier_classified",
                "risk-classified events emitted (new risks, upgrades, new tickets, overrides).",
                ["level", "category"],
                registry=context.registry,
            ),
            overrides=Counter(
                "riskrelay_classifier_overrides",
                "Human level overrides applied.",
                registry=context.registry,
            ),
        )

    def count(self, outgoing: list[OutgoingEvent]) -> None:
        for item in outgoing:
            data = item.event.data
            self.classified.labels(str(int(data.level)), str(data.category)).inc()


async def classify_batch(
    context: ServiceContext, policy: RiskPolicy, batch: list[Received[TicketFlaggedEvent]]
) -> list[OutgoingEvent]:
    async with context.db.acquire() as connection, connection.transaction():
        events: list[TicketFlaggedEvent] = await claim_new(
            connection,
            (item.event for item in batch),
            lambda event: event.id,
            lock=store.RISK_LOCKS.of(risk_id_for(item.event.data) for item in batch),
        )
        if not events:
            return []
        states = await store.load_states(connection, (risk_id_for(e.data) for e in events))
        result = classify_step(policy, states, events)
        outgoing = [_outgoing(context, event) for event in result.classified]
        await store.save_states(connection, result.changed.values())
        await Outbox.write(connection, outgoing)
    context.state["metrics"].count(outgoing)
    return outgoing


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: RiskLevel = Field(description="New level, 1-5.")
    reason: str = Field(min_length=1, max_length=4_000, description="Why; mandatory.")
    category: RiskCategory | None = Field(
        default=None, description="Optionally set the category too."
    )


class OverrideResponse(BaseModel):
    risk_id: str
    level: RiskLevel
    previous_level: RiskLevel | None
    event_id: str


def build_router(context: ServiceContext) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["risks"])

    @router.post(
        "/risks/{risk_id}/level",
        status_code=status.HTTP_202_ACCEPTED,
        summary="Override a risk's level (Support Manager, Risk Management).",
        responses={404: {"description": "unknown risk"}, 403: {"description": "role not allowed"}},
    )
    async def override_level(
        risk_id: str,
        request: OverrideRequest,
        principal: Annotated[
            Principal, Depends(require_roles(Role.SUPPORT_MANAGER, Role.RISK_MANAGEMENT))
        ],
        idempotency_key: Annotated[str | None, Header(max_length=128)] = None,
    ) -> OverrideResponse:
        now = now_of(context.state)
        event_id = derive_event_id(
            f"override:{risk_id}:{idempotency_key or uuid.uuid4()}", "risk-classified/override"
        )
        async with context.db.acquire() as connection, connection.transaction():
            if not await claim_new_event_ids(connection, [event_id]):
                raise HTTPException(
                    status.HTTP_409_CONFLICT, "this Idempotency-Key was already used"
                )
            await store.lock_risks(connection, [risk_id])
            state = (await store.load_states(connection, [risk_id])).get(risk_id)
            if state is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown risk {risk_id}")
            try:
                outcome = apply_override(
                    state,
                    request.level,
                    request.reason,
                    principal.subject,
                    principal.role,
                    now,
                    category=request.category,
                )
            except OverrideNotAllowedError as error:
                raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from error
            except OverrideError as error:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
            await store.save_states(connection, [outcome.state])
            classified = classified_event(outcome, event_id, None, now)
            assert classified is not None  # an override always publishes
            item = _outgoing(context, classified)
            await Outbox.write(connection, [item])
        assert context.outbox is not None
        await context.outbox.publish_after_commit([item])
        context.state["metrics"].count([item])
        context.state["metrics"].overrides.inc()
        assert outcome.classified is not None
        return OverrideResponse(
            risk_id=risk_id,
            level=outcome.classified.level,
            previous_level=outcome.classified.previous_level,
            event_id=event_id,
        )

    return router


def configure(context: ServiceContext) -> None:
    settings = context.settings
    path = getattr(settings, "policy_path", None)
    policy = load_policy(path) if path is not None else default_policy()
    context.state["policy"] = policy
    context.state["metrics"] = ClassifierMetrics.register(context)

    async def process(batch: list[Received[TicketFlaggedEvent]]) -> list[OutgoingEvent]:
        return await classify_batch(context, policy, batch)

    context.consume(TICKET_FLAGGED, TicketFlaggedEvent.model_validate_json, process)
    context.publishes(RISK_CLASSIFIED)
    context.routers.append(build_router(context))
