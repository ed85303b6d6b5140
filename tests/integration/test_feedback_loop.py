"""Feedback that teaches the detector, on the real broker and PostgreSQL: intake flags a ticket,
a team lead marks it "not a risk" in the console, the feedback reaches intake's risk_feedback
table, and `riskrelay train --with-feedback --export-only` writes it as a hard-negative example
with the ticket's redacted text (never the personal data of the original)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from riskrelay.intake.app import create_app as create_intake
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.events import TICKET_EVENT_TYPES, TicketEventKind
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, header, produce, read_topic, running
from tests.integration.test_console import (
    classified,
    console_client,
    console_stack,
    csrf_of,
    page_when,
    signed_in_person,
)

pytestmark = pytest.mark.integration

RISKRELAY = Path(sys.executable).parent / "riskrelay"
EMAIL = "jane.roe@example.com"
DESCRIPTION = (
    f"Someone logged into my account from another country and changed my password. I did not"
    f" do this. Please lock it and write to me at {EMAIL}."
)


def ticket_event(ticket_id: str, at: datetime) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"up-{ticket_id}",
        "source": "zendesk://acme",
        "type": TICKET_EVENT_TYPES[TicketEventKind.CREATED],
        "time": at.isoformat(),
        "subject": ticket_id,
        "data": {
            "ticket_id": ticket_id,
            "subject": "Account taken over, Jane Roe",
            "description": DESCRIPTION,
            "channel": "email",
            "customer": {"id": "C-77", "segment": "smb", "name": "Jane Roe"},
            "product": "Payments API",
            "priority": "high",
        },
    }


async def stored_feedback(database: DatabaseSettings) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database.url.get_secret_value())
    try:
        return await connection.fetch(
            f'SELECT * FROM "{database.schema_name}".risk_feedback ORDER BY given_at'
        )
    finally:
        await connection.close()


async def export(database: DatabaseSettings, folder: Path) -> str:
    """The real command, as an operator runs it (DSN and schema from intake's variables)."""
    process = await asyncio.create_subprocess_exec(
        str(RISKRELAY),
        "train",
        "--with-feedback",
        "--export-only",
        "--feedback-dir",
        str(folder),
        env={
            **os.environ,
            "RISKRELAY_INTAKE_DATABASE__URL": database.url.get_secret_value(),
            "RISKRELAY_INTAKE_DATABASE__SCHEMA_NAME": database.schema_name,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_a_ticket_marked_not_a_risk_becomes_a_hard_negative_example(
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
        console_client(stack.reporting) as abe,
    ):
        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])
        await signed_in_person(abe, "abe@example.org", "Abe Agent", ["agent"])
        await produce(
            kafka_settings.bootstrap,
            f"{prefix}ticket-events",
            [(b"T-fb1", json.dumps(ticket_event("T-fb1", datetime.now(UTC))).encode())],
        )
        # Intake flags it; reporting's read model has the flag; the ticket's page offers it.
        page = await page_when(
            lea, "/console/feedback/tickets/T-fb1", 'value="not_a_risk"', timeout=90
        )
        assert EMAIL not in page.text
        indicators = re.search(r'id="ticket-indicators">([^<]*)<', page.text)
        assert indicators is not None
        assert "security issue" in indicators.group(1)

        form = {"csrf_token": csrf_of(page), "kind": "not_a_risk", "ticket_id": "T-fb1",
                "note": "a customer who forgot a trip abroad", "next": "/console/feedback/tickets/T-fb1"}  # fmt: skip
        # Without the CSRF token, and as an agent (who may only report misses): refused.
        no_csrf = await lea.post("/console/feedback", data={**form, "csrf_token": "forged"})
        assert no_csrf.status_code == 403
        agent_page = await abe.get("/console/feedback/tickets/T-fb1")
        assert 'value="not_a_risk"' not in agent_page.text
        as_agent = await abe.post(
            "/console/feedback", data={**form, "csrf_token": csrf_of(agent_page)}
        )
        assert as_agent.status_code == 403
        assert "may not report not a risk" in as_agent.text
        given = await lea.post("/console/feedback", data=form)
        assert given.status_code == 303
        assert "done=Recorded%20ticket%20T-fb1%20as%20not%20a%20risk" in given.headers["location"]

        # An invalid feedback on the topic is dead-lettered by intake with the reason.
        broken = {"specversion": "1.0", "id": "fb-broken", "source": "test", "time": datetime.now(UTC).isoformat(),
                  "type": "riskrelay.risk.feedback.v1",
                  "data": {"kind": "wrong_level", "ticket_id": "T-fb1", "given_by": "x@example.org",
                           "role": "team_lead", "given_at": datetime.now(UTC).isoformat()}}  # fmt: skip
        await produce(
            kafka_settings.bootstrap,
            f"{prefix}risk-feedback",
            [(b"T-fb1", json.dumps(broken).encode())],
        )

        # The ticket's risk: the risk page's button leads to the risk's forms, and a wrong
        # level is recorded with the right one.
        risk = classified("risk-fb", datetime.now(UTC))
        risk = risk.model_copy(
            update={
                "data": risk.data.model_copy(update={"ticket_id": "T-fb1", "ticket_ids": ["T-fb1"]})
            }
        )
        await produce(
            kafka_settings.bootstrap,
            f"{prefix}risk-classified",
            [(b"risk-fb", risk.to_json_bytes())],
        )
        risk_page = await page_when(lea, "/console/risks/risk-fb", 'id="feedback-button"')
        assert 'action="/console/feedback/risks/risk-fb"' in risk_page.text
        forms = await page_when(lea, "/console/feedback/risks/risk-fb", 'data-ticket-id="T-fb1"')
        wrong = await lea.post(
            "/console/feedback",
            data={
                "csrf_token": csrf_of(forms),
                "kind": "wrong_level",
                "risk_id": "risk-fb",
                "correct_level": "3",
                "next": "/console/feedback/risks/risk-fb",
            },
        )
        assert wrong.status_code == 303
        assert "should%20be%20Medium" in wrong.headers["location"]

        rows: list[asyncpg.Record] = []

        async def stored() -> bool:
            nonlocal rows
            rows = await stored_feedback(intake_database)
            return len(rows) >= 2

        await eventually(stored, timeout=60)
        dead = await read_topic(
            kafka_settings.bootstrap, f"{prefix}risk-feedback.dlq", expected=2, timeout=30
        )
        by_intake = [r for r in dead if "intake" in (header(r, "dlq_consumer_group") or "")]
        assert len(by_intake) == 1
        assert "correct_level is required" in (header(by_intake[0], "dlq_error") or "")

    row, level = rows  # the broken one was not stored
    assert (level["kind"], level["risk_id"], level["ticket_id"]) == ("wrong_level", "risk-fb", None)
    assert (level["level"], level["correct_level"]) == (5, 3)
    assert (row["kind"], row["ticket_id"], row["given_by"], row["role"]) == (
        "not_a_risk",
        "T-fb1",
        "lea@example.org",
        "team_lead",
    )
    assert "security_issue" in row["indicators"]
    texts = json.loads(row["texts"])
    assert {text["source"] for text in texts} >= {"subject", "summary"}
    stored_text = json.dumps(texts)
    assert EMAIL not in stored_text
    assert "Jane Roe" not in stored_text

    folder = tmp_path / "feedback"
    printed = await export(intake_database, folder)
    assert "2 feedback ->" in printed  # the wrong level teaches no text
    security = yaml.safe_load((folder / "feedback-security_issue.yaml").read_text())
    assert security["indicator"] == "security_issue"
    assert security["positives"] == []
    negatives = [entry["text"] for entry in security["hard_negatives"]]
    summary = next(text["text"] for text in texts if text["source"] == "summary")
    assert summary in negatives
    assert "Someone logged into my account" in summary
    assert "write to me at [EMAIL]" in summary
    assert not any(EMAIL in text or "Jane Roe" in text for text in negatives)


async def test_feedback_pages_and_the_form_are_closed_without_a_session_and_never_fail(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as visitor,
        console_client(stack.reporting) as lea,
    ):
        for path in ("/console/feedback", "/console/feedback/risks/r-x",
                     "/console/feedback/tickets/t-x"):  # fmt: skip
            answer = await visitor.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/console/login"), path
        assert (
            await visitor.post("/console/feedback", data={"kind": "missed_risk"})
        ).status_code == 303

        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])
        page = await lea.get("/console/feedback/tickets/t-x")
        assert page.status_code == 200
        assert "No event of this ticket reached the console" in page.text
        csrf = csrf_of(page)
        text = st.text(max_size=40)
        samples: list[dict[str, str]] = []

        @settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
        @given(
            kind=st.one_of(st.sampled_from(["not_a_risk", "wrong_level", "missed_risk"]), text),
            ticket_id=text,
            risk_id=text,
            correct_level=st.one_of(st.sampled_from(["", "1", "3", "5", "0", "9"]), text),
            indicator=st.one_of(st.sampled_from(["", "data_concern", "problem"]), text),
            note=text,
        )
        def fuzz(**fields: str) -> None:
            samples.append(fields)

        fuzz()
        published = 0
        for fields in samples:
            answer = await lea.post("/console/feedback", data={"csrf_token": csrf, **fields})
            if answer.status_code == 303:
                published += 1
                assert "done=" in answer.headers["location"], fields
                continue
            assert 400 <= answer.status_code < 500, (fields, answer.status_code)
            assert '<p class="error" role="alert">' in answer.text, fields
        assert published < len(samples)  # most fuzzed forms are refused, with a message
