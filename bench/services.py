"""The throughput ladder: raw aiokafka loops and each riskrelay service, measured in one run.

    uv run python bench/services.py [--events 20000] [--rungs raw,intake,classifier]
        [--latency-rate 200] [--broker tansu --broker kafka]

Every rung reads the same kind of records from a pre-filled topic, so the figures compare:

* ``raw produce`` / ``raw consume``: aiokafka alone (linger 5 ms; ``getmany``);
* ``raw hop``: consume, ``TicketEvent.model_validate_json``, produce, flush and commit per batch:
  the ceiling for any service that consumes, validates and produces;
* ``intake domain alone``: in this process, intake's per-batch work exactly as the service runs
  it, without the broker and PostgreSQL (decode, assess, ``intake_step`` over the in-memory
  repository, semantic cascade included; :mod:`intake_profile`), then the same batches again
  with CPU clocks around each stage: CPU per ticket for redaction, rules, stage one (static
  table), stage two (full encoder), clustering and the rest, and the share of tickets that
  reach the full encoder, overall and per part of the traffic mix;
* ``intake``, ``classifier``: the real service as a separate process (``python -m
  riskrelay.<service>``) on the embedded broker and PostgreSQL, its input pre-filled; throughput
  is read from its own ``riskrelay_consumed_records_total`` between the first consumed batch and
  the last (steady state: the consumer group's first join is not counted). CPU time per event and
  peak memory (VmHWM) are read from ``/proc`` for the service process;
* ``pipeline``: all five services, ticket-events to every output;
* ``latency``: open loop through the five services; every 20th ticket is Critical and its
  publish -> ``escalation-due`` time is measured. ``--latency-rate`` fixes the rate (tickets/s,
  repeatable) so the figure is comparable between runs; without it the rates are shares of the
  pipeline rung's throughput. A Critical ticket not escalated by the end of the drain counts
  as slower than every measured one, so a percentile it falls in is reported as not reached.

The one-minute load average (other work on the machine) is recorded with every figure: compare
rungs within one run.

Every rung but ``intake domain alone`` runs once per ``--broker`` (``make bench BROKER=kafka``:
tansu, then Apache Kafka, each on a fresh broker and PostgreSQL), and its ratio is to the raw hop
on the same broker. On Apache Kafka the services fetch with the deployments' wait
(``KAFKA__FETCH_MAX_WAIT_MS``: Kafka answers as soon as data arrives); on tansu, with the code's.

Results are printed as a table and written as JSON to ``bench/results/services.json``.
Uses ``RISKRELAY_TEST_KAFKA`` / ``RISKRELAY_TEST_DATABASE_URL`` when set (then one broker only),
else starts the pair.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from intake_profile import (
    BATCH_RECORDS,
    bench_traffic,
    load_intake,
    print_profile,
    profile_stages,
    run_intake_batches,
    warm_up,
)
from rich.console import Console
from rich.table import Table

from riskrelay.cli.sample_traffic import Label
from riskrelay.devstack import (
    BROKER_ENV,
    BROKER_KINDS,
    DEPLOYED_FETCH_MAX_WAIT_MS,
    KAFKA_ENV,
    BrokerKind,
    broker_and_database,
    broker_kind,
    free_port,
    wait_for_port,
)
from riskrelay.shared.events import TicketEvent
from riskrelay.shared.topics import ALL_TOPICS, ensure_topics
from riskrelay.testing import read_topic

console = Console(stderr=True)
RESULTS = Path(__file__).parent / "results"
CONSUMED = re.compile(r'^riskrelay_consumed_records_total\{topic="([^"]+)"\} ([0-9.e+]+)$', re.M)
RETRIES = re.compile(r"^riskrelay_batch_retries_total\{[^}]*\} ([0-9.e+]+)$", re.M)
BATCH_SECONDS_SUM = re.compile(r"^riskrelay_batch_seconds_sum\{[^}]*\} ([0-9.e+]+)$", re.M)
BATCH_COUNT = re.compile(r"^riskrelay_batch_seconds_count\{[^}]*\} ([0-9.e+]+)$", re.M)


@dataclass
class Rung:
    name: str
    events: int
    seconds: float
    per_second: float
    cpu_us_per_event: float | None = None
    peak_memory_mib: float | None = None
    note: str = ""
    load_average: tuple[float, float, float] = field(default_factory=os.getloadavg)
    """When the figure was taken (1, 5, 15 minutes)."""
    broker: str = ""
    """The broker the rung ran on; ``-`` for a rung without one."""

    def ratio_to(self, hops: Mapping[str, float]) -> float | None:
        """Throughput over the raw hop on the same broker (the only one, for a rung without)."""
        hop = hops.get(self.broker)
        if hop is None and len(hops) == 1:
            hop = next(iter(hops.values()))
        return self.per_second / hop if hop else None


@dataclass
class BenchResults:
    rungs: list[Rung] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    intake_profile: dict[str, Any] | None = None
    broker: str = "-"
    """The broker the rungs being added run on."""

    def add(self, rung: Rung) -> None:
        rung.broker = rung.broker or self.broker
        self.rungs.append(rung)

    @property
    def raw_hops(self) -> dict[str, float]:
        """Each broker's raw hop throughput."""
        return {r.broker: r.per_second for r in self.rungs if r.name.startswith("raw hop")}

    def save(self, path: Path) -> None:
        """Written after every rung too, so a run cut short keeps what it measured."""
        hops = self.raw_hops
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                _without_nan(
                    {
                        "measured_at": datetime.now(UTC).isoformat(),
                        "command": sys.argv,
                        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
                        "rungs": [
                            {
                                **asdict(r),
                                "ratio_to_raw_hop": r.ratio_to(hops),
                            }
                            for r in self.rungs
                        ],
                        "intake_cpu_by_stage": self.intake_profile,
                        "critical_ticket_to_escalation_due": self.latency,
                    }
                ),
                indent=2,
            )
        )


