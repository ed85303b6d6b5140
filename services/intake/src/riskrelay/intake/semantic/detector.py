"""Learned indicator detection as a two-stage cascade over a ticket's sentences.

Stage one (every ticket, :meth:`SemanticDetector.screen`): the ticket's redacted text is split
into sentences, denials are dropped (:mod:`.sentences`), and each sentence is scored by the
screen: one linear model over the static token table's embedding and the sentence's hashed
words, trained to tell a sentence that may report a risk or a problem from an everyday one.
Its *floor* is set at training so that almost every labelled risky or problem sentence clears
it. Most everyday tickets end here, without the full encoder.

Stage two (the sentences that cleared the floor, at most :data:`FULL_SENTENCES_PER_TICKET` per
ticket, :meth:`SemanticDetector.detect`, batched over a Kafka batch): they are embedded by the
full sentence encoder and scored by each indicator's classifier and by the problem-report
classifier. An indicator fires when its best sentence reaches the trained threshold. Each
detection carries that sentence (already redacted) as evidence, the score and threshold, the
nearest labelled examples, and the model and encoder versions. A ticket whose sentences report
a risk or a problem then has its subject and description embedded as one text (a second call
per batch) for clustering: the mean of the reporting sentences' embeddings was tried instead,
and split the evaluation set's incidents more often (similar-reports recall 0.78 against 0.91).

Nothing here reads a clock or does I/O: the encoders are loaded once at start-up and are pure
functions of their input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from riskrelay.intake.encoder import TextEncoder
from riskrelay.intake.semantic.examples import MODEL_INDICATORS
from riskrelay.intake.semantic.features import hashed_terms
from riskrelay.intake.semantic.model import IndicatorModels, Vector
from riskrelay.intake.semantic.sentences import scorable_sentences
from riskrelay.shared.events import Detection, Indicator, ModelExplanation, NearestExample

MODEL_RULE_PREFIX = "model."
FULL_SENTENCES_PER_TICKET = 3
_MAX_EVIDENCE = 1_000
_ENGLISH_CUES = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "to",
        "of",
        "in",
        "on",
        "for",
        "with",
        "my",
        "me",
        "i",
        "you",
        "your",
        "we",
        "our",
        "it",
        "is",
        "was",
        "are",
        "were",
        "be",
        "have",
        "has",
        "had",
        "do",
        "does",
        "did",
        "not",
        "no",
        "this",
        "that",
        "can",
        "can't",
        "cannot",
        "please",
        "help",
        "what",
        "when",
        "how",
        "why",
        "there",
        "someone",
        "from",
        "at",
        "by",
        "as",
        "if",
        "so",
        "am",
        "been",
    ]
)
_WORDS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def looks_english(text: str) -> bool:
    """Whether ``text`` reads as English: the encoder and models are English-only, so other
    languages are scored but reported as outside what the model knows."""
    words = [w.casefold() for w in _WORDS.findall(text)]
    if len(words) < 4:
        return True
    return sum(w in _ENGLISH_CUES for w in words) / len(words) >= 0.12


SemanticText = tuple[str, str]
"""A ticket's redacted detection text (subject, description, comment) and its cluster text
(subject and description)."""


def rule_id_for(indicator: Indicator) -> str:
    return f"{MODEL_RULE_PREFIX}{indicator.value}"


@dataclass(frozen=True)
class Screening:
    """Stage one's result for one ticket: the sentences stage two must read."""

    candidates: tuple[str, ...] = ()
    sentences: int = 0
    cluster_text: str = ""

    @property
    def needs_full(self) -> bool:
        return bool(self.candidates)


@dataclass(frozen=True)
class SemanticResult:
    """Stage two's result for one ticket."""

    detections: list[Detection] = field(default_factory=list)
    problem: bool = False
    """Whether the ticket reports a problem (not a routine request): only problems cluster."""
    cluster_vector: Vector | None = None
    """The full encoder's embedding of the ticket's subject and description (problems only)."""


NO_RESULT = SemanticResult()


