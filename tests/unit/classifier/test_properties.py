"""Properties of classification over arbitrary sequences of flagged tickets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskrelay.classifier.domain import (
    ClassificationOutcome,
    EmitReason,
    RiskState,
    apply_override,
    classify,
    redundant_publications,
)
from riskrelay.classifier.policy import RiskPolicy, default_policy
from riskrelay.shared.events import (
    ClusterInfo,
    Detection,
    Indicator,
    RiskCategory,
    RiskFlag,
    RiskLevel,
    Role,
    TicketFlagged,
)

pytestmark = pytest.mark.unit

POLICY = default_policy()
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
RULE_IDS = [
    "data_concern.exposure",
    "data_concern.unauthorized_access",
    "data_concern.privacy_question",
    "data_concern.brand_new_rule",
    "security_issue.vulnerability",
    "security_issue.account_takeover",
    "compliance_question.gdpr_request",
    "compliance_question.regulator",
    "compliance_question.lawsuit",
    "severe_impact.financial",
    "severe_impact.outage",
    "severe_impact.operational",
    "reputation_threat.press",
    "reputation_threat.social_media",
    "reputation_threat.executive",
    "multiple_similar_reports.surge",
    "unusual_pattern.rate",
    "agent_risk_flag.manual",
]

detections = st.builds(
    lambda rule_id, confidence: Detection(
        indicator=Indicator(rule_id.split(".")[0]),
        rule_id=rule_id,
        evidence=f"evidence for {rule_id}",
        confidence=confidence,
    ),
    st.sampled_from(RULE_IDS),
    st.sampled_from([0.2, 0.6, 0.95]),
)
risk_flags = st.none() | st.builds(
    RiskFlag,
    level=st.sampled_from(list(RiskLevel)),
    category=st.none() | st.sampled_from(list(RiskCategory)),
)


@st.composite
def ticket_sequences(draw: st.DrawFn, clustered: bool) -> list[TicketFlagged]:
    """Tickets of one cluster (growing) or follow-ups of one lone ticket."""
    count = draw(st.integers(min_value=1, max_value=8))
    tickets = []
    surged = False
    for n in range(1, count + 1):
        surged = surged or draw(st.booleans())
        ticket_id = f"T-{draw(st.integers(1, 4))}" if clustered else "T-lone"
        tickets.append(
            TicketFlagged(
                ticket_id=ticket_id,
                upstream_event_id=f"evt-{n}",
                upstream_source="zendesk://acme",
                event_kind="created" if n == 1 else "updated",
                occurred_at=T0 + timedelta(minutes=draw(st.integers(0, 600))),
                channel=draw(st.sampled_from(["email", "chat", "social"])),
                priority=draw(st.sampled_from(["low", "normal", "high", "urgent"])),
                product=draw(st.sampled_from(["payments", "app"])),
                customer_id=f"cust-{draw(st.integers(1, 5))}",
                customer_segment=draw(st.sampled_from(["consumer", "smb", "enterprise"])),
                customer_vulnerable=draw(st.booleans()),
                tags=draw(st.lists(st.sampled_from(["bug", "ui", "safety", "outage"]), max_size=2)),
                redacted_subject="Something is wrong",
                redacted_summary="[EMAIL] reports a problem",
                indicators=draw(st.lists(detections, min_size=1, max_size=3)),
                financial_amount=draw(st.none() | st.sampled_from([50.0, 10_000.0, 250_000.0])),
                risk_flag=draw(risk_flags),
                cluster=ClusterInfo(
                    cluster_id="cluster-p",
                    size=n,
                    distinct_customers=max(1, n - 1),
                    surging=surged,
                    first_seen_at=T0,
                )
                if clustered
                else None,
                rule_pack_version="p-1",
            )
        )
    return tickets


sequences = st.booleans().flatmap(ticket_sequences)


def replay(
    tickets: list[TicketFlagged], policy: RiskPolicy = POLICY, state: RiskState | None = None
) -> list[ClassificationOutcome]:
    outcomes = []
    for n, ticket in enumerate(tickets):
        outcome = classify(ticket, state, policy, T0 + timedelta(minutes=n))
        outcomes.append(outcome)
        state = outcome.state
    return outcomes


def observable(outcomes: list[ClassificationOutcome]) -> list[tuple[Any, ...]]:
    return [(o.state.model_dump_json(), o.classified, o.reason) for o in outcomes]


@settings(max_examples=150, deadline=None)
@given(sequences)
def test_same_inputs_give_the_same_outputs(tickets: list[TicketFlagged]) -> None:
    assert observable(replay(tickets)) == observable(replay(tickets))


@settings(max_examples=150, deadline=None)
@given(sequences)
def test_level_never_falls_and_never_below_an_agent_flag(tickets: list[TicketFlagged]) -> None:
    outcomes = replay(tickets)
    highest_flag = 0
    previous_level = 0
    for ticket, outcome in zip(tickets, outcomes, strict=True):
        if ticket.risk_flag is not None:
            highest_flag = max(highest_flag, ticket.risk_flag.level)
        level = outcome.state.level
        assert level >= previous_level
        assert level >= highest_flag
        if outcome.reason == EmitReason.UPGRADE:
            assert outcome.classified is not None
            assert outcome.classified.previous_level == previous_level < level
        elif outcome.classified is not None:
            assert outcome.classified.previous_level is None
        if outcome.classified is not None:
            assert outcome.classified.level == level
            assert len(outcome.classified.evidence) <= POLICY.evidence_limit
            assert any(c.decisive for c in outcome.classified.rules_fired)
        previous_level = level
    assert outcomes[0].reason == EmitReason.FIRST_CLASSIFICATION


@settings(max_examples=150, deadline=None)
@given(sequences)
def test_every_ticket_is_published_and_the_counts_are_those_of_the_list(
    tickets: list[TicketFlagged],
) -> None:
    outcomes = replay(tickets)
    redundant = redundant_publications(outcomes)
    announced: set[str] = set()
    for n, outcome in enumerate(outcomes):
        so_far = tickets[: n + 1]
        if outcome.classified is not None:
            event = outcome.classified
            assert event.ticket_ids == list(dict.fromkeys(t.ticket_id for t in so_far))
            assert event.ticket_count == len(event.ticket_ids)
            assert event.distinct_customers == len({t.customer_id for t in so_far})
            if n not in redundant:
                announced.update([event.ticket_id, *event.ticket_ids])
    # What a batch of these inputs publishes names every ticket that joined.
    assert announced == {ticket.ticket_id for ticket in tickets}


@settings(max_examples=100, deadline=None)
@given(sequences, st.integers(min_value=0, max_value=7))
def test_persisting_state_between_inputs_changes_nothing(
    tickets: list[TicketFlagged], cut: int
) -> None:
    cut = min(cut, len(tickets))
    whole = replay(tickets)
    head = replay(tickets[:cut])
    restored = RiskState.model_validate_json(head[-1].state.model_dump_json()) if head else None
    tail = []
    state = restored
    for n, ticket in enumerate(tickets[cut:], start=cut):
        outcome = classify(ticket, state, POLICY, T0 + timedelta(minutes=n))
        tail.append(outcome)
        state = outcome.state
    assert observable(head + tail) == observable(whole)


@settings(max_examples=100, deadline=None)
@given(sequences, st.sampled_from(list(RiskLevel)))
def test_after_an_override_automatic_classification_never_lowers(
    tickets: list[TicketFlagged], human_level: RiskLevel
) -> None:
    first, *rest = tickets
    state = classify(first, None, POLICY, T0).state
    state = apply_override(state, human_level, "reviewed", "mia", Role.SUPPORT_MANAGER, T0).state
    for ticket in rest:
        before = state.level
        outcome = classify(ticket, state, POLICY, T0 + timedelta(hours=1))
        state = outcome.state
        assert state.level >= before
        assert state.level >= human_level
