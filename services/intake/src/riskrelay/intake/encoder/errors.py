"""The one error of the encoder's loading path."""

from __future__ import annotations

from pathlib import Path


class EncoderLoadError(RuntimeError):
    """A model file (weights, tokenizer, configuration, cached ONNX model or static table) is
    missing, unreadable or not what the encoder expects; names the file and the reason, so
    start-up stops with something an operator can act on."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason
