"""Escalator edges: risk-classified and escalation-acks in, durable timers and the outbox out.

Decisions are the domain's (:mod:`riskrelay.escalator.domain`); this module loads, locks,
persists and wakes the background loops. Every handler applies its batch in one transaction
together with :func:`claim_new_event_ids`, so a redelivered batch changes nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from riskrelay.escalator import store
from riskrelay.escalator.calendar import BusinessCalendar, load_calendar
from riskrelay.escalator.domain import (
    AckOutcome,
    AckStatus,
    PlanStep,
    acknowledged_event_id,
    apply_acknowledgement,
    find_step,
    may_acknowledge,
    plan_for_classification,
    plan_timers,
)
from riskrelay.escalator.email_channel import SmtpSender
from riskrelay.escalator.links import AckLinks
from riskrelay.escalator.metrics import EscalatorMetrics
from riskrelay.escalator.notice import RiskDetails
from riskrelay.escalator.notifications import DeliveryWorker
from riskrelay.escalator.policy import EscalationPolicy, load_policy
from riskrelay.escalator.roster import Roster, load_roster
from riskrelay.escalator.settings import DeliverySettings, TimerSettings
from riskrelay.escalator.timers import SOURCE, StagedFiring, Sweeper, TimerLoop
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.clock import CLOCK, now_of, system_clock
from riskrelay.shared.events import (
    EscalationAcknowledged,
    EscalationAcknowledgedEvent,
    ReviewDecision,
    RiskClassifiedEvent,
    Role,
)
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.store import claim_new
from riskrelay.shared.topics import ESCALATION_ACKS, ESCALATION_DUE, RISK_CLASSIFIED


class UnknownRiskError(ValueError):
    """An acknowledgement names a risk this service never escalated (dead-lettered)."""


class UnknownEscalationError(ValueError):
    """An acknowledgement names an escalation id no plan has (dead-lettered)."""


@dataclass(frozen=True)
class AckRequest:
    escalation_id: str
    role: Role
    acknowledged_by: str
    decision: ReviewDecision | None
    note: str | None
    at: datetime
    source: store.AckSource
    event_id: str | None = None
    channel: str | None = None
    """Where a link's acknowledgement came from (``email``, ``teams``)."""


@dataclass(frozen=True)
class AckResult:
    """What happened to one acknowledgement. ``outcome`` is None when the role was refused."""

    risk_id: str
    plan_version: int
    step: PlanStep
    outcome: AckOutcome | None

    @property
    def forbidden(self) -> bool:
        return self.outcome is None

    @property
    def accepted(self) -> bool:
        return self.outcome is not None and self.outcome.status is AckStatus.ACCEPTED


