"""The console's OIDC sign-in, pure parts: what the flow cookie keeps, and the ID token checks
beyond the ones every service makes."""

from __future__ import annotations

import pytest

from riskrelay.reporting.oidc import PendingSignIn, check_id_token_claims, new_pending
from riskrelay.shared.auth import AuthenticationError


def test_the_pending_sign_in_round_trips_and_never_leads_off_the_console() -> None:
    pending = new_pending("/console/risks/r1")
    assert PendingSignIn.decode(pending.encode()) == pending
    assert len({pending.state, pending.nonce, pending.code_verifier}) == 3
    assert new_pending("https://evil.example.org/").next == "/console/queue"
    assert PendingSignIn.decode(None) is None
    assert PendingSignIn.decode("not base64 json") is None


def test_an_id_token_must_be_for_this_client_and_carry_this_sign_ins_nonce() -> None:
    check_id_token_claims({"aud": "console", "nonce": "n1"}, "console", "n1")
    check_id_token_claims(
        {"aud": ["api", "console"], "azp": "console", "nonce": "n1"}, "console", "n1"
    )
    for claims, reason in [
        ({"aud": "api", "nonce": "n1"}, "not for this console"),
        ({"aud": ["api", "console"], "azp": "api", "nonce": "n1"}, "another client"),
        ({"aud": "console", "nonce": "n2"}, "nonce"),
        ({"aud": "console"}, "nonce"),
    ]:
        with pytest.raises(AuthenticationError, match=reason):
            check_id_token_claims(claims, "console", "n1")
