"""The dev stack's notification inbox and the demo roster that delivers to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from riskrelay.cli.inbox import create_inbox_app, demo_roster, describe, read_notifications
from riskrelay.escalator.roster import Roster, build_notifications, load_roster
from riskrelay.shared.events import (
    EscalationDue,
    EscalationDueEvent,
    EscalationReason,
    RiskLevel,
    Role,
)

pytestmark = pytest.mark.unit

INBOX = "http://127.0.0.1:8006"
AT = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def due_event(level: RiskLevel, role: Role, reason: EscalationReason) -> EscalationDueEvent:
    due = EscalationDue(
        escalation_id=f"esc-{int(level)}-{role.value}", risk_id="risk-42", level=level, step=0,
        target_role=role, reason=reason, due_at=AT, ack_due_at=AT + timedelta(minutes=15),
        title="Customer data <visible> to another customer",
    )  # fmt: skip
    return EscalationDueEvent(
        id=f"due-{int(level)}-{role.value}", source="riskrelay/escalator", time=AT,
        subject="risk-42", data=due,
    )  # fmt: skip


@pytest.fixture
def roster(tmp_path: Path) -> Roster:
    path = tmp_path / "roster.yaml"
    path.write_text(yaml.safe_dump(demo_roster(INBOX)))
    return load_roster(path)


def test_the_demo_roster_validates_and_points_every_channel_at_the_inbox(roster: Roster) -> None:
    channels = [c for role in Role for c in roster.contacts(role).channels]
    assert {c.type for c in channels} == {"webhook", "slack", "pagerduty"}
    assert all(str(c.url).startswith(f"{INBOX}/{c.type}/") for c in channels)
    for role in (Role.AGENT, Role.TEAM_LEAD, Role.SUPPORT_MANAGER, Role.RISK_MANAGEMENT):
        assert roster.channels_for(role, RiskLevel.CRITICAL), f"{role} hears of a Critical risk"
    # Risk Management is paged for Critical risks only; a High one goes to its webhook.
    high = build_notifications(
        roster, due_event(RiskLevel.HIGH, Role.RISK_MANAGEMENT, EscalationReason.INITIAL)
    )
    critical = build_notifications(
        roster, due_event(RiskLevel.CRITICAL, Role.RISK_MANAGEMENT, EscalationReason.INITIAL)
    )
    assert [n.channel for n in high] == ["webhook"]
    assert [n.channel for n in critical] == ["webhook", "pagerduty"]
    assert critical[1].url == f"{INBOX}/pagerduty/risk_management"


def test_every_payload_shape_is_described_with_its_risk_and_level(roster: Roster) -> None:
    event = due_event(RiskLevel.CRITICAL, Role.RISK_MANAGEMENT, EscalationReason.BREACH)
    described = {
        n.channel: describe(n.channel, n.payload) for n in build_notifications(roster, event)
    }
    slack_event = due_event(RiskLevel.CRITICAL, Role.TEAM_LEAD, EscalationReason.INITIAL)
    (slack,) = build_notifications(roster, slack_event)
    described["slack"] = describe("slack", slack.payload)
    for channel, (headline, risk_id, level) in described.items():
        assert risk_id == "risk-42", channel
        assert level == 5, channel
        assert "Customer data <visible>" in headline, channel
    assert "breach" in described["webhook"][0]
    assert described["pagerduty"][0].startswith("Level 5 (Critical) risk: acknowledgement overdue")
    assert describe("slack", ["not", "an", "object"])[1:] == (None, None)


async def test_the_inbox_stores_each_notification_and_lists_them_newest_first(
    tmp_path: Path, roster: Roster
) -> None:
    file = tmp_path / "inbox" / "notifications.jsonl"
    app = create_inbox_app(file)
    transport = httpx.ASGITransport(app=app)
    notifications = [
        n
        for role in (Role.TEAM_LEAD, Role.RISK_MANAGEMENT)
        for n in build_notifications(
            roster, due_event(RiskLevel.CRITICAL, role, EscalationReason.INITIAL)
        )
    ]
    async with httpx.AsyncClient(transport=transport, base_url=INBOX) as client:
        for notification in notifications:
            path = notification.url.removeprefix(INBOX)
            response = await client.post(path, json=notification.payload)
            assert response.status_code == 202, response.text
        bad = await client.post("/webhook/risk_management", content=b"{not json")
        assert bad.status_code == 400
        page = await client.get("/")
        listing = await client.get("/notifications.json")
    lines = file.read_text().splitlines()
    assert len(lines) == len(notifications) == 3
    assert json.loads(lines[0])["body"] == notifications[0].payload
    assert [n["channel"] for n in listing.json()] == ["pagerduty", "webhook", "slack"]
    assert [n["role"] for n in listing.json()] == [
        "risk_management",
        "risk_management",
        "team_lead",
    ]
    assert page.status_code == 200
    assert "3 notification(s)" in page.text
    assert "Customer data &lt;visible&gt;" in page.text
    assert "<visible>" not in page.text
    assert str(file) in page.text


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    file = tmp_path / "notifications.jsonl"
    whole = {
        "received_at": AT.isoformat(), "channel": "webhook", "role": "risk_management",
        "headline": "h", "risk_id": "r", "level": 3, "body": {},
    }  # fmt: skip
    file.write_text(json.dumps(whole) + "\n" + json.dumps(whole)[:20])
    assert [n.risk_id for n in read_notifications(file)] == ["r"]
    assert read_notifications(tmp_path / "missing.jsonl") == []
