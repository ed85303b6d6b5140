"""The durable timer loop: claim due timers, fire them through the outbox, publish.

One firing is one PostgreSQL transaction:

1. one statement claims up to ``batch_size`` due timers, oldest first, ``FOR UPDATE SKIP
   LOCKED``, under a transaction-scoped advisory lock that lets one claim run at a time (loops
   and instances take turns, so a reminder series is never split between two claims; publishing
   after commit still overlaps), checks each one's fence
   (its plan version must still be the risk's current plan and its step still open) and marks it
   fired, or cancelled when stale: a stale timer never fires;
2. the catch-up rule (:func:`riskrelay.escalator.domain.catch_up`) picks, of each reminder
   series found more than a repeat behind, the latest to fire; the others are marked
   ``skipped`` (``covered_by`` names the event that stands for them) in the statement that
   writes the ``escalation-due`` events (ids fixed when the timers were stored) to the outbox;
   their notifications go to the delivery queue.

After commit the events are published; their outbox rows are marked published in bulk, off the
claim path. A crash before commit rolls the claim back (the timers are simply due again); a crash
after commit leaves outbox rows unmarked, and the outbox relay publishes them. Either way every
timer's event is emitted, with the same id, at least once; consumers drop duplicates by id. A
claim never stays stuck behind a hung process: the server aborts a transaction left idle
(``DATABASE__IDLE_IN_TRANSACTION_TIMEOUT_S``), and the rows come back.

Timers already due when a plan is stored (a new risk's first notification) are claimed in the
transaction that stores the plan (:meth:`TimerLoop.stage_due` with the batch's risks), and
published with the batch, so the first escalation waits for no poll and no second transaction.
The loop itself polls with one cheap read and opens a claim transaction only when a timer is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

import asyncpg

from riskrelay.escalator.domain import DueTimer, MissedReminders, catch_up
from riskrelay.escalator.links import AckLinks
from riskrelay.escalator.metrics import EscalatorMetrics
from riskrelay.escalator.notice import RiskDetails
from riskrelay.escalator.person_notices import (
    StepFacts,
    build_person_notifications,
    role_teams_card,
)
from riskrelay.escalator.policy import StepKind
from riskrelay.escalator.roster import Roster, build_notifications
from riskrelay.escalator.store import Connection
from riskrelay.shared.clock import Clock
from riskrelay.shared.events import (
    EscalationDue,
    EscalationDueEvent,
    EscalationReason,
    RiskLevel,
    Role,
)
from riskrelay.shared.kafka import EventProducer, OutgoingEvent
from riskrelay.shared.logging import get_logger
from riskrelay.shared.outbox import Outbox, outbox_insert

log = get_logger(__name__)

SOURCE = "riskrelay/escalator"

# One statement claims, fences and marks: due rows are locked (skipping rows another loop holds),
# each is checked against its plan and step, and set fired (or cancelled as stale) at once. A
# reminder series found more than a repeat behind is claimed whole (``behind``), beyond the batch
# limit, so the catch-up rule sees all of its due reminders in one claim.
_CLAIM_TEMPLATE = """
WITH picked AS (
    SELECT id, risk_id, plan_version, escalation_id, reason, due_at, repeat_every FROM timers
    WHERE state = 'pending' AND due_at <= $1 {risk_filter}
    ORDER BY due_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), behind AS (
    SELECT id, risk_id, plan_version, escalation_id FROM timers
    WHERE escalation_id = ANY (ARRAY(
              SELECT escalation_id FROM picked
              WHERE reason = 'reminder' AND due_at < $1::timestamptz - repeat_every))
      AND state = 'pending' AND reason = 'reminder' AND due_at <= $1
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT id, risk_id, plan_version, escalation_id FROM picked
    UNION ALL
    SELECT id, risk_id, plan_version, escalation_id FROM behind b
    WHERE NOT EXISTS (SELECT FROM picked p WHERE p.id = b.id)
), fenced AS (
    -- One primary-key lookup of the plan and the step per claimed timer (LIMIT 1 keeps the
    -- planner from hashing whole tables for a batch).
    SELECT due.id, e.title, e.cause_event_id,
           COALESCE(e.state <> 'superseded' AND s.status = 'open', false) AS live
    FROM due
    LEFT JOIN LATERAL (
        SELECT title, cause_event_id, state FROM escalations
        WHERE risk_id = due.risk_id AND plan_version = due.plan_version LIMIT 1
    ) e ON true
    LEFT JOIN LATERAL (
        SELECT status FROM escalation_steps WHERE escalation_id = due.escalation_id LIMIT 1
    ) s ON true
)
UPDATE timers t
SET state = CASE WHEN f.live THEN 'fired' ELSE 'cancelled' END,
    fired_at = CASE WHEN f.live THEN $1::timestamptz END,
    cancelled_reason = CASE WHEN f.live THEN NULL ELSE 'stale' END
