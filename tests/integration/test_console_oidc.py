"""Console sign-in through a real OpenID Connect provider: a provider built with Authlib's server
side (tests/oidc_provider.py) runs on localhost over HTTP, requires PKCE and a nonce, and signs
RS256 ID and access tokens with keys published in its JWKS. Reporting signs people in through it;
the escalator, on the real broker and PostgreSQL, accepts the provider's tokens beside the
console's own HS256 ones, and both follow a key rotation."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from fastapi import FastAPI

from riskrelay.escalator.app import create_app as create_escalator
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.settings import (
    ConsoleOidcSettings,
    ConsoleSettings,
    ReportingSettings,
    ScheduleSettings,
)
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings, OidcSettings
from riskrelay.testing import eventually, running
from tests.integration.test_console import POLICY, auth_files, csrf_of, served_app
from tests.oidc_provider import API_AUDIENCE, Client, Provider, running_provider

pytestmark = pytest.mark.integration

CLIENT_ID = "riskrelay-console"
CLIENT_SECRET = "console-client-secret-0123456789"
CALLBACK = "http://reporting/console/oidc/callback"


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider() as provider:
        provider.clients[CLIENT_ID] = Client(CLIENT_ID, CLIENT_SECRET, [CALLBACK])
        provider.people["sub-lea"] = {
            "email": "Lea@Example.org",
            "name": "Lea Lead",
            "groups": ["staff", "risk-leads"],
        }
        provider.people["sub-ana"] = {
            "email": "ana@example.org",
            "name": "Ana",
            "groups": ["staff"],
        }
        yield provider


@dataclass
class Stack:
    reporting: FastAPI
    escalator_url: str
    reporting_settings: ReportingSettings


@contextlib.asynccontextmanager
async def oidc_stack(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    folder: Path,
    provider: Provider,
    local_sign_in: bool = True,
) -> AsyncIterator[Stack]:
    local = auth_files(folder)
    auth = local.model_copy(
        update={
            "oidc": OidcSettings(
                issuer=provider.issuer,
                audiences=[CLIENT_ID, API_AUDIENCE],
                roles_claim="groups",
                role_map={"risk-leads": "team_lead"},
                # Refetch at once on an unknown key id: the test rotates within seconds.
                jwks_min_interval_seconds=0,
            )
        }
    )
    secret = folder / "oidc-client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    escalator = create_escalator(
        EscalatorSettings(
            kafka=kafka_settings,
            database=database_settings.model_copy(update={"schema_name": f"{db_schema}_esc"}),
            policy_path=policy,
            auth=auth,
        )
    )
    async with served_app(escalator) as escalator_url:
        settings = ReportingSettings(
            kafka=kafka_settings,
            database=database_settings.model_copy(update={"schema_name": f"{db_schema}_rep"}),
            auth=auth,
            schedule=ScheduleSettings(enabled=False),
            console=ConsoleSettings(
                escalator_url=escalator_url,
                local_sign_in=local_sign_in,
                oidc=ConsoleOidcSettings(
                    client_id=CLIENT_ID,
                    client_secret_file=secret,
                    redirect_url=CALLBACK,
                    provider_name="Test IdP",
                    post_logout_redirect_url="http://reporting/console/login",
                ),
            ),
        )
        reporting = create_reporting(settings)
        async with running(reporting):
            yield Stack(reporting, escalator_url, settings)


def browser(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting")


async def sign_in_through_provider(
    console: httpx.AsyncClient, provider: Provider, subject: str, tamper_verifier: bool = False
) -> httpx.Response:
    """The browser's round trip: console start, the provider's authorization endpoint (the
    person already signed in there), back to the console's callback."""
    start = await console.get("/console/oidc/start", params={"next": "/console/queue"})
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    asked = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(f"{provider.issuer}/authorize?")
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["client_id"] == [CLIENT_ID]
    assert asked["redirect_uri"] == [CALLBACK]
    assert "nonce" in asked
    assert "code_verifier" not in asked
    flow_cookie = start.headers["set-cookie"].lower()
    assert "httponly" in flow_cookie
    assert "samesite=lax" in flow_cookie
    if tamper_verifier:
        kept = next(c for c in console.cookies.jar if c.name == "riskrelay_oidc")
        pending = json.loads(base64.urlsafe_b64decode(str(kept.value)))
        pending["v"] = secrets.token_urlsafe(64)
        kept.value = base64.urlsafe_b64encode(json.dumps(pending).encode()).decode()
    provider.signed_in = subject
    async with httpx.AsyncClient() as at_provider:
        redirected = await at_provider.get(authorize)
    assert redirected.status_code == 302, redirected.text
    back = redirected.headers["location"]
    assert back.startswith(CALLBACK + "?")
    return await console.get(back.removeprefix("http://reporting"))


