"""`riskrelay dev up/down`: the embedded broker, embedded PostgreSQL, the five services and the
notification inbox.

State (data, logs, tokens, the demo roster, received notifications, pids) lives under
``.riskrelay/`` in the working directory. A stack can also run on a broker and a database that
are already there (``external_bootstrap``, ``external_database_url``), with a topic prefix and
a schema prefix, which is how the end-to-end tests share the test fixtures' servers.
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
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from riskrelay.cli.inbox import demo_roster, demo_smtp_port
from riskrelay.devstack import (
    BrokerKind,
    EmbeddedPostgres,
    new_broker,
    port_is_open,
    wait_for_port,
)
from riskrelay.shared.auth import PERSON_ROLES, write_dev_tokens
from riskrelay.shared.events import Role

SERVICES: dict[str, int] = {
    "intake": 8001,
    "classifier": 8002,
    "escalator": 8003,
    "register": 8004,
    "reporting": 8005,
}
INBOX = "inbox"
INBOX_PORT = 8006


@dataclass
class StackConfig:
    data_dir: Path = Path(".riskrelay")
    kafka_port: int = 19092
    broker: BrokerKind = "tansu"
    """tansu (in memory) or Apache Kafka (its data under ``data_dir/kafka``, kept across runs)."""
    pg_port: int = 15432
    http_host: str = "127.0.0.1"
    service_ports: dict[str, int] = field(default_factory=lambda: dict(SERVICES))
    services: list[str] = field(default_factory=lambda: list(SERVICES))
    inbox_port: int = INBOX_PORT
    smtp_receiver_port: int | None = None
    """The inbox's SMTP receiver; default: the inbox port + 19 (`--base-port` moves both)."""
    external_bootstrap: str | None = None
    """A broker already running: none is started, ``kafka_port`` is unused."""
    external_database_url: str | None = None
    """A PostgreSQL database already running: none is started, ``pg_port`` is unused."""
    topic_prefix: str = ""
    schema_prefix: str = ""
    """Each service keeps its tables in schema ``<schema_prefix><service>``."""

    @property
    def tokens_file(self) -> Path:
        return self.data_dir / "dev-tokens.json"

    @property
    def identity_keys_file(self) -> Path:
        return self.data_dir / "identity-keys.json"

    @property
    def console_users_file(self) -> Path:
        return self.data_dir / "console-users.json"

    @property
    def state_file(self) -> Path:
        return self.data_dir / "stack.json"

    @property
    def roster_file(self) -> Path:
        return self.data_dir / "demo-roster.yaml"

    @property
    def inbox_file(self) -> Path:
        return self.data_dir / "notifications.jsonl"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def bootstrap(self) -> str:
        return self.external_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def inbox_url(self) -> str:
        return f"http://{self.http_host}:{self.inbox_port}"

    @property
    def smtp_port(self) -> int:
        """The inbox's SMTP receiver (the demo people's e-mail)."""
        return self.smtp_receiver_port or demo_smtp_port(self.inbox_port)

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    def service_url(self, name: str) -> str:
        return f"http://{self.http_host}:{self.service_ports[name]}"


@dataclass
class StackState:
    """What `riskrelay dev down` needs to stop a stack another process started."""

    broker_pid: int | None
    pg_data_dir: str | None
    pg_port: int
    kafka_port: int
    service_pids: dict[str, int]
    inbox_pid: int | None = None
    supervisor_pid: int | None = None
    """The `riskrelay dev up` process: asked to stop first, so it stops what it started."""

    @classmethod
    def load(cls, path: Path) -> StackState:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in json.loads(path.read_text()).items() if k in known})


def ensure_dev_tokens(path: Path) -> dict[str, str]:
    """One development token per role; kept across runs so scripts can rely on them."""
    if path.exists():
        tokens: dict[str, str] = json.loads(path.read_text())
        if set(tokens) >= {r.value for r in Role}:
            return tokens
    tokens = {role.value: f"dev-{role.value}-{secrets.token_urlsafe(12)}" for role in Role}
    write_dev_tokens(path, tokens)
    return tokens


