"""Producing a report: query the read model, build the report, render it (timed).

Shared by the HTTP endpoints, the scheduler and the CLI, so all three give the same bytes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

import asyncpg
from prometheus_client import CollectorRegistry, Histogram

from riskrelay.reporting import store
from riskrelay.reporting.model import MonthlyReport, WeeklyReport
from riskrelay.reporting.periods import Period, previous_month
from riskrelay.reporting.render import ReportFormat, render
from riskrelay.reporting.reports import monthly_report, weekly_report

ReportKind = Literal["weekly", "monthly"]
Connectable: TypeAlias = "asyncpg.Pool | store.Connection"


async def build_weekly(db: Connectable, period: Period, now: datetime) -> WeeklyReport:
    async with _connection(db) as connection:
        inputs = await store.weekly_inputs(connection, period, now)
    return weekly_report(inputs, period, now)


async def build_monthly(db: Connectable, period: Period, now: datetime) -> MonthlyReport:
    previous = previous_month(period)
    async with _connection(db) as connection:
        inputs = await store.monthly_inputs(connection, period, previous, now)
    return monthly_report(inputs, period, previous, now)


@contextlib.asynccontextmanager
async def _connection(db: Connectable) -> AsyncIterator[store.Connection]:
    """A pooled connection (acquired) or an already open one (used as is)."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as connection:
            yield connection
    else:
        yield db


@dataclass
class RenderMetrics:
    seconds: Histogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> RenderMetrics:
        return cls(
            Histogram(
                "riskrelay_reporting_render_seconds",
                "Time to produce a report: queries, computation and rendering.",
                ["report", "format"],
                registry=registry,
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            )
        )


@dataclass(frozen=True)
class Rendered:
    report: WeeklyReport | MonthlyReport
    body: str
    seconds: float


async def produce(
    db: Connectable,
    kind: ReportKind,
    period: Period,
    fmt: ReportFormat,
    now: datetime,
    metrics: RenderMetrics | None = None,
    timer: Callable[[], float] = time.perf_counter,
) -> Rendered:
    started = timer()
    report: WeeklyReport | MonthlyReport
    if kind == "weekly":
        report = await build_weekly(db, period, now)
    else:
        report = await build_monthly(db, period, now)
    body = render(report, fmt)
    elapsed = timer() - started
    if metrics is not None:
        metrics.seconds.labels(kind, fmt.value).observe(elapsed)
    return Rendered(report, body, elapsed)


def file_name(kind: ReportKind, period: Period, fmt: ReportFormat) -> str:
    stem = "weekly-risk-summary" if kind == "weekly" else "monthly-risk-report"
    return f"{stem}-{period.label}.{fmt.extension}"
