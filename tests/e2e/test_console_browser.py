"""The console in Debian's Chromium, driven by Playwright: a team lead signs in, sees a due
Level 4 step and acknowledges it (and the escalator cancels its reminders); a support manager
takes the Level 3 decision; two people edit the same register entry and the second sees the
stale-edit refusal. The escalator, the register and reporting run on local ports against the
real broker and PostgreSQL; the risks arrive on ``risk-classified`` as the classifier sends them.

The screenshots of each page are written to ``tests/artifacts/console-*.png`` by this test.
Chromium and Playwright are set up in ``conftest.py``; the ``console`` fixture here (the services
on local ports) is the one the other console browser tests use too.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from riskrelay.escalator.app import create_app as create_escalator
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.register.app import create_app as create_register
from riskrelay.register.settings import RegisterSettings
from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.settings import ConsoleSettings, ReportingSettings, ScheduleSettings
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    Detection,
    Indicator,
    RiskCategory,
    RiskClassified,
    RiskClassifiedEvent,
    RiskLevel,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce
from tests.e2e.browsing import BrowserConsole, Console, on_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
ADMIN_TOKEN = "console-browser-admin-token"
# Deadlines of an hour: every step is due and none overdue while the test runs; Level 4 repeats
# every 10 minutes until acknowledged, so there are reminders to stop.
POLICY = """
version: "console-browser"
pre_breach_warning_fraction: 0.5
levels:
  5:
    timeframe: {rule: elapsed, within: 60m}
    steps: [{role: team_lead}]
  4:
    timeframe: {rule: elapsed, within: 60m}
    steps: [{role: team_lead}, {role: support_manager}]
    reminders: {every: 10m, max_count: 3}
  3:
    timeframe: {rule: elapsed, within: 60m}
    steps: [{role: team_lead}, {role: support_manager, kind: review}]
    on_review_confirmed: {role: risk_management, ack_due: 60m}
    weekly_review: true
  2:
    timeframe: {rule: elapsed, within: 48h}
    steps: [{role: agent}]
    weekly_review: true
  1:
    timeframe: {rule: weekly_review}
    weekly_review: true
