"""Console people: password hashing and what an administrator may set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from riskrelay.reporting.people import (
    UserFields,
    hash_password,
    normalized_email,
    password_matches,
    valid_email,
)
from riskrelay.shared.events import Role


def test_passwords_are_hashed_with_argon2id_and_salted() -> None:
    first = hash_password("correct horse battery")
    second = hash_password("correct horse battery")
    assert first.startswith("$argon2id$")
    assert "correct horse battery" not in first
    assert first != second  # a fresh salt each time
    assert password_matches(first, "correct horse battery")
    assert password_matches(second, "correct horse battery")
    assert not password_matches(first, "correct horse battery!")
    assert not password_matches("not-a-hash", "correct horse battery")


def test_user_fields_keep_person_roles_in_protocol_order() -> None:
    fields = UserFields(name="Max", roles=[Role.ANALYST, Role.TEAM_LEAD], password="x" * 12)
    assert fields.roles == [Role.TEAM_LEAD, Role.ANALYST]
    with pytest.raises(ValidationError, match="upstream"):
        UserFields(name="Bot", roles=[Role.UPSTREAM], password="x" * 12)
    with pytest.raises(ValidationError, match="at least 12"):
        UserFields(name="Max", roles=[Role.AGENT], password="short")
    with pytest.raises(ValidationError):
        UserFields(name="Max", roles=[], password="x" * 12)


def test_emails() -> None:
    assert normalized_email("  Lea.Lead@Example.ORG ") == "lea.lead@example.org"
    assert valid_email("lea@example.org")
    assert not valid_email("lea")
    assert not valid_email("lea@example")
    assert not valid_email("le a@example.org")
