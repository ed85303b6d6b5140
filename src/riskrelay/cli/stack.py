"""`riskrelay dev up/down`: the embedded broker, embedded PostgreSQL and the five services.

State (data, logs, tokens, pids) lives under ``.riskrelay/`` in the working directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from riskrelay.devstack import EmbeddedBroker, EmbeddedPostgres, port_is_open, wait_for_port
from riskrelay.shared.auth import write_dev_tokens
from riskrelay.shared.events import Role

SERVICES: dict[str, int] = {
    "intake": 8001,
    "classifier": 8002,
    "escalator": 8003,
    "register": 8004,
    "reporting": 8005,
}


@dataclass
class StackConfig:
    data_dir: Path = Path(".riskrelay")
    kafka_port: int = 19092
    pg_port: int = 15432
    http_host: str = "127.0.0.1"
    service_ports: dict[str, int] = field(default_factory=lambda: dict(SERVICES))
    services: list[str] = field(default_factory=lambda: list(SERVICES))

    @property
    def tokens_file(self) -> Path:
        return self.data_dir / "dev-tokens.json"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "stack.json"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"


@dataclass
class StackState:
    broker_pid: int | None
    pg_data_dir: str
    pg_port: int
    kafka_port: int
    service_pids: dict[str, int]


def ensure_dev_tokens(path: Path) -> dict[str, str]:
    """One development token per role; kept across runs so scripts can rely on them."""
    if path.exists():
        tokens: dict[str, str] = json.loads(path.read_text())
        if set(tokens) >= {r.value for r in Role}:
            return tokens
    tokens = {role.value: f"dev-{role.value}-{secrets.token_urlsafe(12)}" for role in Role}
    write_dev_tokens(path, tokens)
    return tokens


def service_environment(config: StackConfig, name: str, database_url: str) -> dict[str, str]:
    prefix = f"RISKRELAY_{name.upper()}_"
    return {
        **os.environ,
        f"{prefix}KAFKA__BOOTSTRAP": config.bootstrap,
        f"{prefix}DATABASE__URL": database_url,
        f"{prefix}HTTP__HOST": config.http_host,
        f"{prefix}HTTP__PORT": str(config.service_ports[name]),
        f"{prefix}AUTH__TOKENS_FILE": str(config.tokens_file.resolve()),
        f"{prefix}LOG_FORMAT": "json",
        **(
            {f"{prefix}SCHEDULE__DIRECTORY": str((config.data_dir / "reports").resolve())}
            if name == "reporting"
            else {}
        ),
    }


def start_service(config: StackConfig, name: str, database_url: str) -> subprocess.Popen[bytes]:
    logs = config.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"riskrelay.{name}"],
            env=service_environment(config, name, database_url),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with code {process.returncode}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as error:
            last = type(error).__name__
        time.sleep(0.2)
    raise TimeoutError(f"not ready after {timeout:.0f} s: {last}")


def stop_process(pid: int, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class Stack:
    """Starts and stops the embedded stack; used by `riskrelay dev`, the demo and e2e tests."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.broker = EmbeddedBroker(config.kafka_port, config.data_dir / "logs" / "broker.log")
        self.postgres = EmbeddedPostgres((config.data_dir / "pgdata").resolve(), config.pg_port)
        self.services: dict[str, subprocess.Popen[bytes]] = {}

    def start_infrastructure(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        self.postgres.start()
        ensure_dev_tokens(self.config.tokens_file)

    def start_services(self, timeout: float = 60.0) -> None:
        for name in self.config.services:
            port = self.config.service_ports[name]
            if port_is_open(self.config.http_host, port):
                raise RuntimeError(f"port {port} for {name} is already in use")
            self.services[name] = start_service(self.config, name, self.postgres.url)
            self.save_state()
        for name, process in self.services.items():
            url = f"http://{self.config.http_host}:{self.config.service_ports[name]}/readyz"
            try:
                wait_ready(url, process, timeout)
            except (RuntimeError, TimeoutError) as error:
                log = self.config.data_dir / "logs" / f"{name}.log"
                raise RuntimeError(f"{name} did not become ready ({error}); see {log}") from error

    def save_state(self) -> None:
        state = StackState(
            broker_pid=self.broker.process.pid if self.broker.process else None,
            pg_data_dir=str(self.postgres.data_dir),
            pg_port=self.config.pg_port,
            kafka_port=self.config.kafka_port,
            service_pids={name: p.pid for name, p in self.services.items()},
        )
        self.config.state_file.write_text(json.dumps(asdict(state), indent=2))

    def stop(self) -> None:
        for process in self.services.values():
            stop_process(process.pid)
        self.services.clear()
        self.broker.stop()
        self.postgres.stop()
        self.config.state_file.unlink(missing_ok=True)


def stop_from_state(config: StackConfig) -> list[str]:
    """Stop a stack started by another `riskrelay dev up` (from its state file)."""
    if not config.state_file.exists():
        return []
    state = StackState(**json.loads(config.state_file.read_text()))
    stopped = []
    for name, pid in state.service_pids.items():
        stop_process(pid)
        stopped.append(name)
    if state.broker_pid:
        stop_process(state.broker_pid)
        stopped.append("broker")
    EmbeddedPostgres(Path(state.pg_data_dir), state.pg_port).stop()
    stopped.append("postgres")
    config.state_file.unlink(missing_ok=True)
    return stopped


def wait_for_broker(config: StackConfig, timeout: float = 10.0) -> None:
    wait_for_port("127.0.0.1", config.kafka_port, timeout)
