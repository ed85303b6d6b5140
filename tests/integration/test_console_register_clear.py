"""A register entry's fields, once written, can be cleared in the console: a free text, the
owner and (with its control) the mitigation plan; the register keeps the cleared version and the
history shows each gone. A field the entry's status needs, like the owner of a risk under joint
assessment, is refused with the register's reason. Real broker, PostgreSQL and register service."""

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

        page = await rita.get(ENTRY)
        written = await rita.post(
            f"{ENTRY}/edit",
            data=edit_of(page, mitigation_strategy="Rotate the keys", mitigation_owner="eng-sec"),
        )
        assert written.status_code == 303, written.text
        page = await rita.get(ENTRY)
        assert 'id="remove_mitigation"' in page.text
        cleared = await rita.post(
            f"{ENTRY}/edit",
            data=edit_of(page, owner="", remove_mitigation="on", reason="handed back"),
        )
        assert cleared.status_code == 303, cleared.text
        row = await register_db.fetchrow(
            "SELECT owner, mitigation_strategy, mitigation_owner FROM risks"
            " WHERE risk_id = 'risk-clear'"
        )
        assert tuple(row) == (None, None, None)
        page = await rita.get(ENTRY)
        assert 'id="remove_mitigation"' not in page.text, "no plan left to remove"
        assert re.search(r'<input id="owner"[^>]*value=""', page.text)
        history = re.search(r'id="history".*?</table>', page.text, re.S)
        assert history is not None
        rows = re.findall(
            r'<td>owner</td><td class="before">([^<]*)</td><td class="after">([^<]*)</td>',
            history.group(0),
        )
        assert rows[0] == ("rita@example.org", "–")
        assert "handed back" in history.group(0)

        owned = await rita.post(f"{ENTRY}/edit", data=edit_of(page, owner="rita@example.org"))
        assert owned.status_code == 303, owned.text
        page = await rita.get(ENTRY)
        moved = await rita.post(
            f"{ENTRY}/transition", data=edit_of(page, target="under_joint_assessment")
        )
        assert moved.status_code == 303, moved.text
        page = await rita.get(ENTRY)
        no_owner = await rita.post(f"{ENTRY}/edit", data=edit_of(page, owner=""))
        assert no_owner.status_code == 422
        refusal = html.unescape(no_owner.text)
        assert "owner cannot be cleared while the risk is under joint assessment" in refusal
        assert "needs an accountable owner" in refusal
        assert "<li>owner: cleared</li>" in refusal
        kept = await register_db.fetchval("SELECT owner FROM risks WHERE risk_id = 'risk-clear'")
        assert kept == "rita@example.org"