def ensure_identity_keys(path: Path) -> None:
    """The key the console signs people's tokens with (and every service verifies them with);
    kept across runs so a sign-in survives a restart."""
    if path.exists():
        return
    write_dev_tokens(
        path, {"signing_key_id": "dev-1", "keys": {"dev-1": secrets.token_urlsafe(36)}}
    )


def ensure_console_users(path: Path) -> list[dict[str, Any]]:
    """One console user per person role, with a generated password; kept across runs."""
    if path.exists():
        users: list[dict[str, Any]] = json.loads(path.read_text())["users"]
        if {role for user in users for role in user["roles"]} >= {r.value for r in PERSON_ROLES}:
            return users
    users = [
        {
            "email": f"{role.value.replace('_', '-')}@example.org",
            "name": f"Demo {role.value.replace('_', ' ').title()}",
            "roles": [role.value],
            "password": secrets.token_urlsafe(12),
        }
        for role in PERSON_ROLES
    ]
    write_dev_tokens(path, {"users": users})
    return users


def provision_console_users(config: StackConfig, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Create (or reset) the demo's console users through reporting's admin API."""
    users = ensure_console_users(config.console_users_file)
    admin = ensure_dev_tokens(config.tokens_file)[Role.ADMIN.value]
    base = config.service_url("reporting")
    with httpx.Client(base_url=base, timeout=timeout) as client:
        for user in users:
            fields = {key: user[key] for key in ("name", "roles", "password")}
            response = client.put(
                f"/v1/console/users/{user['email']}",
                json=fields,
                headers={"Authorization": f"Bearer {admin}"},
            )
            if response.status_code not in (200, 201):
                raise RuntimeError(
                    f"creating console user {user['email']} failed:"
                    f" {response.status_code} {response.text[:200]}"
                )
    return users


def service_environment(config: StackConfig, name: str, database_url: str) -> dict[str, str]:
    prefix = f"RISKRELAY_{name.upper()}_"
    extra: dict[str, str] = {}
    if config.topic_prefix:
        extra[f"{prefix}KAFKA__TOPIC_PREFIX"] = config.topic_prefix
    if config.schema_prefix:
        extra[f"{prefix}DATABASE__SCHEMA_NAME"] = f"{config.schema_prefix}{name}"
    if name == "reporting":
        extra[f"{prefix}SCHEDULE__DIRECTORY"] = str((config.data_dir / "reports").resolve())
        extra[f"{prefix}CONSOLE__ESCALATOR_URL"] = config.service_url("escalator")
        extra[f"{prefix}CONSOLE__REGISTER_URL"] = config.service_url("register")
    if name == "escalator":
        extra[f"{prefix}ROSTER_PATH"] = str(config.roster_file.resolve())
    return {
        **os.environ,
        f"{prefix}KAFKA__BOOTSTRAP": config.bootstrap,
        f"{prefix}DATABASE__URL": database_url,
        f"{prefix}HTTP__HOST": config.http_host,
        f"{prefix}HTTP__PORT": str(config.service_ports[name]),
        f"{prefix}AUTH__TOKENS_FILE": str(config.tokens_file.resolve()),
        f"{prefix}AUTH__IDENTITY_KEYS_FILE": str(config.identity_keys_file.resolve()),
        f"{prefix}LOG_FORMAT": "json",
        **extra,
    }


def _start_logged(
    config: StackConfig, name: str, argv: list[str], env: dict[str, str]
) -> subprocess.Popen[bytes]:
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    with (config.logs_dir / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def start_service(config: StackConfig, name: str, database_url: str) -> subprocess.Popen[bytes]:
    return _start_logged(
        config,
        name,
        [sys.executable, "-m", f"riskrelay.{name}"],
        service_environment(config, name, database_url),
    )


def start_inbox(config: StackConfig) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "riskrelay.cli.main", "dev", "inbox",
        "--host", config.http_host, "--port", str(config.inbox_port),
        "--file", str(config.inbox_file.resolve()), "--smtp-port", str(config.smtp_port),
    ]  # fmt: skip
    return _start_logged(config, INBOX, argv, dict(os.environ))


def write_demo_roster(config: StackConfig) -> Path:
    """The escalator's roster for the dev stack: every channel delivers to the inbox."""
    config.roster_file.parent.mkdir(parents=True, exist_ok=True)
    config.roster_file.write_text(
        "# Written by `riskrelay dev up`: every role's notifications go to the dev stack's\n"
        f"# notification inbox ({config.inbox_url}/); rewritten at every start.\n"
        + yaml.safe_dump(
            demo_roster(
                config.inbox_url,
                console_url=config.service_url("reporting"),
                smtp_port=config.smtp_port,
            ),
            sort_keys=False,
        )
    )
    return config.roster_file


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(exit_description(process.returncode))
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as error:
            last = type(error).__name__
        time.sleep(0.2)
    raise TimeoutError(f"not ready after {timeout:.0f} s: {last}")


def exit_description(returncode: int) -> str:
    """How a child process ended, in words ("was stopped by SIGTERM", "exited with code 2")."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        verb = "was stopped" if -returncode in (signal.SIGTERM, signal.SIGINT) else "was killed"
        return f"{verb} by {name}"
    return f"exited with code {returncode}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_processes(pids: Iterable[int], timeout: float = 15.0) -> None:
    """SIGTERM every process at once, wait up to ``timeout`` for all, SIGKILL the rest."""
    waiting = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            waiting.add(pid)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                waiting.discard(pid)
        time.sleep(0.1)
    for pid in waiting:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Stack:
    """Starts and stops the dev stack; used by `riskrelay dev`, the demo and e2e tests."""

    def __init__(self, config: StackConfig, supervisor_pid: int | None = None) -> None:
        self.config = config
        self.supervisor_pid = supervisor_pid
        self.broker = (
            new_broker(
                config.broker,
                config.kafka_port,
                config.logs_dir / "broker.log",
                (config.data_dir / "kafka").resolve(),
            )
            if config.external_bootstrap is None
            else None
        )
        self.postgres = (
            EmbeddedPostgres((config.data_dir / "pgdata").resolve(), config.pg_port)
            if config.external_database_url is None
            else None
        )
        self.services: dict[str, subprocess.Popen[bytes]] = {}
        self.inbox: subprocess.Popen[bytes] | None = None

    @property
    def database_url(self) -> str:
        if self.postgres is not None:
            return self.postgres.url
        assert self.config.external_database_url is not None
        return self.config.external_database_url

    @property
    def running(self) -> bool:
        return bool(self.processes()) or bool(self.broker and self.broker.process)

    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """Every child process this stack watches, by name."""
        return {**self.services, **({INBOX: self.inbox} if self.inbox else {})}

    def start_infrastructure(self, timeout: float = 30.0) -> None:
        """Broker, PostgreSQL, tokens, the demo roster and the notification inbox."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if self.broker is not None:
            self.broker.start()
        if self.postgres is not None:
            self.postgres.start()
        self.save_state()
        ensure_dev_tokens(self.config.tokens_file)
        ensure_identity_keys(self.config.identity_keys_file)
        write_demo_roster(self.config)
        if port_is_open(self.config.http_host, self.config.inbox_port):
            raise RuntimeError(f"port {self.config.inbox_port} for the inbox is already in use")
        if port_is_open(self.config.http_host, self.config.smtp_port):
            raise RuntimeError(
                f"port {self.config.smtp_port} for the inbox's SMTP receiver is already in use"
            )
        self.inbox = start_inbox(self.config)
        self.save_state()
        try:
            wait_ready(f"{self.config.inbox_url}/healthz", self.inbox, timeout)
        except (RuntimeError, TimeoutError) as error:
            log = self.config.logs_dir / f"{INBOX}.log"
            raise RuntimeError(
                f"the inbox did not start ({error}); see {log}{log_tail(log)}"
            ) from error

    def start_services(self, timeout: float = 60.0) -> None:
        for name in self.config.services:
            port = self.config.service_ports[name]
            if port_is_open(self.config.http_host, port):
                raise RuntimeError(f"port {port} for {name} is already in use")
            self.services[name] = start_service(self.config, name, self.database_url)
            self.save_state()
        for name, process in self.services.items():
            url = f"{self.config.service_url(name)}/readyz"
            try:
                wait_ready(url, process, timeout)
            except (RuntimeError, TimeoutError) as error:
                log = self.config.logs_dir / f"{name}.log"
                raise RuntimeError(
                    f"{name} did not become ready ({error}); see {log}{log_tail(log)}"
                ) from error
        if "reporting" in self.services:
            provision_console_users(self.config)

    def save_state(self) -> None:
        state = StackState(
            broker_pid=self.broker.process.pid if self.broker and self.broker.process else None,
            pg_data_dir=str(self.postgres.data_dir) if self.postgres else None,
            pg_port=self.config.pg_port,
            kafka_port=self.config.kafka_port,
            service_pids={name: p.pid for name, p in self.services.items()},
            inbox_pid=self.inbox.pid if self.inbox else None,
            supervisor_pid=self.supervisor_pid,
        )
        self.config.state_file.write_text(json.dumps(asdict(state), indent=2))

    def stop(self) -> None:
        processes = list(self.processes().values())
        stop_processes(process.pid for process in processes)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        self.services.clear()
        self.inbox = None
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.config.state_file.unlink(missing_ok=True)


def log_tail(log: Path, lines: int = 8) -> str:
    """The last lines of a component's log, indented, to print with why it did not start."""
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    {readable_log_line(line)}" for line in tail)


def readable_log_line(line: str) -> str:
    """A service's JSON log line as its level and message; any other line as it is."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict) or "message" not in record:
        return line
    return f"{record.get('level', '')} {record['message']}".strip()


@dataclass(frozen=True)
class StopReport:
    stopped: list[str]
    by_supervisor: int | None = None
    """Pid of the `riskrelay dev up` process that stopped its stack on request, if it did."""


def _is_riskrelay_process(pid: int) -> bool:
    # A pid in an old state file may belong to another program by now.
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.parent.exists():
        return pid_alive(pid)
    with contextlib.suppress(OSError):
        return b"riskrelay" in cmdline.read_bytes()
    return False


def _components(state: StackState) -> list[str]:
    names = list(state.service_pids)
    if state.inbox_pid:
        names.append(INBOX)
    if state.broker_pid:
        names.append("broker")
    if state.pg_data_dir:
        names.append("postgres")
    return names


def stop_from_state(config: StackConfig, supervisor_timeout: float = 90.0) -> StopReport:
    """Stop a stack started by another `riskrelay dev up` (from its state file).

    The `dev up` process is asked first (SIGTERM), so it stops its own children and reports a
    requested stop; only when it is gone or does not finish in time are the pids stopped here.
    """
    if not config.state_file.exists():
        return StopReport([])
    state = StackState.load(config.state_file)
    supervisor = state.supervisor_pid
    if supervisor and supervisor != os.getpid() and _is_riskrelay_process(supervisor):
        os.kill(supervisor, signal.SIGTERM)
        deadline = time.monotonic() + supervisor_timeout
        while config.state_file.exists() and pid_alive(supervisor):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not config.state_file.exists():
            return StopReport(_components(state), by_supervisor=supervisor)
    stop_processes([*state.service_pids.values(), *([state.inbox_pid] if state.inbox_pid else [])])
    if state.broker_pid:
        stop_processes([state.broker_pid])
    if state.pg_data_dir:
        EmbeddedPostgres(Path(state.pg_data_dir), state.pg_port).stop()
    config.state_file.unlink(missing_ok=True)
    return StopReport(_components(state))


def wait_for_broker(config: StackConfig, timeout: float = 10.0) -> None:
    wait_for_port("127.0.0.1", config.kafka_port, timeout)
