"""The throughput ladder: raw aiokafka loops and each riskrelay service, measured in one run.

    uv run python bench/services.py [--events 20000] [--rungs raw,intake,classifier]

Every rung reads the same kind of records from a pre-filled topic, so the figures compare:

* ``raw produce`` / ``raw consume``: aiokafka alone (linger 5 ms; ``getmany``);
* ``raw hop``: consume, ``TicketEvent.model_validate_json``, produce, flush and commit per batch:
  the ceiling for any service that consumes, validates and produces;
* ``intake``, ``classifier``: the real service as a separate process (``python -m
  riskrelay.<service>``) on the embedded broker and PostgreSQL, its input pre-filled; throughput
  is read from its own ``riskrelay_consumed_records_total`` between the first consumed batch and
  the last (steady state: the consumer group's first join is not counted). CPU time per event and
  peak memory (VmHWM) are read from ``/proc`` for the service process.

Results are printed as a table and written as JSON to ``bench/results/services.json``.
Uses ``RISKRELAY_TEST_KAFKA`` / ``RISKRELAY_TEST_DATABASE_URL`` when set, else starts the
embedded pair.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from riskrelay.cli.sample_traffic import generate
from riskrelay.devstack import broker_and_database, free_port, wait_for_port
from riskrelay.shared.events import TicketEvent
from riskrelay.shared.topics import ALL_TOPICS, ensure_topics
from riskrelay.testing import read_topic

console = Console(stderr=True)
RESULTS = Path(__file__).parent / "results"
CONSUMED = re.compile(r'^riskrelay_consumed_records_total\{topic="([^"]+)"\} ([0-9.e+]+)$', re.M)


@dataclass
class Rung:
    name: str
    events: int
    seconds: float
    per_second: float
    cpu_us_per_event: float | None = None
    peak_memory_mib: float | None = None
    note: str = ""


# ---------------------------------------------------------------------------------------------
# Infrastructure
# ---------------------------------------------------------------------------------------------


def infrastructure() -> contextlib.AbstractContextManager[tuple[str, str]]:
    return broker_and_database()


async def create_topics(bootstrap: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await ensure_topics(admin, ALL_TOPICS, prefix, 1)
    finally:
        await admin.close()


async def fill(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value=v, key=k) for k, v in records]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


# ---------------------------------------------------------------------------------------------
# Raw rungs
# ---------------------------------------------------------------------------------------------


async def raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-consume-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batches.values():
                if started is None:
                    started = time.perf_counter()
                seen += len(records)
        assert started is not None
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def raw_hop(bootstrap: str, topic: str, out_topic: str, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-raw-hop-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await consumer.start()
    await producer.start()
    try:
        seen = 0
        started: float | None = None
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            futures = []
            for records in batches.values():
                if started is None:
                    started = time.perf_counter()
                for record in records:
                    event = TicketEvent.model_validate_json(record.value or b"")
                    futures.append(
                        await producer.send(out_topic, value=event.to_json_bytes(), key=record.key)
                    )
                seen += len(records)
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
        assert started is not None
        return time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()


# ---------------------------------------------------------------------------------------------
# Service rungs
# ---------------------------------------------------------------------------------------------


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _proc_peak_mib(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


@contextlib.contextmanager
def service_process(
    name: str, bootstrap: str, database: str, prefix: str, log_dir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env_prefix = f"RISKRELAY_{name.upper()}_"
    env = {
        **os.environ,
        f"{env_prefix}KAFKA__BOOTSTRAP": bootstrap,
        f"{env_prefix}KAFKA__TOPIC_PREFIX": prefix,
        f"{env_prefix}DATABASE__URL": database,
        f"{env_prefix}DATABASE__SCHEMA_NAME": f"{prefix.strip('.').replace('-', '_')}_{name}",
        f"{env_prefix}HTTP__PORT": str(port),
        f"{env_prefix}LOG_LEVEL": "WARNING",
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"riskrelay.{name}"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port("127.0.0.1", port, 60, process)
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def measure_instances(
    name: str,
    instances: int,
    bootstrap: str,
    database: str,
    prefix: str,
    input_topic: str,
    records: list[tuple[bytes, bytes]],
    settle: float = 15.0,
) -> Rung:
    """``instances`` processes of one service in one consumer group (scale-out by partitions).

    The input is published only after the group has settled, so every instance takes part."""
    expected = len(records)
    with contextlib.ExitStack() as stack:
        ports = [
            stack.enter_context(
                service_process(name, bootstrap, database, prefix, RESULTS / "logs")
            )[1]
            for _ in range(instances)
        ]
        time.sleep(settle)
        filler = threading.Thread(target=lambda: asyncio.run(fill(bootstrap, input_topic, records)))
        filler.start()
        deadline = time.monotonic() + 180 + expected / 200
        started = None
        first = count = 0.0
        while count < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} x{instances}: consumed {count:.0f} of {expected}")
            count = sum(consumed(port, input_topic) for port in ports)
            if started is None and count > 0:
                started, first = time.perf_counter(), count
            time.sleep(0.02)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        filler.join()
        return Rung(
            name=f"{name} x{instances} instances (one group)",
            events=int(expected - first),
            seconds=elapsed,
            per_second=(expected - first) / elapsed,
            note=f"first batch of {first:.0f} not timed",
        )


def consumed(port: int, topic: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(value) for name, value in CONSUMED.findall(text) if name == topic)


def measure_service(
    name: str, bootstrap: str, database: str, prefix: str, input_topic: str, expected: int
) -> Rung:
    with service_process(name, bootstrap, database, prefix, RESULTS / "logs") as (process, port):
        deadline = time.monotonic() + 120 + expected / 200
        first_count = 0.0
        started = cpu_started = None
        count = 0.0
        while count < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{name}: consumed {count:.0f} of {expected} before the deadline"
                )
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; see bench/results/logs"
                )
            count = consumed(port, input_topic)
            if started is None and count > 0:
                started, first_count = time.perf_counter(), count
                cpu_started = _proc_cpu_seconds(process.pid)
            time.sleep(0.02)
        elapsed = time.perf_counter() - (started or time.perf_counter())
        measured = expected - first_count
        cpu = _proc_cpu_seconds(process.pid) - (cpu_started or 0.0)
        return Rung(
            name=name,
            events=int(measured),
            seconds=elapsed,
            per_second=measured / elapsed if elapsed > 0 else float("nan"),
            cpu_us_per_event=cpu / measured * 1e6 if measured else None,
            peak_memory_mib=_proc_peak_mib(process.pid),
            note=f"first batch of {first_count:.0f} not timed",
        )


def intake_domain_only(traffic: list[TicketEvent]) -> Rung:
    """Intake's decisions alone, in this process, no I/O: where intake's CPU goes."""
    from riskrelay.intake.clustering import ClusterIndex
    from riskrelay.intake.domain import assess_ticket, decide_ticket
    from riskrelay.intake.patterns import RateBaselines
    from riskrelay.intake.rules import load_rule_pack

    pack = load_rule_pack()
    raws = [event.to_json_bytes() for event in traffic]
    clusters, rates = ClusterIndex(), RateBaselines()
    started, cpu = time.perf_counter(), time.process_time()
    for raw in raws:
        event = TicketEvent.model_validate_json(raw)
        assessment = assess_ticket(event, pack)
        decide_ticket(event, pack, clusters=clusters, rates=rates, assessment=assessment)
    elapsed = time.perf_counter() - started
    return Rung(
        name="intake domain only (validate, assess, decide; no I/O)",
        events=len(raws),
        seconds=elapsed,
        per_second=len(raws) / elapsed,
        cpu_us_per_event=(time.process_time() - cpu) / len(raws) * 1e6,
    )


def replicate_flagged(records: list[bytes], copies: int) -> list[tuple[bytes, bytes]]:
    """More ticket-flagged input for the classifier: copies with fresh ids, tickets and clusters."""
    out: list[tuple[bytes, bytes]] = []
    for copy in range(copies):
        for raw in records:
            event = json.loads(raw)
            event["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{event['id']}/{copy}"))
            data = event["data"]
            data["ticket_id"] = f"{data['ticket_id']}~{copy}"
            event["subject"] = data["ticket_id"]
            if data.get("cluster"):
                data["cluster"]["cluster_id"] = f"{data['cluster']['cluster_id']}~{copy}"
            out.append((data["ticket_id"].encode(), json.dumps(event).encode()))
    return out


# ---------------------------------------------------------------------------------------------
# The whole pipeline
# ---------------------------------------------------------------------------------------------

PIPELINE = ("intake", "classifier", "escalator", "register", "reporting")
CRITICAL_TEXT = (
    "URGENT: our customer database was breached. Another customer's passport scans, home "
    "addresses and card numbers are visible to anyone who opens the shared folder link."
)


@contextlib.contextmanager
def pipeline(bootstrap: str, database: str, prefix: str) -> Iterator[dict[str, int]]:
    """All five services as processes; yields service -> HTTP port."""
    with contextlib.ExitStack() as stack:
        ports: dict[str, int] = {}
        for name in PIPELINE:
            _, port = stack.enter_context(
                service_process(name, bootstrap, database, prefix, RESULTS / "logs")
            )
            ports[name] = port
        yield ports


def all_consumed(ports: dict[str, int]) -> float:
    total = 0.0
    for port in ports.values():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        total += sum(float(value) for _, value in CONSUMED.findall(text))
    return total


def measure_pipeline(
    bootstrap: str,
    database: str,
    prefix: str,
    records: list[tuple[bytes, bytes]],
    quiet: float = 3.0,
    settle: float = 10.0,
) -> Rung:
    """ticket-events through all five services (published once every group has settled);
    done when intake consumed every ticket and no service consumed anything for ``quiet`` s."""
    expected = len(records)
    with pipeline(bootstrap, database, prefix) as ports:
        time.sleep(settle)
        filler = threading.Thread(
            target=lambda: asyncio.run(fill(bootstrap, f"{prefix}ticket-events", records))
        )
        filler.start()
        started = None
        last_change = time.perf_counter()
        previous = -1.0
        deadline = time.monotonic() + 180 + expected / 100
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("the pipeline did not drain before the deadline")
            intake = consumed(ports["intake"], f"{prefix}ticket-events")
            total = all_consumed(ports)
            now = time.perf_counter()
            if started is None and intake > 0:
                started, first = now, intake
            if total != previous:
                previous, last_change = total, now
            if intake >= expected and now - last_change >= quiet:
                break
            time.sleep(0.05)
        filler.join()
        assert started is not None
        elapsed = last_change - started
        measured = expected - first
        return Rung(
            name="pipeline: five services, ticket-events to every output",
            events=int(measured),
            seconds=elapsed,
            per_second=measured / elapsed,
            note=f"{total:.0f} records consumed over all services",
        )


async def measure_latency(
    bootstrap: str,
    database: str,
    prefix: str,
    rate: float,
    seconds: float,
    traffic: list[TicketEvent],
) -> dict[str, float]:
    """Open loop at ``rate`` tickets/s: every 20th ticket is Critical (unique product, so it is
    its own risk); latency = its publish to the first escalation-due of its risk, that record's
    Kafka timestamp (the escalator's send time; same machine, same wall clock)."""
    topic_in = f"{prefix}ticket-events"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks="all")
    consumer = AIOKafkaConsumer(
        f"{prefix}risk-classified",
        f"{prefix}escalation-due",
        bootstrap_servers=bootstrap,
        group_id=f"bench-latency-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
        # Latency is read from the records' own timestamps (the escalator's send time), so the
        # observer's fetch wait is not part of the figure and it can poll lazily: a 5 ms poll
        # cost the embedded broker 0.12 of a core, taken from the services being measured.
        fetch_max_wait_ms=100,
    )
    await producer.start()
    await consumer.start()
    published: dict[str, float] = {}
    risk_of_ticket: dict[str, str] = {}
    first_due: dict[str, float] = {}
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            for records in batches.values():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    data = event.get("data", {})
                    if record.topic.endswith("risk-classified"):
                        for ticket in data.get("ticket_ids", [data.get("ticket_id")]):
                            risk_of_ticket.setdefault(ticket, data["risk_id"])
                    else:
                        first_due.setdefault(data["risk_id"], record.timestamp / 1000)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(2.0)  # the watcher's group is assigned before the first publish
    try:
        interval = 1.0 / rate
        count = int(rate * seconds)
        begin = time.perf_counter()
        for n in range(count):
            target = begin + n * interval
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            event = traffic[n % len(traffic)]
            ticket = f"L{rate:.0f}-{n}-{event.data.ticket_id}"
            payload = json.loads(event.to_json_bytes())
            payload["id"] = f"latency-{prefix}{rate:.0f}-{n}"
            payload["time"] = datetime.now(UTC).isoformat()
            payload["subject"] = ticket
            payload["data"]["ticket_id"] = ticket
            if n % 20 == 0:
                payload["data"].update(
                    {
                        "description": CRITICAL_TEXT,
                        "product": f"Vault {rate:.0f}-{n}",
                        "priority": "urgent",
                    }
                )
                published[ticket] = time.time()
            await producer.send(topic_in, value=json.dumps(payload).encode(), key=ticket.encode())
        await producer.flush()
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            done = [t for t in published if risk_of_ticket.get(t) in first_due]
            if len(done) == len(published):
                break
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await watcher
        await consumer.stop()
        await producer.stop()
    latencies = sorted(
        (first_due[risk_of_ticket[t]] - sent) * 1000
        for t, sent in published.items()
        if risk_of_ticket.get(t) in first_due
    )
    if not latencies:
        return {"rate": rate, "critical": len(published), "measured": 0}

    def percentile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "rate": rate,
        "critical": len(published),
        "measured": len(latencies),
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1],
    }


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


