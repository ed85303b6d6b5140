"""The register pages' pure parts: only changed fields are sent, the history as a diff, filters
and the register's refusals in words."""

from __future__ import annotations

import httpx

from riskrelay.reporting.console_register import (
    assessment_changes,
    filter_query,
    history_rows,
    refusal_text,
    shown_values,
)

ENTRY = {
    "owner": "rita@example.org",
    "likelihood": 4,
    "impact": 3,
    "residual_score": 9,
    "treatment": "mitigate",
    "assessment": None,
    "communication_template": None,
    "resolution_verification": None,
    "prevention_measures": None,
    "mitigation": {"strategy": "Rotate keys", "owner": None, "target_date": "2026-07-01T00:00:00Z"},
}


def form_of(entry: dict[str, object], **changes: str) -> dict[str, str]:
    shown = shown_values(entry)
    return {**{f"was_{k}": v for k, v in shown.items()}, **shown, **changes}


def test_the_form_shows_each_field_as_text() -> None:
    shown = shown_values(ENTRY)
    assert shown["likelihood"] == "4"
    assert shown["assessment"] == ""
    assert shown["mitigation_strategy"] == "Rotate keys"
    assert shown["mitigation_target_date"] == "2026-07-01"


def test_only_the_changed_fields_are_sent_so_an_unchanged_residual_is_not_resent() -> None:
    body, errors = assessment_changes(form_of(ENTRY, impact="5", reason="worse than thought"))
    assert errors == []
    assert body == {"impact": 5, "reason": "worse than thought"}


def test_nothing_changed_sends_nothing_and_a_reason_alone_is_no_change() -> None:
    assert assessment_changes(form_of(ENTRY, reason="just looking")) == ({}, [])


def test_a_changed_mitigation_is_sent_whole_with_its_date_in_utc() -> None:
    body, errors = assessment_changes(form_of(ENTRY, mitigation_owner="ops@example.org"))
    assert errors == []
    assert body == {
        "mitigation": {
            "strategy": "Rotate keys",
            "owner": "ops@example.org",
            "target_date": "2026-07-01T00:00:00+00:00",
        }
    }


def test_bad_values_are_named() -> None:
    _, errors = assessment_changes(
        form_of(ENTRY, likelihood="high", mitigation_target_date="1 July")
    )
    assert "Likelihood must be a whole number." in errors
    assert "Mitigation target date must be a date (YYYY-MM-DD)." in errors
    _, no_strategy = assessment_changes(form_of({}, mitigation_owner="ops@example.org"))
    assert no_strategy == ["A mitigation plan needs its strategy."]
    _, emptied = assessment_changes(form_of(ENTRY, mitigation_strategy=""))
    assert emptied == ["A mitigation plan needs its strategy (or tick Remove the mitigation plan)."]


def test_a_free_text_once_written_can_be_cleared() -> None:
    written = {**ENTRY, "assessment": "Keys leaked in a log", "prevention_measures": "Scrub logs"}
    body, errors = assessment_changes(form_of(written, assessment="  ", reason="wrong risk"))
    assert errors == []
    assert body == {"assessment": None, "reason": "wrong risk"}
    cleared = [row.after for row in history_rows(
        [{"version": 2, "at": "2026-07-01T10:00:00Z", "kind": "assessed", "actor": None,
          "changes": {"assessment": {"before": "Keys leaked in a log", "after": None}}}], {}
    )]  # fmt: skip
    assert cleared == ["–"]


def test_an_emptied_owner_treatment_or_score_is_sent_as_null() -> None:
    body, errors = assessment_changes(
        form_of(ENTRY, owner="", treatment="", likelihood=" ", residual_score="", reason="reset")
    )
    assert errors == []
    assert body == {
        "owner": None,
        "likelihood": None,
        "residual_score": None,
        "treatment": None,
        "reason": "reset",
    }


def test_the_mitigation_plan_is_removed_with_its_control_or_by_emptying_it() -> None:
    removed = {"mitigation": None}
    assert assessment_changes(form_of(ENTRY, remove_mitigation="on")) == (removed, [])
    emptied = form_of(ENTRY, mitigation_strategy="", mitigation_target_date="")
    assert assessment_changes(emptied) == (removed, [])
    both = form_of(ENTRY, remove_mitigation="on", mitigation_strategy="Rotate and revoke")
    assert assessment_changes(both) == (
        {},
        ["Either remove the mitigation plan or change it, not both."],
    )
    # No plan shown: the control has nothing to remove.
    assert assessment_changes(form_of({}, remove_mitigation="on")) == ({}, [])


def test_a_review_checkbox_is_a_change_of_its_own() -> None:
    assert assessment_changes(form_of(ENTRY, reviewed="on")) == ({"reviewed": True}, [])


def test_history_newest_first_one_row_per_field_with_the_persons_name() -> None:
    history = [
        {
            "version": 1,
            "kind": "created",
            "at": "2026-06-01T10:00:00Z",
            "actor": None,
            "role": None,
            "reason": None,
            "changes": {},
        },
        {
            "version": 2,
            "kind": "assessment",
            "at": "2026-06-01T11:30:00Z",
            "actor": "u-1",
            "role": "risk_management",
            "reason": "triage",
            "changes": {
                "owner": {"before": None, "after": "rita@example.org"},
                "impact": {"before": None, "after": 3},
            },
        },
    ]
    rows = history_rows(history, {"u-1": "Rita Risk <rita@example.org>"})
    assert [(r.version, r.field, r.before, r.after) for r in rows] == [
        (2, "impact", "–", "3"),
        (2, "owner", "–", "rita@example.org"),
        (1, "", "–", "–"),
    ]
    assert rows[0].who == "Rita Risk <rita@example.org> (risk_management)"
    assert rows[0].at == "2026-06-01 11:30"
    assert rows[2].who == "the service"


def test_filters_keep_the_registers_own_and_drop_blanks() -> None:
    assert filter_query({"level": "4", "status": "", "q": " invoices ", "cursor": "x"}) == {
        "level": "4",
        "q": "invoices",
    }


def test_refusals_in_words() -> None:
    conflict = httpx.Response(409, json={"detail": {"message": "no move from closed"}})
    assert refusal_text(conflict) == "no move from closed"
    invalid = httpx.Response(
        422,
        json={
            "detail": "invalid request",
            "errors": [{"field": "body.residual_score", "message": "too high"}],
        },
    )
    assert refusal_text(invalid) == "residual_score: too high"
    assert refusal_text(httpx.Response(404, json={"detail": "unknown risk r"})) == "unknown risk r"
    assert refusal_text(httpx.Response(502, text="bad gateway")) == "bad gateway"
