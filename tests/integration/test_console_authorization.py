"""Every console page and action, found from the app's own routes, has an access rule here, and
the running console keeps to it: a visitor without a session (or with a script's token as the
cookie) is sent to sign in (a live fragment answers 401); each of the protocol's roles is let
through where the rule allows it and refused with 403 where it does not; every form refuses a
post without its CSRF token. A console route with no rule here fails the test, so a new page or
action cannot ship unguarded.

The rules are the protocol's, written out, not read from the code under test: the escalator's
acknowledgers, the register's readers and writers, the review's readers and deciders, the
feedback's reviewers. Fuzzed review forms get a 4xx page with a message, never a 5xx.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.settings import (
    ConsoleOidcSettings,
    ConsoleSettings,
    ReportingSettings,
    ScheduleSettings,
)
from riskrelay.shared.events import Role
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings, OidcSettings
from tests.integration.test_console import (
    ADMIN_TOKEN,
    console_client,
    console_stack,
    csrf_of,
    signed_in_person,
)

pytestmark = pytest.mark.integration

PEOPLE = frozenset(role for role in Role if role is not Role.UPSTREAM)
# Administrators pass every service's role check.
ACKNOWLEDGERS = frozenset(
    {Role.AGENT, Role.TEAM_LEAD, Role.SUPPORT_MANAGER, Role.SUPPORT_DIRECTOR, Role.RISK_MANAGEMENT}
) | {Role.ADMIN}
REGISTER_READERS = frozenset(
    {Role.ANALYST, Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.SUPPORT_DIRECTOR}
) | {Role.ADMIN}
REGISTER_WRITERS = frozenset({Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER}) | {Role.ADMIN}
REVIEW_READERS = PEOPLE - {Role.AGENT}
REVIEW_DECIDERS = frozenset(
    {Role.SUPPORT_MANAGER, Role.SUPPORT_DIRECTOR, Role.RISK_MANAGEMENT, Role.ADMIN}
)
# Judging a detection is a reviewer's call; anyone in the chain may report a missed risk.
FEEDBACK_REVIEWERS = PEOPLE - {Role.AGENT}


@dataclass(frozen=True)
class Rule:
    """Who may use a console route. ``open``: anyone (the sign-in flow and the page script);
    otherwise a signed-in person holding one of ``roles``. ``fields``: a form that passes the
    console's own checks, so the role check (the console's or the owning service's) is what
    answers; ``query``: the same for a page."""

    roles: frozenset[Role] = PEOPLE
    open: bool = False
    fragment: bool = False
    fields: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)


OPEN = Rule(open=True)
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/console"): OPEN,  # a redirect to the queue
    ("GET", "/console/login"): OPEN,
    ("POST", "/console/login"): Rule(
        open=True, fields={"email": "someone@example.org", "password": "not the password"}
    ),
    ("POST", "/console/logout"): OPEN,
    ("GET", "/console/oidc/start"): OPEN,
    ("GET", "/console/oidc/callback"): OPEN,
    ("GET", "/console/static/console-live.js"): OPEN,
    ("GET", "/console/queue"): Rule(),
    ("GET", "/console/queue/live"): Rule(fragment=True),
    ("POST", "/console/escalations/{escalation_id}/ack"): Rule(ACKNOWLEDGERS),
    ("POST", "/console/escalations/{escalation_id}/decision"): Rule(
        ACKNOWLEDGERS, fields={"decision": "confirmed"}
    ),
    ("GET", "/console/links/ack"): Rule(ACKNOWLEDGERS, query={"token": "not-a-link"}),
    ("POST", "/console/links/ack"): Rule(ACKNOWLEDGERS, fields={"token": "not-a-link"}),
    ("GET", "/console/risks/{risk_id}"): Rule(),
    ("GET", "/console/risks/{risk_id}/live"): Rule(fragment=True),
    ("GET", "/console/register"): Rule(REGISTER_READERS),
    ("GET", "/console/register/export.csv"): Rule(REGISTER_READERS),
    ("GET", "/console/register/{risk_id}"): Rule(REGISTER_READERS),
    ("POST", "/console/register/{risk_id}/edit"): Rule(
        REGISTER_WRITERS, fields={"owner": "rita@example.org"}
    ),
    ("POST", "/console/register/{risk_id}/transition"): Rule(
        REGISTER_WRITERS, fields={"target": "monitoring"}
    ),
    ("GET", "/console/review"): Rule(REVIEW_READERS),
    ("GET", "/console/review/live"): Rule(REVIEW_READERS, fragment=True),
    ("POST", "/console/review/{risk_id}/decide"): Rule(
        REVIEW_DECIDERS, fields={"agenda": "level_1_2", "action": "monitored"}
    ),
    ("GET", "/console/feedback"): Rule(),
    ("GET", "/console/feedback/risks/{risk_id}"): Rule(),
    ("GET", "/console/feedback/tickets/{ticket_id}"): Rule(),
    ("POST", "/console/feedback"): Rule(
        FEEDBACK_REVIEWERS, fields={"kind": "not_a_risk", "risk_id": "risk-x"}
    ),
    ("GET", "/console/tokens"): Rule(),
    ("POST", "/console/tokens"): Rule(fields={"name": "authorization test", "days": "30"}),
    ("POST", "/console/tokens/{token_id}/revoke"): Rule(),
}


def console_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Each (method, path template) the app serves under /console, its included routers
    walked (FastAPI keeps them as included branches, not flat routes)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path != "/console" and not path.startswith("/console/"):
            continue
        assert route.methods, f"{path}: a console route answers named methods only"
        found |= {(method, path) for method in route.methods - {"HEAD"}}
    return found


def with_provider_sign_in(app: FastAPI, folder: Path) -> FastAPI:
    """The same reporting with OpenID Connect configured (created, never started): the
    routes the provider sign-in adds."""
    settings: ReportingSettings = app.state.context.settings
    secret = folder / "oidc-client-secret"
    secret.write_text("route-listing-secret\n")
    return create_reporting(
        settings.model_copy(
            update={
                "auth": settings.auth.model_copy(
                    update={"oidc": OidcSettings(issuer="https://idp.example.org", audiences=["c"])}
                ),
                "console": ConsoleSettings(
                    oidc=ConsoleOidcSettings(
                        client_id="c",
                        client_secret_file=secret,
                        redirect_url="https://console.example.org/console/oidc/callback",
                    )
                ),
                "schedule": ScheduleSettings(enabled=False),
            }
        )
    )


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "risk-x", path)


def refused_for_the_role(answer: httpx.Response) -> bool:
    return answer.status_code == 403


def sent_to_sign_in(answer: httpx.Response) -> bool:
    return answer.status_code == 303 and answer.headers["location"].startswith("/console/login")


async def test_every_console_route_has_a_rule_and_keeps_to_it(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with console_stack(
        kafka_settings, database_settings, db_schema, tmp_path, with_register=True
    ) as stack:
        served = console_routes(stack.reporting)
        every = served | console_routes(with_provider_sign_in(stack.reporting, tmp_path))
        assert not every - RULES.keys(), (
            f"console routes without an access rule: {every - RULES.keys()}"
        )
        assert not RULES.keys() - every, f"rules of routes that are gone: {RULES.keys() - every}"
        assert len(served) >= 25

        async def visit(
            client: httpx.AsyncClient, method: str, path: str, cookie: str | None = None
        ) -> httpx.Response:
            rule = RULES[(method, path)]
            return await client.request(
                method,
                concrete(path),
                params=rule.query or None,
                headers={"Cookie": cookie} if cookie else None,
            )

        # No session, or a script's token where the session belongs: sent to sign in.
        async with console_client(stack.reporting) as visitor:
            for method, path in sorted(served):
                rule = RULES[(method, path)]
                for cookie in (None, f"riskrelay_console={ADMIN_TOKEN}"):
                    answer = await visit(visitor, method, path, cookie)
                    if rule.open:
                        assert answer.status_code < 500, (method, path, answer.status_code)
                        if method == "POST":  # the sign-in forms: their CSRF token first
                            assert refused_for_the_role(answer), (method, path)
                    elif rule.fragment:
                        assert answer.status_code == 401, (method, path, answer.status_code)
                    else:
                        assert sent_to_sign_in(answer), (method, path, answer.status_code)

        # Each role, signed in: through where the rule allows, 403 where it does not, and
        # never a form without its CSRF token.
        people: dict[Role, httpx.AsyncClient] = {}
        try:
            for role in sorted(PEOPLE):
                client = console_client(stack.reporting)
                people[role] = client
                await signed_in_person(client, f"{role.value}@example.org", role.value, [role])
            for role, client in people.items():
                csrf = csrf_of(await client.get("/console/tokens"))
                for method, path in sorted(served):
                    rule = RULES[(method, path)]
                    if rule.open:
                        continue
                    url = concrete(path)
                    if method == "POST":
                        forged = await client.post(url, data={**rule.fields, "csrf_token": "x"})
                        assert refused_for_the_role(forged), (role, path, forged.status_code)
                        assert "security token" in forged.text, (role, path)
                        answer = await client.post(url, data={**rule.fields, "csrf_token": csrf})
                    else:
                        answer = await visit(client, method, path)
                    where = (
                        role.value,
                        method,
                        path,
                        answer.status_code,
                        re.findall(r"<p[^>]*>(.*?)</p>", answer.text),
                    )
                    assert answer.status_code < 500, where
                    assert not sent_to_sign_in(answer), where
                    if role in rule.roles:
                        assert not refused_for_the_role(answer), where
                    else:
                        assert refused_for_the_role(answer), where
                        if not rule.fragment:
                            assert "Not allowed" in answer.text, where
        finally:
            for client in people.values():
                await client.aclose()


async def test_fuzzed_review_forms_get_a_page_with_a_message_never_a_server_error(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as manager,
    ):
        await signed_in_person(manager, "sam@example.org", "Sam Manager", ["support_manager"])
        csrf = csrf_of(await manager.get("/console/review"))
        text = st.text(max_size=40)
        samples: list[dict[str, str]] = []

        @settings(
            max_examples=60,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        )
        @given(
            agenda=st.one_of(
                st.sampled_from(["level_1_2", "level_3_awaiting_review", "overdue_review"]), text
            ),
            action=st.one_of(
                st.sampled_from(
                    [
                        "monitored",
                        "confirmed",
                        "not_confirmed",
                        "level_changed",
                        "reviewed",
                        "moved",
                    ]
                ),
                text,
            ),
            level=text,
            target=text,
            etag=text,
            note=text,
            risk_id=st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
        )
        def fuzz(**fields: str) -> None:
            samples.append(fields)

        fuzz()
        for fields in samples:
            risk_id = fields.pop("risk_id")
            answer = await manager.post(
                f"/console/review/{risk_id}/decide", data={"csrf_token": csrf, **fields}
            )
            assert 400 <= answer.status_code < 500, (fields, answer.status_code)
            assert '<p class="error" role="alert">' in answer.text, fields
