"""The Risk Register's pure domain: lifecycle matrix, roles, automatic moves, scoring, cadence,
merging and history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskrelay.register.domain import (
    ALLOWED_TARGETS,
    TRANSITIONS,
    Assessment,
    IllegalTransition,
    InvalidScore,
    NotRegistrable,
    RegisterError,
    RegisterPolicy,
    RegisterPolicyError,
    ResolutionVerificationRequired,
    RiskMismatch,
    TransitionNotPermitted,
    apply_assessment,
    apply_transition,
    check_transition,
    default_impact,
    default_likelihood,
    diff_entries,
    inherent_score,
    is_registrable,
    is_review_overdue,
    load_register_policy,
    merge_classification,
    next_review_at,
    residual_score,
    should_register,
    status_after_acknowledgement,
    status_after_escalation_due,
)
from riskrelay.shared.events import (
    EscalationAcknowledged,
    EscalationDue,
    EscalationReason,
    Indicator,
    Override,
    ReviewDecision,
    RiskCategory,
    RiskClassified,
    RiskLevel,
    RiskRegisterEntry,
    RiskStatus,
    Role,
    Treatment,
)

pytestmark = pytest.mark.unit

S = RiskStatus
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
VERIFIED = "Checkout error rate back at baseline for 7 days; no new reports."

# The table written out independently of the module, so an accidental edit of TRANSITIONS fails.
EXPECTED_EDGES: dict[tuple[RiskStatus, RiskStatus], set[Role]] = {
    (S.IDENTIFIED, S.ESCALATED): {Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.ADMIN},
    (S.IDENTIFIED, S.UNDER_JOINT_ASSESSMENT): {Role.RISK_MANAGEMENT, Role.ADMIN},
    (S.IDENTIFIED, S.CLOSED): {Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.ADMIN},
    (S.ESCALATED, S.UNDER_JOINT_ASSESSMENT): {
        Role.RISK_MANAGEMENT,
        Role.SUPPORT_MANAGER,
        Role.ADMIN,
    },
    (S.ESCALATED, S.CLOSED): {Role.RISK_MANAGEMENT, Role.ADMIN},
    (S.UNDER_JOINT_ASSESSMENT, S.RESPONSE_PLANNED): {Role.RISK_MANAGEMENT, Role.ADMIN},
    (S.UNDER_JOINT_ASSESSMENT, S.CLOSED): {Role.RISK_MANAGEMENT, Role.ADMIN},
    (S.RESPONSE_PLANNED, S.MITIGATING): {Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.ADMIN},
    (S.RESPONSE_PLANNED, S.MONITORING): {Role.RISK_MANAGEMENT, Role.ADMIN},
    (S.RESPONSE_PLANNED, S.UNDER_JOINT_ASSESSMENT): {Role.RISK_MANAGEMENT, Role.ADMIN},
    (S.MITIGATING, S.MONITORING): {Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.ADMIN},
    (S.MITIGATING, S.RESPONSE_PLANNED): {Role.RISK_MANAGEMENT, Role.ADMIN},
    (S.MONITORING, S.CLOSED): {Role.RISK_MANAGEMENT, Role.ADMIN},
    (S.MONITORING, S.MITIGATING): {Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.ADMIN},
    (S.CLOSED, S.REOPENED): {Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.ADMIN},
    (S.REOPENED, S.ESCALATED): {Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.ADMIN},
    (S.REOPENED, S.UNDER_JOINT_ASSESSMENT): {
        Role.RISK_MANAGEMENT,
        Role.SUPPORT_MANAGER,
        Role.ADMIN,
    },
}
EXPECTED_AUTOMATIC = {
    (S.IDENTIFIED, S.ESCALATED),
    (S.CLOSED, S.REOPENED),
    (S.REOPENED, S.ESCALATED),
}
ALL_PAIRS = [(source, target) for source in RiskStatus for target in RiskStatus]
ALLOWED_PAIRS = [pair for pair in ALL_PAIRS if pair in EXPECTED_EDGES]
REFUSED_PAIRS = [pair for pair in ALL_PAIRS if pair not in EXPECTED_EDGES]


def classified(**overrides: Any) -> RiskClassified:
    values: dict[str, Any] = {
        "risk_id": "risk-1",
        "level": RiskLevel.HIGH,
        "category": RiskCategory.SERVICE_DISRUPTION,
        "ticket_id": "t-1",
        "ticket_ids": ["t-1"],
        "ticket_count": 1,
        "distinct_customers": 1,
        "customer_segments": ["consumer"],
        "products": ["checkout"],
        "channels": ["email"],
        "indicators": [Indicator.SEVERE_IMPACT],
        "title": "Checkout fails with 502",
        "redacted_summary": "Customers cannot pay.",
        "first_reported_at": T0,
        "flagged_at": T0,
        "policy_version": "2025.1",
        "rules_fired": [],
        "evidence": [],
    }
    values.update(overrides)
    return RiskClassified(**values)


def entry_in(status: RiskStatus, **overrides: Any) -> RiskRegisterEntry:
    base = merge_classification(None, classified(), T0)
    data = base.model_dump()
    data.update(status=status, **overrides)
    return RiskRegisterEntry.model_validate(data)


# ---------------------------------------------------------------------------------------------
# Lifecycle table
# ---------------------------------------------------------------------------------------------


def test_module_table_matches_the_documented_table() -> None:
    assert {pair: set(t.roles) for pair, t in TRANSITIONS.items()} == EXPECTED_EDGES
    assert {pair for pair, t in TRANSITIONS.items() if t.automatic} == EXPECTED_AUTOMATIC
    assert all(t.why for t in TRANSITIONS.values())


def test_closed_is_reachable_and_every_state_has_a_way_out() -> None:
    assert all(ALLOWED_TARGETS[status] for status in RiskStatus)
    assert ALLOWED_TARGETS[S.CLOSED] == {S.REOPENED}


@pytest.mark.parametrize(("source", "target"), ALLOWED_PAIRS)
def test_allowed_transition(source: RiskStatus, target: RiskStatus) -> None:
    moved = apply_transition(
        entry_in(source), target, role=Role.ADMIN, at=T0 + timedelta(hours=1),
        resolution_verification=VERIFIED,
    )  # fmt: skip
    assert moved.status is target
    assert moved.version == 2
    assert moved.updated_at == T0 + timedelta(hours=1)


@pytest.mark.parametrize(("source", "target"), REFUSED_PAIRS)
def test_refused_transition_names_the_allowed_targets(
    source: RiskStatus, target: RiskStatus
) -> None:
    with pytest.raises(IllegalTransition) as caught:
        check_transition(source, target, role=Role.ADMIN, resolution_verification=VERIFIED)
    message = str(caught.value)
    assert caught.value.allowed_targets == ALLOWED_TARGETS[source]
    for allowed in {t for (s, t) in EXPECTED_EDGES if s == source}:
        assert allowed.value in message
    assert repr(target.value) in message


@pytest.mark.parametrize(("source", "target"), ALLOWED_PAIRS)
@pytest.mark.parametrize("role", list(Role))
def test_role_matrix(source: RiskStatus, target: RiskStatus, role: Role) -> None:
    if role in EXPECTED_EDGES[(source, target)]:
        check_transition(source, target, role=role, resolution_verification=VERIFIED)
    else:
        with pytest.raises(TransitionNotPermitted, match="allowed roles: admin"):
            check_transition(source, target, role=role, resolution_verification=VERIFIED)


@pytest.mark.parametrize(("source", "target"), ALLOWED_PAIRS)
def test_the_service_itself_takes_only_automatic_edges(
    source: RiskStatus, target: RiskStatus
) -> None:
    if (source, target) in EXPECTED_AUTOMATIC:
        check_transition(source, target, role=None)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(source, target, role=None, resolution_verification=VERIFIED)


@pytest.mark.parametrize("source", [s for (s, t) in EXPECTED_EDGES if t is S.CLOSED])
@pytest.mark.parametrize("verification", [None, "", "   \n"])
def test_closing_without_verification_is_refused(
    source: RiskStatus, verification: str | None
) -> None:
    with pytest.raises(ResolutionVerificationRequired):
        apply_transition(
            entry_in(source), S.CLOSED, role=Role.ADMIN, at=T0,
            resolution_verification=verification,
        )  # fmt: skip


@pytest.mark.parametrize(("source", "target"), REFUSED_PAIRS)
@pytest.mark.parametrize("role", [None, *Role])
def test_refused_transition_changes_nothing_for_anyone(
    source: RiskStatus, target: RiskStatus, role: Role | None
) -> None:
    entry = entry_in(source)
    with pytest.raises(IllegalTransition) as caught:
        apply_transition(entry, target, role=role, at=T0, resolution_verification=VERIFIED)
    assert caught.value.current is source
    assert caught.value.target is target
    assert entry.status is source
    assert entry.version == 1


@pytest.mark.parametrize(("source", "target"), ALLOWED_PAIRS)
@pytest.mark.parametrize("role", list(Role))
def test_every_allowed_transition_by_every_role(
    source: RiskStatus, target: RiskStatus, role: Role
) -> None:
    entry = entry_in(source)
    if role in EXPECTED_EDGES[(source, target)]:
        moved = apply_transition(
            entry, target, role=role, at=T0 + timedelta(hours=2), resolution_verification=VERIFIED
        )
        assert (moved.status, moved.version) == (target, entry.version + 1)
        assert diff_entries(entry, moved).changes["status"].after == target.value
    else:
        with pytest.raises(TransitionNotPermitted) as caught:
            apply_transition(entry, target, role=role, at=T0, resolution_verification=VERIFIED)
        assert caught.value.allowed_roles == frozenset(EXPECTED_EDGES[(source, target)])
        assert role.value in str(caught.value)


def test_closing_records_verification_and_stops_reviews_and_reopen_clears_it() -> None:
    closed = apply_transition(
        entry_in(S.MONITORING), S.CLOSED, role=Role.RISK_MANAGEMENT, at=T0,
        resolution_verification=VERIFIED,
    )  # fmt: skip
    assert closed.resolution_verification == VERIFIED
    assert closed.next_review_at is None
    assert not is_review_overdue(closed, T0 + timedelta(days=365))

    later = T0 + timedelta(days=40)
    reopened = apply_transition(closed, S.REOPENED, role=Role.SUPPORT_MANAGER, at=later)
    assert reopened.resolution_verification is None
    assert reopened.next_review_at == later + timedelta(days=14)  # level 4 cadence
    assert reopened.version == closed.version + 1


def test_verification_recorded_earlier_by_an_assessment_allows_closing() -> None:
    entry = apply_assessment(
        entry_in(S.MONITORING), Assessment(resolution_verification=VERIFIED), T0
    )
    closed = apply_transition(entry, S.CLOSED, role=Role.RISK_MANAGEMENT, at=T0)
    assert closed.status is S.CLOSED


# ---------------------------------------------------------------------------------------------
# Automatic transitions
# ---------------------------------------------------------------------------------------------


def due(target_role: Role, reason: EscalationReason = EscalationReason.INITIAL) -> EscalationDue:
    return EscalationDue(
        escalation_id="risk-1/4/rm",
        risk_id="risk-1",
        level=RiskLevel.HIGH,
        step=2,
        target_role=target_role,
        reason=reason,
        due_at=T0,
    )


def ack(role: Role, decision: ReviewDecision | None = None) -> EscalationAcknowledged:
    return EscalationAcknowledged(
        escalation_id="risk-1/3/sm",
        risk_id="risk-1",
        role=role,
        acknowledged_by="someone",
        acknowledged_at=T0,
        decision=decision,
    )


@pytest.mark.parametrize("status", list(RiskStatus))
def test_escalation_due_to_risk_management_escalates_only_where_legal(status: RiskStatus) -> None:
    expected = S.ESCALATED if status in {S.IDENTIFIED, S.REOPENED} else None
    for reason in (EscalationReason.INITIAL, EscalationReason.REMINDER, EscalationReason.BREACH):
        assert status_after_escalation_due(status, due(Role.RISK_MANAGEMENT, reason)) is expected


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.RISK_MANAGEMENT])
def test_escalation_due_to_others_changes_nothing(role: Role) -> None:
    assert status_after_escalation_due(S.IDENTIFIED, due(role)) is None


def test_weekly_review_notice_is_not_a_risk_management_notification() -> None:
    notice = due(Role.RISK_MANAGEMENT, EscalationReason.WEEKLY_REVIEW)
    assert status_after_escalation_due(S.IDENTIFIED, notice) is None


@pytest.mark.parametrize("status", list(RiskStatus))
def test_confirmed_level3_review_escalates_only_where_legal(status: RiskStatus) -> None:
    expected = S.ESCALATED if status in {S.IDENTIFIED, S.REOPENED} else None
    assert (
        status_after_acknowledgement(status, ack(Role.SUPPORT_MANAGER, ReviewDecision.CONFIRMED))
        is expected
    )


def test_other_acknowledgements() -> None:
    not_confirmed = ack(Role.SUPPORT_MANAGER, ReviewDecision.NOT_CONFIRMED)
    assert status_after_acknowledgement(S.IDENTIFIED, not_confirmed) is None
    assert status_after_acknowledgement(S.IDENTIFIED, ack(Role.SUPPORT_MANAGER)) is None
    assert (
        status_after_acknowledgement(S.IDENTIFIED, ack(Role.TEAM_LEAD, ReviewDecision.CONFIRMED))
        is None
    )
    assert status_after_acknowledgement(S.IDENTIFIED, ack(Role.RISK_MANAGEMENT)) is S.ESCALATED


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def test_inherent_score_and_range() -> None:
    assert inherent_score(1, 1) == 1
    assert inherent_score(4, 5) == 20
    assert inherent_score(5, 5) == 25
    for bad in [(0, 3), (3, 6), (-1, 1)]:
        with pytest.raises(InvalidScore):
            inherent_score(*bad)


@pytest.mark.parametrize(
    ("treatment", "expected"),
    [
        (None, None),
        (Treatment.ACCEPT, 20),
        (Treatment.TRANSFER, 12),
        (Treatment.MITIGATE, 10),
        (Treatment.AVOID, 4),
    ],
)
def test_residual_from_treatment_factor(treatment: Treatment | None, expected: int | None) -> None:
    assert residual_score(20, treatment) == expected


def test_residual_rounds_up_and_never_reaches_zero() -> None:
    assert residual_score(3, Treatment.MITIGATE) == 2
    assert residual_score(1, Treatment.AVOID) == 1


def test_analyst_residual_wins_but_cannot_exceed_inherent() -> None:
    assert residual_score(12, Treatment.MITIGATE, analyst_residual=3) == 3
    assert residual_score(12, None, analyst_residual=12) == 12
    with pytest.raises(InvalidScore, match="inherent score 12"):
        residual_score(12, Treatment.MITIGATE, analyst_residual=13)


@pytest.mark.parametrize(
    ("level", "customers", "tickets", "span", "expected"),
    [
        (RiskLevel.MEDIUM, 1, 1, timedelta(days=10), 2),  # level 3 floor
        (RiskLevel.HIGH, 1, 1, timedelta(days=10), 3),  # level 4 floor
        (RiskLevel.CRITICAL, 1, 1, timedelta(0), 4),  # level 5 floor
        (RiskLevel.MEDIUM, 12, 12, timedelta(days=30), 4),  # customer tier 10-49
        (RiskLevel.MEDIUM, 60, 60, timedelta(days=60), 5),  # customer tier 50+
        (RiskLevel.MEDIUM, 5, 5, timedelta(days=5), 3),  # 5 customers, 1/day
        # One customer writing 40 times in an hour: the rate lifts the tier by one step only.
        (RiskLevel.MEDIUM, 1, 40, timedelta(minutes=5), 2),
        # Eight customers within minutes: rate tier 5, customer tier 3, lifted to 4.
        (RiskLevel.MEDIUM, 8, 8, timedelta(minutes=10), 4),
    ],
)
def test_default_likelihood(
    level: RiskLevel, customers: int, tickets: int, span: timedelta, expected: int
) -> None:
    assert (
        default_likelihood(
            level,
            distinct_customers=customers,
            ticket_count=tickets,
            first_reported_at=T0,
            last_reported_at=T0 + span,
        )
        == expected
    )


def test_default_impact() -> None:
    assert default_impact(RiskLevel.MEDIUM, customer_segments=["consumer"]) == 3
    assert default_impact(RiskLevel.MEDIUM, customer_segments=["consumer", "enterprise"]) == 4
    assert default_impact(RiskLevel.CRITICAL, customer_segments=["public_sector"]) == 5


def test_assessment_scores_and_treatment() -> None:
    entry = entry_in(S.UNDER_JOINT_ASSESSMENT)
    assessed = apply_assessment(
        entry,
        Assessment(likelihood=4, impact=5, treatment=Treatment.MITIGATE, owner="rm-anna"),
        T0 + timedelta(hours=2),
    )
    assert (assessed.inherent_score, assessed.residual_score) == (20, 10)
    assert assessed.owner == "rm-anna"
    assert assessed.version == entry.version + 1
    analyst = apply_assessment(assessed, Assessment(residual_score=6), T0 + timedelta(hours=3))
    assert analyst.residual_score == 6
    with pytest.raises(InvalidScore):
        apply_assessment(assessed, Assessment(residual_score=21), T0)
    assert apply_assessment(analyst, Assessment(owner="rm-anna"), T0) is analyst


# ---------------------------------------------------------------------------------------------
# Review cadence
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "days"),
    [(RiskLevel.CRITICAL, 7), (RiskLevel.HIGH, 14), (RiskLevel.MEDIUM, 30), (RiskLevel.LOW, 30)],
)
def test_default_review_cadence(level: RiskLevel, days: int) -> None:
    assert next_review_at(level, T0) == T0 + timedelta(days=days)


def test_configured_cadence() -> None:
    policy = RegisterPolicy.model_validate(
        {"review_intervals": {5: "P1D", 4: "P3D", 3: 7 * 24 * 3600}}
    )
    assert next_review_at(RiskLevel.CRITICAL, T0, policy) == T0 + timedelta(days=1)
    assert next_review_at(RiskLevel.MEDIUM, T0, policy) == T0 + timedelta(days=7)


def test_review_overdue() -> None:
    entry = entry_in(S.MITIGATING, next_review_at=T0 + timedelta(days=14))
    assert not is_review_overdue(entry, T0 + timedelta(days=13, hours=23))
    assert is_review_overdue(entry, T0 + timedelta(days=14))
    assert is_review_overdue(entry_in(S.MITIGATING, next_review_at=None), T0)
    assert not is_review_overdue(
        entry_in(S.CLOSED, resolution_verification=VERIFIED), T0 + timedelta(days=99)
    )


def test_reviewed_assessment_restarts_the_schedule() -> None:
    later = T0 + timedelta(days=10)
    reviewed = apply_assessment(entry_in(S.MONITORING), Assessment(reviewed=True), later)
    assert reviewed.next_review_at == later + timedelta(days=14)


def test_policy_file(tmp_path: Path) -> None:
    good = tmp_path / "register.yaml"
    good.write_text("review_intervals: {5: P2D, 4: P5D, 3: P20D}\nreopen_on_new_reports: false\n")
    policy = load_register_policy(good)
    assert policy.review_intervals[RiskLevel.HIGH] == timedelta(days=5)
    assert policy.reopen_on_new_reports is False

    missing_level = tmp_path / "missing.yaml"
    missing_level.write_text("review_intervals: {5: P2D, 4: P5D}\n")
    with pytest.raises(RegisterPolicyError, match="review_intervals"):
        load_register_policy(missing_level)

    typo = tmp_path / "typo.yaml"
    typo.write_text("scoring: {treatment_factor: {}}\n")
    with pytest.raises(RegisterPolicyError, match="treatment_factor"):
        load_register_policy(typo)

    bad_thresholds = tmp_path / "bad.yaml"
    bad_thresholds.write_text("scoring: {customer_thresholds: [5, 2, 10, 50]}\n")
    with pytest.raises(RegisterPolicyError, match="customer_thresholds"):
        load_register_policy(bad_thresholds)


# ---------------------------------------------------------------------------------------------
# Merging and history
# ---------------------------------------------------------------------------------------------


def test_registrable_levels() -> None:
    assert [level for level in RiskLevel if is_registrable(level)] == [3, 4, 5]
    low = classified(level=RiskLevel.LOW)
    assert not should_register(None, low)
    assert should_register(entry_in(S.IDENTIFIED), low)
    with pytest.raises(NotRegistrable, match="levels 3-5"):
        merge_classification(None, low, T0)


def test_new_entry() -> None:
    entry = merge_classification(None, classified(customer_segments=["enterprise"]), T0)
    assert entry.version == 1
    assert entry.status is S.IDENTIFIED
    assert (entry.likelihood, entry.impact, entry.inherent_score) == (3, 5, 15)
    assert entry.residual_score is None
    assert entry.next_review_at == T0 + timedelta(days=14)
    assert entry.ticket_ids == ["t-1"]
    assert entry.updated_at == T0


def test_merge_is_idempotent() -> None:
    first = merge_classification(None, classified(), T0)
    second_event = classified(
        ticket_id="t-2", ticket_ids=["t-1", "t-2"], ticket_count=2, distinct_customers=2
    )
    merged = merge_classification(first, second_event, T0 + timedelta(minutes=5))
    again = merge_classification(merged, second_event, T0 + timedelta(minutes=5))
    assert again is merged
    assert merge_classification(merged, classified(), T0) is merged  # an older duplicate too


def test_merge_accumulates_and_keeps_the_maximum_level() -> None:
    first = merge_classification(None, classified(level=RiskLevel.CRITICAL), T0)
    later = T0 + timedelta(minutes=7)
    merged = merge_classification(
        first,
        classified(
            level=RiskLevel.MEDIUM,
            category=RiskCategory.REPUTATION,
            title="Other title",
            ticket_id="t-9",
            ticket_ids=["t-8", "t-9"],
            ticket_count=9,
            distinct_customers=8,
            customer_segments=["smb", "consumer"],
            products=["payments"],
            indicators=[Indicator.MULTIPLE_SIMILAR_REPORTS, Indicator.SEVERE_IMPACT],
            flagged_at=later,
        ),
        later,
    )
    assert merged.version == 2
    assert merged.level is RiskLevel.CRITICAL
    assert merged.category is RiskCategory.SERVICE_DISRUPTION
    assert merged.title == first.title
    assert merged.customer_segments == ["consumer", "smb"]
    assert merged.products == ["checkout", "payments"]
    assert merged.indicators == [Indicator.SEVERE_IMPACT, Indicator.MULTIPLE_SIMILAR_REPORTS]
    assert merged.ticket_ids == ["t-1", "t-8", "t-9"]
    assert (merged.ticket_count, merged.distinct_customers) == (9, 8)
    assert merged.last_reported_at == later
    assert merged.first_reported_at == T0
    # 8 customers (tier 3) in 7 minutes (rate tier 5, allowed one step over): 4, the level 5 floor.
    assert merged.likelihood == 4
    assert merged.inherent_score == 20


def test_every_ticket_a_surge_adds_is_listed_whatever_the_arrival_order() -> None:
    # What the classifier publishes for a surge: the surging ticket first, then one event per
    # earlier member intake re-flags, each listing the tickets so far.
    joined = ["t-5", "t-1", "t-2", "t-3", "t-4"]
    events = [
        classified(
            ticket_id=ticket_id,
            ticket_ids=joined[: n + 1],
            ticket_count=n + 1,
            distinct_customers=n + 1,
            flagged_at=T0,
        )
        for n, ticket_id in enumerate(joined)
    ]
    entry = None
    for n, event in enumerate(events):
        entry = merge_classification(entry, event, T0 + timedelta(seconds=n))
        assert entry.ticket_ids == joined[: n + 1]
        assert (entry.ticket_count, entry.distinct_customers) == (n + 1, n + 1)
    assert entry is not None
    assert entry.version == len(joined)

    shuffled = None
    for n, event in enumerate([events[0], events[3], events[1], events[4], events[2]]):
        shuffled = merge_classification(shuffled, event, T0 + timedelta(seconds=n))
    assert shuffled is not None
    assert sorted(shuffled.ticket_ids) == sorted(joined)
    assert (shuffled.ticket_count, shuffled.distinct_customers) == (5, 5)


def test_upgrade_takes_the_lead_and_pulls_the_review_forward() -> None:
    first = merge_classification(None, classified(level=RiskLevel.MEDIUM), T0)
    assert first.next_review_at == T0 + timedelta(days=30)
    later = T0 + timedelta(days=2)
    upgraded = merge_classification(
        first,
        classified(level=RiskLevel.CRITICAL, category=RiskCategory.DATA_SECURITY_PRIVACY,
                   title="Data exposure", previous_level=RiskLevel.MEDIUM),
        later,
    )  # fmt: skip
    assert upgraded.level is RiskLevel.CRITICAL
    assert upgraded.category is RiskCategory.DATA_SECURITY_PRIVACY
    assert upgraded.title == "Data exposure"
    assert upgraded.next_review_at == later + timedelta(days=7)
    assert upgraded.impact == 5


def test_override_may_lower_the_level_and_the_risk_stays_registered() -> None:
    first = merge_classification(None, classified(level=RiskLevel.CRITICAL), T0)
    override = Override(by="sm-bob", role=Role.SUPPORT_MANAGER, reason="Single customer")
    lowered = merge_classification(
        first, classified(level=RiskLevel.LOW, override=override), T0 + timedelta(hours=1)
    )
    assert lowered.level is RiskLevel.LOW
    assert lowered.impact == 2
    assert lowered.risk_id == first.risk_id
    assert lowered.version == 2


def test_merge_refuses_another_risk() -> None:
    with pytest.raises(RiskMismatch):
        merge_classification(entry_in(S.IDENTIFIED), classified(risk_id="risk-2"), T0)


def test_new_report_reopens_a_closed_risk_but_a_known_ticket_does_not() -> None:
    closed = entry_in(S.CLOSED, resolution_verification=VERIFIED, next_review_at=None)
    assert merge_classification(closed, classified(), T0) is closed  # re-delivered
    later = T0 + timedelta(days=20)
    recurred = merge_classification(
        closed, classified(ticket_id="t-50", ticket_ids=["t-50"], ticket_count=2), later
    )
    assert recurred.status is S.REOPENED
    assert recurred.resolution_verification is None
    assert recurred.next_review_at == later + timedelta(days=14)

    no_reopen = RegisterPolicy(reopen_on_new_reports=False)
    kept = merge_classification(
        closed, classified(ticket_id="t-50", ticket_ids=["t-50"]), later, policy=no_reopen
    )
    assert kept.status is S.CLOSED
    assert "t-50" in kept.ticket_ids


def test_residual_follows_a_changed_inherent_score() -> None:
    entry = apply_assessment(
        entry_in(S.MITIGATING), Assessment(likelihood=2, impact=4, treatment=Treatment.MITIGATE), T0
    )
    assert entry.residual_score == 4
    surge = classified(ticket_id="t-60", ticket_count=80, distinct_customers=70)
    merged = merge_classification(entry, surge, T0 + timedelta(days=1))
    assert merged.likelihood == 5
    assert merged.inherent_score == 20
    assert merged.residual_score == 10


def test_history_diff_of_a_new_entry_and_of_a_change() -> None:
    first = merge_classification(None, classified(), T0)
    created = diff_entries(None, first, cause_event_id="ev-1")
    assert created.version == 1
    assert created.changes["status"].before is None
    assert created.changes["status"].after == "identified"
    assert "version" not in created.changes
    assert "updated_at" not in created.changes
    assert "owner" not in created.changes  # None before and after

    moved = apply_transition(first, S.ESCALATED, role=Role.SUPPORT_MANAGER, at=T0)
    record = diff_entries(first, moved, actor="sm-bob", role=Role.SUPPORT_MANAGER)
    assert set(record.changes) == {"status"}
    assert record.changes["status"].model_dump() == {"before": "identified", "after": "escalated"}
    assert (record.actor, record.role, record.version) == ("sm-bob", Role.SUPPORT_MANAGER, 2)
    assert diff_entries(moved, moved).changes == {}


def test_history_record_is_json_ready() -> None:
    first = merge_classification(None, classified(), T0)
    record = diff_entries(None, first)
    assert record.changes["first_reported_at"].after == "2025-03-03T09:00:00Z"
    assert record.model_dump_json()


# ---------------------------------------------------------------------------------------------
# Property: no sequence of attempts leaves the table
# ---------------------------------------------------------------------------------------------


attempts = st.lists(
    st.tuples(
        st.sampled_from(list(RiskStatus)),
        st.one_of(st.none(), st.sampled_from(list(Role))),
        st.sampled_from([None, "", VERIFIED]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(attempts)
def test_random_attempts_never_leave_the_table(
    sequence: list[tuple[RiskStatus, Role | None, str | None]],
) -> None:
    entry = merge_classification(None, classified(), T0)
    at = T0
    for target, role, verification in sequence:
        at += timedelta(minutes=1)
        before = entry
        try:
            entry = apply_transition(
                entry, target, role=role, at=at, resolution_verification=verification
            )
        except RegisterError:
            assert entry is before
            continue
        transition = TRANSITIONS[(before.status, entry.status)]
        assert role in transition.roles if role is not None else transition.automatic
        assert entry.version == before.version + 1
        assert entry.status in ALLOWED_TARGETS[before.status]
        if entry.status is S.CLOSED:
            assert entry.resolution_verification
