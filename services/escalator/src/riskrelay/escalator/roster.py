"""The roster: who holds each role, and where their escalations are delivered.

This module only *builds* notifications (URL + JSON body) and decides retry delays; sending them
is the service's job. Keeping the payloads pure makes them testable byte for byte and lets a
failed delivery be retried with exactly the same body.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, HttpUrl, field_validator, model_validator

from riskrelay.escalator.calendar import (
    BusinessCalendar,
    ConfigModel,
    LocalTime,
    load_config_file,
)
from riskrelay.escalator.notice import headline as notice_headline
from riskrelay.escalator.notice import role_name
from riskrelay.escalator.policy import Duration, EscalationRole
from riskrelay.shared.events import (
    EscalationDue,
    EscalationDueEvent,
    RiskLevel,
    Role,
)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

# PagerDuty Events API v2 limits (longer values are rejected by the API, not truncated).
_PAGERDUTY_SUMMARY_MAX = 1024
_PAGERDUTY_DEDUP_KEY_MAX = 255
# Slack header blocks take at most 150 characters of plain text.
_SLACK_HEADER_MAX = 150


class QuietHours(ConfigModel):
    """Local hours in which a person is not disturbed (a Critical risk still reaches them)."""

    start: LocalTime = Field(description="Start of the quiet hours, `HH:MM` local time.")
    end: LocalTime = Field(description="End (may be after midnight: 22:00 to 07:00).")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("quiet hours start and end at the same time")
        return self


class Person(ConfigModel):
    name: str = Field(min_length=1, max_length=200, description="Display name.")
    email: str | None = Field(
        default=None,
        max_length=320,
        description="E-mail address; the same as the person's console sign-in, so an"
        " acknowledgement link checks who clicked it.",
    )
    slack_user_id: str | None = Field(
        default=None,
        pattern=r"^[UW][A-Z0-9]{2,}$",
        description="Slack member id (e.g. `U024BE7LH`), to mention them in Slack messages.",
    )
    time_zone: str | None = Field(
        default=None,
        description="IANA zone their notices show deadlines in (default: their calendar's, else"
        " UTC).",
    )
    calendar: str | None = Field(
        default=None, description="Name of their business calendar under `calendars`."
    )
    quiet_hours: QuietHours | None = Field(
        default=None, description="Notices (except Critical ones) wait until these end."
    )
    channels: tuple[str, ...] = Field(
        default=(), description="Names of the channels (under `channels`) that reach them."
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as error:
                raise ValueError(f"{value!r} is not an IANA time zone") from error
        return value


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


class TeamsChannel(ConfigModel):
    """Microsoft Teams: an Adaptive Card POSTed to an incoming-webhook or Workflows URL."""

    type: Literal["teams"] = "teams"
    url: HttpUrl = Field(description="Incoming webhook or Workflows (Power Automate) URL.")
    min_level: RiskLevel = Field(default=RiskLevel.MINIMAL, description="Lowest level sent here.")


class EmailChannel(ConfigModel):
    """An SMTP server that sends each person their notices (multipart plain text and HTML)."""

    type: Literal["email"] = "email"
    host: str = Field(min_length=1, max_length=255, description="SMTP server.")
    port: int = Field(default=587, ge=1, le=65_535, description="SMTP port.")
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="`starttls` (submission, 587), `tls` (implicit TLS, 465) or `none` (a local"
        " relay only).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="PEM file of the certificate authorities the server's certificate must"
        " chain to, instead of the system's (a private relay's CA); `starttls` and `tls` only.",
    )
    username_file: Path | None = Field(default=None, description="File holding the user name.")
    password_file: Path | None = Field(default=None, description="File holding the password.")
    from_address: str = Field(
        min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$", description="From address."
    )
    from_name: str = Field(default="riskrelay", max_length=200, description="From display name.")
    timeout_s: float = Field(default=30.0, gt=0, le=300, description="One attempt's limit.")
    min_level: RiskLevel = Field(default=RiskLevel.MINIMAL, description="Lowest level sent here.")

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> Self:
        if (self.username_file is None) != (self.password_file is None):
            raise ValueError("username_file and password_file go together")
        if self.ca_file is not None and self.security == "none":
            raise ValueError("ca_file needs security starttls or tls")
        return self


Channel = Annotated[
    WebhookChannel | SlackChannel | PagerDutyChannel | TeamsChannel,
    Field(discriminator="type"),
]
NamedChannel = Annotated[
    WebhookChannel | SlackChannel | PagerDutyChannel | TeamsChannel | EmailChannel,
    Field(discriminator="type"),
]
PERSON_ONLY_CHANNELS = ("email",)


class RoleContacts(ConfigModel):
    people: tuple[Person, ...] = Field(
        default=(), description="Who holds the role: names under `people`, or inline entries."
    )
    channels: tuple[Channel, ...] = Field(
        default=(),
        description="Where the role's notices go (besides its people's own channels): inline"
        " entries or names under `channels`.",
    )


class LinkSettings(ConfigModel):
    """One-click acknowledgement links in people's notices."""

    console_url: HttpUrl = Field(description="Base URL of the console (the reporting service).")
    valid_for: Duration = Field(
        default=timedelta(hours=72), description="How long a link stays usable."
    )


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
    calendars: dict[str, BusinessCalendar] = Field(
        default_factory=dict, description="People's business calendars by name."
    )
    channels: dict[str, NamedChannel] = Field(
        default_factory=dict, description="Channels by name, for people and roles to use."
    )
    people: dict[str, Person] = Field(default_factory=dict, description="People by name.")
    roles: dict[EscalationRole, RoleContacts] = Field(
        default_factory=dict, description="Contacts per escalation role."
    )
    links: LinkSettings | None = Field(
        default=None, description="Acknowledgement links in people's notices; none without."
    )
    delivery: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Retries of failed deliveries."
    )

    @model_validator(mode="before")
    @classmethod
    def _resolve_role_names(cls, raw: Any) -> Any:
        """A role names people and channels defined once at the top: each name is replaced by
        its entry, and a name that is not there stops start-up naming the entry."""
        if not isinstance(raw, dict) or not isinstance(raw.get("roles"), dict):
            return raw
        people: dict[str, Any] = raw["people"] if isinstance(raw.get("people"), dict) else {}
        channels: dict[str, Any] = raw["channels"] if isinstance(raw.get("channels"), dict) else {}
        problems = []
        roles = {}
        for role, contacts in raw["roles"].items():
            if not isinstance(contacts, dict):
                roles[role] = contacts
                continue
            resolved = dict(contacts)
            for key, known, what in (
                ("people", people, "person"),
                ("channels", channels, "channel"),
            ):
                entries = contacts.get(key)
                if not isinstance(entries, list | tuple):
                    continue
                resolved[key] = []
                for n, entry in enumerate(entries):
                    if not isinstance(entry, str):
                        resolved[key].append(entry)
                        continue
                    where = f"roles.{role}.{key}[{n}]"
                    found = known.get(entry)
                    if found is None:
                        problems.append(f"{where}: unknown {what} {entry!r}{_known(known)}")
                    elif (
                        what == "channel"
                        and isinstance(found, dict)
                        and found.get("type") in PERSON_ONLY_CHANNELS
                    ):
                        problems.append(
                            f"{where}: {found['type']} channel {entry!r} reaches people: list it"
                            " under a person's channels"
                        )
                    else:
                        resolved[key].append(found)
            roles[role] = resolved
        if problems:
            raise ValueError("; ".join(problems))
        return {**raw, "roles": roles}

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        """Every name a person uses must exist: a typo stops start-up naming it."""
        problems = []
        for key, person in self.people.items():
            problems += self._person_problems(f"people.{key}", person)
        for role, contacts in self.roles.items():
            for n, entry in enumerate(contacts.people):
                problems += self._person_problems(f"roles.{role.value}.people[{n}]", entry)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _person_problems(self, where: str, person: Person) -> list[str]:
        problems = []
        if person.calendar is not None and person.calendar not in self.calendars:
            problems.append(
                f"{where}.calendar: unknown calendar {person.calendar!r}{_known(self.calendars)}"
            )
        for n, name in enumerate(person.channels):
            channel = self.channels.get(name)
            if channel is None:
                problems.append(
                    f"{where}.channels[{n}]: unknown channel {name!r}{_known(self.channels)}"
                )
            elif channel.type == "email" and not person.email:
                problems.append(f"{where}.channels[{n}]: e-mail channel {name!r} needs an email")
        return problems

    def contacts(self, role: Role) -> RoleContacts:
        return self.roles.get(role, RoleContacts())

    def people_of(self, role: Role) -> tuple[Person, ...]:
        return self.contacts(role).people

    def roles_of(self, person: Person) -> list[Role]:
        """The roles that list ``person``, in the protocol's order."""
        return [role for role in Role if role in self.roles and person in self.people_of(role)]

    def person_with_slack_id(self, slack_user_id: str) -> Person | None:
        for role in self.roles:
            for person in self.people_of(role):
                if person.slack_user_id == slack_user_id:
                    return person
        return None

    def channels_for(self, role: Role, level: RiskLevel) -> tuple[Channel, ...]:
        """The role's own channels (not its people's) that take ``level``."""
        return tuple(
            channel for channel in self.contacts(role).channels if channel.min_level <= level
        )

    def person_channels(
        self, person: Person, level: RiskLevel
    ) -> tuple[tuple[str, NamedChannel], ...]:
        """A person's own channels (with their names) that take ``level``."""
        return tuple(
            (name, self.channels[name])
            for name in person.channels
            if self.channels[name].min_level <= level
        )

    def person_zone(self, person: Person) -> ZoneInfo:
        if person.time_zone is not None:
            return ZoneInfo(person.time_zone)
        if person.calendar is not None:
            return self.calendars[person.calendar].zone
        return ZoneInfo("UTC")

    def person_calendar(self, person: Person) -> BusinessCalendar | None:
        return self.calendars[person.calendar] if person.calendar is not None else None

    @property
    def email_channels(self) -> dict[str, EmailChannel]:
        return {
            name: channel
            for name, channel in self.channels.items()
            if isinstance(channel, EmailChannel)
        }

    @property
    def delivers(self) -> bool:
        """Whether any notice can be sent at all."""
        return bool(self.roles)

    @property
    def shows_step_facts(self) -> bool:
        """Whether any notice shows the risk's details (people's notices, Teams cards)."""
        return (
            any(person.channels for role in self.roles for person in self.people_of(role))
            or any(isinstance(channel, TeamsChannel) for channel in self.channels.values())
            or any(
                isinstance(channel, TeamsChannel)
                for contacts in self.roles.values()
                for channel in contacts.channels
            )
        )


