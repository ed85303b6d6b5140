"""The console side of an e-mail's acknowledgement link: sign in and back, a confirmation page
that changes nothing, the button that acknowledges once, and clear refusal pages."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from riskrelay.escalator.app import create_app as create_escalator
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.settings import ConsoleSettings, ReportingSettings, ScheduleSettings
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, running
from tests.integration.test_console import csrf_of, served
from tests.integration.test_escalator_service import classified, record_of, topic
from tests.integration.test_notifications_email import smtp_server

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-links-12345"
PASSWORD = "correct horse battery"
POLICY = """
version: "test-links"
levels:
  5: {timeframe: {rule: elapsed, within: 30m}, steps: [{role: team_lead}]}
  4: {timeframe: {rule: elapsed, within: 30m}, steps: [{role: team_lead}]}
  3: {timeframe: {rule: elapsed, within: 30m}, steps: [{role: team_lead}]}
  2: {timeframe: {rule: elapsed, within: 48h}, steps: [{role: agent}]}
  1: {timeframe: {rule: weekly_review}, weekly_review: true}
"""


async def sign_in(client: httpx.AsyncClient, email: str, next_path: str) -> httpx.Response:
    form = await client.get(f"/console/login?next={quote(next_path, safe='')}")
    return await client.post(
        "/console/login",
        data={"csrf_token": csrf_of(form), "email": email, "password": PASSWORD, "next": next_path},
    )


async def test_an_email_link_confirms_on_the_console_once_and_refuses_clearly(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"admin": ADMIN_TOKEN}))
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"signing_key_id": "k1", "keys": {"k1": secrets.token_urlsafe(32)}}))
    auth = AuthSettings(tokens_file=tokens, identity_keys_file=keys)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    with smtp_server() as (smtp_port, mailbox):
        roster = tmp_path / "roster.yaml"
        roster.write_text(
            f"""
channels:
  mail: {{type: email, host: 127.0.0.1, port: {smtp_port}, security: none,
          from_address: riskrelay@example.org}}
people:
  lea: {{name: Lea Lead, email: lea@example.org, channels: [mail],
         time_zone: America/New_York}}
roles:
  team_lead: {{people: [lea]}}
links: {{console_url: "http://reporting"}}
"""
        )
        escalator = create_escalator(
            EscalatorSettings(
                kafka=kafka_settings,
                database=database_settings.model_copy(update={"schema_name": f"{db_schema}_esc"}),
                policy_path=policy,
                roster_path=roster,
                auth=auth,
            )
        )
        async with running(escalator), served(escalator) as escalator_url:
            reporting = create_reporting(
                ReportingSettings(
                    kafka=kafka_settings,
                    database=database_settings.model_copy(
                        update={"schema_name": f"{db_schema}_rep"}
                    ),
                    auth=auth,
                    schedule=ScheduleSettings(enabled=False),
                    console=ConsoleSettings(escalator_url=escalator_url),
                )
            )
            async with (
                running(reporting),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=reporting), base_url="http://reporting"
                ) as lea,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=reporting), base_url="http://reporting"
                ) as sam,
            ):
                for email, name in [("lea@example.org", "Lea Lead"), ("sam@example.org", "Sam")]:
                    created = await lea.put(
                        f"/v1/console/users/{email}",
                        json={"name": name, "roles": ["team_lead"], "password": PASSWORD},
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    )
                    assert created.status_code == 201, created.text
                await produce(
                    kafka_settings.bootstrap,
                    topic(kafka_settings, "risk-classified"),
                    [record_of(classified("risk-link", 4, datetime.now(UTC)))],
                )

                async def mailed() -> bool:
                    return bool(mailbox.messages)

                await eventually(mailed, 30)
                text = mailbox.messages[0].get_body(("plain",)).get_content()
                link = next(line for line in text.splitlines() if "/console/links/ack?" in line)
                path = urlsplit(link).path + "?" + urlsplit(link).query

                # Without a session the link sends Lea to sign in, and back to it.
                bounced = await lea.get(path)
                assert bounced.status_code == 303
                assert bounced.headers["location"] == f"/console/login?next={quote(path, safe='')}"
                signed_in = await sign_in(lea, "lea@example.org", path)
                assert signed_in.status_code == 303, signed_in.text
                assert signed_in.headers["location"] == path

                page = await lea.get(path)
                assert page.status_code == 200, page.text
                assert "Acknowledge?" in page.text
                # Times as Lea reads them: her zone, no ISO timestamps.
                due = re.search(r"<th>Acknowledge by</th><td>([^<]*)</td>", page.text)
                assert due is not None, page.text
                assert re.fullmatch(r"\w{3} \d{1,2} \w{3}( \d{4})?, \d{2}:\d{2} E[SD]T", due[1])
                assert re.search(
                    r"until \w{3} \d{1,2} \w{3}( \d{4})?, \d{2}:\d{2} E[SD]T", page.text
                )
                assert 'action="/console/links/ack"' in page.text
                step_status = "SELECT status FROM escalation_steps WHERE risk_id = 'risk-link'"
                esc_db = escalator.state.context.db
                assert await esc_db.fetchval(step_status) == "open"  # the GET changed nothing

                # Sam opens Lea's link: refused, recorded, and the step stays open.
                assert (await sign_in(sam, "sam@example.org", path)).status_code == 303
                foreign = await sam.get(path)
                assert foreign.status_code == 403
                assert "This link was sent to someone else" in foreign.text
                token = re.search(r'name="token" value="([^"]+)"', page.text)
                assert token is not None
                no_csrf = await lea.post(
                    "/console/links/ack", data={"token": unescape(token.group(1))}
                )
                assert no_csrf.status_code == 403
                assert await esc_db.fetchval(step_status) == "open"

                done = await lea.post(
                    "/console/links/ack",
                    data={"csrf_token": csrf_of(page), "token": unescape(token.group(1))},
                )
                assert done.status_code == 200, done.text
                assert "<h1>Acknowledged</h1>" in done.text
                assert await esc_db.fetchval(step_status) == "acknowledged"
                assert (
                    await esc_db.fetchval(
                        "SELECT acknowledged_by FROM escalation_steps WHERE risk_id = 'risk-link'"
                    )
                    == "lea@example.org"
                )

                again = await lea.get(path)
                assert again.status_code == 409
                assert "<h1>Already acknowledged</h1>" in again.text
                assert "acknowledged by lea@example.org" in again.text

                tampered = await lea.get(path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"))
                assert tampered.status_code == 400
                assert "This link is not valid" in tampered.text
                reasons = await esc_db.fetch("SELECT reason FROM ack_link_refusals ORDER BY id")
                assert [r["reason"] for r in reasons] == ["wrong_person", "reused", "tampered"]
