"""People's notices on a real SMTP server (aiosmtpd) and a local Teams receiver, and the
one-click acknowledgement links they carry, on the real broker and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from riskrelay.devstack import free_port
from riskrelay.escalator.app import create_app
from riskrelay.escalator.calendar import load_calendar
from riskrelay.escalator.domain import build_plan
from riskrelay.escalator.notice import reader_time
from riskrelay.escalator.policy import load_policy
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.shared.auth import IdentityTokens, Person
from riskrelay.shared.events import Role
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, running
from tests.integration.test_escalator_service import classified, http_receiver, record_of, topic

pytestmark = pytest.mark.integration

NEW_YORK = ZoneInfo("America/New_York")
KEY = "integration-key-" + "x" * 32
LEAD = "nina.york@example.org"


class Mailbox:
    """aiosmtpd handler: keeps every message; refuses RCPT for ``gone@`` with 550."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"


@contextlib.contextmanager
def smtp_server() -> Any:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()


def next_tuesday_afternoon() -> datetime:
    """14:00 in New York on the next Tuesday after today, whatever today is."""
    today = datetime.now(NEW_YORK).date()
    day = today + timedelta(days=(1 - today.weekday()) % 7 or 7)
    return datetime(day.year, day.month, day.day, 14, 0, tzinfo=NEW_YORK)


def write_files(folder: Path, smtp_port: int, teams_url: str) -> dict[str, Path]:
    calendar = folder / "calendar.yaml"
    calendar.write_text(
        "timezone: America/New_York\nbusiness_hours:\n"
        + "".join(f"  {d}: ['09:00', '17:00']\n" for d in ("mon", "tue", "wed", "thu", "fri"))
    )
    keys = folder / "identity-keys.json"
    keys.write_text(json.dumps({"signing_key_id": "k1", "keys": {"k1": KEY}}))
    roster = folder / "roster.yaml"
    roster.write_text(
        f"""
calendars:
  new-york:
    timezone: America/New_York
    business_hours: {{mon: ["09:00", "17:00"], tue: ["09:00", "17:00"], wed: ["09:00", "17:00"],
                     thu: ["09:00", "17:00"], fri: ["09:00", "17:00"]}}
channels:
  mail: {{type: email, host: 127.0.0.1, port: {smtp_port}, security: none,
          from_address: riskrelay@example.org}}
  leads-teams: {{type: teams, url: "{teams_url}"}}
people:
  nina: {{name: Nina York, email: {LEAD}, calendar: new-york, channels: [mail, leads-teams]}}
  gone: {{name: Gone Person, email: gone@example.org, channels: [mail]}}
roles:
  team_lead: {{people: [nina, gone]}}
links: {{console_url: "http://console.example.invalid"}}
delivery: {{initial_delay: "PT0.2S", max_delay: 1s, max_attempts: 3}}
"""
    )
    return {"calendar": calendar, "keys": keys, "roster": roster}


def person_token(email: str, roles: list[Role]) -> str:
    """What the console sends for a signed-in person (signed with the same identity key)."""
    identity = IdentityTokens(
        {"k1": KEY}, issuer="riskrelay-console", audience="riskrelay", signing_key_id="k1"
    )
    return identity.sign(Person(email, email, email, roles), timedelta(hours=1))


