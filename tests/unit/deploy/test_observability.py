"""Prometheus configuration (promtool) and the Grafana dashboards against the metrics contract."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from types import ModuleType
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

DASHBOARDS = {
    "riskrelay-risk-flow.json": "Risk flow",
    "riskrelay-escalations.json": "Escalations and timeliness",
    "riskrelay-consumers.json": "Consumer lag and dead letters",
    "riskrelay-service-health.json": "Service health",
}
METRIC = re.compile(r"\b((?:riskrelay|faststream)_[a-z0-9_]+)")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is missing in CI: run scripts/ensure-promtool.sh (make setup)")
        pytest.skip("promtool is not installed: run scripts/ensure-promtool.sh")
    return found


def test_promtool_accepts_the_prometheus_configuration(kit: ModuleType) -> None:
    result = subprocess.run(
        [_promtool(), "check", "config", str(kit.DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def dashboards(kit: ModuleType) -> dict[str, dict[str, Any]]:
    folder = kit.DEPLOY / "grafana" / "dashboards"
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_the_four_dashboards_are_valid_and_distinct(dashboards: dict[str, dict[str, Any]]) -> None:
    assert set(dashboards) == set(DASHBOARDS)
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)
    for name, dashboard in dashboards.items():
        assert DASHBOARDS[name] in dashboard["title"]
        assert dashboard["panels"], name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "prometheus"
            assert panel["targets"], panel["title"]


def _known_metrics(kit: ModuleType) -> frozenset[str]:
    known: frozenset[str] = kit.AGREED_METRICS | kit.metrics_in_code()
    return known


def test_dashboards_and_alerts_use_only_known_metrics(
    dashboards: dict[str, dict[str, Any]], kit: ModuleType
) -> None:
    known = _known_metrics(kit)
    alerts = yaml.safe_load((kit.DEPLOY / "prometheus" / "alerts.yml").read_text())
    expressions = [e for d in dashboards.values() for e in _expressions(d)] + [
        rule["expr"] for group in alerts["groups"] for rule in group["rules"]
    ]
    unknown = {
        name
        for expression in expressions
        for name in METRIC.findall(expression)
        if not name.startswith("faststream_") and not kit.base_metric_names(name, known)
    }
    assert not unknown, f"metrics neither agreed nor registered in the code: {sorted(unknown)}"


def test_report_metrics_not_yet_in_code(
    dashboards: dict[str, dict[str, Any]], kit: ModuleType
) -> None:
    """Agreed metrics the dashboards show that no code registers yet (they read as "No data")."""
    in_code = kit.metrics_in_code()
    used = {
        name
        for d in dashboards.values()
        for e in _expressions(d)
        for name in METRIC.findall(e)
        if name.startswith("riskrelay_")
    }
    missing = sorted(n for n in used if not kit.base_metric_names(n, in_code))
    if missing:
        print("dashboard metrics not registered in the code yet:", ", ".join(missing))
    assert used, "the dashboards show riskrelay metrics"


def test_grafana_provisioning_matches_compose(compose: dict[str, Any], kit: ModuleType) -> None:
    provisioning = kit.DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (prometheus,) = datasource["datasources"]
    assert prometheus["uid"] == "prometheus"
    assert prometheus["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "riskrelay.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]


def test_alerts_point_at_runbook_sections(kit: ModuleType) -> None:
    alerts = yaml.safe_load((kit.DEPLOY / "prometheus" / "alerts.yml").read_text())
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (kit.ROOT / "docs" / "operations.md").read_text().splitlines()
        if line.startswith("#")
    }
    for group in alerts["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook"].partition("#")[2]
            assert anchor in headings, f"{rule['alert']}: no section #{anchor} in operations.md"
