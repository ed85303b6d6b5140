"""Cost and quality of intake's sentence encoders on CLINC150 requests.

    uv run python bench/encoder.py [--threads 1] [--messages 1000] [--numpy-messages 160]

Cost per message (ms, p50 and p99 over batches: a batch's time divided by its size) at batch
sizes 1, 8 and 32 for onnxruntime fp32, onnxruntime int8, the numpy reference and the static
token table, on the validation requests. Quality: the int8 model's cosine to fp32, and how well
the static table agrees with the full encoder over the training requests (mean cosine between
a text's static and full embeddings; how often the nearest neighbour is the same; how often the
full encoder's nearest neighbour is among the static table's ten nearest), plus every encoder's
1-nearest-neighbour intent accuracy (validation requests against the training requests). The
derived files are built in a temporary cache first, and their build times (wall and CPU)
reported.

Figures are printed and written to ``bench/results/encoder.json``. The data set is read from
``../shared/datasets/clinc150`` beside the repository (``--dataset`` to change).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from riskrelay.intake.encoder import (
    EncoderSettings,
    TextEncoder,
    load_encoder,
    load_static_encoder,
)

console = Console(stderr=True)
RESULTS = Path(__file__).parent / "results"
DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "clinc150"
BATCH_SIZES = (1, 8, 32)


def read_split(dataset: Path, split: str) -> tuple[list[str], list[str]]:
    path = dataset / f"{split}.jsonl"
    if not path.exists():
        sys.exit(f"{path}: not found (pass --dataset DIR holding CLINC150's {split}.jsonl)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row["text"] for row in rows], [row["intent"] for row in rows]


def timed(action: Callable[[], object]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return {
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
    }


def cost_per_message(
    encoder: TextEncoder, texts: Sequence[str], batch_size: int
) -> dict[str, float]:
    encoder.encode(list(texts[:batch_size]))  # warm-up
    per_message, cpu = [], 0.0
    for start in range(0, len(texts) - batch_size + 1, batch_size):
        batch = list(texts[start : start + batch_size])
        started, cpu_started = time.perf_counter(), time.process_time()
        encoder.encode(batch)
        per_message.append((time.perf_counter() - started) / batch_size)
        cpu += time.process_time() - cpu_started
    costs = np.array(per_message) * 1000
    return {
        "messages": len(per_message) * batch_size,
        "p50_ms": round(float(np.percentile(costs, 50)), 4),
        "p99_ms": round(float(np.percentile(costs, 99)), 4),
        "mean_ms": round(float(costs.mean()), 4),
        # CPU time is what other work on shared cores does not stretch.
        "cpu_mean_ms": round(cpu / (len(per_message) * batch_size) * 1000, 4),
        "messages_per_s": round(1000 / float(costs.mean()), 1),
    }


def nearest_neighbours(
    queries: np.ndarray, index: np.ndarray, k: int, *, exclude_self: bool
) -> np.ndarray:
    """The k nearest rows of ``index`` for each query (dot product of unit rows), in chunks."""
    found = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 1024):
        scores = queries[start : start + 1024] @ index.T
        if exclude_self:
            rows = np.arange(scores.shape[0])
            scores[rows, rows + start] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        found[start : start + 1024] = np.take_along_axis(top, order, axis=1)
    return found


def agreement(rough: np.ndarray, full: np.ndarray) -> dict[str, float]:
    """How well ``rough`` embeddings (same texts) stand in for ``full`` ones."""
    cosine = (rough * full).sum(axis=1)
    full_nearest = nearest_neighbours(full, full, 1, exclude_self=True)[:, 0]
    rough_top10 = nearest_neighbours(rough, rough, 10, exclude_self=True)
    return {
        "texts": len(full),
        "mean_cosine": round(float(cosine.mean()), 4),
        "p10_cosine": round(float(np.percentile(cosine, 10)), 4),
        "min_cosine": round(float(cosine.min()), 4),
        "same_nearest_neighbour": round(float((rough_top10[:, 0] == full_nearest).mean()), 4),
        "full_nearest_in_rough_top10": round(
            float((rough_top10 == full_nearest[:, None]).any(axis=1).mean()), 4
        ),
    }


def intent_accuracy(
    validation: np.ndarray,
    train: np.ndarray,
    validation_intents: list[str],
    train_intents: list[str],
) -> float:
    nearest = nearest_neighbours(validation, train, 1, exclude_self=False)[:, 0]
    hits = [
        train_intents[j] == intent for j, intent in zip(nearest, validation_intents, strict=True)
    ]
    return round(float(np.mean(hits)), 4)


def run(args: argparse.Namespace) -> dict[str, Any]:
    validation_texts, validation_intents = read_split(args.dataset, "validation")
    train_texts, train_intents = read_split(args.dataset, "train")
    with tempfile.TemporaryDirectory(prefix="riskrelay-bench-encoder-") as cache:
        # No memo: a text met again must cost its forward pass, not a lookup.
        settings = EncoderSettings(
            cache_dir=Path(cache), threads=args.threads, quantized=False, memo_entries=0
        )
        int8_settings = settings.model_copy(update={"quantized": True})
        with console.status("building the derived files…"):
            builds = {
                "onnx_fp32": timed(lambda: load_encoder(settings)),
                "onnx_int8": timed(lambda: load_encoder(int8_settings)),
                "static_table": timed(lambda: load_static_encoder(settings)),
            }
        encoders: dict[str, TextEncoder] = {
            "onnx_fp32": load_encoder(settings),
            "onnx_int8": load_encoder(int8_settings),
            "numpy": load_encoder(settings.model_copy(update={"runtime": "numpy"})),
            "static": load_static_encoder(settings),
        }
        model_ids = {name: encoder.model_id for name, encoder in encoders.items()}
        costs: dict[str, dict[str, dict[str, float]]] = {}
        for name, encoder in encoders.items():
            limit = {"numpy": args.numpy_messages, "static": len(validation_texts)}.get(
                name, args.messages
            )
            for batch_size in BATCH_SIZES:
                with console.status(f"{name}, batch {batch_size}…"):
                    costs.setdefault(name, {})[str(batch_size)] = cost_per_message(
                        encoder, validation_texts[:limit], batch_size
                    )
        embeddings: dict[str, dict[str, np.ndarray]] = {}
        for name in ("onnx_fp32", "onnx_int8", "static"):
            with console.status(f"{name}: embedding {len(train_texts):,} training requests…"):
                embeddings[name] = {
                    "train": encoders[name].encode(train_texts),
                    "validation": encoders[name].encode(validation_texts),
                }
    full_train = embeddings["onnx_fp32"]["train"]
    with console.status("comparing…"):
        quality = {
            "int8_vs_fp32_train": agreement(embeddings["onnx_int8"]["train"], full_train),
            "static_vs_fp32_train": agreement(embeddings["static"]["train"], full_train),
            "static_vs_fp32_validation": agreement(
                embeddings["static"]["validation"], embeddings["onnx_fp32"]["validation"]
            ),
            "intent_1nn_accuracy_validation_vs_train": {
                name: intent_accuracy(
                    vectors["validation"], vectors["train"], validation_intents, train_intents
                )
                for name, vectors in embeddings.items()
            },
        }
    return {
        "benchmark": "encoder",
        "dataset": "CLINC150 (validation for cost, train and validation for quality)",
        "threads": args.threads,
        "model_ids": model_ids,
        "build": builds,
        "cost_per_message": costs,
        "quality": quality,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m": round(_load_average(), 2),
        },
    }


def _load_average() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def show(result: dict[str, Any]) -> None:
    table = Table(title=f"encoder cost per message, ms ({result['threads']} thread(s))")
    table.add_column("encoder")
    for batch_size in BATCH_SIZES:
        table.add_column(f"batch {batch_size} p50", justify="right")
        table.add_column(f"batch {batch_size} p99", justify="right")
    for name, by_batch in result["cost_per_message"].items():
        cells = []
        for batch_size in BATCH_SIZES:
            figures = by_batch[str(batch_size)]
            cells += [f"{figures['p50_ms']:.3f}", f"{figures['p99_ms']:.3f}"]
        table.add_row(name, *cells)
    console.print(table)
    console.print_json(json.dumps({"build": result["build"], "quality": result["quality"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime / BLAS threads")
    parser.add_argument(
        "--messages", type=int, default=1024, help="validation requests timed per ONNX model"
    )
    parser.add_argument(
        "--numpy-messages", type=int, default=160, help="validation requests timed for numpy"
    )
    args = parser.parse_args()
    result = run(args)
    show(result)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "encoder.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["cost_per_message"]))


if __name__ == "__main__":
    main()
