"""Start-up: from :class:`EncoderSettings` to a ready encoder, or an :class:`EncoderLoadError`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnxruntime  # type: ignore[import-untyped]

from riskrelay.intake.encoder import backends, graph, model, static
from riskrelay.intake.encoder.backends import NumpyForward, OnnxForward
from riskrelay.intake.encoder.cache import (
    artifact_path,
    input_key,
    load_or_build,
    source_code_hash,
)
from riskrelay.intake.encoder.config import EncoderSettings
from riskrelay.intake.encoder.errors import EncoderLoadError
from riskrelay.intake.encoder.model import FloatArray, ModelSource, bundled_model_dir
from riskrelay.intake.encoder.runtime import Forward, SentenceEncoder
from riskrelay.intake.encoder.static import StaticEncoder


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


def kept_layers(settings: EncoderSettings, source: ModelSource) -> int:
    """Transformer layers the encoder runs: the setting, else all of the model's."""
    available = source.config.num_layers
    if settings.layers is None:
        return available
    if settings.layers > available:
        raise EncoderLoadError(
            source.config_path,
            f"layers {settings.layers} exceeds the model's {available} transformer layers",
        )
    return settings.layers


def encoder_weights(settings: EncoderSettings, source: ModelSource) -> model.BertWeights:
    """The model's weights, cut to the layers the settings keep."""
    weights = source.weights()
    layers = kept_layers(settings, source)
    if layers == len(weights.layers):
        return weights
    return dataclasses.replace(weights, layers=weights.layers[:layers])


def encoder_model_id(settings: EncoderSettings, source: ModelSource) -> str:
    layers = kept_layers(settings, source)
    suffix = "" if layers == source.config.num_layers else f":L{layers}"
    return source.model_id + suffix


def onnx_model(
    settings: EncoderSettings, source: ModelSource, *, quantized: bool
) -> tuple[bytes, Path]:
    """The cached ONNX model (built on first use) and its path."""
    layers = kept_layers(settings, source)
    fp32_key = input_key("onnx", source_code_hash(model, graph), source.content_hash)
    name = source.name
    if layers != source.config.num_layers:
        fp32_key = input_key(fp32_key, f"layers={layers}")
        name += f".L{layers}"
    fp32_path = artifact_path(settings.cache_dir, f"{name}.fp32", fp32_key, ".onnx")

    def build_fp32() -> bytes:
        return graph.build_model(encoder_weights(settings, source))

    fp32 = load_or_build(fp32_path, fp32_key, build_fp32, allow_build=settings.allow_build)
    if not quantized:
        return fp32, fp32_path
    # The quantizer's output may change with onnxruntime's version, so the version is an input.
    int8_key = input_key("onnx-int8", fp32_key, onnxruntime.__version__)
    int8_path = artifact_path(settings.cache_dir, f"{name}.int8", int8_key, ".onnx")
    int8 = load_or_build(
        int8_path, int8_key, lambda: graph.quantize(fp32), allow_build=settings.allow_build
    )
    return int8, int8_path


def load_encoder(settings: EncoderSettings) -> SentenceEncoder:
    """The sentence encoder the settings describe. Every model file is checked here, and the
    derived ones are built when missing or stale, so a missing or corrupt file stops start-up
    (:class:`EncoderLoadError`) instead of the first ticket."""
    source = model_source(settings)
    max_tokens = window_tokens(settings, source)
    forward: Forward
    model_id = encoder_model_id(settings, source)
    quantized = settings.quantized and settings.runtime == "onnx"
    if settings.runtime == "numpy":
        forward = NumpyForward(encoder_weights(settings, source), settings.threads)
    else:
        onnx_bytes, path = onnx_model(settings, source, quantized=quantized)
        forward = OnnxForward(onnx_bytes, path, settings.threads)
        if quantized:
            model_id += f":int8r{backends.INT8_RECIPE}"
    return SentenceEncoder(
        forward=forward,
        tokenizer=source.tokenizer(max_tokens),
        window_tokenizer=source.tokenizer(max_tokens, overlap=settings.window_overlap_tokens),
        model_id=model_id,
        dim=source.config.hidden_size,
        max_tokens=max_tokens,
        pad_token_id=source.config.pad_token_id,
        # The int8 model quantizes its activations with one scale per input tensor, so a text's
        # row would depend on the texts batched with it (cosine 0.99 to itself alone): each
        # text gets a forward pass of its own, and the same text always the same row.
        batch_size=1 if quantized else settings.batch_size,
        max_windows=settings.max_windows,
        window_overlap_tokens=settings.window_overlap_tokens,
        memo_entries=settings.memo_entries,
        # Concurrent passes pay off on one text per pass; the numpy reference's BLAS threads
        # and the fp32 model's batches already take the cores.
        parallel_runs=settings.parallel_runs if quantized else 1,
    )


def static_table(settings: EncoderSettings, source: ModelSource) -> FloatArray:
    """The cached static token table (built on first use)."""
    key = input_key("static", source_code_hash(model, graph, backends, static), source.content_hash)
    path = artifact_path(settings.cache_dir, f"{source.name}.static", key, ".npy")
    tokenizer = source.tokenizer(source.config.max_positions)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if cls_id is None or sep_id is None:
        raise EncoderLoadError(source.tokenizer_path, "no [CLS] or [SEP] token")

    def build() -> bytes:
        weights = source.weights()
        unnormalized = graph.build_model(weights, normalize=False)
        forward = OnnxForward(unnormalized, source.weights_path, settings.threads)
        table = static.build_table(forward, weights.config.vocab_size, cls_id=cls_id, sep_id=sep_id)
        return static.table_bytes(table)

    content = load_or_build(path, key, build, allow_build=settings.allow_build)
    shape = (source.config.vocab_size, source.config.hidden_size)
    return static.table_from_bytes(content, path, shape)


def load_static_encoder(settings: EncoderSettings) -> StaticEncoder:
    """The static first-pass encoder of the model the settings name."""
    source = model_source(settings)
    max_tokens = window_tokens(settings, source)
    return StaticEncoder(
        table=static_table(settings, source),
        tokenizer=source.tokenizer(max_tokens),
        model_id=f"{source.model_id}:static-{static.recipe_id()}",
        max_tokens=max_tokens,
    )
