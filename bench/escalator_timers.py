"""Timer lag of the escalator's durable timer loop, with a million timers pending.

    uv run python bench/escalator_timers.py [--pending 1000000] [--rate 1000] [--duration 20]
                                            [--burst 100000] [--batch-size 1000] [--workers 4]

What runs is the service's own code (:class:`riskrelay.escalator.timers.TimerLoop`: claim with
``FOR UPDATE SKIP LOCKED``, fence, outbox, publish, mark) against the real broker and
PostgreSQL; only the rows are loaded directly (``COPY``) instead of through plans. Two scenarios
share one table of ``--pending`` timers (the rest are due a month later and only sit in the
index):

* **rate**: ``rate x duration`` timers fall due evenly at ``--rate`` per second. Lag is the time
  from a timer's due instant to the broker's acknowledgement of its ``escalation-due`` event
  (fire lag, due to commit, is reported too). Goal: p99 under 100 ms at 1,000/s.
* **burst**: ``--burst`` timers fall due at the same instant. Reported: the time until the last
  one's event is acknowledged by the broker. Goal: 100,000 within 10 s.

Results are printed as a table and written as JSON to ``bench/results/escalator_timers.json``.
Uses ``RISKRELAY_TEST_KAFKA`` / ``RISKRELAY_TEST_DATABASE_URL`` when set, else starts the
embedded broker and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table

from riskrelay.devstack import broker_and_database
from riskrelay.escalator.domain import due_event_id
from riskrelay.escalator.metrics import EscalatorMetrics
from riskrelay.escalator.roster import Roster
from riskrelay.escalator.timers import FiredTimer, TimerLoop
from riskrelay.shared.kafka import EventProducer
from riskrelay.shared.migrations import migrate
from riskrelay.shared.outbox import Outbox
from riskrelay.shared.settings import KafkaSettings
from riskrelay.shared.topics import ESCALATION_DUE, ensure_topics, topic_name

console = Console(stderr=True)
RESULTS = Path(__file__).parent / "results"
TIMERS_PER_STEP = 10
COPY_CHUNK = 50_000
GOAL_P99_MS = 100.0
GOAL_BURST_S = 10.0


@contextlib.contextmanager
def infrastructure() -> Iterator[tuple[str, str, str]]:
    backend = "environment" if os.environ.get("RISKRELAY_TEST_KAFKA") else "embedded"
    with broker_and_database() as (kafka, database):
        yield kafka, database, backend


@dataclass
class Collector:
    """Receives every timer whose event the broker acknowledged."""

    fired: list[FiredTimer] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, batch: Sequence[FiredTimer]) -> None:
        self.fired.extend(batch)
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.fired) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), min(remaining, 1.0))
        return True


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def lag_summary(lags_ms: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(lags_ms, 0.50), 2),
        "p99_ms": round(percentile(lags_ms, 0.99), 2),
        "max_ms": round(max(lags_ms), 2),
        "mean_ms": round(statistics.fmean(lags_ms), 2),
    }


async def load(pool: asyncpg.Pool, schema: str, pending: int, far: datetime) -> float:
    """COPY ``pending`` timers (all due at ``far``) with the plans and steps they fence on."""
    started = time.perf_counter()
    steps = -(-pending // TIMERS_PER_STEP)
    plan = json.dumps({"bench": True})
    async with pool.acquire() as connection:
        for first in range(0, steps, COPY_CHUNK):
            rows = range(first, min(steps, first + COPY_CHUNK))
            await connection.copy_records_to_table(
                "escalations",
                schema_name=schema,
                columns=[
                    "risk_id",
                    "plan_version",
                    "level",
                    "state",
                    "plan",
                    "title",
                    "flagged_at",
                ],
                records=[(f"r{n}", 1, 5, "active", plan, f"Bench risk {n}", far) for n in rows],
            )
            await connection.copy_records_to_table(
                "escalation_steps",
                schema_name=schema,
                columns=[
                    "escalation_id",
                    "risk_id",
                    "plan_version",
                    "step",
                    "level",
                    "role",
                    "kind",
                    "notify_at",
                    "ack_due_at",
                    "status",
                ],
                records=[
                    (f"e{n}", f"r{n}", 1, 0, 5, "team_lead", "acknowledge", far, far, "open")
                    for n in rows
                ],
            )
        for first in range(0, pending, COPY_CHUNK):
            await connection.copy_records_to_table(
                "timers",
                schema_name=schema,
                columns=[
                    "timer_key",
                    "escalation_id",
                    "risk_id",
                    "plan_version",
                    "level",
                    "step",
                    "role",
                    "step_role",
                    "reason",
                    "attempt",
                    "due_at",
                    "ack_due_at",
                    "timeframe_due_at",
                    "event_id",
                ],
                records=[
                    (
                        f"t{n}",
                        f"e{n // TIMERS_PER_STEP}",
                        f"r{n // TIMERS_PER_STEP}",
                        1,
                        5,
                        0,
                        "team_lead",
                        "team_lead",
                        "reminder",
                        2,
                        far + timedelta(microseconds=n),
                        far,
                        far,
                        due_event_id(f"t{n}", 1),
                    )
                    for n in range(first, min(pending, first + COPY_CHUNK))
                ],
            )
            console.print(f"  loaded {min(pending, first + COPY_CHUNK):,} timers", end="\r")
        console.print()
        await connection.execute("VACUUM ANALYZE timers")
        await connection.execute("VACUUM ANALYZE escalations")
        await connection.execute("VACUUM ANALYZE escalation_steps")
    return time.perf_counter() - started


async def create_topic(bootstrap: str, prefix: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await ensure_topics(admin, [ESCALATION_DUE], prefix, 1)
    finally:
        await admin.close()
    return topic_name(ESCALATION_DUE, prefix)


async def claim_plan(pool: asyncpg.Pool) -> list[str]:
    from riskrelay.escalator.timers import _CLAIM

    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            "EXPLAIN " + _CLAIM.replace("$1", "now()").replace("$2", "500")
        )
    return [row[0] for row in rows]


async def run(args: argparse.Namespace, bootstrap: str, dsn: str, backend: str) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    rate_count = int(args.rate * args.duration)
    if rate_count + args.burst > args.pending:
        raise SystemExit("--pending must cover rate x duration + burst timers")
    await migrate(dsn, schema, "riskrelay.escalator")
    topic = await create_topic(bootstrap, prefix)
    pool = await asyncpg.create_pool(
        dsn,
        min_size=2,
        max_size=args.workers + 4,
        server_settings={"search_path": f'"{schema}",public'},
    )
    producer = EventProducer(KafkaSettings(bootstrap=bootstrap), client_id="bench-escalator")
    await producer.start()
    collector = Collector()
    outbox = Outbox(producer)
    loop = TimerLoop(
        pool,
        producer,
        outbox,
        topic=topic,
        roster=Roster(),
        metrics=EscalatorMetrics(CollectorRegistry()),
        clock=lambda: datetime.now(UTC),
        batch_size=args.batch_size,
        workers=args.workers,
        idle_interval=args.idle_ms / 1000,
        on_published=collector,
    )
    far = datetime.now(UTC) + timedelta(days=30)
    result: dict[str, Any] = {}
    task: asyncio.Task[None] | None = None
    marker: asyncio.Task[None] | None = None
    try:
        console.print(f"loading {args.pending:,} pending timers with COPY…")
        load_seconds = await load(pool, schema, args.pending, far)
        result["load_seconds"] = round(load_seconds, 1)
        result["claim_plan"] = await claim_plan(pool)
        first_id: int = await pool.fetchval("SELECT min(id) FROM timers")
        task = asyncio.create_task(loop.run())
        marker = asyncio.create_task(outbox.run_marker(pool))
        if rate_count:
            result["rate"] = await rate_scenario(args, pool, collector, first_id, rate_count)
        if args.burst:
            result["burst"] = await burst_scenario(
                args, pool, collector, first_id + rate_count, args.burst
            )
        result["pending_left"] = await pool.fetchval(
            "SELECT count(*) FROM timers WHERE state = 'pending'"
        )
    finally:
        for running in (task, marker):
            if running is not None:
                running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
        await producer.stop()
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()
    return {
        "benchmark": "escalator_timers",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "backend": backend,
        "settings": {
            "pending": args.pending,
            "rate_per_s": args.rate,
            "duration_s": args.duration,
            "burst": args.burst,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "idle_ms": args.idle_ms,
        },
        "goals": {"rate_p99_ms": GOAL_P99_MS, "burst_s": GOAL_BURST_S},
        **result,
    }


async def rate_scenario(
    args: argparse.Namespace,
    pool: asyncpg.Pool,
    collector: Collector,
    first_id: int,
    count: int,
) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(seconds=2)
    await pool.execute(
        "UPDATE timers SET due_at = $1::timestamptz + (id - $2) * $3::interval"
        " WHERE id >= $2 AND id < $2 + $4",
        start,
        first_id,
        timedelta(seconds=1 / args.rate),
        count,
    )
    console.print(f"rate: {count:,} timers due at {args.rate:,}/s for {args.duration} s…")
    complete = await collector.wait_for(count, args.duration + 60)
    fired = collector.fired[:count]
    lags = [(f.published_at - f.due_at).total_seconds() * 1000 for f in fired]
    fire_lags = [(f.fired_at - f.due_at).total_seconds() * 1000 for f in fired]
    summary = lag_summary(lags)
    return {
        "timers": count,
        "emitted": len(fired),
        "complete": complete,
        "lag_due_to_broker_ack": summary,
        "lag_due_to_commit": lag_summary(fire_lags),
        "goal_met": complete and summary["p99_ms"] < GOAL_P99_MS,
    }


async def burst_scenario(
    args: argparse.Namespace,
    pool: asyncpg.Pool,
    collector: Collector,
    first_id: int,
    count: int,
) -> dict[str, Any]:
    already = len(collector.fired)
    due = datetime.now(UTC) + timedelta(seconds=5)
    updated = time.perf_counter()
    await pool.execute(
        "UPDATE timers SET due_at = $1 WHERE id >= $2 AND id < $2 + $3", due, first_id, count
    )
    updated = time.perf_counter() - updated
    if datetime.now(UTC) >= due:
        console.print("[yellow]burst: preparing took longer than the lead time[/]")
    console.print(f"burst: {count:,} timers due at the same instant…")
    complete = await collector.wait_for(already + count, 120)
    fired = collector.fired[already : already + count]
    last = max(f.published_at for f in fired)
    first = min(f.published_at for f in fired)
    seconds = (last - due).total_seconds()
    return {
        "timers": count,
        "emitted": len(fired),
        "complete": complete,
        "first_acked_after_s": round((first - due).total_seconds(), 3),
        "all_acked_after_s": round(seconds, 3),
        "throughput_per_s": round(len(fired) / max(seconds, 1e-9)),
        "prepare_update_s": round(updated, 2),
        "goal_met": complete and seconds < GOAL_BURST_S,
    }


def report(result: dict[str, Any]) -> None:
    table = Table(title=f"escalator timers, {result['settings']['pending']:,} pending")
    for column in ("scenario", "figure", "value", "goal"):
        table.add_column(column)
    if "rate" in result:
        rate = result["rate"]
        lag = rate["lag_due_to_broker_ack"]
        goal = f"p99 < {GOAL_P99_MS:.0f} ms: {'met' if rate['goal_met'] else 'MISSED'}"
        name = f"{result['settings']['rate_per_s']:,}/s"
        table.add_row(name, "timers emitted", f"{rate['emitted']:,}/{rate['timers']:,}", "")
        for key in ("p50_ms", "p99_ms", "max_ms"):
            table.add_row(name, f"lag due->ack {key[:-3]}", f"{lag[key]:.1f} ms", goal)
        commit = rate["lag_due_to_commit"]
        table.add_row(name, "lag due->commit p99", f"{commit['p99_ms']:.1f} ms", "")
    if "burst" in result:
        burst = result["burst"]
        goal = f"< {GOAL_BURST_S:.0f} s: {'met' if burst['goal_met'] else 'MISSED'}"
        name = f"burst {burst['timers']:,}"
        table.add_row(name, "all acked after", f"{burst['all_acked_after_s']:.2f} s", goal)
        table.add_row(name, "throughput", f"{burst['throughput_per_s']:,}/s", "")
    table.add_row("setup", "COPY + VACUUM", f"{result['load_seconds']:.1f} s", "")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, default=1_000_000, help="timers in the table")
    parser.add_argument("--rate", type=float, default=1_000, help="timers due per second")
    parser.add_argument("--duration", type=float, default=20, help="seconds of the rate scenario")
    parser.add_argument("--burst", type=int, default=100_000, help="timers due at one instant")
    parser.add_argument("--batch-size", type=int, default=1000, help="timers claimed at once")
    parser.add_argument("--workers", type=int, default=4, help="claim loops")
    parser.add_argument("--idle-ms", type=int, default=50, help="longest idle sleep")
    parser.add_argument(
        "--output", type=Path, default=RESULTS / "escalator_timers.json", help="JSON results"
    )
    args = parser.parse_args()
    with infrastructure() as (bootstrap, dsn, backend):
        result = asyncio.run(run(args, bootstrap, dsn, backend))
    report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