FROM fenced f
WHERE t.id = f.id
RETURNING t.id, t.event_id, t.escalation_id, t.risk_id, t.plan_version, t.level, t.step, t.role,
          t.step_role, t.reason, t.attempt, t.due_at, t.ack_due_at, t.timeframe_due_at,
          t.repeat_every, f.title, f.cause_event_id, f.live
"""
_CLAIM_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('riskrelay.escalator.claim', 0))"
_CLAIM = _CLAIM_TEMPLATE.format(risk_filter="")
_CLAIM_FOR_RISKS = _CLAIM_TEMPLATE.format(risk_filter="AND risk_id = ANY($3::text[])")

# Reminders the catch-up rule skipped are marked in the statement that writes the claim's events
# to the outbox: the rule costs no round trip.
_SKIP_AND_WRITE_OUTBOX = (
    "WITH skipped AS (UPDATE timers SET state = 'skipped', fired_at = NULL, covered_by = s.c"
    " FROM unnest($6::bigint[], $7::text[]) AS s (id, c) WHERE timers.id = s.id) "
    + outbox_insert(1)
)

_QUEUE_NOTIFICATIONS = """
INSERT INTO notifications (delivery_key, event_id, escalation_id, risk_id, level, role, reason,
                           channel, target, payload, next_attempt_at, recipient)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)
