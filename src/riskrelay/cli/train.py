"""`riskrelay train`: fit intake's indicator models from the labelled examples.

``--with-feedback`` first exports people's feedback from intake's database (its ``risk_feedback``
table) into example files of the trainer's format (:mod:`riskrelay.intake.feedback` says which
feedback teaches what) and trains on them after the shipped files and any ``--examples``.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from riskrelay.datasets import CLINC_TRAIN

if TYPE_CHECKING:
    from riskrelay.intake.feedback import StoredFeedback

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:15432/riskrelay"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class FeedbackExport:
    files: list[Path]
    feedback: int
    examples: int


async def read_feedback(dsn: str, schema: str) -> list[StoredFeedback]:
    """Every feedback intake stored, from its database."""
    # Imported here: the database driver only for this option.
    import asyncpg

    from riskrelay.intake.feedback_store import load_feedback

    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"not a schema name: {schema!r}")
    connection = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
    try:
        return await load_feedback(connection)
    finally:
        await connection.close()


def write_feedback_files(stored: list[StoredFeedback], folder: Path) -> FeedbackExport:
    """The feedback's labelled examples as example files in ``folder`` (files of an earlier
    export there are replaced, so a file no feedback supports any more is gone)."""
    from riskrelay.intake.feedback import example_files, feedback_examples

    examples = feedback_examples(stored)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("feedback-*.yaml"):
        old.unlink()
    written = []
    for name, text in example_files(examples).items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return FeedbackExport(written, len(stored), len(examples))


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
    with_feedback: Annotated[
        bool,
        typer.Option(
            "--with-feedback",
            help="Also train on people's feedback stored by intake (not a risk, missed risk).",
        ),
    ] = False,
    feedback_dsn: Annotated[
        str,
        typer.Option(
            envvar="RISKRELAY_INTAKE_DATABASE__URL", help="Intake's PostgreSQL (libpq URL)."
        ),
    ] = DEFAULT_DSN,
    feedback_schema: Annotated[
        str,
        typer.Option(
            envvar="RISKRELAY_INTAKE_DATABASE__SCHEMA_NAME", help="Intake's schema in it."
        ),
    ] = "intake",
    feedback_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the feedback's example files (default: a temporary folder)."
        ),
    ] = None,
    export_only: Annotated[
        bool,
        typer.Option(
            "--export-only", help="With --with-feedback: write the example files, do not train."
        ),
    ] = False,
) -> None:
    """Fit the learned indicator models (deterministic for the same inputs and seed)."""
    extra = list(examples or [])
    if export_only and not with_feedback:
        print("riskrelay train: --export-only needs --with-feedback", file=sys.stderr)
        raise typer.Exit(2)
    if with_feedback:
        folder = feedback_dir or Path(tempfile.mkdtemp(prefix="riskrelay-feedback-"))
        try:
            stored = asyncio.run(read_feedback(feedback_dsn, feedback_schema))
            export = write_feedback_files(stored, folder)
        except (OSError, ValueError) as error:
            print(f"riskrelay train: feedback export failed: {error}", file=sys.stderr)
            raise typer.Exit(2) from error
        except Exception as error:  # asyncpg's errors share no base class with OSError
            print(
                f"riskrelay train: intake's feedback could not be read: {type(error).__name__}:"
                f" {error}",
                file=sys.stderr,
            )
            raise typer.Exit(2) from error
        print(
            f"{export.feedback} feedback -> {export.examples} labelled examples in {folder}"
            + "".join(f"\n  {path.name}" for path in export.files)
        )
        extra += export.files
        if export_only:
            return
    # Imported here so that other `riskrelay` commands do not pay for scikit-learn and the encoder.
    from riskrelay.intake.encoder import EncoderLoadError
    from riskrelay.intake.settings import IntakeSettings
    from riskrelay.training import TrainingConfig, train_to_file

    started = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    try:
        path, models = train_to_file(
            extra_examples=extra,
            clinc=clinc,
            output=output,
            config=TrainingConfig() if seed is None else TrainingConfig(seed=seed),
            # The encoder intake runs with (RISKRELAY_INTAKE_ENCODER__*), so the models fit it.
            encoder=IntakeSettings().encoder,
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
