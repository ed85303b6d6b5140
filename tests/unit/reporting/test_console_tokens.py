"""Personal API tokens' pure parts: the token's shape, and whom an exchange speaks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from riskrelay.reporting.console_tokens import (
    ExchangeRefused,
    StoredToken,
    identity_for,
    lifetime_of,
    new_token,
    parse_token,
    secret_hash,
)
from riskrelay.shared.auth import Person
from riskrelay.shared.events import Role

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
THEN = Person(user_id="u1", name="Lea Lead", email="lea@example.org", roles=[Role.TEAM_LEAD])
TODAY = Person(user_id="u1", name="Lea L.", email="lea@example.org", roles=[Role.ANALYST])


def stored(**changes: object) -> StoredToken:
    values: dict[str, object] = {
        "secret_hash": secret_hash("s3cret"),
        "expires_at": NOW + timedelta(days=1),
        "revoked_at": None,
        "snapshot": THEN,
        "external": False,
        "current": TODAY,
        "disabled": False,
    }
    values.update(changes)
    return StoredToken(**values)  # type: ignore[arg-type]


def test_a_new_token_parses_back_to_its_id_and_the_hash_it_is_stored_under() -> None:
    token = new_token()
    assert token.plaintext.startswith(f"rrpat_{token.token_id}_")
    assert token.secret_hash not in token.plaintext
    assert parse_token(token.plaintext) == (token.token_id, token.secret_hash)
    assert new_token().plaintext != token.plaintext
    for not_a_token in ("", "rrpat_", token.plaintext + "x", token.plaintext[1:], "a.b.c"):
        assert parse_token(not_a_token) is None


def test_a_local_user_token_speaks_for_the_person_as_they_are_now() -> None:
    assert identity_for(stored(), secret_hash("s3cret"), NOW) == TODAY


def test_a_token_of_a_person_signed_in_elsewhere_carries_its_snapshot() -> None:
    assert identity_for(stored(external=True, current=None), secret_hash("s3cret"), NOW) == THEN


@pytest.mark.parametrize(
    ("token", "presented", "reason"),
    [
        (None, "s3cret", "unknown token"),
        (stored(), "guess", "unknown token"),
        (stored(revoked_at=NOW - timedelta(minutes=1)), "s3cret", "token revoked"),
        (stored(expires_at=NOW), "s3cret", "token expired"),
        (stored(disabled=True), "s3cret", "the token's person is disabled"),
        (stored(current=None), "s3cret", "the token's person no longer exists"),
    ],
)
def test_refusals_name_their_reason(token: StoredToken | None, presented: str, reason: str) -> None:
    with pytest.raises(ExchangeRefused, match=reason):
        identity_for(token, secret_hash(presented), NOW)


def test_lifetimes_are_one_of_the_offered_choices() -> None:
    assert lifetime_of(None) == timedelta(days=90)
    assert lifetime_of("7") == timedelta(days=7)
    assert lifetime_of("8") is None
    assert lifetime_of("soon") is None
