"""Intake's batch work in this process, exactly as the service runs it, and where its CPU goes.

    .venv/bin/python bench/intake_profile.py [--events 5000]

:func:`run_intake_batches` is what the intake consumer does with each Kafka batch, without the
broker and PostgreSQL: decode and assess every record (what intake refuses is skipped, as the
consumer dead-letters it), sort by event time, :func:`~riskrelay.intake.service.intake_step`
over a :class:`~riskrelay.intake.service.MemoryIntakeRepository` (the semantic cascade's stage
two included: it runs at the start of the step), then save. ``bench/services.py`` times it as
the "intake domain alone" rung.

:func:`profile_stages` runs the same batches again with CPU clocks (``time.process_time``, all
threads of this process) wrapped around the functions of each stage, patched for the run and
restored after; the service code itself carries no timers:

* redaction: ``Redactor.redact``;
* rules: ``detect_indicators``, ``strip_boilerplate``, ``largest_amount`` (as ``assess_ticket``
  calls them);
* stage one: ``SemanticDetector.screen`` (sentence split, denials, static table, fast
  classifiers), with the static table's ``encode`` inside it shown apart;
* stage two: ``SemanticDetector.detect`` (full encoder, full classifiers, nearest examples),
  with the full encoder's ``encode`` and its forward passes inside it shown apart;
* clustering: ``assign_to_cluster`` (as ``decide_ticket`` calls it) and ``prune_expired`` (as
  the step calls it);
* the rest: everything else of the batch (validation, normalization, vocabularies, the
  assessment model, rates, follow-ups, flags, ticket memories).

It also counts, per ticket, whether stage one sent it to the full encoder, so the share that
reaches stage two is reported overall and per part of the traffic mix (the generator's labels).
Standalone, figures are printed and written to ``bench/results/intake_profile.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from riskrelay.cli.sample_traffic import Label, generate_labelled
from riskrelay.intake import domain, service
from riskrelay.intake.domain import TicketAssessment, complete_assessments
from riskrelay.intake.encoder import SentenceEncoder
from riskrelay.intake.errors import IntakeRejection
from riskrelay.intake.redaction import Redactor
from riskrelay.intake.semantic.detector import Screening, SemanticDetector
from riskrelay.intake.service import (
    AssessedTicket,
    Intake,
    MemoryIntakeRepository,
    intake_step,
)
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.events import TicketEvent
from riskrelay.shared.settings import KafkaSettings

RESULTS = Path(__file__).parent / "results"
BATCH_RECORDS = KafkaSettings().batch_max_records
"""Records per batch: the most the service's consumer reads at once (a pre-filled topic fills
every batch)."""
TRAFFIC_START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
TRAFFIC_SEED = 7


def load_intake() -> Intake:
    """Intake as the service builds it at start-up, from its default settings."""
    return Intake.from_settings(IntakeSettings())


def bench_traffic(events: int) -> list[tuple[TicketEvent, Label]]:
    """The benchmarks' ticket stream (every rung reads these events)."""
    return generate_labelled(events, seed=TRAFFIC_SEED, start=TRAFFIC_START)


# ---------------------------------------------------------------------------------------------
# The service's batch work
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainRun:
    events: int
    seconds: float
    cpu_seconds: float
    flags: int
    rejected: int


def _assessed_batch(intake: Intake, raws: Sequence[bytes]) -> tuple[list[AssessedTicket], int]:
    """Decode and assess as the consumer's decoder does; refused records are skipped."""
    tickets: list[AssessedTicket] = []
    rejected = 0
    for raw in raws:
        try:
            event = TicketEvent.model_validate_json(raw)
            tickets.append(AssessedTicket(event, intake.assess(event)))
        except (ValueError, IntakeRejection):
            rejected += 1
    tickets.sort(key=lambda ticket: (ticket.event.time, ticket.event.id))
    return tickets, rejected


