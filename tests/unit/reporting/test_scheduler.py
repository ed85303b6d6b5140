"""Scheduled reports: fire times, catch-up, files and the webhook notice, on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from riskrelay.reporting import scheduler as module
from riskrelay.reporting.generate import Rendered
from riskrelay.reporting.periods import Period
from riskrelay.reporting.render import ReportFormat
from riskrelay.reporting.scheduler import (
    Scheduler,
    latest_fire,
    missed_runs,
    next_fire,
    next_run,
)
from riskrelay.reporting.settings import ScheduleSettings

pytestmark = pytest.mark.unit


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_default_schedule_is_monday_and_first_of_month_at_seven_utc() -> None:
    schedule = ScheduleSettings()
    assert next_fire("weekly", at("2026-11-23T06:59"), schedule) == at("2026-11-23T07:00")
    assert next_fire("weekly", at("2026-11-23T07:00"), schedule) == at("2026-11-30T07:00")
    assert next_fire("monthly", at("2026-11-30T08:00"), schedule) == at("2026-12-01T07:00")
    assert next_fire("monthly", at("2026-12-31T23:00"), schedule) == at("2027-01-01T07:00")
    assert latest_fire("monthly", at("2026-12-01T06:00"), schedule) == at("2026-11-01T07:00")
    run = next_run(at("2026-11-30T08:00"), schedule)
    assert (run.kind, run.period.label) == ("monthly", "2026-11")
    run = next_run(at("2026-11-22T12:00"), schedule)
    assert (run.kind, run.period.label) == ("weekly", "2026-W47")


def test_catch_up_only_within_the_window() -> None:
    schedule = ScheduleSettings(catch_up_hours=48)
    assert [(r.kind, r.period.label) for r in missed_runs(at("2026-12-01T09:00"), schedule)] == [
        ("weekly", "2026-W48"),
        ("monthly", "2026-11"),
    ]
    assert missed_runs(at("2026-12-04T09:00"), schedule) == []


@dataclass
class FakeClock:
    current: datetime
    slept: list[float] = field(default_factory=list)

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.current += timedelta(seconds=seconds)


async def test_a_run_writes_each_format_once_and_announces_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered: list[tuple[str, str, ReportFormat]] = []

    async def fake_produce(db: Any, kind: str, period: Period, fmt: ReportFormat, now: datetime,
                           metrics: Any = None) -> Rendered:  # fmt: skip
        from riskrelay.reporting.model import RiskList, WeeklyInputs
        from riskrelay.reporting.reports import weekly_report

        rendered.append((kind, period.label, fmt))
        report = weekly_report(
            WeeklyInputs([], [], [], RiskList(0), RiskList(0), RiskList(0), period.start),
            period,
            now,
        )
        return Rendered(report, f"{kind} {period.label} {fmt.value}", 0.01)

    monkeypatch.setattr(module, "produce", fake_produce)
    posted: list[tuple[str, dict[str, Any]]] = []

    async def post(url: str, payload: dict[str, Any]) -> None:
        posted.append((url, payload))

    schedule = ScheduleSettings(
        directory=tmp_path, webhook_url="https://hooks.example.test/reports", catch_up_hours=0
    )
    clock = FakeClock(at("2026-11-23T06:00"))
    worker = Scheduler(db=None, schedule=schedule, clock=clock, post=post)
    run = next_run(clock.now(), schedule)
    written = await worker.execute(run)
    assert [p.name for p in written] == [
        "weekly-risk-summary-2026-W47.html",
        "weekly-risk-summary-2026-W47.json",
    ]
    assert (tmp_path / "weekly-risk-summary-2026-W47.json").read_text() == "weekly 2026-W47 json"
    assert posted[0][0] == "https://hooks.example.test/reports"
    assert posted[0][1]["type"] == "riskrelay.report.published.v1"
    assert posted[0][1]["period"] == "2026-W47"
    assert posted[0][1]["empty"] is True
    assert await worker.execute(run) == []  # files exist: not rendered or announced again
    assert len(rendered) == 2
    assert len(posted) == 1
