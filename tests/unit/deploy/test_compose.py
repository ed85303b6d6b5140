"""docker-compose.yml against the code: services, settings, ports, probes, images, secrets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from riskrelay.contracts import SERVICES
from riskrelay.reporting.settings import ConsoleSettings
from riskrelay.shared.auth import IdentityKeysFile, IdentityTokens, Person, TokensFile
from riskrelay.shared.events import Role

pytestmark = pytest.mark.unit

INFRASTRUCTURE = ("kafka", "postgres", "topics", "prometheus", "grafana")
SIGNED_AT = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


def _service_env(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][service]["environment"].items()}


def _secret_targets(compose: dict[str, Any], service: str) -> dict[str, Path]:
    """Secret file name inside the container -> file on the host."""
    targets = {}
    for entry in compose["services"][service].get("secrets", []):
        source = entry if isinstance(entry, str) else entry["source"]
        target = entry if isinstance(entry, str) else entry.get("target", source)
        targets[target] = Path(compose["secrets"][source]["file"])
    return targets


def test_every_service_and_the_infrastructure_are_in_the_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*SERVICES, *INFRASTRUCTURE}


def test_kafka_runs_kraft_on_the_official_image(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    # Containers reach the broker by its service name, the host by the published EXTERNAL port.
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://localhost:9094" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert any(str(p).endswith("9094:9094") for p in kafka["ports"])
    assert len(str(env["CLUSTER_ID"])) == 22, "a KRaft cluster id is a 22-character base64 UUID"
    assert compose["services"]["postgres"]["image"].startswith("postgres:16")


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_built_from_the_one_dockerfile(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    assert spec["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    assert spec["build"]["args"]["SERVICE"] == service
    assert spec["image"].split(":")[0] == f"riskrelay/{service}"


@pytest.mark.parametrize("service", SERVICES)
def test_service_waits_for_its_dependencies(compose: dict[str, Any], service: str) -> None:
    assert compose["services"][service]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
        "topics": {"condition": "service_completed_successfully"},
    }


def test_everything_long_running_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        if name == "topics":
            continue
        assert spec["healthcheck"]["test"], name
    for service in SERVICES:
        test = compose["services"][service]["healthcheck"]["test"]
        assert test == ["CMD", "python", "/opt/riskrelay/healthcheck.py"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_names_a_real_setting(
    compose: dict[str, Any], kit: ModuleType, service: str
) -> None:
    prefix = kit.env_prefix(service)
    cls = kit.settings_class(service)
    for name in _service_env(compose, service):
        assert name.startswith(prefix), f"{service}: {name} lacks the prefix {prefix}"
        assert kit.setting_field(cls, name.removeprefix(prefix)) is not None, (
            f"{service}: {name} sets nothing in {cls.__name__}"
        )
    for target in _secret_targets(compose, service):
        if target.startswith(prefix):
            assert kit.setting_field(cls, target.removeprefix(prefix)) is not None, target


def _compose_settings(
    compose: dict[str, Any], kit: ModuleType, service: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The service's own settings class fed the compose variables and the secret files named
    like settings (a secret file and a variable of the same name parse alike)."""
    prefix = kit.env_prefix(service)
    for name, value in _service_env(compose, service).items():
        monkeypatch.setenv(name, value)
    for target, host_file in _secret_targets(compose, service).items():
        if target.startswith(prefix):
            monkeypatch.setenv(target, (kit.ROOT / host_file).read_text())
    return kit.settings_class(service)()


def _mounted_secret(compose: dict[str, Any], kit: ModuleType, service: str, path: Path) -> Path:
    """The host file behind a path a setting names inside the container."""
    assert path.parent == Path("/run/secrets"), path
    secrets = _secret_targets(compose, service)
    assert path.name in secrets, f"{service}: nothing mounted at {path}"
    return kit.ROOT / secrets[path.name]


