"""Role-based bearer tokens for every HTTP API: deny by default.

The tokens file is JSON mapping a role to its token(s)::

    {"support_manager": "s3cr3t",
     "upstream": [{"token": "zd-token", "subject": "zendesk-acme"}, "another-token"]}

A token given as a plain string gets the subject ``<role>``. Tokens are compared in constant time.
With no tokens file every protected endpoint answers 401: there is no anonymous access.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, RootModel

from riskrelay.shared.events import Role


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role


class _TokenEntry(BaseModel):
    token: str = Field(min_length=8)
    subject: str | None = None


class TokensFile(RootModel[dict[Role, str | list[str | _TokenEntry]]]):
    """Schema of the tokens file; validated at start-up so a typo stops the service."""


class TokenRegistry:
    """Looks up the principal behind a bearer token."""

    def __init__(self, entries: Iterable[tuple[str, Principal]] = ()) -> None:
        self._entries = list(entries)

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
        found = None
        for known, principal in self._entries:
            # Check every entry so the time taken does not reveal which one matched.
            if hmac.compare_digest(known.encode(), token.encode()):
                found = principal
        return found


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
        principal = registry.lookup(credentials.credentials)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value} may not do this; allowed: {names}",
            )
        return principal

    return dependency


def write_dev_tokens(path: Path, tokens: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tokens, indent=2) + "\n")
    path.chmod(0o600)
