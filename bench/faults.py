"""Fault injection: the whole pipeline under crashes, a frozen broker and a database restart.

    uv run python bench/faults.py [--duration 120] [--rate 20] [--seed 7] [--short]

What it does, in one run:

1. starts the broker ``RISKRELAY_TEST_BROKER`` names (tansu by default, or Apache Kafka:
   ``make faults BROKER=kafka``) and an embedded PostgreSQL (or uses ``RISKRELAY_TEST_KAFKA`` /
   ``RISKRELAY_TEST_DATABASE_URL``; the broker pause and the database restart need the embedded
   ones and are skipped, with a note, otherwise), then the five services as processes
   (``python -m riskrelay.<service>``) under a topic prefix and schemas of their own, the
   escalator with a roster whose webhooks point at a sink in this process and whose people get
   e-mail through an SMTP server (aiosmtpd) in this process, both refusing the first attempt
   of a share of their deliveries;
2. publishes realistic tickets (:mod:`riskrelay.cli.sample_traffic`, ids made unique per run,
   plus a share of Critical data-breach reports) at a fixed rate with ``acks=all``, keeping the
   ids the broker acknowledged;
3. meanwhile SIGKILLs every service at random moments and restarts it, SIGSTOPs the broker for
   longer than the consumers' session timeout, restarts PostgreSQL, scales the classifier from
   one instance to three and back, makes the register's group rebalance every few seconds
   (instances joining and leaving; Apache Kafka only), SIGKILLs Apache Kafka and starts it on the same log
   directory (tansu would lose its topics), and publishes malformed records (invalid JSON, a JSON value
   that is no event, another topic's event type, an unknown version) into every topic, each
   keyed by a unique marker;
4. after the faults heal: measures how long every consumer group takes to reach zero lag, waits
   until nothing changes any more (no lag, empty outboxes, no pending deliveries, stable topic
   ends), then checks that nothing accepted was lost and no effect happened twice, e-mails
   included: every escalation-due event reached each person of its role once.

The summary (faults, per-stage figures, checks) is printed and written as JSON to
``bench/results/faults.json`` (``faults-short.json`` with ``--short``); the exit status is 1
when a check fails. Service logs go to ``bench/results/logs/faults/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from rich.console import Console
from rich.table import Table

from riskrelay.cli.sample_traffic import TENANTS, generate
from riskrelay.devstack import (
    ApacheKafkaBroker,
    BrokerProcess,
    EmbeddedPostgres,
    broker_kind,
    free_port,
    new_broker,
)
from riskrelay.shared.envelope import CloudEvent
from riskrelay.shared.events import (
    Customer,
    EscalationAcknowledgedEvent,
    EscalationDueEvent,
    RiskCategory,
    RiskClassifiedEvent,
    RiskFeedbackEvent,
    RiskFlag,
    RiskLevel,
    RiskRegisteredEvent,
    TicketData,
    TicketEvent,
    TicketFlaggedEvent,
)
from riskrelay.shared.kafka import true_end_offsets
from riskrelay.shared.topics import (
    ALL_TOPICS,
    ESCALATION_ACKS,
    ESCALATION_DUE,
    MAIN_TOPICS,
    RISK_CLASSIFIED,
    RISK_FEEDBACK,
    RISK_REGISTERED,
    TICKET_EVENTS,
    TICKET_FLAGGED,
    TopicSpec,
    ensure_topics,
)

console = Console(stderr=True, highlight=False, width=150)
RESULTS = Path(__file__).parent / "results"

SERVICES: tuple[str, ...] = ("intake", "classifier", "escalator", "register", "reporting")
# What each service's consumer group reads (riskrelay.<service>.handlers / app: context.consume).
GROUP_TOPICS: dict[str, tuple[TopicSpec, ...]] = {
    "intake": (TICKET_EVENTS, RISK_FEEDBACK),
    "classifier": (TICKET_FLAGGED,),
    "escalator": (RISK_CLASSIFIED, ESCALATION_ACKS),
    "register": (RISK_CLASSIFIED, ESCALATION_DUE, ESCALATION_ACKS),
    "reporting": ALL_TOPICS,
}
EVENT_MODELS: dict[str, type[CloudEvent[Any]]] = {
    TICKET_EVENTS.name: TicketEvent,
    TICKET_FLAGGED.name: TicketFlaggedEvent,
    RISK_CLASSIFIED.name: RiskClassifiedEvent,
    ESCALATION_DUE.name: EscalationDueEvent,
    ESCALATION_ACKS.name: EscalationAcknowledgedEvent,
    RISK_REGISTERED.name: RiskRegisteredEvent,
    RISK_FEEDBACK.name: RiskFeedbackEvent,
}
EVENT_TYPES: dict[str, str] = {
    TICKET_EVENTS.name: "riskrelay.ticket.created.v1",
    TICKET_FLAGGED.name: "riskrelay.ticket.flagged.v1",
    RISK_CLASSIFIED.name: "riskrelay.risk.classified.v1",
    ESCALATION_DUE.name: "riskrelay.escalation.due.v1",
    ESCALATION_ACKS.name: "riskrelay.escalation.acknowledged.v1",
    RISK_REGISTERED.name: "riskrelay.risk.registered.v1",
    RISK_FEEDBACK.name: "riskrelay.risk.feedback.v1",
}
ROSTER_ROLES = ("agent", "team_lead", "support_manager", "support_director", "risk_management")
# The people of each role, reached by e-mail through the SMTP receiver; two team leads, so a
# notice must reach every person of its role, not just one.
ROSTER_PEOPLE: dict[str, tuple[str, ...]] = {
    "agent": ("agent",),
    "team_lead": ("lead-a", "lead-b"),
    "support_manager": ("manager",),
    "support_director": ("director",),
    "risk_management": ("risk",),
}
MAIL_CHANNEL = "mail"
MAIL_DOMAIN = "faults.example.org"
MAIL_CRASH_WINDOW_S = 2.0
"""An accepted e-mail re-sent after the escalator died (or lost its database) this soon after
the server's 250, before the attempt was recorded, is SMTP's at-least-once: the same Message-ID
comes again (a mail system drops it). Any other repeat is a duplicate."""


def person_address(person: str) -> str:
    return f"{person}@{MAIL_DOMAIN}"


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    duration: float = 120.0
    """Seconds of load; the faults are spread over this window."""
    rate: float = 20.0
    """Ticket events published per second."""
    seed: int = 7
    kills_per_service: int = 3
    malformed_rounds: int = 4
    critical_share: float = 0.04
    """Share of extra Critical (data breach, agent flag 5) tickets in the traffic."""
    flag_ratio: float = 0.2
    """Share of risky single tickets in the sample traffic."""
    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 1_000
    broker_pause_seconds: float = 9.0
    """Longer than the session timeout: every member is expired while the broker is frozen."""
    postgres_down_seconds: float = 3.0
    broker_restart: bool = True
    """SIGKILL the broker and start it again on the same log directory (Apache Kafka only: tansu
    keeps everything in memory, so a restart would lose the topics)."""
    broker_down_seconds: float = 2.0
    storm_service: str = "register"
    storm_seconds: float = 20.0
    """A rebalance storm: an instance of ``storm_service`` joins or leaves its group every
    ``storm_interval`` seconds for this long (0: none)."""
    storm_interval: float = 3.0
    restart_delay: tuple[float, float] = (0.3, 2.5)
    failing_delivery_share: float = 0.1
    """Share of notifications whose first delivery attempt the sink answers with 503 (the SMTP
    receiver: 451 to its DATA)."""
    lag_recovery_limit: float = 60.0
    """Seconds for every group's lag to reach zero after the faults heal. A killed intake must
    load its sentence encoder again and catch up at its per-ticket cost, which with the learned
    models takes up to about 40 s on a busy 2-core machine."""
    drain_timeout: float = 180.0
    drain_stable_seconds: float = 4.0
    services: tuple[str, ...] = SERVICES
    output: Path = RESULTS / "faults.json"
    log_dir: Path = RESULTS / "logs" / "faults"
    label: str = "full"
    keep: bool = False
    """Leave broker, database and services running after the checks, until SIGTERM/Ctrl-C."""


def short_options(**changes: Any) -> Options:
    """The preset ``make test`` runs: every fault at least once in about two minutes."""
    preset = Options(
        duration=30.0,
        rate=8.0,
        kills_per_service=1,
        malformed_rounds=2,
        critical_share=0.06,
        broker_restart=False,
        storm_seconds=0.0,
        output=RESULTS / "faults-short.json",
        label="short",
    )
    return replace(preset, **changes)


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------


class Clock:
    """Seconds since the run started, for progress lines and the fault timeline."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


CLOCK = Clock()


def say(message: str) -> None:
    console.print(f"[dim]{CLOCK.elapsed():7.1f}s[/] {message}")


# ---------------------------------------------------------------------------------------------
# Infrastructure
# ---------------------------------------------------------------------------------------------


@dataclass
class Infrastructure:
    bootstrap: str
    database_url: str
    broker: BrokerProcess | None
    postgres: EmbeddedPostgres | None


@contextlib.contextmanager
def infrastructure(workdir: Path) -> Iterator[Infrastructure]:
    kafka = os.environ.get("RISKRELAY_TEST_KAFKA")
    database = os.environ.get("RISKRELAY_TEST_DATABASE_URL")
    with contextlib.ExitStack() as stack:
        broker: BrokerProcess | None = None
        postgres: EmbeddedPostgres | None = None
        if not kafka:
            # The broker RISKRELAY_TEST_BROKER names: tansu by default, or Apache Kafka.
            broker = new_broker(
                broker_kind(os.environ), free_port(), workdir / "broker.log", workdir / "kafka"
            )
            broker.start()
            stack.callback(_stop_broker, broker)
            kafka = broker.bootstrap
        if not database:
            pg_dir = Path(tempfile.mkdtemp(prefix="riskrelay-faults-pg-"))
            postgres = EmbeddedPostgres(pg_dir, free_port())
            postgres.start()
            stack.callback(postgres.destroy)
            database = postgres.url
        yield Infrastructure(kafka, database, broker, postgres)


