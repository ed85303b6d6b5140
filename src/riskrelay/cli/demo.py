"""`riskrelay dev up --sample N`: the demo's traffic, and what the dashboard shows once it landed.

The traffic is :func:`riskrelay.cli.sample_traffic.generate_recent`: the two weeks before
``now`` and a surge in the last hours, so the dashboard, this week's Weekly Risk Summary and
this month's Monthly Risk Report all have something to show. Escalations of the older traffic
are then acknowledged the way an on-call team would have done at the time
(:func:`history_acknowledgements`, published on ``escalation-acks`` with their past times), so
the dashboard shows acknowledgement times, and only the last hours' escalations are left open
for someone to acknowledge. ``now`` is always passed in.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from riskrelay.cli.inbox import read_notifications
from riskrelay.cli.kafka_tools import ParsedLine, publish_lines, wait_until_settled
from riskrelay.cli.sample_traffic import generate_recent
from riskrelay.cli.stack import StackConfig
from riskrelay.reporting.periods import month_of, week_of
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    EscalationAcknowledged,
    EscalationAcknowledgedEvent,
    ReviewDecision,
    RiskLevel,
    Role,
    TicketEvent,
)

Event = TypeVar("Event", TicketEvent, EscalationAcknowledgedEvent)

DEMO_DAYS = 14
KEEP_OPEN = timedelta(hours=12)
"""Escalations notified this recently are left for the demo's user to acknowledge."""
LATE_SHARE = 0.1
"""Share of the history's acknowledgements that came after their deadline."""


def demo_events(count: int, seed: int, now: datetime) -> list[TicketEvent]:
    return generate_recent(count, seed=seed, now=now, days=DEMO_DAYS)


def as_lines(events: Sequence[Event], key: Callable[[Event], str]) -> list[ParsedLine]:
    """Events as records to publish, each with its partition key."""
    return [
        ParsedLine(number, key(event).encode(), event.to_json_bytes())
        for number, event in enumerate(events, 1)
    ]


def ticket_key(event: TicketEvent) -> str:
    return event.data.ticket_id


def risk_key(event: EscalationAcknowledgedEvent) -> str:
    return event.data.risk_id


def service_groups(config: StackConfig) -> list[str]:
    """The consumer groups of the stack's services (each service's default group id)."""
    return [f"{config.topic_prefix}riskrelay-{name}" for name in config.services]


def viewer_token(config: StackConfig) -> str:
    """The dev token of the analyst role, which may read the dashboard, reports and escalations."""
    tokens: dict[str, str] = json.loads(config.tokens_file.read_text())
    return tokens[Role.ANALYST.value]


@dataclass(frozen=True)
class DemoLinks:
    dashboard: str
    weekly: str
    monthly: str
    notifications: str
    open_escalations: str


def busiest_periods(events: Sequence[TicketEvent]) -> tuple[str, str]:
    """The ISO week and the month holding most of ``events``: just after midnight on a Monday
    or a first of the month, the current ones hold only the last minutes of the traffic."""
    weeks = Counter(week_of(event.time).label for event in events)
    months = Counter(month_of(event.time).label for event in events)
    return weeks.most_common(1)[0][0], months.most_common(1)[0][0]


def demo_links(config: StackConfig, token: str, events: Sequence[TicketEvent]) -> DemoLinks:
    """Where to look: the dashboard (with a viewer token), the reports of the week and month
    holding most of the traffic, the notification inbox, and the escalator's list of open
    escalations; the API calls are curl commands carrying the token."""
    reporting = config.service_url("reporting")
    week, month = busiest_periods(events)

    def curl(url: str) -> str:
        return f"curl -H 'Authorization: Bearer {token}' '{url}'"

    return DemoLinks(
        dashboard=f"{reporting}/dashboard?token={token}",
        weekly=curl(f"{reporting}/v1/reports/weekly?week={week}&format=md"),
        monthly=curl(f"{reporting}/v1/reports/monthly?month={month}&format=md"),
        notifications=f"{config.inbox_url}/",
        open_escalations=curl(f"{config.service_url('escalator')}/v1/escalations?state=open"),
    )


@dataclass(frozen=True)
class DashboardFigures:
    """The dashboard's headline figures."""

    flagged_in_window: int
    window_hours: int
    open_risks: int
    escalations_due: int
    escalations_overdue: int
    dead_letters: int

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> DashboardFigures:
        return cls(
            flagged_in_window=view["flagged_in_window"],
            window_hours=view["window_hours"],
            open_risks=view["open_risks_total"],
            escalations_due=view["escalations_due_total"],
            escalations_overdue=view["escalations_overdue_total"],
            dead_letters=view["dead_letters_total"],
        )

    def describe(self) -> str:
        return (
            f"{self.flagged_in_window} tickets flagged in the last {self.window_hours} h,"
            f" {self.open_risks} open risks, {self.escalations_due} escalations due and"
            f" {self.escalations_overdue} overdue, {self.dead_letters} dead letters"
        )


def dashboard_view_after(
    config: StackConfig, token: str, after: datetime, timeout: float = 60.0
) -> dict[str, Any]:
    """The dashboard's figures from a refresh that started at or after ``after``."""
    url = f"{config.service_url('reporting')}/v1/dashboard.json"
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
            if response.status_code == 200:
                view: dict[str, Any] = response.json()
                if datetime.fromisoformat(view["generated_at"]) >= after:
                    return view
                last = f"figures of {view['generated_at']}"
            else:
                last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = type(error).__name__
        time.sleep(0.5)
    raise TimeoutError(f"the dashboard did not refresh within {timeout:.0f} s ({last})")


