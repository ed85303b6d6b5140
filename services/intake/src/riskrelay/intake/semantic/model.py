"""The trained indicator models: the cascade's screen, then one classifier per text indicator.

``riskrelay train`` fits one screen (a logistic regression on the static token table's
embedding and hashed words of a sentence: might this sentence report a risk or a problem at
all?) and, for each of the five text indicators and for problem reports, a logistic regression
on the full sentence encoder's embeddings (the decision), for the indicators with the
sentence's hashed words beside the embedding. It keeps the embeddings of the
positive examples so a detection can name the labelled sentences nearest to what triggered it. The artifact is
one JSON file: readable, diff-able, byte-identical for the same inputs, and stamped with the
hashes of its training data, of the encoder and of the trainer, so a model trained for another
encoder is refused at start-up instead of silently scoring nonsense.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from riskrelay.intake.semantic.features import HASH_BUCKETS, hashed_terms
from riskrelay.shared.events import Indicator

ARTIFACT_FORMAT = "riskrelay-indicator-models/2"
Vector = NDArray[np.float32]


class ModelArtifactError(RuntimeError):
    """The indicator model file is missing, corrupt, or was trained for another encoder."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _encode_array(array: NDArray[Any], dtype: str) -> dict[str, Any]:
    data = np.ascontiguousarray(array, dtype=dtype)
    return {
        "dtype": dtype,
        "shape": list(data.shape),
        "base64": base64.b64encode(data.tobytes()).decode("ascii"),
    }


def _decode_array(raw: dict[str, Any]) -> NDArray[Any]:
    data = np.frombuffer(base64.b64decode(raw["base64"]), dtype=raw["dtype"])
    return data.reshape(raw["shape"]).astype(np.float32)


Terms = NDArray[np.int64]
"""A sentence's hashed terms (:func:`~riskrelay.intake.semantic.features.hashed_terms`)."""


def _add_hashed_terms(logits: Vector, weights: Vector, terms: Sequence[Terms]) -> None:
    """Add each sentence's hashed terms (binary presence, L2-normalized) to its logit."""
    for row, buckets in enumerate(terms):
        if len(buckets):
            logits[row] += weights[buckets].sum() / np.sqrt(len(buckets))


def _hashed_weights_from(raw: Any, owner: str) -> Vector:
    hashed = _decode_array(raw)
    if hashed.shape != (HASH_BUCKETS,):
        raise ValueError(f"{owner} has {hashed.shape} hashed weights, expected {HASH_BUCKETS}")
    return hashed


@dataclass(frozen=True)
class LinearScorer:
    """``sigmoid(weights · x + Σ hashed[terms] / √|terms| + bias)`` with the threshold at which
    it counts; the hashed part (the sentence's words and word pairs) is optional. Words carry
    what a mean-pooled embedding blurs: "pending", "twice" and "by mistake" against "never",
    "not me" and "don't recognise" in sentences that are otherwise about the same payment."""

    weights: Vector
    bias: float
    threshold: float
    hashed_weights: Vector | None = None

    def scores(self, vectors: Vector, terms: Sequence[Terms] | None = None) -> Vector:
        """Scores of the sentences embedded as ``vectors``, whose hashed terms are ``terms``
        (needed when the scorer reads words; computed once for all scorers by the caller)."""
        logits = vectors @ self.weights + self.bias
        if self.hashed_weights is not None:
            if terms is None:
                raise ValueError("this scorer reads the sentences' words: pass their terms")
            _add_hashed_terms(logits, self.hashed_weights, terms)
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "weights": _encode_array(self.weights, "<f4"),
            "bias": float(self.bias),
            "threshold": float(self.threshold),
        }
        if self.hashed_weights is not None:
            body["hashed_weights"] = _encode_array(self.hashed_weights, "<f4")
        return body

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> LinearScorer:
        hashed = raw.get("hashed_weights")
        return cls(
            _decode_array(raw["weights"]),
            float(raw["bias"]),
            float(raw["threshold"]),
            _hashed_weights_from(hashed, "a scorer") if hashed is not None else None,
        )


@dataclass(frozen=True)
class ScreenModel:
    """The cascade's first pass over one sentence: ``sigmoid(static · x + Σ hashed[terms] /
    √|terms| + bias)``, the hashed part being binary term presence, L2-normalized. A sentence
    scoring below ``floor`` goes no further; the floor lets through all but a small, trained
    share of the labelled risky and problem sentences."""

    static_weights: Vector
    hashed_weights: Vector
    bias: float
    floor: float

    def scores(self, static_vectors: Vector, sentences: Sequence[str]) -> Vector:
        logits = static_vectors @ self.static_weights + self.bias
        _add_hashed_terms(logits, self.hashed_weights, [hashed_terms(s) for s in sentences])
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "static_weights": _encode_array(self.static_weights, "<f4"),
            "hashed_weights": _encode_array(self.hashed_weights, "<f4"),
            "bias": float(self.bias),
            "floor": float(self.floor),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ScreenModel:
        return cls(
            static_weights=_decode_array(raw["static_weights"]),
            hashed_weights=_hashed_weights_from(raw["hashed_weights"], "screen"),
            bias=float(raw["bias"]),
            floor=float(raw["floor"]),
        )


