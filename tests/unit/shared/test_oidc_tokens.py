"""The OpenID Connect verifier: claims to roles, and JWKS caching and rotation against a provider
served by an in-memory transport (keys made here with cryptography)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from riskrelay.shared.auth import (
    AuthenticationError,
    OidcTokens,
    TokenRegistry,
    claim_at,
    mapped_roles,
)
from riskrelay.shared.events import Role
from riskrelay.shared.settings import OidcSettings

ISSUER = "https://idp.example.org/realms/acme"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_claims_are_found_whole_or_by_dotted_path() -> None:
    claims = {"realm_access": {"roles": ["a"]}, "https://acme.org/roles": ["b"]}
    assert claim_at(claims, "realm_access.roles") == ["a"]
    assert claim_at(claims, "https://acme.org/roles") == ["b"]
    assert claim_at(claims, "realm_access.missing") is None
    assert claim_at(claims, "nothing") is None


def test_groups_map_to_protocol_roles_in_order_and_nothing_else_counts() -> None:
    role_map = {"risk-leads": Role.TEAM_LEAD, "9f1c-guid": Role.ANALYST}
    groups = ["staff", "9f1c-guid", "risk-leads", "support_manager", "upstream", 7]
    assert mapped_roles(groups, role_map) == [Role.TEAM_LEAD, Role.SUPPORT_MANAGER, Role.ANALYST]
    assert mapped_roles("risk-leads", role_map) == [Role.TEAM_LEAD]
    assert mapped_roles(None, role_map) == []
    assert mapped_roles({"risk-leads": True}, role_map) == []


def test_a_role_map_naming_an_unknown_role_stops_start_up() -> None:
    with pytest.raises(ValueError, match="unknown roles: chief"):
        OidcTokens(OidcSettings(issuer=ISSUER, audiences=["c"], role_map={"x": "chief"}))


class FakeProvider:
    """Discovery and JWKS over an httpx mock transport; counts JWKS fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.jwks_fetches = 0
        self.down = False
        self.add_key("k1")

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/certs"})
        self.jwks_fetches += 1
        keys = []
        for kid, key in self.keys.items():
            entry = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**entry, "kid": kid, "use": "sig", "alg": "RS256"})
        keys.append({"kty": "RSA", "kid": "enc1", "use": "enc", "n": "AQAB", "e": "AQAB"})
        return httpx.Response(200, json={"keys": keys})

    def token(self, kid: str = "k1", **changes: Any) -> str:
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": "riskrelay-console",
            "sub": "f:123",
            "email": "Lea@Example.org",
            "name": "Lea Lead",
            "realm_access": {"roles": ["risk-leads", "offline_access"]},
            "iat": int(NOW.timestamp()),
            "exp": int((NOW + timedelta(minutes=5)).timestamp()),
        }
        claims.update(changes)
        return jwt.encode(claims, self.keys[kid], algorithm="RS256", headers={"kid": kid})


def verifier(provider: FakeProvider, **settings: Any) -> OidcTokens:
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "audiences": ["riskrelay-console", "riskrelay-api"],
        "roles_claim": "realm_access.roles",
        "role_map": {"risk-leads": "team_lead"},
    }
    values.update(settings)
    return OidcTokens(
        OidcSettings(**values),
        clock=lambda: NOW,
        http=httpx.AsyncClient(transport=httpx.MockTransport(provider.handler)),
    )


async def test_a_provider_token_names_the_person_with_mapped_roles() -> None:
    provider = FakeProvider()
    tokens = verifier(provider)
    principal = await tokens.verify_async(provider.token())
    assert principal.subject == "f:123"
    assert principal.email == "lea@example.org"
    assert principal.name == "Lea Lead"
    assert principal.roles == {Role.TEAM_LEAD}
    assert principal.issuer == ISSUER
    # The keys are cached: the synchronous path verifies without fetching.
    assert tokens.verify(provider.token()).email == "lea@example.org"
    assert provider.jwks_fetches == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "someone-else"}, "another audience"),
        ({"iss": "https://evil.example.org"}, "unknown issuer"),
        ({"exp": int((NOW - timedelta(minutes=2)).timestamp())}, "token expired"),
        ({"iat": int((NOW + timedelta(minutes=5)).timestamp())}, "issued in the future"),
        ({"nbf": int((NOW + timedelta(minutes=5)).timestamp())}, "not valid yet"),
        ({"email": None}, "no e-mail"),
        ({"realm_access": {"roles": ["offline_access"]}}, "grants none of the protocol"),
    ],
)
async def test_refusals_name_their_reason(changes: dict[str, Any], reason: str) -> None:
    provider = FakeProvider()
    with pytest.raises(AuthenticationError, match=reason):
        await verifier(provider).verify_async(provider.token(**changes))


async def test_only_the_configured_asymmetric_algorithms_verify() -> None:
    provider = FakeProvider()
    tokens = verifier(provider)
    await tokens.refresh_keys()
    hs256 = jwt.encode(
        {"iss": ISSUER, "aud": "riskrelay-console", "sub": "x", "iat": 1, "exp": 2**40},
        "a-shared-secret-of-32-characters!",
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(AuthenticationError, match="algorithm not accepted"):
        tokens.verify(hs256)


async def test_a_rotated_key_is_fetched_on_first_use_and_at_most_so_often() -> None:
    provider = FakeProvider()
    tokens = verifier(provider, jwks_min_interval_seconds=3600)
    await tokens.verify_async(provider.token())
    provider.add_key("k2")
    # Within the minimum interval an unknown key is not fetched again (no fetch storms)...
    with pytest.raises(AuthenticationError, match="unknown key"):
        await tokens.verify_async(provider.token("k2"))
    assert provider.jwks_fetches == 1
    # ...with it elapsed, the first token signed with the new key brings it in.
    eager = verifier(provider, jwks_min_interval_seconds=0)
    await eager.verify_async(provider.token())
    assert (await eager.verify_async(provider.token("k2"))).roles == {Role.TEAM_LEAD}
    assert provider.jwks_fetches == 2


async def test_keys_already_fetched_keep_working_while_the_provider_is_down() -> None:
    provider = FakeProvider()
    tokens = verifier(provider, jwks_max_age_seconds=1e-9)
    await tokens.verify_async(provider.token())
    provider.down = True
    assert (await tokens.verify_async(provider.token())).email == "lea@example.org"
    cold = verifier(provider)
    with pytest.raises(AuthenticationError, match="keys are unavailable"):
        await cold.verify_async(provider.token())


async def test_the_registry_routes_by_issuer_and_keeps_console_tokens_apart() -> None:
    provider = FakeProvider()
    registry = TokenRegistry(oidc=verifier(provider))
    assert (await registry.authenticate_async(provider.token())).email == "lea@example.org"
    console_like = jwt.encode(
        {"iss": "riskrelay-console", "aud": "riskrelay", "sub": "u", "iat": 1, "exp": 2**40},
        "a-shared-secret-of-32-characters!",
        algorithm="HS256",
    )
    with pytest.raises(AuthenticationError, match="unknown bearer token"):
        await registry.authenticate_async(console_like)