async def run_intake_batches(
    intake: Intake,
    raws: Sequence[bytes],
    repository: MemoryIntakeRepository | None = None,
    batch_records: int = BATCH_RECORDS,
) -> DomainRun:
    """Every batch of ``raws`` through intake's per-batch work (see the module docstring)."""
    repository = repository if repository is not None else MemoryIntakeRepository()
    flags = rejected = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(raws), batch_records):
        tickets, refused = _assessed_batch(intake, raws[start : start + batch_records])
        rejected += refused
        result = await intake_step(intake, repository, tickets)
        await repository.save(result.changes)
        flags += len(result.flags)
    return DomainRun(
        events=len(raws),
        seconds=time.perf_counter() - started,
        cpu_seconds=time.process_time() - cpu_started,
        flags=flags,
        rejected=rejected,
    )


async def warm_up(intake: Intake, raws: Sequence[bytes]) -> None:
    """One batch on a throwaway repository: first-call costs (onnxruntime's first run, lazy
    imports, regex caches) stay out of the figures, as the service rungs skip their first
    batch. The encoder then forgets the texts it saw, so a measured run starts cold."""
    await run_intake_batches(intake, raws[:BATCH_RECORDS], MemoryIntakeRepository())
    forget_embeddings(intake)


def forget_embeddings(intake: Intake) -> None:
    """Empty the full encoder's memo of recent texts (see ``EncoderSettings.memo_entries``)."""
    detector = intake.config.semantic
    if detector is not None and isinstance(detector.full, SentenceEncoder):
        detector.full.forget()


def memo_hits(intake: Intake) -> int:
    detector = intake.config.semantic
    if detector is not None and isinstance(detector.full, SentenceEncoder):
        return detector.full.memo_hits
    return 0


# ---------------------------------------------------------------------------------------------
# CPU by stage
# ---------------------------------------------------------------------------------------------

STAGES = ("redaction", "rules", "stage one", "stage two", "clustering")
INNER = {
    "static table encode": "stage one",
    "full encoder encode": "stage two",
    "full encoder forward": "stage two",
}
"""Parts shown inside a stage (already counted in it)."""


@dataclass
class StageClock:
    cpu_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: Counter[str] = field(default_factory=Counter)
    screened: dict[str, Screening] = field(default_factory=dict)
    """Upstream event id -> what stage one decided for the ticket."""
    full_texts: int = 0
    forward_rows: int = 0
    forward_tokens: int = 0
    """Word pieces the forward passes ran over, padding included."""
    _pending_ids: list[str] = field(default_factory=list)

    def timed(
        self,
        stage: str,
        function: Callable[..., Any],
        clock: Callable[[], float] = time.process_time,
    ) -> Callable[..., Any]:

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu_seconds[stage] += clock() - started
                self.calls[stage] += 1

        return wrapper


@contextlib.contextmanager
def _patched(target: object, name: str, replacement: object) -> Iterator[None]:
    original = getattr(target, name)
    own = name in vars(target)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        if own:
            setattr(target, name, original)
        else:  # an instance that read the method from its class
            delattr(target, name)


