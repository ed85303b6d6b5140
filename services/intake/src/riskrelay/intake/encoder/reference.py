"""The reference forward pass in plain numpy: BERT embeddings, the encoder layers, then mean
pooling over the attended word pieces and L2 normalization (sentence-transformers' Transformer,
Pooling and Normalize modules). The ONNX graph is checked against it."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf  # type: ignore[import-untyped]

from riskrelay.intake.encoder.model import BertWeights, FloatArray

MASKED_SCORE = np.float32(-1e9)
"""Added to the attention scores of padding, so softmax gives it no weight."""

NORM_EPS = np.float32(1e-12)
SQRT_HALF = np.float32(np.sqrt(0.5))


def layer_norm(x: FloatArray, gain: FloatArray, bias: FloatArray, eps: float) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = np.square(centered).mean(axis=-1, keepdims=True)
    normalized: FloatArray = centered / np.sqrt(variance + np.float32(eps)) * gain + bias
    return normalized


def gelu(x: FloatArray) -> FloatArray:
    """The exact (erf) GELU that BERT's ``hidden_act: gelu`` means."""
    result: FloatArray = x * np.float32(0.5) * (np.float32(1.0) + erf(x * SQRT_HALF))
    return result


def softmax(x: FloatArray) -> FloatArray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    result: FloatArray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result


def mean_pool_normalized(hidden: FloatArray, attention_mask: NDArray[np.int64]) -> FloatArray:
    weights = attention_mask.astype(np.float32)[:, :, None]
    summed = (hidden * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))
    pooled = summed / counts
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), NORM_EPS)
    result: FloatArray = (pooled / norms).astype(np.float32)
    return result


def forward(
    weights: BertWeights, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64]
) -> FloatArray:
    """Sentence embeddings (batch, hidden), unit length, of padded token id rows."""
    config = weights.config
    batch, length = input_ids.shape
    heads = config.num_heads
    head_size = config.hidden_size // heads
    eps = config.layer_norm_eps
    # Token rows are kept as one (batch * length, hidden) matrix: numpy multiplies 2-D
    # operands in one BLAS call, a 3-D one batch row by batch row.
    embedded = weights.word_embeddings[input_ids] + weights.position_embeddings[:length]
    hidden = layer_norm(embedded, weights.embedding_norm_g, weights.embedding_norm_b, eps)
    hidden = hidden.reshape(batch * length, config.hidden_size)
    mask_bias = ((1 - attention_mask).astype(np.float32) * MASKED_SCORE)[:, None, None, :]
    scale = np.float32(1.0 / np.sqrt(head_size))
    for layer in weights.layers:
        qkv = hidden @ layer.qkv_w + layer.qkv_b
        qkv = qkv.reshape(batch, length, 3, heads, head_size).transpose(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = (query @ key.transpose(0, 1, 3, 2)) * scale + mask_bias
        context = (softmax(scores) @ value).transpose(0, 2, 1, 3).reshape(batch * length, -1)
        attended = context @ layer.attn_out_w + layer.attn_out_b
        hidden = layer_norm(attended + hidden, layer.attn_norm_g, layer.attn_norm_b, eps)
        inner = gelu(hidden @ layer.ffn_in_w + layer.ffn_in_b)
        output = inner @ layer.ffn_out_w + layer.ffn_out_b
        hidden = layer_norm(output + hidden, layer.ffn_norm_g, layer.ffn_norm_b, eps)
    return mean_pool_normalized(hidden.reshape(batch, length, -1), attention_mask)
