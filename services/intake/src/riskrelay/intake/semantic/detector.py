"""Learned indicator detection as a two-stage cascade over a ticket's sentences.

Stage one (every ticket, :meth:`SemanticDetector.screen`): the ticket's redacted text is split
into sentences, denials are dropped (:mod:`.sentences`), and each sentence is embedded with the
static token table and scored by every indicator's fast classifier. A sentence whose fast score
stays below the indicator's *floor* for every indicator cannot be a detection: the floor is set
at training so that almost every labelled positive clears it. Most everyday tickets end here.

Stage two (the uncertain band, :meth:`SemanticDetector.detect`, batched over a Kafka batch): the
sentences that cleared a floor are embedded by the full sentence encoder and scored by the full
classifiers; an indicator fires when its best sentence reaches the trained threshold. Each
detection carries that sentence (already redacted) as evidence, the score and threshold, the
nearest labelled examples, and the model and encoder versions.

Nothing here reads a clock or does I/O: the encoders are loaded once at start-up and are pure
functions of their input.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from riskrelay.intake.encoder import TextEncoder
from riskrelay.intake.semantic.examples import MODEL_INDICATORS
from riskrelay.intake.semantic.model import IndicatorModels, Vector
from riskrelay.intake.semantic.sentences import scorable_sentences
from riskrelay.shared.events import Detection, Indicator, ModelExplanation, NearestExample

MODEL_RULE_PREFIX = "model."
FULL_SENTENCES_PER_TICKET = 8
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
    """Stage one's result for one ticket: the sentences stage two must read, and the ticket's
    text when it may report a problem (stage two then embeds it for clustering)."""

    candidates: tuple[str, ...] = ()
    sentences: int = 0
    cluster_text: str | None = None

    @property
    def needs_full(self) -> bool:
        return bool(self.candidates) or self.cluster_text is not None


@dataclass(frozen=True)
class SemanticResult:
    """Stage two's result for one ticket."""

    detections: list[Detection] = field(default_factory=list)
    problem: bool = False
    """Whether the ticket reports a problem (not a routine request): only problems cluster."""
    cluster_vector: Vector | None = None
    """The full encoder's embedding of the ticket's text, for problems only."""


NO_RESULT = SemanticResult()


@dataclass(frozen=True)
class SemanticDetector:
    """The trained models with the two encoders they were trained on."""

    models: IndicatorModels
    full: TextEncoder
    fast: TextEncoder
    nearest_count: int = 3
    indicators: tuple[Indicator, ...] = field(default=MODEL_INDICATORS)

    @cached_property
    def _fast_weights(self) -> tuple[Vector, Vector, Vector]:
        """Every indicator's fast classifier stacked: weights (dim, k), biases, floors."""
        models = [self.models.indicators[i] for i in self.indicators]
        weights = np.stack([m.fast.weights for m in models], axis=1)
        biases = np.asarray([m.fast.bias for m in models], dtype=np.float32)
        floors = np.asarray([m.fast_floor for m in models], dtype=np.float32)
        return weights, biases, floors

    def screen(self, texts: Sequence[SemanticText]) -> list[Screening]:
        """Stage one for a batch, in one static-table call: for each ticket's (detection text,
        cluster text), the sentences the full encoder must read and whether the ticket may
        report a problem."""
        sentences = [list(scorable_sentences(text)) for text, _ in texts]
        flat = [s for group in sentences for s in group]
        problem = self.models.problem
        clusters = [cluster for _, cluster in texts] if problem is not None else []
        vectors = self.fast.encode([*flat, *clusters])
        weights, biases, floors = self._fast_weights
        margins = (1.0 / (1.0 + np.exp(-(vectors[: len(flat)] @ weights + biases))) - floors).max(
            axis=1, initial=-np.inf
        )
        maybe_problem = (
            problem.fast.scores(vectors[len(flat) :]) >= problem.fast_floor
            if problem is not None
            else np.zeros(len(texts), dtype=np.bool_)
        )
        screenings: list[Screening] = []
        start = 0
        for index, group in enumerate(sentences):
            ticket_margins = margins[start : start + len(group)]
            start += len(group)
            order = np.argsort(-ticket_margins, kind="stable")[:FULL_SENTENCES_PER_TICKET]
            chosen = sorted(int(i) for i in order if ticket_margins[i] >= 0)
            cluster_text = texts[index][1]
            wanted = bool(chosen) or bool(maybe_problem[index])
            screenings.append(
                Screening(
                    candidates=tuple(group[i] for i in chosen),
                    sentences=len(group),
                    cluster_text=cluster_text if wanted and cluster_text.strip() else None,
                )
            )
        return screenings

    def detect(self, screenings: Sequence[Screening]) -> list[SemanticResult]:
        """Stage two for a batch, in one full-encoder call: each screened ticket's model
        detections, whether it reports a problem, and its embedding when it does."""
        texts: list[str] = []
        for screening in screenings:
            texts.extend(screening.candidates)
            if screening.cluster_text is not None:
                texts.append(screening.cluster_text)
        if not texts:
            return [NO_RESULT for _ in screenings]
        vectors = self.full.encode(texts)
        results: list[SemanticResult] = []
        start = 0
        for screening in screenings:
            end = start + len(screening.candidates)
            detections = self._detections(screening.candidates, vectors[start:end])
            cluster_vector: Vector | None = None
            if screening.cluster_text is not None:
                cluster_vector = vectors[end]
                end += 1
            start = end
            problem = bool(detections) or self._is_problem(cluster_vector)
            results.append(
                SemanticResult(
                    detections=detections,
                    problem=problem,
                    cluster_vector=cluster_vector if problem else None,
                )
            )
        return results

    def _is_problem(self, vector: Vector | None) -> bool:
        problem = self.models.problem
        if problem is None or vector is None:
            return False
        return float(problem.full.scores(vector[None, :])[0]) >= problem.full.threshold

    def _detections(self, sentences: Sequence[str], vectors: Vector) -> list[Detection]:
        found: list[Detection] = []
        if not sentences:
            return found
        for indicator in self.indicators:
            model = self.models.indicators[indicator]
            scores = model.full.scores(vectors)
            fired = [
                i
                for i in np.argsort(-scores, kind="stable")
                if scores[i] >= model.full.threshold
                and model.nearest_similarity(vectors[i]) >= model.min_similarity
            ]
            if not fired:
                continue
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
        return found
