"""Reporting on the real broker and PostgreSQL: every topic into the read model, replays change
nothing, unappliable events are dead-lettered (and counted on the dashboard), and the HTTP
report endpoints answer with the golden numbers or a clear 4xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from riskrelay.reporting.app import create_app
from riskrelay.reporting.settings import ReportingSettings, ScheduleSettings
from riskrelay.shared.kafka import dead_letter_headers
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import header, produce, read_topic, running

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parents[1] / "golden" / "reporting"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
TOKENS = {"risk_management": "rm-token-123", "agent": "agent-token-1", "analyst": "analyst-tok-1"}


@dataclass
class FixedClock:
    current: datetime

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.5))


def history_records() -> dict[str, list[tuple[bytes, bytes]]]:
    by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
    for line in (GOLDEN / "history.jsonl").read_text().splitlines():
        item = json.loads(line)
        by_topic.setdefault(item["topic"], []).append(
            (item["key"].encode(), json.dumps(item["event"]).encode())
        )
    return by_topic


async def produce_history(kafka: KafkaSettings) -> int:
    total = 0
    for topic, records in history_records().items():
        await produce(kafka.bootstrap, f"{kafka.topic_prefix}{topic}", records)
        total += len(records)
    return total


async def wait_for(app: FastAPI, sql: str, expected: int, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = await app.state.context.db.fetchval(sql)
        if value == expected:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{sql} gave {value}, expected {expected}")


@pytest.fixture
async def reporting(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> AsyncIterator[FastAPI]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    settings = ReportingSettings(
        kafka=kafka_settings.model_copy(update={"max_attempts": 2}),
        database=database_settings,
        auth=AuthSettings(tokens_file=tokens),
        schedule=ScheduleSettings(enabled=False),
    )
    app = create_app(settings)
    app.state.context.state["clock"] = FixedClock(NOW)
    async with running(app):
        yield app


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://reporting", headers=headers
    )


async def table_counts(app: FastAPI) -> dict[str, Any]:
    db = app.state.context.db
    names = [
        "tickets", "flagged_tickets", "clusters", "risk_classifications", "ticket_risks",
        "cluster_risks", "escalation_notices", "escalation_acks", "register_versions",
        "dead_letters", "processed_events",
    ]  # fmt: skip
    return {name: await db.fetchval(f"SELECT count(*) FROM {name}") for name in names}


async def test_events_reach_the_read_model_once_and_reports_match_the_golden_files(
    reporting: FastAPI, kafka_settings: KafkaSettings
) -> None:
    produced = await produce_history(kafka_settings)
    await wait_for(reporting, "SELECT count(*) FROM processed_events", produced)
    async with client(reporting, TOKENS["risk_management"]) as http:
        response = await http.get("/v1/reports/weekly", params={"week": "2026-W47"})
        assert response.status_code == 200
        expected = json.loads((GOLDEN / "weekly-2026-W47.json").read_text())
        assert response.json() == expected
        assert response.headers["x-report-empty"] == "false"
        before = await table_counts(reporting)
        # The whole history again (a replay after a rewind): nothing changes.
        await produce_history(kafka_settings)
        applied = reporting.state.context.registry.get_sample_value
        await asyncio.sleep(3)
        assert await table_counts(reporting) == before
        again = await http.get("/v1/reports/weekly", params={"week": "2026-W47"})
        assert again.json() == expected
        assert applied("riskrelay_reporting_events_applied_total", {"topic": f"{kafka_settings.topic_prefix}ticket-flagged"}) == 15  # fmt: skip
        # Personal data from raw upstream events is never stored.
        stored = await reporting.state.context.db.fetch("SELECT * FROM tickets")
        assert all(
            "never store" not in json.dumps([str(v) for v in row.values()]) for row in stored
        )


async def test_unappliable_events_are_dead_lettered_and_counted(
    reporting: FastAPI, kafka_settings: KafkaSettings
) -> None:
    prefix = kafka_settings.topic_prefix
    records = history_records()
    key, good = records["risk-classified"][0]
    bad = json.loads(good)
    bad["id"] = "bad-risk-id"
    bad["data"]["risk_id"] = "  "
    nul = json.loads(good)
    nul["id"] = "nul-title"
    nul["data"]["title"] = "broken\u0000title"
    await produce(
        kafka_settings.bootstrap,
        f"{prefix}risk-classified",
        [(key, json.dumps(bad).encode()), (key, json.dumps(nul).encode()), (key, b"{not json")],
    )
    dead = await read_topic(
        kafka_settings.bootstrap, f"{prefix}risk-classified.dlq", expected=3, timeout=40, settle=1
    )
    assert len(dead) == 3
    reasons = sorted(header(r, "dlq_error") or "" for r in dead)
    assert any("data.risk_id is empty" in r for r in reasons)
    assert any("NUL character" in r for r in reasons)
    await wait_for(reporting, "SELECT count(*) FROM dead_letters", 3)
    assert (
        await reporting.state.context.db.fetchval("SELECT count(*) FROM risk_classifications") == 0
    )
    async with client(reporting, TOKENS["analyst"]) as http:
        reporting.state.context.state.pop("dashboard", None)
        figures = (await http.get("/v1/dashboard.json")).json()
    [topic] = figures["dead_letters"]
    assert (topic["topic"], topic["records"], topic["dead_letters"]) == ("risk-classified", 3, 3)
    assert [(c["consumer_group"], c["records"]) for c in topic["consumers"]] == [
        ("riskrelay-reporting", 3)
    ]
    assert figures["dead_letters_total"] == 3


async def test_a_record_dead_lettered_by_two_consumers_counts_once(
    reporting: FastAPI, kafka_settings: KafkaSettings
) -> None:
    """Reporting and classifier both read ticket-flagged, so a bad record there is dead-lettered
    twice: the dashboard shows one record, with each consumer's count as the detail."""
    prefix = kafka_settings.topic_prefix
    source, dlq = f"{prefix}ticket-flagged", f"{prefix}ticket-flagged.dlq"
    await produce(kafka_settings.bootstrap, source, [(b"T-1", b"{not json"), (b"T-2", b"[]")])
    # Reporting's own consumer dead-letters both ...
    await wait_for(reporting, "SELECT count(*) FROM dead_letters", 2)
    # ... and so does the classifier's, with the headers every BatchConsumer writes.
    bad = await read_topic(kafka_settings.bootstrap, source, expected=2, settle=0.2)
    failed_at = NOW.replace(hour=8)
    for record in [*bad, bad[0]]:  # bad[0] twice: a redelivery after a crash, dead-lettered again
        headers = dead_letter_headers(
            record, "invalid event", 1, f"{prefix}riskrelay-classifier", failed_at
        )
        await produce(kafka_settings.bootstrap, dlq, [(record.key, record.value or b"")], headers)
    await wait_for(reporting, "SELECT count(*) FROM dead_letters", 5)
    async with client(reporting, TOKENS["analyst"]) as http:
        reporting.state.context.state.pop("dashboard", None)
        figures = (await http.get("/v1/dashboard.json")).json()
    [topic] = figures["dead_letters"]
    assert (topic["topic"], topic["records"], topic["dead_letters"]) == ("ticket-flagged", 2, 5)
    assert [(c["consumer_group"], c["records"]) for c in topic["consumers"]] == [
        ("riskrelay-classifier", 2),
        ("riskrelay-reporting", 2),
    ]
    assert figures["dead_letters_total"] == 2