@pytest.mark.parametrize("service", SERVICES)
def test_settings_load_from_the_compose_environment(
    compose: dict[str, Any], kit: ModuleType, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings resolve to the addresses the stack uses."""
    prefix = kit.env_prefix(service)
    env = _service_env(compose, service)
    secrets = _secret_targets(compose, service)
    settings = _compose_settings(compose, kit, service, monkeypatch)
    cls = kit.settings_class(service)
    for variable in kit.required_settings(cls):
        assert prefix + variable in env or prefix + variable.split("__")[0] in secrets, variable
    assert settings.kafka.bootstrap == "kafka:9092"
    assert settings.http.host == "0.0.0.0"
    assert settings.http.port == cls.model_fields["http"].default.port
    assert settings.db_schema == service
    assert "@postgres:5432/" in settings.database.url.get_secret_value()
    assert settings.auth.tokens_file is not None
    _mounted_secret(compose, kit, service, settings.auth.tokens_file)


def _identity_tokens(
    compose: dict[str, Any], kit: ModuleType, service: str, monkeypatch: pytest.MonkeyPatch
) -> IdentityTokens:
    """The service's verifier of people's tokens, from the identity keys file compose mounts."""
    auth = _compose_settings(compose, kit, service, monkeypatch).auth
    assert auth.identity_keys_file is not None, f"{service}: no AUTH__IDENTITY_KEYS_FILE"
    host_file = _mounted_secret(compose, kit, service, auth.identity_keys_file)
    on_host = auth.model_copy(update={"identity_keys_file": host_file})
    tokens = IdentityTokens.from_settings(on_host, clock=lambda: SIGNED_AT)
    assert tokens is not None
    return tokens


def test_every_service_verifies_the_tokens_the_console_signs(
    compose: dict[str, Any], kit: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the same identity keys in every service the console's sign-in works but each of
    its actions (acknowledge, decide, edit, override, feedback) is refused."""
    console = _identity_tokens(compose, kit, "reporting", monkeypatch)
    assert console.can_sign, "the console needs signing_key_id to sign people in"
    # The escalator signs acknowledgement links with the same key.
    assert _identity_tokens(compose, kit, "escalator", monkeypatch).can_sign
    person = Person(
        user_id="u-1", name="Tara Lead", email="tara@example.org", roles=[Role.TEAM_LEAD]
    )
    token = console.sign(person, timedelta(minutes=10))
    for service in SERVICES:
        principal = _identity_tokens(compose, kit, service, monkeypatch).verify(token)
        assert principal.email == person.email, service


def test_the_console_reaches_each_service_it_acts_through(
    compose: dict[str, Any], kit: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ``CONSOLE__<SERVICE>_URL`` is set (the default, 127.0.0.1, is the console's own
    container) and names that compose service on the port it listens on."""
    console = _compose_settings(compose, kit, "reporting", monkeypatch).console
    env = _service_env(compose, "reporting")
    url_fields = [name for name in ConsoleSettings.model_fields if name.endswith("_url")]
    assert url_fields, "ConsoleSettings has no service URLs: update this test"
    for field in url_fields:
        assert f"RISKRELAY_REPORTING_CONSOLE__{field.upper()}" in env, field
        target = field.removesuffix("_url")
        assert target in SERVICES, f"console.{field} names no service"
        url = getattr(console, field)
        port = _service_env(compose, target)[kit.env_prefix(target) + "HTTP__PORT"]
        assert (url.scheme, url.host, url.port) == ("http", target, int(port)), field
        assert url.host in compose["services"], field


@pytest.mark.parametrize("service", SERVICES)
def test_published_port_serves_the_probes(
    compose: dict[str, Any], kit: ModuleType, service: str
) -> None:
    port = kit.default_settings(service).http.port
    assert _service_env(compose, service)[kit.env_prefix(service) + "HTTP__PORT"] == str(port)
    assert f"127.0.0.1:{port}:{port}" in compose["services"][service]["ports"]
    assert {"/healthz", "/readyz", "/metrics"} <= kit.route_paths(kit.service_app(service))


def test_the_password_in_the_database_secret_is_postgres_password(
    compose: dict[str, Any], kit: ModuleType
) -> None:
    password = (kit.ROOT / compose["secrets"]["postgres-password"]["file"]).read_text().strip()
    url = json.loads((kit.ROOT / compose["secrets"]["database"]["file"]).read_text())["url"]
    assert f"riskrelay:{password}@postgres:5432/riskrelay" in url
    tokens = json.loads((kit.ROOT / compose["secrets"]["tokens"]["file"]).read_text())
    TokensFile.model_validate(tokens)
    keys = (kit.ROOT / compose["secrets"]["identity-keys"]["file"]).read_text()
    IdentityKeysFile.model_validate_json(keys)


def test_topic_initializer_uses_a_service_image_and_real_settings(
    compose: dict[str, Any], kit: ModuleType
) -> None:
    topics = compose["services"]["topics"]
    assert topics["image"].split(":")[0] == "riskrelay/intake"
    assert topics["command"] == ["python", "/opt/riskrelay/ensure_topics.py"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    initializer = kit.load_module(kit.DEPLOY / "docker" / "ensure_topics.py")
    for name in topics["environment"]:
        assert name.startswith("RISKRELAY_TOPICS_")
        field = kit.setting_field(
            initializer.TopicInitSettings, name.removeprefix("RISKRELAY_TOPICS_")
        )
        assert field is not None, name


def test_prometheus_scrapes_every_service(compose: dict[str, Any], kit: ModuleType) -> None:
    import yaml

    config = yaml.safe_load((kit.DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service in SERVICES:
        port = kit.default_settings(service).http.port
        job = jobs[service]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        targets = [t for group in job["static_configs"] for t in group["targets"]]
        assert targets == [f"{service}:{port}"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    for rule_file in config.get("rule_files", []):
        assert f"./deploy/prometheus/{rule_file}:/etc/prometheus/{rule_file}:ro" in mounts
