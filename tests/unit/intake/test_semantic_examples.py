"""The labelled example sentences for the semantic indicators: schema, volume, spread, no duplicates.

Run as a script to print the counts per file, indicator, industry and style.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import sparse  # type: ignore[import-untyped]

import riskrelay.intake
from riskrelay.intake.redaction import PLACEHOLDERS

pytestmark = pytest.mark.unit

EXAMPLES_DIR = Path(riskrelay.intake.__file__).parent / "semantic" / "examples"
VALIDATION_PATH = EXAMPLES_DIR / "heldout" / "validation.yaml"
EVERYDAY = "everyday"
PROBLEM = "problem"
NO_INDICATOR = "none"
INDICATORS = ("data_concern", "security", "compliance", "severe_impact", "reputation_threat")
# Each round of examples adds one file per indicator and one of everyday sentences, named
# after the indicator with the round appended from the second on: "security_2.yaml".
ROUNDS = ("", "_2")
ROUND_SUFFIX = re.compile(r"_\d+$")
INDUSTRIES = frozenset(
    {
        "banking", "cards", "fintech", "ecommerce", "retail", "saas", "telecom", "healthcare",
        "insurance", "travel", "utilities", "gaming", "education", "government", "automotive",
        "food_delivery", "social_media", "general",
    }
)  # fmt: skip
STYLES = frozenset({"chat", "email", "social", "phone_transcript", "form"})
ENTRY_KEYS = frozenset({"text", "industry", "style"})
# Intake's redaction placeholders, plus the two that upstream help desks leave for names and
# postal addresses.
ALLOWED_PLACEHOLDERS = frozenset(PLACEHOLDERS.values()) | {"[NAME]", "[ADDRESS]"}
VERSION_PATTERN = re.compile(r"^\d{4}\.\d{1,2}\.\d+$")

MIN_POSITIVES = 120
MIN_HARD_NEGATIVES = 60
MIN_EVERYDAY = 300
MIN_PROBLEM_POSITIVES = 200
MIN_PROBLEM_HARD_NEGATIVES = 200
MIN_PER_LIST: dict[str, dict[str, int]] = {
    **{
        indicator: {"positives": MIN_POSITIVES, "hard_negatives": MIN_HARD_NEGATIVES}
        for indicator in INDICATORS
    },
    EVERYDAY: {"negatives": MIN_EVERYDAY},
    PROBLEM: {"positives": MIN_PROBLEM_POSITIVES, "hard_negatives": MIN_PROBLEM_HARD_NEGATIVES},
}
MIN_HELDOUT_PER_INDICATOR = 35
MIN_HELDOUT_NONE = 140
MIN_INDUSTRIES_PER_LIST = 12
MIN_STYLES_PER_LIST = 4
MIN_WORDS = 3
MAX_WORDS = 120
# Word-set Jaccard at or above which two sentences count as near-duplicates: swapping one or
# two nouns in a ten-word sentence stays above it, genuine paraphrases fall well below.
NEAR_DUPLICATE_JACCARD = 0.75
# Below this many distinct words the Jaccard of short sentences is too coarse to judge.
NEAR_DUPLICATE_MIN_WORDS = 5


@dataclass(frozen=True, slots=True)
class Example:
    source: str  # file name relative to EXAMPLES_DIR, and the list it came from
    label: str  # an indicator, "none" for a must-not-flag sentence
    text: str
    industry: str
    style: str


def load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def training_files() -> list[Path]:
    names = [f"{name}{suffix}" for suffix in ROUNDS for name in (*INDICATORS, EVERYDAY)]
    return [EXAMPLES_DIR / f"{name}.yaml" for name in (*names, PROBLEM)]


def file_indicator(path: Path) -> str:
    """The indicator a training file is named after, whichever round it belongs to."""
    return ROUND_SUFFIX.sub("", path.stem)


def check_header(document: Any, path: Path, list_keys: set[str]) -> None:
    assert isinstance(document, dict), f"{path.name}: top level must be a mapping"
    expected = {"version", "description", *list_keys}
    if path != VALIDATION_PATH:
        expected.add("indicator")
    assert set(document) == expected, f"{path.name}: keys {sorted(document)} != {sorted(expected)}"
    assert isinstance(document["version"], str), f"{path.name}: version must be a quoted string"
    assert VERSION_PATTERN.match(document["version"]), f"{path.name}: version {document['version']}"
    description = document["description"]
    assert isinstance(description, str), f"{path.name}: description must be a string"
    assert description.strip(), f"{path.name}: description is empty"


def check_entry(entry: Any, where: str, extra_keys: frozenset[str] = frozenset()) -> None:
    assert isinstance(entry, dict), f"{where}: entry must be a mapping, got {entry!r}"
    assert set(entry) == ENTRY_KEYS | extra_keys, f"{where}: keys {sorted(entry)}"
    text = entry["text"]
    assert isinstance(text, str), f"{where}: text must be a string: {text!r}"
    assert text == text.strip(), f"{where}: leading or trailing whitespace: {text!r}"
    assert "\n" not in text, f"{where}: line break in text: {text!r}"
    words = len(text.split())
    assert MIN_WORDS <= words <= MAX_WORDS, f"{where}: {words} words: {text!r}"
    assert entry["industry"] in INDUSTRIES, f"{where}: industry {entry['industry']!r}"
    assert entry["style"] in STYLES, f"{where}: style {entry['style']!r}"
    for placeholder in re.findall(r"\[[A-Z_]+\]", text):
        assert placeholder in ALLOWED_PLACEHOLDERS, f"{where}: placeholder {placeholder}: {text!r}"


def load_training_examples() -> list[Example]:
    examples: list[Example] = []
    for path in training_files():
        document = load(path)
        indicator = file_indicator(path)
        if indicator == EVERYDAY:
            check_header(document, path, {"negatives"})
            lists = {"negatives": NO_INDICATOR}
        else:
            check_header(document, path, {"positives", "hard_negatives"})
            lists = {"positives": indicator, "hard_negatives": NO_INDICATOR}
        assert document["indicator"] == indicator, f"{path.name}: indicator"
        for key, label in lists.items():
            entries = document[key]
            assert isinstance(entries, list), f"{path.name}: {key} must be a list"
            for position, entry in enumerate(entries):
                check_entry(entry, f"{path.name} {key}[{position}]")
                examples.append(
                    Example(
                        f"{path.name}:{key}",
                        label,
                        entry["text"],
                        entry["industry"],
                        entry["style"],
                    )
                )
    return examples


def load_validation_examples() -> list[Example]:
    document = load(VALIDATION_PATH)
    check_header(document, VALIDATION_PATH, {"entries"})
    examples: list[Example] = []
    for position, entry in enumerate(document["entries"]):
        where = f"heldout/validation.yaml entries[{position}]"
        check_entry(entry, where, frozenset({"indicator"}))
        label = entry["indicator"]
        assert label in (*INDICATORS, NO_INDICATOR), f"{where}: indicator {label!r}"
        examples.append(
            Example(
                "heldout/validation.yaml", label, entry["text"], entry["industry"], entry["style"]
            )
        )
    return examples


def normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower().replace("'", "")))


def word_matrix(texts: list[str], vocabulary: dict[str, int]) -> Any:
    """One row per text, a 1 in the column of every distinct word it contains."""
    rows: list[int] = []
    columns: list[int] = []
    for row, text in enumerate(texts):
        for word in set(text.split()):
            rows.append(row)
            columns.append(vocabulary.setdefault(word, len(vocabulary)))
    shape = (len(texts), max(len(vocabulary), 1))
    return sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, columns)), shape=shape)


def near_duplicate_pairs(
    examples: list[Example], others: list[Example] | None = None
) -> list[tuple[float, Example, Example]]:
    """Pairs (within ``examples``, or between ``examples`` and ``others``) that are equal once
    normalized, where one contains the other, or whose word sets overlap at
    NEAR_DUPLICATE_JACCARD or more."""
    right = examples if others is None else others
    # Padded with spaces so containment is tested on whole words.
    left_texts = [f" {normalized(example.text)} " for example in examples]
    right_texts = [f" {normalized(example.text)} " for example in right]
    vocabulary: dict[str, int] = {}
    left_words = word_matrix(left_texts, vocabulary)
    right_words = word_matrix(right_texts, vocabulary)
    left_words.resize((len(examples), len(vocabulary)))
    right_words.resize((len(right), len(vocabulary)))
    # Shared-word counts of every pair that shares a word: the only pairs that can match.
    shared = (left_words @ right_words.T).tocoo()
    first, second, common = shared.row, shared.col, shared.data
    first_size = np.asarray(left_words.sum(axis=1)).ravel()[first]
    second_size = np.asarray(right_words.sum(axis=1)).ravel()[second]
    smaller = np.minimum(first_size, second_size)
    jaccard = common / (first_size + second_size - common)
    long_enough = smaller >= NEAR_DUPLICATE_MIN_WORDS
    candidate = (
        ((common == first_size) & (common == second_size))
        | (long_enough & (common == smaller))
        | (long_enough & (jaccard >= NEAR_DUPLICATE_JACCARD))
    )
    if others is None:
        candidate &= first < second
    found: list[tuple[float, Example, Example]] = []
    for index in np.flatnonzero(candidate):
        i, j = int(first[index]), int(second[index])
        shorter, longer = sorted((left_texts[i], right_texts[j]), key=len)
        contained = shorter == longer or (bool(long_enough[index]) and shorter in longer)
        if contained or (bool(long_enough[index]) and jaccard[index] >= NEAR_DUPLICATE_JACCARD):
            found.append((1.0 if contained else float(jaccard[index]), examples[i], right[j]))
    return found


def describe(pairs: list[tuple[float, Example, Example]]) -> str:
    return "\n".join(
        f"{score:.2f} {a.source}: {a.text!r}\n     {b.source}: {b.text!r}" for score, a, b in pairs
    )


@pytest.fixture(scope="module")
def training() -> list[Example]:
    return load_training_examples()


@pytest.fixture(scope="module")
def validation() -> list[Example]:
    return load_validation_examples()


def test_every_file_is_present_and_nothing_else_is_lying_around() -> None:
    found = sorted(path.relative_to(EXAMPLES_DIR) for path in EXAMPLES_DIR.rglob("*.yaml"))
    expected = sorted(
        path.relative_to(EXAMPLES_DIR) for path in [*training_files(), VALIDATION_PATH]
    )
    assert found == expected


def test_each_file_has_enough_examples_in_each_list(training: list[Example]) -> None:
    per_list = Counter(example.source for example in training)
    for path in training_files():
        for key, minimum in MIN_PER_LIST[file_indicator(path)].items():
            assert per_list[f"{path.name}:{key}"] >= minimum, f"{path.name}: {key}"


def test_each_list_spreads_over_industries_and_styles(training: list[Example]) -> None:
    by_list: dict[str, list[Example]] = {}
    for example in training:
        by_list.setdefault(example.source, []).append(example)
    for source, examples in by_list.items():
        industries = {example.industry for example in examples}
        styles = {example.style for example in examples}
        assert len(industries) >= MIN_INDUSTRIES_PER_LIST, f"{source}: {sorted(industries)}"
        assert len(styles) >= MIN_STYLES_PER_LIST, f"{source}: {sorted(styles)}"
        most_common_share = Counter(e.industry for e in examples).most_common(1)[0][1] / len(
            examples
        )
        assert most_common_share <= 0.3, f"{source}: one industry dominates"


def test_validation_set_covers_every_indicator_and_the_must_not_flag_class(
    validation: list[Example],
) -> None:
    per_label = Counter(example.label for example in validation)
    for indicator in INDICATORS:
        assert per_label[indicator] >= MIN_HELDOUT_PER_INDICATOR, indicator
    assert per_label[NO_INDICATOR] >= MIN_HELDOUT_NONE


def test_no_duplicates_or_near_duplicates_within_the_training_files(
    training: list[Example],
) -> None:
    pairs = near_duplicate_pairs(training)
    assert not pairs, describe(pairs)


def test_no_duplicates_or_near_duplicates_within_the_validation_set(
    validation: list[Example],
) -> None:
    pairs = near_duplicate_pairs(validation)
    assert not pairs, describe(pairs)


def test_no_validation_sentence_is_a_near_duplicate_of_a_training_sentence(
    training: list[Example], validation: list[Example]
) -> None:
    pairs = near_duplicate_pairs(validation, training)
    assert not pairs, describe(pairs)


def test_the_near_duplicate_check_catches_a_swapped_noun_and_passes_a_paraphrase() -> None:
    def example(text: str) -> Example:
        return Example("test", NO_INDICATOR, text, "general", "chat")

    original = example("There is a charge on my card that I did not make, please help.")
    swapped = example("There is a charge on my account that I did not make, please help!")
    extended = example(
        "Hello, quick one. There is a charge on my card that I did not make, please help. "
        "Thanks so much"
    )
    paraphrase = example("I see a payment on my statement I never authorised.")
    same_frame = example("There is a delay on my order that I did not expect, please help.")
    assert near_duplicate_pairs([original, swapped])
    assert near_duplicate_pairs([original, extended])
    assert not near_duplicate_pairs([original, paraphrase])
    assert not near_duplicate_pairs([original, same_frame])


def print_counts() -> None:
    examples = load_training_examples() + load_validation_examples()
    for source, count in sorted(Counter(e.source for e in examples).items()):
        print(f"{source:45} {count:5}")
    for title, key in (("industry", "industry"), ("style", "style")):
        print(f"\nper {title} (training | heldout):")
        training_counts = Counter(
            getattr(e, key) for e in examples if not e.source.startswith("heldout")
        )
        heldout_counts = Counter(
            getattr(e, key) for e in examples if e.source.startswith("heldout")
        )
        for value, count in training_counts.most_common():
            print(f"  {value:18} {count:5} | {heldout_counts[value]:4}")
    print(
        "\nheldout per label:",
        dict(Counter(e.label for e in examples if e.source.startswith("heldout"))),
    )


if __name__ == "__main__":
    print_counts()
