"""The console's Weekly Risk Review on the real broker and PostgreSQL: the agenda the weekly
summary computes, each item decided in place through the owning service as the person (the
escalator's Level 3 decision and weekly-review step, the classifier's override, the register's
review with If-Match), the record of what was decided, its live fragment, and the summary that
shows the decisions."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from fastapi import FastAPI

from riskrelay.classifier.app import create_app as create_classifier
from riskrelay.classifier.settings import ClassifierSettings
from riskrelay.escalator.app import create_app as create_escalator
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.register.app import create_app as create_register
from riskrelay.register.settings import RegisterSettings
from riskrelay.reporting.app import create_app as create_reporting
from riskrelay.reporting.generate import build_weekly
from riskrelay.reporting.periods import week_of
from riskrelay.reporting.settings import ConsoleSettings, ReportingSettings, ScheduleSettings
from riskrelay.shared.events import RiskLevel
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, running
from tests.integration.test_console import (
    POLICY,
    auth_files,
    classified,
    console_client,
    csrf_of,
    page_when,
    served_app,
    signed_in_person,
)

pytestmark = pytest.mark.integration

# Level 4 entries are due for review two seconds after registration: an overdue review at once.
REGISTER_POLICY = """
review_intervals: {5: P7D, 4: 2, 3: P30D}
"""


@contextlib.asynccontextmanager
async def review_stack(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    folder: Path,
) -> AsyncIterator[dict[str, FastAPI]]:
    auth = auth_files(folder)
    (folder / "policy.yaml").write_text(POLICY)
    (folder / "register.yaml").write_text(REGISTER_POLICY)
    quick = kafka_settings.model_copy(update={"fetch_min_bytes": 1, "fetch_max_wait_ms": 50})

    def schema(name: str) -> DatabaseSettings:
        return database_settings.model_copy(update={"schema_name": f"{db_schema}_{name}"})

    apps = {
        "escalator": create_escalator(
            EscalatorSettings(
                kafka=quick,
                database=schema("esc"),
                policy_path=folder / "policy.yaml",
                auth=auth,
            )
        ),
        "register": create_register(
            RegisterSettings(
                kafka=quick,
                database=schema("reg"),
                policy_path=folder / "register.yaml",
                auth=auth,
            )
        ),
        "classifier": create_classifier(
            ClassifierSettings(kafka=quick, database=schema("cls"), auth=auth)
        ),
    }
    async with contextlib.AsyncExitStack() as services:
        urls = {
            name: await services.enter_async_context(served_app(app)) for name, app in apps.items()
        }
        apps["reporting"] = create_reporting(
            ReportingSettings(
                kafka=quick,
                database=schema("rep"),
                auth=auth,
                schedule=ScheduleSettings(enabled=False),
                console=ConsoleSettings(
                    escalator_url=urls["escalator"],
                    register_url=urls["register"],
                    classifier_url=urls["classifier"],
                ),
            )
        )
        await services.enter_async_context(running(apps["reporting"]))
        yield apps


def review_form(page: httpx.Response, agenda: str, risk_id: str) -> dict[str, str]:
    """The hidden fields of one agenda item's decision form."""
    row = re.search(
        rf'<tr data-agenda="{agenda}" data-risk-id="{risk_id}">(.*?)</tr>', page.text, re.S
    )
    assert row, f"{risk_id} is not on the {agenda} list"
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', row.group(1))
    return {name: html.unescape(value) for name, value in fields}


def shown(response: httpx.Response) -> str:
    location = response.headers["location"]
    return unquote(location.split("=", 1)[1]) if "=" in location else location


