"""The topic registry and the idempotent "ensure topics" step every service runs at start-up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from riskrelay.shared.envelope import CloudEvent
from riskrelay.shared.events import (
    EscalationAcknowledgedEvent,
    EscalationDueEvent,
    RiskClassifiedEvent,
    RiskFeedbackEvent,
    RiskRegisteredEvent,
    TicketEvent,
    TicketFlaggedEvent,
)

DLQ_SUFFIX = ".dlq"
RETENTION_7_DAYS_MS = 7 * 24 * 3600 * 1000
RETENTION_30_DAYS_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, how it is keyed, how long Kafka keeps it, and the envelope class
    every record on it carries (``None``: raw records, as on the dead-letter twins)."""

    name: str
    key: str
    partitions: int
    cleanup_policy: str = "delete"
    retention_ms: int = RETENTION_7_DAYS_MS
    description: str = ""
    extra_config: dict[str, str] = field(default_factory=dict)
    envelope: type[CloudEvent[Any]] | None = None

    @property
    def dlq(self) -> TopicSpec:
        """The dead-letter twin: same partitions, kept longer, never compacted."""
        return TopicSpec(
            name=self.name + DLQ_SUFFIX,
            key=self.key,
            partitions=self.partitions,
            cleanup_policy="delete",
            retention_ms=RETENTION_30_DAYS_MS,
            description=f"Dead letters of {self.name}: original bytes, headers and the error.",
        )

    def config(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            **self.extra_config,
        }


TICKET_EVENTS = TopicSpec(
    "ticket-events",
    key="ticket_id",
    partitions=6,
    description="Upstream ticket events (created, updated, commented, closed).",
    envelope=TicketEvent,
)
TICKET_FLAGGED = TopicSpec(
    "ticket-flagged",
    key="ticket_id",
    partitions=6,
    description="Redacted tickets that show at least one risk indicator.",
    envelope=TicketFlaggedEvent,
)
RISK_CLASSIFIED = TopicSpec(
    "risk-classified",
    key="risk_id",
    partitions=6,
    description="Risk level and category decisions, upgrades and overrides.",
    envelope=RiskClassifiedEvent,
)
ESCALATION_DUE = TopicSpec(
    "escalation-due",
    key="risk_id",
    partitions=6,
    description="Escalation timers that fired: notify, remind, warn, breach, weekly review.",
    envelope=EscalationDueEvent,
)
ESCALATION_ACKS = TopicSpec(
    "escalation-acks",
    key="risk_id",
    partitions=6,
    description="Acknowledgements of escalation steps and Level 3 review decisions.",
    envelope=EscalationAcknowledgedEvent,
)
RISK_REGISTERED = TopicSpec(
    "risk-registered",
    key="risk_id",
    partitions=6,
    cleanup_policy="compact",
    retention_ms=-1,
    description="Full current state of every Risk Register entry (compacted: latest per risk).",
    envelope=RiskRegisteredEvent,
)
RISK_FEEDBACK = TopicSpec(
    "risk-feedback",
    key="ticket_id (risk_id when it names no ticket)",
    partitions=6,
    # Each record is a labelled example kept by intake; a month lets a stopped intake catch up.
    retention_ms=RETENTION_30_DAYS_MS,
    description="People's feedback on detections: not a risk, wrong level, missed risk.",
    envelope=RiskFeedbackEvent,
)

MAIN_TOPICS: tuple[TopicSpec, ...] = (
    TICKET_EVENTS,
    TICKET_FLAGGED,
    RISK_CLASSIFIED,
    ESCALATION_DUE,
    ESCALATION_ACKS,
    RISK_REGISTERED,
    RISK_FEEDBACK,
)
ALL_TOPICS: tuple[TopicSpec, ...] = MAIN_TOPICS + tuple(t.dlq for t in MAIN_TOPICS)


def topic_name(spec: TopicSpec, prefix: str = "") -> str:
    """Physical topic name: the registry name behind an optional per-deployment prefix."""
    return f"{prefix}{spec.name}"


async def ensure_topics(
    admin: AIOKafkaAdminClient,
    specs: Iterable[TopicSpec],
    prefix: str = "",
    replication_factor: int = 1,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Existing topics are left alone (partition counts are only ever changed by an operator, since
    adding partitions moves keys between partitions and breaks per-key ordering).
    """
    existing = set(await admin.list_topics())
    missing = [
        NewTopic(
            name=topic_name(spec, prefix),
            num_partitions=spec.partitions,
            replication_factor=replication_factor,
            topic_configs=spec.config(),
        )
        for spec in specs
        if topic_name(spec, prefix) not in existing
    ]
    if missing:
        await admin.create_topics(missing)
    return [t.name for t in missing]
