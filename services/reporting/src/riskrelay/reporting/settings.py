"""Reporting settings: environment variables prefixed `RISKRELAY_REPORTING_` (nested groups with `__`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import AnyHttpUrl, BaseModel, Field

from riskrelay.reporting.people import SignInLimits
from riskrelay.reporting.render import ReportFormat
from riskrelay.shared.settings import (
    OFF_LATENCY_PATH_NICE,
    HttpSettings,
    KafkaSettings,
    ServiceSettings,
    cpu_nice_field,
    off_latency_path_kafka,
    service_settings_config,
)


class ScheduleSettings(BaseModel):
    """When reports are rendered to files on their own, and who is told."""

    enabled: bool = Field(default=True, description="Render scheduled reports.")
    directory: Path = Field(
        default=Path("reports"), description="Where scheduled reports are written."
    )
    formats: list[ReportFormat] = Field(
        default=[ReportFormat.HTML, ReportFormat.JSON], description="Formats written per report."
    )
    weekly_weekday: int = Field(
        default=0, ge=0, le=6, description="Weekday of the weekly run (0 = Monday), UTC."
    )
    weekly_hour: int = Field(default=7, ge=0, le=23, description="Hour of the weekly run, UTC.")
    monthly_day: int = Field(
        default=1, ge=1, le=28, description="Day of month of the monthly run, UTC."
    )
    monthly_hour: int = Field(default=7, ge=0, le=23, description="Hour of the monthly run, UTC.")
    catch_up_hours: int = Field(
        default=24,
        ge=0,
        description="At start-up, render a run missed this recently (service was down).",
    )
    webhook_url: AnyHttpUrl | None = Field(
        default=None, description="POST a JSON notice here after each scheduled report."
    )
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)


class DashboardSettings(BaseModel):
    """The live dashboard at /dashboard."""

    public: bool = Field(
        default=False,
        description=(
            "Serve /dashboard and /v1/dashboard.json read-only without a token. Off by default:"
            " open /dashboard?token=<token of a reporting role> once and a cookie keeps it."
        ),
    )
    refresh_seconds: float = Field(
        default=5.0, gt=0, description="How often the figures are recomputed and the page polls."
    )
    window_hours: int = Field(
        default=24, ge=1, description="Window of the flag rate and of 'active' clusters."
    )
    lag_refresh_seconds: float = Field(default=15.0, gt=0, description="Consumer lag refresh.")
    secure_cookie: bool = Field(
        default=False, description="Mark the dashboard cookie Secure (set behind HTTPS)."
    )


class ConsoleOidcSettings(BaseModel):
    """The console's OpenID Connect client (see docs/identity.md). The provider itself, and how
    its claims map to roles, is ``AUTH__OIDC__*``, which every service shares."""

    client_id: str = Field(min_length=1, description="The console's client id at the provider.")
    client_secret_file: Path = Field(description="File holding the client secret (mode 0600).")
    redirect_url: AnyHttpUrl = Field(
        description=(
            "The console's callback as the browser reaches it, registered at the provider:"
            " https://<console host>/console/oidc/callback."
        )
    )
    scopes: str = Field(
        default="openid email profile", description="Scopes asked for (openid required)."
    )
    provider_name: str = Field(
        default="single sign-on", description="Shown on the sign-in button: 'Sign in with ...'."
    )
    post_logout_redirect_url: AnyHttpUrl | None = Field(
        default=None,
        description=(
            "Registered at the provider (https://<console host>/console/login): sign-out then"
            " ends the provider's session too and the provider sends the browser back here."
        ),
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0)


class ConsoleSettings(BaseModel):
    """The console at /console: people sign in, see their queue and act through the owning
    services' APIs with their own signed token."""

    escalator_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8003"),
        description="Base URL of the escalator's API (acknowledgements).",
    )
    register_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8004"),
        description="Base URL of the register's API (the console's register pages).",
    )
    classifier_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("http://127.0.0.1:8002"),
        description="Base URL of the classifier's API (level overrides at the weekly review).",
    )
    live_refresh_seconds: float = Field(
        default=10.0,
        ge=1,
        le=600,
        description="How often the queue, risk and review pages poll for changed lists.",
    )
    session_minutes: int = Field(
        default=480, ge=5, le=7 * 24 * 60, description="Life of a sign-in (the token's expiry)."
    )
    secure_cookie: bool = Field(
        default=False, description="Mark the console's cookies Secure (set behind HTTPS)."
    )
    oidc: ConsoleOidcSettings | None = Field(
        default=None, description="Sign in through an OpenID Connect provider (production)."
    )
    local_sign_in: bool = Field(
        default=True,
        description=(
            "Offer e-mail and password sign-in (console users). Off with OIDC: the sign-in page"
            " goes straight to the provider."
        ),
    )
    request_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of the console's calls to other services."
    )
    api_token_access_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description=(
            "Life of the signed token a personal API token is exchanged for: how long a revoked"
            " API token can still act."
        ),
    )
    sign_in_failures_per_account: int = Field(
        default=5, ge=1, description="Failed sign-ins allowed on one e-mail per window."
    )
    sign_in_failures_per_address: int = Field(
        default=30, ge=1, description="Failed sign-ins allowed from one client address per window."
    )
    sign_in_window_minutes: int = Field(
        default=15, ge=1, le=24 * 60, description="Sliding window of the sign-in limits."
    )

    @property
    def sign_in_limits(self) -> SignInLimits:
        return SignInLimits(
            per_account=self.sign_in_failures_per_account,
            per_address=self.sign_in_failures_per_address,
            window=timedelta(minutes=self.sign_in_window_minutes),
        )


class ReportingSettings(ServiceSettings):
    model_config = service_settings_config("RISKRELAY_REPORTING_")

    service_name: str = "reporting"
    http: HttpSettings = HttpSettings(port=8005)
    kafka: KafkaSettings = off_latency_path_kafka()
    cpu_nice: int = cpu_nice_field(OFF_LATENCY_PATH_NICE)
    schedule: ScheduleSettings = ScheduleSettings()
    dashboard: DashboardSettings = DashboardSettings()
    console: ConsoleSettings = ConsoleSettings()
