"""The console on the real broker and PostgreSQL: a person signs in, sees a due escalation step in
their queue, acknowledges it through the console, and the escalator records that person."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from riskrelay.devstack import free_port
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
    ModelExplanation,
    NearestExample,
    RiskCategory,
    RiskClassified,
    RiskClassifiedEvent,
    RiskLevel,
    RiskRegisteredEvent,
    RiskRegisterEntry,
    RiskStatus,
    RuleContribution,
    TicketEventKind,
    TicketFlagged,
    TicketFlaggedEvent,
)
from riskrelay.shared.settings import AuthSettings, DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, produce, running

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-token-12345"
# Deadlines of minutes: the step is due, and not yet overdue, for the whole test.
POLICY = """
version: "test-console"
pre_breach_warning_fraction: 0.5
levels:
  5:
    timeframe: {rule: elapsed, within: 30m}
    steps: [{role: team_lead}]
    reminders: {every: 10m, max_count: 1}
    breach_notifies: support_director
  4:
    timeframe: {rule: elapsed, within: 30m}
    steps: [{role: team_lead}, {role: support_manager}]
  3:
    timeframe: {rule: elapsed, within: 30m}
    steps: [{role: team_lead}, {role: support_manager, kind: review}]
    on_review_confirmed: {role: risk_management, ack_due: 30m}
    weekly_review: true
  2:
    timeframe: {rule: elapsed, within: 48h}
    steps: [{role: agent}]
    weekly_review: true
  1:
    timeframe: {rule: weekly_review}
    weekly_review: true
