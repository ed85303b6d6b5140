"""Escalator settings: environment variables prefixed `RISKRELAY_ESCALATOR_` (nested groups with `__`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from riskrelay.shared.settings import HttpSettings, ServiceSettings, service_settings_config


class EscalatorSettings(ServiceSettings):
    model_config: SettingsConfigDict = service_settings_config("RISKRELAY_ESCALATOR_")

    service_name: str = "escalator"
    http: HttpSettings = HttpSettings(port=8003)
