"""The roster: who holds each role, and where their escalations are delivered.

This module only *builds* notifications (URL + JSON body) and decides retry delays; sending them
is the service's job. Keeping the payloads pure makes them testable byte for byte and lets a
failed delivery be retried with exactly the same body.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, HttpUrl, field_validator, model_validator

from riskrelay.escalator.calendar import ConfigModel, load_config_file
from riskrelay.escalator.policy import Duration, EscalationRole
from riskrelay.shared.events import (
    EscalationDue,
    EscalationDueEvent,
    EscalationReason,
    RiskLevel,
    Role,
)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

# PagerDuty Events API v2 limits (longer values are rejected by the API, not truncated).
_PAGERDUTY_SUMMARY_MAX = 1024
_PAGERDUTY_DEDUP_KEY_MAX = 255
# Slack header blocks take at most 150 characters of plain text.
_SLACK_HEADER_MAX = 150


class Person(ConfigModel):
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    email: str | None = Field(default=None, max_length=320, description="Email address.")
    slack_user_id: str | None = Field(
        default=None,
        pattern=r"^[UW][A-Z0-9]{2,}$",
        description="Slack member id (e.g. `U024BE7LH`), to mention them in Slack messages.",
    )


class WebhookChannel(ConfigModel):
    """Generic JSON webhook: receives the `escalation-due` CloudEvent as it is on Kafka."""

    type: Literal["webhook"] = "webhook"
    url: HttpUrl = Field(description="Endpoint that accepts a JSON POST.")
    min_level: RiskLevel = Field(default=RiskLevel.MINIMAL, description="Lowest level sent here.")


class SlackChannel(ConfigModel):
    """Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    type: Literal["slack"] = "slack"
    url: HttpUrl = Field(description="Incoming webhook URL.")
    min_level: RiskLevel = Field(default=RiskLevel.MINIMAL, description="Lowest level sent here.")


class PagerDutyChannel(ConfigModel):
    """PagerDuty Events API v2; pages people, so only for High and Critical risks."""

    type: Literal["pagerduty"] = "pagerduty"
    routing_key: str = Field(
        min_length=1, max_length=128, description="Integration (routing) key of the service."
    )
    url: HttpUrl = Field(
        default=HttpUrl(PAGERDUTY_EVENTS_URL), description="Events API v2 enqueue endpoint."
    )
    min_level: RiskLevel = Field(default=RiskLevel.HIGH, description="Lowest level sent here.")

    @field_validator("min_level")
    @classmethod
    def _pages_only_high_risks(cls, value: RiskLevel) -> RiskLevel:
        if value < RiskLevel.HIGH:
            raise ValueError("PagerDuty pages people: min_level must be 4 (High) or 5 (Critical)")
        return value


Channel = Annotated[WebhookChannel | SlackChannel | PagerDutyChannel, Field(discriminator="type")]


class RoleContacts(ConfigModel):
    people: tuple[Person, ...] = Field(default=(), description="Who holds the role.")
    channels: tuple[Channel, ...] = Field(default=(), description="Where to deliver.")


class RetryPolicy(ConfigModel):
    """Exponential backoff for failed deliveries: initial * multiplier^(n-1), capped."""

    initial_delay: Duration = Field(default=timedelta(seconds=1), description="First wait.")
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0, description="Growth per attempt.")
    max_delay: Duration = Field(default=timedelta(minutes=5), description="Cap on one wait.")
    max_attempts: int = Field(default=8, ge=1, le=100, description="Attempts, the first included.")
    jitter_ratio: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of each wait that is randomized (the caller supplies the randomness).",
    )

    @model_validator(mode="after")
    def _cap_above_start(self) -> Self:
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must not be shorter than initial_delay")
        return self