async def test_report_endpoints_check_roles_and_reject_bad_input_clearly(
    reporting: FastAPI,
) -> None:
    async with client(reporting) as anonymous:
        assert (await anonymous.get("/v1/reports/weekly?week=2026-W47")).status_code == 401
        assert (await anonymous.get("/v1/dashboard.json")).status_code == 401
        page = await anonymous.get("/dashboard")
        assert page.status_code == 401
        assert "token" in page.text
    async with client(reporting, TOKENS["agent"]) as agent:
        assert (await agent.get("/v1/reports/monthly?month=2026-11")).status_code == 403
    async with client(reporting, TOKENS["risk_management"]) as http:
        for url, fragment in [
            ("/v1/reports/weekly?week=2026-47", "expected YYYY-Www"),
            ("/v1/reports/weekly?week=2025-W53", "no ISO week 53"),
            ("/v1/reports/monthly?month=2026-13", "month must be 01-12"),
            ("/v1/reports/monthly?month=November", "expected YYYY-MM"),
        ]:
            response = await http.get(url)
            assert response.status_code == 422, url
            assert fragment in response.json()["detail"]
        unknown = await http.get("/v1/reports/weekly?week=2026-W47&format=pdf")
        assert unknown.status_code == 422
        assert "format" in unknown.text
        assert "'html'" in unknown.text
        empty = await http.get("/v1/reports/weekly?week=2026-W42&format=html")
        assert empty.status_code == 200
        assert empty.headers["x-report-empty"] == "true"
        assert "No data for 2026-W42" in empty.text  # nothing was consumed in this test
        for fmt, media in [("md", "text/markdown"), ("csv", "text/csv"), ("html", "text/html")]:
            response = await http.get(f"/v1/reports/monthly?month=2026-11&format={fmt}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(media)
            assert "monthly-risk-report-2026-11." + fmt in response.headers["content-disposition"]
        default = await http.get("/v1/reports/monthly")
        assert default.json()["period"]["label"] == "2026-10"  # the last full month before NOW
        # The dashboard: a token in the address becomes a cookie, then the page and JSON load.
        redirect = await http.get("/dashboard", params={"token": TOKENS["risk_management"]})
        assert redirect.status_code == 303
        cookie = redirect.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
    async with client(reporting) as browser:
        browser.cookies.set("riskrelay_dashboard", TOKENS["risk_management"])
        page = await browser.get("/dashboard")
        assert page.status_code == 200
        assert "script-src 'nonce-" in page.headers["content-security-policy"]
        assert (await browser.get("/v1/dashboard.json")).status_code == 200
