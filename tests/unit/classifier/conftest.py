"""Builders for the classifier's unit tests: flagged tickets with only the fields a test cares about.

Exposed as the session fixture ``build`` because test modules cannot import each other (or this
conftest) under ``--import-mode=importlib``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from riskrelay.classifier.policy import RiskPolicy, default_policy
from riskrelay.shared.events import (
    ClusterInfo,
    Detection,
    Indicator,
    RiskCategory,
    RiskFlag,
    RiskLevel,
    TicketEventKind,
    TicketFlagged,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def detection(rule_id: str, confidence: float = 0.9, evidence: str | None = None) -> Detection:
    """A detection whose indicator is the rule id's prefix (the intake rule-pack convention)."""
    return Detection(
        indicator=Indicator(rule_id.split(".", 1)[0]),
        rule_id=rule_id,
        evidence=evidence if evidence is not None else f"matched {rule_id}",
        confidence=confidence,
    )


def cluster(
    size: int,
    distinct_customers: int | None = None,
    *,
    surging: bool = False,
    cluster_id: str = "cluster-1",
    first_seen_at: datetime = T0,
) -> ClusterInfo:
    return ClusterInfo(
        cluster_id=cluster_id,
        size=size,
        distinct_customers=distinct_customers if distinct_customers is not None else size,
        surging=surging,
        first_seen_at=first_seen_at,
    )


def flag(level: int, category: RiskCategory | None = None) -> RiskFlag:
    return RiskFlag(level=RiskLevel(level), category=category, description="agent saw it")


def make_flagged(
    *rule_ids: str,
    ticket_id: str = "T-1",
    at: datetime = T0,
    detections: Sequence[Detection] = (),
    **overrides: Any,
) -> TicketFlagged:
    """A flagged ticket with ``rule_ids`` detected; keyword arguments set any other field."""
    found = [*detections, *(detection(rule_id) for rule_id in rule_ids)]
    fields: dict[str, Any] = {
        "ticket_id": ticket_id,
        "upstream_event_id": f"{ticket_id}-evt-{at.isoformat()}",
        "upstream_source": "zendesk://acme",
        "event_kind": TicketEventKind.CREATED,
        "occurred_at": at,
        "channel": "email",
        "priority": "normal",
        "product": "payments",
        "customer_id": f"cust-{ticket_id}",
        "customer_segment": "consumer",
        "redacted_subject": f"Problem reported on {ticket_id}",
        "redacted_summary": "The customer describes a problem. [EMAIL]",
        "indicators": found or [detection("agent_risk_flag.manual")],
        "rule_pack_version": "test-1",
    }
    fields.update(overrides)
    return TicketFlagged(**fields)


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


class Build:
    """Namespace handed to tests by the ``build`` fixture."""

    t0 = T0
    detection = staticmethod(detection)
    cluster = staticmethod(cluster)
    flag = staticmethod(flag)
    flagged = staticmethod(make_flagged)
    minutes = staticmethod(minutes)


@pytest.fixture(scope="session")
def build() -> Build:
    return Build()


@pytest.fixture(scope="session")
def policy() -> RiskPolicy:
    return default_policy()
