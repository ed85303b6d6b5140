"""The static token table: a first pass that embeds a text in microseconds, distilled from the
encoder (model2vec-style) and living in the encoder's space, so its rows can be compared with
the encoder's.

Row ``t`` is the encoder's mean-pooled output for the one-token text ``[CLS] t [SEP]``, minus
the mean of all rows (the direction every row shares), times the SIF weight ``a / (a + p_t)``
with ``p_t`` the Zipf frequency of the token's rank in the vocabulary (WordPiece vocabularies
list words most frequent first), so frequent pieces count little. A text's embedding is the sum
of its word pieces' rows, L2-normalized. ``a`` was chosen on CLINC150's training texts for
agreement with the encoder (bench/encoder.py reports it).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer

from riskrelay.intake.encoder.errors import EncoderLoadError
from riskrelay.intake.encoder.model import FloatArray
from riskrelay.intake.encoder.runtime import (
    CHARS_PER_WORD_PIECE,
    Forward,
    checked_texts,
    tokenize,
)

SIF_A = 3e-5
BUILD_BATCH = 1024
RECIPE = f"mean-pooled [CLS] t [SEP], centered, SIF a={SIF_A!r}"
"""What the rows are, in the static encoder's model id: a model trained on one table's
embeddings is not used with another's (the file's bytes are no id: floating-point kernels
differ in the last bit between processors)."""


def recipe_id() -> str:
    return hashlib.sha256(RECIPE.encode()).hexdigest()[:8]


def sif_weights(vocab_size: int, a: float = SIF_A) -> FloatArray:
    ranks = np.arange(1, vocab_size + 1, dtype=np.float64)
    frequency = (1.0 / ranks) / (1.0 / ranks).sum()
    weights: FloatArray = (a / (a + frequency)).astype(np.float32)
    return weights


def build_table(forward: Forward, vocab_size: int, *, cls_id: int, sep_id: int) -> FloatArray:
    """The table's rows (vocabulary, hidden); ``forward`` must return the mean-pooled vectors
    unnormalized (``graph.build_model(weights, normalize=False)``)."""
    pooled = np.empty((vocab_size, 0), dtype=np.float32)
    for start in range(0, vocab_size, BUILD_BATCH):
        ids = np.arange(start, min(vocab_size, start + BUILD_BATCH), dtype=np.int64)
        input_ids = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
        rows = forward(input_ids, np.ones_like(input_ids))
        if not start:
            pooled = np.empty((vocab_size, rows.shape[1]), dtype=np.float32)
        pooled[start : start + len(ids)] = rows
    centered = pooled - pooled.mean(axis=0, dtype=np.float64).astype(np.float32)
    table: FloatArray = centered * sif_weights(vocab_size)[:, None]
    return table


def table_bytes(table: FloatArray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    return buffer.getvalue()


def table_from_bytes(content: bytes, path: object, shape: tuple[int, int]) -> FloatArray:
    """The table in a cached file's bytes, checked."""
    try:
        table = np.load(io.BytesIO(content), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise EncoderLoadError(str(path), f"not a .npy table: {error}") from error
    if table.shape != shape or table.dtype != np.float32:
        raise EncoderLoadError(
            str(path), f"table is {table.dtype} {table.shape}, expected float32 {shape}"
        )
    if not np.isfinite(table).all():
        raise EncoderLoadError(str(path), "table holds NaN or infinite values")
    checked: FloatArray = table
    return checked


class StaticEncoder:
    """The first pass: the same ``encode`` contract as :class:`SentenceEncoder` (unit rows in
    the encoder's space, the zero row for a text without word pieces), at a table lookup's
    cost."""

    def __init__(
        self, *, table: FloatArray, tokenizer: Tokenizer, model_id: str, max_tokens: int
    ) -> None:
        self._table = table
        self._tokenizer = tokenizer
        self._model_id = model_id
        self._max_chars = max_tokens * CHARS_PER_WORD_PIECE

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return int(self._table.shape[1])

    def encode(self, texts: Sequence[str]) -> FloatArray:
        checked = checked_texts(texts)
        encodings = tokenize(self._tokenizer, checked, self._max_chars, special_tokens=False)
        result = np.zeros((len(checked), self.dim), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            if encoding.ids:
                result[row] = self._table[encoding.ids].sum(axis=0)
        norms = np.linalg.norm(result, axis=1, keepdims=True)
        np.divide(result, norms, out=result, where=norms > 0)
        return result