def _stop_broker(broker: BrokerProcess) -> None:
    with contextlib.suppress(Exception):
        broker.resume()  # a stopped process ignores SIGTERM until continued
    broker.stop()


# ---------------------------------------------------------------------------------------------
# Notification sink and SMTP receiver: where the roster's webhooks and e-mails go
# ---------------------------------------------------------------------------------------------


class NotificationSink:
    """Receives the escalator's webhook POSTs; refuses the first attempt of a fixed share."""

    def __init__(self, failing_share: float) -> None:
        self.failing_share = failing_share
        self.receipts: list[tuple[str, str]] = []  # (role, event id) of every 2xx answer
        self.refused = 0
        self._refused_once: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _should_refuse(self, key: tuple[str, str]) -> bool:
        digest = hashlib.sha256(f"{key[0]}/{key[1]}".encode()).digest()
        return digest[0] < 256 * self.failing_share and key not in self._refused_once

    def start(self) -> int:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                role = self.path.rstrip("/").rsplit("/", 1)[-1]
                try:
                    event_id = str(json.loads(body)["id"])
                except (ValueError, KeyError, TypeError):
                    event_id = "(unreadable)"
                key = (role, event_id)
                with sink._lock:
                    refuse = sink._should_refuse(key)
                    if refuse:
                        sink._refused_once.add(key)
                        sink.refused += 1
                    else:
                        sink.receipts.append(key)
                self.send_response(503 if refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def snapshot(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.receipts)


class MailReceiver:
    """SMTP server (aiosmtpd) for the roster's people: keeps the Message-ID and envelope
    recipient of every accepted e-mail; answers the first DATA of a fixed share with 451."""

    def __init__(self, failing_share: float) -> None:
        self.failing_share = failing_share
        self.receipts: list[MailReceipt] = []
        self.refused = 0
        self._refused_once: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def _should_refuse(self, key: tuple[str, str]) -> bool:
        digest = hashlib.sha256(f"mail/{key[0]}/{key[1]}".encode()).digest()
        return digest[0] < 256 * self.failing_share and key not in self._refused_once

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = message_from_bytes(raw, policy=email_policy.default)
        message_id = str(message.get("Message-ID", "")).strip().strip("<>")
        escalation_id = str(message.get("X-Riskrelay-Escalation", ""))
        keys = [(message_id, recipient.lower()) for recipient in envelope.rcpt_tos]
        with self._lock:
            if any(self._should_refuse(key) for key in keys):
                self._refused_once.update(keys)
                self.refused += 1
                return "451 4.3.0 Temporarily unable to accept the message, try again"
            at = CLOCK.elapsed()
            self.receipts += [MailReceipt(*key, escalation_id, at) for key in keys]
        return "250 2.0.0 Accepted"

    def start(self) -> int:
        self._controller = Controller(self, hostname="127.0.0.1", port=free_port())
        self._controller.start()
        return int(self._controller.port)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def snapshot(self) -> list[MailReceipt]:
        with self._lock:
            return list(self.receipts)


@dataclass(frozen=True)
class MailReceipt:
    message_id: str
    recipient: str
    escalation_id: str
    at: float
    """Seconds since the run started (the fault timeline's clock)."""


def write_roster(path: Path, sink_port: int, smtp_port: int) -> None:
    lines = [
        "source: riskrelay-faults",
        "channels:",
        f"  {MAIL_CHANNEL}: {{type: email, host: 127.0.0.1, port: {smtp_port}, security: none,",
        "         from_address: riskrelay-faults@example.org, timeout_s: 5}",
        "people:",
    ]
    for people in ROSTER_PEOPLE.values():
        for person in people:
            lines.append(
                f"  {person}: {{name: {person}, email: {person_address(person)},"
                f" channels: [{MAIL_CHANNEL}]}}"
            )
    lines.append("roles:")
    for role in ROSTER_ROLES:
        url = f"http://127.0.0.1:{sink_port}/notify/{role}"
        lines += [
            f"  {role}:",
            f"    people: [{', '.join(ROSTER_PEOPLE[role])}]",
            "    channels:",
            f'      - {{type: webhook, url: "{url}"}}',
        ]
    lines += [
        "delivery:",
        "  initial_delay: 1s",
        "  multiplier: 2",
        "  max_delay: 4s",
        "  max_attempts: 10",
        "  jitter_ratio: 0.2",
    ]
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# Service processes
# ---------------------------------------------------------------------------------------------


@dataclass
class Instance:
    service: str
    number: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    retiring: bool = False
    """Set before this harness stops or kills it: its exit is expected."""


@dataclass
class ExitRecord:
    service: str
    number: int
    code: int | None
    at: float
    log: str


class Fleet:
    """The service processes: start, kill, restart, scale, and restart any that die on their own.

    Restarts wait while an infrastructure fault is in progress (a process that cannot reach the
    broker at start-up exits, as it should; an orchestrator would restart it later), and
    infrastructure faults wait until no instance is starting, so every fault is the one meant.
    """

    def __init__(
        self,
        infra: Infrastructure,
        prefix: str,
        schema_prefix: str,
        options: Options,
        roster: Path,
        workdir: Path,
    ) -> None:
        self.infra = infra
        self.prefix = prefix
        self.schema_prefix = schema_prefix
        self.options = options
        self.roster = roster
        self.workdir = workdir
        self.instances: dict[str, list[Instance]] = {name: [] for name in options.services}
        self.locks: dict[str, asyncio.Lock] = {name: asyncio.Lock() for name in options.services}
        self.infra_quiet = asyncio.Event()
        self.infra_quiet.set()
        self.starting = 0
        self.none_starting = asyncio.Event()
        self.none_starting.set()
        self.spawned = 0
        self.unexpected_exits: list[ExitRecord] = []

    def schema(self, service: str) -> str:
        return f"{self.schema_prefix}_{service}"

    def group(self, service: str) -> str:
        return f"{self.prefix}riskrelay-{service}"

    def environment(self, service: str, port: int) -> dict[str, str]:
        env_prefix = f"RISKRELAY_{service.upper()}_"
        values = {
            "KAFKA__BOOTSTRAP": self.infra.bootstrap,
            "KAFKA__TOPIC_PREFIX": self.prefix,
            "KAFKA__SESSION_TIMEOUT_MS": str(self.options.session_timeout_ms),
            "KAFKA__HEARTBEAT_INTERVAL_MS": str(self.options.heartbeat_interval_ms),
            "DATABASE__URL": self.infra.database_url,
            "DATABASE__SCHEMA_NAME": self.schema(service),
            "DATABASE__POOL_MAX": "5",
            "HTTP__HOST": "127.0.0.1",
            "HTTP__PORT": str(port),
            "LOG_LEVEL": "INFO",
            "LOG_FORMAT": "json",
        }
        if service == "escalator":
            values |= {
                "ROSTER_PATH": str(self.roster),
                "DELIVERY__LEASE_S": "8",
                "TIMERS__SWEEP_INTERVAL_S": "1",
            }
        if service == "reporting":
            values |= {
                "SCHEDULE__ENABLED": "false",
                "SCHEDULE__DIRECTORY": str(self.workdir / "reports"),
            }
        return {**os.environ, **{env_prefix + key: value for key, value in values.items()}}

    def spawn(self, service: str) -> Instance:
        self.spawned += 1
        port = free_port()
        self.options.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.options.log_dir / f"{service}-{self.spawned:03d}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", f"riskrelay.{service}"],
                env=self.environment(service, port),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        instance = Instance(service, self.spawned, port, process, log)
        self.instances[service].append(instance)
        return instance

    async def wait_ready(self, instance: Instance, timeout: float = 120.0) -> bool:
        """True once /readyz answers 200; False when the process exited first."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{instance.port}/readyz"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if instance.process.poll() is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return True
                await asyncio.sleep(0.25)
        raise TimeoutError(
            f"{instance.service} not ready after {timeout:.0f} s; see {instance.log}"
        )

    async def start(self, service: str) -> Instance:
        """Start one instance and wait until it is ready, retrying when it exits at start-up."""
        self.starting += 1
        self.none_starting.clear()
        try:
            for _attempt in range(10):
                await self.infra_quiet.wait()
                instance = self.spawn(service)
                if await self.wait_ready(instance):
                    return instance
                self._record_exit(instance)
                self.instances[service].remove(instance)
                await asyncio.sleep(2.0)
            raise RuntimeError(f"{service} failed to start 10 times; see {self.options.log_dir}")
        finally:
            self.starting -= 1
            if not self.starting:
                self.none_starting.set()

    def _record_exit(self, instance: Instance) -> None:
        record = ExitRecord(
            instance.service,
            instance.number,
            instance.process.returncode,
            round(CLOCK.elapsed(), 1),
            str(instance.log),
        )
        self.unexpected_exits.append(record)
        say(
            f"[red]{instance.service} #{instance.number} exited on its own"
            f" (code {instance.process.returncode}); see {instance.log}[/]"
        )

    @staticmethod
    def kill(instance: Instance) -> None:
        instance.retiring = True
        with contextlib.suppress(ProcessLookupError):
            instance.process.send_signal(signal.SIGKILL)
        instance.process.wait(10)

    @staticmethod
    async def terminate(instance: Instance, timeout: float = 20.0) -> None:
        instance.retiring = True
        with contextlib.suppress(ProcessLookupError):
            instance.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(instance.process.wait, timeout)
        except subprocess.TimeoutExpired:
            Fleet.kill(instance)

    async def supervise(self) -> None:
        """Restart instances that died without being told to (what an orchestrator does)."""
        while True:
            await asyncio.sleep(0.5)
            for service, instances in self.instances.items():
                for instance in list(instances):
                    if instance.retiring or instance.process.poll() is None:
                        continue
                    if self.locks[service].locked():
                        continue  # a fault on this service is in progress and will handle it
                    async with self.locks[service]:
                        if instance in instances and not instance.retiring:
                            self._record_exit(instance)
                            instance.retiring = True
                            instances.remove(instance)
                            await self.start(service)

    def shutdown(self) -> None:
        for instances in self.instances.values():
            for instance in instances:
                instance.retiring = True
                if instance.process.poll() is None:
                    instance.process.send_signal(signal.SIGTERM)
        for instances in self.instances.values():
            for instance in instances:
                try:
                    instance.process.wait(20)
                except subprocess.TimeoutExpired:
                    instance.process.kill()
                    instance.process.wait(5)


# ---------------------------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------------------------

BREACH_TEXTS: tuple[tuple[str, str], ...] = (
    (
        "Data breach: our customer records are public",
        "We found a personal data breach: a public link lists our customers' names, e-mail"
        " addresses and card numbers. This is a data leak affecting everyone we serve.",
    ),
    (
        "Privacy breach in your export",
        "Your export showed me other people's personal data, addresses and phone numbers."
        " This is a serious data breach and our lawyers are informed.",
    ),
    (
        "Customer data exposure",
        "A data exposure: thousands of rows of other customers' information were visible in"
        " my dashboard today. Please treat this as a data breach incident.",
    ),
)


def critical_ticket(number: int, run_id: str, rng: random.Random) -> TicketEvent:
    """A Critical report: data breach text and the agent's level 5 Risk Flag."""
    tenant = rng.choice(TENANTS)
    product = rng.choice(tenant.products)
    subject, body = rng.choice(BREACH_TEXTS)
    ticket_id = f"CRIT-{number}-{run_id}"
    return TicketEvent(
        id=f"faults-critical-{number}-{run_id}",
        source=tenant.source,
        type="riskrelay.ticket.created.v1",
        time=datetime.now(UTC),
        subject=ticket_id,
        data=TicketData(
            ticket_id=ticket_id,
            subject=subject,
            description=body,
            channel="email",
            customer=Customer(id=f"C-crit-{number}-{run_id}", segment="enterprise"),
            product=product.name,
            priority="urgent",
            tags=["security"],
            agent_id="agent-faults",
            risk_flag=RiskFlag(
                level=RiskLevel.CRITICAL,
                category=RiskCategory.DATA_SECURITY_PRIVACY,
                description="customer data exposed",
                affected_customers=rng.randint(50, 5000),
            ),
        ),
    )


