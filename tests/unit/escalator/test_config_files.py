"""Calendar and policy files: defaults load, invalid files fail naming the offending field."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from riskrelay.escalator.calendar import ConfigFileError, load_calendar
from riskrelay.escalator.policy import AckDueRule, StepKind, TimeframeRule, load_policy
from riskrelay.shared.events import RiskLevel, Role

pytestmark = pytest.mark.unit

VALID_CALENDAR: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "business_hours": {day: ["09:00", "17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    "holidays": {"country": "DE", "subdivision": "BE"},
    "extra_closed_days": ["2026-12-24", "2026-12-31"],
}


def write_yaml(tmp_path: Path, content: Any, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def default_policy_mapping() -> dict[str, Any]:
    text = (
        Path(__file__).parents[3] / "services/escalator/src/riskrelay/escalator/config/policy.yaml"
    ).read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_default_policy_is_the_protocol() -> None:
    policy = load_policy()
    assert policy.pre_breach_warning_fraction == 0.75
    assert policy.weekly_review.time == time(10, 0)
    critical = policy.for_level(RiskLevel.CRITICAL)
    assert critical.timeframe.within == timedelta(minutes=15)
    assert [step.role for step in critical.steps] == [
        Role.TEAM_LEAD,
        Role.SUPPORT_MANAGER,
        Role.RISK_MANAGEMENT,
    ]
    assert critical.breach_notifies is Role.SUPPORT_DIRECTOR
    assert policy.for_level(4).timeframe.rule is TimeframeRule.SAME_BUSINESS_DAY
    medium = policy.for_level(3)
    assert medium.timeframe.within == timedelta(hours=24)
    assert medium.steps[1].kind is StepKind.REVIEW
    assert medium.on_review_confirmed is not None
    assert medium.on_review_confirmed.role is Role.RISK_MANAGEMENT
    assert policy.for_level(2).timeframe.within == timedelta(hours=48)
    assert policy.for_level(1).timeframe.rule is TimeframeRule.WEEKLY_REVIEW


def test_default_calendar_loads() -> None:
    calendar = load_calendar()
    assert calendar.timezone == "UTC"
    assert set(calendar.business_hours) == {"mon", "tue", "wed", "thu", "fri"}


def test_calendar_file_loads_from_a_path(tmp_path: Path) -> None:
    calendar = load_calendar(write_yaml(tmp_path, VALID_CALENDAR))
    assert calendar.timezone == "Europe/Berlin"
    assert calendar.business_hours["mon"] == (time(9, 0), time(17, 0))
    assert calendar.holidays is not None
    assert calendar.holidays.subdivision == "BE"


@pytest.mark.parametrize(
    ("change", "expected_field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"business_hours": {"mon": ["17:00", "09:00"]}}, "business_hours"),
        ({"business_hours": {"mon": ["9am", "17:00"]}}, "business_hours.mon.0"),
        ({"business_hours": {"mon": ["09:00", "24:00"]}}, "business_hours.mon.1"),
        ({"business_hours": {"monday": ["09:00", "17:00"]}}, "business_hours.monday"),
        ({"business_hours": {}}, "business_hours"),
        ({"holidays": {"country": "XX"}}, "holidays.country"),
        ({"holidays": {"country": "DE", "subdivision": "ZZ"}}, "subdivision 'ZZ'"),
        ({"extra_closed_days": ["2026-02-30"]}, "extra_closed_days.0"),
        ({"opening_hours": {}}, "opening_hours"),
    ],
)
def test_invalid_calendar_names_the_field(
    tmp_path: Path, change: dict[str, Any], expected_field: str
) -> None:
    with pytest.raises(ConfigFileError, match=expected_field.replace(".", r"\.")) as raised:
        load_calendar(write_yaml(tmp_path, VALID_CALENDAR | change))
    assert str(tmp_path) in str(raised.value)


def test_missing_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_calendar(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("timezone: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigFileError, match="not valid YAML"):
        load_calendar(broken)
    with pytest.raises(ConfigFileError, match="mapping"):
        load_calendar(write_yaml(tmp_path, ["a", "list"]))


def test_policy_loads_from_a_path_with_short_and_iso_durations(tmp_path: Path) -> None:
    mapping = default_policy_mapping()
    mapping["levels"][5]["timeframe"]["within"] = "PT10M"
    mapping["levels"][5]["reminders"]["every"] = "5m"
    mapping["levels"][2]["steps"][0]["ack_due"] = "2d"
    policy = load_policy(write_yaml(tmp_path, mapping))
    assert policy.for_level(5).timeframe.within == timedelta(minutes=10)
    reminders = policy.for_level(5).reminders
    assert reminders is not None
    assert reminders.every == timedelta(minutes=5)
    assert policy.for_level(2).steps[0].ack_due == timedelta(days=2)
    assert policy.for_level(3).steps[0].ack_due is AckDueRule.TIMEFRAME


def _set(mapping: dict[str, Any], path: str, value: Any) -> None:
    # Numeric parts index lists and the policy's integer level keys alike.
    *parents, last = (int(part) if part.isdigit() else part for part in path.split("."))
    node: Any = mapping
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("levels.3", _DELETE, "levels: .*missing level\\(s\\) 3"),
        ("levels.5.steps.0.role", "admin", "levels.5.steps.0.role"),
        ("levels.5.steps.0.role", "boss", "levels.5.steps.0.role"),
        ("levels.5.timeframe.within", "-5m", "levels.5.timeframe.within"),
        ("levels.5.timeframe.within", _DELETE, "levels.5.timeframe"),
        ("levels.4.timeframe.within", "1h", "levels.4.timeframe"),
        ("levels.4.timeframe.rule", "tomorrow", "levels.4.timeframe.rule"),
        ("levels.5.reminders.max_count", 0, "levels.5.reminders.max_count"),
        ("levels.5.breach_notifies", "upstream", "levels.5.breach_notifies"),
        ("levels.5.steps.1.role", "team_lead", "appears twice"),
        ("levels.4.on_review_confirmed", {"role": "risk_management"}, "needs a step with kind"),
        ("levels.3.on_review_confirmed.ack_due", "timeframe", "cannot be `timeframe`"),
        ("pre_breach_warning_fraction", 1.5, "pre_breach_warning_fraction"),
        ("weekly_review.time", "10", "weekly_review.time"),
        ("weekly_review.week_starts_on", "funday", "weekly_review.week_starts_on"),
        ("version", "", "version"),
        ("escalate_everything", True, "escalate_everything"),
    ],
)
def test_invalid_policy_names_the_field(
    tmp_path: Path, path: str, value: Any, expected: str
) -> None:
    mapping = default_policy_mapping()
    _set(mapping, path, value)
    with pytest.raises(ConfigFileError, match=expected):
        load_policy(write_yaml(tmp_path, mapping))
