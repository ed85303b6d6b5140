"""Console sign-in limits on the real broker and PostgreSQL: two reporting instances share one
database and count the same failed attempts, per account and per client address."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.settings import ConsoleSettings, ReportingSettings, ScheduleSettings
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import running
from tests.integration.test_console import ADMIN_TOKEN, add_person, auth_files, sign_in

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def reporting_instance(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, auth: AuthSettings
) -> FastAPI:
    return create_reporting(
        ReportingSettings(
            kafka=kafka_settings,
            database=database_settings,
            auth=auth,
            schedule=ScheduleSettings(enabled=False),
            console=ConsoleSettings(
                sign_in_failures_per_account=3,
                sign_in_failures_per_address=5,
                sign_in_window_minutes=15,
            ),
        )
    )


@contextlib.asynccontextmanager
async def two_instances(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, folder: Path
) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    auth = auth_files(folder)
    first = reporting_instance(kafka_settings, database_settings, auth)
    second = reporting_instance(kafka_settings, database_settings, auth)
    async with running(first), running(second):
        yield first, second


def browser(app: FastAPI, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 50_000)),
        base_url="http://reporting",
    )


def retry_after(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    assert "Too many sign-in attempts" in response.text
    assert re.search(r"Try again in \d+ min, after \d\d:\d\d UTC", response.text), response.text
    assert "riskrelay_console=" not in response.headers.get("set-cookie", "")
    return int(response.headers["retry-after"])


async def attempt(app: FastAPI, address: str, email: str, password: str) -> httpx.Response:
    """One sign-in from a fresh browser (no session yet) at ``address``."""
    async with browser(app, address) as client:
        return await sign_in(client, email, password)


async def test_failed_sign_ins_are_limited_per_account_and_address_across_instances(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    tmp_path: Path,
) -> None:
    async with two_instances(kafka_settings, database_settings, tmp_path) as (first, second):
        async with browser(first, "10.9.9.9") as admin:
            for email, name in [("lea@example.org", "Lea Lead"), ("ana@example.org", "Ana A")]:
                assert (await add_person(admin, email, name, ["team_lead"])).status_code == 201

        # Three failures on Lea's account, split over the two instances.
        assert (await attempt(first, "10.0.0.1", "lea@example.org", "wrong 1")).status_code == 401
        assert (await attempt(second, "10.0.0.1", "LEA@example.org", "wrong 2")).status_code == 401
        assert (await attempt(first, "10.0.0.1", "lea@example.org", "wrong 3")).status_code == 401
        # The fourth attempt is refused on either instance, from any address, before the
        # password is checked: even the right one.
        wait = retry_after(await attempt(second, "10.0.0.1", "lea@example.org", PASSWORD))
        assert 14 * 60 < wait <= 15 * 60
        assert retry_after(await attempt(first, "10.0.0.2", "lea@example.org", PASSWORD)) <= wait

        # Another account from the same address still signs in: a success is not a failure.
        assert (await attempt(first, "10.0.0.1", "ana@example.org", PASSWORD)).status_code == 303
        # An unknown account counts like a known one; two more reach the address's limit of 5.
        assert (await attempt(first, "10.0.0.1", "nobody@example.org", "guess")).status_code == 401
        assert (await attempt(second, "10.0.0.1", "ana@example.org", "wrong")).status_code == 401
        retry_after(await attempt(first, "10.0.0.1", "ana@example.org", PASSWORD))
        # Another address is limited only on Lea's account.
        assert (await attempt(second, "10.0.0.2", "ana@example.org", PASSWORD)).status_code == 303

        recorded = await first.state.context.db.fetch(
            "SELECT email, client_address, outcome, failure FROM console_sign_in_attempts"
            " ORDER BY attempt_id"
        )
        assert [
            (r["email"], r["client_address"], r["outcome"], r["failure"]) for r in recorded
        ] == [
            ("lea@example.org", "10.0.0.1", "failed", "wrong_password"),
            ("lea@example.org", "10.0.0.1", "failed", "wrong_password"),
            ("lea@example.org", "10.0.0.1", "failed", "wrong_password"),
            ("ana@example.org", "10.0.0.1", "succeeded", None),
            ("nobody@example.org", "10.0.0.1", "failed", "unknown_account"),
            ("ana@example.org", "10.0.0.1", "failed", "wrong_password"),
            ("ana@example.org", "10.0.0.2", "succeeded", None),
        ]
        async with browser(second, "10.9.9.9") as admin:
            failures = await admin.get(
                "/v1/console/sign-in-failures",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert (await admin.get("/v1/console/sign-in-failures")).status_code == 401
        assert failures.status_code == 200
        assert [f["failure"] for f in failures.json()] == [
            "wrong_password",
            "unknown_account",
            "wrong_password",
            "wrong_password",
            "wrong_password",
        ]


async def test_concurrent_attempts_on_two_instances_cannot_slip_past_the_limit(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    tmp_path: Path,
) -> None:
    async with two_instances(kafka_settings, database_settings, tmp_path) as (first, second):
        clients = [browser(first if n % 2 else second, f"10.1.0.{n}") for n in range(8)]
        async with contextlib.AsyncExitStack() as stack:
            for client in clients:
                await stack.enter_async_context(client)
            answers = await asyncio.gather(
                *(
                    sign_in(client, "target@example.org", f"guess {n}")
                    for n, client in enumerate(clients)
                )
            )
        assert sorted(answer.status_code for answer in answers) == [401] * 3 + [429] * 5
