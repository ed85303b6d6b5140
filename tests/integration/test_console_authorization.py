"""Every console page and action, found from the app's own routes, is closed to a visitor
without a session, every form refuses a post without its CSRF token, the weekly review is
closed to roles outside it, and fuzzed review forms get a 4xx page with a message, never a 5xx.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.test_console import (
    console_client,
    console_stack,
    csrf_of,
    signed_in_person,
)

pytestmark = pytest.mark.integration

# Open by design: the sign-in form and the console's script.
OPEN_GETS = {"/console/login", "/console/static/console-live.js"}
# Fragments answer a signed-out poll with 401 (the page's script says so), not a redirect.
FRAGMENTS = re.compile(r"/live$")


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "risk-x", path)


async def test_no_console_page_or_action_is_reachable_without_a_session_role_or_csrf(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as visitor,
        console_client(stack.reporting) as agent,
        console_client(stack.reporting) as manager,
    ):
        # The console's pages and actions (its routes are left out of the OpenAPI document).
        routes = [
            ("GET", "/console/login"),
            ("POST", "/console/login"),
            ("POST", "/console/logout"),
            ("GET", "/console/static/console-live.js"),
            ("GET", "/console/queue"),
            ("GET", "/console/queue/live"),
            ("POST", "/console/escalations/{escalation_id}/ack"),
            ("POST", "/console/escalations/{escalation_id}/decision"),
            ("GET", "/console/risks/{risk_id}"),
            ("GET", "/console/risks/{risk_id}/live"),
            ("GET", "/console/register"),
            ("GET", "/console/register/export.csv"),
            ("GET", "/console/register/{risk_id}"),
            ("POST", "/console/register/{risk_id}/edit"),
            ("POST", "/console/register/{risk_id}/transition"),
            ("GET", "/console/review"),
            ("GET", "/console/review/live"),
            ("POST", "/console/review/{risk_id}/decide"),
        ]
        for method, path in routes:
            url = concrete(path)
            answer = await visitor.request(method, url)
            if method == "GET" and path in OPEN_GETS:
                assert answer.status_code == 200, url
            elif method == "GET" and FRAGMENTS.search(path):
                assert answer.status_code == 401, url
            elif method == "GET" or path not in {"/console/login", "/console/logout"}:
                assert answer.status_code == 303, (method, url, answer.status_code)
                assert answer.headers["location"].startswith("/console/login"), url
            else:
                assert answer.status_code == 403, (method, url)

        await signed_in_person(agent, "ann@example.org", "Ann Agent", ["agent"])
        await signed_in_person(manager, "sam@example.org", "Sam Manager", ["support_manager"])
        posts = [path for method, path in routes if method == "POST" and "login" not in path]
        for path in posts:
            refused = await manager.post(concrete(path), data={"note": "no token"})
            assert refused.status_code == 403, path
            assert "security token" in refused.text, path

        assert (await agent.get("/console/review")).status_code == 403
        assert (await agent.get("/console/review/live")).status_code == 403
        page = await manager.get("/console/review")
        assert page.status_code == 200
        agent_csrf = csrf_of(await agent.get("/console/queue"))
        agent_post = await agent.post(
            "/console/review/risk-x/decide",
            data={"csrf_token": agent_csrf, "agenda": "level_1_2", "action": "monitored"},
        )
        assert agent_post.status_code == 403
        assert "Not allowed" in agent_post.text

        csrf = csrf_of(page)
        text = st.text(max_size=40)

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

        samples: list[dict[str, str]] = []
        fuzz()
        for fields in samples:
            risk_id = fields.pop("risk_id")
            answer = await manager.post(
                f"/console/review/{risk_id}/decide", data={"csrf_token": csrf, **fields}
            )
            assert 400 <= answer.status_code < 500, (fields, answer.status_code)
            assert '<p class="error" role="alert">' in answer.text, fields
