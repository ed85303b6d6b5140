"""The near-miss veto's margin, set at training from the indicator's own labelled sentences."""

from __future__ import annotations

import numpy as np
import pytest

from riskrelay.training import TrainingConfig, _near_miss_veto, _Problem

pytestmark = pytest.mark.unit

DIM = 16


def _around(direction: int, count: int, rng: np.random.Generator, spread: float) -> np.ndarray:
    base = np.zeros(DIM)
    base[direction] = 1.0
    vectors = base + rng.normal(scale=spread, size=(count, DIM))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _corpus() -> tuple[np.ndarray, _Problem, np.ndarray, np.ndarray]:
    """200 positives around one direction, 20 near misses around another, 10 rewordings of
    the near misses (harmless, not near misses themselves) and one near miss alone."""
    rng = np.random.default_rng(3)
    positives = _around(0, 200, rng, 0.35)
    near_misses = _around(1, 20, rng, 0.2)
    rewordings = _around(1, 10, rng, 0.2)
    lonely = _around(2, 1, rng, 0.0)
    vectors = np.vstack([positives, near_misses, rewordings, lonely]).astype(np.float32)
    count = len(vectors)
    labels = np.r_[np.ones(200), np.zeros(count - 200)].astype(np.int64)
    rows = _Problem(np.arange(count), labels, np.ones(count), labels == 0)
    near_miss_rows = np.r_[np.arange(200, 220), [count - 1]].astype(np.int64)
    return vectors, rows, np.arange(200, dtype=np.int64), near_miss_rows


def test_the_margin_silences_no_more_positives_than_the_configured_rate() -> None:
    vectors, rows, kept, near_misses = _corpus()
    config = TrainingConfig(near_miss_veto_rate=0.01)
    veto = _near_miss_veto(rows, kept, vectors, near_misses, config)
    assert veto is not None
    margin, vetoed, positives_vetoed = veto
    assert margin >= 0.0
    assert positives_vetoed <= 0.01 + 1 / 200
    assert positives_vetoed == pytest.approx(vetoed[:200].mean())


def test_rewordings_of_a_near_miss_are_vetoed_and_a_near_miss_is_not_its_own() -> None:
    vectors, rows, kept, near_misses = _corpus()
    veto = _near_miss_veto(rows, kept, vectors, near_misses, TrainingConfig())
    assert veto is not None
    _, vetoed, _ = veto
    assert vetoed[220:230].all(), "each rewording is closer to a near miss than to a positive"
    assert not vetoed[-1], "the lone near miss is compared without itself"


def test_no_near_misses_means_no_veto() -> None:
    vectors, rows, kept, _ = _corpus()
    empty = np.zeros(0, dtype=np.int64)
    assert _near_miss_veto(rows, kept, vectors, empty, TrainingConfig()) is None
    assert _near_miss_veto(rows, kept, vectors, None, TrainingConfig()) is None
