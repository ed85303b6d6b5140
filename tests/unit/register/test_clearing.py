"""Clearing register fields: an assessment field given as null clears it, a field left out stays,
scores derived from a cleared one are cleared or recomputed, a field the status depends on is
refused, and every clear is in the history as old value -> null; the API body maps null and
absent onto the domain apart."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from riskrelay.register.api import AssessmentUpdate
from riskrelay.register.domain import (
    REQUIRED_WHILE,
    Assessment,
    ClearRefused,
    InvalidScore,
    RegisterError,
    apply_assessment,
    diff_entries,
    merge_classification,
)
from riskrelay.shared.events import MitigationPlan, RiskRegisterEntry, RiskStatus, Treatment
from tests.unit.register.test_domain import T0, VERIFIED, classified, entry_in

pytestmark = pytest.mark.unit

S = RiskStatus
LATER = T0 + timedelta(hours=4)
PLAN = MitigationPlan(strategy="Rotate the leaked keys", owner="eng-sec", target_date=T0)


def assessed(status: RiskStatus = S.ESCALATED, **overrides: Any) -> RiskRegisterEntry:
    """An entry with every clearable field set: scores 4 x 4 = 16, mitigate, residual 8."""
    values: dict[str, Any] = {
        "owner": "rm-anna",
        "likelihood": 4,
        "impact": 4,
        "inherent_score": 16,
        "treatment": Treatment.MITIGATE,
        "residual_score": 8,
        "mitigation": PLAN,
        "assessment": "Keys in a debug log",
        "communication_template": "We rotated your keys",
        "resolution_verification": VERIFIED,
        "prevention_measures": "Scrub logs",
    }
    return entry_in(status, **(values | overrides))


def test_a_field_left_out_is_unchanged_and_one_given_as_null_is_cleared() -> None:
    entry = assessed()
    assert apply_assessment(entry, Assessment(), LATER) is entry
    cleared = apply_assessment(entry, Assessment(owner=None, mitigation=None), LATER)
    assert (cleared.owner, cleared.mitigation) == (None, None)
    assert cleared.version == entry.version + 1
    assert (cleared.likelihood, cleared.treatment, cleared.residual_score) == (4, "mitigate", 8)
    assert cleared.assessment == entry.assessment
    history = diff_entries(entry, cleared, actor="rm-anna")
    assert history.changes["owner"].model_dump() == {"before": "rm-anna", "after": None}
    assert history.changes["mitigation"].before == PLAN.model_dump(mode="json")
    assert history.changes["mitigation"].after is None
    assert set(history.changes) == {"owner", "mitigation"}


def test_a_clear_of_an_empty_field_changes_nothing() -> None:
    entry = entry_in(S.MITIGATING)
    assert entry.owner is None
    assert apply_assessment(entry, Assessment(owner=None, mitigation=None), LATER) is entry


@pytest.mark.parametrize("text", [None, "", "   "])
def test_a_null_or_blank_text_clears_it_to_null(text: str | None) -> None:
    cleared = apply_assessment(
        assessed(), Assessment(assessment=text, prevention_measures=text), LATER
    )
    assert (cleared.assessment, cleared.prevention_measures) == (None, None)
    assert cleared.communication_template == "We rotated your keys"


@pytest.mark.parametrize("name", ["likelihood", "impact"])
def test_clearing_likelihood_or_impact_clears_the_inherent_and_residual_scores(
    name: str,
) -> None:
    entry = assessed()
    cleared = apply_assessment(entry, Assessment.model_validate({name: None}), LATER)
    assert getattr(cleared, name) is None
    assert (cleared.inherent_score, cleared.residual_score) == (None, None)
    assert cleared.treatment is Treatment.MITIGATE
    changes = diff_entries(entry, cleared).changes
    assert {field: change.after for field, change in changes.items()} == {
        name: None,
        "inherent_score": None,
        "residual_score": None,
    }
    # Scored again: the inherent score and the treatment's residual come back.
    rescored = apply_assessment(cleared, Assessment.model_validate({name: 5}), LATER)
    assert (rescored.inherent_score, rescored.residual_score) == (20, 10)


def test_the_next_classification_brings_the_evidence_scores_back() -> None:
    fresh = entry_in(S.ESCALATED)
    cleared = apply_assessment(fresh, Assessment(likelihood=None, impact=None), LATER)
    assert (cleared.likelihood, cleared.impact, cleared.inherent_score) == (None, None, None)
    merged = merge_classification(cleared, classified(ticket_id="t-2"), LATER)
    assert (merged.likelihood, merged.impact) == (fresh.likelihood, fresh.impact)
    assert merged.inherent_score == fresh.inherent_score


def test_a_residual_cannot_be_given_while_a_score_is_cleared() -> None:
    with pytest.raises(InvalidScore, match="needs likelihood and impact"):
        apply_assessment(assessed(), Assessment(impact=None, residual_score=3), LATER)


def test_clearing_the_residual_drops_the_analysts_figure_for_the_treatments() -> None:
    analyst = apply_assessment(assessed(), Assessment(residual_score=3), LATER)
    assert analyst.residual_score == 3
    derived = apply_assessment(analyst, Assessment(residual_score=None), LATER)
    assert derived.residual_score == 8  # ceil(16 x 0.5), mitigate's factor
    # Mitigating needs its treatment, not an analyst's residual: this clear is allowed there.
    mitigating = apply_assessment(assessed(S.MITIGATING, residual_score=3), Assessment(residual_score=None), LATER)  # fmt: skip
    assert mitigating.residual_score == 8
    untreated = assessed(treatment=None, residual_score=3)
    assert (
        apply_assessment(untreated, Assessment(residual_score=None), LATER).residual_score is None
    )


def test_clearing_the_treatment_clears_its_residual_unless_one_is_given() -> None:
    cleared = apply_assessment(assessed(), Assessment(treatment=None), LATER)
    assert (cleared.treatment, cleared.residual_score, cleared.inherent_score) == (None, None, 16)
    kept = apply_assessment(assessed(), Assessment(treatment=None, residual_score=12), LATER)
    assert (kept.treatment, kept.residual_score) == (None, 12)


@pytest.mark.parametrize(
    ("status", "field"),
    [
        (S.UNDER_JOINT_ASSESSMENT, "owner"),
        (S.RESPONSE_PLANNED, "owner"),
        (S.MITIGATING, "owner"),
        (S.MONITORING, "owner"),
        (S.RESPONSE_PLANNED, "treatment"),
        (S.MITIGATING, "treatment"),
        (S.MONITORING, "treatment"),
        (S.RESPONSE_PLANNED, "likelihood"),
        (S.MONITORING, "impact"),
        (S.MITIGATING, "mitigation"),
        (S.CLOSED, "resolution_verification"),
    ],
)
def test_a_field_the_status_requires_cannot_be_cleared(status: RiskStatus, field: str) -> None:
    entry = assessed(status)
    with pytest.raises(ClearRefused) as refused:
        apply_assessment(entry, Assessment.model_validate({field: None}), LATER)
    assert refused.value.field == field
    assert refused.value.status is status
    assert str(refused.value).startswith(f"{field} cannot be cleared while the risk is ")
    assert refused.value.why in str(refused.value)
    assert isinstance(refused.value, RegisterError)


def test_a_blank_verification_of_a_closed_risk_is_a_clear_and_refused() -> None:
    with pytest.raises(ClearRefused, match="reopen it first"):
        apply_assessment(assessed(S.CLOSED), Assessment(resolution_verification="  "), LATER)


@pytest.mark.parametrize(
    ("status", "field"),
    [
        (S.IDENTIFIED, "owner"),
        (S.ESCALATED, "owner"),
        (S.REOPENED, "owner"),
        (S.CLOSED, "owner"),
        (S.UNDER_JOINT_ASSESSMENT, "treatment"),
        (S.UNDER_JOINT_ASSESSMENT, "likelihood"),
        (S.RESPONSE_PLANNED, "mitigation"),
        (S.MONITORING, "mitigation"),
        (S.MONITORING, "resolution_verification"),
        (S.MITIGATING, "assessment"),
    ],
)
def test_the_same_field_can_be_cleared_where_the_status_does_not_need_it(
    status: RiskStatus, field: str
) -> None:
    cleared = apply_assessment(assessed(status), Assessment.model_validate({field: None}), LATER)
    assert getattr(cleared, field) is None


def test_every_required_field_is_refused_somewhere_and_allowed_somewhere() -> None:
    for requirement in REQUIRED_WHILE.values():
        assert requirement.why
        assert requirement.statuses
        assert set(RiskStatus) - requirement.statuses


def test_the_api_body_keeps_null_and_absent_apart() -> None:
    absent = AssessmentUpdate.model_validate({"likelihood": 3}).to_assessment()
    assert absent.model_fields_set == {"likelihood"}
    nulls = AssessmentUpdate.model_validate(
        {"owner": None, "mitigation": None, "treatment": None, "reason": "wrong owner"}
    ).to_assessment()
    assert nulls.model_fields_set == {"owner", "mitigation", "treatment"}
    assert (nulls.owner, nulls.mitigation, nulls.treatment) == (None, None, None)
    plan = AssessmentUpdate.model_validate({"mitigation": {"strategy": "Rotate keys"}})
    assert plan.to_assessment().mitigation == MitigationPlan(strategy="Rotate keys")
    with pytest.raises(ValidationError, match="reviewed"):
        AssessmentUpdate.model_validate({"reviewed": None})
