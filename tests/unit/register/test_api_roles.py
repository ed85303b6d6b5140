"""Every register endpoint denies by default: no token is 401, a token of a role the endpoint
does not serve is 403. Parametrized over the app's own routes, so a new endpoint is covered
(and must declare its roles) without editing this test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from riskrelay.register.api import READ_ROLES, WRITE_ROLES
from riskrelay.register.app import create_app
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.events import Role
from riskrelay.shared.settings import AuthSettings

pytestmark = pytest.mark.unit

# From the app's OpenAPI document: FastAPI >= 0.165 mounts included routers lazily, so
# ``app.routes`` does not list them; the document lists every route of the app's routers.
_API_ROUTES = sorted(
    (method.upper(), path)
    for path, operations in create_app(RegisterSettings()).openapi()["paths"].items()
    if path.startswith("/v1/")
    for method in operations
)
WRITES = {"PATCH", "POST", "PUT", "DELETE"}
TOKENS = {role.value: f"token-of-{role.value}" for role in Role}


def test_the_api_is_what_the_issue_lists() -> None:
    assert _API_ROUTES == [
        ("GET", "/v1/reviews/overdue"),
        ("GET", "/v1/risks"),
        ("GET", "/v1/risks/export.csv"),
        ("GET", "/v1/risks/{risk_id}"),
        ("PATCH", "/v1/risks/{risk_id}"),
        ("POST", "/v1/risks/{risk_id}/transitions"),
    ]


def test_roles_are_a_deliberate_choice() -> None:
    assert set(WRITE_ROLES) == {Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER}
    assert set(WRITE_ROLES) <= set(READ_ROLES)
    assert Role.ANALYST in READ_ROLES
    assert {Role.AGENT, Role.TEAM_LEAD, Role.UPSTREAM}.isdisjoint(READ_ROLES)


def _refused_roles(method: str) -> list[Role]:
    allowed = set(WRITE_ROLES if method in WRITES else READ_ROLES) | {Role.ADMIN}
    return [role for role in Role if role not in allowed]


CASES = [
    (method, path, role) for method, path in _API_ROUTES for role in [None, *_refused_roles(method)]
]


@pytest.mark.parametrize(
    ("method", "path", "role"),
    CASES,
    ids=[f"{m} {p} {r.value if r else 'no-token'}" for m, p, r in CASES],
)
async def test_every_endpoint_refuses_missing_and_wrong_tokens(
    tmp_path: Path, method: str, path: str, role: Role | None
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    # Not started: if authorization let the request through, the handler would fail on the
    # missing database with a 500, never with the 401/403 asserted here.
    app = create_app(RegisterSettings(auth=AuthSettings(tokens_file=tokens)))
    url = re.sub(r"\{[^}]+\}", "risk-1", path)
    headers = {"If-Match": '"v1"'}
    if role is not None:
        headers["Authorization"] = f"Bearer {TOKENS[role.value]}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://register"
    ) as client:
        body = {"target": "escalated"} if path.endswith("/transitions") else {}
        response = await client.request(
            method, url, headers=headers, json=body if method in WRITES else None
        )
    assert response.status_code == (401 if role is None else 403), response.text


async def test_an_unknown_token_is_401(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(TOKENS))
    app = create_app(RegisterSettings(auth=AuthSettings(tokens_file=tokens)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://register"
    ) as client:
        response = await client.get("/v1/risks", headers={"Authorization": "Bearer guessed-it"})
    assert response.status_code == 401
