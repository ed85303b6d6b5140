"""Which labelled sentences each model learns from: CLINC150's voice-assistant intents whose
label does not hold for a helpdesk teach neither way the models that decide it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from riskrelay.intake.semantic.examples import PROBLEM, SCREEN, Example, load_clinc
from riskrelay.shared.events import Indicator
from riskrelay.training import TrainingConfig, _rows_for

pytestmark = pytest.mark.unit

ROWS = [
    {"text": "i lost my card", "intent": "report_lost_card"},
    {"text": "i have misplaced my phone", "intent": "find_phone"},
    {"text": "will it rain tomorrow", "intent": "weather"},
    {"text": "my account is blocked", "intent": "account_blocked"},
]


def clinc(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


def texts_in(target: Indicator | str, tmp_path: Path) -> set[str]:
    examples = load_clinc(clinc(tmp_path), "clinc150:train.jsonl")
    rows = _rows_for(examples, target, TrainingConfig())
    return {examples[int(i)].text for i in rows.rows}


def test_a_lost_phone_teaches_neither_way_whether_it_is_a_security_issue(tmp_path: Path) -> None:
    assert texts_in(Indicator.SECURITY_ISSUE, tmp_path) == {
        "i lost my card",
        "will it rain tomorrow",
    }


def test_nor_whether_it_is_a_problem(tmp_path: Path) -> None:
    assert texts_in(PROBLEM, tmp_path) == {"i lost my card", "will it rain tomorrow"}


def test_it_stays_harmless_for_the_indicators_it_does_not_touch(tmp_path: Path) -> None:
    assert texts_in(Indicator.DATA_CONCERN, tmp_path) == {
        "i lost my card",
        "i have misplaced my phone",
        "will it rain tomorrow",
    }


def test_the_screen_is_kept_from_it_too(tmp_path: Path) -> None:
    examples = load_clinc(clinc(tmp_path), "clinc150:train.jsonl")
    assert [e.text for e in examples if SCREEN in e.untaught] == ["i have misplaced my phone"]


def test_problem_reports_and_routine_requests_are_harmless_for_every_indicator() -> None:
    examples = [
        Example("the login page shows error 500", PROBLEM, "positive", "problem.yaml"),
        Example("how do I change my plan", PROBLEM, "hard_negative", "problem.yaml"),
        Example("someone changed my password", Indicator.SECURITY_ISSUE, "positive", "s.yaml"),
    ]
    rows = _rows_for(examples, Indicator.SECURITY_ISSUE, TrainingConfig())
    assert rows.labels.tolist() == [0, 0, 1]
    assert rows.harmless.tolist() == [True, True, False]
    assert rows.weights.tolist()[:2] == [1.0, 1.0]
