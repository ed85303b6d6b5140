"""`riskrelay classify`: the offline pipeline through its command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from riskrelay.cli.classify import classify_command

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# The main app registers the command the same way: app.command("classify")(classify_command).
app = typer.Typer()


@app.callback()
def _root() -> None:
    """Keeps `classify` a sub-command, as it is in the `riskrelay` app."""


app.command("classify")(classify_command)
runner = CliRunner()

OUTAGE_TEXTS = (
    "Checkout fails with error 502 every time I click pay now.",
    "Checkout fails with error 502 when I click pay now, tried twice.",
    "Every time I click pay now, checkout fails with error 502.",
    "Checkout fails with a 502 error each time I click pay now.",
    "Checkout keeps failing with error 502 when I click pay now.",
)


def ticket_event(
    number: int,
    description: str,
    *,
    minutes: float,
    customer: str | None = None,
    ticket: str | None = None,
    kind: str = "created",
    channel: str = "email",
    event_id: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ticket_id": ticket or f"T-{number}",
        "subject": "Checkout" if "502" in description else "Question",
        "description": description,
        "channel": channel,
        "customer": {"id": customer or f"C-{number}", "segment": "consumer"},
        "product": "Shop Checkout",
        "priority": "normal",
        "tags": [],
    }
    if comment is not None:
        data["comment"] = {"author_type": "customer", "body": comment}
    return {
        "specversion": "1.0",
        "id": event_id or f"evt-{number}",
        "source": "test://helpdesk",
        "type": f"riskrelay.ticket.{kind}.v1",
        "time": (T0 + timedelta(minutes=minutes)).isoformat(),
        "subject": data["ticket_id"],
        "data": data,
    }


def surge_fixture() -> list[dict[str, Any]]:
    """Five customers report one outage within 25 minutes, plus an unrelated how-to question.

    Written out of time order on purpose: the surge-completing report comes first in the file.
    """
    reports = [ticket_event(i + 1, text, minutes=5 * i) for i, text in enumerate(OUTAGE_TEXTS)]
    question = ticket_event(9, "How do I change my delivery address?", minutes=7)
    return [reports[4], reports[0], question, reports[2], reports[1], reports[3]]


def write_jsonl(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(*args: str, stdin: str | None = None) -> tuple[int, list[dict[str, Any]], str]:
    result = runner.invoke(app, ["classify", *args], input=stdin)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, rows, result.stderr


def test_one_line_per_input_line_in_input_order_with_final_state(tmp_path: Path) -> None:
    events = surge_fixture()
    code, rows, _ = run(str(write_jsonl(tmp_path / "in.jsonl", list(events))))
    assert code == 0
    assert [row["line"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert [row["ticket_id"] for row in rows] == [e["data"]["ticket_id"] for e in events]
    assert [row["event_id"] for row in rows] == [e["id"] for e in events]
    for row in rows:
        assert set(row) >= {
            "ticket_id", "flagged", "level", "category", "risk_id", "indicators", "explanation",
        }  # fmt: skip

    by_ticket = {row["ticket_id"]: row for row in rows}
    question = by_ticket["T-9"]
    assert question["flagged"] is False
    assert (question["level"], question["category"], question["risk_id"]) == (None, None, None)
    assert question["indicators"] == []

    # T-1 had no indicator of its own when it arrived; the fifth customer's report surged the
    # cluster afterwards, and T-1 is reported with that later flag.
    outage = [by_ticket[f"T-{n}"] for n in range(1, 6)]
    assert all(row["flagged"] for row in outage)
    assert all("multiple_similar_reports" in row["indicators"] for row in outage)
    assert len({row["risk_id"] for row in outage}) == 1
    assert len({row["level"] for row in outage}) == 1
    assert outage[0]["level"] >= 4
    assert "surging" in outage[0]["explanation"]


def test_same_input_same_output_whatever_the_file_order(tmp_path: Path) -> None:
    events = surge_fixture()
    path = write_jsonl(tmp_path / "in.jsonl", list(events))
    first = runner.invoke(app, ["classify", str(path)])
    second = runner.invoke(app, ["classify", str(path)])
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout

    reversed_path = write_jsonl(tmp_path / "reversed.jsonl", list(reversed(events)))
    _, forward_rows, _ = run(str(path))
    _, backward_rows, _ = run(str(reversed_path))

    def per_ticket(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        return {row["ticket_id"]: {k: v for k, v in row.items() if k != "line"} for row in rows}

    assert per_ticket(forward_rows) == per_ticket(backward_rows)


def test_invalid_lines_are_reported_in_place_and_exit_1(tmp_path: Path) -> None:
    good = ticket_event(1, "Where is my parcel?", minutes=0)
    no_customer = ticket_event(2, "Hello", minutes=1)
    del no_customer["data"]["customer"]
    fax = ticket_event(3, "Hello", minutes=2, channel="fax")
    later = ticket_event(4, "Can I pay by invoice?", minutes=3)
    path = write_jsonl(tmp_path / "in.jsonl", [good, "{not json", no_customer, "", fax, later])

    code, rows, stderr = run(str(path))

    assert code == 1
    assert [row["line"] for row in rows] == [1, 2, 3, 5, 6]  # the blank line 4 has no output
    assert rows[0]["ticket_id"] == "T-1"
    assert "error" in rows[1]
    assert "ticket_id" not in rows[1]
    assert "data.customer" in rows[2]["error"]
    assert "channel" in rows[3]["error"]
    assert rows[3]["event_id"] == "evt-3"
    assert rows[4]["ticket_id"] == "T-4"
    assert rows[4]["flagged"] is False
    assert "3 line(s)" in stderr


def test_a_repeated_event_id_is_processed_once(tmp_path: Path) -> None:
    event = ticket_event(1, "Where is my parcel?", minutes=0)
    code, rows, _ = run(str(write_jsonl(tmp_path / "in.jsonl", [event, event])))
    assert code == 0
    assert rows[1]["duplicate_of_line"] == 1
    assert "duplicate_of_line" not in rows[0]


def test_follow_up_comment_flags_the_ticket_on_all_its_lines(tmp_path: Path) -> None:
    created = ticket_event(1, "Where is my parcel?", minutes=0)
    escalation = ticket_event(
        2,
        "Where is my parcel?",
        minutes=60,
        ticket="T-1",
        customer="C-1",
        kind="commented",
        comment="Still nothing. I'm going to the press with this and telling all my followers.",
    )
    code, rows, _ = run(str(write_jsonl(tmp_path / "in.jsonl", [created, escalation])))
    assert code == 0
    assert rows[0] == {**rows[1], "line": 1, "event_id": "evt-1"}
    assert rows[0]["flagged"] is True
    assert "reputation_threat" in rows[0]["indicators"]


def test_reads_standard_input() -> None:
    stdin = "\n".join(json.dumps(e) for e in surge_fixture()) + "\n"
    code, rows, _ = run("-", stdin=stdin)
    assert code == 0
    assert len(rows) == 6


def test_missing_file_exits_2(tmp_path: Path) -> None:
    code, rows, stderr = run(str(tmp_path / "absent.jsonl"))
    assert code == 2
    assert rows == []
    assert "no such file" in stderr


def test_invalid_policy_exits_2_naming_the_problem(tmp_path: Path) -> None:
    events = write_jsonl(tmp_path / "in.jsonl", list(surge_fixture()))
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: '1'\nrules:\n  - id: Bad Id\n", encoding="utf-8")
    code, rows, stderr = run(str(events), "--policy", str(policy))
    assert code == 2
    assert rows == []
    assert "invalid policy" in stderr
    assert "Bad Id" in stderr

    missing = run(str(events), "--policy", str(tmp_path / "nope.yaml"))
    assert missing[0] == 2


def test_invalid_rule_pack_exits_2(tmp_path: Path) -> None:
    events = write_jsonl(tmp_path / "in.jsonl", list(surge_fixture()))
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: x\ndisable: [no.such.rule]\n", encoding="utf-8")
    code, _, stderr = run(str(events), "--rules", str(rules))
    assert code == 2
    assert "no.such.rule" in stderr


def test_a_policy_change_can_be_dry_run(tmp_path: Path) -> None:
    events = write_jsonl(tmp_path / "in.jsonl", list(surge_fixture()))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        """
