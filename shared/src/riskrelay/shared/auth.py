"""Role-based bearer tokens for every HTTP API: deny by default.

Two kinds of bearer token are accepted, checked the same way:

* **Static tokens** (scripts, upstream helpdesks). The tokens file is JSON mapping a role to its
  token(s)::

      {"support_manager": "s3cr3t",
       "upstream": [{"token": "zd-token", "subject": "zendesk-acme"}, "another-token"]}

  A token given as a plain string gets the subject ``<role>``. Tokens are compared in constant
  time.
* **People's tokens**: JWTs the console signs for a signed-in person (HS256, the key id in the
  ``kid`` header so keys rotate; issuer, audience, issue and expiry times required), carrying the
  person's id (``sub``), name, e-mail and roles. Every service verifies them itself from the
  identity keys file; none reads another's user table.
* **An OpenID Connect provider's tokens** (production): ID and access tokens signed RS256 (or
  another asymmetric algorithm) by the provider named in ``AUTH__OIDC__ISSUER``, verified
  through its JWKS (fetched from its discovery document, cached, refetched when a token names
  an unknown key and at least hourly, so the provider's key rotation needs nothing here). The
  provider's e-mail, name and groups/roles claims are mapped to the protocol's roles
  (:class:`OidcTokens`). A token is routed by its unverified ``iss``: the provider's issuer goes
  to the JWKS keys and only its asymmetric algorithms, anything else to the HS256 keys.

With neither configured every protected endpoint answers 401: there is no anonymous access.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, RootModel, SecretStr, ValidationError, model_validator

from riskrelay.shared.clock import Clock, system_clock
from riskrelay.shared.events import Role
from riskrelay.shared.settings import AuthSettings, OidcSettings

PERSON_ROLES = tuple(role for role in Role if role is not Role.UPSTREAM)
"""Roles a person may hold (``upstream`` is for helpdesk integrations only)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling. A static token names one role; a person may hold several (``role`` is
    then the first of them), with their name and e-mail."""

    subject: str
    role: Role
    roles: frozenset[Role] = frozenset()
    name: str | None = None
    email: str | None = None
    issuer: str | None = None  # who signed a person's token (the console, or an OIDC provider)

    def __post_init__(self) -> None:
        if not self.roles:
            object.__setattr__(self, "roles", frozenset({self.role}))

    @property
    def is_person(self) -> bool:
        return self.email is not None

    @property
    def actor(self) -> str:
        """What records of this caller's actions name: a person's e-mail, else the subject."""
        return self.email or self.subject

    def ordered_roles(self) -> list[Role]:
        """The roles in the protocol's order, ``role`` first."""
        return [self.role, *(r for r in Role if r in self.roles and r is not self.role)]


class _TokenEntry(BaseModel):
    token: str = Field(min_length=8)
    subject: str | None = None


class TokensFile(RootModel[dict[Role, str | list[str | _TokenEntry]]]):
    """Schema of the tokens file; validated at start-up so a typo stops the service."""


class AuthenticationError(Exception):
    """A bearer token that identifies nobody; the message says why, without secrets."""


MIN_KEY_LENGTH = 32


class IdentityKeysFile(BaseModel):
    """Schema of the identity keys file; validated at start-up so a typo stops the service."""

    signing_key_id: str | None = Field(
        default=None, description="Key the console signs with (verifying services need none)."
    )
    keys: dict[str, SecretStr] = Field(min_length=1, description="HS256 secret by key id.")

    @model_validator(mode="after")
    def _check(self) -> IdentityKeysFile:
        for key_id, secret in self.keys.items():
            if len(secret.get_secret_value()) < MIN_KEY_LENGTH:
                raise ValueError(f"key {key_id!r} is shorter than {MIN_KEY_LENGTH} characters")
        if self.signing_key_id is not None and self.signing_key_id not in self.keys:
            raise ValueError(f"signing_key_id {self.signing_key_id!r} is not one of the keys")
        return self


@dataclass(frozen=True)
class Person:
    """The claims of a person's token."""

    user_id: str
    name: str
    email: str
    roles: Sequence[Role]


