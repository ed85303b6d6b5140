from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from riskrelay.cli.kafka_tools import parse_ticket_lines
from riskrelay.cli.main import app

pytestmark = pytest.mark.unit
runner = CliRunner()

BERLIN = """
timezone: Europe/Berlin
business_hours: {mon: ["09:00", "17:00"], tue: ["09:00", "17:00"], wed: ["09:00", "17:00"], thu: ["09:00", "17:00"], fri: ["09:00", "17:00"]}
holidays: {country: DE, subdivision: BE}
extra_closed_days: ["2026-12-24", "2026-12-31"]
"""


def test_escalation_plan_level4_after_hours_before_christmas(tmp_path: Path) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text(BERLIN)
    result = runner.invoke(
        app,
        [
            "escalation",
            "plan",
            "--level",
            "4",
            "--at",
            "2026-12-23T18:00:00+01:00",
            "--calendar",
            str(calendar),
        ],
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    # 24th is an extra closed day, 25th/26th holidays, 27th Sunday: next business day is Mon 28th.
    assert plan["timeframe_due_at"] == "2026-12-28T17:00:00+01:00"
    assert plan["weekly_review_at"] is None
    assert [s["role"] for s in plan["steps"]] == ["team_lead", "support_manager", "risk_management"]
    assert set(plan) == {"level", "flagged_at", "timeframe_due_at", "weekly_review_at", "steps"}


def test_escalation_plan_is_deterministic_and_rejects_naive_times() -> None:
    args = ["escalation", "plan", "--level", "3", "--at", "2026-11-20T10:00:00Z"]
    first, second = runner.invoke(app, args), runner.invoke(app, args)
    assert first.exit_code == 0
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["timeframe_due_at"] == "2026-11-21T10:00:00+00:00"
    naive = runner.invoke(
        app, ["escalation", "plan", "--level", "3", "--at", "2026-11-20T10:00:00"]
    )
    assert naive.exit_code == 2
    assert "offset" in naive.output


def test_publish_validation_reports_line_numbers() -> None:
    good = json.dumps(
        {
            "id": "e1",
            "source": "zendesk://acme",
            "type": "riskrelay.ticket.created.v1",
            "time": "2026-11-20T10:00:00Z",
            "data": {
                "ticket_id": "T1",
                "subject": "s",
                "description": "d",
                "channel": "email",
                "customer": {"id": "c", "segment": "smb"},
                "product": "p",
                "priority": "low",
                "tags": [],
            },
        }
    )
    valid, invalid = parse_ticket_lines(
        [good, "", "{oops", good.replace("created.v1", "created.v7")]
    )
    assert [v.line_number for v in valid] == [1]
    assert valid[0].key == b"T1"
    assert [i.line_number for i in invalid] == [3, 4]
    assert "created.v7" in invalid[1].reason