def _known(names: dict[str, Any]) -> str:
    return f" (known: {', '.join(sorted(names))})" if names else " (none defined)"


def load_roster(path: Path | None = None) -> Roster:
    """Load a roster file; without one, nobody is configured and nothing is delivered."""
    if path is None:
        return Roster()
    return load_config_file(Roster, path, "roster.example.yaml")


# ---------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------


class Notification(ConfigModel):
    """One delivery to make: the channel, where (a URL, or an e-mail address), and the body."""

    channel: Literal["webhook", "slack", "pagerduty", "email", "teams"] = Field(
        description="Channel type."
    )
    url: str = Field(description="Where to POST, or the address an e-mail goes to.")
    payload: dict[str, Any] = Field(description="JSON body (an e-mail's parts for `email`).")
    recipient: str | None = Field(default=None, description="The person's e-mail, if a person's.")
    not_before: datetime | None = Field(
        default=None, description="Held until then (the recipient's quiet hours)."
    )


def _slack_escape(text: str) -> str:
    # Slack treats &, < and > as control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_time(instant: datetime) -> str:
    # Slack renders <!date^...> in each reader's own time zone; the fallback is UTC ISO 8601.
    unix = int(instant.timestamp())
    return f"<!date^{unix}^{{date_short_pretty}} {{time}}|{instant.isoformat()}>"


