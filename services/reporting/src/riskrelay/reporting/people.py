"""The console's people: users with a name, an e-mail and protocol roles, in PostgreSQL.

Passwords are hashed with argon2id (``argon2-cffi``'s RFC 9106 defaults) and checked in a worker
thread, so a sign-in does not hold the event loop for the hash's ~50 ms. An unknown e-mail costs
the same hash as a known one, so the time taken does not tell which e-mails exist.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

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


async def authenticate(connection: Connection, email: str, password: str) -> ConsoleUser | None:
    """The enabled person with this e-mail and password, else None (whichever part was wrong)."""
    row = await connection.fetchrow(
        "SELECT * FROM console_users WHERE email = $1", normalized_email(email)
    )
    stored_hash = row["password_hash"] if row is not None else _UNKNOWN_USER_HASH
    matches = await asyncio.to_thread(password_matches, stored_hash, password)
    if row is None or not matches or row["disabled"]:
        return None
    return _user(row)
