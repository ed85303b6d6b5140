"""Personal API tokens on the real broker and PostgreSQL: a person creates a token on the
console page, a script exchanges it at reporting for a signed token the escalator accepts, and
revoking the token (or disabling the person) stops the next exchange. Failed exchanges are
limited per client address, with the failed sign-ins."""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.settings import ConsoleSettings, ReportingSettings, ScheduleSettings
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import running
from tests.integration.test_console import (
    ADMIN_TOKEN,
    auth_files,
    console_client,
    console_stack,
    csrf_of,
    sign_in,
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


@dataclass
class MovableClock:
    """Reporting's clock, moved by the test instead of waiting on the wall clock."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def from_address(app: FastAPI, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 50_000)),
        base_url="http://reporting",
    )


def unknown_token() -> str:
    return f"rrpat_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


async def test_failed_exchanges_are_limited_per_address_until_they_leave_the_window(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    reporting = create_reporting(
        ReportingSettings(
            kafka=kafka_settings,
            database=database_settings.model_copy(update={"schema_name": f"{db_schema}_rep"}),
            auth=auth_files(tmp_path),
            schedule=ScheduleSettings(enabled=False),
            console=ConsoleSettings(sign_in_failures_per_address=3, sign_in_window_minutes=15),
        )
    )
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    clock = MovableClock(start)
    reporting.state.context.state["clock"] = clock
    async with (
        running(reporting),
        from_address(reporting, "10.0.0.9") as lea,
        from_address(reporting, "10.0.0.1") as script,
        from_address(reporting, "10.0.0.2") as elsewhere,
    ):
        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])
        page = await lea.get("/console/tokens")
        created = await lea.post(
            "/console/tokens", data={"csrf_token": csrf_of(page), "name": "nightly export"}
        )
        shown = re.search(r'<code id="new-token">(rrpat_[^<]+)</code>', created.text)
        assert shown is not None
        token = shown.group(1)

        # Three unknown tokens from one address, a minute apart: each a 401.
        guesses = [unknown_token() for _ in range(3)]
        for guess in guesses:
            answer = await exchange(script, guess)
            assert answer.status_code == 401, answer.text
            assert answer.json()["detail"] == "unknown token"
            clock.current += timedelta(minutes=1)

        # The fourth is refused before the token is looked at, even Lea's valid token, until
        # the first failure leaves the 15-minute window.
        refused = await exchange(script, token)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/json"
        assert int(refused.headers["retry-after"]) == 12 * 60
        detail = refused.json()["detail"]
        assert detail.startswith("Too many failed sign-ins and token exchanges from this address.")
        retry_at = start + timedelta(minutes=15)
        assert f"Try again in 12 min, after {retry_at:%H:%M} UTC" in detail
        # The address's failures count for password sign-in too.
        assert (
            await sign_in(script, "lea@example.org", "correct horse battery")
        ).status_code == 429
        # A bearer that is no personal token is never looked up, so never counted or limited.
        assert (await exchange(script, "static-token-value")).status_code == 401
        # Another address is not limited, and its success does not count.
        assert (await exchange(elsewhere, token)).status_code == 200

        clock.current = retry_at - timedelta(seconds=1)
        assert int((await exchange(script, token)).headers["retry-after"]) == 1
        clock.current = retry_at
        again = await exchange(script, token)
        assert again.status_code == 200, again.text
        assert again.json()["access_token"]

        # A success is not a failure: one more failure brings the address back to the limit,
        # and the wait follows the oldest failure still in the window.
        assert (await exchange(script, unknown_token())).status_code == 401
        wait = await exchange(script, token)
        assert wait.status_code == 429
        assert int(wait.headers["retry-after"]) == 60

        recorded = await reporting.state.context.db.fetch(
            "SELECT email, client_address, outcome, failure FROM console_sign_in_attempts"
            " WHERE client_address <> '10.0.0.9' ORDER BY attempt_id"
        )
        token_account = "rrpat_" + token.split("_")[1]
        assert [
            (r["email"], r["client_address"], r["outcome"], r["failure"]) for r in recorded
        ] == [
            *[
                ("rrpat_" + guess.split("_")[1], "10.0.0.1", "failed", "unknown_token")
                for guess in guesses
            ],
            (token_account, "10.0.0.2", "succeeded", None),
            (token_account, "10.0.0.1", "succeeded", None),
            (recorded[-1]["email"], "10.0.0.1", "failed", "unknown_token"),
        ]
