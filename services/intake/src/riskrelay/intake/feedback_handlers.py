"""Intake's risk-feedback edge: each person's feedback in, kept as a labelled example.

Decoding is contract validation (:class:`~riskrelay.shared.events.RiskFeedback` checks that a
wrong level names the right one, a missed risk its ticket, and so on), so a feedback intake
refuses is dead-lettered with the reason by the shared consumer.
"""

from __future__ import annotations

from prometheus_client import Counter

from riskrelay.intake.feedback_store import save_feedback
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.events import RiskFeedbackEvent
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.topics import RISK_FEEDBACK


def configure_feedback(context: ServiceContext) -> None:
    stored = Counter(
        "riskrelay_intake_feedback_stored",
        "Feedback events newly stored as labelled examples, by kind.",
        ["kind"],
        registry=context.registry,
    )

    async def store(batch: list[Received[RiskFeedbackEvent]]) -> list[OutgoingEvent]:
        async with context.db.acquire() as connection, connection.transaction():
            new = await save_feedback(connection, [item.event for item in batch])
        for feedback in new:
            stored.labels(feedback.kind.value).inc()
        return []

    context.consume(RISK_FEEDBACK, RiskFeedbackEvent.model_validate_json, store)
