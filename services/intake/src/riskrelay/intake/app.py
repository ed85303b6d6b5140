"""Composition root of the intake service: settings in, ASGI app out; nothing runs at import."""

from __future__ import annotations

from fastapi import FastAPI

from riskrelay import intake as package
from riskrelay.intake.api import build_router
from riskrelay.intake.feedback_handlers import configure_feedback
from riskrelay.intake.handlers import IntakeConsumer, IntakeMetrics
from riskrelay.intake.service import AssessedTicket, Intake
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.app import ServiceContext, create_service_app
from riskrelay.shared.events import TicketEvent
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.topics import TICKET_EVENTS, TICKET_FLAGGED


def configure(context: ServiceContext, intake: Intake | None = None) -> None:
    settings = context.settings
    assert isinstance(settings, IntakeSettings)
    intake = intake or Intake.from_settings(settings)
    consumer = IntakeConsumer(intake, IntakeMetrics.register(context))
    context.state["intake"] = intake

    async def process(batch: list[Received[AssessedTicket]]) -> list[OutgoingEvent]:
        return await consumer.process(context, batch)

    context.consume(TICKET_EVENTS, consumer.decoder(), process, decode_on=consumer.worker)
    configure_feedback(context)

    async def stop_worker(context: ServiceContext) -> None:
        consumer.worker.close()

    context.on_shutdown.append(stop_worker)
    context.publishes(TICKET_FLAGGED)
    context.publishes(TICKET_EVENTS)  # the HTTP API puts accepted upstream events there
    context.routers.append(build_router(context, consumer.assess, settings))
    context.openapi_models.append(TicketEvent)


def create_app(settings: IntakeSettings, intake: Intake | None = None) -> FastAPI:
    """The intake service; ``intake`` replaces the one its settings describe (a test's)."""
    return create_service_app(
        settings,
        title="riskrelay intake",
        description=(package.__doc__ or "").strip(),
        configure=lambda context: configure(context, intake),
        migrations_package="riskrelay.intake",
    )
