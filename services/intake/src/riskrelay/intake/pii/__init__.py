"""Finders for the personal data that no library recognises in free text.

Each module finds one family and returns character spans; :mod:`riskrelay.intake.redaction`
orders the passes and replaces the spans with placeholders. Every finder is a pure function
of a :class:`TextScan` (and, for names, of the names the event carries).

Speed is part of the contract, because intake is the pipeline's bottleneck. Most ticket text
holds none of these kinds, so each pattern belongs to a :class:`Cue`: literal words without
which it cannot match. One Aho-Corasick pass over the lower-cased input finds which cues are
present (:class:`CueIndex`), and a finder runs a pattern only when its cue is. The cues are
looked up once, in the text as it arrived, and kept while earlier passes replace spans: a
replacement only removes text, so a cue absent before is absent after. Patterns run over the
lower-cased text without flags, word boundaries are checked on the few hits, and patterns
anchored on numbers run only at digit runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

Span = tuple[int, int]

_DIGIT = re.compile(r"\d")
_DIGIT_RUN = re.compile(r"\d+")


@dataclass(frozen=True, slots=True, eq=False)
class Cue:
    """Lower-case literals at least one of which occurs wherever the cue's patterns match.

    Compared by identity (each cue is a module constant), which keeps the lookups cheap.
    """

    name: str
    literals: tuple[str, ...]


class CueIndex:
    """Finds which of a fixed set of cues occur in a lower-cased text, in one pass."""

    def __init__(self, cues: Iterable[Cue]) -> None:
        self.cues = tuple(cues)
        by_literal: dict[str, set[Cue]] = {}
        for cue in self.cues:
            for literal in cue.literals:
                if literal != literal.lower() or not literal:
                    raise ValueError(f"cue {cue.name}: literal {literal!r} is not lower case")
                by_literal.setdefault(literal, set()).add(cue)
        self._automaton = ahocorasick.Automaton()
        for literal, owners in by_literal.items():
            self._automaton.add_word(literal, frozenset(owners))
        self._automaton.make_automaton()

    def present(self, lowered: str) -> frozenset[Cue]:
        found: set[Cue] = set()
        for _, owners in self._automaton.iter(lowered):
            found.update(owners)
        return frozenset(found)


class TextScan:
    """A text with its lower-case form (same length, so indices agree), its digit runs and the
    cues present (``None``: not looked up, every cue counts as present)."""

    __slots__ = ("_digit_runs", "cues", "has_digits", "lowered", "text")

    def __init__(self, text: str, cues: frozenset[Cue] | None = None) -> None:
        self.text = text
        lowered = text.lower()
        if len(lowered) != len(text):
            # A few characters lower-case to two ("İ"); keep those so indices stay aligned.
            lowered = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
        self.lowered = lowered
        self.cues = cues
        self.has_digits = _DIGIT.search(text) is not None
        self._digit_runs: list[Span] | None = None

    def has(self, cue: Cue) -> bool:
        """The cue's literals occur in the text (or were not looked up)."""
        return self.cues is None or cue in self.cues

    @property
    def digit_runs(self) -> list[Span]:
        if self._digit_runs is None:
            self._digit_runs = (
                [m.span() for m in _DIGIT_RUN.finditer(self.text)] if self.has_digits else []
            )
        return self._digit_runs


def words(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``, for the word lists of the finders."""
    return frozenset(text.split())


def starts_word(text: str, index: int) -> bool:
    """Nothing word-like (letter, digit, underscore) stands right before ``index``."""
    return index == 0 or not (text[index - 1].isalnum() or text[index - 1] == "_")


def ends_word(text: str, index: int) -> bool:
    """Nothing word-like stands at ``index`` (the character after a match)."""
    return index >= len(text) or not (text[index].isalnum() or text[index] == "_")
