"""The Dockerfile and its helpers: built with uv from the lockfile, one service, non-root, checked."""

from __future__ import annotations

import re
import tomllib
from types import ModuleType

import pytest

from riskrelay.contracts import SERVICES

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def dockerfile(kit: ModuleType) -> str:
    text: str = (kit.DEPLOY / "docker" / "Dockerfile").read_text()
    return text


def test_builds_one_service_from_the_lockfile_with_uv(dockerfile: str) -> None:
    syncs = re.findall(r"uv sync ([^\n\\]*(?:\\\n[^\n\\]*)*)", dockerfile)
    assert len(syncs) == 2, "one dependency layer, one project layer"
    for arguments in syncs:
        for flag in ("--frozen", "--no-dev", "--no-editable", '--package "riskrelay-${SERVICE}"'):
            assert flag in arguments
    assert "--no-install-workspace" in syncs[0]
    assert "ARG SERVICE" in dockerfile


def test_every_workspace_member_is_copied_and_every_service_accepted(
    dockerfile: str, kit: ModuleType
) -> None:
    root = tomllib.loads((kit.ROOT / "pyproject.toml").read_text())
    members = [
        path.relative_to(kit.ROOT).as_posix()
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for path in sorted(kit.ROOT.glob(pattern))
        if (path / "pyproject.toml").exists()
    ]
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/pyproject.toml" in dockerfile
    accepted = re.search(r"case \"\$\{SERVICE\}\" in \\\s*\n\s*([a-z|]+)\)", dockerfile)
    assert accepted is not None
    assert set(accepted.group(1).split("|")) == set(SERVICES)
    assert {m.removeprefix("services/") for m in members if m.startswith("services/")} == set(
        SERVICES
    )


def test_small_non_root_final_image_with_a_health_check(dockerfile: str) -> None:
    stages = dockerfile.split("\nFROM ")
    final = stages[-1]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    assert final.startswith("${PYTHON_IMAGE} AS runtime")
    assert "uv" not in re.findall(r"COPY --from=(\w+)", final)
    assert "COPY --from=builder /opt/riskrelay/venv /opt/riskrelay/venv" in final
    assert re.search(r"^USER 10001:10001$", final, re.MULTILINE)
    assert 'CMD ["python", "/opt/riskrelay/healthcheck.py"]' in final
    assert final.rstrip().endswith('CMD ["riskrelay-service"]')


def test_dockerignore_lets_in_exactly_what_the_build_copies(
    dockerfile: str, kit: ModuleType
) -> None:
    ignore = (kit.ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[next(i for i, line in enumerate(ignore) if line.strip() == "**")]
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE)
    for source_list in sources:
        for source in source_list.split():
            source = source.rstrip("/")
            assert any(source == a or source.startswith(a + "/") for a in allowed) or (
                source.startswith("services/") and "services" in allowed
            ), f"{source} is excluded by .dockerignore"


def test_console_scripts_behind_riskrelay_service_exist(kit: ModuleType) -> None:
    for service in SERVICES:
        project = tomllib.loads((kit.ROOT / "services" / service / "pyproject.toml").read_text())
        assert f"riskrelay-{service}" in project["project"]["scripts"]


@pytest.mark.parametrize("service", SERVICES)
def test_health_check_uses_the_service_settings(
    kit: ModuleType, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthcheck = kit.load_module(kit.DEPLOY / "docker" / "healthcheck.py")
    prefix = kit.env_prefix(service)
    port = kit.default_settings(service).http.port
    for name in (prefix + "HTTP__HOST", prefix + "HTTP__PORT", prefix + "HTTP"):
        monkeypatch.delenv(name, raising=False)
    assert healthcheck.health_url(service) == f"http://127.0.0.1:{port}/healthz"
    # Containers listen on every interface; the check still connects over loopback.
    monkeypatch.setenv(prefix + "HTTP__HOST", "0.0.0.0")
    monkeypatch.setenv(prefix + "HTTP__PORT", "9999")
    assert healthcheck.health_url(service) == "http://127.0.0.1:9999/healthz"
    monkeypatch.setenv(prefix + "HTTP__HOST", "10.1.2.3")
    assert healthcheck.health_url(service) == "http://10.1.2.3:9999/healthz"
    assert "/healthz" in kit.route_paths(kit.service_app(service))