@contextlib.contextmanager
def stage_clocks(detector: SemanticDetector | None) -> Iterator[StageClock]:
    """Patch the clocks in (see the module docstring); restored on exit."""
    clock = StageClock()
    original_screen = SemanticDetector.screen
    original_detect = SemanticDetector.detect

    def complete(assessments: Sequence[TicketAssessment], *args: Any) -> Any:
        # The tickets complete_assessments hands to stage one, in its order.
        clock._pending_ids = [
            a.upstream_event_id for a in assessments if a._semantic_text is not None
        ]
        return complete_assessments(assessments, *args)

    def screen(self: SemanticDetector, texts: Sequence[Any]) -> list[Screening]:
        screenings = original_screen(self, texts)
        ids, clock._pending_ids = clock._pending_ids, []
        if len(ids) == len(screenings):
            clock.screened.update(zip(ids, screenings, strict=True))
        return screenings

    def detect(self: SemanticDetector, screenings: Sequence[Screening]) -> Any:
        return original_detect(self, screenings)

    # (where the caller looks the function up, its name, the stage it belongs to)
    timed: list[tuple[object, str, str]] = [
        (Redactor, "redact", "redaction"),
        (domain, "detect_indicators", "rules"),
        (domain, "strip_boilerplate", "rules"),
        (domain, "largest_amount", "rules"),
        (domain, "assign_to_cluster", "clustering"),
        (service, "prune_expired", "clustering"),
    ]
    patches: list[tuple[object, str, object]] = [
        (target, name, clock.timed(stage, vars(target)[name])) for target, name, stage in timed
    ]
    patches += [
        (service, "complete_assessments", complete),
        (SemanticDetector, "screen", clock.timed("stage one", screen)),
        (SemanticDetector, "detect", clock.timed("stage two", detect)),
    ]
    if detector is not None:
        full, fast = detector.full, detector.fast
        patches.append((fast, "encode", clock.timed("static table encode", fast.encode)))
        original_encode = full.encode

        def counted_encode(texts: Sequence[str]) -> Any:
            clock.full_texts += len(texts)
            return original_encode(texts)

        patches.append((full, "encode", clock.timed("full encoder encode", counted_encode)))
        forward = getattr(full, "_forward", None)
        if forward is not None:

            def counted_forward(input_ids: Any, attention_mask: Any) -> Any:
                clock.forward_rows += int(input_ids.shape[0])
                clock.forward_tokens += int(input_ids.size)
                return forward(input_ids, attention_mask)

            # Forward passes run concurrently (EncoderSettings.parallel_runs), each on the
            # thread that calls it: the process clock would count a concurrent pass twice.
            timed_forward = clock.timed(
                "full encoder forward", counted_forward, clock=time.thread_time
            )
            patches.append((full, "_forward", timed_forward))
    with contextlib.ExitStack() as stack:
        for target, name, replacement in patches:
            stack.enter_context(_patched(target, name, replacement))
        yield clock


def _mix_part(label: Label) -> str:
    if label.incident_id is not None:
        return "burst member (same incident, several customers)"
    kind = "risky" if label.risky else "harmless"
    return f"{kind} {'follow-up' if label.follow_up else 'new ticket'}"


async def profile_stages(
    intake: Intake, traffic: Sequence[tuple[TicketEvent, Label]]
) -> dict[str, Any]:
    """CPU per ticket by stage and the share reaching the full encoder, over ``traffic``."""
    raws = [event.to_json_bytes() for event, _ in traffic]
    forget_embeddings(intake)
    with stage_clocks(intake.config.semantic) as clock:
        run = await run_intake_batches(intake, raws)
    remembered = memo_hits(intake)
    tickets = run.events
    staged = sum(clock.cpu_seconds[stage] for stage in STAGES)
    rows = [
        {
            "stage": stage,
            "inside": INNER.get(stage),
            "cpu_us_per_ticket": clock.cpu_seconds[stage] / tickets * 1e6,
            "share_of_cpu": clock.cpu_seconds[stage] / run.cpu_seconds,
            "calls": clock.calls[stage],
        }
        for stage in (*STAGES, *INNER)
    ]
    rest = run.cpu_seconds - staged
    rows.append(
        {
            "stage": "the rest",
            "inside": None,
            "cpu_us_per_ticket": rest / tickets * 1e6,
            "share_of_cpu": rest / run.cpu_seconds,
            "calls": None,
        }
    )
    rows.append(
        {
            "stage": "total",
            "inside": None,
            "cpu_us_per_ticket": run.cpu_seconds / tickets * 1e6,
            "share_of_cpu": 1.0,
            "calls": None,
        }
    )
    labels = {event.id: label for event, label in traffic}
    parts: dict[str, Counter[str]] = {}
    for event_id, screening in clock.screened.items():
        counts = parts.setdefault(_mix_part(labels[event_id]), Counter())
        counts["tickets"] += 1
        counts["full"] += screening.needs_full
        counts["sentences"] += screening.sentences
        counts["candidate sentences"] += len(screening.candidates)
    reached = sum(s.needs_full for s in clock.screened.values())
    totals: Counter[str] = sum(parts.values(), Counter())
    return {
        "events": tickets,
        "batch_records": BATCH_RECORDS,
        "wall_seconds": run.seconds,
        "cpu_seconds": run.cpu_seconds,
        "flags": run.flags,
        "rejected": run.rejected,
        "load_average": os.getloadavg(),
        "stages": rows,
        "full_encoder": {
            "tickets_screened": len(clock.screened),
            "tickets_reaching_stage_two": reached,
            "share": reached / len(clock.screened) if clock.screened else None,
            "texts_encoded": clock.full_texts,
            "texts_remembered": remembered,
            "texts_per_ticket_reaching": clock.full_texts / reached if reached else None,
            "forward_rows": clock.forward_rows,
            "forward_word_pieces_with_padding": clock.forward_tokens,
            "cpu_us_per_text": (
                clock.cpu_seconds["full encoder encode"] / clock.full_texts * 1e6
                if clock.full_texts
                else None
            ),
            "sentences_screened": totals["sentences"],
            "candidate_sentences": totals["candidate sentences"],
            "by_traffic_mix": {
                part: {
                    "tickets": counts["tickets"],
                    "share_of_stream": counts["tickets"] / len(clock.screened),
                    "reaching_stage_two": counts["full"],
                    "share": counts["full"] / counts["tickets"],
                    "candidate_sentences": counts["candidate sentences"],
                }
                for part, counts in sorted(parts.items())
            },
        },
    }


