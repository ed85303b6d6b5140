"""The register's Prometheus metrics (names agreed across services) and their refresh loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

from riskrelay.register import store
from riskrelay.register.domain import ChangeKind
from riskrelay.shared.events import RiskLevel, RiskStatus


@dataclass
class RegisterMetrics:
    registry: CollectorRegistry
    risks: Gauge = field(init=False)
    reviews_overdue: Gauge = field(init=False)
    changes: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.risks = Gauge(
            "riskrelay_register_risks",
            "Risk Register entries by level and status.",
            ["level", "status"],
            registry=self.registry,
        )
        self.reviews_overdue = Gauge(
            "riskrelay_register_reviews_overdue",
            "Open Risk Register entries whose review is due or was never scheduled.",
            registry=self.registry,
        )
        self.changes = Counter(
            "riskrelay_register_changes_total",
            "New versions of Risk Register entries, by what caused them.",
            ["kind"],
            registry=self.registry,
        )
        for kind in ChangeKind:
            self.changes.labels(kind.value)

    def count_changes(self, kinds: list[ChangeKind]) -> None:
        for kind in kinds:
            self.changes.labels(kind.value).inc()

    async def refresh(self, pool: asyncpg.Pool, now: datetime) -> None:
        counts = await store.count_by_level_and_status(pool)
        # Every combination is set, zeros included, so a status a risk left drops to 0.
        for level in RiskLevel:
            for status in RiskStatus:
                value = counts.get((int(level), status.value), 0)
                self.risks.labels(str(int(level)), status.value).set(value)
        self.reviews_overdue.set(await store.count_overdue_reviews(pool, now))

    async def refresh_forever(
        self, pool: asyncpg.Pool, clock: Callable[[], datetime], interval: float
    ) -> None:
        while True:
            await self.refresh(pool, clock())
            await asyncio.sleep(interval)