def unique_event(event: TicketEvent, run_id: str) -> TicketEvent:
    """The same event with its event id and ticket id made unique to this run."""
    ticket_id = f"{event.data.ticket_id}-{run_id}"
    return event.model_copy(
        update={
            "id": f"{event.id}-{run_id}",
            "subject": ticket_id,
            "data": event.data.model_copy(update={"ticket_id": ticket_id}),
        }
    )


def prepare_traffic(options: Options, run_id: str) -> list[TicketEvent]:
    count = max(1, int(options.duration * options.rate))
    rng = random.Random(options.seed)
    base = generate(
        count,
        seed=options.seed,
        start=datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
        flag_ratio=options.flag_ratio,
    )
    traffic: list[TicketEvent] = []
    for number, event in enumerate(base):
        if rng.random() < options.critical_share:
            traffic.append(critical_ticket(number, run_id, rng))
        traffic.append(unique_event(event, run_id))
    return traffic[:count]


class LoadGenerator:
    """Publishes the traffic at a fixed rate; an event counts as accepted once acknowledged.

    Each event's ``time`` is set when it is sent, so escalation clocks start now (the escalator
    then notifies at once for every immediate step). A send that fails is sent again, with the
    same bytes, until acknowledged: what an upstream with at-least-once delivery does.
    """

    def __init__(self, bootstrap: str, topic: str, traffic: list[TicketEvent], rate: float):
        self.bootstrap = bootstrap
        self.topic = topic
        self.traffic = traffic
        self.rate = rate
        self.accepted: dict[str, str] = {}  # upstream event id -> source
        self.sent = 0
        self.send_failures = 0
        self.retry_queue: list[tuple[bytes, bytes, TicketEvent]] = []
        self.finished_at: float | None = None

    def _on_done(self, key: bytes, value: bytes, event: TicketEvent) -> Callable[[Any], None]:
        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                self.send_failures += 1
                self.retry_queue.append((key, value, event))
            else:
                self.accepted[event.id] = event.source

        return done

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=5,
            enable_idempotence=False,
            request_timeout_ms=20_000,
        )
        await producer.start()
        try:
            started = time.monotonic()
            pending: list[asyncio.Future[Any]] = []
            for index, event in enumerate(self.traffic):
                delay = started + index / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                stamped = event.model_copy(update={"time": datetime.now(UTC)})
                key, value = event.data.ticket_id.encode(), stamped.to_json_bytes()
                pending.append(await self._send(producer, key, value, event))
            self.finished_at = CLOCK.elapsed()
            await asyncio.gather(*pending, return_exceptions=True)
            for _round in range(20):
                if not self.retry_queue:
                    break
                retry, self.retry_queue = self.retry_queue, []
                futures = [await self._send(producer, k, v, e) for k, v, e in retry]
                await asyncio.gather(*futures, return_exceptions=True)
                await asyncio.sleep(1.0)
        finally:
            await producer.stop()

    async def _send(
        self, producer: AIOKafkaProducer, key: bytes, value: bytes, event: TicketEvent
    ) -> asyncio.Future[Any]:
        self.sent += 1
        try:
            future: asyncio.Future[Any] = await producer.send(self.topic, value=value, key=key)
        except Exception:
            self.send_failures += 1
            self.retry_queue.append((key, value, event))
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        future.add_done_callback(self._on_done(key, value, event))
        return future


# ---------------------------------------------------------------------------------------------
# Malformed records
# ---------------------------------------------------------------------------------------------

MALFORMED_KINDS = ("invalid_json", "not_an_event", "wrong_type", "unknown_version")


@dataclass(frozen=True)
class Malformed:
    topic: str  # registry name
    kind: str
    marker: str


def malformed_value(topic: str, kind: str, marker: str) -> bytes:
    expected = EVENT_TYPES[topic]
    if kind == "invalid_json":
        return f'{{"id": "{marker}", "type": "{expected}", "data": {{'.encode()
    if kind == "not_an_event":
        return json.dumps(["riskrelay", marker, 42]).encode()
    other = EVENT_TYPES[TICKET_FLAGGED.name if topic == TICKET_EVENTS.name else TICKET_EVENTS.name]
    event_type = other if kind == "wrong_type" else expected.rsplit(".", 1)[0] + ".v9"
    envelope = {
        "specversion": "1.0",
        "id": marker,
        "source": "faults://malformed",
        "type": event_type,
        "time": datetime.now(UTC).isoformat(),
        "subject": marker,
        "data": {"marker": marker},
    }
    return json.dumps(envelope).encode()


