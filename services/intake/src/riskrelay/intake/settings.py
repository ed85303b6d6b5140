"""Intake settings: environment variables prefixed `RISKRELAY_INTAKE_` (nested groups with `__`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field

from riskrelay.intake.clustering import ClusterConfig
from riskrelay.intake.encoder.config import EncoderSettings
from riskrelay.intake.semantic.config import DetectionSettings
from riskrelay.intake.webhooks import MappingOptions
from riskrelay.shared.settings import HttpSettings, ServiceSettings, service_settings_config

DEFAULT_CLUSTER_RETENTION_HOURS = 72


class IntakeSettings(ServiceSettings):
    model_config = service_settings_config("RISKRELAY_INTAKE_")

    service_name: str = "intake"
    http: HttpSettings = HttpSettings(port=8001)
    encoder: EncoderSettings = EncoderSettings()
    detection: DetectionSettings = DetectionSettings()
    rule_pack_extensions: list[Path] = Field(
        default_factory=list,
        description=(
            "Operator rule pack files (YAML) applied after the packaged default pack, in order;"
            ' a JSON list, e.g. ["/etc/riskrelay/rules.yaml"].'
        ),
    )
    surge_customers: int = Field(
        default=5, ge=2, description="Distinct customers in one cluster that make a surge."
    )
    surge_window_minutes: float = Field(
        default=60, gt=0, description="Event-time window in which those customers must report."
    )
    surge_tail_probability: float = Field(
        default=1e-3,
        gt=0,
        lt=1,
        description=(
            "A surge also needs the window's customer count to be this unlikely under the"
            " baseline of its recurring topic (Poisson tail)."
        ),
    )
    similarity_threshold: float = Field(
        default=0.44,
        gt=0,
        le=1,
        description="Cosine with a cluster's centroid at which a problem report joins it.",
    )
    cluster_join_window_hours: float = Field(
        default=24, gt=0, description="How long after its first ticket a cluster accepts more."
    )
    cluster_retention_hours: float = Field(
        default=DEFAULT_CLUSTER_RETENTION_HOURS,
        gt=0,
        description="Idle clusters are dropped after this much event time (keeps state bounded).",
    )
    topic_retention_days: float = Field(
        default=30,
        gt=0,
        description=(
            "Recurring problem topics (and their baselines) are kept at most this long idle;"
            " sooner gone when their baseline has decayed to nothing."
        ),
    )
    max_request_bytes: int = Field(
        default=5_000_000, ge=1_000, description="Largest accepted HTTP request body."
    )
    max_batch_events: int = Field(
        default=1_000, ge=1, description="Most events accepted in one POST /v1/tickets."
    )

    webhook_default_product: str | None = Field(
        default=None,
        description=(
            "Product for webhook tickets that name none (no `product:` tag, brand or group)."
        ),
    )
    webhook_default_segment: str = Field(
        default="unknown",
        description="Customer segment for webhook tickets without a `segment:` tag.",
    )
    webhook_product_by_brand: dict[str, str] = Field(
        default_factory=dict, description="Zendesk brand id -> product (a JSON object)."
    )

    def mapping_options(self) -> MappingOptions:
        return MappingOptions(
            default_product=self.webhook_default_product,
            default_segment=self.webhook_default_segment,
            product_by_brand=self.webhook_product_by_brand,
        )

    def cluster_config(self) -> ClusterConfig:
        return ClusterConfig(
            surge_customers=self.surge_customers,
            surge_window=timedelta(minutes=self.surge_window_minutes),
            surge_tail_probability=self.surge_tail_probability,
            similarity_threshold=self.similarity_threshold,
            join_window=timedelta(hours=self.cluster_join_window_hours),
            topic_retention=timedelta(days=self.topic_retention_days),
        )