def print_profile(profile: Mapping[str, Any], console: Console) -> None:
    load = "/".join(f"{x:.1f}" for x in profile["load_average"])
    table = Table(
        title=(
            f"intake CPU per ticket by stage ({profile['events']} tickets, batches of "
            f"{profile['batch_records']}; load average {load})"
        )
    )
    for column in ("stage", "CPU µs/ticket", "share of CPU", "calls"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for row in profile["stages"]:
        name = f"  of which {row['stage']}" if row["inside"] else row["stage"]
        table.add_row(
            name,
            f"{row['cpu_us_per_ticket']:,.0f}",
            f"{row['share_of_cpu']:.1%}",
            "-" if row["calls"] is None else f"{row['calls']:,}",
        )
    console.print(table)
    full = profile["full_encoder"]
    mix = Table(title="tickets reaching the full encoder (stage two)")
    for column in (
        "traffic",
        "tickets",
        "of stream",
        "reaching stage two",
        "share",
        "sentences to the full encoder",
    ):
        mix.add_column(column, justify="left" if column == "traffic" else "right")
    for part, row in full["by_traffic_mix"].items():
        mix.add_row(
            part,
            f"{row['tickets']:,}",
            f"{row['share_of_stream']:.1%}",
            f"{row['reaching_stage_two']:,}",
            f"{row['share']:.1%}",
            f"{row['candidate_sentences']:,}",
        )
    mix.add_row(
        "all tickets",
        f"{full['tickets_screened']:,}",
        "100%",
        f"{full['tickets_reaching_stage_two']:,}",
        f"{full['share']:.1%}" if full["share"] is not None else "-",
        f"{full['candidate_sentences']:,}",
    )
    console.print(mix)
    per_text = full["cpu_us_per_text"]
    console.print(
        f"full encoder: {full['texts_encoded']:,} texts "
        f"({full['texts_per_ticket_reaching'] or 0:.2f} per ticket reaching it: sentences, and"
        " the text of each problem report), "
        f"{full['candidate_sentences']:,} of {full['sentences_screened']:,} sentences "
        "above the screen's floor; "
        f"{full['texts_remembered']:,} remembered from earlier tickets (follow-ups resend"
        " their description; templates recur), "
        f"{full['forward_rows']:,} rows over {full['forward_word_pieces_with_padding']:,} "
        f"word pieces with padding; "
        + (f"{per_text:,.0f} µs CPU per text" if per_text else "no texts")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--output", type=Path, default=RESULTS / "intake_profile.json")
    args = parser.parse_args()
    console = Console(width=200)
    intake = load_intake()
    traffic = bench_traffic(args.events)
    asyncio.run(warm_up(intake, [event.to_json_bytes() for event, _ in traffic]))
    profile = asyncio.run(profile_stages(intake, traffic))
    print_profile(profile, console)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"measured_at": datetime.now(UTC).isoformat(), **profile}))
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
