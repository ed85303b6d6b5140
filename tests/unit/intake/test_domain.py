"""The top-level pure functions: assess_ticket, build_ticket_flagged, decide_ticket, reflags."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskrelay.intake.clustering import ClusterIndex
from riskrelay.intake.domain import (
    INTAKE_SOURCE,
    AssessmentConfig,
    TicketAssessment,
    assess_ticket,
    build_ticket_flagged,
    decide_ticket,
    flagged_event,
    reflag_for_surge,
    remembered_assessment,
)
from riskrelay.intake.errors import FieldTooLargeError, UnknownVocabularyError
from riskrelay.intake.normalization import SizeLimits
from riskrelay.intake.patterns import RateBaselines, RateConfig
from riskrelay.intake.rules import RulePack
from riskrelay.intake.semantic.detector import SemanticDetector
from riskrelay.intake.webhooks import MappingOptions, map_zammad, map_zendesk
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    Indicator,
    PersonalDataKind,
    RiskLevel,
    TicketEvent,
    TicketEventKind,
    TicketFlagged,
)

MakeEvent = Callable[..., TicketEvent]
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # the make_event fixture's default time

pytestmark = pytest.mark.unit

SAMPLES = Path(__file__).parent / "samples"
LOGIN = [
    "can't log in to the app since this morning",
    "sign-in fails with error 500 since 9am",
    "Login not working - keeps spinning and then shows an error",
    "Unable to sign in on my phone, tried twice",
    "I cannot access my account, the log on page gives an error",
    "Authentication failed again!!",
]


# --- assess_ticket -------------------------------------------------------------------------


def test_assessment_normalizes_redacts_and_detects(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    event = make_event(
        "<p>My account was hacked and they bought stuff with my card 4111 1111 1111 1111.</p>"
        "<p>We lost $25,000. Reach me at jane@example.com or +44 20 7946 0958.</p>"
        "<p>Best regards,<br>Jane</p>",
        subject="Hacked! jane@example.com",
        channel="E-Mail",
        priority="P1",
        tags=[" VIP ", "vip", "Billing"],
    )
    assessment = assess_ticket(event, rule_pack)
    assert assessment.channel == "email"
    assert assessment.priority == "urgent"
    assert assessment.tags == ["vip", "billing"]
    assert assessment.redacted_subject == "Hacked! [EMAIL]"
    assert "[CARD]" in assessment.redacted_summary
    assert "4111" not in assessment.model_dump_json()
    assert "jane@example.com" not in assessment.model_dump_json()
    assert "7946" not in assessment.model_dump_json()
    assert assessment.data_classification == [
        PersonalDataKind.EMAIL,
        PersonalDataKind.PHONE,
        PersonalDataKind.CARD,
        PersonalDataKind.NAME,
    ]
    assert assessment.financial_amount == 25_000
    assert set(assessment.indicators) == {Indicator.SECURITY_ISSUE, Indicator.SEVERE_IMPACT}
    assert assessment.rule_pack_version == rule_pack.version
    assert assessment.occurred_at == event.time
    assert assessment.upstream_event_id == event.id


def test_quiet_ticket_has_no_detections_and_no_flag(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    assessment = assess_ticket(make_event("When will my parcel arrive?"), rule_pack)
    assert assessment.detections == []
    assert build_ticket_flagged(assessment) is None


def test_unknown_channel_and_priority_are_rejected(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    with pytest.raises(UnknownVocabularyError, match="channel"):
        assess_ticket(make_event(channel="fax"), rule_pack)
    with pytest.raises(UnknownVocabularyError, match="priority"):
        assess_ticket(make_event(priority="whenever"), rule_pack)


def test_oversized_fields_are_rejected_with_field_and_limit(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    config = AssessmentConfig(size_limits=SizeLimits(description=50, comment=20))
    with pytest.raises(FieldTooLargeError) as caught:
        assess_ticket(make_event("y" * 51), rule_pack, config)
    assert (caught.value.field, caught.value.limit) == ("description", 50)
    with pytest.raises(FieldTooLargeError) as caught:
        assess_ticket(
            make_event("short", kind=TicketEventKind.COMMENTED, comment="z" * 21), rule_pack, config
        )
    assert caught.value.field == "comment.body"


def test_agent_risk_flag_is_an_indicator_and_its_text_is_redacted(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    event = make_event(
        "Customer asks about an invoice.",
        risk_flag={
            "level": 4,
            "category": "compliance",
            "description": "Customer bob@example.com threatens regulator",
            "containment": "Called +44 20 7946 0958",
        },
    )
    assessment = assess_ticket(event, rule_pack)
    [flag] = [d for d in assessment.detections if d.indicator is Indicator.AGENT_RISK_FLAG]
    assert flag.rule_id == "agent.risk-flag"
    assert flag.confidence == 1.0
    assert "level 4 (High)" in flag.evidence
    assert "bob@example.com" not in flag.evidence
    assert assessment.risk_flag is not None
    assert assessment.risk_flag.description == "Customer [EMAIL] threatens regulator"
    assert assessment.risk_flag.containment == "Called [PHONE]"
    assert assessment.risk_flag.level is RiskLevel.HIGH


def test_comment_is_checked_without_its_quoted_thread(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    quoted_only = make_event(
        "Where is my parcel?",
        kind=TicketEventKind.COMMENTED,
        comment="Any news?\n\nOn Mon, 3 Mar 2025, Support wrote:\n> Your account was hacked, we know.",
    )
    assert assess_ticket(quoted_only, rule_pack).detections == []
    fresh = make_event(
        "Where is my parcel?",
        kind=TicketEventKind.COMMENTED,
        comment="I will take you to court over this.",
    )
    assert assess_ticket(fresh, rule_pack).indicators == [Indicator.COMPLIANCE_QUESTION]


def test_summary_is_cut_without_splitting_a_placeholder(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    text = "word " * 98 + "mail a@b.io please"
    assessment = assess_ticket(make_event(text), rule_pack, AssessmentConfig(summary_chars=500))
    assert len(assessment.redacted_summary) <= 500
    assert assessment.redacted_summary.endswith("…")
    assert "[EMA" not in assessment.redacted_summary.replace("[EMAIL]", "")


def test_assessment_round_trips_through_json(make_event: MakeEvent, rule_pack: RulePack) -> None:
    assessment = assess_ticket(make_event("My data was leaked, call 415-555-2671"), rule_pack)
    assert TicketAssessment.model_validate_json(assessment.model_dump_json()) == assessment


# --- TicketFlagged -------------------------------------------------------------------------


def test_build_ticket_flagged_copies_the_assessment(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    event = make_event("I will report this GDPR violation to the regulator.", customer_id="c-7")
    assessment = assess_ticket(event, rule_pack)
    flagged = build_ticket_flagged(assessment)
    assert isinstance(flagged, TicketFlagged)
    assert flagged.ticket_id == event.data.ticket_id
    assert flagged.upstream_event_id == event.id
    assert flagged.upstream_source == "test://helpdesk"
    assert flagged.customer_id == "c-7"
    assert flagged.new_indicators == [Indicator.COMPLIANCE_QUESTION]
    assert flagged.rule_pack_version == rule_pack.version
    envelope = flagged_event(flagged, cause_event_id=event.id, time=event.time)
    assert envelope.id == derive_event_id(event.id, f"intake/flag/{flagged.ticket_id}")
    assert envelope.source == INTAKE_SOURCE
    assert envelope.causationid == event.id
    assert envelope.correlationid == flagged.ticket_id


# --- decide_ticket: clusters, surges, rates, follow-ups ------------------------------------


def test_surge_flags_the_fifth_ticket_and_lists_earlier_ones(
    make_event: MakeEvent, rule_pack: RulePack, semantic_detector: SemanticDetector
) -> None:
    config = AssessmentConfig(semantic=semantic_detector)
    clusters, rates = ClusterIndex(), RateBaselines()
    stored: dict[str, TicketAssessment] = {}
    decisions = []
    for i in range(5):
        event = make_event(
            LOGIN[i],
            subject="Login",
            ticket_id=f"T-{i}",
            customer_id=f"c{i}",
            time=T0 + timedelta(minutes=10 * i),
        )
        decision = decide_ticket(event, rule_pack, clusters=clusters, rates=rates, config=config)
        stored[decision.assessment.ticket_id] = decision.assessment
        decisions.append(decision)

    assert all(d.assessment.problem for d in decisions), "login trouble is a problem report"
    assert all(d.flagged is None for d in decisions[:4]), "plain login trouble alone is no risk"
    fifth = decisions[4]
    assert fifth.flagged is not None
    assert Indicator.MULTIPLE_SIMILAR_REPORTS in fifth.flagged.new_indicators
    assert fifth.flagged.cluster is not None
    assert fifth.flagged.cluster.surging
    assert fifth.flagged.cluster.distinct_customers == 5
    assert fifth.cluster is not None
    assert set(fifth.reflag_ticket_ids) == {"T-0", "T-1", "T-2", "T-3"}

    reflag = reflag_for_surge(stored["T-0"], fifth.cluster)
    assert reflag is not None
    assert reflag.ticket_id == "T-0"
    assert reflag.new_indicators == [Indicator.MULTIPLE_SIMILAR_REPORTS]
    assert reflag.cluster == fifth.cluster.info
    [surge] = [d for d in reflag.indicators if d.indicator is Indicator.MULTIPLE_SIMILAR_REPORTS]
    assert "5 distinct customers within 60 minutes" in surge.evidence
    assert (
        reflag_for_surge(
            stored["T-0"], fifth.cluster, known_indicators=[Indicator.MULTIPLE_SIMILAR_REPORTS]
        )
        is None
    )

    later = decide_ticket(
        make_event(LOGIN[5], ticket_id="T-5", customer_id="c5", time=T0 + timedelta(minutes=50)),
        rule_pack,
        clusters=clusters,
        rates=rates,
        config=config,
    )
    assert later.flagged is not None
    assert Indicator.MULTIPLE_SIMILAR_REPORTS in later.flagged.new_indicators
    assert later.reflag_ticket_ids == ()


def test_many_customers_asking_the_same_routine_question_never_cluster(
    make_event: MakeEvent, rule_pack: RulePack, semantic_detector: SemanticDetector
) -> None:
    config = AssessmentConfig(semantic=semantic_detector)
    clusters, rates = ClusterIndex(), RateBaselines()
    questions = [
        "How do I pay my bill?",
        "how can i pay my bill online",
        "Where do I go to pay my bill?",
        "what's the way to pay my bill",
        "I want to pay my bill, how do I do that",
        "how do i make a payment on my bill",
    ]
    for n, question in enumerate(questions):
        decision = decide_ticket(
            make_event(question, ticket_id=f"Q-{n}", customer_id=f"c{n}", time=T0),
            rule_pack,
            clusters=clusters,
            rates=rates,
            config=config,
        )
        assert not decision.assessment.problem
        assert decision.cluster is None
        assert decision.flagged is None
    assert clusters == ClusterIndex()


def test_a_ticket_flagged_by_rules_alone_stays_outside_any_cluster(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    clusters = ClusterIndex()
    decision = decide_ticket(
        make_event("My account was hacked."), rule_pack, clusters=clusters, rates=RateBaselines()
    )
    assert decision.flagged is not None
    assert decision.flagged.indicators[0].indicator is Indicator.SECURITY_ISSUE
    assert decision.cluster is None
    assert decision.flagged.cluster is None
    assert clusters.clusters == {}


def test_follow_up_emits_only_when_it_adds_indicators(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    clusters, rates = ClusterIndex(), RateBaselines()
    created = decide_ticket(
        make_event("My account was hacked.", ticket_id="T-1"),
        rule_pack,
        clusters=clusters,
        rates=rates,
    )
    assert created.flagged is not None
    known = created.known_indicators_after
    assert known == [Indicator.SECURITY_ISSUE]

    same = decide_ticket(
        make_event(
            "My account was hacked.",
            ticket_id="T-1",
            kind=TicketEventKind.COMMENTED,
            comment="Any update? Someone is still logged in to my account from a strange place.",
        ),
        rule_pack,
        clusters=clusters,
        rates=rates,
        known_ticket=True,
        known_indicators=known,
    )
    assert same.flagged is None
    assert same.rate is None, "a follow-up is not a new ticket for the rate baseline"

    more = decide_ticket(
        make_event(
            "My account was hacked.",
            ticket_id="T-1",
            kind=TicketEventKind.COMMENTED,
            comment="I'm going to the press with this.",
        ),
        rule_pack,
        clusters=clusters,
        rates=rates,
        known_ticket=True,
        known_indicators=known,
    )
    assert more.flagged is not None
    assert more.flagged.new_indicators == [Indicator.REPUTATION_THREAT]
    assert {d.indicator for d in more.flagged.indicators} >= {
        Indicator.SECURITY_ISSUE,
        Indicator.REPUTATION_THREAT,
    }
    assert more.flagged.event_kind is TicketEventKind.COMMENTED


def test_raised_risk_flag_on_update_emits(make_event: MakeEvent, rule_pack: RulePack) -> None:
    clusters, rates = ClusterIndex(), RateBaselines()
    flag = {"level": 5, "description": "Worse than thought"}
    decision = decide_ticket(
        make_event("Question", ticket_id="T-1", kind=TicketEventKind.UPDATED, risk_flag=flag),
        rule_pack,
        clusters=clusters,
        rates=rates,
        known_indicators=[Indicator.AGENT_RISK_FLAG],
        known_risk_flag_level=3,
    )
    assert decision.flagged is not None
    assert decision.flagged.new_indicators == []


def test_unusual_rate_adds_the_indicator(make_event: MakeEvent, rule_pack: RulePack) -> None:
    config = AssessmentConfig(rates=RateConfig(min_history_hours=3))
    clusters, rates = ClusterIndex(), RateBaselines()
    subjects = ["Order", "Parcel", "Invoice", "Colour", "Font", "Theme", "Avatar", "Language"]
    for hour in range(4):
        number = hour + 1
        decide_ticket(
            make_event(
                f"{subjects[hour]} question {hour}",
                ticket_id=f"Q-{number}",
                customer_id=f"q{number}",
                time=T0 + timedelta(hours=hour),
            ),
            rule_pack,
            clusters=clusters,
            rates=rates,
            config=config,
        )
    flagged = []
    for i in range(8):
        decision = decide_ticket(
            make_event(
                f"{subjects[i]} widget {i}",
                ticket_id=f"B-{i}",
                customer_id=f"b{i}",
                time=T0 + timedelta(hours=4, minutes=i),
            ),
            rule_pack,
            clusters=clusters,
            rates=rates,
            config=config,
        )
        flagged.append(decision.flagged)
    assert flagged[0] is None
    unusual = [f for f in flagged if f is not None]
    assert unusual
    assert all(f.new_indicators == [Indicator.UNUSUAL_PATTERN] for f in unusual)


# --- webhook samples through the whole pipeline ---------------------------------------------


def test_zendesk_sample_end_to_end_leaks_no_personal_data(rule_pack: RulePack) -> None:
    payload = json.loads((SAMPLES / "zendesk_event_ticket_created.json").read_text())
    event = map_zendesk(
        payload, subdomain="acme", options=MappingOptions(default_product="Payments")
    )
    decision = decide_ticket(event, rule_pack, clusters=ClusterIndex(), rates=RateBaselines())
    assert decision.flagged is not None
    wire = decision.flagged.model_dump_json()
    for raw in ("jane.doe@example.com", "4111 1111 1111 1111", "7946 0958"):
        assert raw not in wire
    assert Indicator.SECURITY_ISSUE in {d.indicator for d in decision.flagged.indicators}
    assert set(decision.flagged.data_classification) == {
        PersonalDataKind.EMAIL,
        PersonalDataKind.PHONE,
        PersonalDataKind.CARD,
        PersonalDataKind.NAME,
    }


def test_zammad_sample_end_to_end(rule_pack: RulePack) -> None:
    payload = json.loads((SAMPLES / "zammad_ticket_created.json").read_text())
    event = map_zammad(payload, host="support.example.com")
    assessment = assess_ticket(event, rule_pack)
    assert assessment.financial_amount == 50_000
    assert set(assessment.indicators) == {Indicator.DATA_CONCERN, Indicator.SEVERE_IMPACT}
    assert "earlier conversation" not in assessment.redacted_summary


# --- property: nothing raw reaches the flagged event ----------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(email=st.emails(), digits=st.integers(min_value=10**14, max_value=10**15 - 1))
def test_flagged_payload_never_contains_raw_email_or_card(
    make_event: MakeEvent, rule_pack: RulePack, email: str, digits: int
) -> None:
    from stdnum import luhn

    body = str(digits)
    card = body + luhn.calc_check_digit(body)
    event = make_event(
        f"My data was leaked: {email} and card {card} were posted online.",
        subject=f"Leak {email}",
    )
    decision = decide_ticket(event, rule_pack, clusters=ClusterIndex(), rates=RateBaselines())
    assert decision.flagged is not None
    wire = decision.flagged.model_dump_json()
    assert email not in wire
    assert card not in wire


def test_remembered_assessment_keeps_every_detection_a_ticket_ever_had(
    make_event: MakeEvent, rule_pack: RulePack
) -> None:
    first = assess_ticket(
        make_event("I can see another customer's invoices in my account.", ticket_id="T-9"),
        rule_pack,
    )
    later = assess_ticket(
        make_event("Thanks, any news?", ticket_id="T-9", comment="Any news on this?"), rule_pack
    )
    assert first.detections
    assert not later.detections
    kept = remembered_assessment(first, later)
    assert kept.detections == first.detections
    assert kept.upstream_event_id == later.upstream_event_id
    assert remembered_assessment(None, later) is later
