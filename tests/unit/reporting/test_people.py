"""Console people: password hashing and what an administrator may set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from riskrelay.reporting.people import (
    SignInLimits,
    UserFields,
    hash_password,
    normalized_email,
    password_matches,
    retry_at,
    sign_in_retry_at,
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


NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def test_an_attempt_waits_until_enough_failures_have_left_the_window() -> None:
    failures = [NOW - timedelta(minutes=m) for m in (14, 10, 2)]
    assert retry_at(failures, limit=4, window=WINDOW, now=NOW) is None
    # At the limit: the oldest failure leaves the window in one minute.
    assert retry_at(failures, limit=3, window=WINDOW, now=NOW) == NOW + timedelta(minutes=1)
    # With a limit of 1 every failure must leave the window, the newest last.
    assert retry_at(failures, limit=1, window=WINDOW, now=NOW) == NOW + timedelta(minutes=13)
    # Failures older than the window do not count, in any order.
    old = [NOW - timedelta(minutes=40), NOW - timedelta(minutes=2), NOW - timedelta(minutes=16)]
    assert retry_at(old, limit=2, window=WINDOW, now=NOW) is None


def test_the_account_and_the_address_limits_both_apply_and_the_later_wins() -> None:
    limits = SignInLimits(per_account=2, per_address=3, window=WINDOW)
    account = [NOW - timedelta(minutes=12), NOW - timedelta(minutes=5)]
    address = [NOW - timedelta(minutes=m) for m in (9, 8, 1)]
    assert sign_in_retry_at(account, address, limits, NOW) == NOW + timedelta(minutes=6)
    assert sign_in_retry_at(account, address[1:], limits, NOW) == NOW + timedelta(minutes=3)
    assert sign_in_retry_at(account[1:], address[1:], limits, NOW) is None