MIN_EXPECTED_RATE = 5.0
"""Events/s below which a rung gives up: its deadlines only guard against a hang."""


# ---------------------------------------------------------------------------------------------
# Infrastructure
# ---------------------------------------------------------------------------------------------


def infrastructure(kind: BrokerKind) -> contextlib.AbstractContextManager[tuple[str, str]]:
    return broker_and_database({**os.environ, BROKER_ENV: kind})


def service_kafka_env(kind: BrokerKind) -> dict[str, str]:
    """The services' Kafka settings on ``kind`` (without the service's prefix)."""
    if kind == "kafka":
        return {"KAFKA__FETCH_MAX_WAIT_MS": str(DEPLOYED_FETCH_MAX_WAIT_MS)}
    return {}


async def create_topics(bootstrap: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await ensure_topics(admin, ALL_TOPICS, prefix, 1)
    finally:
        await admin.close()
    await wait_for_leaders(bootstrap, [f"{prefix}{spec.name}" for spec in ALL_TOPICS])


async def wait_for_leaders(bootstrap: str, topics: list[str], timeout: float = 30.0) -> None:
    """Until every partition of ``topics`` answers on its leader. Apache Kafka's node serves a
    new partition a moment after CreateTopics returns, and after its metadata names the
    leader; a rung that started at once would time the producer's ``NotLeaderForPartition``
    retries (tansu's partitions are usable at once). A ListOffsets per partition is answered
    by the leader only, and aiokafka retries it until then."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        partitions: list[TopicPartition] = []
        while not partitions and time.monotonic() < deadline:
            await consumer._client.force_metadata_update()
            cluster = consumer._client.cluster
            known = {t: cluster.partitions_for_topic(t) for t in topics}
            if all(known.values()):
                partitions = [TopicPartition(t, p) for t, ps in known.items() for p in ps or ()]
            else:
                await asyncio.sleep(0.1)
        if not partitions:
            raise TimeoutError(f"{len(topics)} new topics not in the broker's metadata")
        await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


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
    name: str,
    bootstrap: str,
    database: str,
    prefix: str,
    log_dir: Path,
    kafka_env: Mapping[str, str],
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env_prefix = f"RISKRELAY_{name.upper()}_"
    env = {
        **os.environ,
        **{f"{env_prefix}{key}": value for key, value in kafka_env.items()},
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
    kafka_env: Mapping[str, str],
    settle: float = 15.0,
) -> Rung:
    """``instances`` processes of one service in one consumer group (scale-out by partitions).

    The input is published only after the group has settled, so every instance takes part.
    Timing starts once every instance has finished a batch (each one's first batch, which
    includes its first-call costs, is not timed)."""
    expected = len(records)
    with contextlib.ExitStack() as stack:
        ports = [
            stack.enter_context(
                service_process(name, bootstrap, database, prefix, RESULTS / "logs", kafka_env)
            )[1]
            for _ in range(instances)
        ]
        time.sleep(settle)
        filler = threading.Thread(target=lambda: asyncio.run(fill(bootstrap, input_topic, records)))
        filler.start()
        deadline = time.monotonic() + 180 + expected / MIN_EXPECTED_RATE
        started = None
        first = count = 0.0
        while count < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} x{instances}: consumed {count:.0f} of {expected}")
            counts = [consumed(port, input_topic) for port in ports]
            count = sum(counts)
            if started is None and all(counts):
                started, first = time.perf_counter(), count
            time.sleep(0.02)
        filler.join()
        if started is None:
            return Rung(
                name=f"{name} x{instances} instances (one group)",
                events=expected,
                seconds=float("nan"),
                per_second=float("nan"),
                note=f"not measured: an instance consumed nothing ({counts})",
            )
        elapsed = time.perf_counter() - started
        return Rung(
            name=f"{name} x{instances} instances (one group)",
            events=int(expected - first),
            seconds=elapsed,
            per_second=(expected - first) / elapsed,
            note=f"first batch of each instance ({first:.0f} events) not timed; "
            + batch_note(ports),
        )


METRICS_TIMEOUT_S = 120.0
"""A service answers /metrics from the event loop its batches run on: intake's CPU-bound batch
work (the full encoder over a 500-record batch) holds the loop for seconds."""


def consumed(port: int, topic: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=METRICS_TIMEOUT_S).text
    return sum(float(value) for name, value in CONSUMED.findall(text) if name == topic)


def batch_note(ports: list[int]) -> str:
    """The services' own batch figures: batches done, their mean time, batches redelivered."""
    texts = [
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=METRICS_TIMEOUT_S).text
        for port in ports
    ]

    def total(pattern: re.Pattern[str]) -> float:
        return sum(float(value) for text in texts for value in pattern.findall(text))

    batches = total(BATCH_COUNT)
    mean = total(BATCH_SECONDS_SUM) / batches if batches else float("nan")
    return f"{batches:.0f} batches, mean {mean:.2f} s; {total(RETRIES):.0f} redelivered"


