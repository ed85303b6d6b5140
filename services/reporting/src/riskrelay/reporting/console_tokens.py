"""Personal API tokens: a person's long-lived secret for scripts, exchanged for short-lived
signed person tokens.

A person creates, lists and revokes their tokens at ``/console/tokens``. A token is shown once
(``rrpat_<id>_<secret>``); reporting keeps only the SHA-256 of its secret (the secret is 256
random bits, so a slow password hash adds nothing), its expiry and when it was last used.

A script presents the token at ``POST /v1/tokens/exchange`` and gets the person's JWT (the same
HS256 token the console signs at sign-in, verified by every service from the identity keys
file), valid for minutes. Every other service only ever sees those JWTs, so none reads
reporting's tables, and revoking a token (or disabling the person) stops it at the next
exchange: at most one access token's life later.

Failed exchanges are recorded and limited per client address with the console's failed
sign-ins (:func:`riskrelay.reporting.people.begin_address_attempt`): a script guessing tokens
from an address is stopped like a browser guessing passwords there.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from riskrelay.reporting.console import ConsolePages, client_address, login_redirect, retry_text
from riskrelay.reporting.people import (
    SignInFailure,
    SignInLimits,
    SignInRefused,
    begin_address_attempt,
    finish_sign_in,
)
from riskrelay.reporting.settings import ConsoleSettings, ReportingSettings
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import PERSON_ROLES, Person, Principal
from riskrelay.shared.clock import Clock
from riskrelay.shared.events import Role
from riskrelay.shared.logging import get_logger
from riskrelay.shared.store import Connection

log = get_logger(__name__)

TOKEN_PREFIX = "rrpat_"
_TOKEN = re.compile(r"^rrpat_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
LIFETIMES_DAYS = (7, 30, 90, 365)
DEFAULT_LIFETIME_DAYS = 90
MAX_ACTIVE_TOKENS = 20
MAX_NAME_LENGTH = 100


# ---------------------------------------------------------------------------------------------
# Tokens (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewToken:
    token_id: str
    secret_hash: str
    plaintext: str  # shown to the person once, never stored


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> NewToken:
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewToken(token_id, secret_hash(secret), f"{TOKEN_PREFIX}{token_id}_{secret}")


def parse_token(presented: str) -> tuple[str, str] | None:
    """The token id and the secret's hash, or None when it is not a personal token."""
    found = _TOKEN.match(presented)
    if found is None:
        return None
    return found.group(1), secret_hash(found.group(2))


@dataclass(frozen=True)
class ApiToken:
    token_id: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        return "active"


class ExchangeRefused(Exception):
    """The presented token names no usable identity; the message says why, without secrets, and
    ``failure`` is how the attempt is recorded."""

    def __init__(self, message: str, failure: SignInFailure) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class StoredToken:
    """A token's row with its owner as reporting knows them now (``None``: no local user)."""

    secret_hash: str
    expires_at: datetime
    revoked_at: datetime | None
    snapshot: Person
    external: bool
    current: Person | None
    disabled: bool


def identity_for(stored: StoredToken | None, presented_hash: str, now: datetime) -> Person:
    """Whom an exchange speaks for, or :class:`ExchangeRefused`.

    A local user's current name and roles count (a role taken away is gone from the next
    exchange); a person signed in through OpenID Connect has no row here, so their token
    carries the roles they held when they created it."""
    if stored is None or not hmac.compare_digest(stored.secret_hash, presented_hash):
        raise ExchangeRefused("unknown token", SignInFailure.UNKNOWN_TOKEN)
    if stored.revoked_at is not None:
        raise ExchangeRefused("token revoked", SignInFailure.TOKEN_REVOKED)
    if now >= stored.expires_at:
        raise ExchangeRefused("token expired", SignInFailure.TOKEN_EXPIRED)
    if stored.current is not None:
        if stored.disabled:
            raise ExchangeRefused("the token's person is disabled", SignInFailure.DISABLED)
        return stored.current
    if not stored.external:
        raise ExchangeRefused("the token's person no longer exists", SignInFailure.UNKNOWN_PERSON)
    return stored.snapshot


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


def _roles(values: list[str]) -> list[Role]:
    return [Role(value) for value in values if value in {role.value for role in PERSON_ROLES}]