class Roster(ConfigModel):
    """The roster file."""

    source: str = Field(
        default="riskrelay",
        min_length=1,
        max_length=255,
        description="Name of this installation in PagerDuty events (`payload.source`).",
    )
    roles: dict[EscalationRole, RoleContacts] = Field(
        default_factory=dict, description="Contacts per escalation role."
    )
    delivery: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Retries of failed deliveries."
    )

    def contacts(self, role: Role) -> RoleContacts:
        return self.roles.get(role, RoleContacts())

    def channels_for(self, role: Role, level: RiskLevel) -> tuple[Channel, ...]:
        return tuple(
            channel for channel in self.contacts(role).channels if channel.min_level <= level
        )


def load_roster(path: Path | None = None) -> Roster:
    """Load a roster file; without one, nobody is configured and nothing is delivered."""
    if path is None:
        return Roster()
    return load_config_file(Roster, path, "roster.example.yaml")


# ---------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------


class Notification(ConfigModel):
    """One HTTP POST to make: where, and the JSON body."""

    channel: Literal["webhook", "slack", "pagerduty"] = Field(description="Channel type.")
    url: str = Field(description="Where to POST.")
    payload: dict[str, Any] = Field(description="JSON body.")


def _headline(due: EscalationDue) -> str:
    level = f"Level {int(due.level)} ({due.level.label})"
    match due.reason:
        case EscalationReason.INITIAL:
            return f"{level} risk escalated to {_role_name(due.target_role)}"
        case EscalationReason.PRE_BREACH_WARNING:
            return f"{level} risk: acknowledgement due soon"
        case EscalationReason.BREACH:
            return f"{level} risk: acknowledgement overdue"
        case EscalationReason.REMINDER:
            return f"{level} risk still unacknowledged ({_reminder_count(due)})"
        case EscalationReason.WEEKLY_REVIEW:
            return f"{level} risk on the Weekly Risk Review agenda"
    raise AssertionError(f"unhandled reason {due.reason}")  # pragma: no cover


def _reminder_count(due: EscalationDue) -> str:
    reminder = f"reminder {due.attempt - 1}"
    if not due.missed_reminders or due.missed_since is None:
        return reminder
    plural = "s" if due.missed_reminders > 1 else ""
    return (
        f"{reminder}; {due.missed_reminders} earlier reminder{plural} missed since"
        f" {due.missed_since.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )


def _role_name(role: Role) -> str:
    return role.value.replace("_", " ").title()


def _slack_escape(text: str) -> str:
    # Slack treats &, < and > as control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_time(instant: datetime) -> str:
    # Slack renders <!date^...> in each reader's own time zone; the fallback is UTC ISO 8601.
    unix = int(instant.timestamp())
    return f"<!date^{unix}^{{date_short_pretty}} {{time}}|{instant.isoformat()}>"


def slack_payload(due: EscalationDue, people: Sequence[Person] = ()) -> dict[str, Any]:
    """Slack incoming-webhook body: ``text`` (notification fallback) and Block Kit ``blocks``."""
    headline = _headline(due)
    title = due.title or due.risk_id
    mentions = " ".join(f"<@{person.slack_user_id}>" for person in people if person.slack_user_id)
    fields = [
        f"*Risk*\n`{_slack_escape(due.risk_id)}`",
        f"*Role*\n{_role_name(due.target_role)}",
    ]
    if due.ack_due_at is not None:
        fields.append(f"*Acknowledge by*\n{_slack_time(due.ack_due_at)}")
    if due.timeframe_due_at is not None:
        fields.append(f"*Protocol deadline*\n{_slack_time(due.timeframe_due_at)}")
    if due.missed_reminders and due.missed_since is not None:
        fields.append(
            f"*Missed reminders*\n{due.missed_reminders} since {_slack_time(due.missed_since)}"
        )
    body = f"*{_slack_escape(title)}*"
    if mentions:
        body += f"\n{mentions}"
    return {
        "text": f"{headline}: {title}",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": headline[:_SLACK_HEADER_MAX]},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": (
                            f"escalation `{due.escalation_id}` · step {due.step} · "
                            f"plan v{due.plan_version} · {due.reason.value}"
                        ),
                    }
                ],
            },
        ],
    }