async def run(events: int, rungs: set[str]) -> list[Rung]:
    results: list[Rung] = []
    traffic = generate(events, seed=7, start=datetime(2026, 11, 2, 8, 0, tzinfo=UTC))
    records = [(e.data.ticket_id.encode(), e.to_json_bytes()) for e in traffic]
    with infrastructure() as (bootstrap, database):
        run_id = uuid.uuid4().hex[:6]
        if "raw" in rungs:
            prefix = f"bench{run_id}-raw."
            await create_topics(bootstrap, prefix)
            console.print(f"[bold]raw[/] produce {events} records…")
            seconds = await fill(bootstrap, f"{prefix}ticket-events", records)
            results.append(Rung("raw produce", events, seconds, events / seconds))
            seconds = await raw_consume(bootstrap, f"{prefix}ticket-events", events)
            results.append(Rung("raw consume", events, seconds, events / seconds))
            seconds = await raw_hop(
                bootstrap, f"{prefix}ticket-events", f"{prefix}ticket-flagged", events
            )
            results.append(
                Rung(
                    "raw hop (consume, validate, produce, commit)",
                    events,
                    seconds,
                    events / seconds,
                )
            )
        if "intake" in rungs:
            results.append(intake_domain_only(traffic))
        flagged: list[bytes] = []
        if rungs & {"intake", "classifier"}:
            prefix = f"bench{run_id}-intake."
            await create_topics(bootstrap, prefix)
            await fill(bootstrap, f"{prefix}ticket-events", records)
            console.print(f"[bold]intake[/] alone over {events} ticket events…")
            rung = measure_service(
                "intake", bootstrap, database, prefix, f"{prefix}ticket-events", events
            )
            out = await read_topic(bootstrap, f"{prefix}ticket-flagged", timeout=10, settle=1)
            flagged = [r.value for r in out if r.value]
            rung.note += f"; flagged {len(flagged)} ({len(flagged) / events:.1%})"
            results.append(rung)
        if "intake2" in rungs:
            prefix = f"bench{run_id}-intake2."
            await create_topics(bootstrap, prefix)
            console.print(f"[bold]intake[/] two instances over {events} ticket events…")
            results.append(
                measure_instances(
                    "intake", 2, bootstrap, database, prefix, f"{prefix}ticket-events", records
                )
            )
        if "classifier" in rungs and flagged:
            prefix = f"bench{run_id}-classifier."
            await create_topics(bootstrap, prefix)
            copies = max(1, events // max(len(flagged), 1))
            inputs = replicate_flagged(flagged, copies)
            await fill(bootstrap, f"{prefix}ticket-flagged", inputs)
            console.print(f"[bold]classifier[/] alone over {len(inputs)} ticket-flagged events…")
            results.append(
                measure_service(
                    "classifier",
                    bootstrap,
                    database,
                    prefix,
                    f"{prefix}ticket-flagged",
                    len(inputs),
                )
            )
        if "pipeline" in rungs:
            prefix = f"bench{run_id}-pipeline."
            await create_topics(bootstrap, prefix)
            console.print(f"[bold]pipeline[/] of five services over {events} ticket events…")
            pipeline_rung = measure_pipeline(bootstrap, database, prefix, records)
            results.append(pipeline_rung)
            if "latency" in rungs:
                prefix = f"bench{run_id}-latency."
                await create_topics(bootstrap, prefix)
                with pipeline(bootstrap, database, prefix):
                    await asyncio.sleep(8)  # every consumer group joined
                    for share in (0.25, 0.5, 0.8):
                        rate = max(5.0, pipeline_rung.per_second * share)
                        console.print(f"[bold]latency[/] open loop at {rate:.0f} tickets/s…")
                        figures = await measure_latency(
                            bootstrap, database, prefix, rate, 20.0, traffic
                        )
                        LATENCY.append({"load_share": share, **figures})
    return results


LATENCY: list[dict[str, float]] = []


def report(results: list[Rung], path: Path) -> None:
    hop = next((r.per_second for r in results if r.name.startswith("raw hop")), None)
    table = Table(title=f"riskrelay throughput ladder ({os.cpu_count()} cores)")
    for column in (
        "rung",
        "events",
        "seconds",
        "events/s",
        "x raw hop",
        "CPU µs/event",
        "peak MiB",
        "note",
    ):
        table.add_column(column, justify="left" if column in ("rung", "note") else "right")
    for r in results:
        table.add_row(
            r.name,
            str(r.events),
            f"{r.seconds:.2f}",
            f"{r.per_second:,.0f}",
            f"{r.per_second / hop:.2f}" if hop else "-",
            f"{r.cpu_us_per_event:,.0f}" if r.cpu_us_per_event else "-",
            f"{r.peak_memory_mib:,.0f}" if r.peak_memory_mib else "-",
            r.note,
        )
    Console(width=200).print(table)
    if LATENCY:
        latency = Table(title="Critical ticket publish -> escalation-due (open loop)")
        for column in ("load", "tickets/s", "critical", "measured", "p50 ms", "p99 ms", "max ms"):
            latency.add_column(column, justify="right")
        for row in LATENCY:
            latency.add_row(
                f"{row['load_share']:.0%}",
                f"{row['rate']:.0f}",
                f"{row['critical']:.0f}",
                f"{row['measured']:.0f}",
                *(f"{row.get(k, float('nan')):.0f}" for k in ("p50_ms", "p99_ms", "max_ms")),
            )
        Console(width=200).print(latency)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(),
                "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
                "rungs": [
                    {**asdict(r), "ratio_to_raw_hop": (r.per_second / hop if hop else None)}
                    for r in results
                ],
                "critical_ticket_to_escalation_due": LATENCY,
            },
            indent=2,
        )
    )
    console.print(f"written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rungs", default="raw,intake,intake2,classifier,pipeline,latency")
    parser.add_argument("--output", type=Path, default=RESULTS / "services.json")
    args = parser.parse_args()
    results = asyncio.run(run(args.events, set(args.rungs.split(","))))
    report(results, args.output)


if __name__ == "__main__":
    main()
