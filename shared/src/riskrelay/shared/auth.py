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

With neither configured every protected endpoint answers 401: there is no anonymous access.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, RootModel, SecretStr, ValidationError, model_validator

from riskrelay.shared.clock import Clock, system_clock
from riskrelay.shared.events import Role
from riskrelay.shared.settings import AuthSettings

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
        try:
            key_id = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as error:
            raise AuthenticationError("malformed token") from error
        if not isinstance(key_id, str) or key_id not in self._keys:
            raise AuthenticationError("token signed with an unknown key")
        try:
            claims = jwt.decode(
                token,
                self._keys[key_id],
                algorithms=[self.ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
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
        except jwt.InvalidSignatureError as error:
            raise AuthenticationError("token signature does not verify") from error
        except jwt.InvalidTokenError as error:
            raise AuthenticationError(f"invalid token: {error}") from error
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        now = self.clock().timestamp()
        expires_at, issued_at = claims["exp"], claims["iat"]
        if not isinstance(expires_at, int | float) or not isinstance(issued_at, int | float):
            raise AuthenticationError("invalid token: exp and iat must be numbers")
        if now >= expires_at + self.leeway.total_seconds():
            raise AuthenticationError("token expired")
        if issued_at > now + self.leeway.total_seconds():
            raise AuthenticationError("token issued in the future")
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


class TokenRegistry:
    """Looks up the principal behind a bearer token: a static token, else a person's token."""

    def __init__(
        self,
        entries: Iterable[tuple[str, Principal]] = (),
        identity: IdentityTokens | None = None,
    ) -> None:
        self._entries = list(entries)
        self.identity = identity

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> TokenRegistry:
        static = cls.from_file(auth.tokens_file)
        return cls(static._entries, IdentityTokens.from_settings(auth))

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
        found = None
        for known, principal in self._entries:
            # Check every entry so the time taken does not reveal which one matched.
            if hmac.compare_digest(known.encode(), token.encode()):
                found = principal
        if found is not None:
            return found
        if self.identity is not None and token.count(".") == 2:
            return self.identity.verify(token)
        raise AuthenticationError("unknown bearer token")


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
            principal = registry.authenticate(credentials.credentials)
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
