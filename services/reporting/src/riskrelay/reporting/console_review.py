"""The console's Weekly Risk Review page, ``/console/review``: the agenda the Weekly Risk Summary
computes, each item decided in place, and the record of what the meeting decided.

The agenda is the summary's own (:func:`riskrelay.reporting.store.review_agenda`): level 1-2
risks active in the period, level 3 risks with no review decision yet, and open register entries
whose review is overdue. By default the period runs from the start of the previous ISO week (the
one the last summary covered) to the end of this one; ``?week=YYYY-Www`` picks one week.

Every decision is taken through the service that owns it, with the person's own token:

* level 1-2, "keep monitoring": the escalator acknowledges the risk's open weekly-review step;
* level 3, "confirmed" / "not confirmed": the escalator takes the Support Manager's decision on
  the risk's open review step;
* any level 1-3 item, "change the level": the classifier's override (the note is its reason);
* overdue review, "review done" or "move the lifecycle": the register, with the ``If-Match`` of
  the version the agenda showed (a stale one is refused and explained).

Only what the owning service accepted is recorded (``review_decisions``): who, when, the
decision and the note. The page lists this week's decisions, and the Weekly Risk Summary of the
week shows them.

Anyone of the protocol's review roles may read the page; deciding is for the roles that run the
review (Support Manager, Support Director, Risk Management, administrators), and the owning
service applies its own finer rules on top.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Request, status
from fastapi.responses import Response

from riskrelay.reporting import review_store
from riskrelay.reporting.console import (
    ESCALATOR_CLIENT,
    REGISTER_CLIENT,
    AckOutcome,
    ConsolePages,
    Submission,
    acknowledge_through_escalator,
    back_to,
    just_acknowledged,
    login_redirect,
)
from riskrelay.reporting.console_live import fragment, signed_out
from riskrelay.reporting.console_register import is_entity_tag, refusal_text
from riskrelay.reporting.model import ReviewDecisionItem, ReviewDecisionRow, RiskEntry
from riskrelay.reporting.periods import Period, PeriodError, parse_week, previous_week, week_of
from riskrelay.reporting.reports import (
    AGENDA_LABELS,
    REVIEW_DECISION_LABELS,
    review_decision_items,
    risk_listing,
)
from riskrelay.reporting.settings import ConsoleSettings
from riskrelay.reporting.store import review_agenda
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import Principal
from riskrelay.shared.events import ReviewDecision, RiskLevel, RiskStatus, Role
from riskrelay.shared.logging import get_logger

log = get_logger(__name__)

CLASSIFIER_CLIENT = "console_classifier_client"
REVIEW_READERS = frozenset(
    {
        Role.TEAM_LEAD,
        Role.SUPPORT_MANAGER,
        Role.SUPPORT_DIRECTOR,
        Role.RISK_MANAGEMENT,
        Role.ANALYST,
        Role.ADMIN,
    }
)
REVIEW_DECIDERS = frozenset(
    {Role.SUPPORT_MANAGER, Role.SUPPORT_DIRECTOR, Role.RISK_MANAGEMENT, Role.ADMIN}
)
ACTIONS = {
    "level_1_2": ("monitored", "level_changed"),
    "level_3_awaiting_review": ("confirmed", "not_confirmed", "level_changed"),
    "overdue_review": ("reviewed", "moved"),
}
ESCALATOR_STEPS_READ = 100
NOTE_LIMIT = 4_000
REVIEW_PATH = "/console/review"


# ---------------------------------------------------------------------------------------------
# Forms and the agenda (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionForm:
    """A decision as the review page posts it, checked."""

    agenda: str
    action: str
    note: str | None
    level: int | None = None
    target: RiskStatus | None = None
    resolution_verification: str | None = None
    etag: str | None = None


def parse_decision(form: Mapping[str, str]) -> DecisionForm | list[str]:
    """The decision the form asks for, or what is wrong with it (each a sentence)."""
    agenda = form.get("agenda", "")
    action = form.get("action", "")
    note = form.get("note", "").strip()[:NOTE_LIMIT] or None
    if agenda not in ACTIONS:
        return ["The form does not say which agenda list the item is on; reload the page."]
    if action not in ACTIONS[agenda]:
        allowed = ", ".join(REVIEW_DECISION_LABELS[a].lower() for a in ACTIONS[agenda])
        return [f"Choose a decision for this item: {allowed}."]
    errors: list[str] = []
    level = target = verification = etag = None
    if action == "level_changed":
        try:
            level = int(form.get("level", ""))
        except ValueError:
            level = None
        if level not in {int(value) for value in RiskLevel}:
            errors.append("Choose the new level (1-5).")
        if note is None:
            errors.append("Say why the level changes in the note: the classifier records it.")
    if action == "moved":
        try:
            target = RiskStatus(form.get("target", ""))
        except ValueError:
            errors.append("Choose the status to move the risk to.")
        verification = form.get("resolution_verification", "").strip()[:NOTE_LIMIT] or None
    if action in {"reviewed", "moved"}:
        etag = form.get("etag", "").strip() or None
        if etag is None:
            errors.append("The form lacks the register version it was drawn from; reload it.")
        elif not is_entity_tag(etag):
            errors.append("The form's register version is damaged; reload it.")
    if errors:
        return errors
    return DecisionForm(agenda, action, note, level, target, verification, etag)


def review_period(now: datetime, week: str | None) -> Period:
    """The week asked for, else the previous ISO week and this one (what is left to review
    since the last summary)."""
    if week:
        return parse_week(week)
    current = week_of(now)
    previous = previous_week(current)
    return Period(f"{previous.label} and {current.label}", previous.start, current.end)


def meeting_start(now: datetime) -> datetime:
    """Decisions since the start of this ISO week are this review's (and this week's summary's)."""
    return week_of(now).start


