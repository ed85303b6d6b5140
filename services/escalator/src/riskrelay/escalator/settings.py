"""Escalator settings: environment variables prefixed `RISKRELAY_ESCALATOR_` (nested groups with `__`)."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator

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
        description="The Slack app's signing secret; unset: `/v1/slack/interactions` answers 404.",
    )
    response_url_hosts: list[str] = Field(
        default=["hooks.slack.com"],
        validate_default=True,
        description="Where a click's `response_url` may point: a host name (HTTPS, port 443, or"
        " `host:port`) or an exact origin `scheme://host:port` (the only way to allow plain HTTP,"
        " for a local test receiver). A click whose `response_url` is elsewhere gets no updated"
        " message (logged); `[]`: never update messages.",
    )
    response_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="One POST to a click's `response_url`."
    )

    @field_validator("response_url_hosts")
    @classmethod
    def _origins(cls, entries: list[str]) -> list[str]:
        origins = []
        for entry in entries:
            text = entry.strip()
            try:
                url = httpx.URL(text if "://" in text else f"https://{text}")
            except httpx.InvalidURL as error:
                raise ValueError(f"{entry!r} is not a host name or an origin: {error}") from error
            if url.path not in ("", "/") or url.query or url.fragment or url.userinfo:
                raise ValueError(f"{entry!r}: a host or scheme://host:port only, nothing more")
            origin = cls.origin(url)
            if origin is None:
                raise ValueError(f"{entry!r}: the scheme must be https or http, with a host")
            origins.append(origin)
        return origins

    @staticmethod
    def origin(url: httpx.URL) -> str | None:
        """``scheme://host:port`` with the scheme's default port filled in; None for a URL that
        is not plain HTTP(S) to a host (another scheme, no host, user info)."""
        if url.scheme not in ("https", "http") or not url.host or url.userinfo:
            return None
        port = url.port or (443 if url.scheme == "https" else 80)
        return f"{url.scheme}://{url.host}:{port}"


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