async def test_the_weekly_review_decides_items_in_place_and_records_who_decided(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        review_stack(kafka_settings, database_settings, db_schema, tmp_path) as apps,
        console_client(apps["reporting"]) as sam,
        console_client(apps["reporting"]) as lea,
        console_client(apps["reporting"]) as ann,
    ):
        assert (await sam.get("/console/review")).status_code == 303
        await signed_in_person(sam, "sam@example.org", "Sam Manager", ["support_manager"])
        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])
        await signed_in_person(ann, "ann@example.org", "Ann Agent", ["agent"])
        now = datetime.now(UTC)
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            [
                (
                    f"risk-w{level}".encode(),
                    classified(f"risk-w{level}", now, level).to_json_bytes(),
                )
                for level in (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH)
            ],
        )
        page = await page_when(
            sam, "/console/review", 'data-agenda="overdue_review" data-risk-id="risk-w4"', 60
        )
        assert 'data-agenda="level_1_2" data-risk-id="risk-w2"' in page.text
        assert 'data-agenda="level_3_awaiting_review" data-risk-id="risk-w3"' in page.text
        assert "No decisions recorded this week yet." in page.text

        # Roles: an agent may not open the review; a team lead reads it but may not decide.
        refused = await ann.get("/console/review")
        assert refused.status_code == 403
        assert "Not allowed" in refused.text
        assert (await ann.get("/console/review/live")).status_code == 403
        lead_view = await lea.get("/console/review")
        assert lead_view.status_code == 200
        assert 'class="review-decision"' not in lead_view.text
        lead_post = await lea.post(
            "/console/review/risk-w3/decide",
            data={"csrf_token": csrf_of(lead_view), "agenda": "level_3_awaiting_review",
                  "action": "confirmed"},
        )  # fmt: skip
        assert lead_post.status_code == 403

        csrf = csrf_of(page)
        decide = "/console/review/{}/decide".format
        # Invalid forms: no CSRF token, no decision, a level change without its reason.
        assert (await sam.post(decide("risk-w3"), data={"action": "confirmed"})).status_code == 403
        undecided = await sam.post(
            decide("risk-w3"), data={"csrf_token": csrf, "agenda": "level_3_awaiting_review"}
        )
        assert undecided.status_code == 422
        assert "Choose a decision" in undecided.text
        no_reason = await sam.post(
            decide("risk-w2"),
            data={"csrf_token": csrf, "agenda": "level_1_2", "action": "level_changed",
                  "level": "3"},
        )  # fmt: skip
        assert no_reason.status_code == 422
        assert "Say why the level changes" in no_reason.text
        unknown = await sam.post(
            decide("risk-nobody"),
            data={"csrf_token": csrf, "agenda": "level_1_2", "action": "monitored"},
        )
        assert unknown.status_code == 404

        # Level 3: not confirmed, through the escalator's review step, as Sam.
        level_3 = await sam.post(
            decide("risk-w3"),
            data={**review_form(page, "level_3_awaiting_review", "risk-w3"),
                  "action": "not_confirmed", "note": "One customer; billing fixed it."},
        )  # fmt: skip
        assert level_3.status_code == 303
        assert "done=" in level_3.headers["location"], shown(level_3)
        escalator_db = apps["escalator"].state.context.db
        review_step = await escalator_db.fetchrow(
            "SELECT decision, acknowledged_by FROM escalation_steps"
            " WHERE risk_id = 'risk-w3' AND kind = 'review'"
        )
        assert review_step is not None
        assert dict(review_step) == {
            "decision": "not_confirmed",
            "acknowledged_by": "sam@example.org",
        }

        # Level 2: keep monitoring closes its open weekly-review step.
        monitored = await sam.post(
            decide("risk-w2"),
            data={**review_form(page, "level_1_2", "risk-w2"), "action": "monitored",
                  "note": "Watch refunds next week."},
        )  # fmt: skip
        assert "done=" in monitored.headers["location"], shown(monitored)
        weekly_step = await escalator_db.fetchrow(
            "SELECT status, acknowledged_by FROM escalation_steps"
            " WHERE risk_id = 'risk-w2' AND kind = 'weekly_review'"
        )
        assert weekly_step is not None
        assert dict(weekly_step) == {"status": "acknowledged", "acknowledged_by": "sam@example.org"}

        # A level change goes to the classifier, which has never classified this risk: refused,
        # and nothing is recorded.
        override = await sam.post(
            decide("risk-w2"),
            data={**review_form(page, "level_1_2", "risk-w2"), "action": "level_changed",
                  "level": "3", "note": "More customers than it looked."},
        )  # fmt: skip
        assert "failed=" in override.headers["location"]
        assert "The classifier refused (404)" in shown(override)

        # The overdue review through the register: a stale version is refused, the shown one saves.
        overdue = review_form(page, "overdue_review", "risk-w4")
        stale = await sam.post(
            decide("risk-w4"),
            data={**overdue, "etag": '"v999"', "action": "reviewed", "note": "Reviewed."},
        )
        assert "failed=" in stale.headers["location"]
        assert "Someone changed this register entry" in shown(stale)

        # The register's notices and acknowledgements move the entry on; the agenda shows each
        # version once the read model has it, and a decision on the version shown is saved.
        async def reviewed_on_the_version_shown() -> bool:
            current = await sam.get("/console/review")
            form = review_form(current, "overdue_review", "risk-w4")
            reviewed = await sam.post(
                decide("risk-w4"), data={**form, "action": "reviewed", "note": "Reviewed."}
            )
            return "done=" in reviewed.headers["location"]

        await eventually(reviewed_on_the_version_shown, timeout=30)
        register_db = apps["register"].state.context.db
        reviewer = await register_db.fetchval(
            "SELECT actor FROM risk_history WHERE risk_id = 'risk-w4' AND reason = 'Reviewed.'"
        )
        assert reviewer is not None

        # The record: three decisions, by Sam, on the page and in this week's summary.
        after = await sam.get("/console/review")
        decisions = re.findall(r'<tr data-decision="([a-z_]+)" data-risk-id="([^"]+)">', after.text)
        assert sorted(decisions) == [
            ("monitored", "risk-w2"),
            ("not_confirmed", "risk-w3"),
            ("reviewed", "risk-w4"),
        ]
        assert after.text.count("Sam Manager") >= 3
        reporting_db = apps["reporting"].state.context.db
        summary = await build_weekly(reporting_db, week_of(now), datetime.now(UTC))
        assert [(d.risk_id, d.decision, d.decided_by) for d in summary.review_decisions] == [
            ("risk-w3", "not_confirmed", "sam@example.org"),
            ("risk-w2", "monitored", "sam@example.org"),
            ("risk-w4", "reviewed", "sam@example.org"),
        ]
        assert summary.review_decisions[0].note == "One customer; billing fixed it."

        # The live fragment: the agenda alone, 304 while unchanged, 401 without a session.
        live = await sam.get("/console/review/live")
        assert live.status_code == 200
        assert "<html" not in live.text
        assert 'id="review-decisions"' in live.text

        async def unchanged_is_not_resent() -> bool:
            first = await sam.get("/console/review/live")
            again = await sam.get(
                "/console/review/live", headers={"If-None-Match": first.headers["etag"]}
            )
            return again.status_code == 304 and again.content == b""

        await eventually(unchanged_is_not_resent, timeout=30)
        async with console_client(apps["reporting"]) as stranger:
            assert (await stranger.get("/console/review/live")).status_code == 401
        bad_week = await sam.get("/console/review?week=2026-W99")
        assert bad_week.status_code == 422
