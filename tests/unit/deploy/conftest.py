"""What the deploy tests compare the deployment files against: the code, read the way it runs."""

from __future__ import annotations

import importlib.util
import re
import sys
import typing
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from riskrelay.contracts import build_app, settings_class
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.settings import ServiceSettings
from riskrelay.shared.topics import ALL_TOPICS, TopicSpec

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
K8S_BASE = DEPLOY / "kubernetes" / "base"
K8S_OVERLAY = DEPLOY / "kubernetes" / "overlays" / "example"
IMAGE_REPOSITORY = "riskrelay/{service}"
# Re-exported for the tests through the `kit` fixture.
__all__ = ["settings_class"]

# The metric names agreed across services (the services' metrics contract). Dashboards and alerts
# may use these and whatever the code registers; names not yet registered are listed by
# test_dashboards.test_report_metrics_not_yet_in_code.
AGREED_METRICS = frozenset(
    {
        "riskrelay_consumed_records_total",
        "riskrelay_dead_lettered_total",
        "riskrelay_batch_seconds",
        "riskrelay_batch_retries_total",
        "riskrelay_ready",
        "riskrelay_consumer_lag_records",
        "riskrelay_outbox_pending",
        "riskrelay_intake_tickets_total",
        "riskrelay_intake_detections_total",
        "riskrelay_intake_rejected_total",
        "riskrelay_intake_surges_total",
        "riskrelay_classifier_classified_total",
        "riskrelay_classifier_overrides_total",
        "riskrelay_escalation_time_to_ack_seconds",
        "riskrelay_escalations_overdue",
        "riskrelay_escalation_timer_lag_seconds",
        "riskrelay_escalation_breaches_total",
        "riskrelay_escalation_fired_total",
        "riskrelay_escalation_pending_timers",
        "riskrelay_notification_deliveries_total",
        "riskrelay_register_risks",
        "riskrelay_register_reviews_overdue",
        "riskrelay_register_changes_total",
        "riskrelay_reporting_open_risks",
        "riskrelay_reporting_events_applied_total",
        "riskrelay_reporting_render_seconds",
    }
)
# Series a metric family exposes besides its own name (histograms, counters).
METRIC_SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total")


def env_prefix(service: str) -> str:
    return f"RISKRELAY_{service.upper()}_"


def default_settings(service: str) -> ServiceSettings:
    from riskrelay.contracts import offline_settings

    return offline_settings(service)


@cache
def service_app(service: str) -> FastAPI:
    return build_app(service)


def route_paths(app: FastAPI) -> set[str]:
    return {str(getattr(route, "path", "")) for route in app.routes}


def consumed_topics(service: str) -> list[str]:
    """Physical topic names the service consumes (default settings: no topic prefix)."""
    context: ServiceContext = service_app(service).state.context
    return [route.topic for route in context.routes]


def topic_spec(name: str, prefix: str = "") -> TopicSpec:
    for spec in ALL_TOPICS:
        if prefix + spec.name == name:
            return spec
    raise KeyError(name)


def _nested_model(field: FieldInfo) -> type[BaseModel] | None:
    candidates = [field.annotation, *typing.get_args(field.annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def setting_field(model: type[BaseModel], variable_suffix: str) -> FieldInfo | None:
    """The field a variable name (after the prefix, groups joined by ``__``) sets, if any."""
    parts = variable_suffix.lower().split("__")
    current: type[BaseModel] | None = model
    field: FieldInfo | None = None
    for part in parts:
        if current is None or part not in current.model_fields:
            return None
        field = current.model_fields[part]
        current = _nested_model(field)
    return field


def required_settings(model: type[BaseModel], path: str = "") -> list[str]:
    """Variable suffixes (``GROUP__FIELD``) of every field without a default, nested included."""
    required: list[str] = []
    for name, field in model.model_fields.items():
        variable = f"{path}{name.upper()}"
        nested = _nested_model(field)
        if field.is_required():
            required.append(variable)
        elif nested is not None:
            required.extend(
                f"{variable}__{inner}"
                for inner in required_settings(nested)
                if field.default is None
            )
    return required


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first so pydantic can resolve the module's postponed annotations.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def metrics_in_code() -> frozenset[str]:
    """Metric names registered in the source tree (string literals starting with riskrelay_)."""
    names: set[str] = set()
    pattern = re.compile(r"[\"'](riskrelay_[a-z0-9_]+)[\"']")
    for folder in ("shared/src", "services", "src"):
        for path in (ROOT / folder).rglob("*.py"):
            names.update(pattern.findall(path.read_text(encoding="utf-8")))
    return frozenset(names)


def base_metric_names(name: str, known: frozenset[str]) -> bool:
    """True when ``name`` is a series of a known metric family."""
    if name in known:
        return True
    for suffix in METRIC_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in known:
            return True
    # prometheus_client adds _total to counters registered without it.
    return name.endswith("_total") and name.removesuffix("_total") in known


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


@pytest.fixture(scope="session")
def kit() -> ModuleType:
    """This module: the helpers above, for test modules (importlib mode has no conftest import)."""
    return sys.modules[__name__]
