"""Classifier on the real broker and PostgreSQL: two instances, one burst, one risk; overrides."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from riskrelay.classifier.app import create_app
from riskrelay.classifier.domain import cluster_risk_id
from riskrelay.classifier.settings import ClassifierSettings
from riskrelay.shared.clock import CLOCK
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    ClusterInfo,
    Detection,
    Indicator,
    RiskClassifiedEvent,
    TicketEventKind,
    TicketFlagged,
    TicketFlaggedEvent,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import produce, read_topic, running

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def flagged(n: int, cluster_size: int, surging: bool) -> TicketFlaggedEvent:
    at = START + timedelta(minutes=n)
    indicators = [
        Detection(
            indicator=Indicator.SEVERE_IMPACT,
            rule_id="impact.operational",
            evidence="checkout fails",
            confidence=0.8,
        )
    ]
    if surging:
        indicators.append(
            Detection(
                indicator=Indicator.MULTIPLE_SIMILAR_REPORTS,
                rule_id="cluster.surge",
                evidence="5 customers in 60 min",
                confidence=0.9,
            )
        )
    data = TicketFlagged(
        ticket_id=f"T-{n}",
        upstream_event_id=f"up-{n}",
        upstream_source="zendesk://acme",
        event_kind=TicketEventKind.CREATED,
        occurred_at=at,
        channel="email",
        priority="high",
        product="Checkout",
        customer_id=f"C-{n}",
        customer_segment="smb",
        redacted_subject="Checkout fails",
        redacted_summary="Payment page crashes with error 502",
        indicators=indicators,
        cluster=ClusterInfo(
            cluster_id="cl-checkout",
            size=cluster_size,
            distinct_customers=cluster_size,
            surging=surging,
            first_seen_at=START,
        ),
        rule_pack_version="test",
    )
    return TicketFlaggedEvent(
        id=derive_event_id(f"up-{n}", "flag"),
        source="riskrelay/intake",
        time=at,
        subject=data.ticket_id,
        data=data,
    )


async def test_two_instances_make_one_risk_with_one_final_level(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings
) -> None:
    settings = ClassifierSettings(kafka=kafka_settings, database=database_settings)
    first, second = create_app(settings), create_app(settings)
    events = [flagged(n, cluster_size=n, surging=n >= 5) for n in range(1, 9)]
    records = [(e.data.ticket_id.encode(), e.to_json_bytes()) for e in events]
    async with running(first), running(second):
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}ticket-flagged",
            records + records,
        )  # and every one again
        out = await read_topic(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            expected=2,
            timeout=40,
            settle=3,
        )
        classified = [RiskClassifiedEvent.model_validate_json(r.value) for r in out]
        assert {c.data.risk_id for c in classified} == {cluster_risk_id("cl-checkout")}
        assert len({c.id for c in classified}) == len(classified), "an event was published twice"
        # Partitions are processed in any order, so the first level seen may already be High;
        # what must hold is that levels only go up and end at High (a surge).
        assert max(c.data.level for c in classified) == 4
        for c in classified:
            assert c.data.previous_level is None or c.data.previous_level < c.data.level
        high = next(c for c in classified if c.data.level == 4)
        assert high.data.rules_fired
        assert high.data.policy_version
        stored = await first.state.context.db.fetch("SELECT risk_id, level FROM risks")
        assert [(r["risk_id"], r["level"]) for r in stored] == [(cluster_risk_id("cl-checkout"), 4)]
        ticket_count = await first.state.context.db.fetchval(
            "SELECT (state->>'ticket_count')::int FROM risks"
        )
        assert ticket_count == 8


async def test_override_is_role_checked_validated_and_published(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"support_manager": "manager-token", "agent": "agent-token-1"}))
    settings = ClassifierSettings(
        kafka=kafka_settings, database=database_settings, auth=AuthSettings(tokens_file=tokens)
    )
    app = create_app(settings)
    overridden_at = START + timedelta(hours=2)
    app.state.context.state[CLOCK] = lambda: overridden_at
    risk_id = cluster_risk_id("cl-checkout")
    async with running(app):
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}ticket-flagged",
            [(b"T-1", flagged(1, 1, False).to_json_bytes())],
        )
        for _ in range(200):
            if await app.state.context.db.fetchval("SELECT count(*) FROM risks"):
                break
            await asyncio.sleep(0.1)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://classifier"
        )
        url = f"/v1/risks/{risk_id}/level"
        body = {"level": 5, "reason": "confirmed data exposure in logs"}
        assert (await client.post(url, json=body)).status_code == 401
        assert (
            await client.post(url, json=body, headers={"Authorization": "Bearer agent-token-1"})
        ).status_code == 403
        manager = {"Authorization": "Bearer manager-token"}
        assert (
            await client.post("/v1/risks/risk-nope/level", json=body, headers=manager)
        ).status_code == 404
        bad_level = await client.post(url, json={"level": 9, "reason": "x"}, headers=manager)
        assert bad_level.status_code == 422
        assert "level" in bad_level.text
        no_reason = await client.post(url, json={"level": 5}, headers=manager)
        assert no_reason.status_code == 422
        assert "reason" in no_reason.text
        ok = await client.post(url, json=body, headers=manager)
        assert ok.status_code == 202, ok.text
        assert ok.json()["level"] == 5
        out = await read_topic(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            expected=2,
            timeout=20,
        )
        override = [
            RiskClassifiedEvent.model_validate_json(r.value)
            for r in out
            if b'"override"' in r.value
        ]
        assert len(override) == 1
        assert override[0].data.override is not None
        assert override[0].data.override.role.value == "support_manager"
        assert override[0].data.override.reason == "confirmed data exposure in logs"
        assert override[0].time == overridden_at
        assert override[0].data.flagged_at == overridden_at  # the level changed: a new clock
        assert await app.state.context.db.fetchval("SELECT level FROM risks") == 5
        await client.aclose()
