"""The one settings pattern: pydantic-settings, nested groups, one env prefix per service.

A service declares ``class IntakeSettings(ServiceSettings)`` with
``model_config = service_settings_config("RISKRELAY_INTAKE_")``; every field is then read from
``RISKRELAY_INTAKE_<FIELD>``, nested groups with ``__`` (``RISKRELAY_INTAKE_KAFKA__BOOTSTRAP``).
Secrets may come from files: ``RISKRELAY_<SERVICE>_SECRETS_DIR`` or ``/run/secrets`` (one file per
field, named like the variable).  A missing or invalid setting stops start-up with a message naming
the variable (:func:`load_settings`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)


class KafkaSettings(BaseModel):
    """How to reach Kafka (any Kafka-protocol broker)."""

    bootstrap: str = Field(
        default="127.0.0.1:19092", description="Comma-separated host:port list of brokers."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(default=None, description="CA bundle for broker TLS.")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS).")
    ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS).")
    topic_prefix: str = Field(
        default="", description="Prefix for every topic name (tests, shared clusters)."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replicas of topics created at start-up (3 on real clusters)."
    )
    ensure_topics: bool = Field(
        default=True, description="Create missing topics at start-up (idempotent)."
    )
    batch_max_records: int = Field(default=500, ge=1, description="Max records per batch.")
    batch_timeout_ms: int = Field(default=50, ge=1, description="Max wait to fill a batch.")
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    linger_ms: int = Field(
        default=0,
        ge=0,
        description=(
            "Producer linger before a send. A batch's events reach the producer before it next"
            " runs, so they travel together without one; a linger only delays them."
        ),
    )
    fetch_max_wait_ms: int = Field(
        default=25,
        ge=1,
        description=(
            "Longest a fetch waits for data. Kafka answers as soon as data arrives, so this only"
            " sets how often an idle consumer asks; the embedded broker holds every fetch this"
            " long, which adds it to every hop's latency there."
        ),
    )
    fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        description=(
            "Bytes a fetch waits for (up to fetch_max_wait_ms) before the broker answers. Services"
            " off the latency path raise it so they read fewer, larger batches and leave the"
            " CPU to the ones on it."
        ),
    )
    max_attempts: int = Field(
        default=5, ge=1, description="Attempts at a failing batch before its records are isolated."
    )
    stall_timeout_s: float = Field(
        default=120.0,
        ge=0,
        description=(
            "Liveness: when records wait for this service's group and it has committed nothing"
            " for this long, /healthz fails and the process exits so its supervisor restarts"
            " it (0 disables the watchdog)."
        ),
    )


class DatabaseSettings(BaseModel):
    """PostgreSQL for services with state."""

    url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:15432/riskrelay"),
        description="PostgreSQL DSN (libpq URL). sslmode=verify-full etc. go in the URL.",
    )
    schema_name: str = Field(
        default="", description="Schema for this service's tables; default: the service name."
    )
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=10, ge=1)
    idle_in_transaction_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "The server aborts a transaction left idle this long (a hung or stopped process),"
            " so the rows and locks it held come back to the other instances."
        ),
    )
    command_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "A query that gets no answer this long fails (and its batch is redelivered), so a"
            " connection left dangling by a database restart cannot hang a consumer."
        ),
    )


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)


OFF_LATENCY_PATH_NICE = 10
"""Default ``cpu_nice`` of register and reporting."""


def cpu_nice_field(default: int) -> Any:
    """The ``cpu_nice`` setting, with a service's default."""
    return Field(
        default=default,
        ge=0,
        le=19,
        description=(
            "Niceness the process adds to itself at start (0: unchanged). Where services share"
            " cores, the ones off the alert path (register, reporting: 10) then yield the CPU to"
            " intake, classifier and escalator, and still take every idle cycle."
        ),
    )


def off_latency_path_kafka() -> KafkaSettings:
    """Kafka defaults for services no alert waits on (register, reporting): fetches wait for
    256 KiB or half a second, so they read a few large batches instead of many small ones and
    leave the CPU to intake, classifier and escalator. Every field can still be set."""
    return KafkaSettings(fetch_min_bytes=256 * 1024, fetch_max_wait_ms=500)


