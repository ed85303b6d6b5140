"""After a Slack click the escalator updates the message through the payload's response_url:
the clicked message without its button and with who acknowledged when, or an ephemeral reply
with the refusal's reason; only to allowed origins. Real broker, PostgreSQL and a local HTTP
receiver standing in for Slack."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest

from riskrelay.escalator.app import create_app
from riskrelay.escalator.notice import reader_time
from riskrelay.escalator.settings import EscalatorSettings, SlackSettings
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, running
from tests.integration.test_escalator_service import classified, http_receiver, record_of, topic
from tests.integration.test_notifications_slack import SECRET, signed

pytestmark = pytest.mark.integration

TARA = "tara.lead@example.org"
TOM = "tom.lead@example.org"

# Deadlines of an hour, so no acknowledgement in the test is late.
POLICY = """
version: "test-slack"
pre_breach_warning_fraction: 0.5
levels:
  5:
    timeframe: {rule: elapsed, within: 1h}
    steps: [{role: team_lead}]
  4:
    timeframe: {rule: elapsed, within: 1h}
    steps: [{role: team_lead}]
  3:
    timeframe: {rule: elapsed, within: 1h}
    steps: [{role: team_lead}, {role: support_manager, kind: review}]
    on_review_confirmed: {role: risk_management, ack_due: 1h}
    weekly_review: true
  2:
    timeframe: {rule: elapsed, within: 48h}
    steps: [{role: agent}]
    weekly_review: true
  1:
    timeframe: {rule: weekly_review}
    weekly_review: true
"""


def click(user_id: str, message: dict[str, Any], response_url: str) -> str:
    """A block_actions payload as Slack posts it for the message's first button."""
    [buttons] = [b for b in message["blocks"] if b.get("block_id") == "riskrelay_ack"]
    button = buttons["elements"][0]
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower()},
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "response_url": response_url,
        "message": {"type": "message", "text": message["text"], "blocks": message["blocks"]},
        "actions": [
            {
                "type": "button",
                "block_id": "riskrelay_ack",
                "action_id": button["action_id"],
                "value": button["value"],
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


async def test_a_click_updates_the_message_and_a_refusal_answers_only_the_clicker(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    async with http_receiver() as (base, received):
        keys = tmp_path / "keys.json"
        keys.write_text(json.dumps({"signing_key_id": "k1", "keys": {"k1": "s" * 40}}))
        policy = tmp_path / "policy.yaml"
        policy.write_text(POLICY)
        roster = tmp_path / "roster.yaml"
        roster.write_text(
            f"""
channels:
  tara-slack: {{type: slack, url: "{base}/slack-tara"}}
  tom-slack: {{type: slack, url: "{base}/slack-tom"}}
people:
  tara:
    name: Tara Lead
    email: {TARA}
    slack_user_id: U0TARA
    time_zone: Europe/Berlin
    channels: [tara-slack]
  tom: {{name: Tom Lead, email: {TOM}, slack_user_id: U0TOM, channels: [tom-slack]}}
roles:
  team_lead: {{people: [tara, tom]}}
links: {{console_url: "http://console.example.invalid"}}
"""
        )
        app = create_app(
            EscalatorSettings(
                kafka=kafka_settings,
                database=database_settings,
                policy_path=policy,
                roster_path=roster,
                auth=AuthSettings(identity_keys_file=keys),
                # Plain HTTP to the local receiver only because its origin is named with it.
                slack=SlackSettings.model_validate(
                    {"signing_secret": SECRET, "response_url_hosts": [base]}
                ),
            )
        )
        async with running(app):
            context = app.state.context
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e")
            await produce(
                kafka_settings.bootstrap,
                topic(kafka_settings, "risk-classified"),
                [record_of(classified("risk-slack", 4, datetime.now(UTC)))],
            )

            async def notified() -> bool:
                return bool(received.get("slack-tara")) and bool(received.get("slack-tom"))

            await eventually(notified, 30)
            [tara_message] = received["slack-tara"]
            [tom_message] = received["slack-tom"]

            async def post(body: str) -> dict[str, Any]:
                answer = await client.post(
                    "/v1/slack/interactions", content=body, headers=signed(body, int(time.time()))
                )
                assert answer.status_code == 200, answer.text
                found: dict[str, Any] = answer.json()
                return found

            def replies(name: str) -> Any:
                async def arrived() -> bool:
                    return bool(received.get(name))

                return arrived

            # Tom presses Tara's button: refused, and only Tom is told why.
            answer = await post(click("U0TOM", tara_message, f"{base}/refused"))
            assert answer["reason"] == "wrong_person"
            await eventually(replies("refused"), 10)
            [ephemeral] = received["refused"]
            assert ephemeral == {
                "response_type": "ephemeral",
                "replace_original": False,
                "text": f"Not acknowledged: this link was sent to {TARA}; you are signed in as"
                f" {TOM}",
            }

            # Tara presses hers: her message loses its button and says she acknowledged it.
            answer = await post(click("U0TARA", tara_message, f"{base}/tara"))
            assert answer["status"] == "accepted"
            await eventually(replies("tara"), 10)
            [replaced] = received["tara"]
            at = await context.db.fetchval(
                "SELECT acknowledged_at FROM acknowledgements WHERE outcome = 'accepted'"
            )
            line = f"Acknowledged by Tara Lead at {reader_time(at, ZoneInfo('Europe/Berlin'), at)}"
            assert replaced["replace_original"] is True
            assert replaced["text"] == f"{line}: {tara_message['text']}"
            *content, status = replaced["blocks"]
            assert content == [b for b in tara_message["blocks"] if b["type"] != "actions"]
            assert not any(b["type"] == "actions" for b in replaced["blocks"])
            assert status["elements"][0]["text"] == f":white_check_mark: *{line}*"

            # Tom presses his own button afterwards: his message says Tara was first (his time
            # zone is unknown: UTC).
            answer = await post(click("U0TOM", tom_message, f"{base}/tom"))
            assert answer["status"] == "already_closed"
            await eventually(replies("tom"), 10)
            [tom_replaced] = received["tom"]
            already = f"Already acknowledged by Tara Lead at {reader_time(at, ZoneInfo('UTC'), at)}"
            assert tom_replaced["replace_original"] is True
            assert tom_replaced["blocks"][-1]["elements"][0]["text"] == (
                f":white_check_mark: *{already}*"
            )
            assert not any(b["type"] == "actions" for b in tom_replaced["blocks"])

            # A response_url elsewhere (another port of the same host) gets nothing.
            elsewhere = "http://127.0.0.1:1/internal"
            answer = await post(click("U0STRANGER", tara_message, elsewhere))
            assert answer["reason"] == "wrong_person"
            assert (
                context.registry.get_sample_value(
                    "riskrelay_slack_responses_total", {"outcome": "not_allowed"}
                )
                == 1
            )

            async def all_sent() -> bool:
                sent = context.registry.get_sample_value(
                    "riskrelay_slack_responses_total", {"outcome": "sent"}
                )
                return bool(sent == 3 and context.state["slack_responder"].pending == 0)

            await eventually(all_sent, 10)
            refusals = await context.db.fetch(
                "SELECT reason, presented_by FROM ack_link_refusals ORDER BY id"
            )
            assert [tuple(r) for r in refusals] == [
                ("wrong_person", TOM),
                ("wrong_person", "slack:U0STRANGER"),
            ]