async def create_token(
    connection: Connection,
    principal: Principal,
    name: str,
    lifetime: timedelta,
    now: datetime,
    external: bool,
) -> tuple[NewToken, datetime] | None:
    """A new token for the signed-in person and its expiry; None when they hold the most
    active tokens allowed."""
    token = new_token()
    expires_at = now + lifetime
    async with connection.transaction():
        # One person's creations in turn, so two at once cannot pass the limit together.
        await connection.execute(
            "SELECT pg_advisory_xact_lock(7303, hashtext($1))", principal.subject
        )
        active = await connection.fetchval(
            """
            SELECT count(*) FROM console_api_tokens
            WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
            """,
            principal.subject,
            now,
        )
        if active >= MAX_ACTIVE_TOKENS:
            return None
        await connection.execute(
            """
            INSERT INTO console_api_tokens (token_id, secret_hash, user_id, email, name,
                person_name, roles, external, created_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            """,
            token.token_id,
            token.secret_hash,
            principal.subject,
            principal.email,
            name,
            principal.name or principal.actor,
            [role.value for role in principal.ordered_roles()],
            external,
            now,
            expires_at,
        )
    return token, expires_at


def _token(row: asyncpg.Record) -> ApiToken:
    return ApiToken(
        token_id=row["token_id"],
        name=row["name"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


async def tokens_of(connection: Connection, user_id: str) -> list[ApiToken]:
    rows = await connection.fetch(
        "SELECT * FROM console_api_tokens WHERE user_id = $1 ORDER BY created_at DESC, token_id",
        user_id,
    )
    return [_token(row) for row in rows]


async def revoke_token(connection: Connection, user_id: str, token_id: str, now: datetime) -> bool:
    """Revoke one of the person's own tokens; False when they have no such active token."""
    revoked = await connection.fetchval(
        """
        UPDATE console_api_tokens SET revoked_at = $3
        WHERE token_id = $1 AND user_id = $2 AND revoked_at IS NULL
        RETURNING token_id
        """,
        token_id,
        user_id,
        now,
    )
    return revoked is not None


async def exchange(connection: Connection, presented: str, now: datetime) -> Person:
    """The person a presented token speaks for (recording its use), or :class:`ExchangeRefused`."""
    parsed = parse_token(presented)
    if parsed is None:
        raise ExchangeRefused("not a personal API token", SignInFailure.UNKNOWN_TOKEN)
    token_id, presented_hash = parsed
    row = await connection.fetchrow(
        """
        SELECT t.*, u.user_id AS local_user, u.name AS current_name, u.email AS current_email,
               u.roles AS current_roles, u.disabled
        FROM console_api_tokens t
        LEFT JOIN console_users u ON u.user_id = t.user_id AND NOT t.external
        WHERE t.token_id = $1
        """,
        token_id,
    )
    stored = None
    if row is not None:
        snapshot = Person(
            user_id=row["user_id"],
            name=row["person_name"],
            email=row["email"],
            roles=_roles(row["roles"]),
        )
        current = (
            Person(
                user_id=row["user_id"],
                name=row["current_name"],
                email=row["current_email"],
                roles=_roles(row["current_roles"]),
            )
            if row["local_user"] is not None
            else None
        )
        stored = StoredToken(
            secret_hash=row["secret_hash"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            snapshot=snapshot,
            external=row["external"],
            current=current,
            disabled=bool(row["disabled"]),
        )
    person = identity_for(stored, presented_hash, now)
    await connection.execute(
        "UPDATE console_api_tokens SET last_used_at = $2 WHERE token_id = $1", token_id, now
    )
    return person


# ---------------------------------------------------------------------------------------------
# The exchange API
# ---------------------------------------------------------------------------------------------


class ExchangedToken(BaseModel):
    access_token: str = Field(description="The person's signed token (JWT) for every service.")
    token_type: str = "Bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    expires_at: datetime


_bearer = HTTPBearer(auto_error=False)


def exchange_limits(context: ServiceContext) -> SignInLimits:
    settings = context.settings
    console = settings.console if isinstance(settings, ReportingSettings) else ConsoleSettings()
    return console.sign_in_limits


def build_token_exchange_router(
    context: ServiceContext,
    access_ttl: timedelta,
    clock: Clock,
    limits: SignInLimits | None = None,
) -> APIRouter:
    """``limits``: failed exchanges allowed per client address (by default the console's
    sign-in limits, whose per-address count they share)."""
    router = APIRouter(prefix="/v1/tokens", tags=["personal API tokens"])
    limits = limits or exchange_limits(context)

    @router.post(
        "/exchange",
        summary=(
            "Exchange a personal API token (Authorization: Bearer rrpat_...) for the person's"
            " short-lived signed token, accepted by every service."
        ),
        responses={
            401: {"description": "unknown, revoked or expired token, or a disabled person"},
            429: {
                "description": (
                    "too many failed sign-ins and exchanges from this client address lately;"
                    " Retry-After says when to try again"
                )
            },
            503: {"description": "this reporting instance has no signing key"},
        },
    )
    async def exchange_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ExchangedToken:
        unauthorized = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=unauthorized
            )
        # A bearer that is no personal token is refused before any lookup: nothing is guessed
        # with it, so it is not counted against the address.
        parsed = parse_token(credentials.credentials)
        if parsed is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "not a personal API token", headers=unauthorized
            )
        identity = context.tokens.identity
        if identity is None or not identity.can_sign:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "this server has no identity signing key (AUTH__IDENTITY_KEYS_FILE)",
            )
        address = client_address(request)
        now = clock()
        async with context.db.acquire() as connection:
            attempt = await begin_address_attempt(
                connection, f"{TOKEN_PREFIX}{parsed[0]}", address, limits, now
            )
            if isinstance(attempt, SignInRefused):
                log.warning("personal token exchange rate-limited", client_address=address)
                wait = max(1, math.ceil((attempt.retry_at - now).total_seconds()))
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    (
                        "Too many failed sign-ins and token exchanges from this address."
                        f" {retry_text(attempt.retry_at, now)}"
                    ),
                    headers={"Retry-After": str(wait)},
                )
            try:
                person = await exchange(connection, credentials.credentials, now)
            except ExchangeRefused as error:
                await finish_sign_in(connection, attempt, error.failure)
                log.info(
                    "personal token exchange refused", client_address=address, reason=str(error)
                )
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED, str(error), headers=unauthorized
                ) from error
            await finish_sign_in(connection, attempt, None)
        return ExchangedToken(
            access_token=identity.sign(person, access_ttl),
            expires_in=int(access_ttl.total_seconds()),
            expires_at=now + access_ttl,
        )

    return router


