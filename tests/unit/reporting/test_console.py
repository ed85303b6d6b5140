"""The console's pure parts: queue order and time left, redirects, CSRF and role scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from riskrelay.reporting.console import (
    AckOutcome,
    back_to,
    csrf_matches,
    decision_of,
    queue_items,
    queue_roles,
    retry_text,
    safe_next,
    time_left_text,
)
from riskrelay.reporting.store import OpenStep
from riskrelay.shared.auth import Principal
from riskrelay.shared.events import ReviewDecision, Role

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def step(name: str, level: int, due_in: timedelta | None) -> OpenStep:
    return OpenStep(
        escalation_id=name,
        risk_id=f"risk-{name}",
        title=None,
        level=level,
        step=1,
        roles=["team_lead"],
        ack_due_at=NOW + due_in if due_in is not None else None,
        timeframe_due_at=None,
        first_notified_at=NOW - timedelta(minutes=5),
        notices=1,
        breached=False,
    )


def test_most_urgent_first_overdue_leads_and_level_breaks_ties() -> None:
    items = queue_items(
        [
            step("later", 5, timedelta(hours=2)),
            step("none", 5, None),
            step("overdue", 3, timedelta(minutes=-10)),
            step("soon-low", 3, timedelta(minutes=20)),
            step("soon-high", 5, timedelta(minutes=20)),
        ],
        NOW,
    )
    assert [i.step.escalation_id for i in items] == [
        "overdue",
        "soon-high",
        "soon-low",
        "later",
        "none",
    ]
    assert items[0].overdue
    assert items[0].time_left == "overdue by 10 min"
    assert items[1].time_left == "20 min left"
    assert items[3].time_left == "2 h 0 min left"
    assert items[4].time_left == "no deadline"
    assert not items[4].overdue


def test_time_left_text() -> None:
    assert time_left_text(30) == "under a minute left"
    assert time_left_text(3 * 86_400 + 7_200) == "3 d 2 h left"
    assert time_left_text(-3_700) == "overdue by 1 h 1 min"


def test_only_console_paths_are_followed_after_sign_in() -> None:
    assert safe_next("/console/risks/r-1") == "/console/risks/r-1"
    assert safe_next("https://evil.example/console/") == "/console/queue"
    assert safe_next("//evil.example/console/") == "/console/queue"
    assert safe_next(None) == "/console/queue"


def test_csrf_token_must_match_the_cookie() -> None:
    assert csrf_matches("abc123", "abc123")
    assert not csrf_matches("abc123", "abc124")
    assert not csrf_matches("abc123", None)
    assert not csrf_matches(None, "abc123")
    assert not csrf_matches("", "")


def test_queue_scope_is_the_persons_roles_and_everything_for_admins() -> None:
    lead = Principal("u", Role.TEAM_LEAD, frozenset({Role.TEAM_LEAD, Role.AGENT}), "L", "l@x.org")
    assert queue_roles(lead) == ["agent", "team_lead"]
    admin = Principal("a", Role.ADMIN, name="A", email="a@x.org")
    assert queue_roles(admin) is None


def test_a_decision_is_one_of_the_two_outcomes_or_nothing() -> None:
    assert decision_of("confirmed") is ReviewDecision.CONFIRMED
    assert decision_of("not_confirmed") is ReviewDecision.NOT_CONFIRMED
    assert decision_of("maybe") is None
    assert decision_of("") is None
    assert decision_of(None) is None


def test_an_action_returns_to_the_console_page_it_came_from_with_its_outcome() -> None:
    done = back_to({"next": "/console/risks/r-1"}, AckOutcome(True, "Acknowledged step s."))
    assert done.headers["location"] == "/console/risks/r-1?done=Acknowledged%20step%20s."
    failed = back_to({"next": "https://evil.example/"}, AckOutcome(False, "No"))
    assert failed.headers["location"] == "/console/queue?failed=No"
    keeps_query = back_to({"next": "/console/register?level=4"}, AckOutcome(True, "ok"))
    assert keeps_query.headers["location"] == "/console/register?level=4&done=ok"


def test_a_step_acknowledged_here_leaves_the_queue_until_the_read_model_has_caught_up() -> None:
    from types import SimpleNamespace

    from riskrelay.reporting.console import just_acknowledged, without_just_acknowledged

    context: Any = SimpleNamespace(state={})
    steps = [step("acked", 5, timedelta(hours=1)), step("open", 5, timedelta(hours=1))]
    just_acknowledged(context, "acked", NOW)
    assert [s.escalation_id for s in without_just_acknowledged(context, steps, NOW)] == ["open"]
    # Long after, the read model decides again (an acknowledgement lost on the way shows up).
    later = NOW + timedelta(minutes=6)
    assert len(without_just_acknowledged(context, steps, later)) == 2


def test_the_retry_text_names_a_wait_that_reaches_the_time_it_names() -> None:
    now = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC)
    assert retry_text(now + timedelta(minutes=14, seconds=50), now) == (
        "Try again in 15 min, after 12:16 UTC (2026-06-01)."
    )
    assert retry_text(now + timedelta(seconds=5), now) == (
        "Try again in 1 min, after 12:01 UTC (2026-06-01)."
    )
    assert retry_text(datetime(2026, 6, 1, 23, 59, 1, tzinfo=UTC), now).endswith(
        "after 00:00 UTC (2026-06-02)."
    )
