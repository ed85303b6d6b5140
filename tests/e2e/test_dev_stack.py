"""`riskrelay dev up` as users run it: broker, PostgreSQL and five service processes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from riskrelay.cli.stack import SERVICES, Stack, StackConfig, stop_from_state
from riskrelay.devstack import free_port
from riskrelay.shared.events import Role

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_dev_stack_starts_every_service_healthy_and_stops_cleanly(tmp_path: Path) -> None:
    config = StackConfig(
        data_dir=tmp_path / ".riskrelay",
        kafka_port=free_port(),
        pg_port=free_port(),
        service_ports={name: free_port() for name in SERVICES},
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
    finally:
        stack.stop()
    assert not config.state_file.exists()
    for port in config.service_ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    assert stop_from_state(config) == []
