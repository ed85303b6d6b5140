"""A register entry's free text, once written, can be cleared in the console and the register
keeps the cleared version (the history shows it gone); a field the register requires once set,
like the owner, is refused with a message. Real broker, PostgreSQL and register service."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from riskrelay.shared.events import RiskLevel
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import produce
from tests.integration.test_console import (
    classified,
    console_client,
    console_stack,
    page_when,
    signed_in_person,
)

pytestmark = pytest.mark.integration

ENTRY = "/console/register/risk-clear"


def edit_of(page: httpx.Response, **changes: str) -> dict[str, str]:
    """The edit form as the page shows it (each field at its shown value), then ``changes``."""
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    form = {name: html.unescape(value) for name, value in hidden.items()}
    form |= {name.removeprefix("was_"): value for name, value in form.items() if name.startswith("was_")}  # fmt: skip
    return form | changes


async def test_a_written_assessment_is_cleared_and_a_required_owner_is_kept(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(
            kafka_settings, database_settings, db_schema, tmp_path, with_register=True
        ) as stack,
        console_client(stack.reporting) as rita,
    ):
        await signed_in_person(rita, "rita@example.org", "Rita Risk", ["risk_management"])
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            [(b"risk-clear", classified("risk-clear", datetime.now(UTC), RiskLevel.HIGH).to_json_bytes())],
        )  # fmt: skip
        page = await page_when(rita, ENTRY, 'id="entry-version"')
        written = await rita.post(
            f"{ENTRY}/edit",
            data=edit_of(page, owner="rita@example.org", assessment="Keys leaked in a log"),
        )
        assert written.status_code == 303, written.text
        page = await rita.get(ENTRY)
        assert "Keys leaked in a log" in page.text

        cleared = await rita.post(
            f"{ENTRY}/edit", data=edit_of(page, assessment="", reason="that was another risk")
        )
        assert cleared.status_code == 303, cleared.text
        register_db = stack.register.state.context.db if stack.register else None
        assert register_db is not None
        kept = await register_db.fetchval(
            "SELECT assessment FROM risks WHERE risk_id = 'risk-clear'"
        )
        assert not kept, "the register keeps no assessment"
        page = await rita.get(ENTRY)
        assert re.search(r'<textarea[^>]*id="assessment"[^>]*></textarea>', page.text), "empty"
        history = re.search(r'id="history".*?</table>', page.text, re.S)
        assert history is not None
        assert "that was another risk" in history.group(0)

        no_owner = await rita.post(f"{ENTRY}/edit", data=edit_of(page, owner=""))
        assert no_owner.status_code == 422
        assert "Owner cannot be emptied here once set." in no_owner.text
        assert "rita@example.org" in no_owner.text