async def publish_malformed(
    bootstrap: str, prefix: str, round_number: int, run_id: str
) -> list[Malformed]:
    """One record of each malformed kind into every main topic; returns those acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=20_000)
    await producer.start()
    acknowledged: list[Malformed] = []
    try:
        items = [
            Malformed(spec.name, kind, f"malformed-{run_id}-{round_number}-{spec.name}-{kind}")
            for spec in MAIN_TOPICS
            for kind in MALFORMED_KINDS
        ]
        futures = [
            await producer.send(
                prefix + item.topic,
                value=malformed_value(item.topic, item.kind, item.marker),
                key=item.marker.encode(),
            )
            for item in items
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        acknowledged = [
            item
            for item, result in zip(items, results, strict=True)
            if not isinstance(result, BaseException)
        ]
    finally:
        await producer.stop()
    return acknowledged


# ---------------------------------------------------------------------------------------------
# Kafka probes: lag and topic contents
# ---------------------------------------------------------------------------------------------


def partitions_of(prefix: str, specs: Iterable[TopicSpec]) -> list[TopicPartition]:
    return [TopicPartition(prefix + s.name, p) for s in specs for p in range(s.partitions)]


class KafkaProbe:
    """End offsets and committed offsets. Committed offsets are read through a consumer that
    carries the group id but never subscribes (so it never joins the group): the embedded
    broker answers the consumer's OffsetFetch but not the admin client's version of it."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer = self._consumer(None)
        self.groups: dict[str, AIOKafkaConsumer] = {}

    def _consumer(self, group: str | None) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            request_timeout_ms=10_000,
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        for consumer in [self.consumer, *self.groups.values()]:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def end_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        return await true_end_offsets(self.consumer, partitions)

    async def committed(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if group not in self.groups:
            consumer = self._consumer(group)
            await consumer.start()
            self.groups[group] = consumer
        consumer = self.groups[group]
        offsets = await asyncio.gather(*(consumer.committed(tp) for tp in partitions))
        return {tp: offset or 0 for tp, offset in zip(partitions, offsets, strict=True)}

    async def lag(
        self, group: str, partitions: Sequence[TopicPartition], ends: dict[TopicPartition, int]
    ) -> int:
        written = [tp for tp in partitions if ends.get(tp, 0) > 0]  # empty ones cannot lag
        committed = await self.committed(group, written)
        return sum(max(ends[tp] - committed[tp], 0) for tp in written)


async def read_all(bootstrap: str, topic: str, partitions: int) -> list[ConsumerRecord[Any, Any]]:
    """Every record of ``topic`` from the beginning to its current end, no consumer group.

    ``assign`` makes aiokafka reset each partition's position at once with the consumer's
    ``auto_offset_reset``, and it applies that answer even when a seek came in meanwhile: with
    the default (``latest``) the read started at the end and returned nothing, silently. So
    the reset policy is ``earliest`` and every position is set explicitly; a partition counts
    as read only once records were returned from it, up to its end offset.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        assignment = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assignment)
        ends = await true_end_offsets(consumer, assignment)
        beginnings: dict[TopicPartition, int] = await consumer.beginning_offsets(assignment)
        for tp in assignment:
            consumer.seek(tp, beginnings[tp])
        records: list[ConsumerRecord[Any, Any]] = []
        remaining = {tp for tp in assignment if ends[tp] > beginnings[tp]}
        returned: set[TopicPartition] = set()
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=5_000)
            for tp, items in batch.items():
                records.extend(items)
                if items:
                    returned.add(tp)
                if items and items[-1].offset >= ends[tp] - 1:
                    remaining.discard(tp)
            for tp in remaining & returned:
                # The last offsets may hold no record a consumer is given (a transaction
                # marker): the position past them says the partition was read to its end.
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        if remaining:
            unread = [
                f"partition {tp.partition} at {await consumer.position(tp)}"
                f" of {beginnings[tp]}..{ends[tp]}"
                for tp in sorted(remaining)
            ]
            raise TimeoutError(f"could not read {topic} to its end: {', '.join(unread)}")
        return records
    finally:
        await consumer.stop()


def header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


@dataclass
class FaultRecord:
    kind: str
    target: str
    at: float
    healed_at: float | None = None
    note: str = ""


@dataclass(frozen=True)
class PlannedFault:
    at: float  # seconds after the load started
    kind: str
    target: str


def plan_faults(
    options: Options,
    rng: random.Random,
    *,
    can_pause: bool,
    can_restart_pg: bool,
    can_restart_broker: bool = False,
    can_storm: bool = True,
) -> list[PlannedFault]:
    """The fault timeline over the first 70 % of the load (the rest shows recovery under load):
    kills at random moments, the classifier scaled up early and back down mid-way, a rebalance
    storm early on, the broker pause, the database restart and the broker restart in windows of
    their own, malformed rounds spread out."""
    d = options.duration
    plan: list[PlannedFault] = []
    for service in options.services:
        for _ in range(options.kills_per_service):
            plan.append(PlannedFault(rng.uniform(0.05 * d, 0.6 * d), "kill", service))
    if "classifier" in options.services:
        plan.append(PlannedFault(rng.uniform(0.0, 0.05 * d), "scale_up", "classifier"))
        plan.append(PlannedFault(rng.uniform(0.45 * d, 0.55 * d), "scale_down", "classifier"))
    if can_pause:
        plan.append(PlannedFault(rng.uniform(0.15 * d, 0.3 * d), "broker_pause", "broker"))
    if can_restart_pg:
        plan.append(PlannedFault(rng.uniform(0.4 * d, 0.6 * d), "postgres_restart", "postgres"))
    if can_restart_broker and options.broker_restart:
        plan.append(PlannedFault(rng.uniform(0.62 * d, 0.7 * d), "broker_restart", "broker"))
    if can_storm and options.storm_seconds > 0 and options.storm_service in options.services:
        at = rng.uniform(0.05 * d, 0.1 * d)
        plan.append(PlannedFault(at, "rebalance_storm", options.storm_service))
    for n in range(options.malformed_rounds):
        at = (n + 0.5) / options.malformed_rounds * 0.7 * d
        plan.append(PlannedFault(at, "malformed", "topics"))
    return sorted(plan, key=lambda fault: fault.at)


class FaultInjector:
    def __init__(
        self,
        fleet: Fleet,
        infra: Infrastructure,
        options: Options,
        rng: random.Random,
        run_id: str,
    ) -> None:
        self.fleet = fleet
        self.infra = infra
        self.options = options
        self.rng = rng
        self.run_id = run_id
        self.records: list[FaultRecord] = []
        self.malformed: list[Malformed] = []
        self._malformed_rounds = 0
        self._infrastructure = asyncio.Lock()  # one infrastructure fault at a time

    async def run(self, plan: Sequence[PlannedFault], load_started: float) -> None:
        async def at_time(fault: PlannedFault) -> None:
            await asyncio.sleep(max(0.0, load_started + fault.at - CLOCK.elapsed()))
            await self.inject(fault)

        await asyncio.gather(*(at_time(fault) for fault in plan))

    async def inject(self, fault: PlannedFault) -> None:
        handlers: dict[str, Callable[[PlannedFault], Awaitable[None]]] = {
            "kill": self.kill_and_restart,
            "scale_up": self.scale_up,
            "scale_down": self.scale_down,
            "broker_pause": self.pause_broker,
            "postgres_restart": self.restart_postgres,
            "broker_restart": self.restart_broker,
            "rebalance_storm": self.rebalance_storm,
            "malformed": self.inject_malformed,
        }
        await handlers[fault.kind](fault)

    def _record(self, kind: str, target: str, note: str = "") -> FaultRecord:
        record = FaultRecord(kind, target, round(CLOCK.elapsed(), 1), note=note)
        self.records.append(record)
        return record

    @staticmethod
    def _healed(record: FaultRecord) -> None:
        record.healed_at = round(CLOCK.elapsed(), 1)

    async def kill_and_restart(self, fault: PlannedFault) -> None:
        service = fault.target
        async with self.fleet.locks[service]:
            instances = [i for i in self.fleet.instances[service] if not i.retiring]
            if not instances:
                return
            victim = self.rng.choice(instances)
            record = self._record("kill", service, f"SIGKILL #{victim.number}")
            Fleet.kill(victim)
            self.fleet.instances[service].remove(victim)
            say(f"[bold red]SIGKILL[/] {service} #{victim.number}")
            await asyncio.sleep(self.rng.uniform(*self.options.restart_delay))
            replacement = await self.fleet.start(service)
            self._healed(record)
            say(f"[green]restarted[/] {service} as #{replacement.number}")

    async def scale_up(self, fault: PlannedFault) -> None:
        service = fault.target
        async with self.fleet.locks[service]:
            record = self._record("scale_up", service, "1 -> 3 instances")
            say(f"[bold yellow]scale[/] {service} 1 -> 3")
            await asyncio.gather(self.fleet.start(service), self.fleet.start(service))
            self._healed(record)
            say(f"[green]{service} at 3 instances[/]")

    async def scale_down(self, fault: PlannedFault) -> None:
        service = fault.target
        async with self.fleet.locks[service]:
            extra = [i for i in self.fleet.instances[service] if not i.retiring][1:]
            record = self._record("scale_down", service, f"{len(extra) + 1} -> 1 instances")
            say(f"[bold yellow]scale[/] {service} {len(extra) + 1} -> 1 (SIGTERM)")
            await asyncio.gather(*(Fleet.terminate(i) for i in extra))
            for instance in extra:
                self.fleet.instances[service].remove(instance)
            self._healed(record)

    @contextlib.asynccontextmanager
    async def _infrastructure_fault(self) -> AsyncIterator[None]:
        """One infrastructure fault at a time: wait until no instance is starting, then hold
        restarts until the fault heals."""
        await self._infrastructure.acquire()
        try:
            await self.fleet.none_starting.wait()
            self.fleet.infra_quiet.clear()
            yield
        finally:
            self.fleet.infra_quiet.set()
            self._infrastructure.release()

    async def pause_broker(self, fault: PlannedFault) -> None:
        assert self.infra.broker is not None
        async with self._infrastructure_fault():
            seconds = self.options.broker_pause_seconds
            record = self._record("broker_pause", "broker", f"SIGSTOP {seconds:.0f} s")
            say(f"[bold red]SIGSTOP[/] broker for {seconds:.0f} s")
            self.infra.broker.pause()
            await asyncio.sleep(seconds)
            self.infra.broker.resume()
            self._healed(record)
            say("[green]SIGCONT[/] broker")

    async def restart_postgres(self, fault: PlannedFault) -> None:
        postgres = self.infra.postgres
        assert postgres is not None
        async with self._infrastructure_fault():
            record = self._record("postgres_restart", "postgres", "pg_ctl stop -m fast; start")
            say("[bold red]stop[/] PostgreSQL")
            await asyncio.to_thread(postgres.stop, "fast")
            await asyncio.sleep(self.options.postgres_down_seconds)
            await asyncio.to_thread(postgres.start)
            self._healed(record)
            say("[green]PostgreSQL started again[/]")

    async def restart_broker(self, fault: PlannedFault) -> None:
        broker = self.infra.broker
        assert broker is not None
        async with self._infrastructure_fault():
            record = self._record("broker_restart", "broker", "SIGKILL; start on the same log dir")
            say("[bold red]SIGKILL[/] broker")
            broker.kill()
            await asyncio.sleep(self.options.broker_down_seconds)
            started = CLOCK.elapsed()
            await asyncio.to_thread(broker.start)
            record.note += f" (answered {CLOCK.elapsed() - started:.1f} s after start)"
            self._healed(record)
            say("[green]broker started again[/]")

    async def rebalance_storm(self, fault: PlannedFault) -> None:
        """An instance joins (starts) or leaves (SIGTERM) the group every few seconds, without
        waiting for the previous change to settle; each change rebalances the whole group."""
        service = fault.target
        seconds, interval = self.options.storm_seconds, self.options.storm_interval
        record = self._record("rebalance_storm", service)
        say(f"[bold yellow]rebalance storm[/] {service}: a join or a leave every {interval:g} s")
        starting: set[asyncio.Task[Instance]] = set()
        joined: list[Instance] = []
        leaving: list[asyncio.Task[None]] = []
        joins = leaves = 0

        async def leave(instance: Instance) -> None:
            async with self.fleet.locks[service]:
                if instance in self.fleet.instances[service]:  # a kill may have replaced it
                    self.fleet.instances[service].remove(instance)
            await Fleet.terminate(instance)

        deadline = CLOCK.elapsed() + seconds
        while CLOCK.elapsed() < deadline:
            for task in [t for t in starting if t.done()]:
                starting.discard(task)
                joined.append(task.result())
            if joined and (len(joined) + len(starting) >= 2 or self.rng.random() < 0.5):
                leaving.append(asyncio.create_task(leave(joined.pop())))
                leaves += 1
            else:
                starting.add(asyncio.create_task(self.fleet.start(service)))
                joins += 1
            await asyncio.sleep(interval)
        joined.extend(await asyncio.gather(*starting))
        leaves += len(joined)
        await asyncio.gather(*leaving, *(leave(instance) for instance in joined))
        record.note = f"{joins} joins, {leaves} leaves in {seconds:g} s"
        self._healed(record)
        say(f"[green]storm over[/] {service}: {record.note}")

    async def inject_malformed(self, fault: PlannedFault) -> None:
        self._malformed_rounds += 1
        record = self._record("malformed", "every topic")
        items = await publish_malformed(
            self.infra.bootstrap, self.fleet.prefix, self._malformed_rounds, self.run_id
        )
        self.malformed.extend(items)
        record.note = f"{len(items)} records"
        self._healed(record)
        say(f"[bold magenta]malformed[/] {len(items)} records into {len(MAIN_TOPICS)} topics")


# ---------------------------------------------------------------------------------------------
# Lag recovery and drain
# ---------------------------------------------------------------------------------------------


async def group_lags(
    probe: KafkaProbe, fleet: Fleet
) -> tuple[dict[str, int], dict[TopicPartition, int]]:
    """Each group's lag over its topics, and the end offset of every partition."""
    ends = await probe.end_offsets(partitions_of(fleet.prefix, ALL_TOPICS))
    lags = {}
    for service in fleet.options.services:
        partitions = partitions_of(fleet.prefix, GROUP_TOPICS[service])
        lags[service] = await probe.lag(fleet.group(service), partitions, ends)
    return lags, ends


@dataclass
class LagRecovery:
    seconds: float | None
    """Until every group's lag was zero at once; None if not within the limit plus a minute."""
    by_group: dict[str, float]
    """Until each group's lag was first zero."""
    last: dict[str, int]
    """The last lag sample of each group."""


async def measure_lag_recovery(probe: KafkaProbe, fleet: Fleet, limit: float) -> LagRecovery:
    started = time.monotonic()
    lags: dict[str, int] = {}
    by_group: dict[str, float] = {}
    reported = started
    while time.monotonic() - started < limit + 60:
        try:
            async with asyncio.timeout(15):
                lags, _ = await group_lags(probe, fleet)
        except Exception as error:
            say(f"[dim]lag probe failed: {type(error).__name__}[/]")
            await asyncio.sleep(0.5)
            continue
        elapsed = time.monotonic() - started
        for group, lag in lags.items():
            if not lag:
                by_group.setdefault(group, round(elapsed, 1))
        if not any(lags.values()):
            return LagRecovery(elapsed, by_group, lags)
        if time.monotonic() - reported >= 5:
            reported = time.monotonic()
            say(f"[dim]lag {lags}[/]")
        await asyncio.sleep(0.5)
    return LagRecovery(None, by_group, lags)


async def pending_work(database_url: str, fleet: Fleet) -> dict[str, int]:
    """Unpublished outbox rows per service, and deliveries or due timers the escalator owes."""
    counts: dict[str, int] = {}
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        for service in fleet.options.services:
            schema = fleet.schema(service)
            if not await _table_exists(connection, schema, "outbox"):
                continue
            counts[f"{service}.outbox"] = await connection.fetchval(
                f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'
            )
        schema = fleet.schema("escalator")
        if "escalator" in fleet.options.services and await _table_exists(
            connection, schema, "notifications"
        ):
            counts["escalator.deliveries"] = await connection.fetchval(
                f"SELECT count(*) FROM \"{schema}\".notifications WHERE state IN ('pending', 'sending')"
            )
            counts["escalator.due_timers"] = await connection.fetchval(
                f"SELECT count(*) FROM \"{schema}\".timers WHERE state = 'pending' AND due_at <= now()"
            )
    finally:
        await connection.close()
    return counts


async def _table_exists(connection: asyncpg.Connection, schema: str, table: str) -> bool:
    found = await connection.fetchval("SELECT to_regclass($1)", f'"{schema}".{table}')
    return found is not None


async def drain(
    probe: KafkaProbe, fleet: Fleet, database_url: str, options: Options
) -> tuple[bool, float, dict[str, Any]]:
    """Wait until no group lags, nothing is pending and topic ends stop moving."""
    started = time.monotonic()
    every_partition = partitions_of(fleet.prefix, ALL_TOPICS)
    last: tuple[int, ...] | None = None
    stable_since: float | None = None
    state: dict[str, Any] = {}
    reported = started
    while time.monotonic() - started < options.drain_timeout:
        try:
            async with asyncio.timeout(20):
                lags, ends = await group_lags(probe, fleet)
                pending = await pending_work(database_url, fleet)
        except Exception as error:
            say(f"[dim]drain probe failed: {type(error).__name__}: {error}[/]")
            await asyncio.sleep(1.0)
            continue
        snapshot = tuple(ends[tp] for tp in every_partition)
        state = {"lag": lags, "pending": pending, "records": sum(snapshot)}
        if time.monotonic() - reported >= 5:
            reported = time.monotonic()
            busy = {k: v for k, v in {**lags, **pending}.items() if v}
            say(f"[dim]draining: {busy or 'quiet'}, {sum(snapshot)} records[/]")
        quiet = not any(lags.values()) and not any(pending.values())
        if quiet and snapshot == last:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= options.drain_stable_seconds:
                return True, time.monotonic() - started, state
        else:
            stable_since = None
        last = snapshot
        await asyncio.sleep(0.5)
    return False, time.monotonic() - started, state


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    examples: list[str] = field(default_factory=list)


@dataclass
class Stage:
    """One hop: how many events should have had an outcome, and what happened to them."""

    name: str
    expected: int
    accounted: int
    lost: int
    duplicated: int = 0
    raw_duplicates: int = 0


@dataclass
class TopicContents:
    records: list[ConsumerRecord[Any, Any]]
    events: dict[str, CloudEvent[Any]]  # decoded valid events by id (first seen)
    payloads: dict[str, set[str]]  # id -> distinct data payloads seen
    raw: int  # records that decode as events
    dlq_by_group: dict[str, set[str]]  # consumer group -> event ids (or markers) dead-lettered
    dlq_errors: dict[tuple[str, str], bool]  # (group, key) -> has a dlq_error header

    @property
    def raw_duplicates(self) -> int:
        return self.raw - len(self.events)


def _dlq_identity(record: ConsumerRecord[Any, Any]) -> list[str]:
    """What identifies a dead letter: its key (malformed markers) and its event id if any."""
    names = []
    if record.key:
        names.append(bytes(record.key).decode(errors="replace"))
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        names.append(str(json.loads(record.value)["id"]))
    return names


async def read_topic_contents(bootstrap: str, prefix: str, spec: TopicSpec) -> TopicContents:
    records = await read_all(bootstrap, prefix + spec.name, spec.partitions)
    model = EVENT_MODELS[spec.name]
    events: dict[str, CloudEvent[Any]] = {}
    payloads: dict[str, set[str]] = defaultdict(set)
    raw = 0
    for record in records:
        try:
            event = model.model_validate_json(record.value or b"")
        except ValueError:
            continue
        raw += 1
        events.setdefault(event.id, event)
        payloads[event.id].add(json.dumps(event.model_dump(mode="json")["data"], sort_keys=True))
    dead = await read_all(bootstrap, prefix + spec.dlq.name, spec.partitions)
    dlq_by_group: dict[str, set[str]] = defaultdict(set)
    dlq_errors: dict[tuple[str, str], bool] = {}
    for record in dead:
        group = header(record, "dlq_consumer_group") or "?"
        for name in _dlq_identity(record):
            dlq_by_group[group].add(name)
            dlq_errors[(group, name)] = dlq_errors.get((group, name), False) or bool(
                header(record, "dlq_error")
            )
    return TopicContents(records, events, dict(payloads), raw, dict(dlq_by_group), dlq_errors)


async def fetch_ids(connection: asyncpg.Connection, query: str) -> set[str]:
    return {str(row[0]) for row in await connection.fetch(query)}


def sample(items: Iterable[Any], n: int = 5) -> list[str]:
    return [str(item) for item in sorted(items, key=str)[:n]]


@dataclass
class Audit:
    """Reads every topic and every service's tables once, then answers the checks."""

    fleet: Fleet
    bootstrap: str
    database_url: str
    accepted: dict[str, str]
    malformed: list[Malformed]
    sink: NotificationSink
    mail: MailReceiver
    faults: list[FaultRecord]
    topics: dict[str, TopicContents] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    email: dict[str, Any] = field(default_factory=dict)

    def running(self, service: str) -> bool:
        return service in self.fleet.options.services

    def dead(self, topic: str, service: str) -> set[str]:
        return self.topics[topic].dlq_by_group.get(self.fleet.group(service), set())

    async def load(self) -> None:
        for spec in MAIN_TOPICS:
            self.topics[spec.name] = await read_topic_contents(
                self.bootstrap, self.fleet.prefix, spec
            )

    def check(self, name: str, problems: Iterable[Any], detail: str) -> Check:
        found = list(problems)
        result = Check(name, not found, f"{len(found)} {detail}")
        result.examples = sample(found, 50)
        self.checks.append(result)
        return result

    def consumed(
        self, stage: str, ids: set[str], processed: set[str], dead: set[str], topic: str
    ) -> None:
        missing = ids - processed - dead
        self.stages.append(
            Stage(
                stage,
                len(ids),
                len(ids) - len(missing),
                len(missing),
                raw_duplicates=self.topics[topic].raw_duplicates if topic else 0,
            )
        )
        self.check(
            f"{stage}: every event processed or dead-lettered",
            missing,
            f"of {len(ids)} missing from processed_events and the dlq",
        )

    async def run(self) -> None:
        await self.load()
        connection = await asyncpg.connect(self.database_url, timeout=10)
        try:
            await self._pipeline(connection)
            await self._duplicates(connection)
        finally:
            await connection.close()
        self._malformed()

    def processed_query(self, service: str) -> str:
        return f'SELECT event_id FROM "{self.fleet.schema(service)}".processed_events'

    async def _pipeline(self, connection: asyncpg.Connection) -> None:
        tickets = self.topics[TICKET_EVENTS.name]
        flagged = self.topics[TICKET_FLAGGED.name]
        classified = self.topics[RISK_CLASSIFIED.name]
        due = self.topics[ESCALATION_DUE.name]
        accepted = set(self.accepted)
        unknown = accepted - set(tickets.events)
        self.check(
            "accepted tickets are on ticket-events",
            unknown,
            f"of {len(accepted)} acknowledged tickets not found on the topic",
        )
        if self.running("intake"):
            processed = await fetch_ids(connection, self.processed_query("intake"))
            self.consumed(
                "ticket-events -> intake",
                accepted,
                processed,
                self.dead(TICKET_EVENTS.name, "intake"),
                TICKET_EVENTS.name,
            )
        if self.running("classifier"):
            processed = await fetch_ids(connection, self.processed_query("classifier"))
            self.consumed(
                "ticket-flagged -> classifier",
                set(flagged.events),
                processed,
                self.dead(TICKET_FLAGGED.name, "classifier"),
                TICKET_FLAGGED.name,
            )
        for service in ("escalator", "register"):
            if self.running(service):
                processed = await fetch_ids(connection, self.processed_query(service))
                self.consumed(
                    f"risk-classified -> {service}",
                    set(classified.events),
                    processed,
                    self.dead(RISK_CLASSIFIED.name, service),
                    RISK_CLASSIFIED.name,
                )
        if self.running("register"):
            processed = await fetch_ids(connection, self.processed_query("register"))
            self.consumed(
                "escalation-due -> register",
                set(due.events),
                processed,
                self.dead(ESCALATION_DUE.name, "register"),
                ESCALATION_DUE.name,
            )
            await self._register_rows(connection, classified)
        if self.running("reporting"):
            await self._reporting(connection)
        if self.running("escalator"):
            await self._escalations(connection, classified, due)

    async def _register_rows(
        self, connection: asyncpg.Connection, classified: TopicContents
    ) -> None:
        refused = self.dead(RISK_CLASSIFIED.name, "register")
        registrable = {
            event.data.risk_id
            for event in classified.events.values()
            if int(event.data.level) >= 3 and event.id not in refused
        }
        rows = await fetch_ids(
            connection, f'SELECT risk_id FROM "{self.fleet.schema("register")}".risks'
        )
        missing = registrable - rows
        self.stages.append(
            Stage(
                "risks at level 3-5 -> register row",
                len(registrable),
                len(registrable & rows),
                len(missing),
            )
        )
        self.check(
            "every risk at level 3-5 has a register row",
            missing,
            f"of {len(registrable)} risks without a row",
        )

    async def _reporting(self, connection: asyncpg.Connection) -> None:
        from riskrelay.reporting.ingest import claim_key

        processed = await fetch_ids(connection, self.processed_query("reporting"))
        expected: set[str] = set()
        missing: set[str] = set()
        for spec in MAIN_TOPICS:
            dead = self.dead(spec.name, "reporting")
            for event in self.topics[spec.name].events.values():
                key = claim_key(event)
                expected.add(key)
                if key not in processed and event.id not in dead:
                    missing.add(key)
        self.stages.append(
            Stage(
                "every topic -> reporting",
                len(expected),
                len(expected) - len(missing),
                len(missing),
            )
        )
        self.check(
            "reporting: every event on every topic applied or dead-lettered",
            missing,
            f"of {len(expected)} events not in reporting's read model",
        )

    async def _escalations(
        self, connection: asyncpg.Connection, classified: TopicContents, due: TopicContents
    ) -> None:
        """Replay the escalator's plan rules over risk-classified, in partition order: each
        risk's current plan must have fired the initial notice of every step already due."""
        from riskrelay.escalator.calendar import load_calendar
        from riskrelay.escalator.domain import due_event_id, plan_for_classification, plan_timers
        from riskrelay.escalator.policy import load_policy
        from riskrelay.shared.events import EscalationReason

        policy, calendar = load_policy(None), load_calendar(None)
        refused = self.dead(RISK_CLASSIFIED.name, "escalator")
        seen: set[str] = set()
        plans: dict[str, Any] = {}
        versions: Counter[str] = Counter()
        ordered = sorted(classified.records, key=lambda r: (r.partition, r.offset))
        for record in ordered:
            with contextlib.suppress(ValueError):
                event = RiskClassifiedEvent.model_validate_json(record.value or b"")
                if event.id in seen or event.id in refused:
                    continue
                seen.add(event.id)
                data = event.data
                change = plan_for_classification(
                    plans.get(data.risk_id),
                    risk_id=data.risk_id,
                    level=data.level,
                    flagged_at=data.flagged_at,
                    policy=policy,
                    calendar=calendar,
                )
                if change is not None:
                    plans[data.risk_id] = change.plan
                    versions[data.risk_id] += 1
        now = datetime.now(UTC)
        expected: dict[str, tuple[str, int]] = {}
        for risk_id, plan in plans.items():
            for timer in plan_timers(plan):
                if timer.reason is EscalationReason.INITIAL and timer.fire_at <= now:
                    expected[due_event_id(timer.key, plan.plan_version)] = (
                        risk_id,
                        int(plan.level),
                    )
        missing = {
            f"{eid} (risk {risk}, level {level})"
            for eid, (risk, level) in expected.items()
            if eid not in due.events
        }
        levels = Counter(level for _, level in expected.values())
        self.stages.append(
            Stage(
                "due initial escalations -> escalation-due",
                len(expected),
                len(expected) - len(missing),
                len(missing),
                raw_duplicates=due.raw_duplicates,
            )
        )
        self.check(
            "every risk's due initial escalations were published",
            missing,
            f"of {len(expected)} initial notices missing"
            f" (by level: {dict(sorted(levels.items()))})",
        )
        schema = self.fleet.schema("escalator")
        rows = await connection.fetch(
            f'SELECT risk_id, count(*) AS plans FROM "{schema}".escalations GROUP BY risk_id'
        )
        stored = {row["risk_id"]: row["plans"] for row in rows}
        wrong = {
            f"{risk}: {stored.get(risk, 0)} plans, expected {count}"
            for risk, count in versions.items()
            if stored.get(risk, 0) != count
        }
        self.check(
            "escalator: one plan per level change of each risk (none lost, none doubled)",
            wrong,
            f"of {len(versions)} risks with a wrong number of plans",
        )
        await self._notifications(connection, due)

    async def _notifications(self, connection: asyncpg.Connection, due: TopicContents) -> None:
        schema = self.fleet.schema("escalator")
        receipts = self.sink.snapshot()
        received = set(receipts)
        expected = {
            (event.data.target_role.value, event_id) for event_id, event in due.events.items()
        }
        missing = expected - received
        raw_duplicates = len(receipts) - len(received)
        rows = await connection.fetch(
            f'SELECT event_id, target, count(*) AS n FROM "{schema}".notifications'
            " GROUP BY event_id, target HAVING count(*) > 1"
        )
        doubled = {f"{row['event_id']} -> {row['target']} x{row['n']}" for row in rows}
        failed = await fetch_ids(
            connection,
            f"SELECT delivery_key FROM \"{schema}\".notifications WHERE state <> 'delivered'",
        )
        self.stages.append(
            Stage(
                "escalation-due -> notification delivered",
                len(expected),
                len(expected & received),
                len(missing),
                duplicated=len(doubled),
                raw_duplicates=raw_duplicates,
            )
        )
        self.check(
            "every escalation-due event was delivered to its role's webhook",
            missing,
            f"of {len(expected)} notifications never received"
            f" ({raw_duplicates} repeated deliveries of the same id, {self.sink.refused}"
            " first attempts refused on purpose)",
        )
        self.check(
            "notifications: one queued delivery per event and target, all delivered",
            doubled | failed,
            "notifications queued twice or not delivered",
        )
        await self._emails(connection, due)

    async def _emails(self, connection: asyncpg.Connection, due: TopicContents) -> None:
        """Each escalation-due event e-mailed to every person of its role: received (nothing
        lost), received once per event and person (nothing sent twice), its row delivered."""
        from riskrelay.escalator.person_notices import message_id

        expected: dict[tuple[str, str], str] = {}  # (Message-ID, recipient) -> event id
        for event_id, event in due.events.items():
            for person in ROSTER_PEOPLE[event.data.target_role.value]:
                address = person_address(person)
                expected[(message_id(event_id, address, MAIL_CHANNEL), address)] = event_id
        receipts = self.mail.snapshot()
        first_at: dict[tuple[str, str], float] = {}
        counts: Counter[tuple[str, str]] = Counter()
        for receipt in receipts:
            key = (receipt.message_id, receipt.recipient)
            counts[key] += 1
            first_at.setdefault(key, receipt.at)
        missing = {f"{expected[key]} -> {key[1]}" for key in expected.keys() - counts.keys()}
        unexpected = {f"unexpected {key[0]} -> {key[1]}" for key in counts.keys() - expected.keys()}
        unexpected |= {
            f"{receipt.message_id} -> {receipt.recipient}: X-Riskrelay-Escalation"
            f" {receipt.escalation_id!r}, its event's step is {step!r}"
            for receipt in receipts
            if (event_id := expected.get((receipt.message_id, receipt.recipient)))
            and receipt.escalation_id != (step := due.events[event_id].data.escalation_id)
        }
        repeats = {key: n for key, n in counts.items() if n > 1}
        windows = self._escalator_crash_windows()
        explained = {
            key for key in repeats if any(start <= first_at[key] <= end for start, end in windows)
        }
        doubled = {
            f"{key[0]} -> {key[1]} x{n}" for key, n in repeats.items() if key not in explained
        }
        schema = self.fleet.schema("escalator")
        rows = await connection.fetch(
            f"SELECT payload->>'message_id' AS message_id, recipient, state, attempts"
            f" FROM \"{schema}\".notifications WHERE channel = 'email'"
        )
        queued = {(row["message_id"], row["recipient"]) for row in rows}
        row_problems = {
            f"{row['message_id']} -> {row['recipient']}: {row['state']}"
            for row in rows
            if row["state"] != "delivered"
        } | {f"{expected[key]} -> {key[1]}: never queued" for key in expected.keys() - queued}
        events = {expected[key] for key in expected}
        self.email = {
            "events": len(events),
            "recipients": sum(len(people) for people in ROSTER_PEOPLE.values()),
            "expected": len(expected),
            "received": len(expected.keys() & counts.keys()),
            "lost": len(missing),
            "first_attempts_refused_451": self.mail.refused,
            "rows": len(rows),
            "rows_retried": sum(1 for row in rows if row["attempts"] > 1),
            "repeats": sum(n - 1 for n in repeats.values()),
            "repeats_after_crash": sum(repeats[key] - 1 for key in explained),
            "duplicated": len(doubled),
        }
        self.stages.append(
            Stage(
                "e-mail per escalation-due event and person",
                len(expected),
                len(expected.keys() & counts.keys()),
                len(missing),
                duplicated=len(doubled),
                raw_duplicates=self.email["repeats"],
            )
        )
        self.check(
            "every escalation-due event was e-mailed to each person of its role",
            missing,
            f"of {len(expected)} e-mails ({len(events)} events to their roles' people)"
            f" never received ({self.mail.refused} first attempts refused with 451 on purpose)",
        )
        self.check(
            "e-mail: no event received twice by one person, nothing unexpected",
            doubled | unexpected,
            "e-mails received twice or not expected"
            f" ({self.email['repeats_after_crash']} re-sent with the same Message-ID after the"
            " escalator died between the server's 250 and the attempt's record)",
        )
        self.check(
            "e-mail notifications: one row per expected e-mail, all delivered",
            row_problems,
            f"of {len(expected)} e-mails not queued or not delivered"
            f" ({self.email['rows_retried']} delivered after a retry)",
        )

    def _escalator_crash_windows(self) -> list[tuple[float, float]]:
        """When an accepted e-mail could go unrecorded: the escalator SIGKILLed, or its
        database down, within the crash window of the server's 250."""
        windows = []
        for fault in self.faults:
            if fault.kind == "kill" and fault.target == "escalator":
                windows.append((fault.at - MAIL_CRASH_WINDOW_S, fault.at + 0.5))
            elif fault.kind == "postgres_restart":
                healed = fault.healed_at if fault.healed_at is not None else fault.at
                windows.append((fault.at - MAIL_CRASH_WINDOW_S, healed + 0.5))
        return windows

    async def _duplicates(self, connection: asyncpg.Connection) -> None:
        """Derived events: one id per occurrence (re-sent records must repeat the same id and
        the same content), and one database effect per cause."""
        keys: dict[str, Callable[[Any], tuple[Any, ...]]] = {
            TICKET_FLAGGED.name: lambda e: (e.causationid, e.data.ticket_id),
            RISK_CLASSIFIED.name: lambda e: (e.causationid,),
            ESCALATION_DUE.name: lambda e: (
                e.data.risk_id,
                e.data.plan_version,
                e.data.escalation_id,
                e.data.reason.value,
                e.data.attempt,
                e.data.target_role.value,
            ),
            RISK_REGISTERED.name: lambda e: (e.data.risk_id, e.data.version),
        }
        for topic, key in keys.items():
            contents = self.topics[topic]
            ids_by_key: dict[tuple[Any, ...], set[str]] = defaultdict(set)
            for event_id, event in contents.events.items():
                if topic == RISK_CLASSIFIED.name and event.data.override is not None:
                    continue
                ids_by_key[key(event)].add(event_id)
            doubled = {f"{k}: {sorted(v)}" for k, v in ids_by_key.items() if len(v) > 1}
            conflicting = {i for i, p in contents.payloads.items() if len(p) > 1}
            self.check(
                f"{topic}: one event id per occurrence, repeats identical",
                doubled | conflicting,
                f"occurrences with several ids or ids with differing content"
                f" ({contents.raw_duplicates} repeated records of the same id are allowed)",
            )
            for stage in self.stages:
                if stage.name.startswith(topic):
                    stage.duplicated += len(doubled) + len(conflicting)
        if self.running("register"):
            schema = self.fleet.schema("register")
            rows = await connection.fetchval(f'SELECT count(*) FROM "{schema}".risks')
            distinct = await connection.fetchval(
                f'SELECT count(DISTINCT risk_id) FROM "{schema}".risks'
            )
            history = await connection.fetch(
                f'SELECT cause_event_id, count(*) AS n FROM "{schema}".risk_history'
                " WHERE cause_event_id IS NOT NULL GROUP BY cause_event_id HAVING count(*) > 1"
            )
            doubled = {f"{row['cause_event_id']} x{row['n']}" for row in history}
            if rows != distinct:
                doubled.add(f"{rows} risk rows for {distinct} risks")
            self.check(
                "register: one row per risk, one history version per cause event",
                doubled,
                "duplicated register effects",
            )
            for stage in self.stages:
                if stage.name.startswith("risks at level"):
                    stage.duplicated += len(doubled)
        if self.running("escalator"):
            schema = self.fleet.schema("escalator")
            rows = await connection.fetch(
                f'SELECT event_id, count(*) AS n FROM "{schema}".timers'
                " WHERE event_id IS NOT NULL GROUP BY event_id HAVING count(*) > 1"
            )
            doubled = {f"{row['event_id']} x{row['n']}" for row in rows}
            self.check(
                "escalator: each escalation-due id fired by one timer",
                doubled,
                "escalation-due ids fired by several timers",
            )

    def _malformed(self) -> None:
        missing: set[str] = set()
        for item in self.malformed:
            contents = self.topics[item.topic]
            for service in self.fleet.options.services:
                if not any(spec.name == item.topic for spec in GROUP_TOPICS[service]):
                    continue
                group = self.fleet.group(service)
                if not contents.dlq_errors.get((group, item.marker), False):
                    missing.add(f"{item.marker} (group {service})")
        found = len(self.malformed) - len({m.split(" ")[0] for m in missing})
        self.stages.append(
            Stage(
                "malformed -> <topic>.dlq", len(self.malformed), found, len(self.malformed) - found
            )
        )
        self.check(
            "every malformed record is in its topic's .dlq, with dlq_error, from every consumer",
            missing,
            f"of {len(self.malformed)} malformed records not dead-lettered",
        )


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


@dataclass
class Summary:
    label: str
    passed: bool
    options: dict[str, Any]
    faults: list[FaultRecord]
    fault_counts: dict[str, int]
    events_in: int
    accounted: int
    lost: int
    duplicated: int
    raw_duplicates: int
    lag_recovery_seconds: float | None
    lag_recovery_by_group: dict[str, float]
    drain_seconds: float
    stages: list[Stage]
    checks: list[Check]
    unexpected_exits: list[ExitRecord]
    notes: list[str]
    skipped_faults: list[str]
    load: dict[str, Any]
    email: dict[str, Any] = field(default_factory=dict)


async def execute(options: Options) -> Summary:
    """Run the whole scenario and return its summary (nothing is printed as a table here)."""
    run_id = uuid.uuid4().hex[:6]
    prefix = f"faults{run_id}."
    # SIGTERM (a CI timeout, `kill`) cancels the run so every process it started is stopped.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    rng = random.Random(options.seed)
    notes: list[str] = []
    if options.log_dir.exists():
        shutil.rmtree(options.log_dir, ignore_errors=True)
    options.log_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="riskrelay-faults-"))
    sink = NotificationSink(options.failing_delivery_share)
    mail = MailReceiver(options.failing_delivery_share)
    roster = workdir / "roster.yaml"
    write_roster(roster, sink.start(), mail.start())
    with infrastructure(options.log_dir) as infra:
        can_pause = infra.broker is not None
        can_restart_pg = infra.postgres is not None
        # tansu keeps everything in memory: only Apache Kafka restarts with its data.
        can_restart_broker = isinstance(infra.broker, ApacheKafkaBroker)
        if infra.broker is not None and not can_restart_broker and options.broker_restart:
            notes.append("broker restart skipped: tansu keeps its data in memory only")
        # tansu's group coordinator can, after a storm of joins and leaves, answer every join
        # with a departed member as the group's leader and no members: nobody is ever assigned
        # the partitions, and no rejoin or new process gets out of it (seen with a probe
        # consumer during a stuck run). Apache Kafka, the production broker, takes the storm.
        can_storm = infra.broker is None or isinstance(infra.broker, ApacheKafkaBroker)
        if not can_storm and options.storm_seconds > 0:
            notes.append(
                "rebalance storm skipped: tansu's group coordinator can lose the group's leader"
                " under it; Apache Kafka runs it (RISKRELAY_TEST_BROKER=kafka)"
            )
        if not can_pause:
            notes.append("broker pause skipped: RISKRELAY_TEST_KAFKA points at an external broker")
        if not can_restart_pg:
            notes.append(
                "PostgreSQL restart skipped: RISKRELAY_TEST_DATABASE_URL points at an external server"
            )
        for note in notes:
            say(f"[yellow]note:[/] {note}")
        admin = AIOKafkaAdminClient(bootstrap_servers=infra.bootstrap)
        await admin.start()
        try:
            await ensure_topics(admin, ALL_TOPICS, prefix, 1)
        finally:
            await admin.close()
        fleet = Fleet(infra, prefix, f"faults{run_id}", options, roster, workdir)
        supervisor: asyncio.Task[None] | None = None
        probe = KafkaProbe(infra.bootstrap)
        try:
            say(f"starting {', '.join(options.services)} (prefix {prefix})")
            await asyncio.gather(*(fleet.start(service) for service in options.services))
            fleet.unexpected_exits.clear()  # start-up races between services are not faults
            supervisor = asyncio.create_task(fleet.supervise())
            await probe.start()
            traffic = prepare_traffic(options, run_id)
            load = LoadGenerator(
                infra.bootstrap, prefix + TICKET_EVENTS.name, traffic, options.rate
            )
            plan = plan_faults(
                options,
                rng,
                can_pause=can_pause,
                can_restart_pg=can_restart_pg,
                can_restart_broker=can_restart_broker,
                can_storm=can_storm,
            )
            injector = FaultInjector(fleet, infra, options, rng, run_id)
            say(
                f"load: {len(traffic)} ticket events at {options.rate:g}/s;"
                f" {len(plan)} faults planned"
            )
            load_started = CLOCK.elapsed()
            progress = asyncio.create_task(_progress(load, fleet))

            async def faults() -> None:
                await injector.run(plan, load_started)
                say("every fault healed")

            try:
                await asyncio.gather(load.run(), faults())
            finally:
                progress.cancel()
            # Under load some records are always in flight, so "zero lag" is measured from the
            # moment the faults have healed and the load has stopped.
            say(
                f"load done: {len(load.accepted)} of {len(traffic)} accepted;"
                " measuring how long until no group lags"
            )
            lag = await measure_lag_recovery(probe, fleet, options.lag_recovery_limit)
            say(
                f"lag of every group zero after {lag.seconds:.1f} s"
                f" (first zero per group: {lag.by_group})"
                if lag.seconds is not None
                else f"lag not back to zero: {lag.last}"
            )
            drained, drain_seconds, drain_state = await drain(
                probe, fleet, infra.database_url, options
            )
            say(f"drained: {drained} after {drain_seconds:.1f} s ({drain_state})")
            audit = Audit(
                fleet,
                infra.bootstrap,
                infra.database_url,
                load.accepted,
                injector.malformed,
                sink,
                mail,
                injector.records,
            )
            await audit.run()
            if options.keep:
                say(
                    f"[bold]kept running[/]: bootstrap {infra.bootstrap}, database"
                    f" {infra.database_url}, prefix {prefix}; SIGTERM or Ctrl-C to stop"
                )
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()
        finally:
            if supervisor is not None:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
            await probe.stop()
            fleet.shutdown()
            sink.stop()
            mail.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    audit.checks.insert(
        0,
        Check(
            "lag of every group back to zero once faults healed and load stopped",
            lag.seconds is not None and lag.seconds <= options.lag_recovery_limit,
            f"{lag.seconds:.1f} s (limit {options.lag_recovery_limit:.0f} s);"
            f" per group {lag.by_group}"
            if lag.seconds is not None
            else f"not zero: {lag.last}",
        ),
    )
    audit.checks.insert(
        1,
        Check(
            "drained: no lag, empty outboxes, no pending deliveries, stable topics",
            drained,
            f"after {drain_seconds:.1f} s: {drain_state}",
        ),
    )
    audit.checks.append(
        Check(
            "no service process died on its own",
            not fleet.unexpected_exits,
            f"{len(fleet.unexpected_exits)} unexpected exits",
            [
                f"{e.service} #{e.number} code {e.code} at {e.at}s ({e.log})"
                for e in fleet.unexpected_exits
            ],
        )
    )
    intake_stage = next((s for s in audit.stages if s.name.startswith("ticket-events")), None)
    malformed_stage = next(s for s in audit.stages if s.name.startswith("malformed"))
    events_in = len(load.accepted) + len(injector.malformed)
    accounted = (intake_stage.accounted if intake_stage else 0) + malformed_stage.accounted
    counts = Counter(record.kind for record in injector.records)
    return Summary(
        label=options.label,
        passed=all(check.passed for check in audit.checks),
        options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        faults=injector.records,
        fault_counts=dict(counts),
        events_in=events_in,
        accounted=accounted,
        lost=sum(stage.lost for stage in audit.stages),
        duplicated=sum(stage.duplicated for stage in audit.stages),
        raw_duplicates=sum(stage.raw_duplicates for stage in audit.stages),
        lag_recovery_seconds=round(lag.seconds, 1) if lag.seconds is not None else None,
        lag_recovery_by_group=lag.by_group,
        drain_seconds=round(drain_seconds, 1),
        stages=audit.stages,
        checks=audit.checks,
        unexpected_exits=fleet.unexpected_exits,
        notes=notes,
        skipped_faults=[
            kind
            for kind, possible in (
                ("broker_pause", can_pause),
                ("postgres_restart", can_restart_pg),
                ("broker_restart", can_restart_broker or not options.broker_restart),
                ("rebalance_storm", can_storm or options.storm_seconds <= 0),
            )
            if not possible
        ],
        load={
            "events": len(traffic),
            "accepted": len(load.accepted),
            "sends": load.sent,
            "send_failures": load.send_failures,
            "critical": sum(1 for e in traffic if e.id.startswith("faults-critical-")),
        },
        email=audit.email,
    )