async def test_level_4_email_link_acknowledges_once_and_refuses_tampering(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    with smtp_server() as (smtp_port, mailbox):
        async with http_receiver() as (base, received):
            files = write_files(tmp_path, smtp_port, f"{base}/teams")
            app = create_app(
                EscalatorSettings(
                    kafka=kafka_settings,
                    database=database_settings,
                    calendar_path=files["calendar"],
                    roster_path=files["roster"],
                    auth=AuthSettings(identity_keys_file=files["keys"]),
                )
            )
            # The service's time runs from 14:00 New York on a Tuesday, whatever today is.
            start, offset = datetime.now(UTC), next_tuesday_afternoon()
            app.state.context.state["clock"] = lambda: offset + (datetime.now(UTC) - start)
            flagged = offset.astimezone(UTC)
            plan = build_plan(
                risk_id="risk-ny",
                level=4,
                flagged_at=flagged,
                policy=load_policy(None),
                calendar=load_calendar(files["calendar"]),
            )
            lead_step = next(s for s in plan.steps if s.role is Role.TEAM_LEAD)
            assert lead_step.ack_due_at is not None
            async with running(app):
                db = app.state.context.db
                client = httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://e"
                )
                await produce(
                    kafka_settings.bootstrap,
                    topic(kafka_settings, "risk-classified"),
                    [record_of(classified("risk-ny", 4, flagged))],
                )

                async def mailed() -> bool:
                    return bool(mailbox.messages) and bool(received.get("teams"))

                await eventually(mailed, 30)
                [mail] = mailbox.messages
                assert mail["To"] == f"Nina York <{LEAD}>"
                assert mail["Subject"].startswith("[riskrelay L4] Level 4 (High) risk escalated")
                text = mail.get_body(("plain",)).get_content()
                html = mail.get_body(("html",)).get_content()
                local = lead_step.ack_due_at.astimezone(NEW_YORK)
                expected = f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"
                assert f"Acknowledge by: {expected} (" in text
                assert "within your business hours" in text
                assert local.tzname() in {"EST", "EDT"}
                assert 9 <= local.hour <= 17
                assert "Category:     data security privacy" in text
                assert "another customer's invoice" in text
                assert "Acknowledge</a>" in html
                # The Teams card went out with its own link (bound to the same person).
                [card_post] = received["teams"]
                card = card_post["attachments"][0]["content"]
                assert card["actions"][0]["title"] == "Acknowledge"

                # The address the server refuses with 550: failed after one attempt.
                async def refused_recorded() -> bool:
                    return bool(
                        await db.fetchval(
                            "SELECT state = 'failed' FROM notifications"
                            " WHERE recipient = 'gone@example.org'"
                        )
                    )

                await eventually(refused_recorded, 20)
                attempts = await db.fetch(
                    "SELECT a.status_code, a.outcome FROM delivery_attempts a JOIN notifications n"
                    " ON n.id = a.notification_id WHERE n.recipient = 'gone@example.org'"
                )
                assert [tuple(r) for r in attempts] == [(550, "failed")]

                token = unquote(text.split("token=")[1].split()[0])
                lead = {"Authorization": f"Bearer {person_token(LEAD, [Role.TEAM_LEAD])}"}
                other = {
                    "Authorization": "Bearer " + person_token("sam@example.org", [Role.TEAM_LEAD])
                }
                seen = await client.post(
                    "/v1/ack-links/inspect", json={"token": token}, headers=lead
                )
                assert seen.status_code == 200, seen.text
                assert seen.json()["step"]["state"] == "open"
                assert seen.json()["channel"] == "email"
                # The confirmation page's deadline: in Nina's zone, as she reads it.
                assert seen.json()["time_zone"] == "America/New_York"
                service_now = app.state.context.state["clock"]()
                assert seen.json()["ack_due_text"] == reader_time(
                    lead_step.ack_due_at, NEW_YORK, service_now
                )
                assert seen.json()["ack_due_text"].endswith(f", {local:%H:%M} {local.tzname()}")
                # Inspecting changed nothing.
                assert (
                    await db.fetchval(
                        "SELECT status FROM escalation_steps WHERE escalation_id = $1",
                        lead_step.escalation_id,
                    )
                    == "open"
                )
                wrong = await client.post(
                    "/v1/ack-links/redeem", json={"token": token}, headers=other
                )
                assert wrong.status_code == 403
                assert wrong.json()["reason"] == "wrong_person"
                head, claims, signature = token.split(".")
                tampered = f"{head}.{claims}.{signature[:-4]}{'AAAA' if not signature.endswith('AAAA') else 'BBBB'}"
                bad = await client.post(
                    "/v1/ack-links/redeem", json={"token": tampered}, headers=lead
                )
                assert bad.status_code == 400
                assert bad.json()["reason"] == "tampered"

                first = await client.post(
                    "/v1/ack-links/redeem", json={"token": token}, headers=lead
                )
                assert first.status_code == 200, first.text
                assert first.json()["status"] == "accepted"
                assert first.json()["step"]["acknowledged_by"] == LEAD
                second = await client.post(
                    "/v1/ack-links/redeem", json={"token": token}, headers=lead
                )
                assert second.status_code == 409
                assert second.json()["reason"] == "reused"
                assert "already used" in second.json()["detail"]
                assert f"acknowledged by {LEAD}" in second.json()["detail"]

                ack = await db.fetchrow(
                    "SELECT source, channel, acknowledged_by, outcome FROM acknowledgements"
                    " WHERE escalation_id = $1",
                    lead_step.escalation_id,
                )
                assert tuple(ack) == ("link", "email", LEAD, "accepted")
                # Reminders stop: nothing of the step is pending any more.
                assert (
                    await db.fetchval(
                        "SELECT count(*) FROM timers WHERE escalation_id = $1 AND state = 'pending'",
                        lead_step.escalation_id,
                    )
                    == 0
                )
                assert (
                    await db.fetchval(
                        "SELECT count(*) FROM timers WHERE escalation_id = $1"
                        " AND cancelled_reason = 'acknowledged'",
                        lead_step.escalation_id,
                    )
                    > 0
                )
                refusals = await db.fetch(
                    "SELECT reason, presented_by FROM ack_link_refusals ORDER BY id"
                )
                assert [tuple(r) for r in refusals] == [
                    ("wrong_person", "sam@example.org"),
                    ("tampered", LEAD),
                    ("reused", LEAD),
                ]
