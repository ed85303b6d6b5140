"""Measure intake's rules and the risk policy against a labelled set of tickets.

    python -m riskrelay.evaluation [--dataset eval/tickets.jsonl --labels eval/labels.jsonl]

runs the offline pipeline (:mod:`riskrelay.offline`, the services' own application steps) over
the dataset and compares every ticket's final state with what a person said about it
(``labels.jsonl``, one row per upstream event id: the ticket's indicators, level and category
once that event happened). Each ticket is scored once, against the label of its latest event,
because the pipeline reports a ticket's final state.

Figures:

* per indicator: precision, recall and F1 over tickets (an indicator is on a ticket or not);
* flagging: whether a ticket is flagged at all (has any indicator);
* level: exact and within-one accuracy over all tickets, "not flagged" counting as a level of
  its own (within one never bridges flagged and not flagged), the same over the tickets a
  person flagged, and the confusion matrix (rows expected, columns predicted);
* category accuracy over the tickets both sides flagged.

The report is printed as tables and written as JSON (``eval/results.json``) with the worst
misclassifications. ``--write-baseline`` stores the headline figures as the baseline that
``tests/unit/eval/test_regression.py`` guards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from riskrelay.classifier.policy import RiskPolicy
from riskrelay.intake.rules import RulePack
from riskrelay.intake.service import Intake
from riskrelay.intake.settings import IntakeSettings
from riskrelay.offline import InputLine, TicketOutcome, parse_lines, run_offline
from riskrelay.shared.events import Indicator

LEVEL_CLASSES: tuple[int | None, ...] = (None, 1, 2, 3, 4, 5)
DEFAULT_TOLERANCE = 0.02
WORST_SHOWN = 15


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


class LabelError(ValueError):
    """The labels do not fit the dataset (missing rows, unknown values)."""


@dataclass(frozen=True, slots=True)
class Expected:
    """What a person said about a ticket."""

    ticket_id: str
    indicators: frozenset[str]
    level: int | None
    category: str | None
    case: str = ""


_INDICATOR_NAMES = frozenset(indicator.value for indicator in Indicator)


def parse_label(row: Mapping[str, Any]) -> Expected:
    indicators = frozenset(str(name) for name in row.get("indicators", ()))
    unknown = indicators - _INDICATOR_NAMES
    if unknown:
        raise LabelError(f"event {row.get('event_id')}: unknown indicators {sorted(unknown)}")
    level = row.get("level")
    if level is not None and level not in range(1, 6):
        raise LabelError(f"event {row.get('event_id')}: level must be 1-5 or null, not {level!r}")
    if (level is None) != (not indicators):
        raise LabelError(
            f"event {row.get('event_id')}: a ticket has a level exactly when it has indicators"
        )
    return Expected(
        ticket_id=str(row["ticket_id"]),
        indicators=indicators,
        level=level,
        category=row.get("category"),
        case=str(row.get("case", "")),
    )


def read_labels(path: Path) -> dict[str, Expected]:
    """Labels keyed by upstream event id."""
    labels: dict[str, Expected] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "event_id" not in row:
            raise LabelError(f"{path}:{number}: no event_id")
        labels[str(row["event_id"])] = parse_label(row)
    return labels


def expected_per_ticket(
    inputs: Sequence[InputLine], labels: Mapping[str, Expected]
) -> dict[str, Expected]:
    """Each ticket's label as of its latest event (event time, then input order)."""
    events = [item.event for item in inputs if item.event is not None]
    missing = [event.id for event in events if event.id not in labels]
    if missing:
        raise LabelError(f"{len(missing)} event(s) have no label, e.g. {missing[0]}")
    latest: dict[str, Expected] = {}
    ordered_events = sorted(enumerate(events), key=lambda pair: (pair[1].time, pair[0]))
    for _, event in ordered_events:
        label = labels[event.id]
        if label.ticket_id != event.data.ticket_id:
            raise LabelError(f"event {event.id}: label says ticket {label.ticket_id}")
        latest[label.ticket_id] = label
    return latest


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    """Binary decision counts; ratios are ``None`` when undefined (nothing to divide by)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        # 2TP / (2TP + FP + FN): defined whenever either side said yes at least once.
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    def add(self, expected: bool, predicted: bool) -> Counts:
        return Counts(
            self.tp + (expected and predicted),
            self.fp + (predicted and not expected),
            self.fn + (expected and not predicted),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "support": self.support,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": _rounded(self.precision),
            "recall": _rounded(self.recall),
            "f1": _rounded(self.f1),
        }


@dataclass(frozen=True, slots=True)
class Pair:
    """One ticket: what a person said and what the pipeline decided."""

    expected: Expected
    predicted: TicketOutcome

    @property
    def predicted_indicators(self) -> frozenset[str]:
        return frozenset(self.predicted.indicators)


def indicator_counts(pairs: Iterable[Pair]) -> dict[str, Counts]:
    counts = {indicator.value: Counts() for indicator in Indicator}
    for pair in pairs:
        for name, current in counts.items():
            counts[name] = current.add(
                name in pair.expected.indicators, name in pair.predicted_indicators
            )
    return counts


def micro_counts(per_indicator: Mapping[str, Counts]) -> Counts:
    return Counts(
        sum(c.tp for c in per_indicator.values()),
        sum(c.fp for c in per_indicator.values()),
        sum(c.fn for c in per_indicator.values()),
    )


def flag_counts(pairs: Iterable[Pair]) -> Counts:
    counts = Counts()
    for pair in pairs:
        counts = counts.add(pair.expected.level is not None, pair.predicted.flagged)
    return counts


def level_confusion(pairs: Iterable[Pair]) -> list[list[int]]:
    """Rows: expected level (not flagged, 1..5); columns: predicted level, same order."""
    position = {level: index for index, level in enumerate(LEVEL_CLASSES)}
    matrix = [[0] * len(LEVEL_CLASSES) for _ in LEVEL_CLASSES]
    for pair in pairs:
        matrix[position[pair.expected.level]][position[pair.predicted.level]] += 1
    return matrix


def within_one(expected: int | None, predicted: int | None) -> bool:
    if expected is None or predicted is None:
        return expected == predicted
    return abs(expected - predicted) <= 1


def level_accuracy(pairs: Sequence[Pair]) -> tuple[float | None, float | None]:
    """(exact, within one); ``None`` for an empty set."""
    if not pairs:
        return None, None
    exact = sum(p.expected.level == p.predicted.level for p in pairs) / len(pairs)
    near = sum(within_one(p.expected.level, p.predicted.level) for p in pairs) / len(pairs)
    return exact, near


def category_accuracy(pairs: Iterable[Pair]) -> tuple[float | None, int]:
    both = [p for p in pairs if p.expected.level is not None and p.predicted.flagged]
    if not both:
        return None, 0
    return sum(p.expected.category == p.predicted.category for p in both) / len(both), len(both)


def severity(pair: Pair) -> tuple[int, int]:
    """How wrong a ticket is: level distance ("not flagged" as 0), then indicator differences."""
    distance = abs((pair.expected.level or 0) - (pair.predicted.level or 0))
    differing = len(pair.expected.indicators ^ pair.predicted_indicators)
    return distance, differing


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# ---------------------------------------------------------------------------------------------
# A whole evaluation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evaluation:
    pairs: list[Pair]
    subjects: dict[str, str]
    policy_version: str
    rule_pack_version: str

    def report(self) -> dict[str, Any]:
        """Everything as JSON-ready data; deterministic (no clock, sorted keys on dump)."""
        per_indicator = indicator_counts(self.pairs)
        exact, near = level_accuracy(self.pairs)
        flagged_pairs = [p for p in self.pairs if p.expected.level is not None]
        flagged_exact, flagged_near = level_accuracy(flagged_pairs)
        category, category_support = category_accuracy(self.pairs)
        wrong = sorted(
            (p for p in self.pairs if severity(p) != (0, 0) or _category_wrong(p)),
            key=lambda p: (*(-value for value in severity(p)), p.expected.ticket_id),
        )
        return {
            "policy_version": self.policy_version,
            "rule_pack_version": self.rule_pack_version,
            "tickets": len(self.pairs),
            "expected_flagged": len(flagged_pairs),
            "predicted_flagged": sum(p.predicted.flagged for p in self.pairs),
            "indicators": {name: counts.as_json() for name, counts in per_indicator.items()},
            "indicators_micro": micro_counts(per_indicator).as_json(),
            "flagging": flag_counts(self.pairs).as_json(),
            "level": {
                "exact": _rounded(exact),
                "within_one": _rounded(near),
                "flagged_exact": _rounded(flagged_exact),
                "flagged_within_one": _rounded(flagged_near),
                "classes": ["none" if c is None else c for c in LEVEL_CLASSES],
                "confusion": level_confusion(self.pairs),
            },
            "category": {"accuracy": _rounded(category), "support": category_support},
            "misclassified": [self._row(p) for p in wrong],
        }

    def _row(self, pair: Pair) -> dict[str, Any]:
        expected, predicted = pair.expected, pair.predicted
        return {
            "ticket_id": expected.ticket_id,
            "case": expected.case,
            "subject": self.subjects.get(expected.ticket_id, ""),
            "expected": {
                "level": expected.level,
                "category": expected.category,
                "indicators": sorted(expected.indicators),
            },
            "predicted": {
                "level": predicted.level,
                "category": predicted.category,
                "indicators": sorted(predicted.indicators),
            },
            "missing_indicators": sorted(expected.indicators - pair.predicted_indicators),
            "extra_indicators": sorted(pair.predicted_indicators - expected.indicators),
            "explanation": predicted.explanation,
        }


def _category_wrong(pair: Pair) -> bool:
    return (
        pair.expected.level is not None
        and pair.predicted.flagged
        and pair.expected.category != pair.predicted.category
    )


def evaluate(
    inputs: Sequence[InputLine],
    labels: Mapping[str, Expected],
    rule_pack: RulePack,
    policy: RiskPolicy,
) -> Evaluation:
    invalid = [item for item in inputs if item.event is None]
    if invalid:
        raise LabelError(f"dataset line {invalid[0].line_number}: {invalid[0].error}")
    expected = expected_per_ticket(inputs, labels)
    result = run_offline(
        inputs, Intake.from_settings(IntakeSettings(), rule_pack=rule_pack), policy
    )
    rejected = [line for line in result.lines if line.error is not None]
    if rejected:
        raise LabelError(f"dataset line {rejected[0].line_number}: {rejected[0].error}")
    subjects: dict[str, str] = {}
    for item in inputs:
        if item.event is not None:
            subjects.setdefault(item.event.data.ticket_id, item.event.data.subject)
    pairs = [
        Pair(label, result.run.outcome(ticket_id)) for ticket_id, label in sorted(expected.items())
    ]
    return Evaluation(pairs, subjects, policy.version, rule_pack.version)


def evaluate_files(
    dataset: Path, labels: Path, rule_pack: RulePack, policy: RiskPolicy
) -> Evaluation:
    inputs = parse_lines(dataset.read_bytes().splitlines())
    return evaluate(inputs, read_labels(labels), rule_pack, policy)


# ---------------------------------------------------------------------------------------------
# Baseline
# ---------------------------------------------------------------------------------------------


def baseline_of(report: Mapping[str, Any], tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """The figures a later run must not fall below (by more than ``tolerance``)."""
    return {
        "tolerance": tolerance,
        "policy_version": report["policy_version"],
        "rule_pack_version": report["rule_pack_version"],
        "indicators_f1": {name: row["f1"] for name, row in report["indicators"].items()},
        "level": {
            key: report["level"][key]
            for key in ("exact", "within_one", "flagged_exact", "flagged_within_one")
        },
    }


def regressions(report: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[str]:
    """Every headline figure that dropped more than the baseline's tolerance below it."""
    tolerance = float(baseline.get("tolerance", DEFAULT_TOLERANCE))
    found: list[str] = []

    def check(name: str, before: float | None, now: float | None) -> None:
        if before is None:
            return
        if now is None or now < before - tolerance:
            shown = "n/a" if now is None else f"{now:.4f}"
            found.append(f"{name}: {shown} < baseline {before:.4f} - {tolerance}")

    for indicator, before in baseline.get("indicators_f1", {}).items():
        now = report["indicators"].get(indicator, {}).get("f1")
        check(f"{indicator} F1", before, now)
    for key, before in baseline.get("level", {}).items():
        check(f"level {key}", before, report["level"].get(key))
    return found


# ---------------------------------------------------------------------------------------------
# Presentation
# ---------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render(report: Mapping[str, Any], console: Console, worst: int = WORST_SHOWN) -> None:
    console.print(
        f"[bold]{report['tickets']}[/] tickets, {report['expected_flagged']} flagged by people, "
        f"{report['predicted_flagged']} by the pipeline (policy {report['policy_version']}, "
        f"rule pack {report['rule_pack_version']})"
    )
    table = Table(title="Indicators (per ticket)")
    for column in ("indicator", "support", "TP", "FP", "FN", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "indicator" else "right")
    rows = [*report["indicators"].items(), ("micro average", report["indicators_micro"])]
    rows.append(("flagged at all", report["flagging"]))
    for name, row in rows:
        table.add_row(
            name,
            str(row["support"]),
            str(row["tp"]),
            str(row["fp"]),
            str(row["fn"]),
            _pct(row["precision"]),
            _pct(row["recall"]),
            _pct(row["f1"]),
        )
    console.print(table)

    level = report["level"]
    classes = [str(c) for c in level["classes"]]
    confusion = Table(title="Level confusion (rows: expected, columns: predicted)")
    confusion.add_column("expected \\ predicted")
    for name in classes:
        confusion.add_column(name, justify="right")
    for name, counts in zip(classes, level["confusion"], strict=True):
        confusion.add_row(name, *(str(n) if n else "·" for n in counts))
    console.print(confusion)
    console.print(
        f"level accuracy: exact {_pct(level['exact'])}, within one {_pct(level['within_one'])} "
        f"(tickets a person flagged: exact {_pct(level['flagged_exact'])}, within one "
        f"{_pct(level['flagged_within_one'])}); category accuracy "
        f"{_pct(report['category']['accuracy'])} over {report['category']['support']} tickets"
    )

    misclassified = report["misclassified"][:worst]
    if misclassified:
        worst_table = Table(title=f"Worst {len(misclassified)} misclassifications")
        for column in ("ticket", "subject", "expected", "predicted", "missing", "extra"):
            worst_table.add_column(column, overflow="fold")
        for row in misclassified:
            worst_table.add_row(
                row["ticket_id"],
                row["subject"],
                _describe(row["expected"]),
                _describe(row["predicted"]),
                ", ".join(row["missing_indicators"]),
                ", ".join(row["extra_indicators"]),
            )
        console.print(worst_table)


def _describe(side: Mapping[str, Any]) -> str:
    if side["level"] is None:
        return "not flagged"
    return f"{side['level']} {side['category']}"


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def main(
    dataset: Annotated[Path, typer.Option(help="Upstream ticket events (JSONL).")] = Path(
        "eval/tickets.jsonl"
    ),
    labels: Annotated[Path, typer.Option(help="Labels keyed by event id (JSONL).")] = Path(
        "eval/labels.jsonl"
    ),
    results: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the JSON report (default: results.json beside the dataset)."
        ),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Risk policy YAML (default: shipped).")
    ] = None,
    rules: Annotated[
        list[Path] | None, typer.Option(help="Rule pack extension YAML; repeatable.")
    ] = None,
    write_baseline: Annotated[
        Path | None,
        typer.Option(help="Also store the headline figures as a regression baseline here."),
    ] = None,
    worst: Annotated[int, typer.Option(help="Misclassifications to print.")] = WORST_SHOWN,
) -> None:
    """Evaluate intake's rules and the risk policy against the labelled ticket set."""
    from riskrelay.cli.classify import load_configuration

    console = Console()
    if not console.is_terminal:  # piped or `make eval` in CI: tables need more than 80 columns
        console = Console(width=160)
    for path in (dataset, labels):
        if not path.is_file():
            Console(stderr=True).print(f"[red]no such file: {path}[/]")
            raise typer.Exit(2)
    risk_policy, rule_pack = load_configuration(policy, rules or [])
    try:
        evaluation = evaluate_files(dataset, labels, rule_pack, risk_policy)
    except (LabelError, ValueError) as error:
        Console(stderr=True).print(f"cannot evaluate: {error}", style="red", markup=False)
        raise typer.Exit(2) from error
    report = evaluation.report()
    render(report, console, worst)
    target = results or dataset.parent / "results.json"
    target.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"wrote {target}")
    if write_baseline is not None:
        write_baseline.write_text(
            json.dumps(baseline_of(report), indent=2) + "\n", encoding="utf-8"
        )
        console.print(f"wrote baseline {write_baseline}")


if __name__ == "__main__":  # pragma: no cover - `python -m riskrelay.evaluation`
    typer.run(main)