@dataclass(frozen=True)
class AgendaRow:
    entry: RiskEntry
    etag: str | None
    decisions: list[ReviewDecisionItem]


@dataclass(frozen=True)
class AgendaSection:
    key: str
    label: str
    total: int
    rows: list[AgendaRow]
    actions: tuple[str, ...]


def agenda_sections(
    lists: Mapping[str, list[RiskEntry]],
    totals: Mapping[str, int],
    versions: Mapping[str, int],
    decisions: list[ReviewDecisionItem],
) -> list[AgendaSection]:
    """The agenda's three lists, each item with its register ETag (for If-Match) and the
    decisions already taken on it at this review."""
    by_risk: dict[str, list[ReviewDecisionItem]] = {}
    for decision in decisions:
        by_risk.setdefault(decision.risk_id, []).append(decision)
    sections = []
    for key, actions in ACTIONS.items():
        rows = [
            AgendaRow(
                entry=entry,
                etag=f'"v{versions[entry.risk_id]}"' if entry.risk_id in versions else None,
                decisions=by_risk.get(entry.risk_id, []),
            )
            for entry in lists.get(key, [])
        ]
        sections.append(
            AgendaSection(key, AGENDA_LABELS[key], totals.get(key, len(rows)), rows, actions)
        )
    return sections


# ---------------------------------------------------------------------------------------------
# Acting through the owning services
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Taken:
    """What the owning service did: ``ok`` with the detail to record, or why it refused."""

    ok: bool
    message: str
    detail: str | None = None
    status_code: int = status.HTTP_200_OK


