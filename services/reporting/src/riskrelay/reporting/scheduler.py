"""Scheduled reports: the previous week's summary every week, the previous month's report every
month, written to files and announced to an optional webhook.

The fire times are pure functions of ``now`` and the settings; the loop takes its time from an
injectable :class:`Clock`, so tests drive it without waiting. Runs are idempotent: a report whose
files exist is not rendered again, so restarts and several instances do not duplicate work
(several instances may both render; files are replaced atomically with identical content).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from riskrelay.reporting.generate import RenderMetrics, ReportKind, file_name, produce
from riskrelay.reporting.model import MonthlyReport, WeeklyReport
from riskrelay.reporting.periods import Period, month_of, previous_month, previous_week, week_of
from riskrelay.reporting.render import ReportFormat
from riskrelay.reporting.settings import ScheduleSettings
from riskrelay.shared.logging import get_logger

log = get_logger(__name__)

NOTICE_TYPE = "riskrelay.report.published.v1"


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# ---------------------------------------------------------------------------------------------
# Fire times (pure)
# ---------------------------------------------------------------------------------------------


def _weekly_fire_in_week(moment: datetime, schedule: ScheduleSettings) -> datetime:
    monday = week_of(moment).start
    return monday + timedelta(days=schedule.weekly_weekday, hours=schedule.weekly_hour)


def _monthly_fire_in_month(moment: datetime, schedule: ScheduleSettings) -> datetime:
    first = month_of(moment).start
    return first + timedelta(days=schedule.monthly_day - 1, hours=schedule.monthly_hour)


def latest_fire(kind: ReportKind, now: datetime, schedule: ScheduleSettings) -> datetime:
    """The most recent scheduled time at or before ``now``."""
    if kind == "weekly":
        fire = _weekly_fire_in_week(now, schedule)
        return fire if fire <= now else fire - timedelta(days=7)
    fire = _monthly_fire_in_month(now, schedule)
    if fire <= now:
        return fire
    return _monthly_fire_in_month(month_of(now).start - timedelta(days=1), schedule)


def next_fire(kind: ReportKind, now: datetime, schedule: ScheduleSettings) -> datetime:
    """The first scheduled time strictly after ``now``."""
    if kind == "weekly":
        return latest_fire(kind, now, schedule) + timedelta(days=7)
    this_month = _monthly_fire_in_month(now, schedule)
    return this_month if this_month > now else _monthly_fire_in_month(month_of(now).end, schedule)


def period_for(kind: ReportKind, fire: datetime) -> Period:
    """A run reports on the last full period before it: the previous week or month."""
    if kind == "weekly":
        return previous_week(week_of(fire))
    return previous_month(month_of(fire))


@dataclass(frozen=True)
class Run:
    kind: ReportKind
    fire: datetime
    period: Period


def next_run(now: datetime, schedule: ScheduleSettings) -> Run:
    candidates = [
        Run(k, next_fire(k, now, schedule), Period("", now, now)) for k in ("weekly", "monthly")
    ]
    first = min(candidates, key=lambda run: (run.fire, run.kind))
    return Run(first.kind, first.fire, period_for(first.kind, first.fire))


def missed_runs(now: datetime, schedule: ScheduleSettings) -> list[Run]:
    """Runs due within the catch-up window (the service may have been down at the time)."""
    window = timedelta(hours=schedule.catch_up_hours)
    runs = []
    for kind in ("weekly", "monthly"):
        fire = latest_fire(kind, now, schedule)
        if now - fire <= window:
            runs.append(Run(kind, fire, period_for(kind, fire)))
    return runs


def notice(
    kind: ReportKind, report: WeeklyReport | MonthlyReport, files: list[Path]
) -> dict[str, Any]:
    """The JSON announced to the webhook after a scheduled report was written."""
    figures: dict[str, int | float | None]
    if isinstance(report, WeeklyReport):
        figures = {
            "flagged_tickets": report.flagged_tickets.total,
            "new_risks": report.risks.total.new,
            "escalations_breached": report.escalations_total.breached,
            "open_level_3_5_risks": report.open_risks.total,
        }
    else:
        figures = {
            "flagged_tickets": report.flagged_tickets,
            "change_pct_per_day": report.month_over_month.total.change_pct,
            "new_risks": report.new_risks,
            "recurring_issues": report.recurring_issues.total,
            "near_misses": report.near_misses.total,
        }
    return {
        "type": NOTICE_TYPE,
        "report": report.report,
        "kind": kind,
        "period": report.period.label,
        "generated_at": report.generated_at.isoformat(),
        "empty": report.empty,
        "title": report.title,
        "files": [str(path) for path in files],
        "figures": figures,
    }


# ---------------------------------------------------------------------------------------------
# The loop (I/O)
# ---------------------------------------------------------------------------------------------


def _write_atomically(path: Path, body: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(body, encoding="utf-8")
    temporary.replace(path)


PostJson = Callable[[str, dict[str, Any]], Awaitable[None]]


async def post_json(url: str, payload: dict[str, Any], timeout: float = 10.0) -> None:
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.post(url, json=payload)
        response.raise_for_status()


@dataclass
class Scheduler:
    db: Any
    schedule: ScheduleSettings
    clock: Clock
    metrics: RenderMetrics | None = None
    post: PostJson | None = None

    def paths(self, run: Run) -> list[Path]:
        return [
            self.schedule.directory / file_name(run.kind, run.period, fmt)
            for fmt in self.schedule.formats
        ]

    async def execute(self, run: Run) -> list[Path]:
        """Render a run's files (skipping when all exist) and announce them; returns the paths
        written."""
        paths = self.paths(run)
        if all(path.exists() for path in paths):
            return []
        self.schedule.directory.mkdir(parents=True, exist_ok=True)
        now = self.clock.now()
        report: WeeklyReport | MonthlyReport | None = None
        for fmt, path in zip(self.schedule.formats, paths, strict=True):
            rendered = await produce(
                self.db, run.kind, run.period, ReportFormat(fmt), now, self.metrics
            )
            report = rendered.report
            _write_atomically(path, rendered.body)
        log.info(
            "scheduled report written",
            kind=run.kind,
            period=run.period.label,
            files=[str(p) for p in paths],
        )
        if report is not None and self.schedule.webhook_url is not None:
            await self._announce(run.kind, report, paths)
        return paths

    async def _announce(
        self, kind: ReportKind, report: WeeklyReport | MonthlyReport, paths: list[Path]
    ) -> None:
        url = str(self.schedule.webhook_url)
        payload = notice(kind, report, paths)
        send = self.post or (
            lambda u, p: post_json(u, p, timeout=self.schedule.webhook_timeout_seconds)
        )
        for attempt in range(1, 4):
            try:
                await send(url, payload)
                return
            except (httpx.HTTPError, OSError) as error:
                log.warning("report webhook failed", attempt=attempt, error=str(error))
                await self.clock.sleep(2.0**attempt)
        log.error("report webhook gave up", period=report.period.label)

    async def run_forever(self) -> None:
        for missed in missed_runs(self.clock.now(), self.schedule):
            await self.execute(missed)
        run = next_run(self.clock.now(), self.schedule)
        while True:
            delay = (run.fire - self.clock.now()).total_seconds()
            if delay > 0:
                # Sleep in slices so a changed clock (tests, suspend/resume) is noticed.
                await self.clock.sleep(min(delay, 300.0))
                continue
            await self.execute(run)
            run = next_run(run.fire, self.schedule)
