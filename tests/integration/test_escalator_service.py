"""Escalator on the real broker and PostgreSQL: plans, timers, acks, HTTP, notifications."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from riskrelay.devstack import free_port
from riskrelay.escalator.app import create_app
from riskrelay.escalator.calendar import load_calendar
from riskrelay.escalator.domain import build_plan, due_event_id, plan_timers, supersede
from riskrelay.escalator.policy import EscalationPolicy, load_policy
from riskrelay.escalator.settings import EscalatorSettings, TimerSettings
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    Detection,
    EscalationAcknowledged,
    EscalationAcknowledgedEvent,
    EscalationDueEvent,
    EscalationReason,
    Indicator,
    RiskCategory,
    RiskClassified,
    RiskClassifiedEvent,
    RiskLevel,
    Role,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, header, produce, read_topic, running

pytestmark = pytest.mark.integration
R = EscalationReason

# Seconds instead of minutes and hours, so a whole escalation runs inside a test.
FAST_POLICY = """
version: "test-fast"
pre_breach_warning_fraction: 0.5
levels:
  5:
    timeframe: {rule: elapsed, within: 4s}
    steps: [{role: team_lead}]
    reminders: {every: 1s, max_count: 2}
    breach_notifies: support_director
  4:
    timeframe: {rule: elapsed, within: 4s}
    steps: [{role: team_lead}, {role: support_manager}]
  3:
    timeframe: {rule: elapsed, within: 3s}
    steps: [{role: team_lead}, {role: support_manager, kind: review}]
    on_review_confirmed: {role: risk_management, ack_due: 3s}
    weekly_review: true
  2:
    timeframe: {rule: elapsed, within: 48h}
    steps: [{role: agent}]
    weekly_review: true
  1:
    timeframe: {rule: weekly_review}
    weekly_review: true
"""


def write_fast_policy(folder: Path) -> Path:
    path = folder / "policy.yaml"
    path.write_text(FAST_POLICY)
    return path


def classified(
    risk_id: str, level: int, flagged_at: datetime, *, previous: int | None = None
) -> RiskClassifiedEvent:
    data = RiskClassified(
        risk_id=risk_id,
        level=RiskLevel(level),
        category=RiskCategory.DATA_SECURITY_PRIVACY,
        previous_level=RiskLevel(previous) if previous else None,
        ticket_id=f"T-{risk_id}",
        ticket_ids=[f"T-{risk_id}"],
        ticket_count=1,
        distinct_customers=1,
        indicators=[Indicator.DATA_CONCERN],
        title=f"Possible data exposure ({risk_id})",
        redacted_summary="Customer reports seeing another customer's invoice.",
        first_reported_at=flagged_at,
        flagged_at=flagged_at,
        policy_version="test",
        rules_fired=[],
        evidence=[
            Detection(
                indicator=Indicator.DATA_CONCERN,
                rule_id="data.other_customer",
                evidence="another customer's invoice",
                confidence=0.9,
            )
        ],
    )
    return RiskClassifiedEvent(
        id=derive_event_id(f"classified:{risk_id}", f"level-{level}"),
        source="riskrelay/classifier",
        time=flagged_at,
        subject=risk_id,
        correlationid=risk_id,
        data=data,
    )


def record_of(event: RiskClassifiedEvent) -> tuple[bytes, bytes]:
    return event.data.risk_id.encode(), event.to_json_bytes()


def expected_due_ids(
    policy: EscalationPolicy, risk_id: str, level: int, flagged_at: datetime
) -> dict[str, EscalationReason]:
    """The escalation-due ids (and reasons) a risk's first plan emits when nobody acknowledges."""
    plan = build_plan(
        risk_id=risk_id,
        level=level,
        flagged_at=flagged_at,
        policy=policy,
        calendar=load_calendar(),
    )
    return {due_event_id(t.key, t.plan_version): t.reason for t in plan_timers(plan)}


def load_fast_policy(folder: Path) -> EscalationPolicy:
    return load_policy(write_fast_policy(folder))


