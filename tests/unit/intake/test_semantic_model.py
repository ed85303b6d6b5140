"""The indicator models file: round trip, provenance checks, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from riskrelay.intake.semantic.examples import MODEL_INDICATORS
from riskrelay.intake.semantic.features import HASH_BUCKETS, hashed_terms
from riskrelay.intake.semantic.model import (
    IndicatorModel,
    IndicatorModels,
    LinearScorer,
    ModelArtifactError,
    ScreenModel,
    load_models,
)

pytestmark = pytest.mark.unit


def _models(encoder_id: str = "enc@1", static_id: str = "enc@1:static") -> IndicatorModels:
    rng = np.random.default_rng(7)

    def model(indicator: object) -> IndicatorModel:
        vectors = rng.normal(size=(3, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        words = rng.normal(size=HASH_BUCKETS).astype(np.float32) if indicator else None
        return IndicatorModel(
            indicator=indicator,  # type: ignore[arg-type]
            full=LinearScorer(rng.normal(size=384).astype(np.float32), -1.5, 0.8, words),
            example_texts=("one", "two", "three"),
            example_vectors=vectors,
        )

    return IndicatorModels(
        screen=ScreenModel(
            static_weights=rng.normal(size=384).astype(np.float32),
            hashed_weights=rng.normal(size=HASH_BUCKETS).astype(np.float32),
            bias=0.25,
            floor=0.1,
        ),
        indicators={indicator: model(indicator) for indicator in MODEL_INDICATORS},
        problem=model(None),
        encoder_id=encoder_id,
        static_id=static_id,
        data_hash="d" * 64,
        trainer_version="t" * 16,
        metrics={"security_issue": {"oof_recall": 0.9}},
    )


def test_round_trip_is_byte_identical_and_scores_alike(tmp_path: Path) -> None:
    models = _models()
    text = models.to_json()
    again = IndicatorModels.from_json(text)
    assert again.to_json() == text
    assert again.version == models.version
    probe = np.ones((2, 384), dtype=np.float32) / np.sqrt(384)
    terms = [hashed_terms("my card was stolen"), hashed_terms("")]
    for indicator in MODEL_INDICATORS:
        np.testing.assert_allclose(
            again.indicators[indicator].full.scores(probe, terms),
            models.indicators[indicator].full.scores(probe, terms),
            rtol=1e-6,
        )
    assert again.problem is not None
    assert again.problem.full.hashed_weights is None


def test_a_scorer_that_reads_words_scores_by_them_and_needs_them() -> None:
    weights = np.zeros(HASH_BUCKETS, dtype=np.float32)
    weights[hashed_terms("stolen")] = 4.0
    scorer = LinearScorer(np.zeros(384, dtype=np.float32), 0.0, 0.5, weights)
    same_vector = np.zeros((2, 384), dtype=np.float32)
    stolen, parcel = scorer.scores(same_vector, [hashed_terms("stolen"), hashed_terms("parcel")])
    assert stolen > 0.95
    assert parcel == pytest.approx(0.5)
    with pytest.raises(ValueError, match="pass their terms"):
        scorer.scores(same_vector)


def test_nearest_examples_are_the_most_similar_first() -> None:
    model = _models().indicators[MODEL_INDICATORS[0]]
    nearest = model.nearest_examples(model.example_vectors[1], count=2)
    assert nearest[0][0] == "two"
    assert nearest[0][1] == pytest.approx(1.0, abs=1e-2)
    assert nearest[0][1] >= nearest[1][1]


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ModelArtifactError, match=r"absent\.json.*riskrelay train"):
        load_models(path, encoder_id="enc@1", static_id="enc@1:static")


@pytest.mark.parametrize("content", ["", "{", '{"format": "other"}', '{"format": 1}'])
def test_corrupt_file_names_the_path_and_reason(tmp_path: Path, content: str) -> None:
    path = tmp_path / "models.json"
    path.write_text(content)
    with pytest.raises(ModelArtifactError, match=r"models\.json: corrupt"):
        load_models(path, encoder_id="enc@1", static_id="enc@1:static")


def test_models_for_another_encoder_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(_models().to_json())
    assert load_models(path, encoder_id="enc@1", static_id="enc@1:static").encoder_id == "enc@1"
    with pytest.raises(ModelArtifactError, match="trained for encoder enc@1"):
        load_models(path, encoder_id="enc@2", static_id="enc@1:static")
    with pytest.raises(ModelArtifactError, match="static table"):
        load_models(path, encoder_id="enc@1", static_id="other:static")


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _near_miss_model(margin: float) -> IndicatorModel:
    positive, near_miss = np.zeros(384), np.zeros(384)
    positive[0], near_miss[1] = 1.0, 1.0
    return IndicatorModel(
        indicator=MODEL_INDICATORS[0],
        full=LinearScorer(np.zeros(384, dtype=np.float32), 0.0, 0.5),
        example_texts=("positive",),
        example_vectors=_unit(positive)[None, :],
        near_miss_texts=("near miss",),
        near_miss_vectors=_unit(near_miss)[None, :],
        near_miss_margin=margin,
    )


def test_a_sentence_far_closer_to_a_near_miss_than_to_any_positive_is_vetoed() -> None:
    model = _near_miss_model(margin=0.2)
    like_the_near_miss = _unit(np.r_[0.3, 0.95, np.zeros(382)])
    between = _unit(np.r_[0.7, 0.8, np.zeros(382)])
    like_the_positive = _unit(np.r_[0.95, 0.3, np.zeros(382)])
    assert model.vetoed_by_near_miss(like_the_near_miss)
    assert not model.vetoed_by_near_miss(between)
    assert not model.vetoed_by_near_miss(like_the_positive)
    assert model.nearest_near_miss(like_the_near_miss) == ("near miss", pytest.approx(0.954, 1e-3))


def test_near_misses_survive_the_round_trip_and_older_files_have_none() -> None:
    models = _models()
    security = MODEL_INDICATORS[0]
    models.indicators[security] = _near_miss_model(margin=0.2)
    text = models.to_json()
    again = IndicatorModels.from_json(text)
    assert again.indicators[security].near_miss_texts == ("near miss",)
    assert again.indicators[security].near_miss_margin == pytest.approx(0.2)
    assert again.to_json() == text
    older = IndicatorModels.from_json(_models().to_json())
    vector = _unit(np.ones(384))
    assert older.indicators[security].nearest_near_miss(vector) is None
    assert not older.indicators[security].vetoed_by_near_miss(vector)
