"""`riskrelay train`: fit intake's indicator models from the labelled examples."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from riskrelay.datasets import CLINC_TRAIN


def train_command(
    examples: Annotated[
        list[Path] | None,
        typer.Option(
            "--examples",
            help="More example files (YAML, the shape of the shipped ones), after the shipped ones.",
        ),
    ] = None,
    clinc: Annotated[
        Path, typer.Option(help="CLINC150 training split (JSONL of text and intent).")
    ] = CLINC_TRAIN,
    output: Annotated[
        Path | None,
        typer.Option(help="Where to write the models; default: the bundled models file."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the folds and the solver (default: fixed).")
    ] = None,
) -> None:
    """Fit the learned indicator models (deterministic for the same inputs and seed)."""
    # Imported here so that other `riskrelay` commands do not pay for scikit-learn and the encoder.
    from riskrelay.intake.encoder import EncoderLoadError
    from riskrelay.training import TrainingConfig, train_to_file

    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        path, models = train_to_file(
            extra_examples=examples or [],
            clinc=clinc,
            output=output,
            config=TrainingConfig() if seed is None else TrainingConfig(seed=seed),
            progress=progress,
        )
    except (OSError, ValueError, EncoderLoadError) as error:
        print(f"riskrelay train: {error}", file=sys.stderr)
        raise typer.Exit(2) from error
    print(f"wrote {path} ({models.version}, encoder {models.encoder_id})")
    screen = models.metrics["screen"]
    print(
        f"  {'screen':<20} positives {screen['positives']:>4}  floor {screen['floor']:.3f}"
        f"  out-of-fold: risky or problem sentences passed {screen['oof_positives_passed']:.3f},"
        f" harmless sentences to the full encoder {screen['oof_harmless_passed']:.3f}"
    )
    for indicator, figures in models.metrics.items():
        if indicator == "screen":
            continue
        print(
            f"  {indicator:<20} positives {figures['positives']:>4}  threshold"
            f" {figures['threshold']:.3f}  out-of-fold recall {figures['oof_recall']:.3f}"
            f" ({figures['oof_recall_after_cascade']:.3f} after the screen)"
            f"  false flags {figures['oof_false_flags_harmless']:.4f}"
        )
