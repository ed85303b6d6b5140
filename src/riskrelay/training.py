"""Fit intake's indicator models from labelled examples (``riskrelay train``).

For each text indicator, a logistic regression (scikit-learn, fixed seed) on the full
encoder's embeddings separates its positives from everything that must not fire it: harmless
everyday requests, every file's hard negatives, and, with a lower weight, the other indicators'
positives (a reputation threat is not a security issue). The cascade's screen, a logistic
regression on the static table's embedding and hashed words, separates every risky or problem
sentence from every harmless one. Thresholds are chosen on out-of-fold scores of the training
data itself (stratified k-fold), never on a validation split: each full model's threshold keeps
its out-of-fold false flags on harmless text at ``target_false_flag_rate`` (or the indicator's
entry in ``indicator_false_flag_rates``); the screen's floor
lets through all but ``screen_miss_rate`` of the risky and problem sentences, so the cascade
costs little recall.

The result is deterministic for the same examples, encoders, seed and code: scikit-learn's
lbfgs solver is deterministic, folds come from the seed, and the artifact has no time stamp.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from riskrelay.intake.encoder import EncoderSettings, TextEncoder, load_encoder, load_static_encoder
from riskrelay.intake.semantic.examples import (
    MODEL_INDICATORS,
    PROBLEM,
    SCREEN,
    Example,
    corpus_hash,
    default_example_paths,
    load_clinc,
    load_examples,
)
from riskrelay.intake.semantic.features import HASH_BUCKETS, hashed_terms
from riskrelay.intake.semantic.load import bundled_models_path
from riskrelay.intake.semantic.model import (
    IndicatorModel,
    IndicatorModels,
    LinearScorer,
    ScreenModel,
    Vector,
)
from riskrelay.shared.events import Indicator

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 20261201
    folds: int = 5
    regularization: float = 4.0
    other_positive_weight: float = 0.3
    hard_negative_weight: float = 3.0
    target_false_flag_rate: float = 0.002
    indicator_false_flag_rates: tuple[tuple[Indicator, float], ...] = (
        # Card fraud, lost cards and accounts taken over are the reports a helpdesk can least
        # afford to miss, and the ones with the most real examples (CLINC150's): a looser
        # threshold keeps their recall.
        (Indicator.SECURITY_ISSUE, 0.004),
    )
    problem_false_flag_rate: float = 0.05
    screen_miss_rate: float = 0.02
    screen_regularization: float = 4.0
    min_threshold: float = 0.5
    max_examples_kept: int = 3_000
    similarity_miss_rate: float = 0.03
    near_miss_veto_rate: float = 0.005
    """Share of an indicator's labelled positives (each left out of its own comparison) the
    near-miss veto may silence: its margin is set so that at most this many are closer to one of
    the indicator's hard negatives than to every other positive by more than the margin."""
    encode_batch: int = 256
    problems_harmless_for: frozenset[Indicator | str] = frozenset(
        {
            Indicator.SECURITY_ISSUE,
            Indicator.DATA_CONCERN,
            Indicator.COMPLIANCE_QUESTION,
            Indicator.REPUTATION_THREAT,
        }
    )
    """Indicators for which the problem-report file's sentences are harmless rows. Not severe
    impact: a severe impact is a problem with heavy consequences, so a problem report is no
    evidence against one."""
    indicators_read_words: bool = True
    """The indicator models read the sentence's hashed words beside its embedding. Measured on
    2026-12-02 by training without the second round of example files (written later, in other
    styles) and scoring it: recall rose for every indicator (security 0.79 -> 0.84, data
    concern 0.78 -> 0.86, compliance 0.75 -> 0.87, severe impact 0.83 -> 0.88, reputation
    0.80 -> 0.84) and false flags on its harmless sentences fell or held (security 4.2 % ->
    3.1 %). The problem-report model reads the embedding only."""


def trainer_version() -> str:
    """Hash of this module and the model format: a changed trainer means a new model id."""
    from riskrelay.intake.semantic import examples, model

    digest = hashlib.sha256()
    for path in (Path(__file__), Path(model.__file__), Path(examples.__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _encode_all(
    encoder: TextEncoder,
    texts: Sequence[str],
    batch: int,
    label: str,
    progress: Progress,
    cache_dir: Path | None = None,
) -> Vector:
    """Embed ``texts``; with ``cache_dir``, embeddings of earlier runs with the same encoder
    are reused, so a retrain after adding a few examples only embeds the new ones."""
    known: dict[str, Vector] = {}
    cache = None
    if cache_dir is not None:
        safe_id = "".join(c if c.isalnum() else "-" for c in encoder.model_id)
        cache = cache_dir / f"training-embeddings-{safe_id}.npz"
        if cache.exists():
            with np.load(cache) as stored:
                known = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    keys = [_text_key(text) for text in texts]
    todo = list(dict.fromkeys(i for i, key in enumerate(keys) if key not in known))
    if known:
        progress(f"{label}: {len(texts) - len(todo)} sentences from the embedding cache")
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        vectors = np.asarray(encoder.encode([texts[i] for i in chunk]))
        for i, vector in zip(chunk, vectors, strict=True):
            known[keys[i]] = vector
        progress(f"{label}: {min(start + batch, len(todo))}/{len(todo)} sentences")
    if cache is not None and todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        ordered = sorted(known)
        np.savez(cache, keys=np.asarray(ordered), vectors=np.stack([known[k] for k in ordered]))
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.stack([known[key] for key in keys]).astype(np.float32)


@dataclass(frozen=True)
class _Problem:
    """One indicator's training rows: indices into the corpus, labels, weights."""

    rows: NDArray[np.int64]
    labels: NDArray[np.int64]
    weights: NDArray[np.float64]
    harmless: NDArray[np.bool_]


def _rows_for(
    examples: Sequence[Example], target: Indicator | str, config: TrainingConfig
) -> _Problem:
    """Training rows of one model. Indicator models learn from everything: the other
    indicators' positives as light negatives, every hard negative and everyday request as
    harmless, and (``problems_harmless_for``) the problem-report file's sentences as harmless. The problem-report model learns from its own file, every indicator positive (a
    risk report is a problem report) and CLINC's requests (routine, by construction)."""
    rows: list[int] = []
    labels: list[int] = []
    weights: list[float] = []
    harmless: list[bool] = []
    for i, example in enumerate(examples):
        if target in example.untaught:
            continue
        if target == PROBLEM:
            if example.role == "positive" and example.target is not None:
                rows.append(i)
                labels.append(1)
                weights.append(1.0)
                harmless.append(False)
            elif example.target == PROBLEM or example.source.startswith("clinc150"):
                rows.append(i)
                labels.append(0)
                weights.append(
                    config.hard_negative_weight if example.role == "hard_negative" else 1.0
                )
                harmless.append(True)
            continue
        if example.target == PROBLEM:
            if target not in config.problems_harmless_for:
                continue
            # A problem report or a routine request labelled with no indicator: a login that
            # fails with an error is no account taken over.
            rows.append(i)
            labels.append(0)
            weights.append(1.0)
            harmless.append(True)
            continue
        if example.role == "positive" and example.target == target:
            rows.append(i)
            labels.append(1)
            weights.append(1.0)
            harmless.append(False)
        elif example.role == "positive":
            rows.append(i)
            labels.append(0)
            weights.append(config.other_positive_weight)
            harmless.append(False)
        else:
            rows.append(i)
            labels.append(0)
            weights.append(config.hard_negative_weight if example.role == "hard_negative" else 1.0)
            harmless.append(True)
    return _Problem(
        np.asarray(rows, dtype=np.int64),
        np.asarray(labels, dtype=np.int64),
        np.asarray(weights, dtype=np.float64),
        np.asarray(harmless, dtype=np.bool_),
    )


def _fit(
    x: Any,
    y: NDArray[np.int64],
    w: NDArray[np.float64],
    config: TrainingConfig,
    regularization: float | None = None,
) -> Any:
    from sklearn.linear_model import LogisticRegression

    positives = max(int(y.sum()), 1)
    balance = np.where(y == 1, (len(y) - positives) / positives, 1.0) * w
    model = LogisticRegression(
        C=config.regularization if regularization is None else regularization,
        max_iter=3_000,
        random_state=config.seed,
    )
    model.fit(x, y, sample_weight=balance)
    return model


def _out_of_fold(
    x: Any,
    y: NDArray[np.int64],
    w: NDArray[np.float64],
    config: TrainingConfig,
    regularization: float | None = None,
) -> NDArray[np.float64]:
    from sklearn.model_selection import StratifiedKFold

    scores = np.zeros(len(y), dtype=np.float64)
    folds = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    for train, test in folds.split(np.zeros(len(y)), y):
        model = _fit(x[train], y[train], w[train], config, regularization)
        scores[test] = model.predict_proba(x[test])[:, 1]
    return scores


def with_hashed_terms(vectors: Vector, texts: Sequence[str]) -> Any:
    """Model input rows (scipy CSR): the embedding, then the sentence's hashed terms, binary
    and L2-normalized, exactly as :meth:`ScreenModel.scores` and :meth:`LinearScorer.scores`
    read them."""
    from scipy import sparse

    indptr = [0]
    indices: list[NDArray[np.int64]] = []
    values: list[NDArray[np.float64]] = []
    for text in texts:
        terms = hashed_terms(text)
        indices.append(terms)
        values.append(np.full(len(terms), 1.0 / np.sqrt(max(len(terms), 1))))
        indptr.append(indptr[-1] + len(terms))
    hashed = sparse.csr_matrix(
        (
            np.concatenate(values) if values else np.zeros(0),
            np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
            np.asarray(indptr),
        ),
        shape=(len(texts), HASH_BUCKETS),
    )
    return sparse.hstack([sparse.csr_matrix(vectors), hashed]).tocsr()


def _train_screen(
    examples: Sequence[Example],
    fast_vectors: Vector,
    config: TrainingConfig,
    progress: Progress,
) -> tuple[ScreenModel, NDArray[np.bool_], dict[str, Any]]:
    """The screen, which sentences of the corpus its out-of-fold scores let through, and its
    figures. Positives: every risky and every problem sentence; the rest is harmless."""
    taught = np.asarray([SCREEN not in e.untaught for e in examples], np.bool_)
    kept = [e for e, keep in zip(examples, taught, strict=True) if keep]
    y = np.asarray([e.role == "positive" and e.target is not None for e in kept], np.int64)
    w = np.asarray(
        [config.hard_negative_weight if e.role == "hard_negative" else 1.0 for e in kept]
    )
    x = with_hashed_terms(fast_vectors[taught], [e.text for e in kept])
    progress(f"screen: cross-validating ({int(y.sum())} positives, {len(y)} rows)")
    oof = _out_of_fold(x, y, w, config, config.screen_regularization)
    floor = float(np.quantile(oof[y == 1], config.screen_miss_rate))
    # An untaught sentence is no model's positive, so whether the screen passes it is moot.
    passed = np.ones(len(examples), dtype=np.bool_)
    passed[taught] = oof >= floor
    model = _fit(x, y, w, config, config.screen_regularization)
    dim = fast_vectors.shape[1]
    weights = np.asarray(model.coef_[0], dtype=np.float32)
    screen = ScreenModel(
        static_weights=weights[:dim],
        hashed_weights=weights[dim:],
        bias=float(model.intercept_[0]),
        floor=floor,
    )
    passed_taught = passed[taught]
    metrics = {
        "positives": int(y.sum()),
        "rows": len(y),
        "floor": round(floor, 4),
        "oof_positives_passed": round(float(passed_taught[y == 1].mean()), 4),
        "oof_harmless_passed": round(float(passed_taught[y == 0].mean()), 4),
    }
    return screen, passed, metrics


def _scorer(model: Any, threshold: float, dim: int) -> LinearScorer:
    """The fitted regression as a scorer; coefficients past the embedding's ``dim`` are the
    hashed terms' (see :func:`with_hashed_terms`)."""
    weights = np.asarray(model.coef_[0], dtype=np.float32)
    return LinearScorer(
        weights=weights[:dim],
        bias=float(model.intercept_[0]),
        threshold=float(threshold),
        hashed_weights=weights[dim:] if len(weights) > dim else None,
    )


def training_examples(extra_examples: Sequence[Path], clinc: Path) -> list[Example]:
    """The shipped example files, then ``extra_examples``, then CLINC150's training split."""
    paths = [*default_example_paths(), *extra_examples]
    return [*load_examples(paths), *load_clinc(clinc, f"clinc150:{clinc.name}")]


def train_to_file(
    *,
    extra_examples: Sequence[Path],
    clinc: Path,
    output: Path | None,
    config: TrainingConfig,
    encoder: EncoderSettings | None = None,
    progress: Progress = lambda _: None,
) -> tuple[Path, IndicatorModels]:
    """Train on the examples with the configured encoders and write the artifact."""
    settings = encoder or EncoderSettings()
    examples = training_examples(extra_examples, clinc)
    progress(f"{len(examples)} labelled examples; loading the encoders")
    models = train_models(
        examples,
        full=load_encoder(settings),
        fast=load_static_encoder(settings),
        config=config,
        progress=progress,
        embedding_cache=settings.cache_dir,
    )
    path = output or bundled_models_path()
    path.write_text(models.to_json(), encoding="utf-8")
    return path, models


def _train_one(
    indicator: Indicator | None,
    rows: _Problem,
    texts: Sequence[str],
    full_vectors: Vector,
    screened: NDArray[np.bool_],
    config: TrainingConfig,
    progress: Progress,
    target_false_flag_rate: float | None = None,
    *,
    with_words: bool = False,
    near_misses: NDArray[np.int64] | None = None,
) -> tuple[IndicatorModel, dict[str, Any]]:
    name = indicator.value if indicator else PROBLEM
    y, w = rows.labels, rows.weights
    x_full = full_vectors[rows.rows]
    x = with_hashed_terms(x_full, [texts[i] for i in rows.rows]) if with_words else x_full
    progress(f"{name}: cross-validating ({int(y.sum())} positives, {len(y)} rows)")
    oof_full = _out_of_fold(x, y, w, config)
    rate = (
        config.target_false_flag_rate if target_false_flag_rate is None else target_false_flag_rate
    )
    harmless_scores = np.sort(oof_full[rows.harmless])
    allowed = int(np.floor(rate * len(harmless_scores)))
    threshold = float(harmless_scores[len(harmless_scores) - allowed - 1]) + 1e-6
    threshold = min(max(threshold, config.min_threshold), 0.999)
    caught = oof_full[y == 1] >= threshold
    passed = screened[rows.rows][y == 1]
    metrics = {
        "positives": int(y.sum()),
        "rows": len(y),
        "threshold": round(threshold, 4),
        "oof_recall": round(float(caught.mean()), 4),
        "oof_recall_after_cascade": round(float((caught & passed).mean()), 4),
        "oof_false_flags_harmless": round(float((oof_full[rows.harmless] >= threshold).mean()), 5),
    }
    kept = rows.rows[y == 1][: config.max_examples_kept]
    kept_vectors = full_vectors[kept]
    # Leave-one-out: how close each positive's nearest other positive is.
    similarity = kept_vectors @ kept_vectors.T
    np.fill_diagonal(similarity, -1.0)
    min_similarity = float(np.quantile(similarity.max(axis=1), config.similarity_miss_rate))
    near = np.ones(len(y), dtype=np.bool_)
    if len(kept):
        near = (x_full @ kept_vectors.T).max(axis=1) >= min_similarity
    metrics["min_similarity"] = round(min_similarity, 4)
    flagged = (oof_full >= threshold) & near
    metrics["oof_false_flags_harmless_with_similarity"] = round(
        float(flagged[rows.harmless].mean()), 5
    )
    veto = _near_miss_veto(rows, kept, full_vectors, near_misses, config)
    if veto is not None:
        margin, vetoed, positives_vetoed = veto
        metrics["near_miss_margin"] = round(margin, 4)
        metrics["oof_positives_vetoed_by_near_miss"] = round(positives_vetoed, 4)
        metrics["oof_false_flags_harmless_after_near_miss_veto"] = round(
            float((flagged & ~vetoed)[rows.harmless].mean()), 5
        )
        metrics["oof_recall_after_near_miss_veto"] = round(
            float((flagged & ~vetoed)[y == 1].mean()), 4
        )
    near_miss_texts: tuple[str, ...] = ()
    near_miss_vectors = None
    near_miss_margin = float("inf")
    if veto is not None and near_misses is not None:
        near_miss_texts = tuple(texts[i] for i in near_misses)
        near_miss_vectors = full_vectors[near_misses]
        near_miss_margin = veto[0]
    model = IndicatorModel(
        indicator=indicator,
        full=_scorer(_fit(x, y, w, config), threshold, full_vectors.shape[1]),
        example_texts=tuple(texts[i] for i in kept),
        example_vectors=kept_vectors,
        min_similarity=min_similarity,
        near_miss_texts=near_miss_texts,
        near_miss_vectors=near_miss_vectors,
        near_miss_margin=near_miss_margin,
    )
    return model, metrics


def _near_miss_veto(
    rows: _Problem,
    kept: NDArray[np.int64],
    full_vectors: Vector,
    near_misses: NDArray[np.int64] | None,
    config: TrainingConfig,
) -> tuple[float, NDArray[np.bool_], float] | None:
    """The near-miss margin, which training rows it vetoes and the share of positives vetoed;
    every row is compared without itself (a hard negative is not its own near miss, a positive
    not its own nearest positive). ``None`` without near misses."""
    if near_misses is None or not len(near_misses) or not len(kept):
        return None
    x_full = full_vectors[rows.rows]
    to_near_miss = x_full @ full_vectors[near_misses].T
    to_near_miss[rows.rows[:, None] == near_misses[None, :]] = -1.0
    to_positive = x_full @ full_vectors[kept].T
    to_positive[rows.rows[:, None] == kept[None, :]] = -1.0
    gap = to_near_miss.max(axis=1) - to_positive.max(axis=1)
    positive_gaps = gap[rows.labels == 1]
    margin = max(0.0, float(np.quantile(positive_gaps, 1.0 - config.near_miss_veto_rate)))
    vetoed = gap > margin
    return margin, vetoed, float(vetoed[rows.labels == 1].mean())


def train_models(
    examples: Sequence[Example],
    *,
    full: TextEncoder,
    fast: TextEncoder,
    config: TrainingConfig = TrainingConfig(),
    progress: Progress = lambda _: None,
    embedding_cache: Path | None = None,
) -> IndicatorModels:
    """Fit every indicator's models; ``examples`` must hold positives of each indicator."""
    texts = [e.text for e in examples]
    full_vectors = _encode_all(
        full, texts, config.encode_batch, "full encoder", progress, embedding_cache
    )
    fast_vectors = _encode_all(
        fast, texts, config.encode_batch, "static table", progress, embedding_cache
    )
    screen, screened, screen_metrics = _train_screen(examples, fast_vectors, config, progress)
    models: dict[Indicator, IndicatorModel] = {}
    metrics: dict[str, Any] = {"screen": screen_metrics}
    for indicator in MODEL_INDICATORS:
        rows = _rows_for(examples, indicator, config)
        if not rows.labels.any():
            raise ValueError(f"no positive examples for {indicator.value}")
        models[indicator], metrics[indicator.value] = _train_one(
            indicator,
            rows,
            texts,
            full_vectors,
            screened,
            config,
            progress,
            target_false_flag_rate=dict(config.indicator_false_flag_rates).get(indicator),
            with_words=config.indicators_read_words,
            near_misses=np.asarray(
                [
                    i
                    for i, e in enumerate(examples)
                    if e.role == "hard_negative"
                    and e.target == indicator
                    and indicator not in e.untaught
                ],
                dtype=np.int64,
            ),
        )
    problem: IndicatorModel | None = None
    if any(e.target == PROBLEM for e in examples):
        rows = _rows_for(examples, PROBLEM, config)
        problem, metrics[PROBLEM] = _train_one(
            None,
            rows,
            texts,
            full_vectors,
            screened,
            config,
            progress,
            target_false_flag_rate=config.problem_false_flag_rate,
        )
    return IndicatorModels(
        screen=screen,
        indicators=models,
        problem=problem,
        encoder_id=full.model_id,
        static_id=fast.model_id,
        data_hash=corpus_hash(examples),
        trainer_version=trainer_version(),
        metrics=metrics,
    )