def pagerduty_severity(level: RiskLevel) -> Literal["critical", "error", "warning", "info"]:
    """Critical risks page as `critical`, High as `error`; lower levels never page by default."""
    if level is RiskLevel.CRITICAL:
        return "critical"
    if level is RiskLevel.HIGH:
        return "error"
    return "warning" if level is RiskLevel.MEDIUM else "info"


def pagerduty_payload(due: EscalationDue, routing_key: str, source: str) -> dict[str, Any]:
    """PagerDuty Events API v2 `trigger`.

    The dedup key is the escalation step's id, so reminders and breaches of one step update one
    incident instead of opening a new one each time.
    """
    summary = f"{_headline(due)}: {due.title or due.risk_id}"
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": due.escalation_id[:_PAGERDUTY_DEDUP_KEY_MAX],
        "payload": {
            "summary": summary[:_PAGERDUTY_SUMMARY_MAX],
            "source": source,
            "severity": pagerduty_severity(due.level),
            "timestamp": due.due_at.isoformat(),
            "custom_details": due.model_dump(mode="json", exclude_none=True),
        },
    }


def webhook_payload(event: EscalationDueEvent) -> dict[str, Any]:
    """Generic webhook body: the CloudEvent exactly as published on `escalation-due`."""
    return event.model_dump(mode="json", exclude_none=True)


def build_notifications(roster: Roster, event: EscalationDueEvent) -> list[Notification]:
    """Every POST the roster asks for when ``event`` fires, in roster order."""
    due = event.data
    contacts = roster.contacts(due.target_role)
    notifications = []
    for channel in roster.channels_for(due.target_role, due.level):
        match channel:
            case WebhookChannel():
                payload = webhook_payload(event)
            case SlackChannel():
                payload = slack_payload(due, contacts.people)
            case PagerDutyChannel():
                payload = pagerduty_payload(due, channel.routing_key, roster.source)
        notifications.append(
            Notification(channel=channel.type, url=str(channel.url), payload=payload)
        )
    return notifications


# ---------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------


def retry_delay(
    policy: RetryPolicy,
    failed_attempts: int,
    *,
    random_unit: float = 0.0,
    retry_after: timedelta | None = None,
) -> timedelta | None:
    """How long to wait after ``failed_attempts`` failures, or None to give up.

    ``random_unit`` in [0, 1) is drawn by the caller (keeping this function deterministic) and
    shortens the wait by up to ``jitter_ratio`` of it, so many failing deliveries do not retry in
    lockstep. A server's ``Retry-After`` is honoured up to the cap.
    """
    if failed_attempts < 1:
        raise ValueError("failed_attempts starts at 1")
    if not 0.0 <= random_unit < 1.0:
        raise ValueError("random_unit must be in [0, 1)")
    if failed_attempts >= policy.max_attempts:
        return None
    growth = policy.multiplier ** (failed_attempts - 1)
    # Compare in seconds before multiplying: a large exponent would overflow timedelta.
    seconds = min(policy.initial_delay.total_seconds() * growth, policy.max_delay.total_seconds())
    delay = timedelta(seconds=seconds) * (1.0 - policy.jitter_ratio * random_unit)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_delay))
    return delay


def retry_schedule(policy: RetryPolicy) -> tuple[timedelta, ...]:
    """The waits between attempts without jitter: ``max_attempts - 1`` of them."""
    delays = []
    for failed in range(1, policy.max_attempts):
        delay = retry_delay(policy, failed)
        assert delay is not None
        delays.append(delay)
    return tuple(delays)


def is_retryable_status(status_code: int) -> bool:
    """Server errors, throttling and timeouts are worth retrying; other client errors are not."""
    return status_code in {408, 425, 429} or 500 <= status_code <= 599