def decode_due(values: list[bytes]) -> list[EscalationDueEvent]:
    return [EscalationDueEvent.model_validate_json(value) for value in values]


async def fired_once_or_covered(
    db: asyncpg.Pool, due: list[EscalationDueEvent], expected: dict[str, EscalationReason]
) -> dict[str, str]:
    """Assert every expected escalation is on the topic exactly once, or recorded as a reminder
    the catch-up rule skipped (a loop running late, say while a consumer group rebalances) and
    covered by one that is; returns the skipped ids with the ids covering them."""
    emitted = Counter(d.id for d in due)
    assert all(n == 1 for n in emitted.values()), "an escalation-due was emitted twice"
    skipped: dict[str, str] = {
        row["event_id"]: row["covered_by"]
        for row in await db.fetch("SELECT event_id, covered_by FROM timers WHERE state = 'skipped'")
    }
    assert set(emitted) | set(skipped) == set(expected)
    assert not set(emitted) & set(skipped)
    assert set(skipped.values()) <= set(emitted)
    assert {expected[event_id] for event_id in skipped} <= {R.REMINDER}
    return skipped


async def all_claimed(db: asyncpg.Pool, timers: int) -> bool:
    """All ``timers`` are stored and none is pending any more."""
    return bool(
        await db.fetchval(
            "SELECT count(*) = $1 AND count(*) FILTER (WHERE state = 'pending') = 0 FROM timers",
            timers,
        )
    )


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def settings_for(
    kafka: KafkaSettings, database: DatabaseSettings, folder: Path, **extra: Any
) -> EscalatorSettings:
    return EscalatorSettings(
        kafka=kafka, database=database, policy_path=write_fast_policy(folder), **extra
    )


def topic(kafka: KafkaSettings, name: str) -> str:
    return f"{kafka.topic_prefix}{name}"


async def test_classified_risk_fires_its_plan_with_every_reason_once(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    app = create_app(settings_for(kafka_settings, database_settings, tmp_path))
    async with running(app):
        flagged = datetime.now(UTC)
        event = classified("risk-1", 5, flagged)
        expected = expected_due_ids(load_fast_policy(tmp_path), "risk-1", 5, flagged)
        assert len(expected) == 8
        db = app.state.context.db
        await produce(
            kafka_settings.bootstrap,
            topic(kafka_settings, "risk-classified"),
            [record_of(event), record_of(event)],
        )  # and a redelivery
        await wait_until(lambda: all_claimed(db, len(expected)), 30, "every timer to fire")
        fired = await db.fetchval("SELECT count(*) FROM timers WHERE state = 'fired'")
        records = await read_topic(
            kafka_settings.bootstrap,
            topic(kafka_settings, "escalation-due"),
            expected=fired,
            timeout=30,
            settle=2,
        )
        due = decode_due([r.value for r in records])
        await fired_once_or_covered(db, due, expected)
        assert {d.data.reason for d in due} == set(expected.values())
        for d in due:
            assert d.data.risk_id == "risk-1"
            assert d.data.level == RiskLevel.CRITICAL
            assert d.data.title == "Possible data exposure (risk-1)"
            assert d.causationid == event.id
        director = [d for d in due if d.data.target_role.value == "support_director"]
        assert {d.data.reason for d in director} == {R.BREACH, R.REMINDER}
        assert await db.fetchval("SELECT count(*) FROM escalations") == 1

        async def all_marked_published() -> bool:
            unmarked = await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            return bool(unmarked == 0)

        await eventually(all_marked_published, timeout=10)


TOKENS = {
    "team_lead": "lead-token-1234",
    "support_manager": "manager-token-1234",
    "agent": "agent-token-1234",
    "analyst": "analyst-token-1234",
}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def tokens_file(folder: Path) -> Path:
    path = folder / "tokens.json"
    path.write_text(json.dumps(TOKENS))
    return path


async def open_step(client: httpx.AsyncClient, risk_id: str, role: str) -> dict[str, Any]:
    listing = await client.get(
        "/v1/escalations", params={"risk_id": risk_id}, headers=bearer("analyst")
    )
    assert listing.status_code == 200, listing.text
    steps = [
        s for s in listing.json()["items"] if s["role"] == role and s["kind"] != "weekly_review"
    ]
    assert len(steps) == 1, listing.json()
    step: dict[str, Any] = steps[0]
    return step


async def test_http_ack_cancels_the_steps_timers_and_announces_it(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    app = create_app(
        settings_for(
            kafka_settings,
            database_settings,
            tmp_path,
            auth=AuthSettings(tokens_file=tokens_file(tmp_path)),
        )
    )
    async with running(app):
        # Flagged once the service is up: the step must still be open when it is acknowledged.
        flagged = datetime.now(UTC)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e")
        db = app.state.context.db
        await produce(
            kafka_settings.bootstrap,
            topic(kafka_settings, "risk-classified"),
            [record_of(classified("risk-2", 5, flagged))],
        )

        async def stored() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM escalation_steps"))

        await wait_until(stored, 20, "the plan to be stored")
        step = await open_step(client, "risk-2", "team_lead")
        assert step["state"] == "open"
        url = f"/v1/escalations/{step['escalation_id']}/ack"
        assert (await client.post(url, json={})).status_code == 401
        assert (await client.get("/v1/escalations")).status_code == 401
        refused = await client.post(url, json={}, headers=bearer("agent"))
        assert refused.status_code == 403, refused.text
        analyst = await client.post(url, json={}, headers=bearer("analyst"))
        assert analyst.status_code == 403
        unknown = await client.post(
            "/v1/escalations/no-such-step/ack", json={}, headers=bearer("team_lead")
        )
        assert unknown.status_code == 404
        assert (
            await client.get("/v1/escalations/no-such-step", headers=bearer("analyst"))
        ).status_code == 404
        with_decision = await client.post(
            url, json={"decision": "confirmed"}, headers=bearer("team_lead")
        )
        assert with_decision.status_code == 422
        ok = await client.post(url, json={"note": "on it"}, headers=bearer("team_lead"))
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "accepted"
        assert ok.json()["late"] is False
        again = await client.post(url, json={}, headers=bearer("team_lead"))
        assert again.status_code == 200
        assert again.json()["status"] == "already_closed"

        await asyncio.sleep(7 - (datetime.now(UTC) - flagged).total_seconds())
        due = decode_due(
            [
                r.value
                for r in await read_topic(
                    kafka_settings.bootstrap,
                    topic(kafka_settings, "escalation-due"),
                    expected=1,
                    settle=1,
                )
            ]
        )
        reasons = [d.data.reason for d in due]
        assert R.INITIAL in reasons
        assert R.BREACH not in reasons, reasons
        assert R.REMINDER not in reasons, reasons
        acks = await read_topic(
            kafka_settings.bootstrap, topic(kafka_settings, "escalation-acks"), expected=1
        )
        assert len(acks) == 1
        ack_event = EscalationAcknowledgedEvent.model_validate_json(acks[0].value)
        assert ack_event.id == ok.json()["event_id"]
        assert ack_event.data.escalation_id == step["escalation_id"]
        assert ack_event.data.role.value == "team_lead"

        detail = await client.get(
            f"/v1/escalations/{step['escalation_id']}", headers=bearer("analyst")
        )
        assert detail.status_code == 200
        body = detail.json()
        assert body["state"] == "acknowledged"
        assert body["acknowledged_by"] == "team_lead"
        breach = [t for t in body["timers"] if t["reason"] == "breach"]
        assert breach
        assert all(t["state"] == "cancelled" for t in breach)
        assert [a["outcome"] for a in body["acknowledgements"]] == [
            "rejected",
            "rejected",
            "accepted",
            "already_closed",
        ]
        acknowledged = await client.get(
            "/v1/escalations", params={"state": "acknowledged"}, headers=bearer("team_lead")
        )
        assert [s["escalation_id"] for s in acknowledged.json()["items"]] == [step["escalation_id"]]
        assert (
            await client.get("/v1/escalations", params={"state": "open"}, headers=bearer("agent"))
        ).json()["items"] == []
        # The escalator reads its own announcement back and leaves it alone.
        assert await db.fetchval("SELECT count(*) FROM acknowledgements") == 4
        await client.aclose()


async def test_level_3_review_decides_between_risk_management_and_weekly_review(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    app = create_app(
        settings_for(
            kafka_settings,
            database_settings,
            tmp_path,
            auth=AuthSettings(tokens_file=tokens_file(tmp_path)),
        )
    )
    flagged = datetime.now(UTC)
    async with running(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e")
        db = app.state.context.db
        await produce(
            kafka_settings.bootstrap,
            topic(kafka_settings, "risk-classified"),
            [record_of(classified(r, 3, flagged)) for r in ("risk-c", "risk-n")],
        )

        async def stored() -> bool:
            return bool(await db.fetchval("SELECT count(DISTINCT risk_id) = 2 FROM escalations"))

        await wait_until(stored, 20, "both plans")
        review = await open_step(client, "risk-c", "support_manager")
        url = f"/v1/escalations/{review['escalation_id']}/ack"
        no_decision = await client.post(url, json={}, headers=bearer("support_manager"))
        assert no_decision.status_code == 422
        assert "decision" in no_decision.text
        lead = await client.post(url, json={"decision": "confirmed"}, headers=bearer("team_lead"))
        assert lead.status_code == 403
        confirmed = await client.post(
            url, json={"decision": "confirmed"}, headers=bearer("support_manager")
        )
        assert confirmed.status_code == 200, confirmed.text
        added = confirmed.json()["added_steps"]
        assert [s["role"] for s in added] == ["risk_management"]

        other = await open_step(client, "risk-n", "support_manager")
        not_confirmed = await client.post(
            f"/v1/escalations/{other['escalation_id']}/ack",
            json={"decision": "not_confirmed"},
            headers=bearer("support_manager"),
        )
        assert not_confirmed.status_code == 200
        assert not_confirmed.json()["routed_to_weekly_review_at"] is not None
        assert not_confirmed.json()["added_steps"] == []

        async def risk_management_told() -> bool:
            due = decode_due(
                [
                    r.value
                    for r in await read_topic(
                        kafka_settings.bootstrap,
                        topic(kafka_settings, "escalation-due"),
                        timeout=1,
                        settle=0,
                    )
                ]
            )
            return any(
                d.data.target_role.value == "risk_management" and d.data.reason is R.INITIAL
                for d in due
            )

        await wait_until(risk_management_told, 15, "Risk Management to be notified")
        # The review closed the Team Lead's step of the confirmed risk and its weekly review.
        states = dict(
            await db.fetch(
                "SELECT role || '/' || kind, status FROM escalation_steps WHERE risk_id = 'risk-c'"
            )
        )
        assert states == {
            "team_lead/acknowledge": "cancelled",
            "support_manager/review": "acknowledged",
            "support_manager/weekly_review": "cancelled",
            "risk_management/acknowledge": "open",
        }
        weekly = await db.fetchval(
            "SELECT count(*) FROM timers WHERE risk_id = 'risk-n' AND reason = 'weekly_review'"
            " AND state = 'pending'"
        )
        assert weekly == 1
        await client.aclose()


async def test_weekly_review_fires_on_the_injected_clock(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    app = create_app(settings_for(kafka_settings, database_settings, tmp_path))
    flagged = datetime.now(UTC)
    # Eight days on: past the next Weekly Risk Review whatever today is.
    app.state.context.state["clock"] = lambda: datetime.now(UTC) + timedelta(days=8)
    async with running(app):
        await produce(
            kafka_settings.bootstrap,
            topic(kafka_settings, "risk-classified"),
            [record_of(classified("risk-low", 1, flagged))],
        )
        records = await read_topic(
            kafka_settings.bootstrap, topic(kafka_settings, "escalation-due"), expected=1
        )
        due = decode_due([r.value for r in records])
        assert [(d.data.reason, d.data.target_role.value) for d in due] == [
            (R.WEEKLY_REVIEW, "support_manager")
        ]
        assert due[0].data.due_at > flagged


async def test_upgrade_supersedes_the_running_plan(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    app = create_app(settings_for(kafka_settings, database_settings, tmp_path))
    policy = load_fast_policy(tmp_path)
    async with running(app):
        flagged = datetime.now(UTC)
        await produce(
            kafka_settings.bootstrap,
            topic(kafka_settings, "risk-classified"),
            [
                record_of(classified("risk-up", 3, flagged)),
                record_of(classified("risk-up", 5, flagged + timedelta(seconds=1), previous=3)),
            ],
        )
        upgraded = flagged + timedelta(seconds=1)
        plan_v2 = supersede(
            build_plan(
                risk_id="risk-up",
                level=3,
                flagged_at=flagged,
                policy=policy,
                calendar=load_calendar(),
            ),
            level=5,
            flagged_at=upgraded,
            policy=policy,
            calendar=load_calendar(),
        ).plan
        expected_v2 = {due_event_id(t.key, 2) for t in plan_timers(plan_v2)}
        db = app.state.context.db

        async def second_plan_done() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT count(*) FILTER (WHERE state IN ('fired', 'skipped')) = $1"
                    " AND count(*) FILTER (WHERE state = 'pending') = 0"
                    " FROM timers WHERE plan_version = 2",
                    len(expected_v2),
                )
            )

        await wait_until(second_plan_done, 30, "the second plan to fire")
        skipped = {
            row["event_id"]
            for row in await db.fetch(
                "SELECT event_id FROM timers WHERE plan_version = 2 AND state = 'skipped'"
            )
        }
        records = await read_topic(
            kafka_settings.bootstrap,
            topic(kafka_settings, "escalation-due"),
            expected=len(expected_v2) - len(skipped),
            settle=1,
        )
        due = decode_due([r.value for r in records])
        v1 = [d for d in due if d.data.plan_version == 1]
        v2 = [d for d in due if d.data.plan_version == 2]
        # Every timer of the new plan fired, or was a reminder caught up by a later one.
        assert {d.id for d in v2} == expected_v2 - skipped
        # Only the first plan's immediate notices may have fired before the upgrade landed.
        assert {d.data.reason for d in v1} <= {R.INITIAL}
        assert dict(await db.fetch("SELECT plan_version, state FROM escalations")) == {
            1: "superseded",
            2: "active",
        }
        assert (
            await db.fetchval(
                "SELECT count(*) FROM timers WHERE plan_version = 1 AND cancelled_reason = 'superseded'"
            )
            > 0
        )


async def test_ack_for_an_unknown_risk_is_dead_lettered_with_the_reason(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    kafka = kafka_settings.model_copy(update={"max_attempts": 1})
    app = create_app(settings_for(kafka, database_settings, tmp_path))
    now = datetime.now(UTC)
    ack = EscalationAcknowledgedEvent(
        id="ack-unknown-1",
        source="chatbot://support",
        time=now,
        subject="risk-nobody",
        data=EscalationAcknowledged(
            escalation_id="esc-nobody",
            risk_id="risk-nobody",
            role=Role.TEAM_LEAD,
            acknowledged_by="tara",
            acknowledged_at=now,
        ),
    )
    async with running(app):
        await produce(
            kafka.bootstrap,
            topic(kafka, "escalation-acks"),
            [(b"risk-nobody", ack.to_json_bytes())],
        )
        dead = await read_topic(
            kafka.bootstrap, topic(kafka, "escalation-acks.dlq"), expected=1, timeout=30
        )
        assert len(dead) == 1
        assert "unknown risk 'risk-nobody'" in (header(dead[0], "dlq_error") or "")


async def test_two_instances_fire_every_timer_once(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    settings = settings_for(kafka_settings, database_settings, tmp_path)
    first, second = create_app(settings), create_app(settings)
    policy = load_fast_policy(tmp_path)
    flagged = datetime.now(UTC)
    risks = [f"risk-{n}" for n in range(40)]
    expected: dict[str, EscalationReason] = {}
    for risk_id in risks:
        expected |= expected_due_ids(policy, risk_id, 5, flagged)
    async with running(first), running(second):
        db = first.state.context.db
        await produce(
            kafka_settings.bootstrap,
            topic(kafka_settings, "risk-classified"),
            [record_of(classified(r, 5, flagged)) for r in risks],
        )
        await wait_until(lambda: all_claimed(db, len(expected)), 60, "every timer to fire")
        fired = await db.fetchval("SELECT count(*) FROM timers WHERE state = 'fired'")
        records = await read_topic(
            kafka_settings.bootstrap,
            topic(kafka_settings, "escalation-due"),
            expected=fired,
            timeout=60,
            settle=3,
        )
        await fired_once_or_covered(db, decode_due([r.value for r in records]), expected)


@contextlib.asynccontextmanager
async def http_receiver() -> AsyncIterator[tuple[str, dict[str, list[Any]]]]:
    """A local HTTP endpoint: /hook and /slack answer 200, /broken always 500; bodies kept."""
    received: dict[str, list[Any]] = {"hook": [], "slack": [], "broken": []}
    receiver = FastAPI()

    @receiver.post("/{name}")
    async def receive(name: str, request: Request) -> Response:
        received.setdefault(name, []).append(await request.json())
        return Response(status_code=500 if name == "broken" else 200)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(receiver, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await wait_until(started, 10, "the receiver to start", interval=0.02)
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.should_exit = True
        await task


async def test_notifications_are_delivered_retried_and_failures_recorded(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    async with http_receiver() as (base, received):
        roster = tmp_path / "roster.yaml"
        roster.write_text(
            f"""
source: riskrelay-test
roles:
  team_lead:
    people: [{{name: "Tara Lead", slack_user_id: "U0TEAMLEAD"}}]
    channels:
      - {{type: webhook, url: "{base}/hook"}}
      - {{type: slack, url: "{base}/slack"}}
      - {{type: pagerduty, routing_key: "RK-TEST", url: "{base}/broken"}}
delivery: {{initial_delay: "PT0.2S", multiplier: 2, max_delay: 1s, max_attempts: 3}}
"""
        )
        app = create_app(
            settings_for(kafka_settings, database_settings, tmp_path, roster_path=roster)
        )
        async with running(app):
            flagged = datetime.now(UTC)
            db = app.state.context.db
            await produce(
                kafka_settings.bootstrap,
                topic(kafka_settings, "risk-classified"),
                [record_of(classified("risk-n", 5, flagged))],
            )

            # The Team Lead is told 5 times (initial, warning, breach, 2 reminders), 3 channels.
            async def all_settled() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT count(*) = 15 FROM notifications"
                        " WHERE state IN ('delivered', 'failed')"
                    )
                )

            await wait_until(all_settled, 30, "every notification delivered or failed")
            outcomes = dict(
                await db.fetch(
                    "SELECT channel || '/' || state, count(*) FROM notifications GROUP BY 1"
                )
            )
            assert outcomes == {"webhook/delivered": 5, "slack/delivered": 5, "pagerduty/failed": 5}
            attempts = await db.fetch(
                "SELECT a.attempt, a.status_code, a.outcome FROM delivery_attempts a"
                " JOIN notifications n ON n.id = a.notification_id"
                " WHERE n.channel = 'pagerduty' ORDER BY n.id, a.attempt"
            )
            assert [tuple(r) for r in attempts] == [
                (1, 500, "retry"),
                (2, 500, "retry"),
                (3, 500, "failed"),
            ] * 5
            assert await db.fetchval(
                "SELECT bool_and(attempts = 3 AND last_error LIKE 'HTTP 500%')"
                " FROM notifications WHERE channel = 'pagerduty'"
            )
            metrics = (
                await httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://e"
                ).get("/metrics")
            ).text
            assert (
                'riskrelay_notification_deliveries_total{channel="pagerduty",outcome="failed"} 5.0'
                in metrics
            )
            assert "riskrelay_escalation_timer_lag_seconds_count 8.0" in metrics
            assert 'riskrelay_escalation_breaches_total{level="5"} 1.0' in metrics
            assert 'riskrelay_escalation_fired_total{reason="reminder"} 4.0' in metrics

            # A worker that died mid-send leaves its claim leased; the sweeper re-arms it.
            escalator = app.state.context.state["escalator"]
            await db.execute(
                "INSERT INTO notifications (delivery_key, event_id, escalation_id, risk_id, level,"
                " role, reason, channel, target, payload, state, attempts, next_attempt_at,"
                " lease_until) VALUES ('orphan:0', 'orphan', 'esc-orphan', 'risk-n', 5,"
                " 'team_lead', 'breach', 'webhook', $1, '{\"orphan\": true}', 'sending', 0,"
                " now(), now() - interval '1 second')",
                f"{base}/hook",
            )
            assert await escalator.sweeper.sweep_once() == 1

            async def orphan_delivered() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT state = 'delivered' FROM notifications"
                        " WHERE delivery_key = 'orphan:0'"
                    )
                )

            await wait_until(orphan_delivered, 10, "the re-armed delivery")
            # Nobody acknowledged: the sweeper's gauges show the overdue step, no pending timer.
            metrics = (
                await httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://e"
                ).get("/metrics")
            ).text
            assert 'riskrelay_escalations_overdue{level="5"} 1.0' in metrics
            assert "riskrelay_escalation_pending_timers 0.0" in metrics
        hooks = [h for h in received["hook"] if "orphan" not in h]
        assert len(hooks) == 5
        assert {"orphan": True} in received["hook"]
        assert {h["type"] for h in hooks} == {"riskrelay.escalation.due.v1"}
        assert {h["data"]["reason"] for h in hooks} == {
            "initial",
            "pre_breach_warning",
            "breach",
            "reminder",
        }
        assert all("<@U0TEAMLEAD>" in str(s["blocks"]) for s in received["slack"])
        assert len(received["broken"]) == 15  # 5 notifications x 3 attempts
        assert {p["routing_key"] for p in received["broken"]} == {"RK-TEST"}
        assert {p["payload"]["severity"] for p in received["broken"]} == {"critical"}


async def test_a_risk_classified_days_late_catches_up_with_one_reminder_per_step_and_role(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    """The protocol policy (Level 5: reminders every 15 minutes, 8 of them) on a clock that
    stands still: a risk flagged five days before it fires one catch-up reminder per step and
    role instead of all of them; one whose first reminder is a single interval late fires as
    usual. A batch of 5 timers makes the claims split the backlog, not the reminder series."""
    now = datetime.now(UTC).replace(microsecond=0)
    old = classified("risk-old", 5, now - timedelta(days=5))
    # Breach 30 minutes ago: the first reminder is one interval overdue, the second due now.
    recent = classified("risk-recent", 5, now - timedelta(minutes=45))
    policy, calendar = load_policy(), load_calendar()
    plans = {
        event.data.risk_id: build_plan(
            risk_id=event.data.risk_id,
            level=5,
            flagged_at=event.data.flagged_at,
            policy=policy,
            calendar=calendar,
        )
        for event in (old, recent)
    }
    async with http_receiver() as (base, received):
        roster = tmp_path / "roster.yaml"
        roles = ("team_lead", "support_manager", "support_director", "risk_management")
        roster.write_text(
            json.dumps(
                {
                    "roles": {
                        r: {"channels": [{"type": "webhook", "url": f"{base}/{r}"}]} for r in roles
                    }
                }
            )
        )
        app = create_app(
            EscalatorSettings(
                kafka=kafka_settings,
                database=database_settings,
                roster_path=roster,
                auth=AuthSettings(tokens_file=tokens_file(tmp_path)),
                timers=TimerSettings(batch_size=5),
            )
        )
        app.state.context.state["clock"] = lambda: now
        async with running(app):
            db = app.state.context.db
            await produce(
                kafka_settings.bootstrap,
                topic(kafka_settings, "risk-classified"),
                [record_of(old), record_of(recent)],
            )

            async def settled() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT count(*) = 0 FROM timers WHERE state = 'pending' AND due_at <= $1",
                        now,
                    )
                )

            await wait_until(settled, 30, "every due timer to be claimed")
            due = decode_due(
                [
                    r.value
                    for r in await read_topic(
                        kafka_settings.bootstrap,
                        topic(kafka_settings, "escalation-due"),
                        expected=18 + 24,
                        timeout=30,
                        settle=2,
                    )
                ]
            )
            by_risk = {
                risk_id: [d.data for d in due if d.data.risk_id == risk_id] for risk_id in plans
            }
            # Five days old: 3 first notices, 3 warnings, 6 breaches, 6 reminders (not 48).
            assert Counter(d.reason for d in by_risk["risk-old"]) == {
                R.INITIAL: 3,
                R.PRE_BREACH_WARNING: 3,
                R.BREACH: 6,
                R.REMINDER: 6,
            }
            old_plan = plans["risk-old"]
            first_reminder_due = old_plan.timeframe_due_at + timedelta(minutes=15)
            reminders = [d for d in by_risk["risk-old"] if d.reason is R.REMINDER]
            assert Counter((d.step, d.target_role.value) for d in reminders) == {
                (step.index, role): 1
                for step in old_plan.steps
                for role in (step.role.value, "support_director")
            }
            assert {(d.attempt, d.missed_reminders, d.missed_since) for d in reminders} == {
                (9, 7, first_reminder_due)
            }
            # One interval overdue: both due reminders of every series, nothing missed.
            recent_reasons = Counter(d.reason for d in by_risk["risk-recent"])
            assert recent_reasons[R.REMINDER] == 12
            assert all(d.missed_reminders == 0 for d in by_risk["risk-recent"])
            assert len(due) == len({d.id for d in due}) == 42

            # The skipped reminders are on record, each covered by its series' catch-up event.
            skipped = await db.fetch(
                "SELECT t.escalation_id, t.role, c.escalation_id AS c_escalation, c.role AS c_role,"
                " c.attempt AS c_attempt FROM timers t JOIN timers c ON c.event_id = t.covered_by"
                " WHERE t.state = 'skipped'"
            )
            assert len(skipped) == 42
            assert all(
                (r["escalation_id"], r["role"], r["c_attempt"])
                == (r["c_escalation"], r["c_role"], 9)
                for r in skipped
            )
            states = dict(
                await db.fetch(
                    "SELECT state, count(*) FROM timers WHERE risk_id = 'risk-old' GROUP BY state"
                )
            )
            assert states == {"fired": 18, "skipped": 42}
            assert (
                await db.fetchval(
                    "SELECT count(*) FROM timers WHERE risk_id = 'risk-recent' AND state = 'skipped'"
                )
                == 0
            )

            async def delivered() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT count(*) = 42 FROM notifications WHERE state = 'delivered'"
                    )
                )

            await wait_until(delivered, 30, "one notification per escalation-due")
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e")
            metrics = (await client.get("/metrics")).text
            assert 'riskrelay_escalation_reminders_skipped_total{level="5"} 42.0' in metrics
            # Breaches are still breaches: one per step of each risk.
            assert 'riskrelay_escalation_breaches_total{level="5"} 6.0' in metrics
            detail = await client.get(
                f"/v1/escalations/{old_plan.steps[0].escalation_id}", headers=bearer("analyst")
            )
            assert detail.status_code == 200, detail.text
            timer_states = Counter(
                (t["reason"], t["state"], bool(t["covered_by"])) for t in detail.json()["timers"]
            )
            assert timer_states[("reminder", "skipped", True)] == 14
            assert timer_states[("reminder", "fired", False)] == 2
            await client.aclose()
        catch_up_bodies = [
            body
            for name in roles
            for body in received[name]
            if body["data"]["risk_id"] == "risk-old" and body["data"]["reason"] == "reminder"
        ]
        assert len(catch_up_bodies) == 6
        assert {b["data"]["missed_reminders"] for b in catch_up_bodies} == {7}
