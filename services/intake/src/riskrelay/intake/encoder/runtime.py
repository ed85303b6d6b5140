"""Sentence embeddings of ticket text: :class:`SentenceEncoder` (the transformer, on onnxruntime
or the numpy reference) and its first-pass sibling :class:`StaticEncoder`.

Every text gets a defined outcome: it is read up to a character bound (64 per word piece),
then up to the window's word pieces (``encode``) or the first ``max_windows`` windows
(``encode_windows``); a lone surrogate (not valid Unicode, which the tokenizer refuses) becomes
``?``; the BERT normalizer drops control characters; emoji and characters outside the vocabulary
become ``[UNK]`` word pieces. A text with no word piece at all (empty, whitespace, control
characters only) gets the zero vector: it is similar to nothing. Every other row is unit
length, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from tokenizers import Encoding, Tokenizer

from riskrelay.intake.encoder.model import FloatArray

Forward = Callable[[NDArray[np.int64], NDArray[np.int64]], FloatArray]
"""(input ids, attention mask), both (batch, length) -> unit-length embeddings (batch, dim)."""

CHARS_PER_WORD_PIECE = 64
"""Characters read per word piece of the window: far more than prose needs (English averages
about 4.5), so clipping changes what is read only for text padded with long runs of spaces or
control characters, and bounds the tokenizer's work on huge inputs."""


class TextEncoder(Protocol):
    """What the intake steps need of an encoder (full or static)."""

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> FloatArray: ...


def checked_texts(texts: Sequence[str]) -> list[str]:
    """The texts, or a TypeError naming the first one that is not a string."""
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not one string: wrap it in a list")
    checked = list(texts)
    for index, text in enumerate(checked):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__}, not str")
    return checked


def _without_surrogates(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def tokenize(
    tokenizer: Tokenizer, texts: list[str], max_chars: int, *, special_tokens: bool = True
) -> list[Encoding]:
    clipped = [text[:max_chars] for text in texts]
    try:
        return _encode(tokenizer, clipped, special_tokens)
    except TypeError:  # a lone surrogate: the tokenizer takes only valid Unicode
        return _encode(tokenizer, [_without_surrogates(text) for text in clipped], special_tokens)


def _encode(tokenizer: Tokenizer, texts: list[str], special_tokens: bool) -> list[Encoding]:
    if len(texts) == 1:  # a third cheaper than a batch of one (no hand-off to the thread pool)
        return [tokenizer.encode(texts[0], add_special_tokens=special_tokens)]
    return tokenizer.encode_batch(texts, add_special_tokens=special_tokens)


def content_length(encoding: Encoding) -> int:
    """Word pieces of the text itself, the special tokens not counted."""
    return len(encoding.special_tokens_mask) - sum(encoding.special_tokens_mask)


class SentenceEncoder:
    """The transformer sentence encoder: ``encode`` gives unit-length float32 rows."""

    def __init__(
        self,
        *,
        forward: Forward,
        tokenizer: Tokenizer,
        window_tokenizer: Tokenizer,
        model_id: str,
        dim: int,
        max_tokens: int,
        pad_token_id: int,
        batch_size: int,
        max_windows: int,
        window_overlap_tokens: int,
        memo_entries: int = 0,
        parallel_runs: int = 1,
    ) -> None:
        self._forward = forward
        self._tokenizer = tokenizer
        self._window_tokenizer = window_tokenizer
        self._model_id = model_id
        self._dim = dim
        self.max_tokens = max_tokens
        self._pad_token_id = pad_token_id
        self._batch_size = batch_size
        self._runs = (
            ThreadPoolExecutor(parallel_runs, thread_name_prefix="encoder")
            if parallel_runs > 1
            else None
        )
        self._memo: OrderedDict[str, FloatArray] = OrderedDict()
        self._memo_entries = memo_entries
        self._memo_lock = threading.Lock()
        self.memo_hits = 0
        self.max_windows = max_windows
        self.window_overlap_tokens = window_overlap_tokens
        self._max_chars = max_tokens * CHARS_PER_WORD_PIECE
        stride = max_tokens - 2 - window_overlap_tokens
        self._max_window_chars = (max_tokens + (max_windows - 1) * stride) * CHARS_PER_WORD_PIECE

    @property
    def model_id(self) -> str:
        """Provenance: the model name, its files' content hash and the runtime variant."""
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str]) -> FloatArray:
        """One unit-length row per text (the zero row for a text without word pieces), of its
        first ``max_tokens`` word pieces."""
        checked = checked_texts(texts)
        if not self._memo_entries:
            return self._encode_encodings(tokenize(self._tokenizer, checked, self._max_chars))
        # A text's row depends on nothing but the text (batches of one where it would not, see
        # load_encoder), so a remembered row is the row: follow-ups resend the ticket's
        # description, and macros and signatures recur across tickets.
        result = np.empty((len(checked), self._dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._memo_lock:
            for row, text in enumerate(checked):
                known = self._memo.get(text)
                if known is None:
                    missing.setdefault(text, []).append(row)
                else:
                    self._memo.move_to_end(text)
                    result[row] = known
                    self.memo_hits += 1
        if missing:
            fresh = list(missing)
            vectors = self._encode_encodings(tokenize(self._tokenizer, fresh, self._max_chars))
            with self._memo_lock:
                for text, vector in zip(fresh, vectors, strict=True):
                    result[missing[text]] = vector
                    self._memo[text] = vector
                while len(self._memo) > self._memo_entries:
                    self._memo.popitem(last=False)
        return result

    def forget(self) -> None:
        """Drop every remembered embedding (benchmarks start each measured run cold)."""
        with self._memo_lock:
            self._memo.clear()
            self.memo_hits = 0

    def encode_windows(self, text: str) -> FloatArray:
        """One row per window of ``max_tokens`` word pieces, consecutive windows sharing
        ``window_overlap_tokens``; at most ``max_windows`` rows, at least one. The first row is
        ``encode([text])[0]``."""
        (checked,) = checked_texts([text])
        (first,) = tokenize(self._window_tokenizer, [checked], self._max_window_chars)
        windows = [first, *first.overflowing][: self.max_windows]
        return self._encode_encodings(windows)

    def _encode_encodings(self, encodings: Sequence[Encoding]) -> FloatArray:
        result = np.zeros((len(encodings), self._dim), dtype=np.float32)
        with_content = [
            index for index, encoding in enumerate(encodings) if content_length(encoding)
        ]
        # Similar lengths together, so a batch pads little.
        with_content.sort(key=lambda index: len(encodings[index].ids))
        chunks = [
            with_content[start : start + self._batch_size]
            for start in range(0, len(with_content), self._batch_size)
        ]
        if self._runs is None or len(chunks) < 2:
            for chunk in chunks:
                result[chunk] = self._forward_chunk(encodings, chunk)
        else:
            for chunk, rows in zip(
                chunks,
                self._runs.map(lambda chunk: self._forward_chunk(encodings, chunk), chunks),
                strict=True,
            ):
                result[chunk] = rows
        return result

    def _forward_chunk(self, encodings: Sequence[Encoding], chunk: list[int]) -> FloatArray:
        length = len(encodings[chunk[-1]].ids)
        input_ids = np.full((len(chunk), length), self._pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(chunk), length), dtype=np.int64)
        for row, index in enumerate(chunk):
            ids = encodings[index].ids
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        return self._forward(input_ids, attention_mask)