ON CONFLICT (delivery_key) DO NOTHING
"""

# What people's notices show beyond the event: the risk's details and the step's kind.
_STEP_FACTS = """
SELECT s.escalation_id, s.kind, e.details::text AS details FROM escalation_steps s
JOIN escalations e USING (risk_id, plan_version)
WHERE s.escalation_id = ANY($1::text[])
"""


@dataclass(frozen=True)
class StagedFiring:
    """Timers claimed in an open transaction, their events written to the outbox.

    ``live`` are the fired timers, in the order of ``outgoing``; ``skipped`` the reminders the
    catch-up rule coalesced into one of them; the rest of ``claimed`` were stale.
    """

    claimed: int
    live: list[asyncpg.Record]
    skipped: list[asyncpg.Record]
    outgoing: list[OutgoingEvent]
    notifications: int
    now: datetime


@dataclass(frozen=True)
class FiredTimer:
    """A timer whose event the broker acknowledged (what benchmarks and tests observe)."""

    event_id: str
    reason: EscalationReason
    due_at: datetime
    fired_at: datetime
    published_at: datetime


def due_event(row: asyncpg.Record, missed: MissedReminders | None = None) -> EscalationDueEvent:
    """The ``escalation-due`` event of a claimed timer row (the stored PlannedTimer), standing
    for the ``missed`` reminders the catch-up rule skipped.

    Built with ``model_construct``: every value was validated as a PlannedTimer before it was
    stored and comes back typed from PostgreSQL, and validating again would be the largest
    Python cost of a burst. ``tests/unit/escalator`` checks the result against the validated
    contract.
    """
    risk_id: str = row["risk_id"]
    data = EscalationDue.model_construct(
        escalation_id=row["escalation_id"],
        risk_id=risk_id,
        level=RiskLevel(row["level"]),
        step=row["step"],
        target_role=Role(row["role"]),
        reason=EscalationReason(row["reason"]),
        due_at=row["due_at"],
        ack_due_at=row["ack_due_at"],
        timeframe_due_at=row["timeframe_due_at"],
        attempt=row["attempt"],
        title=(row["title"] or "")[:500],
        plan_version=row["plan_version"],
        missed_reminders=missed.number if missed else 0,
        missed_since=missed.since if missed else None,
    )
    return EscalationDueEvent.model_construct(
        id=row["event_id"],
        source=SOURCE,
        # The occurrence is the deadline itself, so a re-fired event is byte-identical.
        time=row["due_at"],
        subject=risk_id,
        correlationid=risk_id,
        causationid=row["cause_event_id"],
        data=data,
    )


def due_timer(row: asyncpg.Record) -> DueTimer:
    """What the catch-up rule reads of a claimed timer row."""
    return DueTimer(
        row["escalation_id"],
        Role(row["role"]),
        EscalationReason(row["reason"]),
        row["due_at"],
        row["repeat_every"],
    )


class TimerLoop:
    """Claims and fires due timers; ``run`` keeps ``workers`` claim loops going."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: EventProducer,
        outbox: Outbox,
        *,
        topic: str,
        roster: Roster,
        metrics: EscalatorMetrics,
        clock: Clock,
        batch_size: int = 500,
        workers: int = 2,
        idle_interval: float = 0.05,
        on_published: Callable[[Sequence[FiredTimer]], None] | None = None,
        on_notifications: Callable[[], None] | None = None,
        links: AckLinks | None = None,
    ) -> None:
        self._pool = pool
        self._links = links
        self._producer = producer
        self._outbox = outbox
        self._topic = topic
        self._roster = roster
        self._metrics = metrics
        self._clock = clock
        self._batch_size = batch_size
        self._workers = workers
        self._idle_interval = idle_interval
        self._on_published = on_published
        self._on_notifications = on_notifications
        self._wake = asyncio.Event()
        self._backlog = asyncio.Event()

    def wake(self) -> None:
        """New timers were stored: the leading loop reads again when the next one falls due
        (the other loops join only when a claim comes back full)."""
        self._wake.set()

    async def run(self) -> None:
        """One leading claim loop polls; the others join while a full batch keeps coming back,
        so an idle service polls once per interval, not once per loop."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._work(leader=True), name="timer-loop-0")
            for n in range(1, self._workers):
                group.create_task(self._work(leader=False), name=f"timer-loop-{n}")

    async def _work(self, *, leader: bool) -> None:
        failures = 0
        while True:
            try:
                claimed = await self.fire_due()
                if claimed >= self._batch_size:
                    self._backlog.set()  # more is probably due: let the other loops help
                elif leader:
                    await self._idle(claimed_nothing=claimed == 0)
                else:
                    self._backlog.clear()
                    await self._backlog.wait()
                failures = 0
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as error:
                # The database or broker is away: nothing was committed, so just try again.
                failures += 1
                log.warning("timer loop failed; retrying", error=repr(error), failures=failures)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))

    async def _idle(self, *, claimed_nothing: bool) -> None:
        """Wait until a timer is due or someone wakes us. Each poll is one read outside any
        transaction; other instances' timers are found by it, this instance's by ``wake``.
        After a claim that found nothing, timers already due are another claimer's: wait."""
        while True:
            next_due: datetime | None = await self._pool.fetchval(
                "SELECT min(due_at) FROM timers WHERE state = 'pending'"
            )
            wait = self._idle_interval
            if next_due is not None:
                until_due = (next_due - self._clock()).total_seconds()
                if until_due > 0:
                    wait = min(wait, until_due)
                elif not claimed_nothing:
                    return
            claimed_nothing = False
            # Woken or not, read again: new timers (``wake``) are usually not due yet, and a read
            # is cheaper than a claim transaction that finds nothing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def fire_due(self) -> int:
        """Claim and fire one batch; returns how many timers were claimed (fired or stale)."""
        async with self._pool.acquire() as connection, connection.transaction():
            staged = await self.stage_due(connection, self._clock())
        self.committed(staged)
        if staged.outgoing:
            await self._publish(staged.outgoing, staged.live, staged.now)
        return staged.claimed

    async def stage_due(
        self, connection: Connection, now: datetime, risk_ids: Sequence[str] | None = None
    ) -> StagedFiring:
        """In the caller's transaction: claim due timers (only ``risk_ids``' when given), write
        their events to the outbox and their notifications to the delivery queue. After commit,
        call :meth:`committed`; the events are then the caller's to publish."""
        # One claim at a time, across loops and instances, until the caller commits: two claims
        # at once would each lock part of a reminder series (SKIP LOCKED) and each fire its
        # latest, so a series fallen behind would send more than one catch-up reminder.
        await connection.execute(_CLAIM_LOCK)
        if risk_ids is None:
            rows = await connection.fetch(_CLAIM, now, self._batch_size)
        else:
            rows = await connection.fetch(_CLAIM_FOR_RISKS, now, self._batch_size, list(risk_ids))
        claimed = sorted((row for row in rows if row["live"]), key=lambda row: row["due_at"])
        decision = catch_up([due_timer(row) for row in claimed], now)
        live: list[asyncpg.Record] = []
        outgoing: list[OutgoingEvent] = []
        for position, row in enumerate(claimed):
            if decision.fires(position):
                event = due_event(row, decision.missed.get(position))
                live.append(row)
                outgoing.append(OutgoingEvent(self._topic, row["risk_id"], event))
        skipped = [claimed[position] for position in decision.covered_by]
        queued = 0
        if outgoing:
            await connection.execute(
                _SKIP_AND_WRITE_OUTBOX,
                *Outbox.columns(outgoing),
                [row["id"] for row in skipped],
                [claimed[covering]["event_id"] for covering in decision.covered_by.values()],
            )
            queued = await self._queue_notifications(connection, outgoing, now)
        return StagedFiring(len(rows), live, skipped, outgoing, queued, now)

    def committed(self, staged: StagedFiring) -> None:
        """Metrics and the delivery worker's wake-up for a committed :meth:`stage_due`."""
        self._observe(staged.live, staged.skipped, staged.now)
        if staged.skipped:
            log.info(
                "overdue reminders coalesced: each series fired its latest",
                skipped=len(staged.skipped),
                fired=sum(row["reason"] == EscalationReason.REMINDER for row in staged.live),
            )
        stale = staged.claimed - len(staged.live) - len(staged.skipped)
        if stale:
            log.info("stale timers cancelled instead of fired", count=stale)
        if staged.notifications and self._on_notifications is not None:
            self._on_notifications()

    async def _queue_notifications(
        self,
        connection: Connection,
        outgoing: Sequence[OutgoingEvent],
        now: datetime,
    ) -> int:
        if not self._roster.delivers:
            return 0
        facts = await self._step_facts(connection, outgoing)
        rows = []
        for item in outgoing:
            event = item.event
            assert isinstance(event, EscalationDueEvent)
            due = event.data
            step = facts.get(due.escalation_id, StepFacts(RiskDetails(), None))
            notifications = build_notifications(
                self._roster, event, teams_card=partial(role_teams_card, self._roster, step, now)
            ) + build_person_notifications(self._roster, event, step, self._links, now)
            for index, notification in enumerate(notifications):
                rows.append(
                    (
                        f"{event.id}:{index}",
                        event.id,
                        due.escalation_id,
                        due.risk_id,
                        int(due.level),
                        due.target_role.value,
                        due.reason.value,
                        notification.channel,
                        notification.url,
                        json.dumps(notification.payload),
                        notification.not_before or now,
                        notification.recipient,
                    )
                )
        if rows:
            await connection.executemany(_QUEUE_NOTIFICATIONS, rows)
        return len(rows)

    async def _step_facts(
        self, connection: Connection, outgoing: Sequence[OutgoingEvent]
    ) -> dict[str, StepFacts]:
        """Read only when some notice shows them (people's notices, Teams cards)."""
        if not self._roster.shows_step_facts:
            return {}
        ids = sorted(
            {
                item.event.data.escalation_id
                for item in outgoing
                if isinstance(item.event, EscalationDueEvent)
            }
        )
        rows = await connection.fetch(_STEP_FACTS, ids)
        return {
            row["escalation_id"]: StepFacts(
                RiskDetails.from_json(json.loads(row["details"]) if row["details"] else None),
                StepKind(row["kind"]),
            )
            for row in rows
        }

    def _observe(
        self, live: Sequence[asyncpg.Record], skipped: Sequence[asyncpg.Record], now: datetime
    ) -> None:
        reasons: Counter[str] = Counter()
        breaches: Counter[str] = Counter()
        for level, count in Counter(str(row["level"]) for row in skipped).items():
            self._metrics.reminders_skipped.labels(level).inc(count)
        for row in live:
            self._metrics.timer_lag.observe(max(0.0, (now - row["due_at"]).total_seconds()))
            reasons[row["reason"]] += 1
            # The next role's copy of a breach is the same breach: count each step's once.
            if row["reason"] == EscalationReason.BREACH and row["role"] == row["step_role"]:
                breaches[str(row["level"])] += 1
        for reason, count in reasons.items():
            self._metrics.fired.labels(reason).inc(count)
        for level, count in breaches.items():
            self._metrics.breaches.labels(level).inc(count)

    async def _publish(
        self, outgoing: Sequence[OutgoingEvent], live: Sequence[asyncpg.Record], now: datetime
    ) -> None:
        try:
            await self._producer.publish(outgoing)
        except Exception as error:
            # Committed: the relay publishes these rows once the broker answers again.
            log.warning("publish failed; the outbox relay will retry", error=repr(error))
            return
        published = self._clock()
        self._outbox.published(item.event.id for item in outgoing)
        if self._on_published is not None:
            self._on_published(
                [
                    FiredTimer(
                        event_id=item.event.id,
                        reason=EscalationReason(row["reason"]),
                        due_at=row["due_at"],
                        fired_at=now,
                        published_at=published,
                    )
                    for item, row in zip(outgoing, live, strict=True)
                ]
            )


