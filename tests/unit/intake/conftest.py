"""Fixtures for intake's pure domain tests: the default rule pack and a ticket event factory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from riskrelay.intake.rules import RulePack, load_rule_pack
from riskrelay.shared.events import TICKET_EVENT_TYPES, TicketEvent, TicketEventKind

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

MakeEvent = Callable[..., TicketEvent]


@pytest.fixture(scope="session")
def rule_pack() -> RulePack:
    return load_rule_pack()


@pytest.fixture
def make_event() -> MakeEvent:
    counter = iter(range(1, 1_000_000))

    def make(
        description: str = "Hello, I have a question about my order.",
        *,
        subject: str = "Question",
        ticket_id: str | None = None,
        customer_id: str = "cust-1",
        product: str = "Mobile App",
        channel: str = "email",
        priority: str = "normal",
        kind: TicketEventKind = TicketEventKind.CREATED,
        time: datetime = T0,
        comment: str | None = None,
        tags: list[str] | None = None,
        risk_flag: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> TicketEvent:
        number = next(counter)
        ticket = ticket_id or f"T-{number}"
        data: dict[str, Any] = {
            "ticket_id": ticket,
            "subject": subject,
            "description": description,
            "channel": channel,
            "customer": {"id": customer_id, "segment": "consumer"},
            "product": product,
            "priority": priority,
            "tags": tags or [],
            "risk_flag": risk_flag,
            "comment": {"author_type": "customer", "body": comment} if comment else None,
        }
        return TicketEvent.model_validate(
            {
                "id": event_id or f"evt-{number}",
                "source": "test://helpdesk",
                "type": TICKET_EVENT_TYPES[kind],
                "time": time,
                "subject": ticket,
                "data": data,
            }
        )

    return make
