"""People's feedback as labelled examples: which text teaches which model what, and the files
the trainer reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from riskrelay.cli.train import write_feedback_files
from riskrelay.intake.feedback import (
    StoredFeedback,
    example_files,
    feedback_examples,
    labels_of,
    with_ticket_texts,
)
from riskrelay.intake.semantic.examples import PROBLEM, load_example_file
from riskrelay.shared.events import Indicator, RiskFeedback
from riskrelay.training import training_examples

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SENTENCE = "someone changed the e-mail on my account"


def feedback(kind: str = "not_a_risk", at: datetime = AT, **fields: Any) -> RiskFeedback:
    base: dict[str, Any] = {
        "kind": kind,
        "ticket_id": "T-1",
        "given_by": "lead@example.org",
        "role": "team_lead",
        "given_at": at,
        "indicators": ["security_issue", "multiple_similar_reports"],
        "texts": [
            {"text": SENTENCE, "source": "sentence", "indicator": "security_issue"},
            {"text": "GDPR", "source": "match", "indicator": "compliance_question"},
            {"text": "Account question", "source": "subject"},
        ],
    }
    return RiskFeedback.model_validate({**base, **fields})


def test_not_a_risk_makes_hard_negatives_of_the_flagged_model_indicators_only() -> None:
    assert labels_of(feedback()) == [
        (SENTENCE, Indicator.SECURITY_ISSUE, "hard_negative"),
        # the subject: of each flagged indicator a model learns (not of the cluster surge) ...
        ("Account question", Indicator.SECURITY_ISSUE, "hard_negative"),
    ]  # ... and a rule's matched span teaches no model


def test_a_missed_risk_is_a_positive_of_the_named_indicator_or_of_the_problem_model() -> None:
    texts = [{"text": "my data is on a forum", "source": "summary"}]
    named = feedback("missed_risk", indicators=["data_concern"], texts=texts)
    assert labels_of(named) == [("my data is on a forum", Indicator.DATA_CONCERN, "positive")]
    unnamed = feedback("missed_risk", indicators=[], texts=texts)
    assert labels_of(unnamed) == [("my data is on a forum", PROBLEM, "positive")]
    # No model learns an unusual pattern from text: it is a problem report.
    pattern = feedback("missed_risk", indicators=["unusual_pattern"], texts=texts)
    assert labels_of(pattern) == [("my data is on a forum", PROBLEM, "positive")]


def test_a_wrong_level_is_recorded_but_teaches_no_text() -> None:
    assert labels_of(feedback("wrong_level", correct_level=2)) == []


def test_the_latest_feedback_on_the_same_text_and_model_wins() -> None:
    earlier = StoredFeedback("e1", feedback())
    later = StoredFeedback(
        "e2",
        feedback(
            "missed_risk",
            AT + timedelta(hours=1),
            indicators=["security_issue"],
            texts=[{"text": SENTENCE, "source": "sentence", "indicator": "security_issue"}],
        ),
    )
    examples = feedback_examples([later, earlier])  # stored order does not matter
    roles = {(e.text, e.role, e.source) for e in examples}
    assert (SENTENCE, "positive", "risk-feedback:e2") in roles
    assert (SENTENCE, "hard_negative", "risk-feedback:e1") not in roles
    assert ("Account question", "hard_negative", "risk-feedback:e1") in roles


def test_intakes_memory_completes_the_texts_once() -> None:
    completed = with_ticket_texts(feedback(), "Account question", "I did not change it.")
    assert [t.source.value for t in completed.texts] == ["sentence", "match", "subject", "summary"]
    assert with_ticket_texts(completed, "Account question", "I did not change it.") == completed


def test_the_files_are_the_trainers_format_and_reach_its_examples(tmp_path: Path) -> None:
    stored = [
        StoredFeedback("e1", feedback()),
        StoredFeedback(
            "e2",
            feedback(
                "missed_risk",
                indicators=[],
                texts=[{"text": "the app charges me twice", "source": "summary"}],
            ),
        ),
    ]
    export = write_feedback_files(stored, tmp_path)
    assert sorted(p.name for p in export.files) == [
        "feedback-problem.yaml",
        "feedback-security_issue.yaml",
    ]
    assert (export.feedback, export.examples) == (2, 3)
    security = load_example_file(tmp_path / "feedback-security_issue.yaml")
    assert {(e.text, e.target, e.role) for e in security} == {
        (SENTENCE, Indicator.SECURITY_ISSUE, "hard_negative"),
        ("Account question", Indicator.SECURITY_ISSUE, "hard_negative"),
    }
    clinc = tmp_path / "clinc.jsonl"
    clinc.write_text('{"text": "what time is it", "intent": "time"}\n')
    corpus = training_examples(export.files, clinc)
    assert ("the app charges me twice", PROBLEM, "positive") in {
        (e.text, e.target, e.role) for e in corpus
    }
    # The same feedback writes the same files (the version is a content hash).
    assert example_files(feedback_examples(stored)) == {p.name: p.read_text() for p in export.files}
    # A second export replaces the first: a file no feedback supports is gone.
    assert write_feedback_files(stored[1:], tmp_path).files == [tmp_path / "feedback-problem.yaml"]
    assert sorted(p.name for p in tmp_path.glob("feedback-*.yaml")) == ["feedback-problem.yaml"]