class Sweeper:
    """Periodic housekeeping: re-arm abandoned deliveries, refresh gauges, flag late timers."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        metrics: EscalatorMetrics,
        clock: Clock,
        overdue_warning: timedelta,
        on_rearmed: Callable[[], None] | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._clock = clock
        self._overdue_warning = overdue_warning
        self._on_rearmed = on_rearmed

    async def sweep_once(self) -> int:
        """One pass; returns how many deliveries were re-armed."""
        now = self._clock()
        async with self._pool.acquire() as connection:
            result: str = await connection.execute(
                "UPDATE notifications SET state = 'pending', next_attempt_at = $1,"
                " lease_until = NULL WHERE state = 'sending' AND lease_until < $1",
                now,
            )
            rearmed = int(result.split()[-1])
            overdue = await connection.fetch(
                "SELECT s.level, count(*) AS n FROM escalation_steps s"
                " WHERE s.status = 'open' AND s.ack_due_at <= $1 GROUP BY s.level",
                now,
            )
            pending: int = await connection.fetchval(
                "SELECT count(*) FROM timers WHERE state = 'pending'"
            )
            late = await connection.fetchrow(
                "SELECT count(*) AS n, min(due_at) AS oldest FROM timers"
                " WHERE state = 'pending' AND due_at < $1",
                now - self._overdue_warning,
            )
        counts = {row["level"]: row["n"] for row in overdue}
        for level in RiskLevel:
            self._metrics.overdue.labels(str(int(level))).set(counts.get(int(level), 0))
        self._metrics.pending_timers.set(pending)
        if rearmed:
            log.warning("re-armed deliveries abandoned by a stopped worker", count=rearmed)
            if self._on_rearmed is not None:
                self._on_rearmed()
        if late is not None and late["n"]:
            log.warning(
                "timers overdue and not fired: is every timer loop stuck?",
                count=late["n"],
                oldest=late["oldest"].isoformat(),
            )
        return rearmed

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.sweep_once()
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as error:
                log.warning("sweep failed; retrying", error=repr(error))
            await asyncio.sleep(interval)
