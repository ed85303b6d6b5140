"""Classification of flagged tickets into risks: levels, clusters, upgrades, overrides."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from riskrelay.classifier.domain import (
    MAX_TICKET_IDS,
    NO_DOWNGRADE_RULE_ID,
    OVERRIDE_HOLD_RULE_ID,
    OVERRIDE_ROLES,
    ClassificationOutcome,
    EmitReason,
    InvalidOverrideError,
    OverrideNotAllowedError,
    RiskMismatchError,
    RiskState,
    apply_override,
    classify,
    cluster_risk_id,
    redundant_publications,
    risk_id_for,
    ticket_risk_id,
)
from riskrelay.classifier.policy import RiskPolicy, parse_policy
from riskrelay.shared.events import (
    RiskCategory,
    RiskClassified,
    RiskLevel,
    Role,
    TicketFlagged,
)

pytestmark = pytest.mark.unit

L = RiskLevel
C = RiskCategory


def published(outcome: ClassificationOutcome) -> RiskClassified:
    assert outcome.classified is not None, f"expected a publication, reason={outcome.reason}"
    return outcome.classified


def run(
    policy: RiskPolicy, tickets: list[TicketFlagged], state: RiskState | None = None
) -> list[ClassificationOutcome]:
    outcomes = []
    for ticket in tickets:
        outcome = classify(ticket, state, policy, ticket.occurred_at)
        outcomes.append(outcome)
        state = outcome.state
    return outcomes


# ---------------------------------------------------------------------------------------------
# Every level and category is reachable with the default policy
# ---------------------------------------------------------------------------------------------

SINGLE_TICKET_CASES: dict[str, tuple[dict[str, Any], RiskLevel, RiskCategory]] = {
    "data breach": ({"rules": ["data_concern.exposure"]}, L.CRITICAL, C.DATA_SECURITY_PRIVACY),
    "account takeover": (
        {"rules": ["security_issue.account_takeover"]},
        L.CRITICAL,
        C.DATA_SECURITY_PRIVACY,
    ),
    "outage": ({"rules": ["severe_impact.outage"]}, L.CRITICAL, C.SERVICE_DISRUPTION),
    "regulator": ({"rules": ["compliance_question.regulator"]}, L.HIGH, C.COMPLIANCE),
    "lawsuit": ({"rules": ["compliance_question.lawsuit"]}, L.HIGH, C.COMPLIANCE),
    "press": ({"rules": ["reputation_threat.press"]}, L.HIGH, C.REPUTATION),
    "vulnerability": (
        {"rules": ["security_issue.vulnerability"]},
        L.HIGH,
        C.DATA_SECURITY_PRIVACY,
    ),
    "product safety tag": (
        {"rules": ["severe_impact.operational"], "tags": ["safety"]},
        L.HIGH,
        C.PRODUCT_SAFETY,
    ),
    "gdpr request": ({"rules": ["compliance_question.gdpr_request"]}, L.MEDIUM, C.COMPLIANCE),
    "financial impact": ({"rules": ["severe_impact.financial"]}, L.MEDIUM, C.OPERATIONAL),
    "operational impact": (
        {"rules": ["severe_impact.operational"]},
        L.MEDIUM,
        C.SERVICE_DISRUPTION,
    ),
    "social media": ({"rules": ["reputation_threat.social_media"]}, L.MEDIUM, C.REPUTATION),
    "executive complaint": ({"rules": ["reputation_threat.executive"]}, L.MEDIUM, C.REPUTATION),
    "unusual rate": ({"rules": ["unusual_pattern.rate"]}, L.MEDIUM, C.OPERATIONAL),
    "privacy question": (
        {"rules": ["data_concern.privacy_question"]},
        L.LOW,
        C.DATA_SECURITY_PRIVACY,
    ),
    "compliance question": ({"rules": ["compliance_question.other"]}, L.LOW, C.COMPLIANCE),
    "minor bug flagged by agent": (
        {"rules": ["agent_risk_flag.manual"], "tags": ["bug"], "flag": 2},
        L.LOW,
        C.OPERATIONAL,
    ),
    "ui inconsistency": (
        {"rules": ["agent_risk_flag.manual"], "tags": ["ui"], "flag": 1},
        L.MINIMAL,
        C.OPERATIONAL,
    ),
    "feature request": (
        {"rules": ["agent_risk_flag.manual"], "tags": ["feature_request"], "flag": 1},
        L.MINIMAL,
        C.OPERATIONAL,
    ),
}


@pytest.mark.parametrize(
    ("spec", "level", "category"), list(SINGLE_TICKET_CASES.values()), ids=list(SINGLE_TICKET_CASES)
)
def test_single_ticket_levels_and_categories(
    build: Any, policy: RiskPolicy, spec: dict[str, Any], level: RiskLevel, category: RiskCategory
) -> None:
    ticket = build.flagged(
        *spec["rules"],
        tags=spec.get("tags", []),
        risk_flag=build.flag(spec["flag"]) if "flag" in spec else None,
    )
    outcome = classify(ticket, None, policy, build.t0)
    event = published(outcome)
    assert outcome.reason == EmitReason.FIRST_CLASSIFICATION
    assert (event.level, event.category) == (level, category)
    assert event.previous_level is None
    assert event.policy_version == policy.version
    assert any(c.decisive for c in event.rules_fired)


def test_every_level_and_category_is_reached() -> None:
    assert {level for _, level, _ in SINGLE_TICKET_CASES.values()} == set(RiskLevel)
    assert {category for _, _, category in SINGLE_TICKET_CASES.values()} == set(RiskCategory)


def test_publication_explains_itself(build: Any, policy: RiskPolicy) -> None:
    ticket = build.flagged(
        detections=[
            build.detection("data_concern.exposure", evidence="I can see [EMAIL]'s orders")
        ],
        tags=["bug"],
        data_classification=["email"],
    )
    event = published(classify(ticket, None, policy, build.t0 + build.minutes(1)))
    by_id = {c.rule_id: c for c in event.rules_fired}
    assert by_id["data-exposure"].decisive
    assert by_id["data-exposure"].level == L.CRITICAL
    assert by_id["data-exposure"].effect == "sets_level"
    assert not by_id["minor-bug"].decisive
    assert [d.evidence for d in event.evidence] == ["I can see [EMAIL]'s orders"]
    assert event.risk_id == ticket_risk_id("T-1")
    assert event.ticket_ids == ["T-1"]
    assert (event.ticket_count, event.distinct_customers) == (1, 1)
    assert event.first_reported_at == build.t0
    assert event.flagged_at == build.t0 + build.minutes(1)  # the cause's event time
    assert event.title == "Problem reported on T-1"
    assert [kind.value for kind in event.data_classification] == ["email"]


# ---------------------------------------------------------------------------------------------
# Impact modifiers and the agent floor
# ---------------------------------------------------------------------------------------------

MODIFIERS: dict[str, dict[str, Any]] = {
    "vulnerable customer": {"customer_vulnerable": True},
    "financial amount at threshold": {"financial_amount": 10_000.0},
    "enterprise segment": {"customer_segment": "enterprise"},
    "public sector segment": {"customer_segment": "public_sector"},
    "urgent priority": {"priority": "urgent"},
}


@pytest.mark.parametrize("fields", list(MODIFIERS.values()), ids=list(MODIFIERS))
def test_each_impact_modifier_raises_medium_to_high(
    build: Any, policy: RiskPolicy, fields: dict[str, Any]
) -> None:
    plain = published(classify(build.flagged("severe_impact.financial"), None, policy, build.t0))
    raised = published(
        classify(build.flagged("severe_impact.financial", **fields), None, policy, build.t0)
    )
    assert plain.level == L.MEDIUM
    assert raised.level == L.HIGH
    assert [c.effect for c in raised.rules_fired if c.decisive] == ["sets_level", "raises_level"]


def test_financial_amount_below_threshold_does_not_raise(build: Any, policy: RiskPolicy) -> None:
    ticket = build.flagged("severe_impact.financial", financial_amount=9_999.99)
    assert published(classify(ticket, None, policy, build.t0)).level == L.MEDIUM


def test_modifiers_together_raise_one_level_only(build: Any, policy: RiskPolicy) -> None:
    ticket = build.flagged(
        "compliance_question.other",
        customer_vulnerable=True,
        priority="urgent",
        customer_segment="enterprise",
    )
    assert published(classify(ticket, None, policy, build.t0)).level == L.MEDIUM  # 2 + 1


def test_modifiers_never_make_a_risk_critical(build: Any, policy: RiskPolicy) -> None:
    ticket = build.flagged("reputation_threat.press", customer_vulnerable=True)
    assert published(classify(ticket, None, policy, build.t0)).level == L.HIGH


def test_many_distinct_customers_raise_a_cluster(build: Any, policy: RiskPolicy) -> None:
    nine = build.flagged("severe_impact.operational", cluster=build.cluster(12, 9))
    ten = build.flagged("severe_impact.operational", cluster=build.cluster(12, 10))
    assert published(classify(nine, None, policy, build.t0)).level == L.MEDIUM
    event = published(classify(ten, None, policy, build.t0))
    assert event.level == L.HIGH
    assert "many-customers" in [c.rule_id for c in event.rules_fired if c.decisive]
    # The policy counts intake's cluster; the event counts the tickets that joined the risk.
    assert (event.ticket_ids, event.ticket_count, event.distinct_customers) == (["T-1"], 1, 1)


def test_agent_floor_of_two_on_a_breach_stays_critical(build: Any, policy: RiskPolicy) -> None:
    ticket = build.flagged("data_concern.exposure", risk_flag=build.flag(2))
    assert published(classify(ticket, None, policy, build.t0)).level == L.CRITICAL


def test_agent_floor_raises_a_low_risk(build: Any, policy: RiskPolicy) -> None:
    ticket = build.flagged("data_concern.privacy_question", risk_flag=build.flag(4, C.REPUTATION))
    event = published(classify(ticket, None, policy, build.t0))
    assert event.level == L.HIGH
    assert event.category == C.REPUTATION  # the agent's category outranks priority-240 rules
    assert [c.rule_id for c in event.rules_fired if c.decisive] == ["agent_risk_flag"]


def test_agent_floor_holds_across_the_risks_tickets(build: Any, policy: RiskPolicy) -> None:
    first = build.flagged(
        "severe_impact.operational",
        ticket_id="A",
        risk_flag=build.flag(4),
        cluster=build.cluster(2),
    )
    second = build.flagged(
        "severe_impact.operational",
        ticket_id="B",
        risk_flag=build.flag(1),
        cluster=build.cluster(3),
        at=build.t0 + build.minutes(5),
    )
    outcomes = run(policy, [first, second])
    assert outcomes[1].state.agent_level == L.HIGH
    assert outcomes[1].state.level == L.HIGH
    assert outcomes[1].decision is not None
    assert outcomes[1].decision.level == L.HIGH  # the floor, not just no-downgrade


# ---------------------------------------------------------------------------------------------
# Clusters: one risk, growing, upgrading
# ---------------------------------------------------------------------------------------------


def test_growing_cluster_upgrades_medium_high_critical(build: Any, policy: RiskPolicy) -> None:
    t = build.t0
    first_seen = t - build.minutes(30)
    tickets = [
        build.flagged(
            "severe_impact.operational",
            ticket_id="T-1",
            customer_id="c1",
            at=t,
            cluster=build.cluster(2, 2, first_seen_at=first_seen),
        ),
        build.flagged(
            "severe_impact.operational",
            ticket_id="T-2",
            customer_id="c2",
            at=t + build.minutes(10),
            cluster=build.cluster(6, 5, surging=True, first_seen_at=first_seen),
        ),
        build.flagged(
            "severe_impact.operational",
            ticket_id="T-3",
            customer_id="c3",
            at=t + build.minutes(20),
            cluster=build.cluster(7, 6, surging=True, first_seen_at=first_seen),
        ),
        build.flagged(
            detections=[build.detection("data_concern.exposure", confidence=0.3)],
            ticket_id="T-4",
            customer_id="c4",
            at=t + build.minutes(30),
            cluster=build.cluster(8, 7, surging=True, first_seen_at=first_seen),
        ),
    ]
    outcomes = run(policy, tickets)
    reasons = [outcome.reason for outcome in outcomes]
    assert reasons == [
        EmitReason.FIRST_CLASSIFICATION,
        EmitReason.UPGRADE,
        EmitReason.TICKET_JOINED,  # another ticket at the same level: the register lists it
        EmitReason.UPGRADE,
    ]
    medium, high, critical = (published(outcomes[i]) for i in (0, 1, 3))
    assert {medium.risk_id, high.risk_id, critical.risk_id} == {cluster_risk_id("cluster-1")}
    assert (medium.level, medium.previous_level) == (L.MEDIUM, None)
    assert (high.level, high.previous_level) == (L.HIGH, L.MEDIUM)
    assert (critical.level, critical.previous_level) == (L.CRITICAL, L.HIGH)
    assert critical.category == C.DATA_SECURITY_PRIVACY
    assert [c.rule_id for c in critical.rules_fired if c.decisive] == ["surge-with-data-exposure"]
    # Escalation clocks restart at each new level, at the event time that caused it.
    assert [e.flagged_at for e in (medium, high, critical)] == [
        t,
        t + build.minutes(10),
        t + build.minutes(30),
    ]
    assert critical.first_reported_at == first_seen
    assert critical.ticket_ids == ["T-1", "T-2", "T-3", "T-4"]
    # Counts are of the risk's tickets, not of the cluster (8 tickets, 7 customers so far).
    assert (critical.ticket_count, critical.distinct_customers) == (4, 4)
    assert critical.cluster_id == "cluster-1"
    joined = published(outcomes[2])
    assert (joined.level, joined.previous_level, joined.ticket_id) == (L.HIGH, None, "T-3")
    assert joined.ticket_ids == ["T-1", "T-2", "T-3"]
    assert joined.flagged_at == t + build.minutes(10)  # same level: the clock keeps running


def test_weak_exposure_alone_is_high_but_critical_in_a_surge(
    build: Any, policy: RiskPolicy
) -> None:
    weak = [build.detection("data_concern.exposure", confidence=0.3)]
    alone = published(classify(build.flagged(detections=weak), None, policy, build.t0))
    surging = published(
        classify(
            build.flagged(detections=weak, cluster=build.cluster(9, surging=True)),
            None,
            policy,
            build.t0,
        )
    )
    assert (alone.level, surging.level) == (L.HIGH, L.CRITICAL)


def test_surge_stays_in_the_risk_after_the_cluster_calms(build: Any, policy: RiskPolicy) -> None:
    surging = build.flagged("severe_impact.operational", cluster=build.cluster(9, surging=True))
    later = build.flagged(
        "data_concern.unauthorized_access",
        detections=[],
        ticket_id="T-2",
        at=build.t0 + build.minutes(90),
        cluster=build.cluster(10, surging=False),
    )
    outcomes = run(policy, [surging, later])
    assert outcomes[1].state.surging
    decisive = [c.rule_id for c in published(outcomes[1]).rules_fired if c.decisive]
    assert decisive == ["surge-with-data-exposure"]


def test_same_level_category_change_is_published(build: Any, policy: RiskPolicy) -> None:
    tickets = [
        build.flagged(
            "severe_impact.operational", ticket_id="A", cluster=build.cluster(5, surging=True)
        ),
        build.flagged(
            "reputation_threat.press",
            ticket_id="B",
            at=build.t0 + build.minutes(1),
            cluster=build.cluster(6, surging=True),
        ),
    ]
    first, second = run(policy, tickets)
    assert (published(first).level, published(first).category) == (L.HIGH, C.SERVICE_DISRUPTION)
    event = published(second)
    assert second.reason == EmitReason.CATEGORY_CHANGE
    assert (event.level, event.category, event.previous_level) == (L.HIGH, C.REPUTATION, None)
    assert event.flagged_at == build.t0  # same level: the escalation clock does not restart


def test_lower_precedence_category_does_not_replace_a_higher_one(
    build: Any, policy: RiskPolicy
) -> None:
    tickets = [
        build.flagged(
            "reputation_threat.press", ticket_id="A", cluster=build.cluster(5, surging=True)
        ),
        build.flagged(
            "severe_impact.operational", ticket_id="B", cluster=build.cluster(6, surging=True)
        ),
    ]
    _, second = run(policy, tickets)
    assert second.reason == EmitReason.TICKET_JOINED
    assert published(second).category == C.REPUTATION
    assert second.state.category == C.REPUTATION


def test_every_ticket_that_joins_is_published_with_counts_of_the_list(
    build: Any, policy: RiskPolicy
) -> None:
    tickets = [
        build.flagged(
            "severe_impact.operational",
            ticket_id=f"T-{n}",
            customer_id=f"c{(n + 1) // 2}",
            at=build.t0 + build.minutes(n),
            cluster=build.cluster(n + 3, 6),  # the cluster also holds reports never flagged
        )
        for n in range(1, 12)
    ]
    outcomes = run(policy, tickets)
    assert [outcome.reason for outcome in outcomes] == [
        EmitReason.FIRST_CLASSIFICATION,
        *[EmitReason.TICKET_JOINED] * 10,
    ]
    for n, outcome in enumerate(outcomes, start=1):
        event = published(outcome)
        assert event.ticket_ids == [f"T-{i}" for i in range(1, n + 1)]
        assert (event.ticket_count, event.distinct_customers) == (n, (n + 1) // 2)
    assert {published(outcome).level for outcome in outcomes} == {L.MEDIUM}


def test_surge_reflags_of_earlier_members_each_join_the_risk(
    build: Any, policy: RiskPolicy
) -> None:
    # Intake flags the fifth checkout report when the cluster surges, then re-flags the four
    # earlier ones (which had no indicator of their own) with the same cluster information.
    surge = build.detection("multiple_similar_reports.cluster_surge")
    info = build.cluster(5, 5, surging=True, cluster_id="checkout")
    order = [5, 1, 2, 3, 4]
    tickets = [
        build.flagged(
            detections=[surge],
            ticket_id=f"T-{n}",
            customer_id=f"c{n}",
            at=build.t0 + build.minutes(n),
            cluster=info,
        )
        for n in order
    ]
    outcomes = run(policy, tickets)
    first = published(outcomes[0])
    assert (first.ticket_ids, first.ticket_count, first.distinct_customers) == (["T-5"], 1, 1)
    assert [outcome.reason for outcome in outcomes[1:]] == [EmitReason.TICKET_JOINED] * 4
    last = published(outcomes[-1])
    assert last.ticket_ids == [f"T-{n}" for n in order]
    assert (last.ticket_count, last.distinct_customers) == (5, 5)
    assert last.level == first.level


def test_redundant_publications_drops_joins_a_later_event_of_the_risk_lists(
    build: Any, policy: RiskPolicy
) -> None:
    def ticket(n: int, cluster_id: str, *rule_ids: str) -> TicketFlagged:
        return build.flagged(
            *(rule_ids or ("severe_impact.operational",)),
            ticket_id=f"{cluster_id}-{n}",
            at=build.t0 + build.minutes(n),
            cluster=build.cluster(n + 1, cluster_id=cluster_id),
        )

    batch = [
        ticket(1, "a"),  # first classification: always published
        ticket(2, "a"),  # joined; listed by a-3's upgrade
        ticket(1, "b"),  # another risk
        ticket(3, "a", "data_concern.exposure"),  # upgrade: always published
        ticket(4, "a"),  # joined; listed by a-5
        ticket(5, "a"),  # joined, the last of its risk
        ticket(2, "b"),  # joined, the last of its risk
    ]
    outcomes: list[ClassificationOutcome] = []
    states: dict[str, RiskState] = {}
    for flagged in batch:
        outcome = classify(flagged, states.get(risk_id_for(flagged)), policy, flagged.occurred_at)
        states[outcome.state.risk_id] = outcome.state
        outcomes.append(outcome)
    assert [outcome.reason for outcome in outcomes] == [
        EmitReason.FIRST_CLASSIFICATION,
        EmitReason.TICKET_JOINED,
        EmitReason.FIRST_CLASSIFICATION,
        EmitReason.UPGRADE,
        EmitReason.TICKET_JOINED,
        EmitReason.TICKET_JOINED,
        EmitReason.TICKET_JOINED,
    ]
    assert redundant_publications(outcomes) == {1, 4}
    kept = [
        published(o) for i, o in enumerate(outcomes) if i not in redundant_publications(outcomes)
    ]
    listed = {ticket_id for event in kept for ticket_id in [event.ticket_id, *event.ticket_ids]}
    assert listed == {flagged.ticket_id for flagged in batch}


def test_redundant_publications_keeps_a_join_past_the_listed_tickets(
    build: Any, policy: RiskPolicy
) -> None:
    state = None
    for n in range(1, MAX_TICKET_IDS + 1):
        flagged = build.flagged(
            "severe_impact.operational", ticket_id=f"T-{n}", cluster=build.cluster(n, n)
        )
        state = classify(flagged, state, policy, build.t0).state
    beyond = [
        build.flagged(
            "severe_impact.operational",
            ticket_id=f"T-{n}",
            cluster=build.cluster(n, n),
        )
        for n in (MAX_TICKET_IDS + 1, MAX_TICKET_IDS + 2)
    ]
    first = classify(beyond[0], state, policy, build.t0)
    second = classify(beyond[1], first.state, policy, build.t0)
    assert (first.reason, second.reason) == (EmitReason.TICKET_JOINED, EmitReason.TICKET_JOINED)
    assert published(second).ticket_count == MAX_TICKET_IDS + 2
    assert len(published(second).ticket_ids) == MAX_TICKET_IDS
    # The second event does not list the first one's ticket, so both are published.
    assert redundant_publications([first, second]) == frozenset()


def test_repeated_input_changes_nothing_and_publishes_nothing(
    build: Any, policy: RiskPolicy
) -> None:
    ticket = build.flagged("severe_impact.financial", cluster=build.cluster(3))
    first, again = run(policy, [ticket, ticket])
    assert again.classified is None
    assert again.state == first.state


def test_follow_up_on_the_same_ticket_counts_it_once(build: Any, policy: RiskPolicy) -> None:
    created = build.flagged("severe_impact.financial")
    follow_up = build.flagged(
        "severe_impact.financial",
        "reputation_threat.press",
        at=build.t0 + build.minutes(3),
        event_kind="commented",
        new_indicators=["reputation_threat"],
    )
    _, second = run(policy, [created, follow_up])
    event = published(second)
    assert (event.level, event.previous_level) == (L.HIGH, L.MEDIUM)
    assert (event.ticket_count, event.ticket_ids) == (1, ["T-1"])
    # The same follow-up again adds nothing new: no event.
    again = build.flagged(
        "severe_impact.financial", at=build.t0 + build.minutes(4), event_kind="commented"
    )
    assert classify(again, second.state, policy, again.occurred_at).classified is None


def test_evidence_is_bounded_per_rule(build: Any, policy: RiskPolicy) -> None:
    tickets = [
        build.flagged(
            detections=[build.detection("severe_impact.operational", evidence=f"down #{n}")],
            ticket_id=f"T-{n}",
            cluster=build.cluster(n),
        )
        for n in range(1, 30)
    ]
    state = run(policy, tickets)[-1].state
    assert [d.evidence for d in state.evidence] == ["down #1", "down #2", "down #3"]


def test_state_and_ticket_ids_are_bounded(build: Any, policy: RiskPolicy) -> None:
    state = None
    for n in range(1, 1_006):
        ticket = build.flagged(
            "severe_impact.operational", ticket_id=f"T-{n}", cluster=build.cluster(n, n)
        )
        state = classify(ticket, state, policy, build.t0).state
    assert state is not None
    assert len(state.ticket_ids) == 1_000
    assert len(state.customer_ids) == 1_000
    assert (state.ticket_count, state.distinct_customers) == (1_005, 1_005)
    # A follow-up on a ticket past the list looks new, but the cluster holds only 1,005.
    follow_up = build.flagged(
        "severe_impact.operational",
        "reputation_threat.press",
        ticket_id="T-1003",
        event_kind="commented",
        cluster=build.cluster(1_005, 1_005),
    )
    after = classify(follow_up, state, policy, build.t0).state
    assert (after.ticket_count, after.distinct_customers) == (1_005, 1_005)


# ---------------------------------------------------------------------------------------------
# No automatic downgrade
# ---------------------------------------------------------------------------------------------

LENIENT = parse_policy(
    """
