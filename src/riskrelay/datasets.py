"""Where the committed datasets are (see datasets/README.md for their origin and licence)."""

from __future__ import annotations

from pathlib import Path

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
CLINC_TRAIN = DATASETS / "clinc150" / "train.jsonl"
CLINC_VALIDATION = DATASETS / "clinc150" / "validation.jsonl"
