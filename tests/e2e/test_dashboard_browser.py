"""Headless Chromium loads the live dashboard from a running reporting service (uvicorn on a free
port, real broker and PostgreSQL, data seeded through the topics) and finds the expected figures
after the page's script fetched them; then from the whole dev stack fed the demo's traffic. The
screenshots are kept in ``tests/artifacts/`` (``dashboard-demo.png`` is committed).

Chromium is Debian's ``chromium`` package, found (or installed in CI) by ``conftest.py``; this
test drives it from its command line, without Playwright.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from riskrelay.cli.demo import busiest_periods, run_demo, viewer_token
from riskrelay.cli.inbox import read_notifications
from riskrelay.cli.stack import SERVICES, Stack, StackConfig
from riskrelay.devstack import free_port
from riskrelay.reporting.app import create_app
from riskrelay.reporting.settings import DashboardSettings, ReportingSettings, ScheduleSettings
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    ClusterInfo,
    Customer,
    Detection,
    EscalationDue,
    EscalationDueEvent,
    EscalationReason,
    Indicator,
    RiskCategory,
    RiskClassified,
    RiskClassifiedEvent,
    RiskLevel,
    Role,
    TicketData,
    TicketEvent,
    TicketEventKind,
    TicketFlagged,
    TicketFlaggedEvent,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import produce
from tests.e2e.browsing import on_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
TOKEN = "dashboard-operator-token"


def seed(now: datetime) -> dict[str, list[tuple[bytes, bytes]]]:
    """Three tickets (two flagged) in the last hours, a Critical and a High risk, two overdue
    escalations and one pending, and one undecodable record for the dead-letter count."""
    records: dict[str, list[tuple[bytes, bytes]]] = {}

    def add(topic: str, key: str, payload: bytes) -> None:
        records.setdefault(topic, []).append((key.encode(), payload))

    for n, (channel, flagged) in enumerate([("email", True), ("email", False), ("chat", True)]):
        ticket_id, at = f"B-{n}", now - timedelta(hours=2, minutes=n)
        data = TicketData(
            ticket_id=ticket_id, subject="s", description="d", channel=channel,
            customer=Customer(id=f"C-{n}", segment="smb"), product="Payments API", priority="high",
        )  # fmt: skip
        upstream = TicketEvent(
            id=f"b-up-{n}", source="test://browser", type="riskrelay.ticket.created.v1",
            time=at, subject=ticket_id, data=data,
        )  # fmt: skip
        add("ticket-events", ticket_id, upstream.to_json_bytes())
        if flagged:
            flag = TicketFlagged(
                ticket_id=ticket_id, upstream_event_id=upstream.id, upstream_source=upstream.source,
                event_kind=TicketEventKind.CREATED, occurred_at=at, channel=channel,
                priority="high", product="Payments API", customer_id=f"C-{n}",
                customer_segment="smb", redacted_subject="s", redacted_summary="d",
                indicators=[Detection(indicator=Indicator.SECURITY_ISSUE, rule_id="security.x",
                                      evidence="e", confidence=0.9)],
                cluster=ClusterInfo(cluster_id="cl-browser", size=7, distinct_customers=6,
                                    surging=True, first_seen_at=at),
                rule_pack_version="test",
            )  # fmt: skip
            event = TicketFlaggedEvent(
                id=derive_event_id(upstream.id, "flag"), source="riskrelay/intake", time=at,
                subject=ticket_id, data=flag,
            )  # fmt: skip
            add("ticket-flagged", ticket_id, event.to_json_bytes())
    for risk_id, level, cluster in [("R-crit", 5, "cl-browser"), ("R-high", 4, None)]:
        classified = RiskClassified(
            risk_id=risk_id, level=RiskLevel(level), category=RiskCategory.DATA_SECURITY_PRIVACY,
            ticket_id="B-0", ticket_ids=["B-0"], ticket_count=1, distinct_customers=1,
            cluster_id=cluster, indicators=[Indicator.SECURITY_ISSUE], title=risk_id,
            redacted_summary="r", first_reported_at=now - timedelta(hours=2),
            flagged_at=now - timedelta(hours=2), policy_version="t", rules_fired=[], evidence=[],
        )  # fmt: skip
        event = RiskClassifiedEvent(
            id=derive_event_id(risk_id, "classify"), source="riskrelay/classifier",
            time=now - timedelta(hours=2), subject=risk_id, data=classified,
        )  # fmt: skip
        add("risk-classified", risk_id, event.to_json_bytes())
    for escalation_id, ack_minutes in [("E-1", 15), ("E-2", 30), ("E-3", 600)]:
        due = EscalationDue(
            escalation_id=escalation_id, risk_id="R-crit", level=RiskLevel.CRITICAL, step=0,
            target_role=Role.RISK_MANAGEMENT, reason=EscalationReason.INITIAL,
            due_at=now - timedelta(hours=1),
            ack_due_at=now - timedelta(hours=1) + timedelta(minutes=ack_minutes),
        )  # fmt: skip
        event = EscalationDueEvent(
            id=derive_event_id(escalation_id, "due"), source="riskrelay/escalator",
            time=now - timedelta(hours=1), subject="R-crit", data=due,
        )  # fmt: skip
        add("escalation-due", "R-crit", event.to_json_bytes())
    add("ticket-flagged", "broken", b"{this is not an event")
    return records


@pytest.fixture
async def served(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> AsyncIterator[tuple[FastAPI, str]]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"support_manager": TOKEN}))
    settings = ReportingSettings(
        kafka=kafka_settings,
        database=database_settings,
        auth=AuthSettings(tokens_file=tokens),
        schedule=ScheduleSettings(enabled=False),
        dashboard=DashboardSettings(refresh_seconds=1.0, lag_refresh_seconds=1.0),
    )
    app = create_app(settings)
    async with on_port(app) as url:
        yield app, url


async def browse(chromium: str, url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory(prefix="riskrelay-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
            "--virtual-time-budget=8000", "--window-size=1280,1000", *extra, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode(errors="replace")


def figure(dom: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert found, f"#{element_id} not in the page"
    return found.group(1)


def row_cell(dom: str, attribute: str, field: str) -> str:
    row = re.search(rf"<tr {attribute}>(.*?)</tr>", dom, re.S)
    assert row, f"no row {attribute}"
    cell = re.search(rf'data-field="{field}"[^>]*>([^<]*)<', row.group(1))
    assert cell, f"no {field} in row {attribute}"
    return cell.group(1)


async def test_dashboard_shows_the_live_figures_in_a_real_browser(
    chromium: str, served: tuple[FastAPI, str], kafka_settings: KafkaSettings
) -> None:
    app, base = served
    now = datetime.now(UTC)
    records = seed(now)
    for topic, items in records.items():
        await produce(kafka_settings.bootstrap, f"{kafka_settings.topic_prefix}{topic}", items)
    db = app.state.context.db
    for _ in range(300):
        applied = await db.fetchval("SELECT count(*) FROM processed_events")
        dead = await db.fetchval("SELECT count(*) FROM dead_letters")
        if applied == 10 and dead == 1:
            break
        await asyncio.sleep(0.2)
    assert (applied, dead) == (10, 1)
    await asyncio.sleep(1.5)  # one dashboard refresh after the last event

    dom = await browse(chromium, f"{base}/dashboard?token={TOKEN}", "--dump-dom")
    assert 'data-loaded="true"' in dom, "the page's script did not load the figures"
    assert figure(dom, "state") == "live"
    assert figure(dom, "open-total") == "2"
    assert figure(dom, "overdue-total") == "2"
    assert figure(dom, "due-total") == "1"
    assert figure(dom, "flagged-window") == "2"
    assert figure(dom, "dlq-total") == "1"
    assert row_cell(dom, 'data-level="5"', "open") == "1"
    assert row_cell(dom, 'data-level="5"', "overdue") == "2"
    assert row_cell(dom, 'data-channel="email"', "tickets") == "2"
    assert row_cell(dom, 'data-channel="email"', "rate") == "50.0%"
    assert row_cell(dom, 'data-cluster="cl-browser"', "size") == "7"
    assert row_cell(dom, 'data-cluster="cl-browser"', "title") == "R-crit", "clusters by title"
    assert row_cell(dom, 'data-topic="ticket-flagged"', "records") == "1"
    assert re.search(r'id="lag-total">\d+<', dom), "consumer lag was not measured"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "dashboard.png"
    screenshot.unlink(missing_ok=True)
    await browse(chromium, f"{base}/dashboard?token={TOKEN}", f"--screenshot={screenshot}")
    assert screenshot.exists()
    assert screenshot.stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------
# The demo: the whole stack (five service processes and the notification inbox) on the test
# broker and database, with `riskrelay dev up --sample 500`'s traffic
# ---------------------------------------------------------------------------------------------

DEMO_SCREENSHOT = ARTIFACTS / "dashboard-demo.png"


@pytest.fixture
def demo_stack(
    kafka_endpoint: Any,
    database_endpoint: Any,
    topic_prefix: str,
    db_schema: str,
    tmp_path: Path,
) -> Iterator[StackConfig]:
    config = StackConfig(
        data_dir=tmp_path / ".riskrelay",
        service_ports={name: free_port() for name in SERVICES},
        inbox_port=free_port(),
        # Its own free port: the inbox port + 19 may be another socket's ephemeral port.
        smtp_receiver_port=free_port(),
        external_bootstrap=kafka_endpoint.bootstrap,
        external_database_url=database_endpoint.url,
        topic_prefix=topic_prefix,
        schema_prefix=f"{db_schema}_",
    )
    stack = Stack(config)
    try:
        stack.start_infrastructure()
        stack.start_services(timeout=240)
        yield config
    finally:
        stack.stop()


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_the_demo_traffic_fills_the_dashboard_reports_and_inbox(
    chromium: str, demo_stack: StackConfig
) -> None:
    config = demo_stack
    now = datetime.now(UTC).replace(microsecond=0)
    result = await asyncio.to_thread(run_demo, config, 500, 7, now)
    figures = result.figures
    print(f"dashboard right after the demo's traffic landed: {figures.describe()}")
    assert figures.flagged_in_window > 0
    assert figures.open_risks > 0
    assert figures.escalations_due > 0, "today's escalations wait for someone to acknowledge"
    assert figures.dead_letters == 0
    assert result.acknowledged > 0, "the older escalations were acknowledged as of their time"
    acknowledged_7d = sum(level["acknowledged_7d"] for level in result.view["levels"])
    assert acknowledged_7d > 0

    token = viewer_token(config)
    reporting = config.service_url("reporting")
    # The week and the month holding most of the traffic, not those of `now`: on a Monday or a
    # first of the month the current one holds only the last minutes of the demo's 14 days.
    week, month = busiest_periods(result.events)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        weekly = await client.get(f"{reporting}/v1/reports/weekly", params={"week": week})
        monthly = await client.get(f"{reporting}/v1/reports/monthly", params={"month": month})
        inbox = await client.get(f"{config.inbox_url}/notifications.json")
    for report in (weekly, monthly):
        assert report.status_code == 200, report.text
        assert report.json()["empty"] is False
    received = inbox.json()
    assert received, "the escalator delivered to the demo roster's inbox"
    assert {n["channel"] for n in received} >= {"slack", "webhook"}
    assert len(read_notifications(config.inbox_file)) >= len(received)

    dom = await browse(chromium, f"{reporting}/dashboard?token={token}", "--dump-dom")
    assert 'data-loaded="true"' in dom, "the page's script did not load the figures"
    assert int(figure(dom, "flagged-window")) > 0
    assert int(figure(dom, "open-total")) > 0
    assert int(figure(dom, "due-total")) + int(figure(dom, "overdue-total")) > 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    DEMO_SCREENSHOT.unlink(missing_ok=True)
    await browse(
        chromium, f"{reporting}/dashboard?token={token}", f"--screenshot={DEMO_SCREENSHOT}"
    )
    assert DEMO_SCREENSHOT.stat().st_size > 10_000
