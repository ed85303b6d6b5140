"""Register on the real broker and PostgreSQL: what it records, idempotent replay, escalation
signals, the outbox surviving a crash between commit and publish, and rebuilding the register
from risk-registered."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI

from riskrelay.register import store
from riskrelay.register.app import create_app
from riskrelay.register.handlers import registered_event_id
from riskrelay.register.rebuild import fold_entries, rebuild_from_topic
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    EscalationAcknowledged,
    EscalationAcknowledgedEvent,
    EscalationDue,
    EscalationDueEvent,
    EscalationReason,
    Indicator,
    ReviewDecision,
    RiskCategory,
    RiskClassified,
    RiskClassifiedEvent,
    RiskLevel,
    RiskRegisteredEvent,
    RiskStatus,
    Role,
)
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, header, produce, read_topic, running

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def classified(
    risk_id: str, n: int, level: int, *, tickets: int = 1, customers: int = 1
) -> RiskClassifiedEvent:
    ticket_ids = [f"{risk_id}-T{i}" for i in range(1, tickets + 1)]
    data = RiskClassified(
        risk_id=risk_id,
        level=RiskLevel(level),
        category=RiskCategory.SERVICE_DISRUPTION,
        ticket_id=ticket_ids[-1],
        ticket_ids=ticket_ids,
        ticket_count=tickets,
        distinct_customers=customers,
        customer_segments=["smb"],
        products=["Checkout"],
        channels=["email"],
        indicators=[Indicator.SEVERE_IMPACT],
        title=f"Checkout fails ({risk_id})",
        redacted_summary="Payment page crashes with error 502",
        first_reported_at=T0,
        flagged_at=T0 + timedelta(minutes=n),
        policy_version="test",
        rules_fired=[],
        evidence=[],
    )
    return RiskClassifiedEvent(
        id=derive_event_id(f"{risk_id}-{n}", "classify"),
        source="riskrelay/classifier",
        time=T0 + timedelta(minutes=n),
        subject=risk_id,
        data=data,
    )


def due_to_risk_management(risk_id: str, n: int) -> EscalationDueEvent:
    return EscalationDueEvent(
        id=derive_event_id(f"{risk_id}-due-{n}", "due"),
        source="riskrelay/escalator",
        time=T0 + timedelta(minutes=n),
        subject=risk_id,
        data=EscalationDue(
            escalation_id=f"{risk_id}/rm",
            risk_id=risk_id,
            level=RiskLevel.HIGH,
            step=3,
            target_role=Role.RISK_MANAGEMENT,
            reason=EscalationReason.INITIAL,
            due_at=T0 + timedelta(minutes=n),
        ),
    )


def level3_confirmed(risk_id: str, n: int) -> EscalationAcknowledgedEvent:
    return EscalationAcknowledgedEvent(
        id=derive_event_id(f"{risk_id}-ack-{n}", "ack"),
        source="riskrelay/escalator",
        time=T0 + timedelta(minutes=n),
        subject=risk_id,
        data=EscalationAcknowledged(
            escalation_id=f"{risk_id}/sm",
            risk_id=risk_id,
            role=Role.SUPPORT_MANAGER,
            acknowledged_by="sm-anna",
            acknowledged_at=T0 + timedelta(minutes=n),
            decision=ReviewDecision.CONFIRMED,
            note="confirmed in the daily review",
        ),
    )


def topic(kafka: KafkaSettings, name: str) -> str:
    return f"{kafka.topic_prefix}{name}"


async def send(kafka: KafkaSettings, name: str, events: list[Any]) -> None:
    await produce(
        kafka.bootstrap,
        topic(kafka, name),
        [(e.subject.encode(), e.to_json_bytes()) for e in events],
    )


def consumed(app: FastAPI, topic_name: str) -> float:
    value = app.state.context.registry.get_sample_value(
        "riskrelay_consumed_records_total", {"topic": topic_name}
    )
    return value or 0.0


async def snapshot(app: FastAPI) -> dict[str, Any]:
    """Everything the register keeps, for before/after comparisons."""
    db = app.state.context.db
    return {
        "entries": await store.load_all_entries(db),
        "history": [
            tuple(r)
            for r in await db.fetch(
                "SELECT risk_id, version, kind, at, actor, role, cause_event_id, reason,"
                " changes::text FROM risk_history ORDER BY risk_id, version"
            )
        ],
        "tickets": [
            tuple(r)
            for r in await db.fetch(
                "SELECT risk_id, ticket_id, linked_at FROM risk_tickets ORDER BY risk_id, link_id"
            )
        ],
        "outbox": await db.fetchval("SELECT count(*) FROM outbox"),
    }


def settings_for(kafka: KafkaSettings, database: DatabaseSettings) -> RegisterSettings:
    return RegisterSettings(kafka=kafka, database=database, gauge_refresh_seconds=0.2)


async def test_levels_3_to_5_are_recorded_once_per_risk_and_replay_changes_nothing(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    app = create_app(settings_for(kafka_settings, database_settings))
    inputs = [
        classified("risk-a", 1, 2),  # level 2: not the register's business yet
        classified("risk-a", 2, 3, tickets=2, customers=2),  # registered (v1)
        classified("risk-a", 3, 3, tickets=3, customers=2),  # new ticket linked (v2)
        classified("risk-a", 4, 4, tickets=4, customers=4),  # upgraded, same row (v3)
        classified("risk-b", 1, 2),  # never registered
        classified("risk-c", 1, 5),  # registered (v1)
    ]
    source = topic(kafka_settings, "risk-classified")
    registered = topic(kafka_settings, "risk-registered")
    async with running(app):
        db = app.state.context.db
        await send(kafka_settings, "risk-classified", inputs)
        await eventually(lambda: _count(db, "processed_events", len(inputs)))

        entries = await store.load_all_entries(db)
        assert sorted(entries) == ["risk-a", "risk-c"]
        risk_a = entries["risk-a"]
        assert (risk_a.version, risk_a.level, risk_a.status) == (3, 4, RiskStatus.IDENTIFIED)
        assert risk_a.ticket_count == 4
        assert risk_a.ticket_ids == [f"risk-a-T{i}" for i in range(1, 5)]
        assert risk_a.next_review_at == T0 + timedelta(minutes=4, days=14)  # level 4 cadence
        assert risk_a.inherent_score == risk_a.likelihood * risk_a.impact  # type: ignore[operator]
        assert entries["risk-c"].next_review_at == T0 + timedelta(minutes=1, days=7)
        links = await store.load_ticket_links(db, "risk-a")
        assert [link.ticket_id for link in links] == [f"risk-a-T{i}" for i in range(1, 5)]
        history = await store.load_history(db, "risk-a")
        assert [row.kind.value for row in history] == [
            "registered",
            "classification",
            "classification",
        ]
        assert history[2].record.changes["level"].model_dump() == {"before": 3, "after": 4}

        records = await read_topic(kafka_settings.bootstrap, registered, expected=4, settle=2)
        events = [RiskRegisteredEvent.model_validate_json(r.value) for r in records]
        assert sorted((e.data.risk_id, e.data.version) for e in events) == [
            ("risk-a", 1),
            ("risk-a", 2),
            ("risk-a", 3),
            ("risk-c", 1),
        ]
        for record, event in zip(records, events, strict=True):
            assert record.key == event.data.risk_id.encode()
            assert event.id == registered_event_id(event.data.risk_id, event.data.version)
            assert header(record, "ce_type") == "riskrelay.risk.registered.v1"
        assert fold_entries(e.data for e in events) == entries, "published state = stored state"
        await eventually(lambda: _count(db, "outbox WHERE published_at IS NOT NULL", 4))

        before = await snapshot(app)
        await send(kafka_settings, "risk-classified", inputs)  # the whole topic again
        await eventually(lambda: _true(consumed(app, source) >= 2 * len(inputs)))
        await asyncio.sleep(0.5)
        assert await snapshot(app) == before
        again = await read_topic(kafka_settings.bootstrap, registered, expected=4, settle=2)
        assert len(again) == 4, "replay published something"


async def _count(db: Any, table: str, expected: int) -> bool:
    return bool(await db.fetchval(f"SELECT count(*) FROM {table}") >= expected)


async def _true(value: bool) -> bool:
    return value


def acknowledged_by_team_lead(risk_id: str, n: int) -> EscalationAcknowledgedEvent:
    event = level3_confirmed(risk_id, n)
    data = event.data.model_copy(update={"role": Role.TEAM_LEAD, "decision": None})
    return event.model_copy(
        update={"id": derive_event_id(f"{risk_id}-tl-{n}", "ack"), "data": data}
    )


async def test_escalation_signals_move_the_lifecycle_and_unknown_risks_are_skipped(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    app = create_app(settings_for(kafka_settings, database_settings))
    async with running(app):
        db = app.state.context.db
        # Risk Management's notice overtakes the classification that registers the risk.
        early = due_to_risk_management("risk-early", 5)
        to_rm = due_to_risk_management("risk-unknown", 1)
        stranger = to_rm.model_copy(
            update={
                "id": "due-to-agent",
                "data": to_rm.data.model_copy(update={"target_role": Role.AGENT}),
            }
        )
        await send(kafka_settings, "escalation-due", [early, stranger])
        await eventually(lambda: _count(db, "processed_events", 2))
        assert await store.load_all_entries(db) == {}
        pending = await db.fetch("SELECT risk_id FROM pending_signals")
        assert [row["risk_id"] for row in pending] == ["risk-early"]  # the agent notice is not kept

        await send(
            kafka_settings,
            "risk-classified",
            [classified("risk-early", 1, 4), classified("risk-level3", 1, 3)],
        )
        await eventually(lambda: _count(db, "processed_events", 4))
        await send(
            kafka_settings,
            "escalation-acks",
            [acknowledged_by_team_lead("risk-level3", 2), level3_confirmed("risk-level3", 3)],
        )
        await send(kafka_settings, "escalation-due", [due_to_risk_management("risk-level3", 4)])
        await eventually(lambda: _count(db, "processed_events", 7))

        entries = await store.load_all_entries(db)
        assert entries["risk-early"].status is RiskStatus.ESCALATED
        assert entries["risk-early"].version == 2
        assert entries["risk-level3"].status is RiskStatus.ESCALATED
        assert entries["risk-level3"].version == 2  # the later notice to RM changed nothing
        assert await db.fetchval("SELECT count(*) FROM pending_signals") == 0

        early_history = await store.load_history(db, "risk-early")
        assert [row.kind.value for row in early_history] == ["registered", "escalation"]
        assert early_history[1].record.cause_event_id == early.id
        level3_history = await store.load_history(db, "risk-level3")
        confirmation = level3_history[1].record
        assert level3_history[1].kind.value == "acknowledgement"
        assert (confirmation.actor, confirmation.role) == ("sm-anna", Role.SUPPORT_MANAGER)
        assert confirmation.changes["status"].model_dump() == {
            "before": "identified",
            "after": "escalated",
        }
        assert "confirmed" in str(confirmation.reason)

        records = await read_topic(
            kafka_settings.bootstrap,
            topic(kafka_settings, "risk-registered"),
            expected=4,
            settle=1.5,
        )
        assert len(records) == 4
        await eventually(lambda: _gauge_is(app, 1.0, level="4", status="escalated"))
        await eventually(lambda: _gauge_is(app, 0.0, level="4", status="identified"))


async def _gauge_is(app: FastAPI, expected: float, **labels: str) -> bool:
    value = app.state.context.registry.get_sample_value("riskrelay_register_risks", labels)
    return bool(value == expected)


async def test_refused_events_are_dead_lettered_with_the_reason_and_not_marked_processed(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from riskrelay.register import handlers
    from riskrelay.register.domain import RegisterError, merge_classification

    real_merge = merge_classification

    def merge(entry: Any, data: RiskClassified, at: datetime, **kwargs: Any) -> Any:
        if data.risk_id == "risk-bad":
            raise RegisterError("cannot merge risk-bad: simulated refusal")
        return real_merge(entry, data, at, **kwargs)

    monkeypatch.setattr(handlers, "merge_classification", merge)
    app = create_app(settings_for(kafka_settings, database_settings))
    async with running(app):
        db = app.state.context.db
        good, bad = classified("risk-good", 1, 3), classified("risk-bad", 1, 4)
        await send(kafka_settings, "risk-classified", [good, bad])
        await produce(
            kafka_settings.bootstrap, topic(kafka_settings, "risk-classified"), [(b"x", b"{oops")]
        )
        dead = await read_topic(
            kafka_settings.bootstrap,
            topic(kafka_settings, "risk-classified.dlq"),
            expected=2,
            settle=1,
        )
        reasons = sorted(header(record, "dlq_error") or "" for record in dead)
        assert len(dead) == 2
        assert "invalid event" in reasons[1]
        assert "simulated refusal" in reasons[0]
        assert sorted(await store.load_all_entries(db)) == ["risk-good"]
        processed = {r["event_id"] for r in await db.fetch("SELECT event_id FROM processed_events")}
        assert good.id in processed
        assert bad.id not in processed, "a refused event must stay replayable"


async def test_killed_between_commit_and_publish_the_event_still_goes_out_once_and_in_order(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    settings = settings_for(kafka_settings, database_settings)
    registered = topic(kafka_settings, "risk-registered")
    first = create_app(settings)
    producer = first.state.context.producer

    async def broker_gone(*args: Any, **kwargs: Any) -> Any:
        raise KafkaConnectionError("simulated: process killed before the publish")

    async with running(first):
        producer.send_raw = broker_gone  # commit succeeds; every publish after it fails
        db = first.state.context.db
        await send(kafka_settings, "risk-classified", [classified("risk-k", 1, 4)])
        await eventually(lambda: _count(db, "processed_events", 1))
        await eventually(lambda: _count(db, "risks", 1))
        assert await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1
    assert await read_topic(kafka_settings.bootstrap, registered, timeout=2) == []

    second = create_app(settings)  # a fresh instance, same group, same database
    outbox = second.state.context.outbox
    relay_once = outbox.relay_once
    relay_may_run = asyncio.Event()

    async def relay_held_back(*args: Any, **kwargs: Any) -> int:
        return await relay_once(*args, **kwargs) if relay_may_run.is_set() else 0

    # The relay has not reached v1 yet (grace period) when a newer version is committed: the
    # newer one must not overtake it (a compacted topic keeps the last record per key).
    outbox.relay_once = relay_held_back
    async with running(second):
        db = second.state.context.db
        await send(kafka_settings, "risk-classified", [classified("risk-k", 2, 5)])
        await eventually(lambda: _count(db, "risks WHERE version = 2", 1), timeout=60)
        await asyncio.sleep(1.0)  # time for a (wrong) fast publish of v2 to happen
        relay_may_run.set()
        await eventually(lambda: _count(db, "outbox WHERE published_at IS NOT NULL", 2))
        records = await read_topic(kafka_settings.bootstrap, registered, expected=2, settle=3)
    events = [RiskRegisteredEvent.model_validate_json(r.value) for r in records]
    assert [e.id for e in events] == [
        registered_event_id("risk-k", 1),
        registered_event_id("risk-k", 2),
    ]
    assert [e.data.level for e in events] == [4, 5]


async def test_rebuilding_from_risk_registered_equals_the_database(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    app = create_app(settings_for(kafka_settings, database_settings))
    async with running(app):
        db = app.state.context.db
        await send(
            kafka_settings,
            "risk-classified",
            [
                classified("risk-1", 1, 3),
                classified("risk-1", 2, 4, tickets=3, customers=3),
                classified("risk-2", 1, 5, tickets=2, customers=2),
                classified("risk-3", 1, 2),
                classified("risk-4", 1, 3),
            ],
        )
        await send(kafka_settings, "escalation-due", [due_to_risk_management("risk-2", 3)])
        await send(kafka_settings, "escalation-acks", [level3_confirmed("risk-4", 4)])
        await eventually(lambda: _count(db, "processed_events", 7))
        await eventually(lambda: _count(db, "outbox WHERE published_at IS NOT NULL", 6))
        stored = await store.load_all_entries(db)
    rebuilt = await rebuild_from_topic(kafka_settings, topic(kafka_settings, "risk-registered"))
    assert sorted(stored) == ["risk-1", "risk-2", "risk-4"]
    assert rebuilt == stored
    assert rebuilt["risk-2"].status is RiskStatus.ESCALATED
