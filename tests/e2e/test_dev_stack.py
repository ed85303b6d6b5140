"""`riskrelay dev up` as users run it: broker, PostgreSQL, five service processes and the
notification inbox; `riskrelay dev down` from another process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from riskrelay.cli.stack import SERVICES, Stack, StackConfig, stop_from_state
from riskrelay.devstack import free_port, free_port_run, port_is_open
from riskrelay.shared.events import Role

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's tmp_path: PostgreSQL runs as another user when we are root, and
    pytest makes its temporary root private again whenever another session starts."""
    with tempfile.TemporaryDirectory(prefix="riskrelay-devstack-") as folder:
        yield Path(folder) / ".riskrelay"


def test_dev_stack_starts_every_service_healthy_and_stops_cleanly(data_dir: Path) -> None:
    config = StackConfig(
        data_dir=data_dir,
        kafka_port=free_port(),
        pg_port=free_port(),
        service_ports={name: free_port() for name in SERVICES},
        inbox_port=free_port(),
        smtp_receiver_port=free_port(),
    )
    stack = Stack(config)
    try:
        stack.start_infrastructure()
        stack.start_services(timeout=90)
        for name, port in config.service_ports.items():
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert health.status_code == 200
            assert health.json()["service"] == name
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            assert ready.status_code == 200, (name, ready.text)
        tokens = json.loads(config.tokens_file.read_text())
        assert set(tokens) == {role.value for role in Role}
        assert len(set(tokens.values())) == len(tokens)
        assert config.state_file.exists()
        inbox = httpx.get(f"{config.inbox_url}/", timeout=5)
        assert inbox.status_code == 200
        assert "0 notification(s)" in inbox.text
        assert config.inbox_url in config.roster_file.read_text()
    finally:
        stack.stop()
    assert not config.state_file.exists()
    for port in [*config.service_ports.values(), config.inbox_port]:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert stop_from_state(config).stopped == []


def wait_for_line(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = path.read_text(errors="replace") if path.exists() else ""
        if text in output:
            return output
        assert process.poll() is None, f"dev up exited ({process.returncode}):\n{output}"
        time.sleep(0.5)
    raise AssertionError(f"{text!r} not printed in {timeout:.0f} s:\n{path.read_text()}")


def test_dev_down_is_reported_by_dev_up_as_a_requested_stop(data_dir: Path, tmp_path: Path) -> None:
    # The services, the inbox and, 19 above the inbox, its SMTP receiver.
    base = free_port_run(len(SERVICES) + 20)
    command = [sys.executable, "-m", "riskrelay.cli.main", "dev"]
    output = tmp_path / "dev-up.out"
    with output.open("wb") as out:
        up = subprocess.Popen(
            [
                *command, "up", "--data-dir", str(data_dir), "--kafka-port", str(free_port()),
                "--pg-port", str(free_port()), "--base-port", str(base),
            ],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "80"},
        )  # fmt: skip
    try:
        started = wait_for_line(output, "running; press Ctrl-C", up, timeout=240)
        # Not a terminal: the table's lines are as long as their URLs, none is cut.
        reporting = f"http://127.0.0.1:{base + 4}"
        assert f"{reporting}/dashboard  {reporting}/docs  {reporting}/docs/asyncapi" in started
        assert f"http://127.0.0.1:{base + 5}/" in started
        assert httpx.get(f"http://127.0.0.1:{base + 5}/", timeout=5).status_code == 200
        down = subprocess.run(
            [*command, "down", "--data-dir", str(data_dir)],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr
        assert f"`riskrelay dev up` (pid {up.pid}) stopped: intake" in down.stdout
        assert up.wait(60) == 0
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(60)
    printed = output.read_text()
    assert "stop requested (`riskrelay dev down`)" in printed
    assert printed.rstrip().endswith("stopped")
    assert "exited with code" not in printed
    assert "was stopped by" not in printed
    assert not (data_dir / "stack.json").exists()
    assert not port_is_open("127.0.0.1", base)


def test_a_service_that_cannot_listen_on_its_port_is_reported_with_its_log(data_dir: Path) -> None:
    register_port = free_port()
    config = StackConfig(
        data_dir=data_dir,
        kafka_port=free_port(),
        pg_port=free_port(),
        service_ports={**{name: free_port() for name in SERVICES}, "register": register_port},
        inbox_port=free_port(),
        smtp_receiver_port=free_port(),
        services=["register"],
    )
    # Bound but not listening, as an outgoing connection's local port is: the check that the
    # port is free (a connect) passes, and the service's bind fails.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", register_port))
    stack = Stack(config)
    try:
        stack.start_infrastructure()
        with pytest.raises(RuntimeError) as refused:
            stack.start_services(timeout=90)
    finally:
        squatter.close()
        stack.stop()
    message = str(refused.value)
    assert message.startswith("register did not become ready (exited with code 3)")
    assert "register.log" in message
    assert "address already in use" in message
