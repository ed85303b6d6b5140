"""The two forward passes behind :class:`SentenceEncoder`: onnxruntime and the numpy reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime  # type: ignore[import-untyped]
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

from riskrelay.intake.encoder import graph, reference
from riskrelay.intake.encoder.errors import EncoderLoadError
from riskrelay.intake.encoder.model import BertWeights, FloatArray


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


DISABLED_FUSIONS = ("SkipLayerNormFusion",)
"""Graph fusions onnxruntime must not apply. Its fused SkipLayerNormalization kernel took about
60 µs per call on 27 word pieces on the bench machine, more than the Add and the
LayerNormalization it replaces together (about 15 µs): without it the int8 pass costs about a
quarter less CPU (bench/encoder.py). It changes the int8 rows slightly (cosine 0.996 to the
fused pass's, both 0.989 to fp32), so it is part of the int8 recipe (:data:`INT8_RECIPE`)."""

INT8_RECIPE = 2
"""Moves whenever the int8 pass's arithmetic changes (fusions, quantizer options): the int8
model_id carries it, so indicator models trained for another recipe stop start-up."""


class OnnxForward:
    """The ONNX model on onnxruntime's CPU provider, ``threads`` intra-op threads that sleep
    instead of spinning between runs (the cores are shared), without :data:`DISABLED_FUSIONS`."""

    def __init__(self, model: bytes, path: Path, threads: int) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self._session = onnxruntime.InferenceSession(
                model,
                options,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=list(DISABLED_FUSIONS),
            )
        except Exception as error:  # onnxruntime raises its own untyped errors
            raise EncoderLoadError(path, f"onnxruntime cannot load the model: {error}") from error

    def __call__(
        self, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64]
    ) -> FloatArray:
        (embeddings,) = self._session.run(
            [graph.OUTPUT], {graph.INPUT_IDS: input_ids, graph.ATTENTION_MASK: attention_mask}
        )
        result: FloatArray = embeddings
        return result