@dataclass
class Escalator:
    """The service's handlers and loops, sharing configuration, metrics and the clock."""

    context: ServiceContext
    policy: EscalationPolicy
    calendar: BusinessCalendar
    roster: Roster
    metrics: EscalatorMetrics
    timer_settings: TimerSettings
    delivery_settings: DeliverySettings
    smtp: dict[str, SmtpSender] = field(default_factory=dict)
    links: AckLinks | None = None
    timer_loop: TimerLoop | None = None
    delivery: DeliveryWorker | None = None
    sweeper: Sweeper | None = None
    _http: httpx.AsyncClient | None = field(default=None, repr=False)

    # -- time and wiring ---------------------------------------------------------------------

    def now(self) -> datetime:
        """The service's clock; tests replace ``context.state["clock"]`` to move time."""
        return now_of(self.context.state)

    async def start(self, context: ServiceContext) -> None:
        self._http = httpx.AsyncClient(timeout=self.delivery_settings.timeout_s)
        self.delivery = DeliveryWorker(
            context.db,
            self._http,
            retry=self.roster.delivery,
            metrics=self.metrics,
            clock=self.now,
            batch_size=self.delivery_settings.batch_size,
            idle_interval=self.delivery_settings.idle_interval_ms / 1000,
            lease=timedelta(seconds=self.delivery_settings.lease_s),
            smtp=self.smtp,
        )
        assert context.outbox is not None
        self.timer_loop = TimerLoop(
            context.db,
            context.producer,
            context.outbox,
            topic=context.topic(ESCALATION_DUE),
            roster=self.roster,
            metrics=self.metrics,
            clock=self.now,
            batch_size=self.timer_settings.batch_size,
            workers=self.timer_settings.workers,
            idle_interval=self.timer_settings.idle_interval_ms / 1000,
            on_notifications=self.delivery.wake,
            links=self.links,
        )
        self.sweeper = Sweeper(
            context.db,
            metrics=self.metrics,
            clock=self.now,
            overdue_warning=timedelta(seconds=self.timer_settings.overdue_warning_s),
            on_rearmed=self.delivery.wake,
        )

    async def stop(self, context: ServiceContext) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def wake_timers(self) -> None:
        if self.timer_loop is not None:
            self.timer_loop.wake()

    # -- risk-classified ---------------------------------------------------------------------

    async def apply_classifications(
        self, batch: list[Received[RiskClassifiedEvent]]
    ) -> list[OutgoingEvent]:
        """Build (or supersede) each risk's frozen plan and store its timers; the timers already
        due (a new risk's first notification) fire in the same transaction, and their
        ``escalation-due`` events are published with the batch."""
        staged: StagedFiring | None = None
        async with self.context.db.acquire() as connection, connection.transaction():
            events: list[RiskClassifiedEvent] = await claim_new(
                connection,
                (item.event for item in batch),
                lambda event: event.id,
                lock=store.RISK_LOCKS.of(item.event.data.risk_id for item in batch),
            )
            if not events:
                return []
            risk_ids = sorted({event.data.risk_id for event in events})
            await self._apply_classification_batch(connection, events, risk_ids)
            if self.timer_loop is not None:
                staged = await self.timer_loop.stage_due(connection, self.now(), risk_ids)
        if staged is not None and self.timer_loop is not None:
            self.timer_loop.committed(staged)
        self.wake_timers()  # later steps of the new plans may fall due before the next poll
        return staged.outgoing if staged is not None else []

    async def _apply_classification_batch(
        self,
        connection: store.Connection,
        events: list[RiskClassifiedEvent],
        risk_ids: list[str],
    ) -> None:
        """Plan each classification in order against the risk's running plan (stored, or made
        earlier in this batch); new plans are inserted together, after the supersessions."""
        current = {
            risk_id: stored.plan
            for risk_id, stored in (await store.load_current_plans(connection, risk_ids)).items()
        }
        pending: dict[str, store.NewPlan] = {}
        for event in events:
            data = event.data
            change = plan_for_classification(
                current.get(data.risk_id),
                risk_id=data.risk_id,
                level=data.level,
                flagged_at=data.flagged_at,
                policy=self.policy,
                calendar=self.calendar,
            )
            if change is None:
                continue
            if change.superseded is not None:
                if data.risk_id in pending:  # planned earlier in this batch: store it first
                    await store.insert_plans(connection, list(pending.values()))
                    pending.clear()
                await store.update_plan(connection, change.superseded, "superseded")
                await store.cancel_timers(connection, change.cancel_timer_keys, "superseded")
            pending[data.risk_id] = store.NewPlan(
                change.plan,
                data.title,
                event.id,
                plan_timers(change.plan),
                RiskDetails.of(data).to_json(),
            )
            current[data.risk_id] = change.plan
        await store.insert_plans(connection, list(pending.values()))

    # -- acknowledgements --------------------------------------------------------------------

    async def acting_role(
        self, connection: store.Connection, escalation_id: str, roles: list[Role]
    ) -> Role:
        """Which of a person's roles acknowledges a step: the first that may, else the first
        (so the refusal names it). A caller with one role acts in it."""
        if len(roles) > 1:
            location = await store.locate_step(connection, escalation_id)
            stored = (
                await store.load_plan(connection, location.risk_id, location.plan_version)
                if location is not None
                else None
            )
            index = find_step(stored.plan, escalation_id) if stored is not None else None
            if stored is not None and index is not None:
                step = stored.plan.steps[index]
                return next((r for r in roles if may_acknowledge(step, r)), roles[0])
        return roles[0]

    async def acknowledge(
        self, connection: store.Connection, request: AckRequest
    ) -> AckResult | None:
        """Apply one acknowledgement in the caller's transaction; None for an unknown id.

        Every acknowledgement is recorded, whatever its outcome: accepted, late, a repeat, or
        refused. An accepted one closes the step and cancels its pending timers in this same
        transaction; a Level 3 review adds the Risk Management step (confirmed) or the weekly
        review (not confirmed), with their timers.
        """
        location = await store.locate_step(connection, request.escalation_id)
        if location is None:
            return None
        await store.lock_risks(connection, [location.risk_id])
        stored = await store.load_plan(connection, location.risk_id, location.plan_version)
        assert stored is not None  # the step row references its plan
        plan = stored.plan
        index = find_step(plan, request.escalation_id)
        assert index is not None  # the step row is a projection of the plan
        step = plan.steps[index]
        outcome: AckOutcome | None = None
        if may_acknowledge(step, request.role):
            outcome = apply_acknowledgement(plan, index, request.role, request.decision, request.at)
        await store.record_acknowledgement(
            connection,
            event_id=request.event_id,
            escalation_id=request.escalation_id,
            risk_id=location.risk_id,
            plan_version=location.plan_version,
            role=request.role,
            acknowledged_by=request.acknowledged_by,
            acknowledged_at=request.at,
            decision=request.decision,
            note=request.note,
            source=request.source,
            outcome=outcome.status.value if outcome else AckStatus.REJECTED.value,
            late=outcome.late if outcome else False,
            late_by_seconds=outcome.late_by.total_seconds()
            if outcome and outcome.late_by
            else None,
            detail=(
                outcome.detail
                if outcome
                else f"role {request.role.value!r} may not acknowledge the {step.role.value} step"
            ),
            channel=request.channel,
        )
        if outcome is not None and outcome.status is AckStatus.ACCEPTED:
            await store.update_plan(connection, outcome.plan)
            await store.set_acknowledged_by(
                connection, request.escalation_id, request.acknowledged_by
            )
            await store.cancel_timers(connection, outcome.cancel_timer_keys, "acknowledged")
            await store.insert_timers(connection, outcome.plan, outcome.new_timers)
        return AckResult(location.risk_id, location.plan_version, step, outcome)

    def observe_ack(self, result: AckResult, at: datetime) -> None:
        if not result.accepted:
            return
        waited = max(0.0, (at - result.step.notify_at).total_seconds())
        level = str(int(result.outcome.plan.level)) if result.outcome else "0"
        self.metrics.time_to_ack.labels(level, result.step.role.value).observe(waited)

    async def apply_topic_acks(
        self, batch: list[Received[EscalationAcknowledgedEvent]]
    ) -> list[OutgoingEvent]:
        """Acknowledgements from escalation-acks; an unknown risk or escalation is an error
        (the consumer retries, then dead-letters that record with the reason)."""
        results: list[tuple[AckResult, datetime]] = []
        async with self.context.db.acquire() as connection, connection.transaction():
            fresh: list[EscalationAcknowledgedEvent] = await claim_new(
                connection, (item.event for item in batch), lambda event: event.id
            )
            for event in fresh:
                data = event.data
                result = await self.acknowledge(
                    connection,
                    AckRequest(
                        escalation_id=data.escalation_id,
                        role=data.role,
                        acknowledged_by=data.acknowledged_by,
                        decision=data.decision,
                        note=data.note,
                        at=data.acknowledged_at,
                        source="topic",
                        event_id=event.id,
                    ),
                )
                if result is None:
                    if not await store.risk_known(connection, data.risk_id):
                        raise UnknownRiskError(
                            f"acknowledgement {event.id} names unknown risk {data.risk_id!r}"
                        )
                    raise UnknownEscalationError(
                        f"acknowledgement {event.id} names unknown escalation"
                        f" {data.escalation_id!r} of risk {data.risk_id!r}"
                    )
                if result.risk_id != data.risk_id:
                    raise UnknownEscalationError(
                        f"acknowledgement {event.id}: escalation {data.escalation_id!r} belongs"
                        f" to risk {result.risk_id!r}, not {data.risk_id!r}"
                    )
                results.append((result, data.acknowledged_at))
        for result, at in results:
            self.observe_ack(result, at)
        if any(result.accepted for result, _ in results):
            self.wake_timers()
        return []

    def acknowledged_event(self, result: AckResult, request: AckRequest) -> OutgoingEvent:
        """The escalation-acks event announcing an accepted HTTP acknowledgement."""
        event = EscalationAcknowledgedEvent(
            id=acknowledged_event_id(request.escalation_id),
            source=SOURCE,
            time=request.at,
            subject=result.risk_id,
            correlationid=result.risk_id,
            data=EscalationAcknowledged(
                escalation_id=request.escalation_id,
                risk_id=result.risk_id,
                role=request.role,
                acknowledged_by=request.acknowledged_by[:256],
                acknowledged_at=request.at,
                decision=request.decision,
                note=request.note,
            ),
        )
        return OutgoingEvent(self.context.topic(ESCALATION_ACKS), result.risk_id, event)

    async def publish_after_commit(self, items: list[OutgoingEvent]) -> None:
        assert self.context.outbox is not None
        await self.context.outbox.publish_after_commit(items)


