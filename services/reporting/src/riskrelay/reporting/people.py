"""The console's people: users with a name, an e-mail and protocol roles, in PostgreSQL.

Passwords are hashed with argon2id (``argon2-cffi``'s RFC 9106 defaults) and checked in a worker
thread, so a sign-in does not hold the event loop for the hash's ~50 ms. An unknown e-mail costs
the same hash as a known one, so the time taken does not tell which e-mails exist.

Sign-in is rate-limited by failed attempts in a sliding window, per account (the e-mail typed,
known or not) and per client address, counted in PostgreSQL so every reporting instance sees the
same attempts. Every attempt is recorded (``console_sign_in_attempts``) with its outcome.
Personal API token exchanges are recorded there too, under the token's id, and limited per
address only (:func:`begin_address_attempt`).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from riskrelay.shared.auth import PERSON_ROLES, Person
from riskrelay.shared.events import Role
from riskrelay.shared.store import Connection

MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both paths cost one hash.
_UNKNOWN_USER_HASH = _hasher.hash("unknown-user-placeholder-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class UserFields(BaseModel):
    """What an administrator sets for a person (``PUT /v1/console/users/{email}``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=256)
    roles: list[Role] = Field(min_length=1, description="Protocol roles; not `upstream`.")
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=1_024)
    disabled: bool = False

    @field_validator("roles")
    @classmethod
    def _person_roles(cls, roles: list[Role]) -> list[Role]:
        if Role.UPSTREAM in roles:
            raise ValueError("a person cannot hold the upstream role")
        return [role for role in PERSON_ROLES if role in roles]


@dataclass(frozen=True)
class ConsoleUser:
    user_id: str
    email: str
    name: str
    roles: list[Role]
    disabled: bool

    @property
    def person(self) -> Person:
        return Person(user_id=self.user_id, name=self.name, email=self.email, roles=self.roles)


def _user(row: asyncpg.Record) -> ConsoleUser:
    return ConsoleUser(
        user_id=row["user_id"],
        email=row["email"],
        name=row["name"],
        roles=[Role(role) for role in row["roles"]],
        disabled=row["disabled"],
    )


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalized_email(email: str) -> str:
    return email.strip().lower()


def valid_email(email: str) -> bool:
    return len(email) <= 320 and _EMAIL.match(email.strip()) is not None


async def put_user(
    connection: Connection, email: str, fields: UserFields, now: datetime
) -> tuple[ConsoleUser, bool]:
    """Create or replace the person with ``email``; True when created."""
    password_hash = await asyncio.to_thread(hash_password, fields.password)
    row = await connection.fetchrow(
        """
        INSERT INTO console_users AS u (user_id, email, name, roles, password_hash, disabled,
                                        created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
        ON CONFLICT (email) DO UPDATE SET
            name = excluded.name, roles = excluded.roles, password_hash = excluded.password_hash,
            disabled = excluded.disabled, updated_at = excluded.updated_at
        RETURNING *, (xmax = 0) AS created
        """,
        str(uuid.uuid4()),
        normalized_email(email),
        fields.name,
        [role.value for role in fields.roles],
        password_hash,
        fields.disabled,
        now,
    )
    assert row is not None
    return _user(row), bool(row["created"])


async def list_users(connection: Connection) -> list[ConsoleUser]:
    rows = await connection.fetch("SELECT * FROM console_users ORDER BY email")
    return [_user(row) for row in rows]


class SignInFailure(StrEnum):
    """Why a sign-in failed: recorded for administrators, never shown to the person."""

    UNKNOWN_ACCOUNT = "unknown_account"
    WRONG_PASSWORD = "wrong_password"
    DISABLED = "disabled"
    NO_PASSWORD = "no_password"
    # A personal API token's exchange (recorded under the token's id, never its secret).
    UNKNOWN_TOKEN = "unknown_token"
    TOKEN_REVOKED = "token_revoked"
    TOKEN_EXPIRED = "token_expired"
    UNKNOWN_PERSON = "unknown_person"


@dataclass(frozen=True)
class PasswordCheck:
    user: ConsoleUser | None
    failure: SignInFailure | None


async def check_password(connection: Connection, email: str, password: str) -> PasswordCheck:
    """The enabled person with this e-mail and password, else why not."""
    row = await connection.fetchrow(
        "SELECT * FROM console_users WHERE email = $1", normalized_email(email)
    )
    stored_hash = row["password_hash"] if row is not None else _UNKNOWN_USER_HASH
    matches = await asyncio.to_thread(password_matches, stored_hash, password)
    if row is None:
        return PasswordCheck(None, SignInFailure.UNKNOWN_ACCOUNT)
    if not matches:
        return PasswordCheck(None, SignInFailure.WRONG_PASSWORD)
    if row["disabled"]:
        return PasswordCheck(None, SignInFailure.DISABLED)
    return PasswordCheck(_user(row), None)


async def authenticate(connection: Connection, email: str, password: str) -> ConsoleUser | None:
    """The enabled person with this e-mail and password, else None (whichever part was wrong)."""
    return (await check_password(connection, email, password)).user


# ---------------------------------------------------------------------------------------------
# Sign-in rate limits
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignInLimits:
    """At most ``per_account`` failed attempts on one e-mail and ``per_address`` from one client
    address within any ``window``; attempts still being checked count as failed."""

    per_account: int
    per_address: int
    window: timedelta
    keep_attempts_for: timedelta = timedelta(days=30)