BATCH_BUCKET = re.compile(
    r'^riskrelay_batch_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.e+]+)$', re.M
)


def _machine_busy_seconds() -> float:
    """CPU seconds every core has spent on anything but idling and waiting for I/O."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def batch_totals(running: Pipeline) -> dict[str, dict[str, Any]]:
    """Each service's own batch counters so far (records consumed, batches, seconds in batches,
    the batch-time histogram's cumulative buckets) and its process's CPU seconds; under
    ``machine``, the CPU seconds of the whole machine and the wall clock."""
    totals: dict[str, dict[str, Any]] = {
        "machine": {"cpu_seconds": _machine_busy_seconds(), "wall": time.monotonic()}
    }
    for name, port in running.ports.items():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=METRICS_TIMEOUT_S).text
        buckets: dict[str, float] = {}
        for bound, value in BATCH_BUCKET.findall(text):
            buckets[bound] = buckets.get(bound, 0.0) + float(value)
        totals[name] = {
            "records": sum(float(value) for _, value in CONSUMED.findall(text)),
            "batches": sum(float(value) for value in BATCH_COUNT.findall(text)),
            "seconds": sum(float(value) for value in BATCH_SECONDS_SUM.findall(text)),
            "buckets": buckets,
            "cpu_seconds": _proc_cpu_seconds(running.processes[name].pid),
        }
    return totals


def batch_figures(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """What each service's batches did between two :func:`batch_totals`: how many, records per
    batch, mean time, the share that took longer than 25, 50 and 100 ms (the histogram's
    bounds), and the cores its process kept busy; ``machine``: the cores the whole machine kept
    busy (the broker, PostgreSQL and the load generator are the rest)."""
    wall = after["machine"]["wall"] - before["machine"]["wall"]

    def cores(name: str) -> float:
        return round((after[name]["cpu_seconds"] - before[name]["cpu_seconds"]) / wall, 2)

    figures: dict[str, dict[str, Any]] = {"machine": {"cores": cores("machine")}}
    for name, end in after.items():
        if name == "machine":
            continue
        start = before.get(name, {"records": 0.0, "batches": 0.0, "seconds": 0.0, "buckets": {}})
        batches = end["batches"] - start["batches"]
        if batches <= 0:
            figures[name] = {"batches": 0, "cores": cores(name)}
            continue
        done = {
            bound: end["buckets"].get(bound, 0.0) - start["buckets"].get(bound, 0.0)
            for bound in ("0.025", "0.05", "0.1")
        }
        figures[name] = {
            "batches": int(batches),
            "records_per_batch": round((end["records"] - start["records"]) / batches, 1),
            "mean_ms": round((end["seconds"] - start["seconds"]) / batches * 1000, 1),
            "share_over_25_ms": round(1.0 - done["0.025"] / batches, 3),
            "share_over_50_ms": round(1.0 - done["0.05"] / batches, 3),
            "share_over_100_ms": round(1.0 - done["0.1"] / batches, 3),
            "cores": cores(name),
        }
    return figures


def measure_service(
    name: str,
    bootstrap: str,
    database: str,
    prefix: str,
    input_topic: str,
    expected: int,
    kafka_env: Mapping[str, str],
) -> Rung:
    with service_process(name, bootstrap, database, prefix, RESULTS / "logs", kafka_env) as (
        process,
        port,
    ):
        deadline = time.monotonic() + 120 + expected / MIN_EXPECTED_RATE
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
        batches = batch_note([port])
        return Rung(
            name=name,
            events=int(measured),
            seconds=elapsed,
            per_second=measured / elapsed if elapsed > 0 else float("nan"),
            cpu_us_per_event=cpu / measured * 1e6 if measured else None,
            peak_memory_mib=_proc_peak_mib(process.pid),
            note=f"first batch of {first_count:.0f} not timed; {batches}",
        )


async def intake_domain_alone(
    traffic: list[tuple[TicketEvent, Label]],
) -> tuple[Rung, dict[str, Any]]:
    """Intake's per-batch work in this process, as the service runs it (no broker, no
    PostgreSQL), then the same stream again with CPU clocks per stage."""
    raws = [event.to_json_bytes() for event, _ in traffic]
    intake = load_intake()
    await warm_up(intake, raws)
    run = await run_intake_batches(intake, raws)
    rung = Rung(
        name="intake domain alone (decode, assess, intake_step in memory; no I/O)",
        events=run.events,
        seconds=run.seconds,
        per_second=run.events / run.seconds,
        cpu_us_per_event=run.cpu_seconds / run.events * 1e6,
        note=f"batches of {BATCH_RECORDS}; flagged {run.flags} ({run.flags / run.events:.1%})",
    )
    return rung, await profile_stages(intake, traffic)


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


@dataclass
class Pipeline:
    processes: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]

    def exited(self) -> list[str]:
        """The services that are no longer running, with their exit codes."""
        return [
            f"{name} (exit {process.returncode})"
            for name, process in self.processes.items()
            if process.poll() is not None
        ]

    def check_running(self) -> None:
        exited = self.exited()
        if exited:
            raise RuntimeError(
                f"{', '.join(exited)} stopped during the rung; see bench/results/logs"
            )


@contextlib.contextmanager
def pipeline(
    bootstrap: str, database: str, prefix: str, kafka_env: Mapping[str, str]
) -> Iterator[Pipeline]:
    """All five services as processes."""
    with contextlib.ExitStack() as stack:
        running = Pipeline({}, {})
        for name in PIPELINE:
            process, port = stack.enter_context(
                service_process(name, bootstrap, database, prefix, RESULTS / "logs", kafka_env)
            )
            running.processes[name] = process
            running.ports[name] = port
        yield running


def all_consumed(ports: dict[str, int]) -> float:
    total = 0.0
    for port in ports.values():
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=METRICS_TIMEOUT_S).text
        total += sum(float(value) for _, value in CONSUMED.findall(text))
    return total


def measure_pipeline(
    bootstrap: str,
    database: str,
    prefix: str,
    records: list[tuple[bytes, bytes]],
    kafka_env: Mapping[str, str],
    quiet: float = 3.0,
    settle: float = 10.0,
) -> Rung:
    """ticket-events through all five services (published once every group has settled);
    done when intake consumed every ticket and no service consumed anything for ``quiet`` s."""
    expected = len(records)
    with pipeline(bootstrap, database, prefix, kafka_env) as running:
        ports = running.ports
        time.sleep(settle)
        filler = threading.Thread(
            target=lambda: asyncio.run(fill(bootstrap, f"{prefix}ticket-events", records))
        )
        filler.start()
        started = None
        last_change = time.perf_counter()
        previous = -1.0
        deadline = time.monotonic() + 180 + expected / MIN_EXPECTED_RATE
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("the pipeline did not drain before the deadline")
            running.check_running()
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
        intake_batches = batch_note([ports["intake"]])
        elapsed = last_change - started
        measured = expected - first
        return Rung(
            name="pipeline: five services, ticket-events to every output",
            events=int(measured),
            seconds=elapsed,
            per_second=measured / elapsed,
            note=f"{total:.0f} records consumed over all services; intake: {intake_batches}",
        )


async def measure_latency(
    bootstrap: str,
    database: str,
    prefix: str,
    rate: float,
    seconds: float,
    traffic: list[TicketEvent],
) -> dict[str, Any]:
    """Open loop at ``rate`` tickets/s: every 20th ticket is Critical (unique product, so it is
    its own risk); latency = its publish to the first escalation-due of its risk, that record's
    Kafka timestamp (the escalator's send time; same machine, same wall clock). The same
    timestamps of the ticket's first ticket-flagged (intake's send) and of its risk's first
    risk-classified (the classifier's) split the latency by hop."""
    topic_in = f"{prefix}ticket-events"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks="all")
    consumer = AIOKafkaConsumer(
        f"{prefix}ticket-flagged",
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
    first_flag: dict[str, float] = {}
    first_classified: dict[str, float] = {}
    first_due: dict[str, float] = {}
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            for records in batches.values():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    data = event.get("data", {})
                    if record.topic.endswith("ticket-flagged"):
                        first_flag.setdefault(data.get("ticket_id"), record.timestamp / 1000)
                    elif record.topic.endswith("risk-classified"):
                        first_classified.setdefault(data["risk_id"], record.timestamp / 1000)
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
        published_at = time.perf_counter()
        # An overloaded pipeline drains its backlog after the last publish: wait while Critical
        # tickets keep being escalated, up to a bound.
        done, progress_at = -1, published_at
        while time.perf_counter() - published_at < DRAIN_LIMIT_S:
            now_done = sum(1 for t in published if risk_of_ticket.get(t) in first_due)
            if now_done == len(published):
                break
            if now_done != done:
                done, progress_at = now_done, time.perf_counter()
            elif time.perf_counter() - progress_at > DRAIN_QUIET_S:
                break
            await asyncio.sleep(0.2)
        drained_s = time.perf_counter() - published_at
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

    def percentile(q: float) -> float | None:
        # Over every Critical ticket published: one never escalated is slower than all others.
        rank = min(len(published) - 1, int(q * len(published)))
        return latencies[rank] if rank < len(latencies) else None

    hops: dict[str, list[float]] = {"intake": [], "classifier": [], "escalator": []}
    for ticket, sent in published.items():
        risk = risk_of_ticket.get(ticket)
        if risk in first_due and ticket in first_flag and risk in first_classified:
            hops["intake"].append((first_flag[ticket] - sent) * 1000)
            hops["classifier"].append((first_classified[risk] - first_flag[ticket]) * 1000)
            hops["escalator"].append((first_due[risk] - first_classified[risk]) * 1000)

    def hop_percentiles(values: list[float]) -> dict[str, float | None]:
        ordered = sorted(values)
        return {
            f"p{round(q * 100)}_ms": ordered[min(len(ordered) - 1, int(q * len(ordered)))]
            if ordered
            else None
            for q in (0.5, 0.99)
        }

    return {
        "rate": rate,
        "achieved_rate": count / (published_at - begin),
        "seconds": seconds,
        "critical": len(published),
        "measured": len(latencies),
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] if latencies else None,
        "by_hop": {name: hop_percentiles(values) for name, values in hops.items()},
        "drained_s": drained_s,
        "load_average": os.getloadavg(),
    }


