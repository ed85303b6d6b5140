"""Fixtures for intake's pure domain tests: the default rule pack, the semantic detector with the
real sentence encoder (loaded once per session), a deterministic stand-in for tests of the
clustering logic, and a ticket event factory."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from riskrelay.intake.encoder import EncoderSettings, TextEncoder, load_encoder
from riskrelay.intake.rules import RulePack, load_rule_pack
from riskrelay.intake.semantic.config import DetectionSettings
from riskrelay.intake.semantic.detector import SemanticDetector
from riskrelay.intake.semantic.examples import MODEL_INDICATORS
from riskrelay.intake.semantic.features import HASH_BUCKETS
from riskrelay.intake.semantic.load import load_semantic_detector
from riskrelay.intake.semantic.model import (
    IndicatorModel,
    IndicatorModels,
    LinearScorer,
    ScreenModel,
    Vector,
)
from riskrelay.shared.events import TICKET_EVENT_TYPES, Indicator, TicketEvent, TicketEventKind

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

MakeEvent = Callable[..., TicketEvent]


@pytest.fixture(scope="session")
def rule_pack() -> RulePack:
    return load_rule_pack()


@pytest.fixture(scope="session")
def semantic_detector() -> SemanticDetector:
    """The bundled indicator models on the bundled encoder, as the service loads them."""
    detector = load_semantic_detector(DetectionSettings(semantic=True), EncoderSettings())
    assert detector is not None
    return detector


@pytest.fixture(scope="session")
def sentence_encoder() -> TextEncoder:
    """The full sentence encoder (all-MiniLM-L6-v2) that embeds problem reports for clustering."""
    return load_encoder(EncoderSettings())


class TopicEncoder:
    """A deterministic stand-in for the sentence encoder, for tests of the clustering logic: a
    text naming one of the ``problems`` keywords embeds near that problem's direction (a little
    noise per text) with its first dimension at 0.6, which the ``topic_detector`` problem
    model reads; any other text gets a direction of its own and reports no problem."""

    dim = 64
    model_id = "topic-encoder"

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = problems

    def encode(self, texts: Sequence[str]) -> Vector:
        rows = [self._vector(text) for text in texts]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def _vector(self, text: str) -> Vector:
        words = set(re.findall(r"[a-z]+", text.casefold()))
        topic = next((self.problems[w] for w in sorted(words) if w in self.problems), None)
        if topic is None:
            vector = _direction(text)
        else:
            vector = 0.8 * _unit(_direction(topic) + 0.3 * _direction(text))
            vector[0] = 0.6
        return np.asarray(_unit(vector), dtype=np.float32)


def _direction(name: str) -> Vector:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    vector = rng.standard_normal(TopicEncoder.dim).astype(np.float32)
    vector[0] = 0.0
    return _unit(vector)


def _unit(vector: Vector) -> Vector:
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float32)


def _topic_detector(problems: Mapping[str, str]) -> SemanticDetector:
    encoder = TopicEncoder(problems)
    dim = encoder.dim
    silent = LinearScorer(np.zeros(dim, dtype=np.float32), -30.0, 0.5)
    gate = np.zeros(dim, dtype=np.float32)
    gate[0] = 40.0
    problem = LinearScorer(gate, -20.0, 0.5)

    def model(indicator: Indicator | None, scorer: LinearScorer) -> IndicatorModel:
        return IndicatorModel(indicator, scorer, (), np.zeros((0, dim), dtype=np.float32))

    screen = ScreenModel(
        static_weights=gate,
        hashed_weights=np.zeros(HASH_BUCKETS, dtype=np.float32),
        bias=-20.0,
        floor=0.5,
    )
    models = IndicatorModels(
        screen=screen,
        indicators={indicator: model(indicator, silent) for indicator in MODEL_INDICATORS},
        problem=model(None, problem),
        encoder_id=encoder.model_id,
        static_id=encoder.model_id,
        data_hash="test",
        trainer_version="test",
        metrics={},
    )
    return SemanticDetector(models=models, full=encoder, fast=encoder)


TopicDetector = Callable[[Mapping[str, str]], SemanticDetector]


@pytest.fixture(scope="session")
def topic_detector() -> TopicDetector:
    """Builds a real :class:`SemanticDetector` over :class:`TopicEncoder`: no indicator model
    ever fires, and a text is a problem report exactly when it names one of the keywords
    (keyword -> problem topic)."""
    return _topic_detector


@pytest.fixture
def make_event() -> MakeEvent:
    counter = iter(range(1, 1_000_000))

    def make(
        description: str = "Hello, I have a question about my order.",
        *,
        subject: str = "Question",
        ticket_id: str | None = None,
        customer_id: str = "cust-1",
        product: str = "Mobile App",
        channel: str = "email",
        priority: str = "normal",
        kind: TicketEventKind = TicketEventKind.CREATED,
        time: datetime = T0,
        comment: str | None = None,
        tags: list[str] | None = None,
        risk_flag: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> TicketEvent:
        number = next(counter)
        ticket = ticket_id or f"T-{number}"
        data: dict[str, Any] = {
            "ticket_id": ticket,
            "subject": subject,
            "description": description,
            "channel": channel,
            "customer": {"id": customer_id, "segment": "consumer"},
            "product": product,
            "priority": priority,
            "tags": tags or [],
            "risk_flag": risk_flag,
            "comment": {"author_type": "customer", "body": comment} if comment else None,
        }
        return TicketEvent.model_validate(
            {
                "id": event_id or f"evt-{number}",
                "source": "test://helpdesk",
                "type": TICKET_EVENT_TYPES[kind],
                "time": time,
                "subject": ticket,
                "data": data,
            }
        )

    return make