version: "lenient-1"
rules:
  - {id: everything-low, description: d, priority: 1, effect: sets_level, level: 2,
     category: operational, when: {detections: [{indicators: [data_concern]}]}}
"""
)


def test_a_lower_computed_level_keeps_the_level(build: Any, policy: RiskPolicy) -> None:
    breach = build.flagged("data_concern.exposure", cluster=build.cluster(2))
    first = classify(breach, None, policy, build.t0)
    another = build.flagged("data_concern.exposure", ticket_id="T-2", cluster=build.cluster(3))
    # A new, lenient policy version computes Low for the same risk.
    second = classify(another, first.state, LENIENT, build.t0 + build.minutes(5))
    assert second.decision is not None
    assert second.decision.level == L.LOW
    # Published only because a ticket joined: the level and its clock stand.
    assert second.reason == EmitReason.TICKET_JOINED
    event = published(second)
    assert (event.level, event.previous_level, event.flagged_at) == (L.CRITICAL, None, build.t0)
    assert second.state.level == L.CRITICAL
    assert second.state.flagged_at == build.t0
    assert second.state.computed_level == L.LOW
    decisive = [c.rule_id for c in second.state.rules_fired if c.decisive]
    assert decisive == [NO_DOWNGRADE_RULE_ID]


# ---------------------------------------------------------------------------------------------
# Lone tickets and clusters
# ---------------------------------------------------------------------------------------------


def test_lone_ticket_is_its_own_risk_until_it_joins_a_cluster(
    build: Any, policy: RiskPolicy
) -> None:
    lone = build.flagged("severe_impact.financial", ticket_id="T-9")
    lone_outcome = classify(lone, None, policy, build.t0)
    assert published(lone_outcome).risk_id == ticket_risk_id("T-9")
    assert published(lone_outcome).cluster_id is None

    joined = build.flagged(
        "severe_impact.financial",
        ticket_id="T-9",
        at=build.t0 + build.minutes(40),
        event_kind="updated",
        cluster=build.cluster(4, 3, cluster_id="cl-7", first_seen_at=build.t0 - build.minutes(5)),
    )
    assert risk_id_for(joined) == cluster_risk_id("cl-7") != ticket_risk_id("T-9")
    # The cluster's risk takes over: it is new, counts the ticket and is published.
    cluster_outcome = classify(joined, None, policy, build.t0 + build.minutes(40))
    event = published(cluster_outcome)
    assert cluster_outcome.reason == EmitReason.FIRST_CLASSIFICATION
    assert event.risk_id == cluster_risk_id("cl-7")
    assert event.ticket_ids == ["T-9"]
    assert (event.ticket_count, event.distinct_customers) == (1, 1)
    assert event.level == L.MEDIUM
    assert event.first_reported_at == build.t0 - build.minutes(5)
    # The lone risk is not touched: its state cannot absorb the clustered ticket.
    with pytest.raises(RiskMismatchError):
        classify(joined, lone_outcome.state, policy, build.t0 + build.minutes(40))


def test_risk_ids_are_deterministic_and_distinct_per_origin() -> None:
    assert cluster_risk_id("x") == cluster_risk_id("x")
    assert cluster_risk_id("x") != ticket_risk_id("x")
    assert cluster_risk_id("x").startswith("risk-")


def test_naive_cause_time_is_rejected(build: Any, policy: RiskPolicy) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        classify(build.flagged("severe_impact.financial"), None, policy, datetime(2025, 1, 1))


def test_state_survives_a_json_round_trip(build: Any, policy: RiskPolicy) -> None:
    tickets = [
        build.flagged("severe_impact.operational", ticket_id="A", cluster=build.cluster(2)),
        build.flagged(
            "data_concern.exposure",
            ticket_id="B",
            at=build.t0 + timedelta(hours=1),
            cluster=build.cluster(3),
            risk_flag=build.flag(3, C.COMPLIANCE),
            data_classification=["card"],
            financial_amount=12.5,
        ),
    ]
    first = classify(tickets[0], None, policy, build.t0)
    restored = RiskState.model_validate_json(first.state.model_dump_json())
    assert restored == first.state
    direct = classify(tickets[1], first.state, policy, tickets[1].occurred_at)
    via_json = classify(tickets[1], restored, policy, tickets[1].occurred_at)
    assert direct.classified == via_json.classified
    assert RiskState.model_validate_json(direct.state.model_dump_json()) == direct.state


# ---------------------------------------------------------------------------------------------
# Human overrides
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def high_risk(build: Any, policy: RiskPolicy) -> RiskState:
    ticket = build.flagged("severe_impact.operational", cluster=build.cluster(6, surging=True))
    return classify(ticket, None, policy, build.t0).state


@pytest.mark.parametrize("role", sorted(set(Role) - OVERRIDE_ROLES))
def test_only_managers_risk_management_and_admins_may_override(
    build: Any, high_risk: RiskState, role: Role
) -> None:
    with pytest.raises(OverrideNotAllowedError, match=role.value):
        apply_override(high_risk, L.LOW, "not a risk", "someone", role, build.t0)


def test_unknown_role_is_not_allowed(build: Any, high_risk: RiskState) -> None:
    with pytest.raises(OverrideNotAllowedError):
        apply_override(high_risk, L.LOW, "reason", "someone", "ceo", build.t0)


@pytest.mark.parametrize("role", sorted(OVERRIDE_ROLES))
def test_allowed_roles_may_downgrade(build: Any, high_risk: RiskState, role: Role) -> None:
    at = build.t0 + timedelta(hours=2)
    outcome = apply_override(high_risk, L.LOW, " Duplicate of a known issue ", "mia", role, at)
    event = published(outcome)
    assert outcome.reason == EmitReason.OVERRIDE
    assert (event.level, event.previous_level) == (L.LOW, L.HIGH)
    assert event.override is not None
    assert (event.override.by, event.override.role) == ("mia", role)
    assert event.override.reason == "Duplicate of a known issue"
    assert event.flagged_at == at
    assert [c.rule_id for c in event.rules_fired if c.decisive] == ["human_override"]
    assert event.ticket_id == "T-1"


@pytest.mark.parametrize(("reason", "by"), [("", "mia"), ("   ", "mia"), ("why", " ")])
def test_override_needs_a_reason_and_an_author(
    build: Any, high_risk: RiskState, reason: str, by: str
) -> None:
    with pytest.raises(InvalidOverrideError):
        apply_override(high_risk, L.LOW, reason, by, Role.SUPPORT_MANAGER, build.t0)


def test_override_needs_an_aware_time(high_risk: RiskState) -> None:
    with pytest.raises(InvalidOverrideError, match="timezone-aware"):
        apply_override(high_risk, L.LOW, "why", "mia", Role.ADMIN, datetime(2025, 1, 1))


def test_same_evidence_does_not_undo_a_human_downgrade(
    build: Any, policy: RiskPolicy, high_risk: RiskState
) -> None:
    lowered = apply_override(
        high_risk, L.LOW, "known issue", "mia", Role.SUPPORT_MANAGER, build.t0
    ).state
    more_of_the_same = build.flagged(
        "severe_impact.operational",
        ticket_id="T-2",
        at=build.t0 + build.minutes(30),
        cluster=build.cluster(7, surging=True),
    )
    outcome = classify(more_of_the_same, lowered, policy, more_of_the_same.occurred_at)
    assert outcome.reason == EmitReason.TICKET_JOINED
    event = published(outcome)
    assert (event.level, event.previous_level) == (L.LOW, None)
    assert event.override is not None  # the human's level still holds
    assert outcome.state.level == L.LOW
    assert outcome.state.level_source == "override"
    decisive = [c.rule_id for c in outcome.state.rules_fired if c.decisive]
    assert decisive == [OVERRIDE_HOLD_RULE_ID]


def test_stronger_evidence_raises_a_human_downgrade_again(
    build: Any, policy: RiskPolicy, high_risk: RiskState
) -> None:
    lowered = apply_override(
        high_risk, L.LOW, "known issue", "mia", Role.RISK_MANAGEMENT, build.t0
    ).state
    breach = build.flagged(
        "data_concern.exposure",
        ticket_id="T-3",
        at=build.t0 + build.minutes(50),
        cluster=build.cluster(8, surging=True),
    )
    event = published(classify(breach, lowered, policy, breach.occurred_at))
    assert (event.level, event.previous_level) == (L.CRITICAL, L.LOW)
    assert event.override is None  # the level is the policy's again
    assert event.flagged_at == build.t0 + build.minutes(50)


def test_automatic_classification_never_lowers_a_human_upgrade(
    build: Any, policy: RiskPolicy
) -> None:
    low = classify(build.flagged("data_concern.privacy_question"), None, policy, build.t0).state
    raised = apply_override(low, L.CRITICAL, "confirmed leak", "rm", Role.RISK_MANAGEMENT, build.t0)
    assert published(raised).previous_level == L.LOW
    same = build.flagged("data_concern.privacy_question", at=build.t0 + build.minutes(1))
    outcome = classify(same, raised.state, policy, same.occurred_at)
    assert outcome.classified is None
    assert outcome.state.level == L.CRITICAL
    # A category change at the human's level is published, still carrying the override.
    gdpr = build.flagged("compliance_question.gdpr_request", at=build.t0 + build.minutes(2))
    changed = classify(gdpr, outcome.state, policy, gdpr.occurred_at)
    event = published(changed)
    assert changed.reason == EmitReason.CATEGORY_CHANGE
    assert (event.level, event.category, event.previous_level) == (L.CRITICAL, C.COMPLIANCE, None)
    assert event.override is not None
    assert event.override.by == "rm"


def test_overridden_category_is_kept_by_automatic_classification(
    build: Any, policy: RiskPolicy, high_risk: RiskState
) -> None:
    overridden = apply_override(
        high_risk,
        L.HIGH,
        "it is a safety issue",
        "mia",
        Role.SUPPORT_MANAGER,
        build.t0,
        category=C.PRODUCT_SAFETY,
    )
    event = published(overridden)
    assert (event.level, event.category, event.previous_level) == (L.HIGH, C.PRODUCT_SAFETY, L.HIGH)
    assert event.flagged_at == high_risk.flagged_at  # same level: the clock keeps running
    press = build.flagged(
        "reputation_threat.press", ticket_id="T-4", cluster=build.cluster(9, surging=True)
    )
    outcome = classify(press, overridden.state, policy, build.t0 + build.minutes(5))
    assert outcome.reason == EmitReason.TICKET_JOINED
    assert published(outcome).category == C.PRODUCT_SAFETY
    assert outcome.state.category == C.PRODUCT_SAFETY