# ---------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------


def ack_links(identity_keys_file: Path | None) -> AckLinks | None:
    """Links are signed with the identity keys' signing key, when the service has one."""
    return AckLinks.from_keys_file(identity_keys_file) if identity_keys_file else None


async def run_timer_loop(context: ServiceContext) -> None:
    escalator: Escalator = context.state["escalator"]
    assert escalator.timer_loop is not None
    await escalator.timer_loop.run()


async def run_sweeper(context: ServiceContext) -> None:
    escalator: Escalator = context.state["escalator"]
    assert escalator.sweeper is not None
    await escalator.sweeper.run(escalator.timer_settings.sweep_interval_s)


async def run_delivery_worker(context: ServiceContext) -> None:
    escalator: Escalator = context.state["escalator"]
    assert escalator.delivery is not None
    await escalator.delivery.run()


def configure(context: ServiceContext) -> None:
    """Load and validate the policy, calendar and roster (a bad file stops start-up, naming the
    field), then register consumers, routes and background loops."""
    from riskrelay.escalator.api import build_router
    from riskrelay.escalator.links_api import build_links_router
    from riskrelay.escalator.slack_interactions import build_slack_router

    settings = context.settings
    roster = load_roster(getattr(settings, "roster_path", None))
    escalator = Escalator(
        context=context,
        policy=load_policy(getattr(settings, "policy_path", None)),
        calendar=load_calendar(getattr(settings, "calendar_path", None)),
        roster=roster,
        metrics=EscalatorMetrics(context.registry),
        timer_settings=getattr(settings, "timers", TimerSettings()),
        delivery_settings=getattr(settings, "delivery", DeliverySettings()),
        smtp={name: SmtpSender(name, channel) for name, channel in roster.email_channels.items()},
        links=ack_links(settings.auth.identity_keys_file),
    )
    if roster.links is not None and escalator.links is None:
        raise ValueError(
            "the roster's links need a signing key: set RISKRELAY_ESCALATOR_AUTH__IDENTITY_KEYS_FILE"
            " to an identity keys file with a signing_key_id"
        )
    context.state["escalator"] = escalator
    context.state.setdefault(CLOCK, system_clock)
    context.consume(
        RISK_CLASSIFIED, RiskClassifiedEvent.model_validate_json, escalator.apply_classifications
    )
    context.consume(
        ESCALATION_ACKS,
        EscalationAcknowledgedEvent.model_validate_json,
        escalator.apply_topic_acks,
    )
    context.publishes(ESCALATION_DUE)
    context.publishes(ESCALATION_ACKS)
    context.routers.append(build_router(escalator))
    context.routers.append(build_links_router(escalator))
    context.routers.append(build_slack_router(escalator))
    context.on_startup.append(escalator.start)
    context.on_shutdown.append(escalator.stop)
    context.background.extend([run_timer_loop, run_sweeper, run_delivery_worker])
