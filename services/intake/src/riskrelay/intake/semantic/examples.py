"""The labelled examples the indicator models learn from, read from versioned YAML.

Each file in ``examples/`` holds one indicator's ``positives`` and ``hard_negatives`` (sentences
that look close but are not that indicator), or, for ``everyday.yaml``, harmless ``negatives``.
Operators extend detection without code by passing more files of the same shape to
``riskrelay train``; the trainer adds the real requests of CLINC150's training split
(``report_fraud`` and ``report_lost_card`` as security positives, every everyday intent as a
negative). ``examples/heldout/`` is never read here: it only ever measures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from riskrelay.intake.errors import RulePackError
from riskrelay.shared.events import Indicator

MODEL_INDICATORS: tuple[Indicator, ...] = (
    Indicator.DATA_CONCERN,
    Indicator.SECURITY_ISSUE,
    Indicator.COMPLIANCE_QUESTION,
    Indicator.SEVERE_IMPACT,
    Indicator.REPUTATION_THREAT,
)
PROBLEM = "problem"
"""Target of the problem-report model (a problem, not a routine request), beside the indicators."""
_FILE_INDICATORS: dict[str, Indicator | str | None] = {
    "data_concern": Indicator.DATA_CONCERN,
    "security": Indicator.SECURITY_ISSUE,
    "security_issue": Indicator.SECURITY_ISSUE,
    "compliance": Indicator.COMPLIANCE_QUESTION,
    "compliance_question": Indicator.COMPLIANCE_QUESTION,
    "severe_impact": Indicator.SEVERE_IMPACT,
    "reputation_threat": Indicator.REPUTATION_THREAT,
    PROBLEM: PROBLEM,
    "everyday": None,
    "none": None,
}

# CLINC150 intents that are risk reports, and the ones too ambiguous to teach either way.
CLINC_SECURITY_INTENTS = frozenset({"report_fraud", "report_lost_card"})
CLINC_AMBIGUOUS_INTENTS = frozenset({"account_blocked", "freeze_account"})
SCREEN = "screen"
"""The cascade's first stage, as a model an example can be kept from (see ``Example.untaught``)."""
# Intents whose label holds for CLINC150's voice assistant but not for a helpdesk: asking an
# assistant to locate a misplaced phone is routine, telling a bank or an app's support that the
# phone is lost is a report of a device that can reach the account. They teach neither way the
# models that decide that (security, whether it is a problem, the screen in front of both), stay
# harmless for every other indicator, and count among the harmless requests in evaluation.
CLINC_ASSISTANT_INTENTS = frozenset({"find_phone"})
_UNTAUGHT_FOR_ASSISTANT_INTENTS = frozenset({Indicator.SECURITY_ISSUE, PROBLEM, SCREEN})

Role = Literal["positive", "hard_negative", "negative"]


class ExampleEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(min_length=1, max_length=4_000)
    industry: str = "general"
    style: str = "chat"


class ExampleFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    indicator: str
    version: str
    description: str = ""
    positives: list[ExampleEntry] = Field(default_factory=list)
    hard_negatives: list[ExampleEntry] = Field(default_factory=list)
    negatives: list[ExampleEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled sentence: positive or (hard) negative for ``target`` (an indicator, or
    :data:`PROBLEM`; ``None``: harmless for every indicator)."""

    text: str
    target: Indicator | str | None
    role: Role
    source: str
    untaught: frozenset[Indicator | str] = frozenset()
    """Models this example is left out of (indicators, :data:`PROBLEM`, :data:`SCREEN`)."""


def default_example_paths() -> list[Path]:
    """The shipped example files, in a stable order."""
    folder = resources.files("riskrelay.intake.semantic") / "examples"
    return sorted(
        Path(str(entry)) for entry in folder.iterdir() if str(entry).endswith((".yaml", ".yml"))
    )


def load_example_file(path: Path) -> list[Example]:
    """Read one example file; a malformed one raises naming the file and the reason."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = ExampleFile.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise RulePackError(str(path), str(error)) from error
    if parsed.indicator not in _FILE_INDICATORS:
        known = ", ".join(sorted(_FILE_INDICATORS))
        raise RulePackError(str(path), f"unknown indicator {parsed.indicator!r} (known: {known})")
    indicator = _FILE_INDICATORS[parsed.indicator]
    source = f"{path.name}@{parsed.version}"
    examples = [Example(e.text, indicator, "positive", source) for e in parsed.positives]
    examples += [Example(e.text, indicator, "hard_negative", source) for e in parsed.hard_negatives]
    examples += [Example(e.text, None, "negative", source) for e in parsed.negatives]
    if indicator is None and (parsed.positives or parsed.hard_negatives):
        raise RulePackError(str(path), "an everyday file holds only `negatives`")
    return examples


def load_clinc(path: Path, source: str) -> list[Example]:
    """CLINC150 rows (``{"text", "intent"}`` per line) as examples; ambiguous intents are left
    out, intents whose label holds only for a voice assistant are kept from the models it
    misleads."""
    examples: list[Example] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        intent = row["intent"]
        if intent in CLINC_AMBIGUOUS_INTENTS:
            continue
        if intent in CLINC_SECURITY_INTENTS:
            examples.append(Example(row["text"], Indicator.SECURITY_ISSUE, "positive", source))
        elif intent in CLINC_ASSISTANT_INTENTS:
            untaught = _UNTAUGHT_FOR_ASSISTANT_INTENTS
            examples.append(Example(row["text"], None, "negative", source, untaught))
        else:
            examples.append(Example(row["text"], None, "negative", source))
    return examples


def corpus_hash(examples: Iterable[Example]) -> str:
    """Content hash of a corpus (order-sensitive, as training is)."""
    digest = hashlib.sha256()
    for example in examples:
        indicator = str(example.target) if example.target else "-"
        untaught = "".join(f"\t-{model}" for model in sorted(map(str, example.untaught)))
        digest.update(f"{indicator}\t{example.role}\t{example.text}{untaught}\n".encode())
    return digest.hexdigest()


def load_examples(paths: Sequence[Path]) -> list[Example]:
    return [example for path in paths for example in load_example_file(path)]