"""


def classified(
    risk_id: str, flagged_at: datetime, level: RiskLevel = RiskLevel.CRITICAL
) -> RiskClassifiedEvent:
    data = RiskClassified(
        risk_id=risk_id,
        level=level,
        category=RiskCategory.DATA_SECURITY_PRIVACY,
        ticket_id=f"T-{risk_id}",
        ticket_ids=[f"T-{risk_id}"],
        ticket_count=1,
        distinct_customers=1,
        indicators=[Indicator.DATA_CONCERN],
        title="Customers see other customers' invoices",
        redacted_summary="Customer reports seeing another customer's invoice.",
        first_reported_at=flagged_at,
        flagged_at=flagged_at,
        policy_version="test",
        rules_fired=[],
        evidence=[
            Detection(
                indicator=Indicator.DATA_CONCERN,
                rule_id="data.other_customer",
                evidence="another customer's invoice",
                confidence=0.9,
            )
        ],
    )
    return RiskClassifiedEvent(
        id=derive_event_id(f"classified:{risk_id}", f"level-{int(level)}"),
        source="riskrelay/classifier",
        time=flagged_at,
        subject=risk_id,
        correlationid=risk_id,
        data=data,
    )


def auth_files(folder: Path) -> AuthSettings:
    tokens = folder / "tokens.json"
    tokens.write_text(json.dumps({"admin": ADMIN_TOKEN}))
    keys = folder / "identity-keys.json"
    keys.write_text(json.dumps({"signing_key_id": "k1", "keys": {"k1": secrets.token_urlsafe(32)}}))
    return AuthSettings(tokens_file=tokens, identity_keys_file=keys)


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app (already running) on a local port, as another service would call it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return bool(server.started)

    await eventually(started, timeout=10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await client.get("/console/login")
    assert form.status_code == 200
    return await client.post(
        "/console/login",
        data={"csrf_token": csrf_of(form), "email": email, "password": password},
    )


def console_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting")


@dataclass
class Stack:
    escalator: FastAPI
    reporting: FastAPI
    register: FastAPI | None


@contextlib.asynccontextmanager
async def console_stack(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    folder: Path,
    with_register: bool = False,
) -> AsyncIterator[Stack]:
    """The escalator (and the register) served on ports, and reporting, its console calling
    them."""
    auth = auth_files(folder)
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    escalator = create_escalator(
        EscalatorSettings(
            kafka=kafka_settings,
            database=database_settings.model_copy(update={"schema_name": f"{db_schema}_esc"}),
            policy_path=policy,
            auth=auth,
        )
    )
    register = (
        create_register(
            RegisterSettings(
                kafka=kafka_settings.model_copy(
                    update={"fetch_min_bytes": 1, "fetch_max_wait_ms": 50}
                ),
                database=database_settings.model_copy(update={"schema_name": f"{db_schema}_reg"}),
                auth=auth,
            )
        )
        if with_register
        else None
    )
    async with contextlib.AsyncExitStack() as services:
        escalator_url = await services.enter_async_context(served_app(escalator))
        register_url = (
            await services.enter_async_context(served_app(register))
            if register is not None
            else "http://127.0.0.1:9"
        )
        reporting = create_reporting(
            ReportingSettings(
                kafka=kafka_settings.model_copy(
                    update={"fetch_min_bytes": 1, "fetch_max_wait_ms": 50}
                ),
                database=database_settings.model_copy(update={"schema_name": f"{db_schema}_rep"}),
                auth=auth,
                schedule=ScheduleSettings(enabled=False),
                console=ConsoleSettings(escalator_url=escalator_url, register_url=register_url),
            )
        )
        await services.enter_async_context(running(reporting))
        yield Stack(escalator, reporting, register)


@contextlib.asynccontextmanager
async def served_app(app: FastAPI) -> AsyncIterator[str]:
    """The app running (its lifespan) and served on a local port."""
    async with running(app), served(app) as url:
        yield url


async def page_when(
    client: httpx.AsyncClient, path: str, shows: str, timeout: float = 30
) -> httpx.Response:
    """The page at ``path`` once it shows ``shows`` (the read model catches up)."""
    page: httpx.Response | None = None

    async def showing() -> bool:
        nonlocal page
        page = await client.get(path)
        return shows in page.text

    await eventually(showing, timeout=timeout)
    assert page is not None
    return page


async def signed_in_person(
    client: httpx.AsyncClient, email: str, name: str, roles: list[str]
) -> None:
    """Create the person (as the administrator) and sign ``client`` in as them."""
    assert (await add_person(client, email, name, roles)).status_code == 201
    assert (await sign_in(client, email, "correct horse battery")).status_code == 303


async def add_person(
    client: httpx.AsyncClient, email: str, name: str, roles: list[str]
) -> httpx.Response:
    return await client.put(
        f"/v1/console/users/{email}",
        json={"name": name, "roles": roles, "password": "correct horse battery"},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )


async def test_a_person_signs_in_sees_the_due_step_and_acknowledges_it_as_themself(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as lea,
        console_client(stack.reporting) as ana,
    ):
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for email, name, roles in [
            ("Lea@Example.org", "Lea Lead", ["team_lead"]),
            ("ana@example.org", "Ana Analyst", ["analyst"]),
        ]:
            created = await lea.put(
                f"/v1/console/users/{email}",
                json={"name": name, "roles": roles, "password": "correct horse battery"},
                headers=admin,
            )
            assert created.status_code == 201, created.text
            assert "password" not in created.text
        refused_user = await lea.put(
            "/v1/console/users/x@example.org",
            json={"name": "X", "roles": ["admin"], "password": "correct horse battery"},
        )
        assert refused_user.status_code == 401

        # No session: every page sends the person to sign in, and comes back afterwards.
        bounced = await lea.get("/console/queue")
        assert bounced.status_code == 303
        assert bounced.headers["location"] == "/console/login?next=%2Fconsole%2Fqueue"

        wrong = await sign_in(lea, "lea@example.org", "not the password")
        assert wrong.status_code == 401
        assert "Wrong e-mail or password." in wrong.text
        assert "riskrelay_console" not in wrong.headers.get("set-cookie", "")
        forged = await lea.post(
            "/console/login",
            data={"email": "lea@example.org", "password": "correct horse battery"},
        )
        assert forged.status_code == 403
        assert "security token" in forged.text

        signed_in = await sign_in(lea, "lea@example.org", "correct horse battery")
        assert signed_in.status_code == 303, signed_in.text
        assert signed_in.headers["location"] == "/console/queue"
        cookie = signed_in.headers["set-cookie"].lower()
        assert "riskrelay_console=" in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert (await sign_in(ana, "ana@example.org", "correct horse battery")).status_code == 303

        flagged = datetime.now(UTC)
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            [(b"risk-c1", classified("risk-c1", flagged).to_json_bytes())],
        )
        queue = await page_when(lea, "/console/queue", "data-escalation-id=", timeout=60)
        assert queue.status_code == 200
        assert "Lea Lead" in queue.text
        assert "Customers see other customers&#39; invoices" in queue.text
        assert re.search(r"(2\d|30) min left", queue.text), queue.text
        escalation_id = re.search(r'data-escalation-id="([^"]+)"', queue.text)
        assert escalation_id is not None
        step_id = escalation_id.group(1)

        analyst_queue = await ana.get("/console/queue")
        assert analyst_queue.status_code == 200
        assert "Nothing is waiting for your roles." in analyst_queue.text

        ack_url = f"/console/escalations/{step_id}/ack"
        assert (await lea.post(ack_url, data={})).status_code == 403
        acked = await lea.post(ack_url, data={"csrf_token": csrf_of(queue)})
        assert acked.status_code == 303
        assert acked.headers["location"].startswith("/console/queue?done=")

        escalator_db = stack.escalator.state.context.db
        recorded = await escalator_db.fetchrow(
            "SELECT acknowledged_by, acknowledged_role FROM escalation_steps"
            " WHERE escalation_id = $1",
            step_id,
        )
        assert recorded is not None
        assert recorded["acknowledged_by"] == "lea@example.org"
        assert recorded["acknowledged_role"] == "team_lead"

        async def acknowledgement_in_read_model() -> bool:
            value = await stack.reporting.state.context.db.fetchval(
                "SELECT acknowledged_by FROM escalation_acks WHERE escalation_id = $1",
                step_id,
            )
            return bool(value == "lea@example.org")

        await eventually(acknowledgement_in_read_model, timeout=30)
        after = await lea.get(acked.headers["location"])
        assert "Acknowledged step" in after.text
        assert f'data-escalation-id="{step_id}"' not in after.text

        signed_out = await lea.post("/console/logout", data={"csrf_token": csrf_of(after)})
        assert signed_out.status_code == 303
        assert (await lea.get("/console/queue")).status_code == 303


async def test_a_support_manager_takes_the_level_3_decision_in_the_queue(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as sam,
        console_client(stack.reporting) as lea,
    ):
        await signed_in_person(sam, "sam@example.org", "Sam Manager", ["support_manager"])
        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])

        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            [
                (
                    b"risk-m3",
                    classified("risk-m3", datetime.now(UTC), RiskLevel.MEDIUM).to_json_bytes(),
                )
            ],
        )
        queue = await page_when(sam, "/console/queue", "data-escalation-id=", timeout=60)
        found = re.search(r'data-escalation-id="([^"]+)"', queue.text)
        assert found is not None
        review_id = found.group(1)
        assert "Level 3 decision" in queue.text
        assert f'action="/console/escalations/{review_id}/decision"' in queue.text
        assert f'action="/console/escalations/{review_id}/ack"' not in queue.text
        # The team lead's step of the same risk is an ordinary acknowledgement.
        lead_queue = await lea.get("/console/queue")
        assert "Acknowledge" in lead_queue.text
        assert "Level 3 decision" not in lead_queue.text

        decision_url = f"/console/escalations/{review_id}/decision"
        csrf = csrf_of(queue)
        assert (await sam.post(decision_url, data={"decision": "confirmed"})).status_code == 403
        undecided = await sam.post(decision_url, data={"csrf_token": csrf, "note": "?"})
        assert undecided.status_code == 422
        assert "confirmed or not confirmed" in undecided.text
        # The team lead may not take the Support Manager's decision: the escalator refuses,
        # and the console says so with a 403 page.
        refused = await lea.post(
            decision_url, data={"csrf_token": csrf_of(lead_queue), "decision": "confirmed"}
        )
        assert refused.status_code == 403
        assert "Not allowed" in refused.text
        assert "may not acknowledge the support_manager step" in refused.text

        decided = await sam.post(
            decision_url,
            data={
                "csrf_token": csrf,
                "decision": "confirmed",
                "note": "Two invoices crossed accounts; confirmed with billing.",
            },
        )
        assert decided.status_code == 303
        assert decided.headers["location"].startswith("/console/queue?done=")
        shown = await sam.get(decided.headers["location"])
        assert "Recorded your Level 3 decision" in shown.text
        assert "confirmed (Risk Management is told)" in shown.text

        escalator_db = stack.escalator.state.context.db
        step = await escalator_db.fetchrow(
            "SELECT acknowledged_by, acknowledged_role, decision, closed_at FROM escalation_steps"
            " WHERE escalation_id = $1",
            review_id,
        )
        assert step is not None
        assert step["acknowledged_by"] == "sam@example.org"
        assert step["acknowledged_role"] == "support_manager"
        assert step["decision"] == "confirmed"
        assert step["closed_at"] is not None
        recorded = await escalator_db.fetchrow(
            "SELECT acknowledged_by, note FROM acknowledgements"
            " WHERE escalation_id = $1 AND outcome = 'accepted'",
            review_id,
        )
        assert recorded is not None
        assert recorded["acknowledged_by"] == "sam@example.org"
        assert recorded["note"] == "Two invoices crossed accounts; confirmed with billing."
        # The confirm branch: Risk Management is now a step of the risk's plan.
        added = await escalator_db.fetchval(
            "SELECT count(*) FROM escalation_steps WHERE risk_id = 'risk-m3'"
            " AND role = 'risk_management' AND added_because = 'review_confirmed'"
        )
        assert added == 1

        async def decision_in_read_model() -> bool:
            value = await stack.reporting.state.context.db.fetchval(
                "SELECT decision FROM escalation_acks WHERE escalation_id = $1", review_id
            )
            return bool(value == "confirmed")

        await eventually(decision_in_read_model, timeout=30)
        assert f'data-escalation-id="{review_id}"' not in (await sam.get("/console/queue")).text


def flagged(ticket_id: str, customer_id: str, at: datetime) -> TicketFlaggedEvent:
    data = TicketFlagged(
        ticket_id=ticket_id,
        upstream_event_id=f"up-{ticket_id}",
        upstream_source="zendesk://acme",
        event_kind=TicketEventKind.CREATED,
        occurred_at=at,
        channel="email",
        priority="high",
        product="Billing",
        customer_id=customer_id,
        customer_segment="smb",
        redacted_subject="Invoice of another customer",
        redacted_summary="I can see the invoice of [NAME], not mine.",
        indicators=[
            Detection(
                indicator=Indicator.DATA_CONCERN,
                rule_id="model.data_concern",
                evidence="I can see the invoice of [NAME], not mine.",
                confidence=0.93,
                explanation=ModelExplanation(
                    score=0.93,
                    threshold=0.61,
                    model_version="sha256-models-1",
                    encoder="sha256-encoder-1",
                    nearest_examples=[
                        NearestExample(text="I can see someone else's account", similarity=0.82)
                    ],
                ),
            ),
            Detection(
                indicator=Indicator.COMPLIANCE_QUESTION,
                rule_id="compliance.gdpr",
                evidence="GDPR",
                confidence=0.8,
            ),
        ],
        rule_pack_version="test",
    )
    return TicketFlaggedEvent(
        id=derive_event_id(f"up-{ticket_id}", "flag"),
        source="riskrelay/intake",
        time=at,
        subject=ticket_id,
        data=data,
    )


def registered(risk_id: str, at: datetime) -> RiskRegisteredEvent:
    entry = RiskRegisterEntry(
        risk_id=risk_id,
        version=2,
        title="Customers see other customers' invoices",
        redacted_summary="Customer reports seeing another customer's invoice.",
        level=RiskLevel.CRITICAL,
        category=RiskCategory.DATA_SECURITY_PRIVACY,
        status=RiskStatus.UNDER_JOINT_ASSESSMENT,
        owner="rita@example.org",
        first_reported_at=at,
        last_reported_at=at,
        ticket_count=2,
        distinct_customers=2,
        policy_version="test",
        updated_at=at,
    )
    return RiskRegisteredEvent(
        id=derive_event_id(f"registered:{risk_id}", "2"),
        source="riskrelay/register",
        time=at,
        subject=risk_id,
        correlationid=risk_id,
        data=entry,
    )


async def test_the_risk_page_explains_the_risk_and_its_escalation(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(kafka_settings, database_settings, db_schema, tmp_path) as stack,
        console_client(stack.reporting) as lea,
        console_client(stack.reporting) as ana,
    ):
        assert (await lea.get("/console/risks/risk-p1")).status_code == 303
        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])
        await signed_in_person(ana, "ana@example.org", "Ana Analyst", ["analyst"])
        unknown = await lea.get("/console/risks/risk-nobody")
        assert unknown.status_code == 404
        assert "No risk risk-nobody" in unknown.text

        at = datetime.now(UTC)
        prefix = kafka_settings.topic_prefix
        await produce(
            kafka_settings.bootstrap,
            f"{prefix}ticket-flagged",
            [
                (b"T-p1", flagged("T-p1", "C-1", at).to_json_bytes()),
                (b"T-p2", flagged("T-p2", "C-2", at).to_json_bytes()),
            ],
        )
        risk = classified("risk-p1", at)
        risk = risk.model_copy(
            update={
                "data": risk.data.model_copy(
                    update={
                        "ticket_ids": ["T-p1", "T-p2"],
                        "ticket_count": 2,
                        "distinct_customers": 2,
                        "rules_fired": [
                            RuleContribution(
                                rule_id="data_exposure.critical",
                                description="Another customer's data was seen",
                                level=RiskLevel.CRITICAL,
                                effect="sets_level",
                                decisive=True,
                            )
                        ],
                    }
                )
            }
        )
        await produce(
            kafka_settings.bootstrap,
            f"{prefix}risk-classified",
            [(b"risk-p1", risk.to_json_bytes())],
        )
        queue = await page_when(lea, "/console/queue", "data-escalation-id=", timeout=60)
        assert 'href="/console/risks/risk-p1"' in queue.text
        step_id = re.search(r'data-escalation-id="([^"]+)"', queue.text)
        assert step_id is not None
        acked = await lea.post(
            f"/console/escalations/{step_id.group(1)}/ack", data={"csrf_token": csrf_of(queue)}
        )
        assert acked.status_code == 303
        await produce(
            kafka_settings.bootstrap,
            f"{prefix}risk-registered",
            [(b"risk-p1", registered("risk-p1", at).to_json_bytes())],
        )
        page: httpx.Response | None = None

        async def complete() -> bool:
            nonlocal page
            page = await lea.get("/console/risks/risk-p1")
            return "by lea@example.org" in page.text and "under joint assessment" in page.text

        await eventually(complete, timeout=30)
        assert page is not None
        assert page.status_code == 200
        text = page.text
        assert "<h1>Customers see other customers&#39; invoices</h1>" in text
        assert "Critical (Level 5)" in text
        assert re.search(r'id="risk-tickets">2<', text)
        assert re.search(r'id="risk-customers">2<', text)
        assert "data_exposure.critical" in text
        assert "decisive" in text
        # The model's evidence: the redacted sentence, score against threshold, nearest example.
        assert "I can see the invoice of [NAME], not mine." in text
        assert "model score 0.93 ≥ threshold 0.61" in text
        assert "I can see someone else&#39;s account" in text
        assert "compliance.gdpr" in text
        # One row per distinct detection, counting both tickets.
        assert text.count("<code>model.data_concern</code>") == 1
        # Timeline: the notice, then Lea's acknowledgement.
        assert text.index("timeline-initial") < text.index("timeline-acknowledged")
        assert "<code>T-p1</code>" in text
        assert "<code>T-p2</code>" in text
        assert "Invoice of another customer" in text
        assert "rita@example.org" in text
        # Only the register's readers are sent on to the register page.
        assert "Open the register entry" not in text
        analyst_view = await ana.get("/console/risks/risk-p1")
        assert "Open the register entry" in analyst_view.text


async def test_register_pages_edit_move_and_refuse_a_stale_edit(
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
        console_client(stack.reporting) as mo,
        console_client(stack.reporting) as lea,
    ):
        await signed_in_person(rita, "rita@example.org", "Rita Risk", ["risk_management"])
        await signed_in_person(mo, "mo@example.org", "Mo Manager", ["support_manager"])
        await signed_in_person(lea, "lea@example.org", "Lea Lead", ["team_lead"])
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            [
                (
                    b"risk-r4",
                    classified("risk-r4", datetime.now(UTC), RiskLevel.HIGH).to_json_bytes(),
                )
            ],
        )
        listing = await page_when(rita, "/console/register", 'data-risk-id="risk-r4"')
        assert "Customers see other customers&#39; invoices" in listing.text
        assert 'data-risk-id="risk-r4"' in (await rita.get("/console/register?level=4")).text
        other_level = await rita.get("/console/register?level=3&q=invoices")
        assert 'data-risk-id="risk-r4"' not in other_level.text
        assert "No register entries match." in other_level.text
        # The register's own role check: a team lead may not read it.
        refused = await lea.get("/console/register")
        assert refused.status_code == 403
        assert "The register answered 403" in refused.text

        exported = await rita.get("/console/register/export.csv?level=4")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("text/csv")
        assert exported.text.splitlines()[0].startswith("risk_id,version,title")
        assert any(line.startswith("risk-r4,") for line in exported.text.splitlines())

        # Rita and Mo open the same version; Rita saves first.
        rita_form = await rita.get("/console/register/risk-r4")
        mo_form = await mo.get("/console/register/risk-r4")
        assert rita_form.status_code == 200
        version = re.search(r'id="entry-version">(\d+)<', rita_form.text)
        assert version is not None
        first_version = int(version.group(1))

        def edit_of(page: httpx.Response, **changes: str) -> dict[str, str]:
            fields = dict(
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
            )
            form = {name: html.unescape(value) for name, value in fields.items()}
            form.update(
                {
                    name[len("was_") :]: value
                    for name, value in fields.items()
                    if name.startswith("was_")
                }
            )
            form.update(changes)
            return form

        saved = await rita.post(
            "/console/register/risk-r4/edit",
            data=edit_of(
                rita_form, owner="rita@example.org", likelihood="4", impact="3", reason="triage"
            ),
        )
        assert saved.status_code == 303, saved.text
        after_save = await rita.get(saved.headers["location"])
        assert f"Saved: the entry is now version {first_version + 1}." in after_save.text
        assert "Rita Risk &lt;rita@example.org&gt;" in after_save.text
        assert re.search(r'<td class="after">12</td>', after_save.text)

        stale = await mo.post(
            "/console/register/risk-r4/edit",
            data=edit_of(mo_form, owner="mo@example.org"),
        )
        assert stale.status_code == 412
        assert "Someone else changed this entry after you opened it" in stale.text
        assert "owner: mo@example.org" in stale.text
        assert f'id="entry-version">{first_version + 1}<' in stale.text
        register_db = stack.register.state.context.db if stack.register else None
        assert register_db is not None
        owner = await register_db.fetchval("SELECT owner FROM risks WHERE risk_id = 'risk-r4'")
        assert owner == "rita@example.org"

        unchanged = await rita.post("/console/register/risk-r4/edit", data=edit_of(after_save))
        assert unchanged.status_code == 422
        assert "Nothing was changed." in unchanged.text

        targets = re.findall(r'<option value="([a-z_]+)">', after_save.text.split('id="target"')[1])
        assert "closed" in targets
        # Closing without the resolution verification: the register's rule, explained.
        unverified = await rita.post(
            "/console/register/risk-r4/transition",
            data={**edit_of(after_save), "target": "closed"},
        )
        assert unverified.status_code == 422
        assert "without a resolution verification" in unverified.text
        target = next(t for t in targets if t != "closed")
        moved = await rita.post(
            "/console/register/risk-r4/transition",
            data={**edit_of(after_save), "target": target, "reason": "assessing"},
        )
        assert moved.status_code == 303, moved.text
        after_move = await rita.get(moved.headers["location"])
        assert f'id="entry-status">{target.replace("_", " ")}<' in after_move.text
        assert "history-transition" in after_move.text
