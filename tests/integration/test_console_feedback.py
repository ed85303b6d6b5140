"""A feedback form posted twice (a double-click, a resubmitted page) is one labelled example:
each rendered form carries its own key, the event id derives from it and the person, and intake
keeps an event once. Real broker and PostgreSQL, intake running."""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from riskrelay.intake.app import create_app as create_intake
from riskrelay.intake.feedback_store import load_feedback
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, read_topic, running
from tests.integration.test_console import (
    classified,
    console_client,
    console_stack,
    page_when,
    signed_in_person,
)

pytestmark = pytest.mark.integration

RISK = "risk-fb-twice"
PAGE = f"/console/feedback/risks/{RISK}"


def risk_form(page: httpx.Response, css_class: str) -> dict[str, str]:
    """The fields of the whole risk's form of ``css_class`` (hidden ones and their values)."""
    block = re.search(r'<div id="risk-feedback">(.*?)</div>', page.text, re.S)
    assert block, page.text
    form = re.search(rf'<form [^>]*class="{css_class}">(.*?)</form>', block.group(1), re.S)
    assert form, block.group(1)
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(1))
    return {name: html.unescape(value) for name, value in fields}


async def test_a_feedback_form_posted_twice_is_one_labelled_example(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    intake_database = database_settings.model_copy(update={"schema_name": f"{db_schema}_int"})
    intake = create_intake(
        IntakeSettings(
            kafka=kafka_settings.model_copy(update={"fetch_min_bytes": 1, "fetch_max_wait_ms": 50}),
            database=intake_database,
        )
    )
    prefix = kafka_settings.topic_prefix
    async with (
        running(intake),
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as lea,
    ):
        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])
        await produce(
            kafka_settings.bootstrap,
            f"{prefix}risk-classified",
            [(RISK.encode(), classified(RISK, datetime.now(UTC)).to_json_bytes())],
        )
        page = await page_when(lea, PAGE, 'class="feedback-not-a-risk"')
        form = {**risk_form(page, "feedback-not-a-risk"), "note": "a test invoice"}
        assert len(form["form_key"]) >= 16
        first = await lea.post("/console/feedback", data=form)
        again = await lea.post("/console/feedback", data=form)
        for answer in (first, again):
            assert answer.status_code == 303, answer.text
            assert "done=Recorded%20risk%20" in answer.headers["location"]

        # Every render draws new keys: a deliberate second feedback is a new example.
        rendered = await lea.get(PAGE)
        assert risk_form(rendered, "feedback-not-a-risk")["form_key"] != form["form_key"]
        damaged = await lea.post("/console/feedback", data={**form, "form_key": "not a key!"})
        assert damaged.status_code == 422
        assert "the form is damaged" in damaged.text
        # Another judgement of the risk, on the same partition (keyed by the risk): intake
        # reads it after both copies of the first.
        wrong = {**risk_form(rendered, "feedback-wrong-level"), "correct_level": "3"}
        assert (await lea.post("/console/feedback", data=wrong)).status_code == 303

        published = await read_topic(
            kafka_settings.bootstrap, f"{prefix}risk-feedback", expected=3, timeout=30
        )
        ids = Counter(json.loads(record.value)["id"] for record in published)
        assert sorted(ids.values()) == [1, 2], "both posts of one form carry one event id"

        async def sentinel_stored() -> bool:
            async with intake.state.context.db.acquire() as connection:
                stored = await load_feedback(connection)
            return any(example.feedback.kind.value == "wrong_level" for example in stored)

        await eventually(sentinel_stored, timeout=60)
        async with intake.state.context.db.acquire() as connection:
            stored = await load_feedback(connection)
    kinds = Counter(example.feedback.kind.value for example in stored)
    assert kinds == {"not_a_risk": 1, "wrong_level": 1}
    example = next(e.feedback for e in stored if e.feedback.kind.value == "not_a_risk")
    assert (example.risk_id, example.given_by, example.note) == (
        RISK,
        "lea@example.org",
        "a test invoice",
    )
