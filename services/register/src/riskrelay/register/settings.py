"""Register settings: environment variables prefixed `RISKRELAY_REGISTER_` (nested groups with `__`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from riskrelay.shared.settings import (
    OFF_LATENCY_PATH_NICE,
    HttpSettings,
    KafkaSettings,
    ServiceSettings,
    cpu_nice_field,
    off_latency_path_kafka,
    service_settings_config,
)


class RegisterSettings(ServiceSettings):
    model_config = service_settings_config("RISKRELAY_REGISTER_")

    service_name: str = "register"
    http: HttpSettings = HttpSettings(port=8004)
    kafka: KafkaSettings = off_latency_path_kafka()
    cpu_nice: int = cpu_nice_field(OFF_LATENCY_PATH_NICE)
    policy_path: Path | None = Field(
        default=None,
        description="Register policy YAML (review cadence, scoring); built-in defaults when unset.",
    )
    gauge_refresh_seconds: float = Field(
        default=30.0, gt=0, description="How often the register and overdue-review gauges refresh."
    )
