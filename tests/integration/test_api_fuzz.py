"""Schema-driven fuzzing of every service's HTTP API from its own OpenAPI document.

Each service runs as a real process (``python -m riskrelay.<service>``) on the session's broker
and PostgreSQL. Schemathesis generates requests from the service's ``/openapi.json``; for every
generated request the test checks:

* with a valid token (the admin role): never a 5xx;
* with no token and with a wrong token: never a 2xx on a protected operation (deny by default).

The operational endpoints (health, readiness, metrics, API documents, the dashboard page)
are public by design and are fuzzed for 5xx only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from riskrelay.devstack import free_port, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ["intake", "classifier", "escalator", "register", "reporting"]
PUBLIC_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs/asyncapi",
    "/docs/asyncapi.json",
    "/dashboard",
}
ADMIN_TOKEN = "fuzz-admin-token-0123456789"
AGENT_TOKEN = "fuzz-agent-token-0123456789"
EXAMPLES = int(os.environ.get("RISKRELAY_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "tokens.json"
    path.write_text(json.dumps({"admin": ADMIN_TOKEN, "agent": AGENT_TOKEN}))
    return path


@pytest.fixture(params=SERVICES)
def service_url(
    request: pytest.FixtureRequest,
    kafka_endpoint: object,
    database_endpoint: object,
    tokens_file: Path,
    tmp_path: Path,
) -> Iterator[str]:
    name: str = request.param
    port = free_port()
    prefix = f"RISKRELAY_{name.upper()}_"
    schema = f"fuzz_{name}_{os.getpid()}"
    env = {
        **os.environ,
        f"{prefix}KAFKA__BOOTSTRAP": kafka_endpoint.bootstrap,  # type: ignore[attr-defined]
        f"{prefix}KAFKA__TOPIC_PREFIX": f"fuzz-{name}.",
        f"{prefix}DATABASE__URL": database_endpoint.url,  # type: ignore[attr-defined]
        f"{prefix}DATABASE__SCHEMA_NAME": schema,
        f"{prefix}HTTP__PORT": str(port),
        f"{prefix}AUTH__TOKENS_FILE": str(tokens_file),
        f"{prefix}LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", f"riskrelay.{name}"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port("127.0.0.1", port, 90, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    if process.returncode not in (0, -15):
        pytest.fail(
            f"{name} exited with {process.returncode}: {(tmp_path / f'{name}.log').read_text()[-3000:]}"
        )


def test_no_server_errors_and_no_access_without_a_valid_token(service_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    session = requests.Session()
    problems: list[str] = []
    exercised: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the service documents no operations"

    for operation in operations:
        try:
            _fuzz(operation, service_url, session, problems, exercised)
        except Unsatisfiable:
            continue
        assert not problems, "\n".join(sorted(set(problems))[:20])
    assert len(exercised) >= len(operations) - 1, f"operations never exercised: {exercised}"


def _fuzz(
    operation: Any,
    service_url: str,
    session: requests.Session,
    problems: list[str],
    exercised: dict[str, int],
) -> None:
    public = operation.path in PUBLIC_PATHS

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def exercise(case: schemathesis.Case) -> None:
        exercised[operation.label] = exercised.get(operation.label, 0) + 1
        with_token = case.call(
            base_url=service_url,
            session=session,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        if with_token.status_code >= 500:
            problems.append(
                f"{case.method} {case.formatted_path} -> {with_token.status_code}: "
                f"{with_token.text[:300]}"
            )
        if public:
            return
        for headers in ({}, {"Authorization": "Bearer not-a-real-token-at-all"}):
            anonymous = case.call(
                base_url=service_url, session=session, headers=headers, timeout=30
            )
            if anonymous.status_code < 400 or anonymous.status_code >= 500:
                problems.append(
                    f"{case.method} {case.formatted_path} without a valid token -> "
                    f"{anonymous.status_code}"
                )

    exercise()
