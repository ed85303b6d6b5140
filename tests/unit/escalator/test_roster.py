"""Roster file, notification payloads per channel, and delivery retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from riskrelay.escalator.calendar import ConfigFileError
from riskrelay.escalator.roster import (
    Person,
    RetryPolicy,
    build_notifications,
    is_retryable_status,
    load_roster,
    pagerduty_payload,
    retry_delay,
    retry_schedule,
    slack_payload,
    webhook_payload,
)
from riskrelay.shared.events import (
    EscalationDue,
    EscalationDueEvent,
    EscalationReason,
    RiskLevel,
    Role,
)

pytestmark = pytest.mark.unit

EXAMPLE_ROSTER = (
    Path(__file__).parents[3]
    / "services/escalator/src/riskrelay/escalator/config/roster.example.yaml"
)


def due(level: RiskLevel = RiskLevel.CRITICAL, **changes: Any) -> EscalationDue:
    fields: dict[str, Any] = {
        "escalation_id": "0b7f6a52-1d8e-5c1a-9a55-6d1f0c6b2e11",
        "risk_id": "risk-42",
        "level": level,
        "step": 1,
        "target_role": Role.SUPPORT_MANAGER,
        "reason": EscalationReason.BREACH,
        "due_at": datetime(2026, 3, 10, 11, 15, tzinfo=UTC),
        "ack_due_at": datetime(2026, 3, 10, 11, 15, tzinfo=UTC),
        "timeframe_due_at": datetime(2026, 3, 10, 11, 15, tzinfo=UTC),
        "title": "Card numbers <visible> to other customers & partners",
        "plan_version": 2,
    }
    return EscalationDue.model_validate(fields | changes)


def event_of(data: EscalationDue) -> EscalationDueEvent:
    return EscalationDueEvent(
        id="5e0f4f0e-2f0b-5c55-8d0e-8b4d8a1f2c33",
        source="riskrelay/escalator",
        time=data.due_at,
        subject=data.risk_id,
        correlationid=data.risk_id,
        data=data,
    )


def write_roster(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "roster.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


# -- roster file ----------------------------------------------------------------------------------


def test_example_roster_loads_and_filters_channels_by_level() -> None:
    roster = load_roster(EXAMPLE_ROSTER)
    assert [c.type for c in roster.channels_for(Role.SUPPORT_MANAGER, RiskLevel.MEDIUM)] == [
        "slack"
    ]
    assert [c.type for c in roster.channels_for(Role.SUPPORT_MANAGER, RiskLevel.HIGH)] == [
        "slack",
        "pagerduty",
    ]
    assert roster.channels_for(Role.SUPPORT_DIRECTOR, RiskLevel.HIGH) == ()
    assert roster.contacts(Role.TEAM_LEAD).people[0].slack_user_id == "U0TEAMLEAD"


def test_no_roster_means_nobody_is_configured() -> None:
    roster = load_roster(None)
    assert roster.channels_for(Role.TEAM_LEAD, RiskLevel.CRITICAL) == ()


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (
            {"team_lead": {"channels": [{"type": "sms", "url": "https://x.test"}]}},
            "roles.team_lead.channels.0",
        ),
        (
            {"team_lead": {"channels": [{"type": "slack", "url": "not a url"}]}},
            "roles.team_lead.channels.0.slack.url",
        ),
        (
            {
                "team_lead": {
                    "channels": [{"type": "pagerduty", "routing_key": "k", "min_level": 3}]
                }
            },
            "min_level must be 4",
        ),
        ({"analyst": {"channels": []}}, "roles.analyst"),
        ({"team_lead": {"people": [{"name": "X", "slack_user_id": "bob"}]}}, "slack_user_id"),
    ],
)
def test_invalid_roster_names_the_field(
    tmp_path: Path, roles: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigFileError, match=expected.replace(".", r"\.")):
        load_roster(write_roster(tmp_path, {"roles": roles}))


# -- payloads -------------------------------------------------------------------------------------


def test_slack_payload() -> None:
    payload = slack_payload(due(), [Person(name="Sam", slack_user_id="U123ABC"), Person(name="Al")])
    assert set(payload) == {"text", "blocks"}
    assert payload["text"] == (
        "Level 5 (Critical) risk: acknowledgement overdue: "
        "Card numbers <visible> to other customers & partners"
    )
    header, body, fields, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Level 5 (Critical) risk: acknowledgement overdue"},
    }
    assert body["text"]["text"] == (
        "*Card numbers &lt;visible&gt; to other customers &amp; partners*\n<@U123ABC>"
    )
    texts = [field["text"] for field in fields["fields"]]
    assert texts[0] == "*Risk*\n`risk-42`"
    assert texts[1] == "*Role*\nSupport Manager"
    assert texts[2].startswith("*Acknowledge by*\n<!date^1773141300^")
    assert "0b7f6a52-1d8e-5c1a-9a55-6d1f0c6b2e11" in context["elements"][0]["text"]
    json.dumps(payload)


@pytest.mark.parametrize(
    ("reason", "attempt", "headline"),
    [
        (EscalationReason.INITIAL, 1, "Level 3 (Medium) risk escalated to Support Manager"),
        (EscalationReason.PRE_BREACH_WARNING, 1, "Level 3 (Medium) risk: acknowledgement due soon"),
        (EscalationReason.REMINDER, 3, "Level 3 (Medium) risk still unacknowledged (reminder 2)"),
        (
            EscalationReason.WEEKLY_REVIEW,
            1,
            "Level 3 (Medium) risk on the Weekly Risk Review agenda",
        ),
    ],
)
def test_slack_headline_follows_the_reason(
    reason: EscalationReason, attempt: int, headline: str
) -> None:
    payload = slack_payload(due(RiskLevel.MEDIUM, reason=reason, attempt=attempt))
    assert payload["blocks"][0]["text"]["text"] == headline


@pytest.mark.parametrize(
    ("missed", "told"),
    [(7, "7 earlier reminders missed"), (1, "1 earlier reminder missed")],
)
def test_a_catch_up_reminder_says_how_many_were_missed_and_since_when(
    missed: int, told: str
) -> None:
    since = datetime(2026, 3, 10, 12, 30, tzinfo=timezone(timedelta(hours=1)))
    data = due(
        reason=EscalationReason.REMINDER, attempt=9, missed_reminders=missed, missed_since=since
    )
    payload = slack_payload(data)
    assert payload["text"].startswith(
        f"Level 5 (Critical) risk still unacknowledged (reminder 8; {told} since"
        " 2026-03-10 11:30 UTC)"
    )
    fields = [field["text"] for field in payload["blocks"][2]["fields"]]
    assert fields[-1] == (
        f"*Missed reminders*\n{missed} since <!date^1773142200^{{date_short_pretty}} {{time}}"
        f"|{since.isoformat()}>"
    )
    summary = pagerduty_payload(data, "RK", "riskrelay")["payload"]["summary"]
    assert f"(reminder 8; {told} since 2026-03-10 11:30 UTC)" in summary
    # An ordinary reminder says nothing about missed ones.
    plain = slack_payload(due(reason=EscalationReason.REMINDER, attempt=3))
    assert "missed" not in json.dumps(plain).lower()


@pytest.mark.parametrize(
    ("level", "severity"), [(RiskLevel.CRITICAL, "critical"), (RiskLevel.HIGH, "error")]
)
def test_pagerduty_payload(level: RiskLevel, severity: str) -> None:
    data = due(level)
    payload = pagerduty_payload(data, "R0UTINGKEY", "riskrelay-prod")
    assert set(payload) == {"routing_key", "event_action", "dedup_key", "payload"}
    assert payload["routing_key"] == "R0UTINGKEY"
    assert payload["event_action"] == "trigger"
    assert payload["dedup_key"] == data.escalation_id
    inner = payload["payload"]
    assert set(inner) == {"summary", "source", "severity", "timestamp", "custom_details"}
    assert inner["severity"] == severity
    assert inner["source"] == "riskrelay-prod"
    assert inner["timestamp"] == "2026-03-10T11:15:00+00:00"
    assert inner["custom_details"]["risk_id"] == "risk-42"
    assert inner["custom_details"]["plan_version"] == 2
    assert len(inner["summary"]) <= 1024


def test_pagerduty_summary_is_capped() -> None:
    payload = pagerduty_payload(due(title="x" * 500), "k", "s")
    assert len(payload["payload"]["summary"]) <= 1024
    long_title = due().model_copy(update={"title": "y" * 2000})  # bypasses the 500 cap
    assert len(pagerduty_payload(long_title, "k", "s")["payload"]["summary"]) == 1024


def test_generic_webhook_gets_the_cloudevent_as_published() -> None:
    event = event_of(due())
    assert webhook_payload(event) == json.loads(event.to_json_bytes())


def test_build_notifications_per_channel() -> None:
    roster = load_roster(EXAMPLE_ROSTER)
    high = event_of(due(RiskLevel.HIGH, target_role=Role.RISK_MANAGEMENT))
    notifications = build_notifications(roster, high)
    assert [(n.channel, n.url) for n in notifications] == [
        ("webhook", "https://grc.example.invalid/riskrelay/escalations"),
        ("pagerduty", "https://events.pagerduty.com/v2/enqueue"),
    ]
    assert notifications[0].payload == webhook_payload(high)
    assert notifications[1].payload["routing_key"] == "REPLACE-WITH-ROUTING-KEY"
    assert notifications[1].payload["payload"]["source"] == "riskrelay-example"
    medium = event_of(due(RiskLevel.MEDIUM, target_role=Role.RISK_MANAGEMENT))
    assert [n.channel for n in build_notifications(roster, medium)] == ["webhook"]
    lead = event_of(due(RiskLevel.MEDIUM, target_role=Role.TEAM_LEAD))
    [slack] = build_notifications(roster, lead)
    assert "<@U0TEAMLEAD>" in slack.payload["blocks"][1]["text"]["text"]


# -- retries --------------------------------------------------------------------------------------


def test_retry_schedule_is_exponential_and_capped() -> None:
    policy = RetryPolicy(
        initial_delay=timedelta(seconds=1),
        multiplier=3,
        max_delay=timedelta(seconds=60),
        max_attempts=6,
    )
    assert retry_schedule(policy) == tuple(timedelta(seconds=s) for s in (1, 3, 9, 27, 60))
    assert retry_delay(policy, 5) == timedelta(seconds=60)
    assert retry_delay(policy, 6) is None  # sixth attempt failed: give up


def test_retry_jitter_and_retry_after() -> None:
    policy = RetryPolicy(jitter_ratio=0.5, max_delay=timedelta(minutes=5), max_attempts=100)
    assert retry_delay(policy, 3, random_unit=0.0) == timedelta(seconds=4)
    assert retry_delay(policy, 3, random_unit=0.5) == timedelta(seconds=3)
    assert retry_delay(policy, 1, retry_after=timedelta(seconds=30)) == timedelta(seconds=30)
    assert retry_delay(policy, 1, retry_after=timedelta(hours=2)) == timedelta(minutes=5)
    # huge attempt numbers stay at the cap instead of overflowing
    assert retry_delay(policy, 99) == timedelta(minutes=5)
    with pytest.raises(ValueError, match="random_unit"):
        retry_delay(policy, 1, random_unit=1.0)
    with pytest.raises(ValueError, match="failed_attempts"):
        retry_delay(policy, 0)


def test_retry_policy_rejects_a_cap_below_the_start(tmp_path: Path) -> None:
    content = {"delivery": {"initial_delay": "10m", "max_delay": "1m"}}
    with pytest.raises(ConfigFileError, match="delivery: max_delay must not be shorter"):
        load_roster(write_roster(tmp_path, content))


@pytest.mark.parametrize(
    ("status", "retry"),
    [(200, False), (400, False), (404, False), (408, True), (429, True), (500, True), (503, True)],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry
