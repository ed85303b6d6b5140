"""People's feedback as labelled examples: which redacted text teaches which model what.

* "not a risk": every redacted text of the feedback becomes a *hard negative* of the indicators
  it was flagged with (a learned model's sentence: of that sentence's indicator; the ticket's
  subject or summary: of each indicator the feedback names). A rule's matched span (a keyword,
  a computed reason) teaches no model: the rule fired, not a model.
* "missed risk": the ticket's redacted texts become *positives* of the indicator the person
  named, or of the problem-report model when they named none (or one no model learns, such as
  an unusual pattern).
* "wrong level": recorded, but no text label: the level is the policy's decision, not the
  detector's.

When people disagree about the same text and model, the latest feedback counts. The examples
come out in the trainer's own file format (:class:`~riskrelay.intake.semantic.examples.ExampleFile`,
one file per model), so ``riskrelay train`` reads them like any extra example file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import yaml

from riskrelay.intake.semantic.examples import (
    MODEL_INDICATORS,
    PROBLEM,
    Example,
    ExampleEntry,
    ExampleFile,
    corpus_hash,
)
from riskrelay.intake.semantic.examples import Role as ExampleRole
from riskrelay.shared.events import (
    FeedbackKind,
    FeedbackText,
    FeedbackTextSource,
    Indicator,
    RiskFeedback,
)

FEEDBACK_SOURCE = "risk-feedback"
WHOLE_TICKET_SOURCES = frozenset({FeedbackTextSource.SUBJECT, FeedbackTextSource.SUMMARY})
TEACHING_SOURCES = WHOLE_TICKET_SOURCES | {FeedbackTextSource.SENTENCE}


@dataclass(frozen=True)
class StoredFeedback:
    """One feedback as intake keeps it: the event's id and its payload, texts completed."""

    event_id: str
    feedback: RiskFeedback


def with_ticket_texts(feedback: RiskFeedback, subject: str, summary: str) -> RiskFeedback:
    """The feedback with the ticket's redacted subject and summary intake remembers, when the
    feedback does not carry them already (the console only sees what was flagged)."""
    present = {(text.text, text.source) for text in feedback.texts}
    added = [
        FeedbackText(text=value[:2_000], source=source)
        for value, source in (
            (subject.strip(), FeedbackTextSource.SUBJECT),
            (summary.strip(), FeedbackTextSource.SUMMARY),
        )
        if value and (value[:2_000], source) not in present
    ]
    if not added:
        return feedback
    return feedback.model_copy(update={"texts": [*feedback.texts, *added][:50]})


def _model_indicators(indicators: Iterable[Indicator | None]) -> list[Indicator]:
    return [i for i in indicators if i is not None and i in MODEL_INDICATORS]


Label = tuple[str, Indicator | str, ExampleRole]


def labels_of(feedback: RiskFeedback) -> list[Label]:
    """``(text, target, role)`` for every example one feedback teaches."""
    if feedback.kind == FeedbackKind.NOT_A_RISK:
        flagged = _model_indicators(feedback.indicators)
        labels: list[Label] = []
        for text in feedback.texts:
            if text.source == FeedbackTextSource.SENTENCE:
                targets = _model_indicators([text.indicator])
            elif text.source in WHOLE_TICKET_SOURCES:
                targets = flagged
            else:
                targets = []
            labels += [(text.text, target, "hard_negative") for target in targets]
        return labels
    if feedback.kind == FeedbackKind.MISSED_RISK:
        named = _model_indicators(feedback.indicators)
        target: Indicator | str = named[0] if named else PROBLEM
        return [
            (t.text, target, "positive") for t in feedback.texts if t.source in TEACHING_SOURCES
        ]
    return []


def feedback_examples(stored: Sequence[StoredFeedback]) -> list[Example]:
    """The labelled examples of all feedback, each (text, model) once with its latest label, in
    a stable order (oldest feedback first)."""
    chosen: dict[tuple[str, str], Example] = {}
    for item in sorted(stored, key=lambda s: (s.feedback.given_at, s.event_id)):
        for text, target, role in labels_of(item.feedback):
            key = (text, str(target))
            chosen.pop(key, None)  # a later label replaces, and moves to the end
            chosen[key] = Example(text, target, role, f"{FEEDBACK_SOURCE}:{item.event_id}")
    return list(chosen.values())


def example_files(examples: Sequence[Example]) -> dict[str, str]:
    """File name -> YAML in the trainer's example format, one file per model; the version is the
    content hash, so the same feedback always writes the same files."""
    by_target: dict[str, list[Example]] = {}
    for example in examples:
        by_target.setdefault(str(example.target), []).append(example)
    files: dict[str, str] = {}
    for target in sorted(by_target):
        chosen = by_target[target]
        document = ExampleFile(
            indicator=target,
            version=f"feedback-{corpus_hash(chosen)[:12]}",
            description=f"People's feedback on detections, as {target} examples",
            positives=[_entry(e) for e in chosen if e.role == "positive"],
            hard_negatives=[_entry(e) for e in chosen if e.role == "hard_negative"],
        )
        header = (
            "# Written by `riskrelay train --with-feedback` from intake's risk_feedback table:\n"
            "# redacted texts people marked as not a risk (hard negatives) or as a missed risk\n"
            "# (positives). Regenerated on every export; edit the feedback, not this file.\n"
        )
        body = yaml.safe_dump(
            document.model_dump(exclude_defaults=False), sort_keys=False, allow_unicode=True
        )
        files[f"feedback-{target}.yaml"] = header + body
    return files


def _entry(example: Example) -> ExampleEntry:
    return ExampleEntry(text=example.text, industry="general", style="ticket")
