"""People's signed tokens: signing, verification, rotation, and the role checks they pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import httpx
import jwt
import pytest
from fastapi import Depends, FastAPI
from pydantic import ValidationError

from riskrelay.shared.auth import (
    AuthenticationError,
    IdentityTokens,
    Person,
    Principal,
    TokenRegistry,
    require_roles,
)
from riskrelay.shared.events import Role
from riskrelay.shared.settings import AuthSettings

KEY_1 = "k" * 40
KEY_2 = "z" * 40
LEAD = Person(
    user_id="u-1", name="Lea Lead", email="lea@example.org", roles=[Role.TEAM_LEAD, Role.ANALYST]
)


class MovableClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def tokens(clock: MovableClock, *, signing: str = "k1", **keys: str) -> IdentityTokens:
    return IdentityTokens(
        keys or {"k1": KEY_1},
        issuer="riskrelay-console",
        audience="riskrelay",
        signing_key_id=signing,
        clock=clock,
    )


def test_a_signed_token_names_the_person_and_their_roles(clock: MovableClock) -> None:
    identity = tokens(clock)
    token = identity.sign(LEAD, timedelta(hours=1))
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    principal = identity.verify(token)
    assert principal.subject == "u-1"
    assert principal.name == "Lea Lead"
    assert principal.email == "lea@example.org"
    assert principal.role is Role.TEAM_LEAD
    assert principal.roles == {Role.TEAM_LEAD, Role.ANALYST}
    assert principal.actor == "lea@example.org"
    assert principal.is_person


def test_expiry_is_judged_by_the_clock(clock: MovableClock) -> None:
    identity = tokens(clock)
    token = identity.sign(LEAD, timedelta(minutes=10))
    clock.at += timedelta(minutes=10, seconds=29)
    assert identity.verify(token).subject == "u-1"  # within the leeway
    clock.at += timedelta(seconds=2)
    with pytest.raises(AuthenticationError, match="expired"):
        identity.verify(token)


def test_a_token_from_the_future_is_refused(clock: MovableClock) -> None:
    identity = tokens(clock)
    token = identity.sign(LEAD, timedelta(hours=1))
    clock.at -= timedelta(minutes=5)
    with pytest.raises(AuthenticationError, match="future"):
        identity.verify(token)


def test_wrong_audience_and_issuer_are_refused(clock: MovableClock) -> None:
    token = tokens(clock).sign(LEAD, timedelta(hours=1))
    other_audience = IdentityTokens({"k1": KEY_1}, issuer="riskrelay-console", audience="other")
    with pytest.raises(AuthenticationError, match="audience"):
        other_audience.verify(token)
    other_issuer = IdentityTokens({"k1": KEY_1}, issuer="elsewhere", audience="riskrelay")
    with pytest.raises(AuthenticationError, match="issuer"):
        other_issuer.verify(token)


def test_a_tampered_token_is_refused(clock: MovableClock) -> None:
    identity = tokens(clock)
    header, payload, signature = identity.sign(LEAD, timedelta(hours=1)).split(".")
    claims = jwt.decode(f"{header}.{payload}.{signature}", options={"verify_signature": False})
    claims["roles"] = ["admin"]
    forged_payload = jwt.encode(claims, "x" * 40, algorithm="HS256").split(".")[1]
    with pytest.raises(AuthenticationError, match="signature"):
        identity.verify(f"{header}.{forged_payload}.{signature}")
    with pytest.raises(AuthenticationError, match="malformed"):
        identity.verify("not.a.jwt")


def test_unknown_key_id_and_unsigned_tokens_are_refused(clock: MovableClock) -> None:
    identity = tokens(clock)
    other = tokens(clock, signing="k9", k9=KEY_2)
    with pytest.raises(AuthenticationError, match="unknown key"):
        identity.verify(other.sign(LEAD, timedelta(hours=1)))
    unsigned = jwt.encode(
        {"sub": "u-1", "iss": "riskrelay-console", "aud": "riskrelay"},
        key=None,
        algorithm="none",
        headers={"kid": "k1"},
    )
    with pytest.raises(AuthenticationError):
        identity.verify(unsigned)


def test_keys_rotate_old_tokens_verify_until_their_key_is_removed(clock: MovableClock) -> None:
    before = tokens(clock, signing="k1", k1=KEY_1)
    old_token = before.sign(LEAD, timedelta(hours=1))
    rotated = tokens(clock, signing="k2", k1=KEY_1, k2=KEY_2)
    new_token = rotated.sign(LEAD, timedelta(hours=1))
    assert jwt.get_unverified_header(new_token)["kid"] == "k2"
    assert rotated.verify(old_token).subject == "u-1"
    assert rotated.verify(new_token).subject == "u-1"
    retired = tokens(clock, signing="k2", k2=KEY_2)
    with pytest.raises(AuthenticationError, match="unknown key"):
        retired.verify(old_token)


def test_claims_without_roles_or_with_upstream_are_refused(clock: MovableClock) -> None:
    identity = tokens(clock)
    now = int(clock.at.timestamp())
    base = {"iss": "riskrelay-console", "aud": "riskrelay", "sub": "u", "iat": now}
    base |= {"exp": now + 60, "name": "N", "email": "n@example.org"}
    for roles in ([], ["upstream"], ["janitor"]):
        token = jwt.encode(
            {**base, "roles": roles}, KEY_1, algorithm="HS256", headers={"kid": "k1"}
        )
        with pytest.raises(AuthenticationError, match="person claims"):
            identity.verify(token)
    no_expiry = {k: v for k, v in base.items() if k != "exp"} | {"roles": ["agent"]}
    token = jwt.encode(no_expiry, KEY_1, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(AuthenticationError, match="exp"):
        identity.verify(token)


def test_keys_file_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"signing_key_id": "k1", "keys": {"k1": "short"}}))
    with pytest.raises(ValidationError, match="shorter than 32"):
        IdentityTokens.from_settings(AuthSettings(identity_keys_file=path))
    path.write_text(json.dumps({"signing_key_id": "k3", "keys": {"k1": KEY_1}}))
    with pytest.raises(ValidationError, match="not one of the keys"):
        IdentityTokens.from_settings(AuthSettings(identity_keys_file=path))
    path.write_text(json.dumps({"keys": {"k1": KEY_1}}))
    verifier = IdentityTokens.from_settings(AuthSettings(identity_keys_file=path))
    assert verifier is not None
    assert not verifier.can_sign
    with pytest.raises(RuntimeError, match="signing_key_id"):
        verifier.sign(LEAD, timedelta(hours=1))
    assert IdentityTokens.from_settings(AuthSettings()) is None


# ---------------------------------------------------------------------------------------------
# The role checks, with static tokens and people's tokens side by side
# ---------------------------------------------------------------------------------------------


def role_checked_app(registry: TokenRegistry) -> FastAPI:
    app = FastAPI()
    app.state.token_registry = registry

    @app.post("/manage")
    async def manage(
        principal: Annotated[Principal, Depends(require_roles(Role.SUPPORT_MANAGER))],
    ) -> dict[str, str | None]:
        return {"actor": principal.actor, "name": principal.name}

    return app


async def call(app: FastAPI, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post("/manage", headers=headers)


async def test_role_checks_accept_static_and_person_tokens_and_deny_by_default() -> None:
    identity = IdentityTokens({"k1": KEY_1}, issuer="i", audience="a", signing_key_id="k1")
    static = Principal(subject="support_manager", role=Role.SUPPORT_MANAGER)
    app = role_checked_app(TokenRegistry([("manager-token-1", static)], identity))
    manager = Person("u-2", "Max Manager", "max@example.org", [Role.AGENT, Role.SUPPORT_MANAGER])
    agent = Person("u-3", "Ann Agent", "ann@example.org", [Role.AGENT])
    admin = Person("u-4", "Ada Admin", "ada@example.org", [Role.ADMIN])

    legacy = await call(app, "manager-token-1")
    assert legacy.status_code == 200
    assert legacy.json() == {"actor": "support_manager", "name": None}
    person = await call(app, identity.sign(manager, timedelta(minutes=5)))
    assert person.status_code == 200
    assert person.json() == {"actor": "max@example.org", "name": "Max Manager"}
    assert (await call(app, identity.sign(admin, timedelta(minutes=5)))).status_code == 200
    refused = await call(app, identity.sign(agent, timedelta(minutes=5)))
    assert refused.status_code == 403
    assert "agent" in refused.json()["detail"]
    assert (await call(app, None)).status_code == 401
    assert (await call(app, "unknown-token-123")).status_code == 401
    expired = await call(app, identity.sign(manager, timedelta(minutes=-5)))
    assert expired.status_code == 401
    assert expired.json()["detail"] == "token expired"


async def test_without_identity_keys_a_person_token_is_unknown() -> None:
    identity = IdentityTokens({"k1": KEY_1}, issuer="i", audience="a", signing_key_id="k1")
    app = role_checked_app(TokenRegistry())
    manager = Person("u-2", "Max Manager", "max@example.org", [Role.SUPPORT_MANAGER])
    response = await call(app, identity.sign(manager, timedelta(minutes=5)))
    assert response.status_code == 401
