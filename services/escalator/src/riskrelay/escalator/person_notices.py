"""Who gets what: an escalation's notices to each person of its role, through their channels.

Pure (time passed in). Each person's notice shows deadlines in their time zone and business
calendar and carries acknowledgement links bound to them (a Level 3 review: "confirmed" and
"not confirmed"); outside a Critical risk, a notice that falls in their quiet hours waits until
the quiet hours end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from riskrelay.escalator.email_channel import email_payload
from riskrelay.escalator.links import AckLinks, LinkChannel
from riskrelay.escalator.notice import NoticeLink, RiskDetails, build_notice, quiet_until
from riskrelay.escalator.policy import StepKind
from riskrelay.escalator.roster import (
    EmailChannel,
    Notification,
    PagerDutyChannel,
    Person,
    Roster,
    SlackChannel,
    TeamsChannel,
    WebhookChannel,
    pagerduty_payload,
    slack_payload,
    webhook_payload,
)
from riskrelay.escalator.teams import teams_payload
from riskrelay.shared.events import EscalationDueEvent, ReviewDecision, RiskLevel

LINK_PATH = "/console/links/ack"


@dataclass(frozen=True)
class StepFacts:
    """What the notices of a step need beyond its event: the risk's details, the step's kind."""

    details: RiskDetails
    kind: StepKind | None


def link_url(console_url: str, token: str) -> str:
    return f"{console_url}{LINK_PATH}?token={quote(token, safe='')}"


def notice_links(
    roster: Roster,
    links: AckLinks | None,
    event: EscalationDueEvent,
    person: Person,
    kind: StepKind | None,
    channel: LinkChannel,
    now: datetime,
) -> tuple[NoticeLink, ...]:
    if links is None or roster.links is None or not person.email:
        return ()
    console = str(roster.links.console_url).rstrip("/")
    choices: list[tuple[str, ReviewDecision | None]] = (
        [("Confirmed: tell Risk Management", ReviewDecision.CONFIRMED),
         ("Not confirmed: to the Weekly Risk Review", ReviewDecision.NOT_CONFIRMED)]
        if kind is StepKind.REVIEW
        else [("Acknowledge", None)]
    )  # fmt: skip
    found = []
    for label, decision in choices:
        token = links.issue(
            notice_id=event.id,
            escalation_id=event.data.escalation_id,
            person=person.email,
            decision=decision,
            channel=channel,
            issued_at=now,
            valid_for=roster.links.valid_for,
        )
        found.append(NoticeLink(label, link_url(console, token), decision, token))
    return tuple(found)


def slack_buttons(links: tuple[NoticeLink, ...]) -> dict[str, Any]:
    """Block Kit buttons that Slack posts back to ``/v1/slack/interactions`` (signed)."""
    return {
        "type": "actions",
        "block_id": "riskrelay_ack",
        "elements": [
            {
                "type": "button",
                "action_id": f"riskrelay_ack_{n}",
                "text": {"type": "plain_text", "text": link.label[:75]},
                "value": link.token,
                **({"style": "primary"} if n == 0 else {}),
            }
            for n, link in enumerate(links)
        ],
    }


def console_url(roster: Roster) -> str | None:
    return str(roster.links.console_url).rstrip("/") if roster.links else None


def role_teams_card(
    roster: Roster, facts: StepFacts, now: datetime, event: EscalationDueEvent
) -> dict[str, Any]:
    """A role's own Teams channel: the card without personal links (a channel has many readers)."""
    due = event.data
    notice = build_notice(
        due,
        facts.details,
        recipient_name=due.target_role.value,
        zone=roster.person_zone(Person(name="role")),
        calendar=None,
        links=(),
        console_url=console_url(roster),
        now=now,
    )
    return teams_payload(notice)


def build_person_notifications(
    roster: Roster,
    event: EscalationDueEvent,
    facts: StepFacts,
    links: AckLinks | None,
    now: datetime,
) -> list[Notification]:
    """One delivery per person of the role and channel of theirs that takes the level."""
    due = event.data
    notifications = []
    for person in roster.people_of(due.target_role):
        channels = roster.person_channels(person, due.level)
        if not channels:
            continue
        zone = roster.person_zone(person)
        not_before = None
        if person.quiet_hours is not None and due.level is not RiskLevel.CRITICAL:
            not_before = quiet_until(person.quiet_hours.start, person.quiet_hours.end, zone, now)
        for name, channel in channels:
            link_channel: LinkChannel = (
                "teams"
                if isinstance(channel, TeamsChannel)
                else "slack"
                if isinstance(channel, SlackChannel)
                else "email"
            )
            notice = build_notice(
                due,
                facts.details,
                recipient_name=person.name,
                zone=zone,
                calendar=roster.person_calendar(person),
                links=notice_links(roster, links, event, person, facts.kind, link_channel, now),
                console_url=console_url(roster),
                now=now,
            )
            target: str
            payload: dict[str, Any]
            match channel:
                case EmailChannel():
                    assert person.email is not None  # the roster validator requires it
                    target = person.email
                    payload = email_payload(
                        notice,
                        channel_name=name,
                        channel=channel,
                        to_name=person.name,
                        to_address=person.email,
                        message_id=message_id(event.id, person.email, name),
                    )
                case TeamsChannel():
                    target, payload = str(channel.url), teams_payload(notice)
                case SlackChannel():
                    target, payload = str(channel.url), slack_payload(due, (person,))
                    if notice.links:
                        payload["blocks"].append(slack_buttons(notice.links))
                case WebhookChannel():
                    target, payload = str(channel.url), webhook_payload(event)
                case PagerDutyChannel():
                    target = str(channel.url)
                    payload = pagerduty_payload(due, channel.routing_key, roster.source)
            notifications.append(
                Notification(
                    channel=channel.type,
                    url=target,
                    payload=payload,
                    recipient=person.email,
                    not_before=not_before,
                )
            )
    return notifications


def message_id(event_id: str, email: str, channel_name: str) -> str:
    """The same Message-ID for every attempt of one e-mail, so a mail system can drop repeats."""
    digest = hashlib.sha256(f"{email.lower()}/{channel_name}".encode()).hexdigest()[:16]
    return f"{event_id}.{digest}@riskrelay"
