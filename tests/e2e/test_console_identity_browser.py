"""Sign-in in Debian's Chromium, driven by Playwright: a person signs in through an OpenID Connect
provider on another site (the test's Authlib provider on ``localhost``, the console on
``127.0.0.1``), so the browser itself applies the cookies' SameSite rules on the way back;
they make a personal API token and revoke it; and repeated wrong passwords meet the sign-in
limit's page. Screenshots: ``tests/artifacts/console-{oidc-queue,tokens,sign-in-limited}.png``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from riskrelay.devstack import free_port
from riskrelay.escalator.app import create_app as create_escalator
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.settings import (
    ConsoleOidcSettings,
    ConsoleSettings,
    ReportingSettings,
    ScheduleSettings,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings, OidcSettings
from tests.e2e.browsing import PASSWORD, BrowserConsole, Console, on_port
from tests.e2e.test_console_browser import POLICY, screenshot
from tests.oidc_provider import Client, Provider, running_provider

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ADMIN_TOKEN = "identity-browser-admin-token"
CLIENT_ID = "riskrelay-console"
CLIENT_SECRET = "browser-client-secret-0123456789"


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider(host="localhost") as provider:
        provider.people["sub-lea"] = {
            "email": "lea@example.org",
            "name": "Lea Lead",
            "groups": ["risk-leads"],
        }
        provider.signed_in = "sub-lea"
        provider.ask_to_continue = True
        yield provider


@pytest.fixture
async def console(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
    provider: Provider,
) -> AsyncIterator[Console]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"admin": ADMIN_TOKEN}))
    keys = tmp_path / "identity-keys.json"
    keys.write_text(json.dumps({"signing_key_id": "k1", "keys": {"k1": secrets.token_urlsafe(32)}}))
    auth = AuthSettings(
        tokens_file=tokens,
        identity_keys_file=keys,
        oidc=OidcSettings(
            issuer=provider.issuer, audiences=[CLIENT_ID], role_map={"risk-leads": "team_lead"}
        ),
    )
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)

    def schema(name: str) -> DatabaseSettings:
        return database_settings.model_copy(update={"schema_name": f"{db_schema}_{name}"})

    escalator = create_escalator(
        EscalatorSettings(
            kafka=kafka_settings, database=schema("esc"), policy_path=policy, auth=auth
        )
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider.clients[CLIENT_ID] = Client(
        CLIENT_ID, CLIENT_SECRET, [f"{base}/console/oidc/callback"]
    )
    async with on_port(escalator) as escalator_url:
        reporting = create_reporting(
            ReportingSettings(
                kafka=kafka_settings,
                database=schema("rep"),
                auth=auth,
                schedule=ScheduleSettings(enabled=False),
                console=ConsoleSettings(
                    escalator_url=escalator_url,
                    sign_in_failures_per_account=3,
                    oidc=ConsoleOidcSettings(
                        client_id=CLIENT_ID,
                        client_secret_file=secret,
                        redirect_url=f"{base}/console/oidc/callback",
                        provider_name="Test IdP",
                    ),
                ),
            )
        )
        async with on_port(reporting, port):
            yield Console(base, reporting, escalator, ADMIN_TOKEN)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_sign_in_through_a_provider_tokens_and_the_sign_in_limit_in_a_real_browser(
    browser_console: BrowserConsole,
) -> None:
    base = browser_console.url
    await browser_console.add_people([("sam@example.org", "Sam Manager", ["support_manager"])])
    await signs_in_through_the_provider_and_makes_a_token(browser_console.browser, base)
    await meets_the_sign_in_limit(browser_console.browser, base)


async def signs_in_through_the_provider_and_makes_a_token(browser: Any, base: str) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{base}/console/queue")
    assert "/console/login" in page.url
    await page.click("#oidc-sign-in")
    # Out to the provider (another site), whose own page the person continues from, and back:
    # the callback's page moves on by itself, so the browser sends the SameSite=Strict session
    # cookie with that same-site navigation (a redirect would continue the provider's
    # cross-site one, and the queue would find no session).
    await page.click("#continue")
    await page.wait_for_url(f"{base}/console/queue", timeout=30_000)
    assert await page.locator("header .who").inner_text() == "Lea Lead · team_lead"
    session = next(c for c in await context.cookies() if c["name"] == "riskrelay_console")
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    await screenshot(page, "oidc-queue")

    await page.click("header >> text=API tokens")
    await page.wait_for_url(f"{base}/console/tokens")
    await page.fill("#token-name", "nightly export")
    await page.select_option("#token-days", "30")
    await page.click("button:has-text('Create token')")
    token = await page.locator("#new-token").inner_text()
    assert re.fullmatch(r"rrpat_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
    async with httpx.AsyncClient(base_url=base) as script:
        exchanged = await script.post(
            "/v1/tokens/exchange", headers={"Authorization": f"Bearer {token}"}
        )
        assert exchanged.status_code == 200, exchanged.text
    await screenshot(page, "tokens")
    await page.goto(f"{base}/console/tokens")
    assert token not in await page.content()
    await page.click("button:has-text('Revoke')")
    await page.wait_for_url(re.compile(r".*/console/tokens\?done=.*"))
    assert await page.locator("td", has_text="revoked").count() == 1
    await context.close()


async def meets_the_sign_in_limit(browser: Any, base: str) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    for attempt in range(3):
        await page.goto(f"{base}/console/login")
        await page.fill("#email", "sam@example.org")
        await page.fill("#password", f"wrong password {attempt}")
        await page.click("form[action='/console/login'] button[type=submit]")
        assert "Wrong e-mail or password." in await page.content()
    await page.goto(f"{base}/console/login")
    await page.fill("#email", "sam@example.org")
    await page.fill("#password", PASSWORD)
    async with page.expect_response(
        lambda response: response.request.method == "POST" and "/console/login" in response.url
    ) as answer:
        await page.click("form[action='/console/login'] button[type=submit]")
    assert (await answer.value).status == 429
    assert "Too many sign-in attempts" in await page.content()
    assert re.search(r"Try again in \d+ min", await page.content())
    await screenshot(page, "sign-in-limited")
    await context.close()