async def open_steps_of(
    context: ServiceContext, token: str, risk_id: str, kind: str
) -> list[str] | Taken:
    """The escalator's open steps of ``kind`` of the risk's current plan."""
    client: httpx.AsyncClient = context.state[ESCALATOR_CLIENT]
    try:
        response = await client.get(
            "/v1/escalations",
            params={"state": "open", "risk_id": risk_id, "limit": str(ESCALATOR_STEPS_READ)},
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as error:
        log.warning("escalator unreachable", error=type(error).__name__)
        return Taken(False, "The escalator did not answer; nothing was decided.")
    if response.status_code != 200:
        return Taken(
            False,
            f"The escalator refused ({response.status_code}): {refusal_text(response)}",
            status_code=response.status_code,
        )
    return [
        item["escalation_id"]
        for item in response.json().get("items", [])
        if item.get("kind") == kind and not item.get("plan_superseded")
    ]


async def acknowledge_steps(
    context: ServiceContext,
    submitted: Submission,
    risk_id: str,
    kind: str,
    decision: ReviewDecision | None,
    note: str | None,
    now: datetime,
) -> Taken:
    steps = await open_steps_of(context, submitted.token, risk_id, kind)
    if isinstance(steps, Taken):
        return steps
    if not steps:
        if kind == "review":
            return Taken(
                False,
                f"The escalator has no open Level 3 review step for {risk_id}: the decision may"
                " have been taken already. Nothing was recorded.",
                status_code=status.HTTP_409_CONFLICT,
            )
        return Taken(True, "", detail="no open weekly-review step to close")
    closed = []
    for escalation_id in steps:
        outcome: AckOutcome = await acknowledge_through_escalator(
            context, submitted.token, escalation_id, note, decision
        )
        if not outcome.ok:
            return Taken(
                False, outcome.message, status_code=outcome.refused_with or status.HTTP_200_OK
            )
        just_acknowledged(context, escalation_id, now)
        closed.append(escalation_id)
    return Taken(True, "", detail="step " + ", ".join(closed))


async def override_level(
    context: ServiceContext, submitted: Submission, risk_id: str, level: int, reason: str
) -> Taken:
    client: httpx.AsyncClient = context.state[CLASSIFIER_CLIENT]
    try:
        response = await client.post(
            f"/v1/risks/{quote(risk_id, safe='')}/level",
            json={"level": level, "reason": reason},
            headers={
                "Authorization": f"Bearer {submitted.token}",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        )
    except httpx.HTTPError as error:
        log.warning("classifier unreachable", error=type(error).__name__)
        return Taken(False, "The classifier did not answer; the level was not changed.")
    if response.status_code != 202:
        return Taken(
            False,
            f"The classifier refused ({response.status_code}): {refusal_text(response)}",
            status_code=response.status_code,
        )
    answer = response.json()
    previous = answer.get("previous_level")
    return Taken(True, "", detail=f"level {previous if previous is not None else '?'} → {level}")


async def write_register(
    context: ServiceContext, submitted: Submission, risk_id: str, decided: DecisionForm
) -> Taken:
    client: httpx.AsyncClient = context.state[REGISTER_CLIENT]
    headers = {"Authorization": f"Bearer {submitted.token}", "If-Match": decided.etag or ""}
    path = f"/v1/risks/{quote(risk_id, safe='')}"
    body: dict[str, Any]
    if decided.action == "reviewed":
        method, body = "PATCH", {"reviewed": True}
    else:
        assert decided.target is not None
        method, path, body = "POST", path + "/transitions", {"target": decided.target.value}
        if decided.resolution_verification:
            body["resolution_verification"] = decided.resolution_verification
    if decided.note:
        body["reason"] = decided.note
    try:
        response = await client.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as error:
        log.warning("register unreachable", error=type(error).__name__)
        return Taken(False, "The register did not answer; nothing was changed.")
    if response.status_code == 412:
        return Taken(
            False,
            "Someone changed this register entry after the agenda was drawn, so nothing was"
            " saved. The agenda now shows the current version: look again and decide.",
            status_code=status.HTTP_412_PRECONDITION_FAILED,
        )
    if response.status_code != 200:
        return Taken(
            False,
            f"The register refused ({response.status_code}): {refusal_text(response)}",
            status_code=response.status_code,
        )
    entry = response.json()
    next_review = str(entry.get("next_review_at") or "")[:16].replace("T", " ")
    if decided.action == "reviewed":
        detail = f"version {entry.get('version')}, next review {next_review or 'none'}"
    else:
        detail = f"now {str(entry.get('status', '')).replace('_', ' ')}"
    return Taken(True, "", detail=detail)


async def take(
    context: ServiceContext,
    submitted: Submission,
    risk_id: str,
    decided: DecisionForm,
    now: datetime,
) -> Taken:
    if decided.action == "monitored":
        return await acknowledge_steps(
            context, submitted, risk_id, "weekly_review", None, decided.note, now
        )
    if decided.action in {"confirmed", "not_confirmed"}:
        decision = ReviewDecision(decided.action)
        return await acknowledge_steps(
            context, submitted, risk_id, "review", decision, decided.note, now
        )
    if decided.action == "level_changed":
        assert decided.level is not None
        assert decided.note is not None
        return await override_level(context, submitted, risk_id, decided.level, decided.note)
    return await write_register(context, submitted, risk_id, decided)


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


def build_review_router(context: ServiceContext, pages: ConsolePages) -> APIRouter:
    router = APIRouter()
    settings: ConsoleSettings = pages.settings

    async def open_classifier(context: ServiceContext) -> None:
        context.state[CLASSIFIER_CLIENT] = httpx.AsyncClient(
            base_url=str(settings.classifier_url).rstrip("/"),
            timeout=settings.request_timeout_seconds,
        )

    async def close_classifier(context: ServiceContext) -> None:
        client: httpx.AsyncClient | None = context.state.pop(CLASSIFIER_CLIENT, None)
        if client is not None:
            await client.aclose()

    context.on_startup.append(open_classifier)
    context.on_shutdown.append(close_classifier)

    def not_allowed(request: Request, principal: Principal, doing: str) -> Response:
        return pages.page(
            request,
            "console_message.html.j2",
            status_code=status.HTTP_403_FORBIDDEN,
            principal=principal,
            title="Not allowed",
            message=f"Your roles do not {doing}.",
        )

    def invalid(request: Request, principal: Principal, title: str, message: str) -> Response:
        return pages.page(
            request,
            "console_message.html.j2",
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            principal=principal,
            title=title,
            message=message,
        )

    async def agenda_values(principal: Principal, period: Period, week: str | None) -> Any:
        now = pages.clock()
        async with context.db.acquire() as connection:
            lists = await review_agenda(connection, period, now)
            decided = await review_store.decisions_between(
                connection, meeting_start(now), now + timedelta(days=1), now
            )
            versions = await review_store.register_versions(
                connection, [item.risk_id for item in lists.overdue_reviews.items]
            )
        listings = {
            "level_1_2": risk_listing(lists.level_1_2, now),
            "level_3_awaiting_review": risk_listing(lists.level_3_awaiting_review, now),
            "overdue_review": risk_listing(lists.overdue_reviews, now),
        }
        decisions = review_decision_items(decided)
        return {
            "sections": agenda_sections(
                {key: listing.items for key, listing in listings.items()},
                {key: listing.total for key, listing in listings.items()},
                versions,
                decisions,
            ),
            "decisions": decisions,
            "decision_labels": REVIEW_DECISION_LABELS,
            "levels": [int(level) for level in sorted(RiskLevel, reverse=True)],
            "statuses": list(RiskStatus),
            "may_decide": bool(principal.roles & REVIEW_DECIDERS),
            "period": period,
            "week": week or "",
            "next_path": REVIEW_PATH + (f"?{urlencode({'week': week})}" if week else ""),
        }

    def period_of(week: str | None) -> Period | str:
        try:
            return review_period(pages.clock(), week)
        except PeriodError as error:
            return str(error)

    @router.get("/review", response_model=None)
    async def review_page(
        request: Request,
        week: str | None = None,
        done: str | None = None,
        failed: str | None = None,
    ) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        if not principal.roles & REVIEW_READERS:
            return not_allowed(request, principal, "include the Weekly Risk Review")
        period = period_of(week)
        if isinstance(period, str):
            return invalid(request, principal, "Unknown week", period)
        values = await agenda_values(principal, period, week)
        return pages.page(
            request,
            "console_review.html.j2",
            principal=principal,
            done=done,
            failed=failed,
            live_url="/console/review/live" + (f"?{urlencode({'week': week})}" if week else ""),
            **values,
        )

    @router.get("/review/live", response_model=None)
    async def review_live(request: Request, week: str | None = None) -> Response:
        principal = pages.session(request)
        if principal is None:
            return signed_out()
        if not principal.roles & REVIEW_READERS:
            return Response(
                "Your roles do not include the Weekly Risk Review.",
                status_code=status.HTTP_403_FORBIDDEN,
                media_type="text/plain",
            )
        period = period_of(week)
        if isinstance(period, str):
            return Response(period, status_code=422, media_type="text/plain")
        values = await agenda_values(principal, period, week)
        return fragment(pages, request, "_review_agenda.html.j2", **values)

    @router.post("/review/{risk_id}/decide", response_model=None)
    async def decide(risk_id: str, request: Request) -> Response:
        submitted = await pages.submission(request)
        if isinstance(submitted, Response):
            return submitted
        principal = submitted.principal
        if not principal.roles & REVIEW_DECIDERS:
            return not_allowed(request, principal, "decide Weekly Risk Review items")
        decided = parse_decision(submitted.form)
        if isinstance(decided, list):
            return invalid(request, principal, "The decision is incomplete", " ".join(decided))
        now = pages.clock()
        async with context.db.acquire() as connection:
            facts = await review_store.risk_facts(connection, risk_id, now)
        if facts is None:
            return pages.page(
                request,
                "console_message.html.j2",
                status_code=status.HTTP_404_NOT_FOUND,
                principal=principal,
                title="Unknown risk",
                message=f"No risk {risk_id} is known here; nothing was decided.",
            )
        taken = await take(context, submitted, risk_id, decided, now)
        target = {"next": submitted.form.get("next") or REVIEW_PATH}
        if not taken.ok:
            if taken.status_code == status.HTTP_403_FORBIDDEN:
                return not_allowed(request, principal, f"cover this decision ({taken.message})")
            return back_to(target, AckOutcome(False, taken.message))
        title, level = facts
        await record(context, principal, risk_id, title, level, decided, taken, now)
        label = REVIEW_DECISION_LABELS[decided.action]
        detail = f" ({taken.detail})" if taken.detail else ""
        return back_to(target, AckOutcome(True, f"Recorded for {title}: {label}{detail}."))

    async def record(
        context: ServiceContext,
        principal: Principal,
        risk_id: str,
        title: str,
        level: int | None,
        decided: DecisionForm,
        taken: Taken,
        now: datetime,
    ) -> None:
        async with context.db.acquire() as connection:
            await review_store.record_decision(
                connection,
                ReviewDecisionRow(
                    decision_id=str(uuid.uuid4()),
                    risk_id=risk_id,
                    title=title,
                    level=level,
                    agenda=decided.agenda,
                    decision=decided.action,
                    detail=taken.detail,
                    note=decided.note,
                    decided_by=principal.actor,
                    decided_by_name=principal.name or principal.actor,
                    decided_at=now,
                ),
            )
        log.info("weekly review decision", risk_id=risk_id, decision=decided.action)

    return router
