"""docs/contracts/ (AsyncAPI and OpenAPI of every service) must match what the code generates."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from riskrelay.contracts import SERVICES, generate

pytestmark = pytest.mark.unit

FIX = "docs/contracts is out of date: run `make contracts` and commit the result"


def test_committed_contracts_match_the_code(kit: ModuleType, tmp_path: Path) -> None:
    committed_dir = kit.ROOT / "docs" / "contracts"
    generated = {path.name: path.read_text() for path in generate(tmp_path)}
    committed = {path.name: path.read_text() for path in committed_dir.glob("*.json")}
    missing = sorted(set(generated) - set(committed))
    stale = sorted(set(committed) - set(generated))
    changed = sorted(n for n in set(generated) & set(committed) if generated[n] != committed[n])
    assert not missing, f"{FIX} (missing: {missing})"
    assert not stale, f"{FIX} (no longer generated: {stale})"
    assert not changed, f"{FIX} (changed: {changed})"


def test_generation_ignores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = {p.name: p.read_text() for p in generate(tmp_path / "a")}
    for service in SERVICES:
        monkeypatch.setenv(f"RISKRELAY_{service.upper()}_KAFKA__TOPIC_PREFIX", "elsewhere.")
        monkeypatch.setenv(f"RISKRELAY_{service.upper()}_KAFKA__BOOTSTRAP", "broker:1")
    second = {p.name: p.read_text() for p in generate(tmp_path / "b")}
    assert first == second


def test_every_service_publishes_both_documents(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{service}.{kind}.json" for service in SERVICES for kind in ("asyncapi", "openapi")
    )
    for path in written:
        document = json.loads(path.read_text())
        assert "asyncapi" in document or "openapi" in document
        assert path.read_text() == json.dumps(document, indent=2, sort_keys=True) + "\n"
    asyncapi = json.loads((tmp_path / "intake.asyncapi.json").read_text())
    assert any(c.get("address") == "ticket-events" for c in asyncapi["channels"].values())
    openapi = json.loads((tmp_path / "intake.openapi.json").read_text())
    assert {"/healthz", "/readyz"} <= set(openapi["paths"])