"""


def classified(risk_id: str, level: RiskLevel, title: str) -> RiskClassifiedEvent:
    at = datetime.now(UTC)
    data = RiskClassified(
        risk_id=risk_id,
        level=level,
        category=RiskCategory.DATA_SECURITY_PRIVACY,
        ticket_id=f"T-{risk_id}",
        ticket_ids=[f"T-{risk_id}"],
        ticket_count=1,
        distinct_customers=1,
        indicators=[Indicator.DATA_CONCERN],
        title=title,
        redacted_summary="A customer reports seeing another customer's data.",
        first_reported_at=at,
        flagged_at=at,
        policy_version="test",
        rules_fired=[],
        evidence=[
            Detection(
                indicator=Indicator.DATA_CONCERN,
                rule_id="data.other_customer",
                evidence="I can see the invoice of [NAME]",
                confidence=0.9,
            )
        ],
    )
    return RiskClassifiedEvent(
        id=derive_event_id(f"classified:{risk_id}", "browser"),
        source="riskrelay/classifier",
        time=at,
        subject=risk_id,
        correlationid=risk_id,
        data=data,
    )


@pytest.fixture
async def console(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> AsyncIterator[Console]:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"admin": ADMIN_TOKEN}))
    keys = tmp_path / "identity-keys.json"
    keys.write_text(json.dumps({"signing_key_id": "k1", "keys": {"k1": secrets.token_urlsafe(32)}}))
    auth = AuthSettings(tokens_file=tokens, identity_keys_file=keys)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    quick = kafka_settings.model_copy(update={"fetch_min_bytes": 1, "fetch_max_wait_ms": 50})

    def schema(name: str) -> DatabaseSettings:
        return database_settings.model_copy(update={"schema_name": f"{db_schema}_{name}"})

    escalator = create_escalator(
        EscalatorSettings(
            kafka=kafka_settings, database=schema("esc"), policy_path=policy, auth=auth
        )
    )
    register = create_register(RegisterSettings(kafka=quick, database=schema("reg"), auth=auth))
    async with on_port(escalator) as escalator_url, on_port(register) as register_url:
        reporting = create_reporting(
            ReportingSettings(
                kafka=quick,
                database=schema("rep"),
                auth=auth,
                schedule=ScheduleSettings(enabled=False),
                console=ConsoleSettings(escalator_url=escalator_url, register_url=register_url),
            )
        )
        async with on_port(reporting) as reporting_url:
            yield Console(reporting_url, reporting, escalator, ADMIN_TOKEN)


async def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"console-{name}.png"
    target.unlink(missing_ok=True)
    await page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


async def reload_until(page: Any, selector: str, timeout: float = 60) -> None:
    """Reload until ``selector`` is on the page (the read model catches up with the topics)."""

    async def present() -> bool:
        await page.reload()
        return bool(await page.locator(selector).count())

    await eventually(present, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_people_act_on_risks_in_the_console_in_a_real_browser(
    browser_console: BrowserConsole, kafka_settings: KafkaSettings
) -> None:
    base = browser_console.url
    await browser_console.add_people(
        [
            ("lea@example.org", "Lea Lead", ["team_lead"]),
            ("sam@example.org", "Sam Manager", ["support_manager"]),
            ("rita@example.org", "Rita Risk", ["risk_management"]),
        ]
    )
    await produce(
        kafka_settings.bootstrap,
        f"{kafka_settings.topic_prefix}risk-classified",
        [
            (b"risk-b4", classified("risk-b4", RiskLevel.HIGH, "Invoices shown to the wrong customer").to_json_bytes()),
            (b"risk-b3", classified("risk-b3", RiskLevel.MEDIUM, "Order history of another account").to_json_bytes()),
        ],
    )  # fmt: skip
    escalator_db = browser_console.console.escalator.state.context.db

    # The team lead: the due Level 4 step, acknowledged in one click.
    lea = await browser_console.sign_in("lea@example.org")
    level_4 = "tr:has-text('Invoices shown to the wrong customer')"
    await reload_until(lea, level_4)
    row = lea.locator(level_4)
    assert "High (Level 4)" in await row.inner_text()
    assert "left" in await row.locator("td").nth(4).inner_text()
    step_id = await row.get_attribute("data-escalation-id")
    assert step_id
    pending_reminders = await escalator_db.fetchval(
        "SELECT count(*) FROM timers WHERE escalation_id = $1 AND reason = 'reminder'"
        " AND state = 'pending'",
        step_id,
    )
    assert pending_reminders == 3
    await screenshot(lea, "queue")
    await row.get_by_role("button", name="Acknowledge").click()
    await lea.wait_for_selector("p.notice")
    assert f"Acknowledged step {step_id}" in await lea.inner_text("p.notice")
    assert await lea.locator(f"tr[data-escalation-id='{step_id}']").count() == 0
    timers = await escalator_db.fetch(
        "SELECT state, cancelled_reason FROM timers WHERE escalation_id = $1"
        " AND reason = 'reminder'",
        step_id,
    )
    assert timers
    assert {timer["state"] for timer in timers} == {"cancelled"}, "reminders stopped"
    acknowledged_by = await escalator_db.fetchval(
        "SELECT acknowledged_by FROM escalation_steps WHERE escalation_id = $1", step_id
    )
    assert acknowledged_by == "lea@example.org"

    # The risk page, from the queue's link.
    await lea.goto(f"{base}/console/risks/risk-b4")
    assert await lea.inner_text("h1") == "Invoices shown to the wrong customer"
    await reload_until(lea, "#timeline tr.timeline-acknowledged")
    assert "by lea@example.org" in await lea.inner_text("#timeline")
    assert "I can see the invoice of [NAME]" in await lea.inner_text("#detections")
    await screenshot(lea, "risk")

    # The support manager: the Level 3 review, confirmed with a note.
    sam = await browser_console.sign_in("sam@example.org")
    level_3 = "tr:has-text('Order history of another account')"
    await reload_until(sam, f"{level_3} form.decision")
    review = sam.locator(level_3)
    review_id = await review.get_attribute("data-escalation-id")
    await review.get_by_label("Confirmed", exact=True).check()
    await review.locator("textarea[name=note]").fill("Checked with billing: confirmed.")
    await screenshot(sam, "decision")
    await review.get_by_role("button", name="Record decision").click()
    await sam.wait_for_selector("p.notice")
    assert "Recorded your Level 3 decision" in await sam.inner_text("p.notice")
    decision = await escalator_db.fetchrow(
        "SELECT decision, acknowledged_by FROM escalation_steps WHERE escalation_id = $1",
        review_id,
    )
    assert decision is not None
    assert (decision["decision"], decision["acknowledged_by"]) == (
        "confirmed",
        "sam@example.org",
    )

    # Two people open the same register entry; the second to save is refused.
    rita = await browser_console.sign_in("rita@example.org")
    await rita.goto(f"{base}/console/register")
    await reload_until(rita, "tr[data-risk-id='risk-b4']")
    await screenshot(rita, "register")
    await sam.goto(f"{base}/console/register/risk-b4")
    await rita.click("tr[data-risk-id='risk-b4'] a")
    await rita.fill("#owner", "rita@example.org")
    await rita.fill("#likelihood", "4")
    await rita.fill("#impact", "3")
    await rita.click("#edit button[type=submit]")
    await rita.wait_for_selector("p.notice")
    assert "Saved: the entry is now version" in await rita.inner_text("p.notice")
    assert "Rita Risk <rita@example.org>" in await rita.inner_text("#history")
    await screenshot(rita, "register-entry")
    await sam.fill("#owner", "sam@example.org")
    await sam.click("#edit button[type=submit]")
    await sam.wait_for_selector("#refusal")
    assert "Someone else changed this entry after you opened it" in await sam.inner_text("#refusal")
    assert "owner: sam@example.org" in await sam.inner_text("#unsaved")
    assert await sam.input_value("#owner") == "rita@example.org"
    await screenshot(sam, "register-stale-edit")
