"""Escalator settings: environment variables prefixed `RISKRELAY_ESCALATOR_` (nested groups with `__`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from riskrelay.shared.settings import HttpSettings, ServiceSettings, service_settings_config


class TimerSettings(BaseModel):
    """The durable timer loop (``TIMERS__*``)."""

    batch_size: int = Field(default=1000, ge=1, le=10_000, description="Timers claimed at once.")
    workers: int = Field(
        default=4,
        ge=1,
        le=16,
        description="Claim loops per process: while one waits for the broker, others claim.",
    )
    idle_interval_ms: int = Field(
        default=50, ge=1, le=60_000, description="Longest sleep when nothing is due."
    )
    sweep_interval_s: float = Field(
        default=5.0, gt=0, description="How often the sweeper re-arms and refreshes gauges."
    )
    overdue_warning_s: float = Field(
        default=30.0, gt=0, description="Pending timers due longer ago than this are logged."
    )


class DeliverySettings(BaseModel):
    """The notification delivery worker (``DELIVERY__*``)."""

    batch_size: int = Field(default=50, ge=1, le=1_000, description="Deliveries claimed at once.")
    idle_interval_ms: int = Field(default=200, ge=1, le=60_000, description="Poll when idle.")
    timeout_s: float = Field(default=10.0, gt=0, le=120, description="One HTTP attempt's limit.")
    lease_s: float = Field(
        default=120.0,
        gt=0,
        description="A claimed delivery not finished within this is re-armed by the sweeper.",
    )


class SlackSettings(BaseModel):
    """Slack interactivity (``SLACK__*``): the buttons in people's Slack messages."""

    signing_secret: SecretStr | None = Field(
        default=None,
        description="The Slack app's signing secret; unset: `/v1/slack/interactions` answers 503.",
    )


class EscalatorSettings(ServiceSettings):
    model_config = service_settings_config("RISKRELAY_ESCALATOR_")

    service_name: str = "escalator"
    http: HttpSettings = HttpSettings(port=8003)
    policy_path: Path | None = Field(
        default=None, description="Escalation policy YAML; the protocol defaults when unset."
    )
    calendar_path: Path | None = Field(
        default=None, description="Business calendar YAML; the packaged default when unset."
    )
    roster_path: Path | None = Field(
        default=None, description="Roster YAML (roles to people and channels); none: no delivery."
    )
    timers: TimerSettings = TimerSettings()
    delivery: DeliverySettings = DeliverySettings()
    slack: SlackSettings = SlackSettings()