def notifications_received(config: StackConfig) -> int:
    return len(read_notifications(config.inbox_file))


@dataclass(frozen=True)
class OpenStep:
    """An open escalation step, as the escalator's API lists it."""

    escalation_id: str
    risk_id: str
    level: RiskLevel
    role: Role
    kind: str
    notify_at: datetime
    ack_due_at: datetime | None

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> OpenStep:
        due = view.get("ack_due_at")
        return cls(
            escalation_id=view["escalation_id"],
            risk_id=view["risk_id"],
            level=RiskLevel(view["level"]),
            role=Role(view["role"]),
            kind=view["kind"],
            notify_at=datetime.fromisoformat(view["notify_at"]),
            ack_due_at=datetime.fromisoformat(due) if due else None,
        )


def history_acknowledgements(
    steps: list[OpenStep], *, now: datetime, seed: int, keep_open: timedelta = KEEP_OPEN
) -> list[EscalationAcknowledgedEvent]:
    """How an on-call team would have acknowledged the steps notified before ``now -
    keep_open``: by the step's own role, most within the first 70 % of the acknowledgement
    window, one in ten late; Level 3 reviews decided "not confirmed" (to the Weekly Risk
    Review). The same steps, ``now`` and ``seed`` give the same events."""
    cutoff = now - keep_open
    events = []
    for step in sorted(steps, key=lambda s: (s.notify_at, s.escalation_id)):
        if step.notify_at >= cutoff:
            continue
        rng = random.Random(f"{seed}/{step.escalation_id}")
        window = (
            step.ack_due_at - step.notify_at
            if step.ack_due_at and step.ack_due_at > step.notify_at
            else timedelta(hours=1)
        )
        share = rng.uniform(1.05, 1.6) if rng.random() < LATE_SHARE else rng.uniform(0.05, 0.7)
        at = min(step.notify_at + window * share, now).replace(microsecond=0)
        decision = ReviewDecision.NOT_CONFIRMED if step.kind == "review" else None
        data = EscalationAcknowledged(
            escalation_id=step.escalation_id, risk_id=step.risk_id, role=step.role,
            acknowledged_by=f"demo on-call {step.role.value.replace('_', ' ')}",
            acknowledged_at=at, decision=decision, note="acknowledged by the demo's history",
        )  # fmt: skip
        events.append(
            EscalationAcknowledgedEvent(
                id=derive_event_id(f"riskrelay.demo:{step.escalation_id}", "acknowledged"),
                source="riskrelay/demo",
                time=at,
                subject=step.risk_id,
                data=data,
            )
        )
    return events


def open_steps(config: StackConfig, token: str) -> Iterator[OpenStep]:
    """Every open step the escalator lists (all pages)."""
    url = f"{config.service_url('escalator')}/v1/escalations"
    params: dict[str, str | int] = {"state": "open", "limit": 500}
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while True:
            response = client.get(url, params=params)
            response.raise_for_status()
            page = response.json()
            yield from (OpenStep.from_view(item) for item in page["items"])
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]


Publish = Callable[[str, list[ParsedLine]], None]
"""Publishes records to a topic (the command shows a progress bar while it does)."""


@dataclass(frozen=True)
class DemoResult:
    events: list[TicketEvent]
    acknowledged: int
    view: dict[str, Any]
    """The dashboard's figures once everything was processed."""

    @property
    def figures(self) -> DashboardFigures:
        return DashboardFigures.from_view(self.view)


# The topic each service's group reads first: its lag counts before the group's first commit.
_ENTRY_TOPICS = {
    "intake": "ticket-events",
    "reporting": "ticket-events",
    "classifier": "ticket-flagged",
    "escalator": "risk-classified",
    "register": "risk-classified",
}


def settle(config: StackConfig) -> None:
    consumes = {
        f"{config.topic_prefix}riskrelay-{name}": [f"{config.topic_prefix}{_ENTRY_TOPICS[name]}"]
        for name in config.services
        if name in _ENTRY_TOPICS
    }
    asyncio.run(
        wait_until_settled(
            config.bootstrap,
            service_groups(config),
            topic_prefix=config.topic_prefix,
            consumes=consumes,
        )
    )


def publish_quietly(config: StackConfig) -> Publish:
    def publish(topic: str, lines: list[ParsedLine]) -> None:
        asyncio.run(publish_lines(config.bootstrap, topic, lines))

    return publish


def run_demo(
    config: StackConfig, count: int, seed: int, now: datetime, publish: Publish | None = None
) -> DemoResult:
    """Publish the demo's traffic on a running stack, wait until the five services processed
    it, acknowledge the older escalations as of their time, and read the dashboard."""
    send = publish or publish_quietly(config)
    events = demo_events(count, seed, now)
    send(f"{config.topic_prefix}ticket-events", as_lines(events, ticket_key))
    settle(config)
    token = viewer_token(config)
    acknowledged = 0
    # An acknowledged review can add a step that is already due: a few rounds at most.
    for _ in range(5):
        acks = history_acknowledgements(list(open_steps(config, token)), now=now, seed=seed)
        if not acks:
            break
        send(f"{config.topic_prefix}escalation-acks", as_lines(acks, risk_key))
        acknowledged += len(acks)
        settle(config)
    view = dashboard_view_after(config, token, datetime.now(UTC))
    return DemoResult(events, acknowledged, view)
