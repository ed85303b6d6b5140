"""Intake settings: environment variables prefixed `RISKRELAY_INTAKE_` (nested groups with `__`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from riskrelay.shared.settings import HttpSettings, ServiceSettings, service_settings_config


class IntakeSettings(ServiceSettings):
    model_config: SettingsConfigDict = service_settings_config("RISKRELAY_INTAKE_")

    service_name: str = "intake"
    http: HttpSettings = HttpSettings(port=8001)