def retry_at(
    failures: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> datetime | None:
    """When one more attempt is allowed (None: now), given the times of failed attempts.

    With ``limit`` or more failures in the window, the next attempt waits until enough of them
    have left it to bring the count below ``limit``."""
    recent = sorted(at for at in failures if at > now - window)
    if len(recent) < limit:
        return None
    return recent[len(recent) - limit] + window


def sign_in_retry_at(
    account_failures: Sequence[datetime],
    address_failures: Sequence[datetime],
    limits: SignInLimits,
    now: datetime,
) -> datetime | None:
    """The later of the account's and the address's retry times (None: allowed now)."""
    times = [
        at
        for at in (
            retry_at(account_failures, limits.per_account, limits.window, now),
            retry_at(address_failures, limits.per_address, limits.window, now),
        )
        if at is not None
    ]
    return max(times) if times else None


@dataclass(frozen=True)
class SignInAttempt:
    attempt_id: int


@dataclass(frozen=True)
class SignInRefused:
    retry_at: datetime


# Advisory lock classes: an account's attempts, an address's attempts (always taken in this
# order, so two sign-ins never wait on each other in a cycle).
_ACCOUNT_LOCK, _ADDRESS_LOCK = 7_301, 7_302

_FAILURES = """
SELECT attempted_at FROM console_sign_in_attempts
WHERE {column} = $1 AND outcome <> 'succeeded' AND attempted_at > $2
ORDER BY attempted_at DESC LIMIT $3
"""


async def begin_sign_in(
    connection: Connection,
    email: str,
    client_address: str,
    limits: SignInLimits,
    now: datetime,
) -> SignInAttempt | SignInRefused:
    """Record a pending attempt, or refuse it when the account or the address has failed too
    often lately. The check and the record happen under the account's and the address's locks,
    so concurrent attempts on two instances cannot both slip under the limit."""
    account = normalized_email(email)
    since = now - limits.window
    async with connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2)),"
            " pg_advisory_xact_lock($3, hashtext($4))",
            _ACCOUNT_LOCK,
            account,
            _ADDRESS_LOCK,
            client_address,
        )
        account_failures = await connection.fetch(
            _FAILURES.format(column="email"), account, since, limits.per_account
        )
        address_failures = await connection.fetch(
            _FAILURES.format(column="client_address"), client_address, since, limits.per_address
        )
        refused_until = sign_in_retry_at(
            [row["attempted_at"] for row in account_failures],
            [row["attempted_at"] for row in address_failures],
            limits,
            now,
        )
        if refused_until is not None:
            return SignInRefused(refused_until)
        return await _record_pending_attempt(connection, account, client_address, limits, now)


async def begin_address_attempt(
    connection: Connection,
    account: str,
    client_address: str,
    limits: SignInLimits,
    now: datetime,
) -> SignInAttempt | SignInRefused:
    """Like :func:`begin_sign_in`, limited by the client address only: for attempts that name no
    e-mail (a personal API token's exchange, ``account`` being the token's id). Its failures
    count among the address's failed sign-ins, and the address's failed sign-ins among its."""
    async with connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))", _ADDRESS_LOCK, client_address
        )
        address_failures = await connection.fetch(
            _FAILURES.format(column="client_address"),
            client_address,
            now - limits.window,
            limits.per_address,
        )
        refused_until = retry_at(
            [row["attempted_at"] for row in address_failures],
            limits.per_address,
            limits.window,
            now,
        )
        if refused_until is not None:
            return SignInRefused(refused_until)
        return await _record_pending_attempt(connection, account, client_address, limits, now)


async def _record_pending_attempt(
    connection: Connection, account: str, client_address: str, limits: SignInLimits, now: datetime
) -> SignInAttempt:
    """Within the caller's transaction, under its locks: forget attempts too old to count, then
    record this one as pending until :func:`finish_sign_in` gives its outcome."""
    await connection.execute(
        "DELETE FROM console_sign_in_attempts WHERE attempted_at < $1",
        now - limits.keep_attempts_for,
    )
    attempt_id = await connection.fetchval(
        """
        INSERT INTO console_sign_in_attempts (email, client_address, attempted_at, outcome)
        VALUES ($1, $2, $3, 'pending') RETURNING attempt_id
        """,
        account,
        client_address,
        now,
    )
    return SignInAttempt(int(attempt_id))


async def finish_sign_in(
    connection: Connection, attempt: SignInAttempt, failure: SignInFailure | None
) -> None:
    """Record the attempt's outcome: succeeded (no longer counted), or failed and why."""
    await connection.execute(
        "UPDATE console_sign_in_attempts SET outcome = $2, failure = $3 WHERE attempt_id = $1",
        attempt.attempt_id,
        "succeeded" if failure is None else "failed",
        failure.value if failure is not None else None,
    )


@dataclass(frozen=True)
class RecordedAttempt:
    email: str
    client_address: str
    attempted_at: datetime
    outcome: str
    failure: str | None


async def recent_sign_in_failures(
    connection: Connection, since: datetime, limit: int = 500
) -> list[RecordedAttempt]:
    """Failed attempts since ``since``, newest first (for administrators)."""
    rows = await connection.fetch(
        """
        SELECT email, client_address, attempted_at, outcome, failure
        FROM console_sign_in_attempts
        WHERE outcome = 'failed' AND attempted_at >= $1
        ORDER BY attempted_at DESC LIMIT $2
        """,
        since,
        limit,
    )
    return [RecordedAttempt(**dict(row)) for row in rows]