@dataclass(frozen=True)
class IndicatorModel:
    """One indicator's classifiers and labelled positives (``indicator`` is ``None`` for the
    problem-report model)."""

    indicator: Indicator | None
    full: LinearScorer
    example_texts: tuple[str, ...]
    example_vectors: Vector
    min_similarity: float = -1.0
    """A detection also needs a labelled positive at least this close (cosine): a sentence
    unlike every example is outside what the classifier learned, whatever its score."""
    near_miss_texts: tuple[str, ...] = ()
    """The indicator's hard negatives: the near misses its example files say must not fire."""
    near_miss_vectors: Vector | None = None
    near_miss_margin: float = float("inf")
    """A sentence this much closer (cosine) to a near miss than to every labelled positive is
    that near miss reworded, whatever its score: a linear classifier draws one boundary, and
    cannot carve out every near miss around it."""

    def nearest_similarity(self, vector: Vector) -> float:
        if not self.example_texts:
            return -1.0
        return float((self.example_vectors @ vector).max())

    def nearest_near_miss(self, vector: Vector) -> tuple[str, float] | None:
        if not self.near_miss_texts or self.near_miss_vectors is None:
            return None
        similarity = self.near_miss_vectors @ vector
        best = int(np.argmax(similarity))
        return self.near_miss_texts[best], float(similarity[best])

    def vetoed_by_near_miss(self, vector: Vector) -> bool:
        """Whether the sentence is closer to a near miss than to every positive by more than
        :attr:`near_miss_margin`."""
        nearest = self.nearest_near_miss(vector)
        if nearest is None:
            return False
        return nearest[1] - self.nearest_similarity(vector) > self.near_miss_margin

    def nearest_examples(self, vector: Vector, count: int = 3) -> list[tuple[str, float]]:
        if not self.example_texts:
            return []
        similarity = self.example_vectors @ vector
        best = np.argsort(-similarity, kind="stable")[:count]
        return [(self.example_texts[i], float(similarity[i])) for i in best]


@dataclass(frozen=True)
class IndicatorModels:
    """Every indicator's model plus the provenance the artifact carries."""

    screen: ScreenModel
    indicators: dict[Indicator, IndicatorModel]
    problem: IndicatorModel | None
    """Problem report versus routine request: only problems form similar-report clusters."""
    encoder_id: str
    static_id: str
    data_hash: str
    trainer_version: str
    metrics: dict[str, Any]

    @cached_property
    def version(self) -> str:
        """Short content id of the models, stamped on every model detection."""
        digest = hashlib.sha256(
            f"{self.data_hash}|{self.encoder_id}|{self.static_id}|{self.trainer_version}".encode()
        )
        return f"indicators@{digest.hexdigest()[:12]}"

    def to_json(self) -> str:
        def model_json(model: IndicatorModel) -> dict[str, Any]:
            return {
                "full": model.full.to_json(),
                "min_similarity": float(model.min_similarity),
                "example_texts": list(model.example_texts),
                "example_vectors": _encode_array(model.example_vectors, "<f2"),
                **(
                    {
                        "near_miss_texts": list(model.near_miss_texts),
                        "near_miss_vectors": _encode_array(model.near_miss_vectors, "<f2"),
                        "near_miss_margin": float(model.near_miss_margin),
                    }
                    if model.near_miss_texts and model.near_miss_vectors is not None
                    else {}
                ),
            }

        body = {
            "format": ARTIFACT_FORMAT,
            "encoder_id": self.encoder_id,
            "static_id": self.static_id,
            "data_hash": self.data_hash,
            "trainer_version": self.trainer_version,
            "metrics": self.metrics,
            "screen": self.screen.to_json(),
            "indicators": {
                indicator.value: model_json(model) for indicator, model in self.indicators.items()
            },
            "problem": model_json(self.problem) if self.problem else None,
        }
        return json.dumps(body, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> IndicatorModels:
        body = json.loads(text)
        if body.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"format {body.get('format')!r}, expected {ARTIFACT_FORMAT!r}")

        def model_from(indicator: Indicator | None, raw: dict[str, Any]) -> IndicatorModel:
            return IndicatorModel(
                indicator=indicator,
                full=LinearScorer.from_json(raw["full"]),
                min_similarity=float(raw.get("min_similarity", -1.0)),
                example_texts=tuple(raw["example_texts"]),
                example_vectors=_decode_array(raw["example_vectors"]),
                near_miss_texts=tuple(raw.get("near_miss_texts", ())),
                near_miss_vectors=(
                    _decode_array(raw["near_miss_vectors"]) if "near_miss_vectors" in raw else None
                ),
                near_miss_margin=float(raw.get("near_miss_margin", float("inf"))),
            )

        indicators = {
            Indicator(name): model_from(Indicator(name), raw)
            for name, raw in body["indicators"].items()
        }
        problem = body.get("problem")
        return cls(
            screen=ScreenModel.from_json(body["screen"]),
            indicators=indicators,
            problem=model_from(None, problem) if problem else None,
            encoder_id=body["encoder_id"],
            static_id=body["static_id"],
            data_hash=body["data_hash"],
            trainer_version=body["trainer_version"],
            metrics=body.get("metrics", {}),
        )


def load_models(path: Path, *, encoder_id: str, static_id: str) -> IndicatorModels:
    """Read the artifact at ``path`` and check it was trained for these encoders."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ModelArtifactError(
            path,
            f"cannot read the indicator models ({error.strerror or error}); run `riskrelay train`",
        ) from error
    try:
        models = IndicatorModels.from_json(text)
    except (ValueError, KeyError, TypeError) as error:
        raise ModelArtifactError(path, f"corrupt indicator model file: {error}") from error
    if models.encoder_id != encoder_id:
        raise ModelArtifactError(
            path,
            f"trained for encoder {models.encoder_id}, but the configured encoder is {encoder_id};"
            " run `riskrelay train` for this encoder",
        )
    if models.static_id != static_id:
        raise ModelArtifactError(
            path,
            f"trained for static table {models.static_id}, but the configured one is {static_id};"
            " run `riskrelay train`",
        )
    return models
