"""``python -m riskrelay.intake.encoder build``: build (or verify) the derived model files of the
configured encoder (``RISKRELAY_INTAKE_ENCODER__*``): the fp32 and int8 ONNX models and the
static token table, so a service starts without building them (``make setup`` runs it)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from riskrelay.intake.encoder.errors import EncoderLoadError
from riskrelay.intake.encoder.load import load_encoder, load_static_encoder
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m riskrelay.intake.encoder")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build missing or stale derived model files")
    build.add_argument(
        "--threads",
        type=int,
        default=None,
        help="onnxruntime threads while building (default: the encoder's threads setting)",
    )
    arguments = parser.parse_args(argv)
    settings = load_settings(IntakeSettings).encoder
    if arguments.threads:
        settings = settings.model_copy(update={"threads": arguments.threads})
    onnx = settings.model_copy(update={"runtime": "onnx"})
    steps: list[tuple[str, Callable[[], object]]] = [
        ("onnx fp32", lambda: load_encoder(onnx.model_copy(update={"quantized": False}))),
        ("onnx int8", lambda: load_encoder(onnx.model_copy(update={"quantized": True}))),
        ("static table", lambda: load_static_encoder(settings)),
    ]
    for name, step in steps:
        started = time.perf_counter()
        try:
            step()
        except EncoderLoadError as error:
            print(f"encoder {name}: {error}", file=sys.stderr)
            return 1
        print(
            f"encoder {name}: ready in {settings.cache_dir} ({time.perf_counter() - started:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