version: "dry-run-1"
default_level: 2
rules:
  - id: surges-are-medium
    description: A surge is Medium in this trial policy.
    priority: 10
    effect: sets_level
    level: 3
    category: service_disruption
    when:
      surging: true
""",
        encoding="utf-8",
    )
    _, current, _ = run(str(events))
    code, trial, _ = run(str(events), "--policy", str(policy))
    assert code == 0
    changed = [
        (before["ticket_id"], before["level"], after["level"])
        for before, after in zip(current, trial, strict=True)
        if before["level"] != after["level"]
    ]
    assert changed
    assert all(after == 3 for _, _, after in changed)
    assert all("policy dry-run-1" in row["explanation"] for row in trial if row["flagged"])


def test_extra_rules_are_applied_after_the_default_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # About the rule pack alone: the learned models would flag the scorched parcel too.
    monkeypatch.setenv("RISKRELAY_INTAKE_DETECTION__SEMANTIC", "false")
    event = ticket_event(1, "My parcel smells of smoke and the box is scorched.", minutes=0)
    events = write_jsonl(tmp_path / "in.jsonl", [event])
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        """
version: smoke-1
rules:
  - id: impact.smoke
    indicator: severe_impact
    description: Smoke or scorching on delivery.
    confidence: 0.8
    patterns: ['\\bsmells? of smoke\\b']
""",
        encoding="utf-8",
    )
    _, plain, _ = run(str(events))
    code, extended, _ = run(str(events), "--rules", str(rules))
    assert code == 0
    assert plain[0]["flagged"] is False
    assert extended[0]["indicators"] == ["severe_impact"]
    assert "rule pack 2025.11.2+smoke-1" in extended[0]["explanation"]