def session_token(console: httpx.AsyncClient) -> str:
    token = console.cookies.get("riskrelay_console")
    assert token is not None
    return token


def api_access_token(provider: Provider) -> str:
    """An access token for riskrelay's API straight from the provider (RFC 9068, RS256), as a
    script signed in at the provider gets one."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    provider.signed_in = "sub-lea"
    code_answer = httpx.get(
        f"{provider.issuer}/authorize",
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": CALLBACK,
            "scope": "openid email profile",
            "state": "s",
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    code = parse_qs(urlsplit(code_answer.headers["location"]).query)["code"][0]
    tokens = httpx.post(
        f"{provider.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert tokens.status_code == 200, tokens.text
    access: str = tokens.json()["access_token"]
    return access


async def test_people_sign_in_through_the_provider_and_every_service_accepts_its_tokens(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
    provider: Provider,
) -> None:
    async with (
        oidc_stack(kafka_settings, database_settings, db_schema, tmp_path, provider) as stack,
        browser(stack.reporting) as lea,
        httpx.AsyncClient(base_url=stack.escalator_url) as escalator,
    ):
        login = await lea.get("/console/login")
        assert 'id="oidc-sign-in"' in login.text
        assert "Sign in with Test IdP" in login.text

        signed_in = await sign_in_through_provider(lea, provider, "sub-lea")
        assert signed_in.status_code == 200, signed_in.text
        assert 'http-equiv="refresh" content="0;url=/console/queue"' in signed_in.text
        cookie = next(
            c
            for c in signed_in.headers.get_list("set-cookie")
            if c.startswith("riskrelay_console=")
        ).lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        # The code was exchanged with the client's secret and the PKCE verifier.
        exchanged = provider.token_requests[-1]
        assert exchanged["grant_type"] == "authorization_code"
        assert len(exchanged["code_verifier"]) >= 43

        queue = await lea.get("/console/queue")
        assert queue.status_code == 200, queue.text
        assert "Lea Lead" in queue.text
        assert "team_lead" in queue.text

        # The session holds the provider's RS256 ID token; the escalator verifies it itself.
        id_token = session_token(lea)
        assert jwt.get_unverified_header(id_token)["alg"] == "RS256"
        as_lea = {"Authorization": f"Bearer {id_token}"}
        assert (await escalator.get("/v1/escalations", headers=as_lea)).status_code == 200
        # So is an access token the provider issues for riskrelay's API audience.
        access = api_access_token(provider)
        as_script = {"Authorization": f"Bearer {access}"}
        assert (await escalator.get("/v1/escalations", headers=as_script)).status_code == 200

        # An HS256 token claiming the provider's issuer is not verified with anything.
        forged = jwt.encode(
            {
                "iss": provider.issuer,
                "aud": CLIENT_ID,
                "sub": "sub-lea",
                "email": "lea@example.org",
                "groups": ["risk-leads"],
                "iat": int(time.time()),
                "exp": int(time.time()) + 600,
            },
            secrets.token_urlsafe(32),
            algorithm="HS256",
            headers={"kid": jwt.get_unverified_header(id_token)["kid"]},
        )
        refused = await escalator.get(
            "/v1/escalations", headers={"Authorization": f"Bearer {forged}"}
        )
        assert refused.status_code == 401
        assert "algorithm" in refused.json()["detail"]

        # The provider rotates its signing key: new tokens verify on first use, old ones still do.
        new_kid = provider.rotate_key()
        async with browser(stack.reporting) as again:
            rotated = await sign_in_through_provider(again, provider, "sub-lea")
            assert rotated.status_code == 200, rotated.text
            rotated_token = session_token(again)
            assert jwt.get_unverified_header(rotated_token)["kid"] == new_kid
            assert (await again.get("/console/queue")).status_code == 200
            as_rotated = {"Authorization": f"Bearer {rotated_token}"}
            assert (await escalator.get("/v1/escalations", headers=as_rotated)).status_code == 200
        assert (await escalator.get("/v1/escalations", headers=as_lea)).status_code == 200

        # Another reporting instance, which took no callback, knows the provider's keys from
        # start-up and recognises the session too.
        async with running(create_reporting(stack.reporting_settings)) as other:
            elsewhere = browser(other)
            elsewhere.cookies.set("riskrelay_console", id_token)

            async def recognised() -> bool:
                return (await elsewhere.get("/console/queue")).status_code == 200

            await eventually(recognised, timeout=15)
            await elsewhere.aclose()

        # A person signed in through the provider makes an API token; it carries their roles.
        page = await lea.get("/console/tokens")
        made = await lea.post(
            "/console/tokens", data={"csrf_token": csrf_of(page), "name": "sso script"}
        )
        assert made.status_code == 201, made.text
        found = re.search(r'<code id="new-token">(rrpat_[^<]+)</code>', made.text)
        assert found is not None
        swapped = await lea.post(
            "/v1/tokens/exchange", headers={"Authorization": f"Bearer {found.group(1)}"}
        )
        assert swapped.status_code == 200, swapped.text
        who = stack.reporting.state.context.tokens.authenticate(swapped.json()["access_token"])
        assert (who.email, who.subject, sorted(who.roles)) == (
            "lea@example.org",
            "sub-lea",
            ["team_lead"],
        )

        # Sign-out ends the provider's session too (RP-initiated logout), then comes back.
        signed_out = await lea.post(
            "/console/logout", data={"csrf_token": csrf_of(await lea.get("/console/tokens"))}
        )
        assert signed_out.status_code == 303
        end_session = signed_out.headers["location"]
        assert end_session.startswith(f"{provider.issuer}/end_session?")
        asked = parse_qs(urlsplit(end_session).query)
        assert asked["id_token_hint"] == [id_token]
        assert asked["client_id"] == [CLIENT_ID]
        assert asked["post_logout_redirect_uri"] == ["http://reporting/console/login"]
        assert lea.cookies.get("riskrelay_console") is None
        async with httpx.AsyncClient() as at_provider:
            back = await at_provider.get(end_session)
        assert back.headers["location"] == "http://reporting/console/login"
        assert provider.signed_in is None
        assert (await lea.get("/console/queue")).status_code == 303


async def test_sign_ins_the_console_must_refuse(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
    provider: Provider,
) -> None:
    async with oidc_stack(
        kafka_settings, database_settings, db_schema, tmp_path, provider
    ) as stack:
        # A person the provider knows but whose groups map to no protocol role.
        async with browser(stack.reporting) as ana:
            refused = await sign_in_through_provider(ana, provider, "sub-ana")
            assert refused.status_code == 403
            assert "grants none of the protocol" in refused.text
            assert ana.cookies.get("riskrelay_console") is None

        # The code verifier kept in the browser does not match the challenge: the provider
        # refuses the code (PKCE), and no session starts.
        async with browser(stack.reporting) as tampered:
            failed = await sign_in_through_provider(
                tampered, provider, "sub-lea", tamper_verifier=True
            )
            assert failed.status_code == 502
            assert "did not accept this sign-in" in failed.text
            assert tampered.cookies.get("riskrelay_console") is None

        # A callback this browser did not start (login CSRF), or with a state of another flow.
        async with browser(stack.reporting) as stranger:
            unsolicited = await stranger.get("/console/oidc/callback?code=abc&state=xyz")
            assert unsolicited.status_code == 400
            await stranger.get("/console/oidc/start")
            wrong_state = await stranger.get("/console/oidc/callback?code=abc&state=xyz")
            assert wrong_state.status_code == 400
            denied_state = parse_qs(
                urlsplit((await stranger.get("/console/oidc/start")).headers["location"]).query
            )["state"][0]
            denied = await stranger.get(
                f"/console/oidc/callback?state={denied_state}&error=access_denied"
            )
            assert denied.status_code == 401
            assert "access_denied" in denied.text


async def test_with_password_sign_in_off_the_sign_in_page_goes_to_the_provider(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
    provider: Provider,
) -> None:
    async with (
        oidc_stack(
            kafka_settings, database_settings, db_schema, tmp_path, provider, local_sign_in=False
        ) as stack,
        browser(stack.reporting) as lea,
    ):
        bounced = await lea.get("/console/queue")
        assert bounced.headers["location"] == "/console/login?next=%2Fconsole%2Fqueue"
        login = await lea.get(bounced.headers["location"])
        assert login.status_code == 303
        assert login.headers["location"] == "/console/oidc/start?next=%2Fconsole%2Fqueue"
        # Any console page gives the browser its CSRF cookie; the password form is refused.
        page = await lea.get("/console/oidc/callback")
        assert page.status_code == 400
        password = await lea.post(
            "/console/login",
            data={
                "csrf_token": lea.cookies.get("riskrelay_csrf") or "",
                "email": "lea@example.org",
                "password": "correct horse battery",
            },
        )
        assert password.status_code == 403
        assert "Password sign-in is off" in password.text
        assert (await sign_in_through_provider(lea, provider, "sub-lea")).status_code == 200
        assert (await lea.get("/console/queue")).status_code == 200