async def _progress(load: LoadGenerator, fleet: Fleet) -> None:
    while True:
        await asyncio.sleep(5)
        alive = {
            s: sum(1 for i in v if i.process.poll() is None) for s, v in fleet.instances.items()
        }
        say(
            f"[dim]load: {load.sent} sent, {len(load.accepted)} accepted,"
            f" {load.send_failures} send failures; instances {alive}[/]"
        )


def report(summary: Summary, output: Path) -> None:
    out = Console(width=160)
    faults = Table(title="faults injected")
    for column in ("kind", "count", "timeline (s)"):
        faults.add_column(column)
    for kind, count in sorted(summary.fault_counts.items()):
        when = ", ".join(
            f"{r.at:.0f}{'-' + format(r.healed_at, '.0f') if r.healed_at else ''} {r.target}"
            for r in summary.faults
            if r.kind == kind
        )
        faults.add_row(kind, str(count), when)
    out.print(faults)
    stages = Table(title="events")
    for column in ("stage", "expected", "accounted for", "lost", "duplicated", "raw repeats"):
        stages.add_column(column, justify="left" if column == "stage" else "right")
    for s in summary.stages:
        stages.add_row(
            s.name,
            str(s.expected),
            str(s.accounted),
            str(s.lost),
            str(s.duplicated),
            str(s.raw_duplicates),
        )
    out.print(stages)
    checks = Table(title="checks")
    checks.add_column("")
    checks.add_column("check")
    checks.add_column("detail")
    for c in summary.checks:
        detail = c.detail + (
            f"\n  e.g. {'; '.join(c.examples[:5])}" if c.examples and not c.passed else ""
        )
        checks.add_row("[green]PASS[/]" if c.passed else "[red]FAIL[/]", c.name, detail)
    out.print(checks)
    out.print(
        f"[bold]{summary.label} run:[/] faults {sum(summary.fault_counts.values())},"
        f" events in {summary.events_in}, accounted for {summary.accounted},"
        f" lost {summary.lost}, duplicated {summary.duplicated}"
        f" (raw repeated records {summary.raw_duplicates}),"
        f" lag recovery {summary.lag_recovery_seconds} s -> "
        + ("[green]PASSED[/]" if summary.passed else "[red]FAILED[/]")
    )
    if summary.email:
        e = summary.email
        out.print(
            f"[bold]e-mail:[/] {e['received']} of {e['expected']} received"
            f" ({e['events']} escalation-due events to {e['recipients']} people by role),"
            f" lost {e['lost']}, duplicated {e['duplicated']}; {e['first_attempts_refused_451']}"
            f" first attempts refused with 451, {e['rows_retried']} delivered on a retry,"
            f" {e['repeats']} repeats ({e['repeats_after_crash']} after an escalator crash)"
        )
    for note in summary.notes:
        out.print(f"[yellow]note:[/] {note}")
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        **asdict(summary),
    }
    output.write_text(json.dumps(document, indent=2, default=str))
    console.print(f"written to {output}")


