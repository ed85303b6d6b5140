"""Feedback in Debian's Chromium, driven by Playwright: intake flags a ticket, a team lead opens
its risk in the console, follows the feedback button and marks the ticket "not a risk", then
"wrong level", and intake keeps each once among its labelled examples, the ones
``riskrelay train --with-feedback`` reads, with the ticket's redacted text and the person.
(A form posted twice is kept once: tests/integration/test_console_feedback.py posts one twice;
Chromium sends one request for a double-click on a submit button.)

Intake, the escalator, the register and reporting run on the real broker and PostgreSQL; the
risk arrives on ``risk-classified`` as the classifier sends it. The screenshot is written to
``tests/artifacts/console-feedback.png`` by this test.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from riskrelay.intake.app import create_app as create_intake
from riskrelay.intake.feedback import StoredFeedback
from riskrelay.intake.feedback_store import load_feedback
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.events import RiskLevel
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, running
from tests.e2e.browsing import BrowserConsole
from tests.e2e.test_console_browser import classified, console, reload_until, screenshot
from tests.integration.test_feedback_loop import EMAIL, ticket_event

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

__all__ = ["console"]  # the fixture, imported for this module's tests

TICKET = "T-fb-browser"
RISK = "risk-fb-browser"
NOTE = "a customer who forgot a trip abroad"


@pytest.fixture
async def intake(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, db_schema: str
) -> AsyncIterator[FastAPI]:
    app = create_intake(
        IntakeSettings(
            kafka=kafka_settings.model_copy(update={"fetch_min_bytes": 1, "fetch_max_wait_ms": 50}),
            database=database_settings.model_copy(update={"schema_name": f"{db_schema}_int"}),
        )
    )
    async with running(app):
        yield app


async def labelled_examples(intake: FastAPI) -> list[StoredFeedback]:
    """What ``riskrelay train --with-feedback`` would read from intake's table."""
    async with intake.state.context.db.acquire() as connection:
        return await load_feedback(connection)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_ticket_marked_not_a_risk_in_a_real_browser_becomes_a_labelled_example(
    intake: FastAPI, browser_console: BrowserConsole, kafka_settings: KafkaSettings
) -> None:
    base = browser_console.url
    prefix = kafka_settings.topic_prefix
    await browser_console.add_people([("lea@example.org", "Lea Lead", ["team_lead"])])
    await produce(
        kafka_settings.bootstrap,
        f"{prefix}ticket-events",
        [(TICKET.encode(), json.dumps(ticket_event(TICKET, datetime.now(UTC))).encode())],
    )
    risk = classified(RISK, RiskLevel.HIGH, "Accounts taken over from abroad")
    risk = risk.model_copy(
        update={"data": risk.data.model_copy(update={"ticket_id": TICKET, "ticket_ids": [TICKET]})}
    )
    await produce(
        kafka_settings.bootstrap,
        f"{prefix}risk-classified",
        [(RISK.encode(), risk.to_json_bytes())],
    )

    lea = await browser_console.sign_in("lea@example.org")
    await lea.goto(f"{base}/console/risks/{RISK}")
    await reload_until(lea, "#feedback-button")
    assert await lea.inner_text("h1") == "Accounts taken over from abroad"
    await lea.click("#feedback-button")
    # A GET form with no fields: the address ends in "?".
    await lea.wait_for_url(re.compile(rf"/console/feedback/risks/{RISK}\??$"))
    # The ticket's row appears once intake's flag has reached the read model.
    row_selector = f"tr[data-ticket-id='{TICKET}']"
    await reload_until(lea, f"{row_selector} form.feedback-not-a-risk", timeout=90)
    row = lea.locator(row_selector)
    assert "security issue" in await row.inner_text()
    assert EMAIL not in await lea.content(), "no personal data on the feedback page"
    form = row.locator("form.feedback-not-a-risk")
    await form.get_by_label("Note").fill(NOTE)
    await form.get_by_role("button", name="Not a risk").click()
    await lea.wait_for_selector("p.notice")
    assert f"Recorded ticket {TICKET} as not a risk" in await lea.inner_text("p.notice")
    await screenshot(lea, "feedback")

    # A second judgement of the same ticket (same partition, so intake reads it after
    # every copy of the first): once it is stored, the first's copies have been seen.
    wrong_level = lea.locator(f"{row_selector} form.feedback-wrong-level")
    await wrong_level.get_by_label("The right level").select_option("3")
    await wrong_level.get_by_role("button", name="Wrong level").click()
    await lea.wait_for_selector("p.notice:has-text('wrong level')")

    examples: list[StoredFeedback] = []

    async def both_stored() -> bool:
        nonlocal examples
        examples = await labelled_examples(intake)
        return any(example.feedback.kind.value == "wrong_level" for example in examples)

    await eventually(both_stored, timeout=60)
    not_a_risk = [e.feedback for e in examples if e.feedback.kind.value == "not_a_risk"]
    assert len(not_a_risk) == 1
    wrong = next(e.feedback for e in examples if e.feedback.kind.value == "wrong_level")
    assert (wrong.ticket_id, wrong.level, wrong.correct_level) == (TICKET, 4, 3)
    example = not_a_risk[0]
    assert (example.ticket_id, example.risk_id) == (TICKET, RISK)
    assert (example.given_by, example.role.value, example.note) == (
        "lea@example.org",
        "team_lead",
        NOTE,
    )
    assert "security_issue" in {indicator.value for indicator in example.indicators}
    texts = {text.source.value: text.text for text in example.texts}
    assert "Someone logged into my account" in texts["summary"]
    assert "[EMAIL]" in texts["summary"]
    stored = json.dumps([text.text for text in example.texts])
    assert EMAIL not in stored
    assert "Jane Roe" not in stored
