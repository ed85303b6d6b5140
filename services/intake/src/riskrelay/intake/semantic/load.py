"""Start-up of semantic detection: the encoders, then the trained models checked against them."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from riskrelay.intake.encoder import EncoderSettings, load_encoder, load_static_encoder
from riskrelay.intake.semantic.config import DetectionSettings
from riskrelay.intake.semantic.detector import SemanticDetector
from riskrelay.intake.semantic.model import load_models


def bundled_models_path() -> Path:
    """The models trained on the shipped examples for the bundled encoder."""
    return Path(str(resources.files("riskrelay.intake.semantic") / "indicators.json"))


def load_semantic_detector(
    detection: DetectionSettings, encoder: EncoderSettings
) -> SemanticDetector | None:
    """The detector, or ``None`` when switched off. A missing, corrupt or mismatched file
    raises (:class:`~riskrelay.intake.encoder.EncoderLoadError`,
    :class:`~riskrelay.intake.semantic.model.ModelArtifactError`) naming the path and reason."""
    if not detection.semantic:
        return None
    full = load_encoder(encoder)
    fast = load_static_encoder(encoder)
    models = load_models(
        detection.models_path or bundled_models_path(),
        encoder_id=full.model_id,
        static_id=fast.model_id,
    )
    return SemanticDetector(
        models=models, full=full, fast=fast, nearest_count=detection.nearest_examples
    )
