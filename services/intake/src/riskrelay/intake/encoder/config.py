"""The encoder's settings group (``RISKRELAY_INTAKE_ENCODER__<FIELD>``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/riskrelay/models`` (``~/.cache/...``): the same for every working
    directory, so the files `make setup` builds serve the demo, the tests and any checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "riskrelay" / "models"


class EncoderSettings(BaseModel):
    """Where the sentence encoder's files are and how it runs."""

    model_dir: Path | None = Field(
        default=None,
        description=(
            "A sentence-transformers model directory (BERT family: config.json, tokenizer.json,"
            " model.safetensors, 1_Pooling/config.json with mean pooling); default: the bundled"
            " all-MiniLM-L6-v2."
        ),
    )
    cache_dir: Path = Field(
        default_factory=user_cache_dir,
        description=(
            "Where the derived files (ONNX models, static token table) are built and kept, each"
            " named by a hash of its inputs; default `$XDG_CACHE_HOME/riskrelay/models`"
            " (`~/.cache/riskrelay/models`)."
        ),
    )
    runtime: Literal["onnx", "numpy"] = Field(
        default="onnx",
        description="onnx: onnxruntime (fast); numpy: the reference implementation (slow).",
    )
    quantized: bool = Field(
        default=True,
        description=(
            "Run the dynamically int8-quantized ONNX model (runtime onnx only): about 40% of the"
            " fp32 model's CPU per text, cosine 0.99 to fp32 (bench/encoder.py); its model_id"
            " ends in :int8r<recipe>, and the bundled indicator models are trained for it."
            " false: the fp32 model (train models for it with `riskrelay train`)."
        ),
    )
    threads: int = Field(
        default=1,
        ge=1,
        description=(
            "onnxruntime intra-op threads; the cores are shared with the broker and database."
        ),
    )
    parallel_runs: int = Field(
        default=2,
        ge=1,
        description=(
            "Forward passes run at once, each on one thread (onnxruntime releases the GIL): a"
            " short text keeps one core busy far better than it splits across two (on the"
            " 2-core bench machine, two concurrent one-thread runs did 1.9x the texts per second"
            " of one run, one run on two intra-op threads 0.8x). Used by the int8 model, which"
            " runs one text per pass."
        ),
    )
    batch_size: int = Field(
        default=32,
        ge=1,
        description=(
            "Texts per forward pass of the fp32 model (texts are grouped by length); the int8"
            " model runs one text per pass, so that a text's embedding never depends on the"
            " texts batched with it."
        ),
    )
    memo_entries: int = Field(
        default=20_000,
        ge=0,
        description=(
            "Embeddings of the most recently seen distinct texts kept in memory (about 1.5 KiB"
            " each): a follow-up resends its ticket's description, and macros and signatures"
            " recur. 0: none."
        ),
    )
    layers: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Run only the model's first N transformer layers (each costs about 1/6 of"
            " all-MiniLM-L6-v2's forward pass); default: all. The model_id ends in :L<N>, so"
            " indicator models must be trained for it (`riskrelay train`)."
        ),
    )
    max_tokens: int | None = Field(
        default=None,
        ge=8,
        description=(
            "Word pieces per window, [CLS] and [SEP] included; default: the model's"
            " max_seq_length (256 for all-MiniLM-L6-v2)."
        ),
    )
    window_overlap_tokens: int = Field(
        default=32, ge=0, description="Word pieces that consecutive windows of a long text share."
    )
    max_windows: int = Field(
        default=32, ge=1, description="Most windows encode_windows() returns for one text."
    )
    allow_build: bool = Field(
        default=True,
        description=(
            "Build a missing or stale derived file at start-up; when false such a file stops"
            " start-up (for read-only images whose cache was built by `make setup`)."
        ),
    )