HOPS = ("intake", "classifier", "escalator")
"""Publish -> ticket-flagged -> risk-classified -> escalation-due."""
DRAIN_LIMIT_S = 600.0
DRAIN_QUIET_S = 90.0


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def failed_rung(out: BenchResults, name: str, events: int) -> Iterator[None]:
    """A rung that fails is recorded with its reason and the ladder goes on."""
    try:
        yield
    except (TimeoutError, RuntimeError, httpx.HTTPError) as error:
        console.print(f"[red]{name} failed:[/] {error}")
        out.add(Rung(name, events, float("nan"), float("nan"), note=f"FAILED: {error}"[:300]))


LOAD_SHARES = (0.25, 0.5, 0.8)
"""Latency rates without ``--latency-rate``: shares of the pipeline rung's throughput."""


async def run(
    events: int,
    rungs: set[str],
    latency_rates: list[float],
    path: Path,
    brokers: list[BrokerKind],
) -> BenchResults:
    out = BenchResults()
    labelled = bench_traffic(events)
    if "intake" in rungs:
        console.print(f"[bold]intake domain alone[/] over {events} ticket events, twice…")
        rung, out.intake_profile = await intake_domain_alone(labelled)
        out.add(rung)
        out.save(path)
    for kind in brokers:
        console.print(f"[bold]on {kind}[/]")
        out.broker = kind
        await run_on_broker(out, kind, labelled, rungs, latency_rates, path)
    return out


