"""Intake's HTTP API: webhook ingestion for upstream systems that cannot publish to Kafka.

Accepted events are published to `ticket-events` and answered 202 only once the broker has
acknowledged them, so an accepted event is never lost; the Kafka consumer then processes HTTP
and Kafka input the same way (and drops an upstream event id it has already processed). Input
is checked before it is accepted: a request intake would dead-letter is answered 4xx instead,
naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, RootModel, ValidationError, model_validator

from riskrelay.intake.domain import TicketAssessment
from riskrelay.intake.errors import IntakeRejection
from riskrelay.intake.settings import IntakeSettings
from riskrelay.intake.store import flag_rates
from riskrelay.intake.webhooks import map_zammad, map_zendesk
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import Principal, require_roles
from riskrelay.shared.clock import now_of
from riskrelay.shared.events import Role, TicketEvent
from riskrelay.shared.kafka import OutgoingEvent
from riskrelay.shared.topics import TICKET_EVENTS

_READERS = (
    Role.ANALYST,
    Role.RISK_MANAGEMENT,
    Role.SUPPORT_MANAGER,
    Role.SUPPORT_DIRECTOR,
    Role.TEAM_LEAD,
)


class TicketBatch(RootModel[list[TicketEvent]]):
    """One ticket event (an object) or a batch of them (an array)."""

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class Accepted(BaseModel):
    accepted: list[str] = Field(description="Ids of the accepted upstream events, in order.")


class FlagRate(BaseModel):
    channel: str
    product: str
    flagged: int
    total: int
    rate: float = Field(description="flagged / total")


class Problem(BaseModel):
    detail: str
    errors: list[dict[str, str]] = Field(default_factory=list)


class _Rejected(Exception):
    """Input intake refuses; answered 422 with every problem and the field it concerns."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(errors)
        self.errors = errors

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"detail": "invalid ticket event(s); nothing was accepted", "errors": self.errors},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )


def _pydantic_errors(error: ValidationError, prefix: str) -> list[dict[str, str]]:
    return [
        {"field": prefix + ".".join(str(p) for p in item["loc"]), "message": item["msg"]}
        for item in error.errors(include_url=False)[:20]
    ]


async def _answer(work: Awaitable[Accepted]) -> Accepted | JSONResponse:
    try:
        return await work
    except _Rejected as rejected:
        return rejected.response()


async def _json_body(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body of {declared} bytes exceeds the limit of {limit} bytes",
        )
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body of {len(body)} bytes exceeds the limit of {limit} bytes",
        )
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"request body is not valid JSON: {error}"
        ) from error