class IdentityTokens:
    """Signs and verifies people's tokens: HS256 JWTs with a key id, issuer, audience and expiry.

    Times are checked against ``clock`` (not PyJWT's own wall-clock reads), so a service and its
    tests agree on what "expired" means."""

    ALGORITHM = "HS256"

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        issuer: str,
        audience: str,
        signing_key_id: str | None = None,
        clock: Clock = system_clock,
        leeway: timedelta = timedelta(seconds=30),
    ) -> None:
        self._keys = dict(keys)
        self.issuer = issuer
        self.audience = audience
        self.signing_key_id = signing_key_id
        self.clock = clock
        self.leeway = leeway

    @classmethod
    def from_settings(
        cls, auth: AuthSettings, clock: Clock = system_clock
    ) -> IdentityTokens | None:
        if auth.identity_keys_file is None:
            return None
        parsed = IdentityKeysFile.model_validate_json(auth.identity_keys_file.read_text())
        return cls(
            {key_id: secret.get_secret_value() for key_id, secret in parsed.keys.items()},
            issuer=auth.identity_issuer,
            audience=auth.identity_audience,
            signing_key_id=parsed.signing_key_id,
            clock=clock,
        )

    @property
    def can_sign(self) -> bool:
        return self.signing_key_id is not None

    def sign(self, person: Person, ttl: timedelta) -> str:
        if self.signing_key_id is None:
            raise RuntimeError("the identity keys file names no signing_key_id: cannot sign")
        now = self.clock()
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": person.user_id,
            "name": person.name,
            "email": person.email,
            "roles": [role.value for role in person.roles],
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        return jwt.encode(
            claims,
            self._keys[self.signing_key_id],
            algorithm=self.ALGORITHM,
            headers={"kid": self.signing_key_id},
        )

    def verify(self, token: str) -> Principal:
        """The person behind ``token``, or :class:`AuthenticationError` saying what is wrong."""
        key_id = _key_id(token)
        if key_id is None or key_id not in self._keys:
            raise AuthenticationError("token signed with an unknown key")
        claims = _decoded(token, self._keys[key_id], [self.ALGORITHM], self.audience, self.issuer)
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        _time_checks(claims, self.clock().timestamp(), self.leeway.total_seconds())
        try:
            claimed = PersonClaims.model_validate(claims)
        except ValidationError as error:
            raise AuthenticationError("invalid token: bad person claims") from error
        return Principal(
            subject=claimed.sub,
            role=claimed.roles[0],
            roles=frozenset(claimed.roles),
            name=claimed.name,
            email=claimed.email,
            issuer=self.issuer,
        )


class PersonClaims(BaseModel):
    sub: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=256)
    email: str = Field(min_length=3, max_length=320)
    roles: list[Role] = Field(min_length=1)

    @model_validator(mode="after")
    def _person_roles_only(self) -> PersonClaims:
        if Role.UPSTREAM in self.roles:
            raise ValueError("a person cannot hold the upstream role")
        return self


