"""Teams Adaptive Cards and acknowledgement links (signed, bound, expiring)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from riskrelay.escalator.links import LINK_AUDIENCE, AckLinks, LinkRefused, same_person
from riskrelay.escalator.person_notices import StepFacts, build_person_notifications
from riskrelay.escalator.policy import StepKind
from riskrelay.shared.auth import AuthenticationError, IdentityTokens, Person
from riskrelay.shared.events import ReviewDecision, Role
from tests.unit.escalator.test_email_notices import DETAILS, KEY, LINKS, due_event, roster_of

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)


def issue(links: AckLinks = LINKS, **changes: object) -> str:
    fields: dict[str, object] = {
        "notice_id": "evt-1",
        "escalation_id": "esc-1",
        "person": "Nina@Example.org",
        "decision": None,
        "channel": "email",
        "issued_at": NOW,
        "valid_for": timedelta(hours=72),
    } | changes
    return links.issue(**fields)  # type: ignore[arg-type]


def test_teams_card_carries_the_notice_and_the_persons_links() -> None:
    roster = roster_of(
        people={
            "nina": {
                "name": "Nina",
                "email": "nina@example.org",
                "calendar": "new-york",
                "channels": ["leads-teams"],
            }
        }
    )
    [post] = build_person_notifications(
        roster, due_event(), StepFacts(DETAILS, StepKind.ACKNOWLEDGE), LINKS, NOW
    )
    assert (post.channel, post.url) == ("teams", "https://teams.example.invalid/hook")
    [attachment] = post.payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
    assert facts["Tickets"] == "7"
    assert facts["Customers"] == "5"
    assert facts["Acknowledge by"].startswith("Tue 10 Mar 2026, 17:00 EDT")
    acknowledge, queue = card["actions"]
    assert acknowledge["title"] == "Acknowledge"
    assert "/console/links/ack?token=" in acknowledge["url"]
    token = acknowledge["url"].split("token=")[1]
    assert LINKS.verify(token, NOW).channel == "teams"
    assert queue["url"] == "http://console.example.invalid/console/queue"


def test_a_link_is_bound_to_step_person_decision_and_expiry() -> None:
    token = issue(decision=ReviewDecision.CONFIRMED)
    claims = LINKS.verify(token, NOW + timedelta(hours=71))
    assert (claims.escalation_id, claims.person, claims.decision) == (
        "esc-1",
        "nina@example.org",
        ReviewDecision.CONFIRMED,
    )
    assert same_person(claims.person, " NINA@example.org")
    assert not same_person(claims.person, "x@y.z")
    # The same notice, person and decision give the same link id: a re-queued notice's link.
    assert LINKS.verify(issue(decision=ReviewDecision.CONFIRMED), NOW).link_id == claims.link_id
    assert LINKS.verify(issue(), NOW).link_id != claims.link_id
    with pytest.raises(LinkRefused) as expired:
        LINKS.verify(token, NOW + timedelta(hours=72))
    assert expired.value.reason == "expired"
    assert expired.value.claims is not None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-3] + ("AAA" if not t.endswith("AAA") else "BBB"),  # signature
        lambda t: t.replace(t.split(".")[1], t.split(".")[1][:-2] + "xx"),  # claims
        lambda t: "not-a-link",
        lambda t: issue(AckLinks({"k1": "o" * 40}, "k1")),  # another key under the same id
    ],
)
def test_a_tampered_link_is_refused(tamper: object) -> None:
    with pytest.raises(LinkRefused) as refused:
        LINKS.verify(tamper(issue()), NOW)  # type: ignore[operator]
    assert refused.value.reason == "tampered"


def test_a_persons_token_is_not_a_link_and_a_link_is_not_a_persons_token() -> None:
    identity = IdentityTokens({"k1": KEY}, issuer="riskrelay-console", audience="riskrelay",
                              signing_key_id="k1", clock=lambda: NOW)  # fmt: skip
    person_token = identity.sign(
        Person("u1", "Nina", "nina@example.org", [Role.TEAM_LEAD]), timedelta(hours=1)
    )
    with pytest.raises(LinkRefused):
        LINKS.verify(person_token, NOW)
    with pytest.raises(AuthenticationError):
        identity.verify(issue())
    assert (
        jwt.decode(
            issue(),
            KEY,
            algorithms=["HS256"],
            audience=LINK_AUDIENCE,
            options={"verify_exp": False},
        )["sub"]
        == "nina@example.org"
    )
