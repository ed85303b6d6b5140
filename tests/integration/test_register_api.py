"""The register's HTTP API on the real broker and PostgreSQL: filters, cursor pagination, the
detail view, CSV export, assessments and transitions with If-Match (including two analysts
editing at once), validation errors naming the field, unknown ids, overdue reviews."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from riskrelay.register import store
from riskrelay.register.app import create_app
from riskrelay.register.rebuild import rebuild_from_topic
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.clock import CLOCK
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    Indicator,
    RiskCategory,
    RiskClassified,
    RiskClassifiedEvent,
    RiskLevel,
    RiskRegisteredEvent,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, read_topic, running

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# The register's time for edits made through the API: after the seeded risks were reported.
EDITED_AT = T0 + timedelta(days=5)
TOKENS = {
    "risk_management": [{"token": "rm-token-lena", "subject": "rm-lena"}],
    "support_manager": [{"token": "sm-token-omar", "subject": "sm-omar"}],
    "analyst": "analyst-token",
}
RM = {"Authorization": "Bearer rm-token-lena"}
SM = {"Authorization": "Bearer sm-token-omar"}
ANALYST = {"Authorization": "Bearer analyst-token"}

# risk id, level, category, title, day of first report
SEED = [
    ("r-1", 3, RiskCategory.SERVICE_DISRUPTION, "Checkout slow at peak", 0),
    ("r-2", 4, RiskCategory.DATA_SECURITY_PRIVACY, "Invoices of other customers shown", 1),
    ("r-3", 5, RiskCategory.PRODUCT_SAFETY, '=HYPERLINK("http://evil")', 2),
    ("r-4", 4, RiskCategory.SERVICE_DISRUPTION, "Login fails for SSO tenants", 3),
    ("r-5", 3, RiskCategory.COMPLIANCE, "Consent banner missing", 4),
]


def classified(risk_id: str, level: int, category: RiskCategory, title: str, day: int) -> Any:
    at = T0 + timedelta(days=day)
    data = RiskClassified(
        risk_id=risk_id,
        level=RiskLevel(level),
        category=category,
        ticket_id=f"{risk_id}-T2",
        ticket_ids=[f"{risk_id}-T1", f"{risk_id}-T2"],
        ticket_count=2,
        distinct_customers=2,
        customer_segments=["smb"],
        products=["Portal"],
        indicators=[Indicator.SEVERE_IMPACT],
        title=title,
        redacted_summary=f"Summary of {title}",
        first_reported_at=at,
        flagged_at=at + timedelta(hours=1),
        policy_version="test",
        rules_fired=[],
        evidence=[],
    )
    return RiskClassifiedEvent(
        id=derive_event_id(risk_id, "classify"),
        source="riskrelay/classifier",
        time=at + timedelta(hours=1),
        subject=risk_id,
        data=data,
    )


@asynccontextmanager
async def register_api(
    kafka: KafkaSettings, database: DatabaseSettings, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    app = create_app(
        RegisterSettings(
            kafka=kafka,
            database=database,
            auth=AuthSettings(tokens_file=tokens),
            gauge_refresh_seconds=0.2,
        )
    )
    app.state.context.state[CLOCK] = lambda: EDITED_AT
    async with running(app):
        await produce(
            kafka.bootstrap,
            f"{kafka.topic_prefix}risk-classified",
            [(row[0].encode(), classified(*row).to_json_bytes()) for row in SEED],
        )

        async def seeded() -> bool:
            return bool(await app.state.context.db.fetchval("SELECT count(*) FROM risks") == 5)

        await eventually(seeded)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://register"
        ) as client:
            yield app, client


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["risk_id"] for item in response.json()["items"]]


def error_fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [problem["field"] for problem in response.json()["errors"]]


async def test_list_filters_pagination_detail_and_export(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    async with register_api(kafka_settings, database_settings, tmp_path) as (_, client):
        newest_first = ["r-5", "r-4", "r-3", "r-2", "r-1"]
        assert ids(await client.get("/v1/risks", headers=ANALYST)) == newest_first

        async def listed(**params: Any) -> list[str]:
            return ids(await client.get("/v1/risks", params=params, headers=ANALYST))

        assert await listed(level=4) == ["r-4", "r-2"]
        assert await listed(level=[3, 5]) == ["r-5", "r-3", "r-1"]
        assert await listed(category="data_security_privacy") == ["r-2"]
        assert await listed(status="identified") == newest_first
        assert await listed(status="closed") == []
        assert await listed(q="invoices") == ["r-2"]  # full-text (stemmed)
        assert await listed(q="invoice") == ["r-2"]
        assert await listed(q="SSO ten") == ["r-4"]  # partial words: title match
        # Reported in the period: reports of r-2 (day 1) and r-3 (day 2) overlap [day 1, day 3).
        assert await listed(
            **{
                "from": (T0 + timedelta(days=1)).isoformat(),
                "to": (T0 + timedelta(days=3)).isoformat(),
            }
        ) == ["r-3", "r-2"]
        assert await listed(level=[3, 4], category="service_disruption") == ["r-4", "r-1"]

        pages: list[list[str]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = await client.get("/v1/risks", params=params, headers=ANALYST)
            pages.append(ids(page))
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert pages == [["r-5", "r-4"], ["r-3", "r-2"], ["r-1"]]
        filtered_page = await client.get(
            "/v1/risks", params={"limit": 1, "level": 4}, headers=ANALYST
        )
        assert ids(filtered_page) == ["r-4"]
        second = await client.get(
            "/v1/risks",
            params={"limit": 1, "level": 4, "cursor": filtered_page.json()["next_cursor"]},
            headers=ANALYST,
        )
        assert ids(second) == ["r-2"]
        assert second.json()["next_cursor"] is None

        bad = await client.get("/v1/risks", params={"cursor": "not-a-cursor"}, headers=ANALYST)
        assert error_fields(bad) == ["query.cursor"]
        assert error_fields(await client.get("/v1/risks?level=9", headers=ANALYST)) == [
            "query.level.0"
        ]
        assert error_fields(await client.get("/v1/risks?status=lost", headers=ANALYST)) == [
            "query.status.0"
        ]
        backwards = await client.get(
            "/v1/risks",
            params={"from": T0.isoformat(), "to": (T0 - timedelta(days=1)).isoformat()},
            headers=ANALYST,
        )
        assert error_fields(backwards) == ["query.to"]
        naive = await client.get(
            "/v1/risks", params={"from": "2026-11-01T00:00:00"}, headers=ANALYST
        )
        assert error_fields(naive) == ["query.from"]

        detail = await client.get("/v1/risks/r-2", headers=ANALYST)
        assert detail.status_code == 200, detail.text
        assert detail.headers["etag"] == '"v1"'
        body = detail.json()
        assert body["entry"]["level"] == 4
        assert [t["ticket_id"] for t in body["tickets"]] == ["r-2-T1", "r-2-T2"]
        assert [h["kind"] for h in body["history"]] == ["registered"]
        assert body["history"][0]["changes"]["level"] == {"before": None, "after": 4}
        brief = body["information_to_risk_management"]
        assert brief["affected_customers"] == 2
        assert brief["ticket_ids"] == ["r-2-T1", "r-2-T2"]
        assert body["allowed_transitions"] == ["closed", "escalated", "under_joint_assessment"]
        cached = await client.get("/v1/risks/r-2", headers=ANALYST | {"If-None-Match": '"v1"'})
        assert cached.status_code == 304
        assert (await client.get("/v1/risks/r-404", headers=ANALYST)).status_code == 404

        export = await client.get("/v1/risks/export.csv", params={"level": [4, 5]}, headers=ANALYST)
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert [row["risk_id"] for row in rows] == ["r-4", "r-3", "r-2"]
        assert rows[1]["title"] == '\'=HYPERLINK("http://evil")'
        assert rows[2]["ticket_ids"] == "r-2-T1; r-2-T2"


async def test_assessments_and_transitions_need_the_current_etag(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    async with register_api(kafka_settings, database_settings, tmp_path) as (app, client):
        url = "/v1/risks/r-2"
        assessment = {
            "owner": "rm-lena",
            "likelihood": 4,
            "impact": 4,
            "treatment": "mitigate",
            "assessment": "Tenant filter missing on the invoice endpoint.",
            "mitigation": {
                "strategy": "Hotfix the filter; audit access logs",
                "owner": "eng-payments",
                "target_date": (T0 + timedelta(days=3)).isoformat(),
            },
            "communication_template": "We found and fixed an issue that ...",
            "prevention_measures": "Contract test for tenant isolation",
            "reason": "joint assessment 2026-11-03",
        }
        assert (await client.patch(url, json=assessment, headers=RM)).status_code == 428
        v1 = {"If-Match": '"v1"'}
        assert error_fields(await client.patch(url, json={"likelihood": 9}, headers=RM | v1)) == [
            "body.likelihood"
        ]
        assert error_fields(await client.patch(url, json={"colour": "red"}, headers=RM | v1)) == [
            "body.colour"
        ]
        too_high = {"likelihood": 1, "impact": 2, "residual_score": 5}
        assert error_fields(await client.patch(url, json=too_high, headers=RM | v1)) == [
            "body.residual_score"
        ]
        bad_plan = {"mitigation": {"owner": "x"}}
        assert error_fields(await client.patch(url, json=bad_plan, headers=RM | v1)) == [
            "body.mitigation.strategy"
        ]
        assert (await client.patch("/v1/risks/r-404", json={}, headers=RM | v1)).status_code == 404
        assert (await client.patch(url, json=assessment, headers=ANALYST | v1)).status_code == 403

        saved = await client.patch(url, json=assessment, headers=RM | v1)
        assert saved.status_code == 200, saved.text
        assert saved.headers["etag"] == '"v2"'
        entry = saved.json()
        assert (entry["inherent_score"], entry["residual_score"]) == (16, 8)
        assert entry["updated_at"] == EDITED_AT.isoformat().replace("+00:00", "Z")
        assert entry["mitigation"]["owner"] == "eng-payments"

        stale = await client.patch(url, json={"owner": "someone"}, headers=SM | v1)
        assert stale.status_code == 412
        assert stale.headers["etag"] == '"v2"'

        # Two analysts submit edits based on the same version at the same moment.
        v2 = {"If-Match": '"v2"'}
        racing = await asyncio.gather(
            client.patch(url, json={"owner": "rm-lena-2"}, headers=RM | v2),
            client.patch(url, json={"owner": "sm-omar"}, headers=SM | v2),
        )
        assert sorted(r.status_code for r in racing) == [200, 412]
        winner = next(r for r in racing if r.status_code == 200)
        assert winner.headers["etag"] == '"v3"'
        current = {"If-Match": '"v3"'}

        moves = f"{url}/transitions"
        assert (
            await client.post(moves, json={"target": "escalated"}, headers=RM)
        ).status_code == 428
        only_rm = await client.post(
            moves, json={"target": "under_joint_assessment"}, headers=SM | current
        )
        assert only_rm.status_code == 403
        assert only_rm.json()["detail"]["allowed_roles"] == ["admin", "risk_management"]
        illegal = await client.post(moves, json={"target": "mitigating"}, headers=RM | current)
        assert illegal.status_code == 409
        assert illegal.json()["detail"]["allowed_transitions"] == [
            "closed",
            "escalated",
            "under_joint_assessment",
        ]
        assert "mitigating" in illegal.json()["detail"]["message"]
        unverified = await client.post(moves, json={"target": "closed"}, headers=RM | current)
        assert error_fields(unverified) == ["body.resolution_verification"]
        assert error_fields(await client.post(moves, json={"target": "done"}, headers=RM)) == [
            "body.target"
        ]

        version = 3
        for target, who, extra in [
            ("under_joint_assessment", RM, {}),
            ("response_planned", RM, {}),
            ("mitigating", SM, {}),
            ("monitoring", SM, {}),
            ("closed", RM, {"resolution_verification": "No new reports for 7 days"}),
        ]:
            moved = await client.post(
                moves,
                json={"target": target, "reason": f"to {target}"} | extra,
                headers=who | {"If-Match": f'"v{version}"'},
            )
            assert moved.status_code == 200, moved.text
            version += 1
            assert moved.headers["etag"] == f'"v{version}"'
            assert moved.json()["status"] == target
        assert moved.json()["next_review_at"] is None

        history = (await client.get(url, headers=ANALYST)).json()["history"]
        assert [h["kind"] for h in history] == ["registered", "assessment", "assessment"] + [
            "transition"
        ] * 5
        assert (history[1]["actor"], history[1]["role"]) == ("rm-lena", "risk_management")
        assert history[1]["reason"] == "joint assessment 2026-11-03"
        assert history[5]["actor"] == "sm-omar"
        assert history[-1]["changes"]["status"] == {"before": "monitoring", "after": "closed"}

        def changes(kind: str) -> float | None:
            value: float | None = app.state.context.registry.get_sample_value(
                "riskrelay_register_changes_total", {"kind": kind}
            )
            return value

        assert (changes("registered"), changes("assessment"), changes("transition")) == (5, 2, 5)

        registered = f"{kafka_settings.topic_prefix}risk-registered"
        records = await read_topic(kafka_settings.bootstrap, registered, expected=5 + 7, settle=2)
        mine = [
            RiskRegisteredEvent.model_validate_json(r.value) for r in records if r.key == b"r-2"
        ]
        assert [e.data.version for e in mine] == list(range(1, 9))
        db_state = await store.load_all_entries(app.state.context.db)
        assert await rebuild_from_topic(kafka_settings, registered) == db_state


async def test_overdue_reviews_follow_the_injected_clock_and_feed_the_gauge(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    async with register_api(kafka_settings, database_settings, tmp_path) as (app, client):
        state = app.state.context.state

        async def overdue_at(at: datetime) -> list[str]:
            state[CLOCK] = lambda: at
            response = await client.get("/v1/reviews/overdue", headers=ANALYST)
            assert response.status_code == 200, response.text
            assert response.json()["count"] == len(response.json()["items"])
            return [item["risk_id"] for item in response.json()["items"]]

        def gauge() -> float | None:
            value: float | None = app.state.context.registry.get_sample_value(
                "riskrelay_register_reviews_overdue"
            )
            return value

        assert await overdue_at(T0) == []
        # Level 5 (r-3, first flagged on day 2) is reviewed weekly: due on day 9.
        assert await overdue_at(T0 + timedelta(days=9, hours=1)) == ["r-3"]

        async def gauge_shows_one() -> bool:
            return gauge() == 1.0

        await eventually(gauge_shows_one)
        # Level 4 every 14 days, level 3 every 30: by day 40 everything is due, most late first
        # (r-3 due day 9, r-2 day 15, r-4 day 17, r-1 day 30, r-5 day 34).
        assert await overdue_at(T0 + timedelta(days=40)) == ["r-3", "r-2", "r-4", "r-1", "r-5"]
        reviewed = await client.patch(
            "/v1/risks/r-1", json={"reviewed": True}, headers=RM | {"If-Match": '"v1"'}
        )
        assert reviewed.status_code == 200, reviewed.text
        assert reviewed.json()["next_review_at"] == (T0 + timedelta(days=70)).isoformat().replace(
            "+00:00", "Z"
        )
        assert "r-1" not in await overdue_at(T0 + timedelta(days=40))


async def test_null_clears_the_owner_and_the_mitigation_into_history_and_topic(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    async with register_api(kafka_settings, database_settings, tmp_path) as (app, client):
        url = "/v1/risks/r-4"
        plan = {"strategy": "Roll back the IdP change", "owner": "eng-identity"}
        written = await client.patch(
            url,
            json={
                "owner": "rm-lena",
                "likelihood": 4,
                "impact": 4,
                "treatment": "mitigate",
                "mitigation": plan,
            },
            headers=RM | {"If-Match": '"v1"'},
        )
        assert written.status_code == 200, written.text
        assert (written.json()["inherent_score"], written.json()["residual_score"]) == (16, 8)

        cleared = await client.patch(
            url,
            json={"owner": None, "mitigation": None, "reason": "assigned to the wrong team"},
            headers=SM | {"If-Match": '"v2"'},
        )
        assert cleared.status_code == 200, cleared.text
        assert cleared.headers["etag"] == '"v3"'
        entry = cleared.json()
        assert (entry["owner"], entry["mitigation"]) == (None, None)
        # Left out, so unchanged: the treatment and the scores.
        assert (entry["treatment"], entry["inherent_score"], entry["residual_score"]) == (
            "mitigate",
            16,
            8,
        )
        row = await app.state.context.db.fetchrow(
            "SELECT owner, mitigation_strategy, mitigation_owner FROM risks WHERE risk_id = 'r-4'"
        )
        assert tuple(row) == (None, None, None)

        history = (await client.get(url, headers=ANALYST)).json()["history"]
        assert [h["kind"] for h in history] == ["registered", "assessment", "assessment"]
        last = history[-1]
        assert (last["actor"], last["role"], last["reason"]) == (
            "sm-omar",
            "support_manager",
            "assigned to the wrong team",
        )
        assert last["changes"] == {
            "owner": {"before": "rm-lena", "after": None},
            "mitigation": {
                "before": {
                    "strategy": plan["strategy"],
                    "owner": "eng-identity",
                    "target_date": None,
                },
                "after": None,
            },
        }

        # Scores: a cleared impact takes the inherent and residual scores with it.
        unscored = await client.patch(url, json={"impact": None}, headers=RM | {"If-Match": '"v3"'})
        assert unscored.status_code == 200, unscored.text
        assert [unscored.json()[k] for k in ("impact", "inherent_score", "residual_score")] == [
            None,
            None,
            None,
        ]

        # Mitigating needs its owner and its plan: clearing either is refused, naming the field.
        version = 4
        for change, who in [
            ({"owner": "rm-lena", "impact": 4, "mitigation": plan}, "patch"),
            ({"target": "under_joint_assessment"}, "move"),
            ({"target": "response_planned"}, "move"),
            ({"target": "mitigating"}, "move"),
        ]:
            headers = RM | {"If-Match": f'"v{version}"'}
            done = await (
                client.patch(url, json=change, headers=headers)
                if who == "patch"
                else client.post(f"{url}/transitions", json=change, headers=headers)
            )
            assert done.status_code == 200, done.text
            version += 1
        current = RM | {"If-Match": f'"v{version}"'}
        for field in ("owner", "mitigation", "treatment"):
            refused = await client.patch(url, json={field: None}, headers=current)
            assert error_fields(refused) == [f"body.{field}"]
            message = refused.json()["errors"][0]["message"]
            assert f"{field} cannot be cleared while the risk is mitigating" in message
        kept = (await client.get(url, headers=ANALYST)).json()["entry"]
        assert (kept["version"], kept["owner"], kept["mitigation"]["strategy"]) == (
            version,
            "rm-lena",
            plan["strategy"],
        )

        registered = f"{kafka_settings.topic_prefix}risk-registered"
        records = await read_topic(
            kafka_settings.bootstrap, registered, expected=5 + version - 1, settle=2
        )
        mine = [
            RiskRegisteredEvent.model_validate_json(r.value).data
            for r in records
            if r.key == b"r-4"
        ]
        assert [e.version for e in mine] == list(range(1, version + 1))
        assert (mine[2].owner, mine[2].mitigation, mine[2].treatment) == (None, None, "mitigate")
        assert (mine[3].impact, mine[3].inherent_score, mine[3].residual_score) == (
            None,
            None,
            None,
        )
        assert await rebuild_from_topic(kafka_settings, registered) == await store.load_all_entries(
            app.state.context.db
        )