class OidcSettings(BaseModel):
    """An OpenID Connect provider whose ID and access tokens name people (see docs/identity.md).

    Every service verifies the provider's tokens itself through its JWKS; the claims are mapped
    to the protocol's roles here, the same way in every service."""

    issuer: str = Field(
        min_length=1,
        description="The provider's issuer URL, exactly as in its tokens' `iss` (discovery below it).",
    )
    audiences: list[str] = Field(
        min_length=1,
        description=(
            "Accepted `aud` values: the console's client id (ID tokens) and any API audience"
            " the provider puts in access tokens for riskrelay."
        ),
    )
    algorithms: list[Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]] = Field(
        default=["RS256"], min_length=1, description="Signature algorithms accepted."
    )
    email_claim: str = Field(default="email", description="Claim holding the person's e-mail.")
    name_claim: str = Field(default="name", description="Claim holding the person's name.")
    roles_claim: str = Field(
        default="groups",
        description=(
            "Claim listing the person's groups or roles; a dotted path reaches into objects"
            " (Keycloak: `realm_access.roles`; Entra ID: `roles`; Okta: `groups`)."
        ),
    )
    role_map: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Provider group or role name to protocol role, e.g. {"risk-leads": "team_lead"}.'
            " A value that is already a protocol role name (`team_lead`) maps to itself."
        ),
    )
    jwks_max_age_seconds: float = Field(
        default=3600, gt=0, description="Refetch the JWKS at least this often (keys removed)."
    )
    jwks_min_interval_seconds: float = Field(
        default=30,
        ge=0,
        description="Refetch at most this often when a token names an unknown key id.",
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _https_issuer(self) -> OidcSettings:
        parts = urlsplit(self.issuer)
        local = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        if parts.scheme != "https" and not (parts.scheme == "http" and local):
            raise ValueError("oidc.issuer must be an https URL (http only on localhost)")
        return self


class AuthSettings(BaseModel):
    """Who may call the HTTP APIs: static bearer tokens per role, and people's signed tokens."""

    tokens_file: Path | None = Field(
        default=None,
        description="JSON file: {role: token} or {token: {role, subject}}. Deny all when unset.",
    )
    identity_keys_file: Path | None = Field(
        default=None,
        description=(
            'JSON file {"signing_key_id": "k2", "keys": {"k1": "<secret>", "k2": "<secret>"}}:'
            " the HS256 keys of people's signed tokens (JWT) by key id. Every key verifies;"
            " the console signs with signing_key_id. No person token is accepted when unset."
        ),
    )
    identity_issuer: str = Field(
        default="riskrelay-console", description="Required `iss` of people's tokens."
    )
    identity_audience: str = Field(
        default="riskrelay", description="Required `aud` of people's tokens."
    )
    oidc: OidcSettings | None = Field(
        default=None,
        description="An OpenID Connect provider whose RS256 tokens name people (production).",
    )


class ServiceSettings(BaseSettings):
    """Settings every service has. Subclass per service and set the env prefix."""

    service_name: str = "riskrelay"
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    auth: AuthSettings = AuthSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    group_id: str = Field(default="", description="Consumer group; default: riskrelay-<service>.")
    cpu_nice: int = cpu_nice_field(0)
    startup_step_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Each start-up step (topics, database pool, producer, hooks, joining the consumer"
            " group) that takes longer fails start-up: the process logs the step and exits"
            " non-zero, so its supervisor restarts it instead of it waiting silently. Migrations"
            " are not limited (they log every 15 s while they run)."
        ),
    )

    @property
    def consumer_group(self) -> str:
        """Deployments that share a cluster through a topic prefix get their own groups too."""
        return self.group_id or f"{self.kafka.topic_prefix}riskrelay-{self.service_name}"

    @property
    def db_schema(self) -> str:
        return self.database.schema_name or self.service_name

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Secret files may be named like nested variables (RISKRELAY_X_DATABASE__URL).
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            NestedSecretsSettingsSource(file_secret_settings),
        )


def service_settings_config(env_prefix: str) -> SettingsConfigDict:
    """The one ``model_config`` for service settings."""
    secrets_dir = os.environ.get(f"{env_prefix}SECRETS_DIR") or (
        "/run/secrets" if Path("/run/secrets").is_dir() else None
    )
    return SettingsConfigDict(
        env_prefix=env_prefix,
        env_nested_delimiter="__",
        extra="ignore",
        secrets_dir=secrets_dir,
        secrets_nested_delimiter="__",
        nested_model_default_partial_update=True,
        validate_default=True,
    )


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def describe_settings_error(error: ValidationError, env_prefix: str) -> str:
    """Turn a validation error into lines naming the environment variable to fix."""
    lines = []
    for item in error.errors():
        name = env_prefix + "__".join(str(part) for part in item["loc"]).upper()
        lines.append(f"{name}: {item['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Read settings from the environment, or exit with a message naming each bad setting."""
    try:
        return cls()
    except ValidationError as error:
        prefix = str(cls.model_config.get("env_prefix", ""))
        sys.stderr.write(describe_settings_error(error, prefix) + "\n")
        raise SystemExit(2) from error
