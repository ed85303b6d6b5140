"""The committed evaluation set: still built by its script, and no worse than the baseline.

A drop of any indicator's F1 or of the level accuracy by more than the baseline's tolerance
fails here. When a change improves the figures on purpose, store the new baseline with
`python -m riskrelay.evaluation --write-baseline eval/baseline.json` and commit it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from riskrelay.classifier.policy import default_policy
from riskrelay.evaluation import evaluate_files, regressions
from riskrelay.intake.rules import load_rule_pack

pytestmark = pytest.mark.unit

EVAL = Path(__file__).resolve().parents[3] / "eval"


def _build_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_build_dataset", EVAL / "build_dataset.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    evaluation = evaluate_files(
        EVAL / "tickets.jsonl", EVAL / "labels.jsonl", load_rule_pack(), default_policy()
    )
    return evaluation.report()


def test_no_figure_dropped_below_the_baseline(report: dict[str, object]) -> None:
    baseline = json.loads((EVAL / "baseline.json").read_text(encoding="utf-8"))
    assert regressions(report, baseline) == []


def test_committed_files_are_what_the_script_builds() -> None:
    build = _build_script()
    tickets, labels = build.render(build.build())
    assert (EVAL / "tickets.jsonl").read_bytes() == tickets, "run eval/build_dataset.py"
    assert (EVAL / "labels.jsonl").read_bytes() == labels, "run eval/build_dataset.py"


def test_the_set_is_broad_enough_to_mean_something() -> None:
    rows = [json.loads(line) for line in (EVAL / "labels.jsonl").read_text().splitlines()]
    tickets = {row["ticket_id"]: row for row in rows}
    events = [json.loads(line) for line in (EVAL / "tickets.jsonl").read_text().splitlines()]
    assert len(tickets) >= 300
    assert len({row["industry"] for row in rows}) == 6
    assert {e["data"]["channel"] for e in events} == {"email", "chat", "phone", "web", "social"}
    harmless = sum(1 for row in tickets.values() if row["level"] is None)
    assert 0.3 < harmless / len(tickets) < 0.7
    levels = Counter(row["level"] for row in tickets.values())
    assert all(levels[level] for level in (None, 1, 2, 3, 4, 5))
    descriptions = Counter(e["data"]["description"] for e in events if "created" in e["type"])
    assert descriptions.most_common(1)[0][1] == 1, "every ticket text is its own"
