"""The one broker fixture and the one PostgreSQL fixture, for every test in the project.

Each is chosen in the order the design fixes: an address from the environment
(``RISKRELAY_TEST_KAFKA``, ``RISKRELAY_TEST_DATABASE_URL``), then testcontainers when a Docker
engine answers, else servers started here: embedded PostgreSQL, and the broker
``RISKRELAY_TEST_BROKER`` names: ``tansu`` (the default: only Python and pip needed) or ``kafka``
(Apache Kafka, one KRaft node, from the classpath ``scripts/ensure-kafka.sh`` resolves; needs
Java 17 and Maven). Servers are started once per session; isolation per test comes from a
unique topic prefix and a unique schema.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from hypothesis import settings as hypothesis_settings

from riskrelay.devstack import (
    DATABASE_ENV,
    DEPLOYED_FETCH_MAX_WAIT_MS,
    KAFKA_ENV,
    KAFKA_VERSION,
    Backend,
    BrokerKind,
    EmbeddedPostgres,
    choose_backend,
    choose_broker,
    docker_engine_answers,
    free_port,
    new_broker,
)
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings

# Property tests search afresh on every developer run, which is how they find new failures; in
# CI (``CI=true``) they replay the same examples, so a rare input found by chance cannot turn a
# merge red: a failure found locally becomes an example test and is fixed before it lands.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    hypothesis_settings.load_profile("ci")


@dataclass(frozen=True)
class KafkaEndpoint:
    bootstrap: str
    backend: Backend
    broker: BrokerKind
    """Which broker answers: tests of behaviour only one of them has ask this."""


@dataclass(frozen=True)
class DatabaseEndpoint:
    url: str
    backend: Backend


@pytest.fixture(scope="session", autouse=True)
def scheduled_reports_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where a reporting service a test starts (here or as a child process) writes its
    scheduled reports: a temporary folder, not ``reports/`` in the checkout."""
    folder = tmp_path_factory.mktemp("scheduled-reports")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RISKRELAY_REPORTING_SCHEDULE__DIRECTORY", str(folder))
        yield folder


@pytest.fixture(scope="session")
def docker_available() -> bool:
    if os.environ.get(KAFKA_ENV) and os.environ.get(DATABASE_ENV):
        return False  # both given: no need to ask Docker
    return docker_engine_answers()


@pytest.fixture(scope="session")
def kafka_endpoint(docker_available: bool) -> Iterator[KafkaEndpoint]:
    backend, kind = choose_broker(os.environ, docker_available)
    if backend == "environment":
        yield KafkaEndpoint(os.environ[KAFKA_ENV], backend, kind)
    elif backend == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer(f"apache/kafka:{KAFKA_VERSION}").with_kraft() as container:
            yield KafkaEndpoint(container.get_bootstrap_server(), backend, kind)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="riskrelay-broker-"))
        broker = new_broker(kind, free_port(), workdir / "broker.log", workdir / "data")
        # A broker that cannot start (no Java, a failed resolve, a crash) fails every test that
        # needs it with the reason and the broker's log tail; it never skips them.
        broker.start()
        try:
            yield KafkaEndpoint(broker.bootstrap, backend, kind)
        finally:
            broker.stop()
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def broker_kind(kafka_endpoint: KafkaEndpoint) -> BrokerKind:
    """``tansu`` or ``kafka``: for the tests that hold each broker to its own behaviour."""
    return kafka_endpoint.broker


@pytest.fixture(scope="session")
def database_endpoint(docker_available: bool) -> Iterator[DatabaseEndpoint]:
    backend = choose_backend(DATABASE_ENV, os.environ, docker_available)
    if backend == "environment":
        yield DatabaseEndpoint(os.environ[DATABASE_ENV], backend)
    elif backend == "testcontainers":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield DatabaseEndpoint(container.get_connection_url(), backend)
    else:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="riskrelay-pg-")), free_port())
        server.start()
        try:
            yield DatabaseEndpoint(server.url, backend)
        finally:
            server.destroy()


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix per test, so tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka_settings(kafka_endpoint: KafkaEndpoint, topic_prefix: str) -> KafkaSettings:
    settings = KafkaSettings(
        bootstrap=kafka_endpoint.bootstrap,
        topic_prefix=topic_prefix,
        batch_timeout_ms=20,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
    )
    if kafka_endpoint.broker == "kafka":
        # What the deployments set: Kafka answers a fetch when data arrives, so a long wait
        # costs no latency there (tansu holds the fetch, hence the short default).
        return settings.model_copy(update={"fetch_max_wait_ms": DEPLOYED_FETCH_MAX_WAIT_MS})
    return settings


@pytest.fixture
async def db_schema(database_endpoint: DatabaseEndpoint) -> AsyncIterator[str]:
    """A unique schema per test (tests running several services add a suffix per service);
    every schema that starts with it is dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield schema
    connection = await asyncpg.connect(database_endpoint.url)
    try:
        names = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", schema
        )
        for row in names:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{row["nspname"]}" CASCADE')
    finally:
        await connection.close()


@pytest.fixture
def database_settings(database_endpoint: DatabaseEndpoint, db_schema: str) -> DatabaseSettings:
    from pydantic import SecretStr

    return DatabaseSettings(url=SecretStr(database_endpoint.url), schema_name=db_schema)
