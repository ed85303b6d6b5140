"""Reporting settings: environment variables prefixed `RISKRELAY_REPORTING_` (nested groups with `__`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from riskrelay.shared.settings import HttpSettings, ServiceSettings, service_settings_config


class ReportingSettings(ServiceSettings):
    model_config: SettingsConfigDict = service_settings_config("RISKRELAY_REPORTING_")

    service_name: str = "reporting"
    http: HttpSettings = HttpSettings(port=8005)
