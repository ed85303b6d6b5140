"""Composition root of the register service: settings in, ASGI app out; nothing runs at import."""

from __future__ import annotations

from fastapi import FastAPI

from riskrelay import register as package
from riskrelay.register.api import build_router
from riskrelay.register.domain import DEFAULT_POLICY, load_register_policy
from riskrelay.register.handlers import (
    Register,
    apply_classifications,
    apply_escalation_signals,
)
from riskrelay.register.metrics import RegisterMetrics
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.app import ServiceContext, create_service_app
from riskrelay.shared.clock import CLOCK, system_clock
from riskrelay.shared.events import (
    EscalationAcknowledgedEvent,
    EscalationDueEvent,
    RiskClassifiedEvent,
)
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.topics import (
    ESCALATION_ACKS,
    ESCALATION_DUE,
    RISK_CLASSIFIED,
    RISK_REGISTERED,
)


def configure(context: ServiceContext) -> None:
    settings = context.settings
    assert isinstance(settings, RegisterSettings)
    policy = (
        load_register_policy(settings.policy_path)
        if settings.policy_path is not None
        else DEFAULT_POLICY
    )
    metrics = RegisterMetrics(context.registry)
    context.publishes(RISK_REGISTERED)
    register = Register(context, policy, metrics)
    # Tests replace the clock of a running app; everything reads it through register.now().
    context.state.setdefault(CLOCK, system_clock)
    context.state["register"] = register

    async def classified(batch: list[Received[RiskClassifiedEvent]]) -> list[OutgoingEvent]:
        return await apply_classifications(register, batch)

    async def escalation_due(batch: list[Received[EscalationDueEvent]]) -> list[OutgoingEvent]:
        return await apply_escalation_signals(register, batch)

    async def escalation_acks(
        batch: list[Received[EscalationAcknowledgedEvent]],
    ) -> list[OutgoingEvent]:
        return await apply_escalation_signals(register, batch)

    async def refresh_register_gauges(context: ServiceContext) -> None:
        await metrics.refresh_forever(context.db, register.now, settings.gauge_refresh_seconds)

    context.consume(RISK_CLASSIFIED, RiskClassifiedEvent.model_validate_json, classified)
    context.consume(ESCALATION_DUE, EscalationDueEvent.model_validate_json, escalation_due)
    context.consume(
        ESCALATION_ACKS, EscalationAcknowledgedEvent.model_validate_json, escalation_acks
    )
    context.background.append(refresh_register_gauges)
    context.routers.append(build_router(register))


def create_app(settings: RegisterSettings) -> FastAPI:
    return create_service_app(
        settings,
        title="riskrelay register",
        description=(package.__doc__ or "").strip(),
        configure=configure,
        migrations_package="riskrelay.register",
    )