def run(options: Options) -> Summary:
    """Run, print the tables, write the JSON; what ``main`` and the e2e test call."""
    summary = asyncio.run(execute(options))
    report(summary, options.output)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help="the short preset `make test` runs")
    parser.add_argument("--duration", type=float, help="seconds of load")
    parser.add_argument("--rate", type=float, help="ticket events per second")
    parser.add_argument("--seed", type=int, help="seed of the traffic and the fault timeline")
    parser.add_argument("--kills", type=int, help="SIGKILLs per service")
    parser.add_argument("--services", help="comma-separated subset of services (default: all five)")
    parser.add_argument("--output", type=Path, help="JSON summary path")
    parser.add_argument(
        "--broker-restart",
        action=argparse.BooleanOptionalAction,
        help="SIGKILL Apache Kafka and start it on its log dir (default: on, off with --short)",
    )
    parser.add_argument(
        "--storm", type=float, help="seconds of rebalance storm (default: 20, none with --short)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep everything running after the checks (debugging)"
    )
    args = parser.parse_args()
    changes: dict[str, Any] = {}
    for name, attribute in (
        ("duration", "duration"),
        ("rate", "rate"),
        ("seed", "seed"),
        ("kills", "kills_per_service"),
        ("output", "output"),
        ("broker_restart", "broker_restart"),
        ("storm", "storm_seconds"),
    ):
        if getattr(args, name) is not None:
            changes[attribute] = getattr(args, name)
    if args.services:
        chosen = tuple(s.strip() for s in args.services.split(",") if s.strip())
        unknown = set(chosen) - set(SERVICES)
        if unknown:
            parser.error(f"unknown services: {', '.join(sorted(unknown))}")
        changes["services"] = chosen
    if args.keep:
        changes["keep"] = True
    options = short_options(**changes) if args.short else replace(Options(), **changes)
    summary = run(options)
    sys.exit(0 if summary.passed else 1)


if __name__ == "__main__":
    main()
