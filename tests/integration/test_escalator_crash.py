"""Crash test: SIGKILL the escalator process while timers fire; after a restart every due
escalation is on the topic (by id) exactly once and none is lost.

Reminders that fell more than a repeat behind while the escalator was down are caught up by the
latest of their series (the catch-up rule): those are recorded as skipped, each covered by an
event on the topic, and count as handled, never as lost.

Publishing is at least once: a process killed between the broker's ack and marking the outbox row
published makes the relay publish that event again after the restart. Such a raw duplicate has
the same deterministic id, which is the contract consumers deduplicate on, so the test asserts
the set of ids and reports the raw duplicates it saw.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from riskrelay.devstack import free_port
from riskrelay.escalator.calendar import load_calendar
from riskrelay.escalator.domain import build_plan, due_event_id, plan_timers
from riskrelay.escalator.policy import load_policy
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    EscalationDueEvent,
    Indicator,
    RiskCategory,
    RiskClassified,
    RiskClassifiedEvent,
    RiskLevel,
)
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import produce, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RISKS = 300
# Three roles, each: initial, a warning at 3 s, breach at 6 s (and the director's copy),
# three reminders (each twice): 10 timers a step, 30 a risk, 9,000 in all over 9 seconds.
POLICY = """
version: "crash-test"
pre_breach_warning_fraction: 0.5
levels:
  5:
    timeframe: {rule: elapsed, within: 6s}
    steps: [{role: team_lead}, {role: support_manager}, {role: risk_management}]
    reminders: {every: 1s, max_count: 3}
    breach_notifies: support_director
  4: {timeframe: {rule: same_business_day}, steps: [{role: team_lead}]}
  3: {timeframe: {rule: elapsed, within: 24h}, steps: [{role: team_lead}]}
  2: {timeframe: {rule: elapsed, within: 48h}, steps: [{role: agent}]}
  1: {timeframe: {rule: weekly_review}, weekly_review: true}
"""


def classified(risk_id: str, flagged_at: datetime) -> RiskClassifiedEvent:
    return RiskClassifiedEvent(
        id=derive_event_id(f"crash:{risk_id}", "classified"),
        source="riskrelay/classifier",
        time=flagged_at,
        subject=risk_id,
        data=RiskClassified(
            risk_id=risk_id,
            level=RiskLevel.CRITICAL,
            category=RiskCategory.SERVICE_DISRUPTION,
            ticket_id=f"T-{risk_id}",
            ticket_ids=[f"T-{risk_id}"],
            ticket_count=1,
            distinct_customers=1,
            indicators=[Indicator.SEVERE_IMPACT],
            title=f"Checkout down ({risk_id})",
            redacted_summary="Checkout fails for every customer.",
            first_reported_at=flagged_at,
            flagged_at=flagged_at,
            policy_version="test",
            rules_fired=[],
            evidence=[],
        ),
    )


def start_escalator(
    kafka: KafkaSettings, database: DatabaseSettings, policy: Path, log: Path
) -> subprocess.Popen[bytes]:
    prefix = "RISKRELAY_ESCALATOR_"
    env = {
        **os.environ,
        f"{prefix}KAFKA__BOOTSTRAP": kafka.bootstrap,
        f"{prefix}KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        f"{prefix}KAFKA__SESSION_TIMEOUT_MS": "6000",
        f"{prefix}KAFKA__HEARTBEAT_INTERVAL_MS": "500",
        f"{prefix}DATABASE__URL": database.url.get_secret_value(),
        f"{prefix}DATABASE__SCHEMA_NAME": database.schema_name,
        f"{prefix}HTTP__PORT": str(free_port()),
        f"{prefix}POLICY_PATH": str(policy),
        f"{prefix}LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "riskrelay.escalator"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def poll(
    connection: asyncpg.Connection, query: str, done: Callable[[int], bool], timeout: float
) -> int:
    deadline = time.monotonic() + timeout
    value: int = await connection.fetchval(query)
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {query} is {value}")
        await asyncio.sleep(0.05)
        value = await connection.fetchval(query)
    return value


async def test_killed_escalator_emits_every_due_escalation_once_after_restart(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(POLICY)
    policy = load_policy(policy_path)
    calendar = load_calendar()
    flagged = datetime.now(UTC)
    risks = [f"risk-{n:03d}" for n in range(RISKS)]
    expected = {
        due_event_id(timer.key, timer.plan_version)
        for risk_id in risks
        for timer in plan_timers(
            build_plan(
                risk_id=risk_id, level=5, flagged_at=flagged, policy=policy, calendar=calendar
            )
        )
    }
    assert len(expected) == RISKS * 30
    log = tmp_path / "escalator.log"
    first = start_escalator(kafka_settings, database_settings, policy_path, log)
    second: subprocess.Popen[bytes] | None = None
    schema = database_settings.schema_name
    connection = await asyncpg.connect(
        database_settings.url.get_secret_value(), server_settings={"search_path": schema}
    )
    try:
        await poll(
            connection,
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename = 'timers'",
            lambda n: n == 1,
            60,
        )
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            [(r.encode(), classified(r, flagged).to_json_bytes()) for r in risks],
        )
        fired_at_kill = await poll(
            connection,
            "SELECT count(*) FROM timers WHERE state = 'fired'",
            lambda n: n >= len(expected) // 3,
            60,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        pending_at_kill = await connection.fetchval(
            "SELECT count(*) FROM timers WHERE state = 'pending'"
        )
        unpublished_at_kill = await connection.fetchval(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        second = start_escalator(kafka_settings, database_settings, policy_path, log)
        await poll(
            connection,
            "SELECT count(*) FROM timers WHERE state IN ('fired', 'skipped')",
            lambda n: n == len(expected),
            60,
        )
        fired = {
            row["event_id"]
            for row in await connection.fetch("SELECT event_id FROM timers WHERE state = 'fired'")
        }
        skipped: dict[str, str] = {
            row["event_id"]: row["covered_by"]
            for row in await connection.fetch(
                "SELECT event_id, covered_by FROM timers WHERE state = 'skipped'"
            )
        }
        await poll(
            connection,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            lambda n: n == 0,
            30,
        )
        records = await read_topic(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}escalation-due",
            expected=len(fired),
            timeout=60,
            settle=3,
        )
    finally:
        await connection.close()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
    ids = Counter(EscalationDueEvent.model_validate_json(r.value).id for r in records)
    raw_duplicates = sum(ids.values()) - len(ids)
    record_property("fired_before_kill", fired_at_kill)
    record_property("raw_duplicates", raw_duplicates)
    record_property("caught_up_reminders", len(skipped))
    print(
        f"\ncrash test: {len(expected)} expected; killed with {fired_at_kill} fired,"
        f" {pending_at_kill} pending, {unpublished_at_kill} committed but not marked published;"
        f" topic holds {sum(ids.values())} records, {len(ids)} distinct ids,"
        f" {raw_duplicates} raw duplicates (same id); {len(skipped)} reminders caught up"
    )
    assert pending_at_kill > 0, "the kill came after every timer had fired"
    missing = expected - set(ids) - set(skipped)
    assert not missing, f"{len(missing)} escalations lost"
    assert set(ids) == fired
    assert not fired & set(skipped)
    assert fired | set(skipped) == expected
    assert set(skipped.values()) <= set(ids), "a skipped reminder's catch-up event is missing"