async def run_on_broker(
    out: BenchResults,
    kind: BrokerKind,
    labelled: list[tuple[TicketEvent, Label]],
    rungs: set[str],
    latency_rates: list[float],
    path: Path,
) -> None:
    """Every rung that needs a broker, on a fresh ``kind`` broker and PostgreSQL."""
    events = len(labelled)
    traffic = [event for event, _ in labelled]
    records = [(e.data.ticket_id.encode(), e.to_json_bytes()) for e in traffic]
    kafka_env = service_kafka_env(kind)
    with infrastructure(kind) as (bootstrap, database):
        run_id = uuid.uuid4().hex[:6]
        if "raw" in rungs:
            prefix = f"bench{run_id}-raw."
            await create_topics(bootstrap, prefix)
            console.print(f"[bold]raw[/] produce {events} records…")
            seconds = await fill(bootstrap, f"{prefix}ticket-events", records)
            out.add(Rung("raw produce", events, seconds, events / seconds))
            seconds = await raw_consume(bootstrap, f"{prefix}ticket-events", events)
            out.add(Rung("raw consume", events, seconds, events / seconds))
            seconds = await raw_hop(
                bootstrap, f"{prefix}ticket-events", f"{prefix}ticket-flagged", events
            )
            out.add(
                Rung(
                    "raw hop (consume, validate, produce, commit)",
                    events,
                    seconds,
                    events / seconds,
                )
            )
        flagged: list[bytes] = []
        if rungs & {"intake", "classifier"}:
            prefix = f"bench{run_id}-intake."
            await create_topics(bootstrap, prefix)
            await fill(bootstrap, f"{prefix}ticket-events", records)
            console.print(f"[bold]intake[/] alone over {events} ticket events…")
            with failed_rung(out, "intake", events):
                rung = measure_service(
                    "intake",
                    bootstrap,
                    database,
                    prefix,
                    f"{prefix}ticket-events",
                    events,
                    kafka_env,
                )
                out_records = await read_topic(
                    bootstrap, f"{prefix}ticket-flagged", timeout=10, settle=1
                )
                flagged = [r.value for r in out_records if r.value]
                rung.note += f"; flagged {len(flagged)} ({len(flagged) / events:.1%})"
                out.add(rung)
            out.save(path)
        if "intake2" in rungs:
            prefix = f"bench{run_id}-intake2."
            await create_topics(bootstrap, prefix)
            console.print(f"[bold]intake[/] two instances over {events} ticket events…")
            with failed_rung(out, "intake x2 instances (one group)", events):
                out.add(
                    measure_instances(
                        "intake",
                        2,
                        bootstrap,
                        database,
                        prefix,
                        f"{prefix}ticket-events",
                        records,
                        kafka_env,
                    )
                )
        if "classifier" in rungs and flagged:
            prefix = f"bench{run_id}-classifier."
            await create_topics(bootstrap, prefix)
            copies = max(1, events // max(len(flagged), 1))
            inputs = replicate_flagged(flagged, copies)
            await fill(bootstrap, f"{prefix}ticket-flagged", inputs)
            console.print(f"[bold]classifier[/] alone over {len(inputs)} ticket-flagged events…")
            with failed_rung(out, "classifier", len(inputs)):
                out.add(
                    measure_service(
                        "classifier",
                        bootstrap,
                        database,
                        prefix,
                        f"{prefix}ticket-flagged",
                        len(inputs),
                        kafka_env,
                    )
                )
        out.save(path)
        pipeline_rate: float | None = None
        if "pipeline" in rungs:
            prefix = f"bench{run_id}-pipeline."
            await create_topics(bootstrap, prefix)
            console.print(f"[bold]pipeline[/] of five services over {events} ticket events…")
            with failed_rung(out, "pipeline", events):
                pipeline_rung = measure_pipeline(bootstrap, database, prefix, records, kafka_env)
                out.add(pipeline_rung)
                pipeline_rate = pipeline_rung.per_second
            out.save(path)
        if "latency" in rungs:
            if latency_rates:
                rates: list[tuple[float | None, float]] = [(None, r) for r in latency_rates]
            elif pipeline_rate is not None:
                rates = [(share, max(5.0, pipeline_rate * share)) for share in LOAD_SHARES]
            else:
                raise SystemExit("the latency rung needs --latency-rate or the pipeline rung")
            prefix = f"bench{run_id}-latency."
            await create_topics(bootstrap, prefix)
            with pipeline(bootstrap, database, prefix, kafka_env) as running:
                await asyncio.sleep(8)  # every consumer group joined
                for share, rate in rates:
                    console.print(f"[bold]latency[/] open loop at {rate:.0f} tickets/s…")
                    before = batch_totals(running)
                    figures = await measure_latency(
                        bootstrap, database, prefix, rate, LATENCY_SECONDS, traffic
                    )
                    out.latency.append(
                        {
                            "broker": kind,
                            "load_share": share,
                            **figures,
                            "batches": batch_figures(before, batch_totals(running)),
                            "services_stopped": running.exited(),
                        }
                    )
                    out.save(path)


LATENCY_SECONDS = 20.0


def _right_aligned(title: str, *columns: str) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    return table


def _load(load: tuple[float, float, float] | list[float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def _ms(value: float | None) -> str:
    return "not reached" if value is None else f"{value:,.0f}"


def _without_nan(value: Any) -> Any:
    """A failed rung's figures are NaN; JSON has no NaN, so they are written as null."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value


def report(out: BenchResults, path: Path) -> None:
    results = out.rungs
    hops = out.raw_hops
    table = Table(title=f"riskrelay throughput ladder ({os.cpu_count()} cores)")
    for column in (
        "broker",
        "rung",
        "events",
        "seconds",
        "events/s",
        "x raw hop",
        "CPU µs/event",
        "peak MiB",
        "load avg",
        "note",
    ):
        table.add_column(column, justify="left" if column in ("rung", "note") else "right")
    for r in results:
        ratio = r.ratio_to(hops)
        table.add_row(
            r.broker,
            r.name,
            str(r.events),
            f"{r.seconds:.2f}",
            f"{r.per_second:,.0f}",
            "-" if ratio is None or ratio != ratio else f"{ratio:.3f}",
            f"{r.cpu_us_per_event:,.0f}" if r.cpu_us_per_event else "-",
            f"{r.peak_memory_mib:,.0f}" if r.peak_memory_mib else "-",
            _load(r.load_average),
            r.note,
        )
    wide = Console(width=200)
    wide.print(table)
    if out.intake_profile is not None:
        print_profile(out.intake_profile, wide)
    if out.latency:
        latency = _right_aligned(
            "Critical ticket publish -> escalation-due (open loop)",
            "broker",
            "load",
            "tickets/s",
            "achieved",
            "critical",
            "measured",
            "p50 ms",
            "p99 ms",
            "max ms",
            "drain s",
            "load avg",
            "stopped",
        )
        for row in out.latency:
            share = row["load_share"]
            latency.add_row(
                row["broker"],
                "fixed" if share is None else f"{share:.0%}",
                f"{row['rate']:.0f}",
                f"{row['achieved_rate']:.0f}",
                f"{row['critical']:.0f}",
                f"{row['measured']:.0f}",
                *(_ms(row[k]) for k in ("p50_ms", "p99_ms", "max_ms")),
                f"{row['drained_s']:.0f}",
                _load(row["load_average"]),
                ", ".join(row["services_stopped"]) or "-",
            )
        wide.print(latency)
        hops = _right_aligned(
            "Critical ticket latency by hop (Kafka send timestamps)",
            "broker",
            "tickets/s",
            *(f"{hop} p50 / p99 ms" for hop in HOPS),
        )
        for row in out.latency:
            by_hop = row.get("by_hop", {})
            hops.add_row(
                row["broker"],
                f"{row['rate']:.0f}",
                *(
                    f"{_ms(by_hop.get(hop, {}).get('p50_ms'))} / "
                    f"{_ms(by_hop.get(hop, {}).get('p99_ms'))}"
                    for hop in HOPS
                ),
            )
        wide.print(hops)
        batch_table = _right_aligned(
            "Each service's batches during the open loop (its own metrics)",
            "broker",
            "tickets/s",
            "service",
            "batches",
            "records/batch",
            "mean ms",
            "> 25 ms",
            "> 50 ms",
            "> 100 ms",
            "cores",
        )
        for row in out.latency:
            for service, figures in row.get("batches", {}).items():
                if service == "machine":
                    batch_table.add_row(
                        row["broker"],
                        f"{row['rate']:.0f}",
                        "whole machine",
                        *("" for _ in range(6)),
                        f"{figures['cores']:.2f}",
                    )
                    continue
                if not figures.get("batches"):
                    continue
                batch_table.add_row(
                    row["broker"],
                    f"{row['rate']:.0f}",
                    service,
                    str(figures["batches"]),
                    f"{figures['records_per_batch']:.1f}",
                    f"{figures['mean_ms']:.1f}",
                    *(
                        f"{figures[key]:.1%}"
                        for key in ("share_over_25_ms", "share_over_50_ms", "share_over_100_ms")
                    ),
                    f"{figures['cores']:.2f}",
                )
        wide.print(batch_table)
    out.save(path)
    console.print(f"written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rungs", default="raw,intake,intake2,classifier,pipeline,latency")
    parser.add_argument(
        "--latency-rate",
        type=float,
        action="append",
        default=[],
        metavar="TICKETS_PER_S",
        help="fixed open-loop rate of the latency rung (repeatable); default: shares of the "
        "pipeline's throughput",
    )
    parser.add_argument(
        "--broker",
        action="append",
        choices=BROKER_KINDS,
        default=[],
        help="a broker to run the rungs on, in order (repeatable); default: the one "
        f"{BROKER_ENV} names, tansu unless set",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "services.json")
    args = parser.parse_args()
    if any(rate <= 0 for rate in args.latency_rate):
        parser.error("--latency-rate must be positive")
    brokers: list[BrokerKind] = args.broker or [broker_kind(os.environ)]
    if os.environ.get(KAFKA_ENV) and len(brokers) > 1:
        parser.error(f"{KAFKA_ENV} names one broker: give one --broker (or none)")

    def stop(signum: int, _: object) -> None:
        # Raised wherever the main thread is (the rungs poll in blocking loops, where a task
        # cancellation would wait), so every process the run started is stopped on the way out.
        raise SystemExit(f"stopped by signal {signum}; figures so far in {args.output}")

    signal.signal(signal.SIGTERM, stop)
    results = asyncio.run(
        run(args.events, set(args.rungs.split(",")), args.latency_rate, args.output, brokers)
    )
    report(results, args.output)


if __name__ == "__main__":
    main()