def build_router(
    context: ServiceContext,
    assess: Callable[[TicketEvent], TicketAssessment],
    settings: IntakeSettings,
) -> APIRouter:
    """The API; ``assess`` checks an event as the consumer will (raising IntakeRejection)."""
    router = APIRouter(prefix="/v1", tags=["tickets"])
    options = settings.mapping_options()

    def check(events: list[TicketEvent], location: str) -> None:
        errors: list[dict[str, str]] = []
        for position, event in enumerate(events):
            try:
                assess(event)
            except IntakeRejection as rejection:
                errors.append(
                    {
                        "field": f"{location}{position}.data.{rejection.field}",
                        "message": rejection.reason,
                    }
                )
        if errors:
            raise _Rejected(errors)

    async def accept(events: list[TicketEvent]) -> Accepted:
        topic = context.topic(TICKET_EVENTS)
        try:
            await context.producer.publish(
                [OutgoingEvent(topic, event.data.ticket_id, event) for event in events]
            )
        except (TimeoutError, OSError, KafkaError) as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the broker did not acknowledge the events; retry later ({type(error).__name__})",
            ) from error
        return Accepted(accepted=[event.id for event in events])

    @router.post(
        "/tickets",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Submit one ticket event or a batch (upstream systems).",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/TicketEvent"},
                                {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/TicketEvent"},
                                },
                            ]
                        }
                    }
                },
            }
        },
        responses={
            400: {"model": Problem, "description": "not JSON"},
            413: {"model": Problem, "description": "body too large"},
            422: {"model": Problem, "description": "invalid event; names the field"},
            503: {"model": Problem, "description": "broker unavailable"},
        },
    )
    async def post_tickets(
        request: Request, principal: Annotated[Principal, Depends(require_roles(Role.UPSTREAM))]
    ) -> Accepted | JSONResponse:
        return await _answer(submit(request))

    async def submit(request: Request) -> Accepted:
        payload = await _json_body(request, settings.max_request_bytes)
        try:
            events = TicketBatch.model_validate(payload).root
        except ValidationError as error:
            raise _Rejected(_pydantic_errors(error, "body.")) from error
        if not events:
            raise _Rejected([{"field": "body", "message": "the batch is empty"}])
        if len(events) > settings.max_batch_events:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"{len(events)} events in one request; the limit is {settings.max_batch_events}",
            )
        check(events, "body.")
        return await accept(events)

    async def mapped(mapper: Callable[[Any], TicketEvent], request: Request) -> Accepted:
        payload = await _json_body(request, settings.max_request_bytes)
        try:
            event = mapper(payload)
        except IntakeRejection as rejection:
            raise _Rejected(
                [{"field": f"body.{rejection.field}", "message": rejection.reason}]
            ) from rejection
        except ValidationError as error:
            raise _Rejected(_pydantic_errors(error, "mapped.")) from error
        check([event], "mapped.")
        return await accept([event])

    @router.post(
        "/webhooks/zendesk/{subdomain}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Zendesk webhook (event webhook or trigger JSON) for one Zendesk account.",
        responses={422: {"model": Problem}, 413: {"model": Problem}, 400: {"model": Problem}},
    )
    async def zendesk_webhook(
        subdomain: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9\-]{0,62}$")],
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(Role.UPSTREAM))],
    ) -> Accepted | JSONResponse:
        return await _answer(
            mapped(
                lambda payload: map_zendesk(payload, subdomain=subdomain, options=options), request
            )
        )

    @router.post(
        "/webhooks/zammad/{host}",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Zammad webhook for one Zammad installation.",
        responses={422: {"model": Problem}, 413: {"model": Problem}, 400: {"model": Problem}},
    )
    async def zammad_webhook(
        host: Annotated[str, Path(pattern=r"^[A-Za-z0-9.\-]{1,253}$")],
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(Role.UPSTREAM))],
        x_zammad_delivery: Annotated[str | None, Header(max_length=128)] = None,
    ) -> Accepted | JSONResponse:
        return await _answer(
            mapped(
                lambda payload: map_zammad(
                    payload, host=host, delivery_id=x_zammad_delivery, options=options
                ),
                request,
            )
        )

    @router.get(
        "/flag-rates",
        summary="Ticket events and flagged ones per channel and product (event time).",
        tags=["statistics"],
    )
    async def get_flag_rates(
        principal: Annotated[Principal, Depends(require_roles(*_READERS))],
        since: Annotated[datetime | None, Query(description="Start (default: 7 days ago).")] = None,
        until: Annotated[datetime | None, Query(description="End (default: now).")] = None,
    ) -> list[FlagRate]:
        end = until or now_of(context.state)
        start = since or end - timedelta(days=7)
        if start.tzinfo is None or end.tzinfo is None:
            raise HTTPException(422, "since and until need a time zone offset")
        if start >= end:
            raise HTTPException(422, "since must be before until")
        async with context.db.acquire() as connection:
            rows = await flag_rates(connection, start, end)
        return [
            FlagRate(
                channel=row["channel"],
                product=row["product"],
                flagged=int(row["flagged"] or 0),
                total=int(row["total"]),
                rate=int(row["flagged"] or 0) / int(row["total"]),
            )
            for row in rows
        ]

    return router
