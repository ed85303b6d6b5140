"""Kustomize base and example overlay against the code: every service, probes that exist, ports,
settings, images, and KEDA scaling on the right consumer groups, capped at the partitions."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from riskrelay.contracts import SERVICES
from riskrelay.reporting.settings import ConsoleSettings
from riskrelay.shared.auth import IdentityKeysFile, TokensFile

pytestmark = pytest.mark.unit

KINDS_PER_SERVICE = ("Deployment", "Service", "PodDisruptionBudget", "ScaledObject")


def _kustomization(folder: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def base(kit: ModuleType) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> manifest, for every resource file the base kustomization lists."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in _kustomization(kit.K8S_BASE)["resources"]:
        for doc in kit.load_yaml_documents(kit.K8S_BASE / resource):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def _literals(entries: list[dict[str, Any]], name: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for entry in entries:
        if entry["name"] == name:
            for literal in entry.get("literals", []):
                key, _, value = literal.partition("=")
                values[key] = value
            for file_entry in entry.get("files", []):
                key, _, _ = file_entry.partition("=")
                values[key] = "<file>"
    return values


@pytest.fixture(scope="module")
def settings_env(kit: ModuleType) -> dict[str, dict[str, str]]:
    """ConfigMap/Secret name -> keys, base generators merged with the example overlay's."""
    base = _kustomization(kit.K8S_BASE)
    overlay = _kustomization(kit.K8S_OVERLAY)
    names = {"riskrelay-common", *(f"riskrelay-{s}" for s in SERVICES)}
    merged = {}
    for name in names:
        merged[f"configmap/{name}"] = {
            **_literals(base.get("configMapGenerator", []), name),
            **_literals(overlay.get("configMapGenerator", []), name),
        }
        merged[f"secret/{name}"] = _literals(overlay.get("secretGenerator", []), name)
    return merged


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_its_resources(
    base: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    for kind in KINDS_PER_SERVICE:
        assert (kind, f"riskrelay-{service}") in base, f"{kind} riskrelay-{service} missing"
    deployment = base[("Deployment", f"riskrelay-{service}")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        manifest = base[(kind, f"riskrelay-{service}")]
        selector = manifest["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), kind
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"


@pytest.mark.parametrize("service", SERVICES)
def test_probes_and_ports_exist_in_the_app(
    base: dict[tuple[str, str], dict[str, Any]], kit: ModuleType, service: str
) -> None:
    container = _container(base[("Deployment", f"riskrelay-{service}")])
    port = kit.default_settings(service).http.port
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    routes = kit.route_paths(kit.service_app(service))
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] in routes, probe
    service_port = base[("Service", f"riskrelay-{service}")]["spec"]["ports"][0]
    assert service_port["port"] == port
    annotations = base[("Deployment", f"riskrelay-{service}")]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] in routes


@pytest.mark.parametrize("service", SERVICES)
def test_resources_and_hardening(base: dict[tuple[str, str], dict[str, Any]], service: str) -> None:
    deployment = base[("Deployment", f"riskrelay-{service}")]
    container = _container(deployment)
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert base[("PodDisruptionBudget", f"riskrelay-{service}")]["spec"]["maxUnavailable"] == 1


def _deployment_env(
    base: dict[tuple[str, str], dict[str, Any]],
    kit: ModuleType,
    settings_env: dict[str, dict[str, str]],
    service: str,
) -> dict[str, str]:
    """The variables the service's container gets from its ConfigMaps and Secrets."""
    prefix = kit.env_prefix(service)
    cls = kit.settings_class(service)
    env: dict[str, str] = {}
    for source in _container(base[("Deployment", f"riskrelay-{service}")])["envFrom"]:
        assert source["prefix"] == prefix
        kind = "configmap" if "configMapRef" in source else "secret"
        name = (source.get("configMapRef") or source["secretRef"])["name"]
        keys = settings_env[f"{kind}/{name}"]
        for key, value in keys.items():
            assert kit.setting_field(cls, key) is not None, f"{kind}/{name}: {key} sets nothing"
            env[prefix + key] = value
    return env


def _deployment_settings(
    base: dict[tuple[str, str], dict[str, Any]],
    kit: ModuleType,
    settings_env: dict[str, dict[str, str]],
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    for name, value in _deployment_env(base, kit, settings_env, service).items():
        monkeypatch.setenv(name, value)
    return kit.settings_class(service)()


@pytest.mark.parametrize("service", SERVICES)
def test_settings_are_real_and_complete(
    base: dict[tuple[str, str], dict[str, Any]],
    kit: ModuleType,
    settings_env: dict[str, dict[str, str]],
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = kit.env_prefix(service)
    env = _deployment_env(base, kit, settings_env, service)
    for variable in kit.required_settings(kit.settings_class(service)):
        assert prefix + variable in env, f"{service}: required setting {variable} not provided"
    settings = _deployment_settings(base, kit, settings_env, service, monkeypatch)
    assert settings.http.host == "0.0.0.0"
    assert settings.http.port == kit.default_settings(service).http.port
    assert settings.db_schema == service
    assert "sslmode=verify-full" in settings.database.url.get_secret_value()
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_password is not None
    assert str(settings.auth.tokens_file).startswith("/etc/riskrelay/tokens/")


def _generated_secret_files(kit: ModuleType, name: str) -> dict[str, Any]:
    """Key -> file of the example overlay's secretGenerator entry ``name``."""
    for entry in _kustomization(kit.K8S_OVERLAY).get("secretGenerator", []):
        if entry["name"] == name:
            files = {}
            for file_entry in entry.get("files", []):
                key, _, source = file_entry.partition("=")
                files[key] = kit.K8S_OVERLAY / source
            return files
    raise AssertionError(f"the example overlay generates no Secret {name}")


def _mounted_secret_file(deployment: dict[str, Any], kit: ModuleType, path: Path) -> Path:
    """The overlay file that ends up at ``path`` in the container: a Secret volume mounted on
    its folder, generated by the example overlay with a key named like the file."""
    mounts = {m["mountPath"]: m for m in _container(deployment)["volumeMounts"]}
    assert str(path.parent) in mounts, f"nothing mounted at {path.parent}"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    volume = volumes[mounts[str(path.parent)]["name"]]
    assert "secret" in volume, f"{path.parent} is not a Secret"
    files = _generated_secret_files(kit, volume["secret"]["secretName"])
    assert path.name in files, f"Secret {volume['secret']['secretName']} has no key {path.name}"
    source: Path = files[path.name]
    return source


@pytest.mark.parametrize("service", SERVICES)
def test_auth_files_are_mounted_from_their_secrets(
    base: dict[tuple[str, str], dict[str, Any]],
    kit: ModuleType,
    settings_env: dict[str, dict[str, str]],
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every service verifies people's tokens with the same identity keys (without them the
    console signs people in but each of its actions is refused) and role tokens with the same
    tokens file."""
    auth = _deployment_settings(base, kit, settings_env, service, monkeypatch).auth
    deployment = base[("Deployment", f"riskrelay-{service}")]
    assert auth.tokens_file is not None
    tokens = _mounted_secret_file(deployment, kit, auth.tokens_file)
    TokensFile.model_validate_json(tokens.read_text())
    assert auth.identity_keys_file is not None, f"{service}: no AUTH__IDENTITY_KEYS_FILE"
    keys = _mounted_secret_file(deployment, kit, auth.identity_keys_file)
    parsed = IdentityKeysFile.model_validate_json(keys.read_text())
    # The console signs people in, the escalator its acknowledgement links, with signing_key_id.
    assert parsed.signing_key_id is not None


def test_the_console_reaches_each_service_in_the_cluster(
    base: dict[tuple[str, str], dict[str, Any]],
    kit: ModuleType,
    settings_env: dict[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every ``CONSOLE__<SERVICE>_URL`` is set (the default, 127.0.0.1, is the console's own pod)
    and names that service's Service on its port; the cookies are Secure (HTTPS in front)."""
    env = _deployment_env(base, kit, settings_env, "reporting")
    settings = _deployment_settings(base, kit, settings_env, "reporting", monkeypatch)
    url_fields = [name for name in ConsoleSettings.model_fields if name.endswith("_url")]
    assert url_fields, "ConsoleSettings has no service URLs: update this test"
    for field in url_fields:
        assert f"RISKRELAY_REPORTING_CONSOLE__{field.upper()}" in env, field
        target = field.removesuffix("_url")
        assert target in SERVICES, f"console.{field} names no service"
        url = getattr(settings.console, field)
        service = base.get(("Service", str(url.host)))
        assert service is not None, f"console.{field}: no Service {url.host}"
        assert service["spec"]["selector"]["app.kubernetes.io/name"] == f"riskrelay-{target}"
        assert url.scheme == "http"
        assert url.port in {port["port"] for port in service["spec"]["ports"]}, field
    assert settings.console.secure_cookie is True
    assert settings.dashboard.secure_cookie is True


def test_the_console_is_served_over_https(
    base: dict[tuple[str, str], dict[str, Any]], kit: ModuleType
) -> None:
    """The example overlay's Ingress: TLS for its host, every path to reporting's http port."""
    resources = _kustomization(kit.K8S_OVERLAY)["resources"]
    ingresses = [
        doc
        for resource in resources
        if (kit.K8S_OVERLAY / resource).is_file()
        for doc in kit.load_yaml_documents(kit.K8S_OVERLAY / resource)
        if doc["kind"] == "Ingress"
    ]
    assert len(ingresses) == 1
    spec = ingresses[0]["spec"]
    tls_hosts = {host for entry in spec["tls"] for host in entry["hosts"]}
    reporting = base[("Service", "riskrelay-reporting")]
    port_names = {port["name"] for port in reporting["spec"]["ports"]}
    paths = {}
    for rule in spec["rules"]:
        assert rule["host"] in tls_hosts, rule["host"]
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "riskrelay-reporting", path["path"]
            assert backend["port"]["name"] in port_names, path["path"]
            paths[path["path"]] = path["pathType"]
    assert paths["/console"] == "Prefix"


@pytest.mark.parametrize("service", SERVICES)
def test_keda_scales_on_the_service_consumer_group_capped_at_partitions(
    base: dict[tuple[str, str], dict[str, Any]],
    kit: ModuleType,
    settings_env: dict[str, dict[str, str]],
    service: str,
) -> None:
    scaled = base[("ScaledObject", f"riskrelay-{service}")]["spec"]
    assert scaled["scaleTargetRef"]["name"] == f"riskrelay-{service}"
    prefix = settings_env["configmap/riskrelay-common"].get("KAFKA__TOPIC_PREFIX", "")
    settings = kit.default_settings(service).model_copy(deep=True)
    settings.kafka.topic_prefix = prefix
    triggers = scaled["triggers"]
    assert all(t["type"] == "kafka" for t in triggers)
    assert [t["metadata"]["topic"] for t in triggers] == [
        prefix + topic for topic in kit.consumed_topics(service)
    ]
    for trigger in triggers:
        assert trigger["metadata"]["consumerGroup"] == settings.consumer_group
        assert int(trigger["metadata"]["lagThreshold"]) > 0
        assert trigger["metadata"]["allowIdleConsumers"] == "false"
        assert trigger["authenticationRef"]["name"] == "riskrelay-kafka"
    partitions = min(kit.topic_spec(t["metadata"]["topic"], prefix).partitions for t in triggers)
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= partitions


@pytest.mark.parametrize("service", SERVICES)
def test_image_names_match_compose_and_dockerfile(
    base: dict[tuple[str, str], dict[str, Any]],
    compose: dict[str, Any],
    kit: ModuleType,
    service: str,
) -> None:
    repository = kit.IMAGE_REPOSITORY.format(service=service)
    image = _container(base[("Deployment", f"riskrelay-{service}")])["image"]
    assert image.split(":")[0] == repository
    assert compose["services"][service]["image"].split(":")[0] == repository
    overlay_images = {i["name"]: i for i in _kustomization(kit.K8S_OVERLAY)["images"]}
    assert overlay_images[repository]["newName"].endswith("/" + repository)
    dockerfile = (kit.DEPLOY / "docker" / "Dockerfile").read_text()
    assert f"services/{service}/pyproject.toml" in dockerfile


def test_topic_initializer_job(base: dict[tuple[str, str], dict[str, Any]]) -> None:
    job = base[("Job", "riskrelay-topics")]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].split(":")[0] == "riskrelay/intake"
    assert container["command"] == ["python", "/opt/riskrelay/ensure_topics.py"]
    assert {s["prefix"] for s in container["envFrom"]} == {"RISKRELAY_TOPICS_"}


def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def test_example_overlay_builds(kit: ModuleType) -> None:
    """Only where kustomize (or kubectl) is installed; the static checks above always run."""
    command = _kustomize()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed")
    built = subprocess.run(
        [*command, str(kit.K8S_OVERLAY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "KUSTOMIZE_PLUGIN_HOME": "/nonexistent"},
    ).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    common = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("riskrelay-common")
    )
    bootstrap = common["data"]["KAFKA__BOOTSTRAP"]
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert len(scaled) == len(SERVICES)
    for item in scaled:
        for trigger in item["spec"]["triggers"]:
            assert trigger["metadata"]["bootstrapServers"] == bootstrap
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["namespace"] for d in deployments} == {"riskrelay"}
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for deployment in deployments:
        mounts = {m["mountPath"] for m in _container(deployment)["volumeMounts"]}
        assert {"/etc/riskrelay/kafka-ca", "/etc/riskrelay/postgres-ca"} <= mounts
        assert "/etc/riskrelay/identity-keys" in mounts
        for volume in deployment["spec"]["template"]["spec"]["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, volume["name"]
