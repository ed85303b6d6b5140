from __future__ import annotations

import gc
import io
import json
import signal
import stat
import subprocess
import sys
import tempfile
import warnings
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from riskrelay.cli.kafka_tools import LOG_APPEND_TIME, event_time, parse_ticket_lines, record_times
from riskrelay.cli.main import app, print_whole
from riskrelay.cli.report import database_address, database_error
from riskrelay.cli.sample_traffic import generate, write_jsonl
from riskrelay.cli.stack import StackConfig, StackState, exit_description, stop_from_state
from riskrelay.devstack import ensure_runtime_dir, free_port, riskrelay_runtime_dir

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


# ---------------------------------------------------------------------------------------------
# A broker or database that cannot be reached: one line, exit code 1
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    return free_port()


@pytest.fixture
def ticket_file(tmp_path: Path) -> Path:
    path = tmp_path / "tickets.jsonl"
    write_jsonl(generate(3, seed=1, start=datetime(2026, 11, 20, 9, 0, tzinfo=UTC)), path)
    return path


def assert_one_line_naming(result: Result, address: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert address in lines[0]
    assert "Traceback" not in result.output
    gc.collect()


@pytest.mark.parametrize(
    "command",
    [["publish", "{file}"], ["tail", "ticket-flagged"], ["dlq", "replay", "ticket-events"]],
    ids=["publish", "tail", "dlq-replay"],
)
def test_broker_commands_say_in_one_line_that_the_broker_is_unreachable(
    command: list[str], closed_port: int, ticket_file: Path
) -> None:
    address = f"127.0.0.1:{closed_port}"
    args = [part.format(file=ticket_file) for part in command] + ["--bootstrap", address]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, args)
        assert_one_line_naming(result, address)
    assert "cannot reach the Kafka broker" in result.stderr
    unclosed = [w for w in caught if "Unclosed" in str(w.message) or "AIOKafka" in str(w.message)]
    assert unclosed == [], "every client is closed"


@pytest.mark.parametrize("kind", ["weekly --week 2026-W48", "monthly --month 2026-11"])
def test_report_commands_name_the_database_they_cannot_reach(kind: str, closed_port: int) -> None:
    url = f"postgresql://postgres:secret@127.0.0.1:{closed_port}/riskrelay"
    result = runner.invoke(app, ["report", *kind.split(), "--database-url", url])
    assert_one_line_naming(result, f"127.0.0.1:{closed_port}/riskrelay")
    assert "connection refused" in result.stderr
    assert "secret" not in result.stderr


def test_database_errors_name_the_address_without_credentials() -> None:
    url = "postgresql://app:hunter2@db.internal:6543/reports?sslmode=require"
    assert database_address(url) == "db.internal:6543/reports"
    refused = database_error(url, ConnectionRefusedError(111, "Connect call failed"))
    assert (
        refused
        == "cannot reach the reporting database at db.internal:6543/reports (connection refused)"
    )
    assert "hunter2" not in database_error(url, ValueError("bad\n  thing"))
    assert database_error(url, ValueError("bad\n  thing")).endswith(": bad thing")


# ---------------------------------------------------------------------------------------------
# tail: when the event happened and when its record arrived
# ---------------------------------------------------------------------------------------------

ARRIVED = datetime(2026, 12, 1, 14, 0, 0, 250_000, tzinfo=UTC)


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_tail_shows_event_time_and_arrival_and_flags_an_old_event_arriving_now() -> None:
    old = json.dumps({"id": "e", "time": "2026-11-20T10:00:00Z"}).encode()
    line = record_times(old, millis(ARRIVED))
    assert line == (
        "event 2026-11-20T10:00:00+00:00  arrived 2026-12-01T14:00:00.250+00:00"
        " (11 d 4 h after the event)"
    )
    fresh = json.dumps({"time": (ARRIVED - timedelta(seconds=3)).isoformat()}).encode()
    assert record_times(fresh, millis(ARRIVED)).endswith("arrived 2026-12-01T14:00:00.250+00:00")
    future = json.dumps({"time": (ARRIVED + timedelta(minutes=90)).isoformat()}).encode()
    assert "(1 h 30 min BEFORE the event)" in record_times(future, millis(ARRIVED))
    assert record_times(b"\x00 not json", millis(ARRIVED), LOG_APPEND_TIME) == (
        "event time -  appended 2026-12-01T14:00:00.250+00:00"
    )
    assert event_time(json.dumps({"time": "2026-11-20T10:00:00"}).encode()) is None  # naive


# ---------------------------------------------------------------------------------------------
# dev up / dev down
# ---------------------------------------------------------------------------------------------


def test_exit_descriptions_tell_a_stop_from_a_crash() -> None:
    assert exit_description(-signal.SIGTERM) == "was stopped by SIGTERM"
    assert exit_description(-signal.SIGKILL) == "was killed by SIGKILL"
    assert exit_description(3) == "exited with code 3"


def test_the_start_up_table_keeps_long_urls_whole_when_output_is_not_a_terminal() -> None:
    out = io.StringIO()
    target = Console(file=out, width=80)
    assert not target.is_terminal
    url = "http://127.0.0.1:8005/dashboard?token=dev-analyst-" + "x" * 60
    table = Table("component", "address")
    table.add_row("reporting", url)
    print_whole(target, table)
    assert url in out.getvalue()


def test_dev_down_asks_dev_up_to_stop_and_leaves_the_stopping_to_it(tmp_path: Path) -> None:
    config = StackConfig(data_dir=tmp_path)
    # Stands in for `riskrelay dev up`: on SIGTERM it stops "its stack" (removes the state file).
    supervisor = subprocess.Popen(
        [
            sys.executable, "-c",
            "import pathlib, signal, sys, time  # riskrelay dev up\n"
            "def stop(*_):\n"
            f"    pathlib.Path({str(config.state_file)!r}).unlink()\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert supervisor.stdout is not None
    assert supervisor.stdout.readline() == b"ready\n"
    state = StackState(
        broker_pid=None, pg_data_dir=None, pg_port=1, kafka_port=1, service_pids={},
        inbox_pid=None, supervisor_pid=supervisor.pid,
    )  # fmt: skip
    config.state_file.write_text(json.dumps(asdict(state)))
    report = stop_from_state(config, supervisor_timeout=20)
    assert supervisor.wait(10) == 0, "dev up exits normally: a requested stop"
    assert report.by_supervisor == supervisor.pid
    assert not config.state_file.exists()
    assert stop_from_state(config).stopped == []


def test_a_state_file_from_an_older_version_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text(
        json.dumps({"broker_pid": None, "pg_data_dir": "/x", "pg_port": 1, "kafka_port": 2,
                    "service_pids": {}, "retired_field": 1})
    )  # fmt: skip
    state = StackState.load(path)
    assert state.supervisor_pid is None
    assert state.pg_data_dir == "/x"


def test_the_runtime_dir_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    environ: dict[str, str] = {}
    made = ensure_runtime_dir(environ)
    assert environ["XDG_RUNTIME_DIR"] == str(made) == str(riskrelay_runtime_dir())
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    made.chmod(0o755)  # as `mkdir -p` left it before
    ensure_runtime_dir({"XDG_RUNTIME_DIR": str(made)})
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    users_own = tmp_path / "elsewhere"
    users_own.mkdir(mode=0o755)
    assert ensure_runtime_dir({"XDG_RUNTIME_DIR": str(users_own)}) == users_own
    assert stat.S_IMODE(users_own.stat().st_mode) == 0o755, "a directory the user chose is theirs"
