"""Settings of learned indicator detection (kept free of heavy imports)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class DetectionSettings(BaseModel):
    """Learned indicator detection (the rules always run)."""

    semantic: bool = Field(
        default=True,
        description="Run the learned indicator models beside the rules (English text only).",
    )
    models_path: Path | None = Field(
        default=None,
        description=(
            "Indicator models written by `riskrelay train`; default: the bundled ones, trained"
            " for the bundled encoder."
        ),
    )
    nearest_examples: int = Field(
        default=3, ge=0, le=10, description="Labelled examples named in each explanation."
    )
