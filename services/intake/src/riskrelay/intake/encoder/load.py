"""Start-up: from :class:`EncoderSettings` to a ready encoder, or an :class:`EncoderLoadError`."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from riskrelay.intake.encoder import reference
from riskrelay.intake.encoder.config import EncoderSettings
from riskrelay.intake.encoder.errors import EncoderLoadError
from riskrelay.intake.encoder.model import BertWeights, FloatArray, ModelSource, bundled_model_dir
from riskrelay.intake.encoder.runtime import Forward, SentenceEncoder


def model_source(settings: EncoderSettings) -> ModelSource:
    return ModelSource(settings.model_dir or bundled_model_dir())


def window_tokens(settings: EncoderSettings, source: ModelSource) -> int:
    """Word pieces per window: the setting, else the model's max_seq_length."""
    config = source.config
    max_tokens = settings.max_tokens or min(config.max_seq_length, config.max_positions)
    if max_tokens > config.max_positions:
        raise EncoderLoadError(
            source.config_path,
            f"max_tokens {max_tokens} exceeds the model's {config.max_positions} positions",
        )
    if settings.window_overlap_tokens >= max_tokens - 2:
        raise EncoderLoadError(
            source.config_path,
            f"window_overlap_tokens {settings.window_overlap_tokens} leaves no new word piece"
            f" in a window of {max_tokens}",
        )
    return max_tokens


class NumpyForward:
    """The reference forward pass on at most ``threads`` BLAS threads: more threads than free
    cores make OpenBLAS spin, several times slower than one thread."""

    def __init__(self, weights: BertWeights, threads: int) -> None:
        self._weights = weights
        self._threads = threads
        self._blas = ThreadpoolController()

    def __call__(
        self, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64]
    ) -> FloatArray:
        with self._blas.limit(limits=self._threads, user_api="blas"):
            return reference.forward(self._weights, input_ids, attention_mask)


def load_encoder(settings: EncoderSettings) -> SentenceEncoder:
    """The sentence encoder the settings describe; every model file is checked here, so a
    missing or corrupt one stops start-up (:class:`EncoderLoadError`)."""
    source = model_source(settings)
    max_tokens = window_tokens(settings, source)
    forward: Forward
    forward = NumpyForward(source.weights(), settings.threads)
    model_id = source.model_id
    return SentenceEncoder(
        forward=forward,
        tokenizer=source.tokenizer(max_tokens),
        window_tokenizer=source.tokenizer(max_tokens, overlap=settings.window_overlap_tokens),
        model_id=model_id,
        dim=source.config.hidden_size,
        max_tokens=max_tokens,
        pad_token_id=source.config.pad_token_id,
        batch_size=settings.batch_size,
        max_windows=settings.max_windows,
        window_overlap_tokens=settings.window_overlap_tokens,
    )