def slack_payload(due: EscalationDue, people: Sequence[Person] = ()) -> dict[str, Any]:
    """Slack incoming-webhook body: ``text`` (notification fallback) and Block Kit ``blocks``."""
    headline = notice_headline(due)
    title = due.title or due.risk_id
    mentions = " ".join(f"<@{person.slack_user_id}>" for person in people if person.slack_user_id)
    fields = [
        f"*Risk*\n`{_slack_escape(due.risk_id)}`",
        f"*Role*\n{role_name(due.target_role)}",
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
    summary = f"{notice_headline(due)}: {due.title or due.risk_id}"
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


def build_notifications(
    roster: Roster,
    event: EscalationDueEvent,
    teams_card: Callable[[EscalationDueEvent], dict[str, Any]] | None = None,
) -> list[Notification]:
    """Every POST to the role's own channels when ``event`` fires, in roster order (its people's
    own channels are :func:`riskrelay.escalator.person_notices.build_person_notifications`).
    ``teams_card`` makes the body of a role's Teams channel."""
    due = event.data
    people = roster.people_of(due.target_role)
    notifications = []
    for channel in roster.channels_for(due.target_role, due.level):
        match channel:
            case WebhookChannel():
                payload = webhook_payload(event)
            case SlackChannel():
                payload = slack_payload(due, people)
            case PagerDutyChannel():
                payload = pagerduty_payload(due, channel.routing_key, roster.source)
            case TeamsChannel():
                if teams_card is None:
                    continue
                payload = teams_card(event)
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
