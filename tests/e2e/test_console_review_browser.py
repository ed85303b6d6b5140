"""The Weekly Risk Review in Debian's Chromium, driven by Playwright: a support manager opens the
agenda, decides a Level 2 item in place ("keep monitoring", with a note), and sees the decision
on the item and in the record of what the review decided, with their name; the escalator has
closed the risk's weekly-review step as them.

The escalator, the register and reporting run on the real broker and PostgreSQL; the risk
arrives on ``risk-classified`` as the classifier sends it. The screenshots are written to
``tests/artifacts/console-review.png`` (the agenda) and ``console-review-decided.png`` by this
test.
"""

from __future__ import annotations

import pytest

from riskrelay.shared.events import RiskLevel
from riskrelay.shared.settings import KafkaSettings
from riskrelay.testing import eventually, produce
from tests.e2e.browsing import BrowserConsole
from tests.e2e.test_console_browser import classified, console, reload_until, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

__all__ = ["console"]  # the fixture, imported for this module's tests

RISK = "risk-review-browser"
TITLE = "Refunds credited twice"
NOTE = "Watch refunds next week."


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_weekly_review_item_is_decided_in_place_in_a_real_browser(
    browser_console: BrowserConsole, kafka_settings: KafkaSettings
) -> None:
    base = browser_console.url
    await browser_console.add_people([("sam@example.org", "Sam Manager", ["support_manager"])])
    await produce(
        kafka_settings.bootstrap,
        f"{kafka_settings.topic_prefix}risk-classified",
        [(RISK.encode(), classified(RISK, RiskLevel.LOW, TITLE).to_json_bytes())],
    )
    escalator_db = browser_console.console.escalator.state.context.db

    sam = await browser_console.sign_in("sam@example.org")
    await sam.goto(f"{base}/console/review")
    item = f"tr[data-agenda='level_1_2'][data-risk-id='{RISK}']"
    await reload_until(sam, f"{item} form.review-decision")
    assert "No decisions recorded this week yet." in await sam.inner_text("#review-live")
    row = sam.locator(item)
    assert TITLE in await row.inner_text()

    # The escalator's weekly-review step opens when it plans the risk; the decision
    # closes it, so wait until it is there.
    async def weekly_step_open() -> bool:
        state = await escalator_db.fetchval(
            "SELECT status FROM escalation_steps WHERE risk_id = $1 AND kind = 'weekly_review'",
            RISK,
        )
        return bool(state == "open")

    await eventually(weekly_step_open, timeout=60)
    await screenshot(sam, "review")

    form = row.locator("form.review-decision")
    await form.get_by_label("Reviewed: keep monitoring").check()
    await form.get_by_label("Note").fill(NOTE)
    await form.get_by_role("button", name="Record decision").click()
    await sam.wait_for_selector("p.notice[role=status]")
    assert f"Recorded for {TITLE}: Reviewed: keep monitoring" in await sam.inner_text(
        "p.notice[role=status]"
    )

    # The decision on the item itself and in the review's record, by Sam.
    decided = sam.locator(f"{item} p.decided")
    await decided.wait_for()
    assert "Sam Manager" in await decided.inner_text()
    record = sam.locator(f"#review-decisions tr[data-decision='monitored'][data-risk-id='{RISK}']")
    await record.wait_for()
    recorded = await record.inner_text()
    assert TITLE in recorded
    assert "sam@example.org" in recorded
    assert NOTE in recorded
    await screenshot(sam, "review-decided")

    step = await escalator_db.fetchrow(
        "SELECT status, acknowledged_by FROM escalation_steps WHERE risk_id = $1"
        " AND kind = 'weekly_review'",
        RISK,
    )
    assert step is not None
    assert dict(step) == {"status": "acknowledged", "acknowledged_by": "sam@example.org"}
