"""The dev stack's SMTP receiver: an e-mail the escalator's channel sends shows in the inbox."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from riskrelay.cli.inbox import MailReceiver, demo_roster, read_notifications
from riskrelay.devstack import free_port
from riskrelay.escalator.email_channel import SmtpSender
from riskrelay.escalator.roster import EmailChannel, Roster
from riskrelay.shared.events import Role

pytestmark = pytest.mark.integration


def test_the_demo_roster_mails_every_roles_console_user_with_links() -> None:
    roster = Roster.model_validate(demo_roster("http://127.0.0.1:9006"))
    assert roster.links is not None
    assert str(roster.links.console_url) == "http://127.0.0.1:9005/"
    mail = roster.channels["demo-mail"]
    assert isinstance(mail, EmailChannel)
    assert (mail.host, mail.port) == ("127.0.0.1", 9025)
    assert [p.email for p in roster.people_of(Role.SUPPORT_MANAGER)] == [
        "support-manager@example.org"
    ]


async def test_an_email_sent_through_the_channel_is_listed_and_kept(tmp_path: Path) -> None:
    inbox = tmp_path / "notifications.jsonl"
    port = free_port()
    controller = Controller(MailReceiver(inbox), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        channel = EmailChannel(
            host="127.0.0.1", port=port, security="none", from_address="riskrelay@example.org"
        )
        payload = {
            "from_name": "riskrelay",
            "from_address": "riskrelay@example.org",
            "to_name": "Demo Team Lead",
            "to_address": "team-lead@example.org",
            "subject": "[riskrelay L5] Level 5 (Critical) risk escalated to Team Lead: Outage",
            "message_id": "evt-1.abc@riskrelay",
            "text": "Acknowledge:\nhttp://127.0.0.1:8005/console/links/ack?token=t\n",
            "html": "<p>Acknowledge</p>",
            "risk_id": "risk-7",
            "escalation_id": "esc-7",
        }
        reply = await SmtpSender("demo-mail", channel).send(payload, datetime.now(UTC))
    finally:
        controller.stop()
    assert reply.delivered, reply.error
    [listed] = read_notifications(inbox)
    assert (listed.channel, listed.level, listed.risk_id) == ("email", 5, "risk-7")
    assert listed.role == "Demo Team Lead <team-lead@example.org>"
    assert "console/links/ack?token=t" in listed.body["text"]
    [kept] = (tmp_path / "mail").glob("*.eml")
    assert b"Message-ID: <evt-1.abc@riskrelay>" in kept.read_bytes()
