"""People in the roster, their e-mail notices, deadlines in their own zone, quiet hours, SMTP
retry rules."""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
import yaml

from riskrelay.escalator.calendar import ConfigFileError
from riskrelay.escalator.email_channel import SmtpSender, email_message
from riskrelay.escalator.links import AckLinks
from riskrelay.escalator.notice import RiskDetails, quiet_until
from riskrelay.escalator.notifications import AttemptResult, attempt_outcome
from riskrelay.escalator.person_notices import StepFacts, build_person_notifications
from riskrelay.escalator.policy import StepKind
from riskrelay.escalator.roster import EmailChannel, Roster, load_roster
from riskrelay.shared.events import (
    EscalationDue,
    EscalationDueEvent,
    EscalationReason,
    RiskLevel,
    Role,
)

pytestmark = pytest.mark.unit

KEY = "k" * 40
NEW_YORK_CALENDAR = {
    "timezone": "America/New_York",
    "business_hours": {day: ["09:00", "17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
}


def roster_of(**changes: Any) -> Roster:
    raw: dict[str, Any] = {
        "calendars": {"new-york": NEW_YORK_CALENDAR},
        "channels": {
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": 2525,
                "security": "none",
                "from_address": "riskrelay@example.org",
            },
            "leads-teams": {"type": "teams", "url": "https://teams.example.invalid/hook"},
        },
        "people": {
            "nina": {
                "name": "Nina York",
                "email": "Nina.York@example.org",
                "calendar": "new-york",
                "channels": ["mail"],
            }
        },
        "roles": {"team_lead": {"people": ["nina"]}},
        "links": {"console_url": "http://console.example.invalid"},
    }
    raw.update(changes)
    return Roster.model_validate(raw)


def due_event(level: RiskLevel = RiskLevel.HIGH, **changes: Any) -> EscalationDueEvent:
    data = {
        "escalation_id": "esc-1",
        "risk_id": "risk-ny",
        "level": level,
        "step": 0,
        "target_role": Role.TEAM_LEAD,
        "reason": EscalationReason.INITIAL,
        # Tue 2026-03-10 20:00 UTC = 16:00 in New York (EDT since 8 March).
        "due_at": datetime(2026, 3, 10, 20, 0, tzinfo=UTC),
        "ack_due_at": datetime(2026, 3, 10, 21, 0, tzinfo=UTC),
        "timeframe_due_at": datetime(2026, 3, 10, 21, 0, tzinfo=UTC),
        "title": "Invoices shown to the wrong customers",
    } | changes
    return EscalationDueEvent(
        id="evt-1",
        source="riskrelay/escalator",
        time=data["due_at"],
        subject="risk-ny",
        correlationid="risk-ny",
        data=EscalationDue.model_validate(data),
    )


DETAILS = RiskDetails(
    category="data_security_privacy",
    ticket_count=7,
    distinct_customers=5,
    summary="Customers see another customer's invoice ([EMAIL] visible).",
    indicators=("data_concern", "multiple_similar_reports"),
)
LINKS = AckLinks({"k1": KEY}, "k1")


def test_person_email_shows_the_deadline_in_their_zone_and_business_hours() -> None:
    now = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    [mail] = build_person_notifications(
        roster_of(), due_event(), StepFacts(DETAILS, StepKind.ACKNOWLEDGE), LINKS, now
    )
    assert (mail.channel, mail.url, mail.recipient) == (
        "email",
        "Nina.York@example.org",
        "Nina.York@example.org",
    )
    text, html = mail.payload["text"], mail.payload["html"]
    # 21:00 UTC is 17:00 EDT: the closing minute of New York's business day.
    assert (
        "Acknowledge by: Tue 10 Mar 2026, 17:00 EDT (1 h 0 min left, within your business hours)"
        in text
    )
    for part in ("Category:     data security privacy", "Tickets:      7", "Customers:    5",
                 "([EMAIL] visible)", "data concern, multiple similar reports"):  # fmt: skip
        assert part in text
    assert "/console/links/ack?token=" in text
    assert "customer&#39;s invoice" in html  # escaped in HTML
    assert mail.payload["subject"].startswith("[riskrelay L4] Level 4 (High) risk escalated")
    token = text.split("token=")[1].split()[0]
    claims = LINKS.verify(unquote(token), now)
    assert (claims.person, claims.escalation_id, claims.channel) == (
        "nina.york@example.org",
        "esc-1",
        "email",
    )


def test_a_deadline_after_hours_is_said_to_be_outside_them() -> None:
    now = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    event = due_event(ack_due_at=datetime(2026, 3, 10, 23, 30, tzinfo=UTC))
    [mail] = build_person_notifications(roster_of(), event, StepFacts(DETAILS, None), LINKS, now)
    assert (
        "Tue 10 Mar 2026, 19:30 EDT (3 h 30 min left, outside your business hours)"
        in mail.payload["text"]
    )


def test_a_level_3_review_carries_confirmed_and_not_confirmed_links() -> None:
    now = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    [mail] = build_person_notifications(
        roster_of(), due_event(RiskLevel.MEDIUM), StepFacts(DETAILS, StepKind.REVIEW), LINKS, now
    )
    text = mail.payload["text"]
    assert "Confirmed: tell Risk Management:" in text
    assert "Not confirmed: to the Weekly Risk Review:" in text
    tokens = [line.split("token=")[1] for line in text.splitlines() if "token=" in line]
    decisions = {LINKS.verify(token, now).decision for token in tokens}
    assert {d.value for d in decisions if d} == {"confirmed", "not_confirmed"}


def test_quiet_hours_hold_a_notice_except_a_critical_one() -> None:
    quiet = {"start": "15:00", "end": "08:00"}  # 16:00 New York is inside
    roster = roster_of(
        people={
            "nina": {
                "name": "Nina York",
                "email": "nina@example.org",
                "calendar": "new-york",
                "quiet_hours": quiet,
                "channels": ["mail"],
            }
        }
    )
    now = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    [held] = build_person_notifications(roster, due_event(), StepFacts(DETAILS, None), None, now)
    assert held.not_before == datetime(2026, 3, 11, 8, 0, tzinfo=ZoneInfo("America/New_York"))
    [critical] = build_person_notifications(
        roster, due_event(RiskLevel.CRITICAL), StepFacts(DETAILS, None), None, now
    )
    assert critical.not_before is None


def test_quiet_hours_over_midnight() -> None:
    zone = ZoneInfo("Europe/Berlin")
    start, end = datetime(2026, 1, 1, 22).time(), datetime(2026, 1, 1, 7).time()
    assert quiet_until(start, end, zone, datetime(2026, 1, 5, 23, 30, tzinfo=zone)) == datetime(
        2026, 1, 6, 7, 0, tzinfo=zone
    )
    assert quiet_until(start, end, zone, datetime(2026, 1, 6, 3, 0, tzinfo=zone)) == datetime(
        2026, 1, 6, 7, 0, tzinfo=zone
    )
    assert quiet_until(start, end, zone, datetime(2026, 1, 6, 12, 0, tzinfo=zone)) is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"roles": {"team_lead": {"people": ["tara"]}}},
            "roles.team_lead.people[0]: unknown person 'tara'",
        ),
        (
            {"roles": {"team_lead": {"channels": ["pager"]}}},
            "roles.team_lead.channels[0]: unknown channel 'pager'",
        ),
        ({"roles": {"team_lead": {"channels": ["mail"]}}}, "email channel 'mail' reaches people"),
        ({"roles": {"night_owl": {}}}, "roles.night_owl"),
        (
            {"people": {"nina": {"name": "N", "email": "n@example.org", "channels": ["fax"]}}},
            "people.nina.channels[0]: unknown channel 'fax'",
        ),
        (
            {"people": {"nina": {"name": "N", "channels": ["mail"]}}},
            "people.nina.channels[0]: e-mail channel 'mail' needs an email",
        ),
        (
            {"people": {"nina": {"name": "N", "calendar": "tokyo"}}},
            "people.nina.calendar: unknown calendar 'tokyo'",
        ),
    ],
)
def test_a_roster_naming_an_unknown_entry_stops_start_up_naming_it(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    raw = roster_of().model_dump(mode="json", exclude_none=True)
    raw.update(change)
    path = tmp_path / "roster.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigFileError, match=expected.replace("[", r"\[").replace(".", r"\.")):
        load_roster(path)


def test_smtp_refusals_5xx_fail_at_once_4xx_and_silence_retry() -> None:
    def smtp(code: int | None) -> AttemptResult:
        return AttemptResult(code, "SMTP refusal", None, 1.0, protocol="smtp")

    later = timedelta(seconds=1)
    assert attempt_outcome(smtp(250), None) == "delivered"
    assert attempt_outcome(smtp(550), later) == "failed"
    assert attempt_outcome(smtp(451), later) == "retry"
    assert attempt_outcome(smtp(None), later) == "retry"
    # The same code over HTTP is a server error worth retrying.
    assert attempt_outcome(AttemptResult(503, None, None, 1.0), later) == "retry"


def test_email_message_is_multipart_with_a_stable_message_id() -> None:
    now = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    [mail] = build_person_notifications(
        roster_of(), due_event(), StepFacts(DETAILS, None), LINKS, now
    )
    stored = json.loads(json.dumps(mail.payload))  # what the queue keeps
    message = email_message(stored, now)
    parsed = message_from_bytes(bytes(message))
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.walk()][1:] == ["text/plain", "text/html"]
    assert parsed["To"] == "Nina York <Nina.York@example.org>"
    assert parsed["Message-ID"] == f"<{stored['message_id']}>"
    again = email_message(stored, now)
    assert isinstance(again, EmailMessage)
    assert again["Message-ID"] == parsed["Message-ID"]


def test_smtp_security_modes_and_secret_files(tmp_path: Path) -> None:
    (tmp_path / "user").write_text("relay-user\n")
    (tmp_path / "password").write_text("s3cret\n")
    channel = EmailChannel(
        host="smtp.example.org",
        port=465,
        security="tls",
        username_file=tmp_path / "user",
        password_file=tmp_path / "password",
        from_address="riskrelay@example.org",
    )
    options = SmtpSender("mail", channel).connection_options()
    assert (options["use_tls"], options["start_tls"]) == (True, False)
    assert (options["username"], options["password"]) == ("relay-user", "s3cret")
    starttls = channel.model_copy(update={"security": "starttls", "port": 587})
    assert SmtpSender("mail", starttls).connection_options()["start_tls"] is True
    missing = channel.model_copy(update={"password_file": tmp_path / "absent"})
    with pytest.raises(ValueError, match=r"channels\.mail\.password_file: cannot read"):
        SmtpSender("mail", missing)


def test_tls_verifies_certificate_and_name_against_the_ca_file_only(tmp_path: Path) -> None:
    channel = EmailChannel(
        host="smtp.example.org", security="tls", from_address="riskrelay@example.org"
    )
    system = SmtpSender("mail", channel).connection_options()["tls_context"]
    assert isinstance(system, ssl.SSLContext)
    assert system.verify_mode is ssl.CERT_REQUIRED
    assert system.check_hostname is True
    # An empty CA file is no CA at all: the system's CAs are not trusted beside it.
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"channels\.mail\.ca_file: cannot load"):
        SmtpSender("mail", channel.model_copy(update={"ca_file": empty}))
    with pytest.raises(ValueError, match=r"channels\.mail\.ca_file: cannot load .*absent\.pem"):
        SmtpSender("mail", channel.model_copy(update={"ca_file": tmp_path / "absent.pem"}))
    relay = channel.model_copy(update={"security": "none", "port": 25})
    assert SmtpSender("mail", relay).connection_options()["tls_context"] is None
    with pytest.raises(ValueError, match="ca_file needs security starttls or tls"):
        EmailChannel(
            host="relay.local",
            security="none",
            ca_file=tmp_path / "ca.pem",
            from_address="riskrelay@example.org",
        )