@dataclass(frozen=True)
class SemanticDetector:
    """The trained models with the two encoders they were trained on."""

    models: IndicatorModels
    full: TextEncoder
    fast: TextEncoder
    nearest_count: int = 3
    indicators: tuple[Indicator, ...] = field(default=MODEL_INDICATORS)

    def screen(self, texts: Sequence[SemanticText]) -> list[Screening]:
        """Stage one for a batch, in one static-table call: for each ticket's redacted
        (detection text, cluster text), the sentences the full encoder must read."""
        sentences = [list(scorable_sentences(text)) for text, _ in texts]
        flat = [s for group in sentences for s in group]
        screen = self.models.screen
        margins = screen.scores(self.fast.encode(flat), flat) - screen.floor
        screenings: list[Screening] = []
        start = 0
        for group, (_, cluster_text) in zip(sentences, texts, strict=True):
            ticket_margins = margins[start : start + len(group)]
            start += len(group)
            order = np.argsort(-ticket_margins, kind="stable")[:FULL_SENTENCES_PER_TICKET]
            chosen = sorted(int(i) for i in order if ticket_margins[i] >= 0)
            screenings.append(
                Screening(
                    candidates=tuple(group[i] for i in chosen),
                    sentences=len(group),
                    cluster_text=cluster_text,
                )
            )
        return screenings

    def detect(self, screenings: Sequence[Screening]) -> list[SemanticResult]:
        """Stage two for a batch, in two full-encoder calls: the candidate sentences (model
        detections, and whether the ticket reports a problem), then, for the tickets that do,
        their cluster text (the embedding clusters compare)."""
        texts = [text for screening in screenings for text in screening.candidates]
        if not texts:
            return [NO_RESULT for _ in screenings]
        vectors = self.full.encode(texts)
        reporting = self._reports_problem(vectors)
        found: list[tuple[list[Detection], bool]] = []
        start = 0
        for screening in screenings:
            end = start + len(screening.candidates)
            detections, risky = self._detections(screening.candidates, vectors[start:end])
            found.append((detections, bool((risky | reporting[start:end]).any())))
            start = end
        problems = [
            i for i, (_, problem) in enumerate(found) if problem and screenings[i].cluster_text
        ]
        cluster_vectors = self.full.encode([screenings[i].cluster_text for i in problems])
        vector_of = dict(zip(problems, cluster_vectors, strict=True))
        return [
            SemanticResult(detections=detections, problem=problem, cluster_vector=vector_of.get(i))
            for i, (detections, problem) in enumerate(found)
        ]

    def _reports_problem(self, vectors: Vector) -> NDArray[np.bool_]:
        problem = self.models.problem
        if problem is None:
            return np.zeros(len(vectors), dtype=np.bool_)
        return np.asarray(problem.full.scores(vectors) >= problem.full.threshold)

    def _detections(
        self, sentences: Sequence[str], vectors: Vector
    ) -> tuple[list[Detection], NDArray[np.bool_]]:
        """The indicators that fire on the ticket's sentences, and which sentences fired one."""
        found: list[Detection] = []
        risky = np.zeros(len(sentences), dtype=np.bool_)
        if not sentences:
            return found, risky
        terms = [hashed_terms(sentence) for sentence in sentences]
        for indicator in self.indicators:
            model = self.models.indicators[indicator]
            scores = model.full.scores(vectors, terms)
            fired = [
                i
                for i in np.argsort(-scores, kind="stable")
                if scores[i] >= model.full.threshold
                and model.nearest_similarity(vectors[i]) >= model.min_similarity
                and not model.vetoed_by_near_miss(vectors[i])
            ]
            if not fired:
                continue
            risky[fired] = True
            best = int(fired[0])
            score = float(scores[best])
            nearest = [
                NearestExample(text=text[:_MAX_EVIDENCE], similarity=max(-1.0, min(1.0, sim)))
                for text, sim in model.nearest_examples(vectors[best], self.nearest_count)
            ]
            found.append(
                Detection(
                    indicator=indicator,
                    rule_id=rule_id_for(indicator),
                    evidence=sentences[best][:_MAX_EVIDENCE],
                    confidence=round(score, 4),
                    explanation=ModelExplanation(
                        score=round(score, 4),
                        threshold=round(model.full.threshold, 4),
                        model_version=self.models.version,
                        encoder=self.models.encoder_id,
                        nearest_examples=nearest,
                    ),
                )
            )
        return found, risky
