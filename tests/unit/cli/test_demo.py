"""The demo: its traffic as records, the history's acknowledgements, where to look."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from riskrelay.cli.demo import (
    KEEP_OPEN,
    DashboardFigures,
    OpenStep,
    as_lines,
    busiest_periods,
    demo_events,
    demo_links,
    history_acknowledgements,
    service_groups,
    ticket_key,
)
from riskrelay.cli.stack import StackConfig
from riskrelay.shared.events import (
    EscalationAcknowledgedEvent,
    ReviewDecision,
    RiskLevel,
    Role,
    decode_event,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)


def step(
    escalation_id: str,
    notified: timedelta,
    *,
    window: timedelta | None = timedelta(minutes=15),
    kind: str = "acknowledge",
    role: Role = Role.TEAM_LEAD,
) -> OpenStep:
    notify_at = NOW - notified
    return OpenStep(
        escalation_id=escalation_id, risk_id=f"risk-{escalation_id}", level=RiskLevel.CRITICAL,
        role=role, kind=kind, notify_at=notify_at,
        ack_due_at=notify_at + window if window is not None else None,
    )  # fmt: skip


def test_the_history_is_acknowledged_and_the_last_hours_are_left_open() -> None:
    steps = [
        step("old", timedelta(days=9)),
        step(
            "yesterday", timedelta(hours=20), window=timedelta(hours=8), role=Role.SUPPORT_MANAGER
        ),
        step("review", timedelta(days=3), window=timedelta(hours=24), kind="review"),
        step("weekly", timedelta(days=2), window=None, kind="weekly_review"),
        step("surge", timedelta(hours=2)),
        step("edge", KEEP_OPEN),
    ]
    acks = history_acknowledgements(steps, now=NOW, seed=7)
    by_step = {ack.data.escalation_id: ack for ack in acks}
    assert set(by_step) == {"old", "yesterday", "review", "weekly"}
    for original in steps:
        ack = by_step.get(original.escalation_id)
        if ack is None:
            continue
        data = ack.data
        assert original.notify_at <= data.acknowledged_at <= NOW
        assert data.role is original.role
        assert data.risk_id == original.risk_id
        assert ack.time == data.acknowledged_at
        # Through the wire format and the decoder the escalator uses.
        assert decode_event(ack.to_json_bytes()) == ack
        assert isinstance(ack, EscalationAcknowledgedEvent)
    assert by_step["review"].data.decision is ReviewDecision.NOT_CONFIRMED
    assert by_step["old"].data.decision is None
    assert len({ack.id for ack in acks}) == len(acks)


def test_history_acknowledgements_are_deterministic_and_mostly_on_time() -> None:
    steps = [step(f"s{n}", timedelta(days=1 + n % 12, minutes=n)) for n in range(400)]
    first = history_acknowledgements(steps, now=NOW, seed=7)
    again = history_acknowledgements(list(reversed(steps)), now=NOW, seed=7)
    other = history_acknowledgements(steps, now=NOW, seed=8)
    assert [a.to_json_bytes() for a in first] == [a.to_json_bytes() for a in again]
    assert [a.data.acknowledged_at for a in first] != [a.data.acknowledged_at for a in other]
    due = {s.escalation_id: s.ack_due_at for s in steps}
    late = [a for a in first if a.data.acknowledged_at > due[a.data.escalation_id]]
    assert 0.03 < len(late) / len(first) < 0.2


def test_the_busiest_periods_follow_the_traffic_not_the_calendar() -> None:
    just_after_midnight_on_monday = datetime(2026, 12, 7, 0, 10, tzinfo=UTC)
    events = demo_events(300, seed=7, now=just_after_midnight_on_monday)
    in_current_week = [e for e in events if e.time >= datetime(2026, 12, 7, tzinfo=UTC)]
    assert 0 < len(in_current_week) < 0.1 * len(events)
    assert busiest_periods(events) == ("2026-W49", "2026-12")


def test_demo_records_are_keyed_by_ticket_and_cover_the_traffic() -> None:
    events = demo_events(120, seed=7, now=NOW)
    lines = as_lines(events, ticket_key)
    assert [line.line_number for line in lines] == list(range(1, 121))
    assert all(line.key == e.data.ticket_id.encode() for line, e in zip(lines, events, strict=True))
    assert decode_event(lines[-1].value).time == NOW - timedelta(minutes=2)


def test_links_name_the_busiest_week_and_month_and_carry_the_token(tmp_path: Path) -> None:
    config = StackConfig(data_dir=tmp_path, topic_prefix="t1.")
    links = demo_links(config, "tok", demo_events(300, seed=7, now=NOW))
    assert links.dashboard == "http://127.0.0.1:8005/dashboard?token=tok"
    # Tuesday 1 December: this week (Monday and the surge), but November (13 of the 14 days).
    assert "week=2026-W49" in links.weekly
    assert "month=2026-11" in links.monthly
    assert "Authorization: Bearer tok" in links.open_escalations
    assert links.notifications == "http://127.0.0.1:8006/"
    assert service_groups(config)[0] == "t1.riskrelay-intake"


def test_dashboard_figures_describe_the_headline_numbers() -> None:
    view = {
        "flagged_in_window": 31, "window_hours": 24, "open_risks_total": 40,
        "escalations_due_total": 12, "escalations_overdue_total": 3, "dead_letters_total": 0,
    }  # fmt: skip
    figures = DashboardFigures.from_view(view)
    assert figures.escalations_due == 12
    assert figures.describe() == (
        "31 tickets flagged in the last 24 h, 40 open risks, 12 escalations due and 3 overdue,"
        " 0 dead letters"
    )
