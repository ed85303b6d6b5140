"""Classifier settings: environment variables prefixed `RISKRELAY_CLASSIFIER_`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from riskrelay.shared.settings import HttpSettings, ServiceSettings, service_settings_config


class ClassifierSettings(ServiceSettings):
    model_config = service_settings_config("RISKRELAY_CLASSIFIER_")

    service_name: str = "classifier"
    http: HttpSettings = HttpSettings(port=8002)
    policy_path: Path | None = Field(
        default=None, description="Risk policy YAML; the packaged default policy when unset."
    )