# ---------------------------------------------------------------------------------------------
# The console page
# ---------------------------------------------------------------------------------------------


def is_external(context: ServiceContext, principal: Principal) -> bool:
    """Signed in through OpenID Connect (not a local user): their token is not from the console."""
    identity = context.tokens.identity
    return identity is None or principal.issuer != identity.issuer


def lifetime_of(value: str | None) -> timedelta | None:
    try:
        days = int(value) if value else DEFAULT_LIFETIME_DAYS
    except ValueError:
        return None
    return timedelta(days=days) if days in LIFETIMES_DAYS else None


def build_tokens_router(context: ServiceContext, pages: ConsolePages) -> APIRouter:
    router = APIRouter()

    async def render(
        request: Request,
        principal: Principal,
        status_code: int = 200,
        created: str | None = None,
        created_expires_at: datetime | None = None,
        error: str | None = None,
        done: str | None = None,
    ) -> Response:
        async with context.db.acquire() as connection:
            tokens = await tokens_of(connection, principal.subject)
        return pages.page(
            request,
            "console_tokens.html.j2",
            status_code=status_code,
            principal=principal,
            tokens=tokens,
            now=pages.clock(),
            lifetimes=LIFETIMES_DAYS,
            default_lifetime=DEFAULT_LIFETIME_DAYS,
            created=created,
            created_expires_at=created_expires_at,
            error=error,
            done=done,
        )

    @router.get("/tokens", response_model=None)
    async def tokens_page(request: Request, done: str | None = None) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        return await render(request, principal, done=done)

    @router.post("/tokens", response_model=None)
    async def create(request: Request) -> Response:
        submitted = await pages.submission(request)
        if isinstance(submitted, Response):
            return submitted
        principal = submitted.principal
        name = submitted.form.get("name", "").strip()
        lifetime = lifetime_of(submitted.form.get("days"))
        if not name or len(name) > MAX_NAME_LENGTH or lifetime is None:
            return await render(
                request,
                principal,
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                error=(
                    f"Name the token (up to {MAX_NAME_LENGTH} characters) and choose how long"
                    " it lasts."
                ),
            )
        async with context.db.acquire() as connection:
            made = await create_token(
                connection,
                principal,
                name,
                lifetime,
                pages.clock(),
                external=is_external(context, principal),
            )
        if made is None:
            return await render(
                request,
                principal,
                status.HTTP_409_CONFLICT,
                error=f"You have {MAX_ACTIVE_TOKENS} active tokens: revoke one first.",
            )
        token, expires_at = made
        log.info("personal token created", user_id=principal.subject, token_id=token.token_id)
        return await render(
            request,
            principal,
            status.HTTP_201_CREATED,
            created=token.plaintext,
            created_expires_at=expires_at,
        )

    @router.post("/tokens/{token_id}/revoke", response_model=None)
    async def revoke(token_id: str, request: Request) -> Response:
        submitted = await pages.submission(request)
        if isinstance(submitted, Response):
            return submitted
        async with context.db.acquire() as connection:
            revoked = await revoke_token(
                connection, submitted.principal.subject, token_id, pages.clock()
            )
        if not revoked:
            return await render(
                request,
                submitted.principal,
                status.HTTP_404_NOT_FOUND,
                error="You have no active token with that id.",
            )
        log.info("personal token revoked", user_id=submitted.principal.subject, token_id=token_id)
        return RedirectResponse(
            "/console/tokens?done=Token%20revoked.", status_code=status.HTTP_303_SEE_OTHER
        )

    return router
