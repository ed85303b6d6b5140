"""Register settings: environment variables prefixed `RISKRELAY_REGISTER_` (nested groups with `__`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from riskrelay.shared.settings import HttpSettings, ServiceSettings, service_settings_config


class RegisterSettings(ServiceSettings):
    model_config: SettingsConfigDict = service_settings_config("RISKRELAY_REGISTER_")

    service_name: str = "register"
    http: HttpSettings = HttpSettings(port=8004)
