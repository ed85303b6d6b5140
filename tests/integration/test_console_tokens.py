"""Personal API tokens on the real broker and PostgreSQL: a person creates a token on the
console page, a script exchanges it at reporting for a signed token the escalator accepts, and
revoking the token (or disabling the person) stops the next exchange."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.test_console import (
    ADMIN_TOKEN,
    console_client,
    console_stack,
    csrf_of,
    signed_in_person,
)

pytestmark = pytest.mark.integration


async def exchange(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/tokens/exchange", headers={"Authorization": f"Bearer {token}"})


async def test_a_personal_token_is_shown_once_exchanged_accepted_elsewhere_and_revoked(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as lea,
        console_client(stack.reporting) as script,
        console_client(stack.reporting) as ana,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=stack.escalator), base_url="http://escalator"
        ) as escalator,
    ):
        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])
        await signed_in_person(ana, "ana@example.org", "Ana Analyst", ["analyst"])
        assert (await script.get("/console/tokens")).status_code == 303  # no session

        page = await lea.get("/console/tokens")
        assert page.status_code == 200
        assert "You have no API tokens." in page.text
        csrf = csrf_of(page)
        assert (await lea.post("/console/tokens", data={"name": "nightly"})).status_code == 403
        unnamed = await lea.post("/console/tokens", data={"csrf_token": csrf, "name": " "})
        assert unnamed.status_code == 422
        created = await lea.post(
            "/console/tokens", data={"csrf_token": csrf, "name": "nightly export", "days": "30"}
        )
        assert created.status_code == 201, created.text
        shown = re.search(r'<code id="new-token">(rrpat_[^<]+)</code>', created.text)
        assert shown is not None
        token = shown.group(1)
        token_id = token.split("_")[1]

        # Stored hashed: the secret is nowhere in reporting's table.
        rows = await stack.reporting.state.context.db.fetch("SELECT * FROM console_api_tokens")
        assert len(rows) == 1
        assert all(token.split("_", 2)[2] not in str(value) for value in rows[0].values())
        listed = await lea.get("/console/tokens")
        assert token not in listed.text
        assert f'data-token-id="{token_id}"' in listed.text
        assert "nightly export" in listed.text
        assert "never" in listed.text
        assert "nightly export" not in (await ana.get("/console/tokens")).text

        # The script exchanges the token for Lea's signed token; the escalator accepts it.
        exchanged = await exchange(script, token)
        assert exchanged.status_code == 200, exchanged.text
        answer = exchanged.json()
        assert answer["token_type"] == "Bearer"
        assert answer["expires_in"] == 15 * 60
        as_lea = {"Authorization": f"Bearer {answer['access_token']}"}
        steps = await escalator.get("/v1/escalations", headers=as_lea)
        assert steps.status_code == 200, steps.text
        who = stack.escalator.state.context.tokens.authenticate(answer["access_token"])
        assert (who.email, who.name, sorted(who.roles)) == (
            "lea@example.org",
            "Lea Lead",
            ["team_lead"],
        )
        # The API token itself is no bearer token for other services.
        refused = await escalator.get(
            "/v1/escalations", headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 401
        assert "never" not in (await lea.get("/console/tokens")).text

        for wrong, reason in [
            ("", "missing bearer token"),
            ("rrpat_0000000000000000_" + "a" * 43, "unknown token"),
            (token[:-1] + ("a" if token[-1] != "a" else "b"), "unknown token"),
            ("static-token-value", "not a personal API token"),
        ]:
            answer_ = (
                await exchange(script, wrong) if wrong else await script.post("/v1/tokens/exchange")
            )
            assert answer_.status_code == 401
            assert answer_.json()["detail"] == reason

        # Roles follow the person: an administrator makes Lea an analyst, the next exchange says so.
        changed = await lea.put(
            "/v1/console/users/lea@example.org",
            json={"name": "Lea Lead", "roles": ["analyst"], "password": "correct horse battery"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert changed.status_code == 200
        again = (await exchange(script, token)).json()["access_token"]
        assert stack.escalator.state.context.tokens.authenticate(again).roles == {"analyst"}

        # Another person cannot revoke Lea's token; Lea can, once.
        revoke_url = f"/console/tokens/{token_id}/revoke"
        other = await ana.post(
            revoke_url, data={"csrf_token": csrf_of(await ana.get("/console/tokens"))}
        )
        assert other.status_code == 404
        assert (await exchange(script, token)).status_code == 200
        assert (await lea.post(revoke_url, data={})).status_code == 403
        revoked = await lea.post(revoke_url, data={"csrf_token": csrf})
        assert revoked.status_code == 303
        assert "revoked" in (await lea.get(revoked.headers["location"])).text
        after = await exchange(script, token)
        assert after.status_code == 401
        assert after.json()["detail"] == "token revoked"


async def test_a_disabled_person_token_is_refused(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as sam,
    ):
        await signed_in_person(sam, "sam@example.org", "Sam", ["support_manager"])
        page = await sam.get("/console/tokens")
        created = await sam.post(
            "/console/tokens", data={"csrf_token": csrf_of(page), "name": "report bot"}
        )
        shown = re.search(r'<code id="new-token">(rrpat_[^<]+)</code>', created.text)
        assert shown is not None
        assert (await exchange(sam, shown.group(1))).status_code == 200
        disabled = await sam.put(
            "/v1/console/users/sam@example.org",
            json={
                "name": "Sam",
                "roles": ["support_manager"],
                "password": "correct horse battery",
                "disabled": True,
            },
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        assert disabled.status_code == 200
        refused = await exchange(sam, shown.group(1))
        assert refused.status_code == 401
        assert refused.json()["detail"] == "the token's person is disabled"