def _decoded(
    token: str, key: Any, algorithms: list[str], audience: str | list[str], issuer: str
) -> dict[str, Any]:
    """The claims once the signature, algorithm, issuer and audience check out; times are
    checked by the caller against its clock (:func:`_time_checks`), not PyJWT's wall clock."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=audience,
            issuer=issuer,
            options={
                "require": ["iss", "aud", "sub", "iat", "exp"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidAudienceError as error:
        raise AuthenticationError("token for another audience") from error
    except jwt.InvalidIssuerError as error:
        raise AuthenticationError("token from an unknown issuer") from error
    except jwt.InvalidAlgorithmError as error:
        raise AuthenticationError("token signed with an algorithm not accepted") from error
    except jwt.InvalidSignatureError as error:
        raise AuthenticationError("token signature does not verify") from error
    except jwt.InvalidTokenError as error:
        raise AuthenticationError(f"invalid token: {error}") from error
    return claims


def _time_checks(claims: dict[str, Any], now: float, leeway: float) -> None:
    expires_at, issued_at = claims.get("exp"), claims.get("iat")
    if not isinstance(expires_at, int | float) or not isinstance(issued_at, int | float):
        raise AuthenticationError("invalid token: exp and iat must be numbers")
    if now >= expires_at + leeway:
        raise AuthenticationError("token expired")
    if issued_at > now + leeway:
        raise AuthenticationError("token issued in the future")
    not_before = claims.get("nbf")
    if isinstance(not_before, int | float) and not_before > now + leeway:
        raise AuthenticationError("token not valid yet")


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``realm_access.roles``); a claim whose own name has dots
    (``https://example.org/roles``) is found whole first."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def mapped_roles(values: Any, role_map: Mapping[str, Role]) -> list[Role]:
    """The protocol roles a provider's groups or roles claim grants, in the protocol's order.

    A name that is a person role (``team_lead``) grants itself; ``role_map`` maps the rest.
    Unknown names are ignored (a person may be in many groups), and ``upstream`` never."""
    names = [values] if isinstance(values, str) else values
    if not isinstance(names, list):
        return []
    granted: set[Role] = set()
    person_roles = {role.value: role for role in PERSON_ROLES}
    for name in names:
        if not isinstance(name, str):
            continue
        role = role_map.get(name) or person_roles.get(name)
        if role is not None and role is not Role.UPSTREAM:
            granted.add(role)
    return [role for role in PERSON_ROLES if role in granted]


@dataclass
class _KeyCache:
    keys: dict[str, Any]
    fetched_at: float  # monotonic seconds; -inf before the first fetch


class OidcTokens:
    """Verifies an OpenID Connect provider's ID and access tokens and maps them to a person.

    :meth:`verify` uses the keys already fetched (cheap and synchronous, for code that cannot
    wait); :meth:`verify_async` first refetches the JWKS when the token names a key id not seen
    yet (at most every ``jwks_min_interval_seconds``) or the keys are older than
    ``jwks_max_age_seconds``, so a rotated key is picked up on first use and a removed one stops
    verifying within the hour."""

    def __init__(
        self,
        settings: OidcSettings,
        clock: Clock = system_clock,
        leeway: timedelta = timedelta(seconds=60),
        http: httpx.AsyncClient | None = None,
    ) -> None:
        unknown = {role for role in settings.role_map.values() if role not in _PERSON_ROLE_NAMES}
        if unknown:
            raise ValueError(f"oidc.role_map names unknown roles: {', '.join(sorted(unknown))}")
        self.settings = settings
        self.issuer = settings.issuer
        self.role_map = {name: Role(role) for name, role in settings.role_map.items()}
        self.clock = clock
        self.leeway = leeway
        self._http = http
        self._cache = _KeyCache({}, float("-inf"))
        self._refresh_lock = asyncio.Lock()
        self._last_attempt = float("-inf")
        self._metadata: dict[str, Any] | None = None

    # -- provider metadata and keys ------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.settings.request_timeout_seconds)
        return self._http

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once)."""
        if self._metadata is None:
            url = f"{self.settings.issuer.rstrip('/')}/.well-known/openid-configuration"
            response = await self._client().get(url)
            response.raise_for_status()
            document = response.json()
            if document.get("issuer") != self.settings.issuer:
                raise AuthenticationError(
                    f"the provider's discovery document names issuer {document.get('issuer')!r},"
                    f" not {self.settings.issuer!r}"
                )
            self._metadata = document
        return self._metadata

    async def refresh_keys(self) -> None:
        """Fetch the provider's JWKS now (signing keys only)."""
        async with self._refresh_lock:
            self._last_attempt = time.monotonic()
            metadata = await self.metadata()
            response = await self._client().get(metadata["jwks_uri"])
            response.raise_for_status()
            keys: dict[str, Any] = {}
            for entry in response.json().get("keys", []):
                if entry.get("use", "sig") != "sig" or not isinstance(entry.get("kid"), str):
                    continue
                try:
                    keys[entry["kid"]] = jwt.PyJWK(entry).key
                except (jwt.PyJWKError, jwt.InvalidKeyError):
                    continue  # a key type or algorithm this service cannot use
            self._cache = _KeyCache(keys, time.monotonic())

    def _needs_refresh(self, key_id: str | None) -> bool:
        now = time.monotonic()
        stale = now - self._cache.fetched_at >= self.settings.jwks_max_age_seconds
        unknown = key_id not in self._cache.keys
        may_retry = now - self._last_attempt >= self.settings.jwks_min_interval_seconds
        return stale or (unknown and may_retry)

    # -- verification ------------------------------------------------------------------------

    async def verify_async(self, token: str) -> Principal:
        return self._principal(await self.verified_claims_async(token))

    async def verified_claims_async(self, token: str) -> dict[str, Any]:
        key_id = _key_id(token)
        if self._needs_refresh(key_id):
            try:
                await self.refresh_keys()
            except (httpx.HTTPError, ValueError, KeyError) as error:
                # Keep the keys we had: the provider being briefly unreachable must not
                # sign everyone out.
                if not self._cache.keys:
                    raise AuthenticationError(
                        "the identity provider's keys are unavailable"
                    ) from error
        return self.verified_claims(token)

    def verify(self, token: str) -> Principal:
        return self._principal(self.verified_claims(token))

    def verified_claims(self, token: str) -> dict[str, Any]:
        """The token's claims once signature, issuer, audience and times check out."""
        key_id = _key_id(token)
        key = self._cache.keys.get(key_id) if key_id is not None else None
        if key is None:
            raise AuthenticationError("token signed with an unknown key")
        claims = _decoded(
            token, key, list(self.settings.algorithms), self.settings.audiences, self.issuer
        )
        _time_checks(claims, self.clock().timestamp(), self.leeway.total_seconds())
        return claims

    def person_of(self, claims: Mapping[str, Any]) -> Person:
        """The person a verified token names, or :class:`AuthenticationError` when it lacks an
        e-mail or grants none of the protocol's roles."""
        email = claim_at(claims, self.settings.email_claim)
        if not isinstance(email, str) or not 3 <= len(email) <= 320 or "@" not in email:
            raise AuthenticationError(
                f"token has no e-mail in its {self.settings.email_claim!r} claim"
            )
        roles = mapped_roles(claim_at(claims, self.settings.roles_claim), self.role_map)
        if not roles:
            raise AuthenticationError(
                f"token's {self.settings.roles_claim!r} claim grants none of the protocol's roles"
            )
        name = claim_at(claims, self.settings.name_claim)
        return Person(
            user_id=str(claims["sub"])[:256],
            name=name[:256] if isinstance(name, str) and name else email,
            email=email.lower(),
            roles=roles,
        )

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        person = self.person_of(claims)
        return Principal(
            subject=person.user_id,
            role=person.roles[0],
            roles=frozenset(person.roles),
            name=person.name,
            email=person.email,
            issuer=self.settings.issuer,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()


_PERSON_ROLE_NAMES = {role.value for role in PERSON_ROLES}


def _key_id(token: str) -> str | None:
    try:
        key_id = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError as error:
        raise AuthenticationError("malformed token") from error
    return key_id if isinstance(key_id, str) else None


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, to choose who verifies it (nothing is trusted from it)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


class TokenRegistry:
    """Looks up the principal behind a bearer token: a static token, else a person's token."""

    def __init__(
        self,
        entries: Iterable[tuple[str, Principal]] = (),
        identity: IdentityTokens | None = None,
        oidc: OidcTokens | None = None,
    ) -> None:
        self._entries = list(entries)
        self.identity = identity
        self.oidc = oidc

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> TokenRegistry:
        static = cls.from_file(auth.tokens_file)
        oidc = OidcTokens(auth.oidc) if auth.oidc is not None else None
        return cls(static._entries, IdentityTokens.from_settings(auth), oidc)

    @classmethod
    def from_file(cls, path: Path | None) -> TokenRegistry:
        if path is None:
            return cls()
        parsed = TokensFile.model_validate(json.loads(path.read_text()))
        entries: list[tuple[str, Principal]] = []
        for role, value in parsed.root.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    entries.append((item, Principal(subject=role.value, role=role)))
                else:
                    subject = item.subject or role.value
                    entries.append((item.token, Principal(subject=subject, role=role)))
        return cls(entries)

    def lookup(self, token: str) -> Principal | None:
        try:
            return self.authenticate(token)
        except AuthenticationError:
            return None

    def authenticate(self, token: str) -> Principal:
        """The principal behind ``token``; an OIDC token is checked with the keys already
        fetched (see :meth:`authenticate_async`)."""
        found = self._static(token)
        if found is not None:
            return found
        if self._is_oidc(token):
            assert self.oidc is not None
            return self.oidc.verify(token)
        if self.identity is not None and token.count(".") == 2:
            return self.identity.verify(token)
        raise AuthenticationError("unknown bearer token")

    async def authenticate_async(self, token: str) -> Principal:
        """As :meth:`authenticate`, fetching the OIDC provider's keys when they are needed."""
        if self._static(token) is None and self._is_oidc(token):
            assert self.oidc is not None
            return await self.oidc.verify_async(token)
        return self.authenticate(token)

    def _static(self, token: str) -> Principal | None:
        found = None
        for known, principal in self._entries:
            # Check every entry so the time taken does not reveal which one matched.
            if hmac.compare_digest(known.encode(), token.encode()):
                found = principal
        return found

    def _is_oidc(self, token: str) -> bool:
        return (
            self.oidc is not None
            and token.count(".") == 2
            and unverified_issuer(token) == self.oidc.settings.issuer
        )


_bearer = HTTPBearer(auto_error=False)


def get_token_registry(request: Request) -> TokenRegistry:
    registry: TokenRegistry = request.app.state.token_registry
    return registry


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """FastAPI dependency: the caller's principal, if their token has one of ``roles``."""
    allowed = frozenset(roles) | {Role.ADMIN}

    async def dependency(
        registry: Annotated[TokenRegistry, Depends(get_token_registry)],
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            principal = await registry.authenticate_async(credentials.credentials)
        except AuthenticationError as error:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(error), headers={"WWW-Authenticate": "Bearer"}
            ) from error
        if not principal.roles & allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            held = ", ".join(sorted(r.value for r in principal.roles))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {held} may not do this; allowed: {names}",
            )
        return principal

    return dependency


def write_dev_tokens(path: Path, tokens: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tokens, indent=2) + "\n")
    path.chmod(0o600)
