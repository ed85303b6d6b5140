"""The ONNX model, written node by node from the safetensors weights with ``onnx.helper``: the
same computation as :mod:`reference` (which the tests hold it to), and the same bytes for the
same weights (no timestamps, fixed names and order). ``quantize`` makes its dynamically
int8-quantized sibling with onnxruntime's quantizer."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from riskrelay.intake.encoder.model import BertWeights
from riskrelay.intake.encoder.reference import MASKED_SCORE, NORM_EPS

OPSET = 17
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
OUTPUT = "sentence_embedding"


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        self._count += 1
        output = f"{op_type.lower()}_{self._count}"
        self.nodes.append(
            helper.make_node(op_type, list(inputs), [output], name=f"n{self._count}", **attributes)
        )
        return output

    def linear(self, x: str, name: str, weight: np.ndarray, bias: np.ndarray) -> str:
        product = self.op("MatMul", x, self.constant(f"{name}.weight", weight))
        return self.op("Add", product, self.constant(f"{name}.bias", bias))

    def layer_norm(self, x: str, name: str, gain: np.ndarray, bias: np.ndarray, eps: float) -> str:
        return self.op(
            "LayerNormalization",
            x,
            self.constant(f"{name}.gain", gain),
            self.constant(f"{name}.bias", bias),
            axis=-1,
            epsilon=eps,
        )


def _int64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _float(value: float) -> np.ndarray:
    return np.array(value, dtype=np.float32)


def build_model(weights: BertWeights, *, normalize: bool = True) -> bytes:
    """The serialized fp32 ONNX model: (input_ids, attention_mask) int64 (batch, length) ->
    sentence_embedding float32 (batch, hidden), unit length (``normalize=False``: the mean-pooled
    vectors as they are, which the static table is built from)."""
    config = weights.config
    hidden_size = config.hidden_size
    heads = config.num_heads
    head_size = hidden_size // heads
    eps = config.layer_norm_eps
    g = _GraphBuilder()

    g.constant("word_embeddings", weights.word_embeddings)
    g.constant("position_embeddings", weights.position_embeddings)
    zero, one, two = (
        g.constant("zero", _int64(0)),
        g.constant("one", _int64(1)),
        g.constant("two", _int64(2)),
    )
    length = g.op("Slice", g.op("Shape", INPUT_IDS), one, two)
    positions = g.op("Slice", "position_embeddings", zero, length, zero)
    embedded = g.op("Add", g.op("Gather", "word_embeddings", INPUT_IDS), positions)
    hidden = g.layer_norm(
        embedded, "embeddings.norm", weights.embedding_norm_g, weights.embedding_norm_b, eps
    )

    mask = g.op("Cast", ATTENTION_MASK, to=TensorProto.FLOAT)
    padding = g.op("Sub", g.constant("mask_one", _float(1.0)), mask)
    mask_bias = g.op(
        "Unsqueeze",
        g.op("Mul", padding, g.constant("masked_score", _float(float(MASKED_SCORE)))),
        g.constant("mask_axes", _int64(1, 2)),
    )
    qkv_sizes = g.constant("qkv_sizes", _int64(hidden_size, hidden_size, hidden_size))
    heads_shape = g.constant("heads_shape", _int64(0, 0, heads, head_size))
    merged_shape = g.constant("merged_shape", _int64(0, 0, hidden_size))
    scale = g.constant("attention_scale", _float(1.0 / np.sqrt(head_size)))
    half = g.constant("half", _float(0.5))
    unit = g.constant("unit", _float(1.0))
    sqrt_two = g.constant("sqrt_two", _float(np.sqrt(2.0)))

    for index, layer in enumerate(weights.layers):
        at = f"layer{index}"
        qkv = g.linear(hidden, f"{at}.qkv", layer.qkv_w, layer.qkv_b)
        query, key, value = (f"{at}.query", f"{at}.key", f"{at}.value")
        g.nodes.append(
            helper.make_node(
                "Split", [qkv, qkv_sizes], [query, key, value], name=f"{at}.split", axis=-1
            )
        )
        query_heads = g.op("Transpose", g.op("Reshape", query, heads_shape), perm=[0, 2, 1, 3])
        key_heads_t = g.op("Transpose", g.op("Reshape", key, heads_shape), perm=[0, 2, 3, 1])
        value_heads = g.op("Transpose", g.op("Reshape", value, heads_shape), perm=[0, 2, 1, 3])
        scores = g.op(
            "Add", g.op("Mul", g.op("MatMul", query_heads, key_heads_t), scale), mask_bias
        )
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), value_heads)
        merged = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merged_shape)
        attended = g.linear(merged, f"{at}.attention_output", layer.attn_out_w, layer.attn_out_b)
        hidden = g.layer_norm(
            g.op("Add", attended, hidden),
            f"{at}.attention_norm",
            layer.attn_norm_g,
            layer.attn_norm_b,
            eps,
        )
        inner = g.linear(hidden, f"{at}.ffn_in", layer.ffn_in_w, layer.ffn_in_b)
        # x * (1 + erf(x / sqrt 2)) * 0.5, in the order onnxruntime fuses into one Gelu.
        erf = g.op("Erf", g.op("Div", inner, sqrt_two))
        activated = g.op("Mul", g.op("Mul", inner, g.op("Add", erf, unit)), half)
        output = g.linear(activated, f"{at}.ffn_out", layer.ffn_out_w, layer.ffn_out_b)
        hidden = g.layer_norm(
            g.op("Add", output, hidden), f"{at}.ffn_norm", layer.ffn_norm_g, layer.ffn_norm_b, eps
        )

    token_weights = g.op("Unsqueeze", mask, two)
    summed = g.op("ReduceSum", g.op("Mul", hidden, token_weights), one, keepdims=0)
    counts = g.op("ReduceSum", token_weights, one, keepdims=0)
    pooled = g.op("Div", summed, g.op("Max", counts, g.constant("min_count", _float(1e-9))))
    if normalize:
        norm = g.op("ReduceL2", pooled, axes=[1], keepdims=1)
        bounded = g.op("Max", norm, g.constant("norm_eps", _float(float(NORM_EPS))))
        g.nodes.append(helper.make_node("Div", [pooled, bounded], [OUTPUT], name="normalize"))
    else:
        g.nodes.append(helper.make_node("Identity", [pooled], [OUTPUT], name="pooled"))

    batch_and_length = ["batch", "length"]
    graph = helper.make_graph(
        g.nodes,
        "sentence_encoder",
        inputs=[
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, batch_and_length),
            helper.make_tensor_value_info(ATTENTION_MASK, TensorProto.INT64, batch_and_length),
        ],
        outputs=[helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", hidden_size])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="riskrelay.intake.encoder",
        producer_version="1",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString(deterministic=True)
    return serialized


class _PreprocessingAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")


@contextlib.contextmanager
def _without_preprocessing_advice() -> Iterator[None]:
    """The quantizer advises pre-processing on the root logger even after it ran."""
    advice = _PreprocessingAdvice()
    logging.getLogger().addFilter(advice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(advice)


def quantize(model: bytes) -> bytes:
    """The model with its MatMul weights quantized to int8, one scale per output channel
    (activations are quantized per batch at run time). onnxruntime's pre-processing (shape
    inference and graph optimization) runs first, as its quantizer asks."""
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        QuantType,
        quantize_dynamic,
    )
    from onnxruntime.quantization.shape_inference import (  # type: ignore[import-untyped]
        quant_pre_process,
    )

    with (
        tempfile.TemporaryDirectory(prefix="riskrelay-quantize-") as directory,
        _without_preprocessing_advice(),
    ):
        source = Path(directory) / "fp32.onnx"
        prepared = Path(directory) / "prepared.onnx"
        target = Path(directory) / "int8.onnx"
        source.write_bytes(model)
        # Symbolic shape inference needs sympy; the optimizer infers the shapes this graph has.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            prepared,
            target,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
        return target.read_bytes()
