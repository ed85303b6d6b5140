"""Slack buttons in a Level 3 review notice, posted back through Slack's signed interactivity
request, on the real broker and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from riskrelay.escalator.app import create_app
from riskrelay.escalator.settings import EscalatorSettings, SlackSettings
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, running
from tests.integration.test_escalator_service import (
    classified,
    http_receiver,
    record_of,
    topic,
    write_fast_policy,
)

pytestmark = pytest.mark.integration

SECRET = "slack-signing-secret-for-tests"
MANAGER = "sam.manager@example.org"


def signed(body: str, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click(user_id: str, value: str) -> str:
    payload = {"type": "block_actions", "user": {"id": user_id}, "actions": [{"value": value}]}
    return urlencode({"payload": json.dumps(payload)})


async def test_a_review_button_confirms_once_and_bad_signatures_get_401(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    async with http_receiver() as (base, received):
        keys = tmp_path / "keys.json"
        keys.write_text(json.dumps({"signing_key_id": "k1", "keys": {"k1": "s" * 40}}))
        roster = tmp_path / "roster.yaml"
        roster.write_text(
            f"""
channels:
  sam-slack: {{type: slack, url: "{base}/slack"}}
people:
  sam: {{name: Sam Manager, email: {MANAGER}, slack_user_id: U0SAMMGR, channels: [sam-slack]}}
roles:
  support_manager: {{people: [sam]}}
links: {{console_url: "http://console.example.invalid"}}
"""
        )
        app = create_app(
            EscalatorSettings(
                kafka=kafka_settings,
                database=database_settings,
                policy_path=write_fast_policy(tmp_path),
                roster_path=roster,
                auth=AuthSettings(identity_keys_file=keys),
                slack=SlackSettings.model_validate({"signing_secret": SECRET}),
            )
        )
        async with running(app):
            db = app.state.context.db
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e")
            await produce(
                kafka_settings.bootstrap,
                topic(kafka_settings, "risk-classified"),
                [record_of(classified("risk-l3", 3, datetime.now(UTC)))],
            )

            def review_notice() -> dict[str, Any] | None:
                for message in received.get("slack", []):
                    if any(b.get("block_id") == "riskrelay_ack" for b in message["blocks"]):
                        found: dict[str, Any] = message
                        return found
                return None

            async def notified() -> bool:
                return review_notice() is not None

            await eventually(notified, 30)
            notice = review_notice()
            assert notice is not None
            [buttons] = [b for b in notice["blocks"] if b.get("block_id") == "riskrelay_ack"]
            confirm, not_confirm = buttons["elements"]
            assert confirm["text"]["text"].startswith("Confirmed")
            assert not_confirm["text"]["text"].startswith("Not confirmed")

            url = "/v1/slack/interactions"
            body = click("U0SAMMGR", confirm["value"])
            now = int(time.time())
            forged = await client.post(url, content=body, headers=signed(body, now, "other-secret"))
            assert forged.status_code == 401
            stale = await client.post(url, content=body, headers=signed(body, now - 600))
            assert stale.status_code == 401
            unsigned = await client.post(url, content=body)
            assert unsigned.status_code == 401
            assert not await db.fetchval("SELECT count(*) FROM acknowledgements")

            stranger_body = click("U0STRANGER", confirm["value"])
            stranger = await client.post(
                url, content=stranger_body, headers=signed(stranger_body, now)
            )
            assert stranger.status_code == 200
            assert stranger.json()["reason"] == "wrong_person"

            clicked = await client.post(url, content=body, headers=signed(body, now))
            assert clicked.status_code == 200, clicked.text
            assert clicked.json() == {
                "ok": True,
                "status": "accepted",
                "text": f"Acknowledged by {MANAGER}.",
            }
            ack = await db.fetchrow(
                "SELECT source, channel, acknowledged_by, decision, role FROM acknowledgements"
            )
            assert tuple(ack) == ("link", "slack", MANAGER, "confirmed", "support_manager")
            added = await db.fetchval(
                "SELECT role FROM escalation_steps WHERE risk_id = 'risk-l3'"
                " AND added_because = 'review_confirmed'"
            )
            assert added == "risk_management"

            again = await client.post(url, content=body, headers=signed(body, now))
            assert again.json()["reason"] == "reused"
            other_body = click("U0SAMMGR", not_confirm["value"])
            other = await client.post(url, content=other_body, headers=signed(other_body, now))
            assert other.json() == {
                "ok": True,
                "status": "already_closed",
                "text": f"Already acknowledged by {MANAGER}.",
            }
            assert (
                await db.fetchval(
                    "SELECT decision FROM escalation_steps WHERE risk_id = 'risk-l3'"
                    " AND kind = 'review'"
                )
                == "confirmed"
            )
            refusals = [
                tuple(r)
                for r in await db.fetch(
                    "SELECT reason, presented_by FROM ack_link_refusals ORDER BY id"
                )
            ]
            assert refusals == [("wrong_person", "slack:U0STRANGER"), ("reused", MANAGER)]
