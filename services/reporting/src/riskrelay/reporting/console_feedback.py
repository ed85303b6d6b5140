"""Feedback that teaches the detector: the console's "not a risk", "wrong level" and "this is a
risk" (a missed one) forms, published as ``riskrelay.risk.feedback.v1`` on ``risk-feedback``.

* ``/console/feedback/risks/{risk_id}``: the risk's forms and one row of forms per ticket (the
  risk page's feedback button leads here).
* ``/console/feedback/tickets/{ticket_id}``: any ticket's forms, flagged or not (a ticket nobody
  flagged can only be reported as a missed risk); ``/console/feedback`` asks for a ticket id.
* ``POST /console/feedback``: CSRF-checked, role-checked, publishes the event as the signed-in
  person.

The console publishes the event itself, through the reporting service's producer, instead of
calling an intake API: a feedback changes no state another service guards (unlike an
acknowledgement, which the escalator must check against its open steps, or a register edit with
its If-Match), it is a new fact signed by the person, like an acknowledgement put on
``escalation-acks`` directly. Intake, which owns the labelled examples, validates every feedback
event it consumes and dead-letters what it refuses, as for any event; an intake HTTP endpoint
would only add a hop that publishes to a topic intake then reads back.

Each form carries a key drawn when it is rendered (``form_key``); the event's id derives from it
and the person, so a double-click (or a resubmitted form) publishes the same event twice and
intake keeps it once. A form without a key (a script's post) gets a fresh id each time.

The texts a feedback carries come from this read model (the redacted subject, summary and
detection evidence intake and the classifier published), never from the form, so nothing a
browser sends can put unredacted text into the labelled examples.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from riskrelay.reporting import console_store, feedback_store
from riskrelay.reporting.console import (
    ConsolePages,
    Submission,
    login_redirect,
    note_of,
    safe_next,
)
from riskrelay.reporting.console_risk import ticket_indicators
from riskrelay.reporting.reports import level_label
from riskrelay.reporting.settings import ConsoleSettings
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import Principal
from riskrelay.shared.clock import Clock
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    FeedbackKind,
    FeedbackText,
    FeedbackTextSource,
    Indicator,
    RiskFeedback,
    RiskFeedbackEvent,
    RiskLevel,
    Role,
)
from riskrelay.shared.kafka import OutgoingEvent
from riskrelay.shared.logging import get_logger
from riskrelay.shared.topics import RISK_FEEDBACK

log = get_logger(__name__)

SOURCE = "riskrelay/console"
MAX_ID_CHARS = 256
MAX_TEXTS = 50
MAX_TEXT_CHARS = 2_000
FORM_KEY_FIELD = "form_key"
FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
# Judging a detection is a reviewer's call; reporting a missed risk is anyone's in the chain,
# agents included (the protocol's near-miss reporting starts at the front line).
REVIEWER_ROLES = frozenset(
    {
        Role.TEAM_LEAD,
        Role.SUPPORT_MANAGER,
        Role.SUPPORT_DIRECTOR,
        Role.RISK_MANAGEMENT,
        Role.ANALYST,
        Role.ADMIN,
    }
)
ROLES_BY_KIND: dict[FeedbackKind, frozenset[Role]] = {
    FeedbackKind.NOT_A_RISK: REVIEWER_ROLES,
    FeedbackKind.WRONG_LEVEL: REVIEWER_ROLES,
    FeedbackKind.MISSED_RISK: REVIEWER_ROLES | {Role.AGENT},
}
KIND_LABELS = {
    FeedbackKind.NOT_A_RISK: "not a risk",
    FeedbackKind.WRONG_LEVEL: "wrong level",
    FeedbackKind.MISSED_RISK: "a missed risk",
}


class FeedbackRefusedError(ValueError):
    """A feedback the console will not publish; the message tells the person why."""


# ---------------------------------------------------------------------------------------------
# Building the feedback (pure)
# ---------------------------------------------------------------------------------------------


def acting_role(principal: Principal, kind: FeedbackKind) -> Role | None:
    """The role the person gives this kind of feedback in (their first that may), or None."""
    allowed = ROLES_BY_KIND[kind]
    return next((role for role in principal.ordered_roles() if role in allowed), None)


def kinds_allowed(principal: Principal) -> set[FeedbackKind]:
    return {kind for kind in FeedbackKind if acting_role(principal, kind) is not None}


def _indicator(value: Any) -> Indicator | None:
    try:
        return Indicator(value)
    except ValueError:
        return None


def detection_texts(detections: Iterable[dict[str, Any]]) -> list[FeedbackText]:
    """Each distinct redacted evidence text once, with its indicator: a learned model's
    triggering sentence, or the span (or computed reason) a rule matched."""
    texts: dict[tuple[str, Indicator | None], FeedbackText] = {}
    for detection in detections:
        text = str(detection.get("evidence", "")).strip()[:MAX_TEXT_CHARS]
        indicator = _indicator(detection.get("indicator"))
        if not text or (text, indicator) in texts:
            continue
        learned = str(detection.get("rule_id", "")).startswith("model.")
        source = FeedbackTextSource.SENTENCE if learned else FeedbackTextSource.MATCH
        texts[(text, indicator)] = FeedbackText(text=text, source=source, indicator=indicator)
    return list(texts.values())


def detection_indicators(detections: Iterable[dict[str, Any]]) -> list[Indicator]:
    found: dict[Indicator, None] = {}
    for detection in detections:
        indicator = _indicator(detection.get("indicator"))
        if indicator is not None:
            found.setdefault(indicator, None)
    return list(found)


def _text(value: str | None, source: FeedbackTextSource) -> list[FeedbackText]:
    text = (value or "").strip()[:MAX_TEXT_CHARS]
    return [FeedbackText(text=text, source=source)] if text else []


def ticket_feedback(
    kind: FeedbackKind,
    ticket: feedback_store.TicketFacts,
    principal: Principal,
    now: datetime,
    *,
    note: str | None = None,
    correct_level: RiskLevel | None = None,
    named_indicator: Indicator | None = None,
) -> RiskFeedback:
    """A person's feedback on one ticket, with what the read model holds of it."""
    role = acting_role(principal, kind)
    if role is None:
        raise FeedbackRefusedError(f"your roles may not report {KIND_LABELS[kind]}")
    if kind != FeedbackKind.MISSED_RISK and not ticket.flagged:
        raise FeedbackRefusedError(
            f"ticket {ticket.ticket_id} was never flagged: only a missed risk can be reported"
        )
    if kind == FeedbackKind.WRONG_LEVEL and ticket.risk_level is None:
        raise FeedbackRefusedError(
            f"ticket {ticket.ticket_id} belongs to no classified risk, so it has no level"
        )
    if kind == FeedbackKind.MISSED_RISK:
        # The subject tells intake which ticket; intake adds the redacted summary it keeps.
        indicators = [named_indicator] if named_indicator is not None else []
        texts = _text(ticket.redacted_subject, FeedbackTextSource.SUBJECT)
    else:
        indicators = detection_indicators(ticket.detections)
        texts = [
            *detection_texts(ticket.detections),
            *_text(ticket.redacted_subject, FeedbackTextSource.SUBJECT),
        ]
    return _feedback(
        kind,
        principal,
        role,
        now,
        ticket_id=ticket.ticket_id,
        risk_id=ticket.risk_id,
        level=ticket.risk_level,
        correct_level=correct_level,
        indicators=indicators,
        texts=texts,
        note=note,
    )


def risk_feedback(
    kind: FeedbackKind,
    facts: console_store.RiskFacts,
    principal: Principal,
    now: datetime,
    *,
    note: str | None = None,
    correct_level: RiskLevel | None = None,
) -> RiskFeedback:
    """A person's feedback on a whole risk: its summary and the evidence behind its level."""
    if kind == FeedbackKind.MISSED_RISK:
        raise FeedbackRefusedError("a missed risk is reported on the ticket that shows it")
    role = acting_role(principal, kind)
    if role is None:
        raise FeedbackRefusedError(f"your roles may not report {KIND_LABELS[kind]}")
    return _feedback(
        kind,
        principal,
        role,
        now,
        ticket_id=None,
        risk_id=facts.risk_id,
        level=RiskLevel(facts.level),
        correct_level=correct_level,
        indicators=detection_indicators(facts.evidence),
        texts=[
            *_text(facts.redacted_summary, FeedbackTextSource.SUMMARY),
            *detection_texts(facts.evidence),
        ],
        note=note,
    )


def _feedback(
    kind: FeedbackKind,
    principal: Principal,
    role: Role,
    now: datetime,
    *,
    ticket_id: str | None,
    risk_id: str | None,
    level: int | None,
    correct_level: RiskLevel | None,
    indicators: Sequence[Indicator],
    texts: Sequence[FeedbackText],
    note: str | None,
) -> RiskFeedback:
    if kind == FeedbackKind.WRONG_LEVEL:
        if correct_level is None:
            raise FeedbackRefusedError("choose the level the risk should have")
        if correct_level == level:
            raise FeedbackRefusedError(f"the risk is already at level {level}")
    try:
        return RiskFeedback(
            kind=kind,
            ticket_id=ticket_id,
            risk_id=risk_id,
            given_by=principal.actor,
            role=role,
            given_at=now,
            note=note,
            level=RiskLevel(level) if level is not None else None,
            correct_level=correct_level if kind == FeedbackKind.WRONG_LEVEL else None,
            indicators=list(indicators),
            texts=list(texts)[:MAX_TEXTS],
        )
    except ValidationError as error:
        raise FeedbackRefusedError(error.errors()[0]["msg"]) from error


def new_form_key() -> str:
    return secrets.token_urlsafe(16)


def feedback_event_id(feedback: RiskFeedback, form_key: str | None) -> str:
    """One id per rendered form and person (what it judges included, so a key replayed on
    another feedback cannot hide it); a fresh one without a key."""
    if form_key is None:
        return str(uuid.uuid4())
    judged = f"{feedback.kind.value}/{feedback.ticket_id or ''}/{feedback.risk_id or ''}"
    return derive_event_id(f"console-feedback:{form_key}", f"{feedback.given_by}/{judged}")


def feedback_event(feedback: RiskFeedback, form_key: str | None = None) -> RiskFeedbackEvent:
    subject = feedback.ticket_id or feedback.risk_id
    return RiskFeedbackEvent(
        id=feedback_event_id(feedback, form_key),
        source=SOURCE,
        time=feedback.given_at,
        subject=subject,
        correlationid=subject,
        data=feedback,
    )


def done_message(feedback: RiskFeedback) -> str:
    what = f"ticket {feedback.ticket_id}" if feedback.ticket_id else f"risk {feedback.risk_id}"
    label = KIND_LABELS[feedback.kind]
    if feedback.kind == FeedbackKind.WRONG_LEVEL and feedback.correct_level is not None:
        label += f" (should be {level_label(feedback.correct_level)})"
    return f"Recorded {what} as {label}; intake keeps it as a labelled example."


def page_values(principal: Principal, **values: Any) -> dict[str, Any]:
    """What ``console_feedback.html.j2`` renders: a risk's, a ticket's or neither's forms."""
    return {
        "principal": principal,
        "kinds": {kind.value for kind in kinds_allowed(principal)},
        "levels": [(level.value, level_label(level)) for level in RiskLevel],
        "indicators": [indicator.value for indicator in Indicator],
        "form_key_field": FORM_KEY_FIELD,
        "new_form_key": new_form_key,
        "risk": None,
        "ticket": None,
        "done": None,
        "failed": None,
        **values,
    }


# ---------------------------------------------------------------------------------------------
# Form fields
# ---------------------------------------------------------------------------------------------


def _identifier(value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    if len(text) > MAX_ID_CHARS or any(ord(c) < 32 for c in text):
        raise FeedbackRefusedError("that is not a ticket or risk id")
    return text


def _form_key(value: str | None) -> str | None:
    key = (value or "").strip()
    if not key:
        return None
    if not FORM_KEY.fullmatch(key):
        raise FeedbackRefusedError("the form is damaged: reload the page and give it again")
    return key


def _kind(value: str | None) -> FeedbackKind:
    try:
        return FeedbackKind(value or "")
    except ValueError as error:
        raise FeedbackRefusedError("choose not a risk, wrong level or this is a risk") from error


def _level(value: str | None) -> RiskLevel | None:
    if not value:
        return None
    try:
        return RiskLevel(int(value))
    except ValueError as error:
        raise FeedbackRefusedError("a level is a number from 1 to 5") from error


def _named_indicator(value: str | None) -> Indicator | None:
    if not value:
        return None
    indicator = _indicator(value)
    if indicator is None:
        raise FeedbackRefusedError(f"unknown indicator {value[:64]!r}")
    return indicator


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


def build_feedback_router(
    context: ServiceContext, settings: ConsoleSettings, clock: Clock
) -> APIRouter:
    router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)
    pages = ConsolePages(context, settings, clock)
    context.publishes(RISK_FEEDBACK)

    def message(
        request: Request, principal: Principal | None, code: int, title: str, text: str
    ) -> Response:
        return pages.page(
            request,
            "console_message.html.j2",
            status_code=code,
            principal=principal,
            title=title,
            message=text,
        )

    def form_values(principal: Principal, **values: Any) -> dict[str, Any]:
        return page_values(principal, **values)

    @router.get("/feedback", response_model=None)
    async def ask_ticket(request: Request, ticket_id: str | None = None) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        try:
            chosen = _identifier(ticket_id)
        except FeedbackRefusedError as error:
            return message(request, principal, 422, "Not a ticket id", str(error))
        if chosen is not None:
            return RedirectResponse(
                f"/console/feedback/tickets/{quote(chosen, safe='')}",
                status_code=status.HTTP_303_SEE_OTHER,
            )
        return pages.page(request, "console_feedback.html.j2", **form_values(principal))

    @router.get("/feedback/risks/{risk_id}", response_model=None)
    async def risk_forms(
        risk_id: str, request: Request, done: str | None = None, failed: str | None = None
    ) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        async with context.db.acquire() as connection:
            page = await console_store.risk_page(connection, risk_id)
        if page is None:
            return message(request, principal, 404, "Unknown risk", f"No risk {risk_id} yet.")
        return pages.page(
            request,
            "console_feedback.html.j2",
            **form_values(
                principal,
                risk=page.facts,
                risk_level_name=level_label(page.facts.level),
                tickets=page.tickets,
                ticket_indicators=ticket_indicators(page.flags),
                done=done,
                failed=failed,
            ),
        )

    @router.get("/feedback/tickets/{ticket_id}", response_model=None)
    async def ticket_forms(
        ticket_id: str, request: Request, done: str | None = None, failed: str | None = None
    ) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        async with context.db.acquire() as connection:
            ticket = await feedback_store.ticket_facts(connection, ticket_id)
        return pages.page(
            request,
            "console_feedback.html.j2",
            **form_values(
                principal,
                ticket=ticket,
                ticket_indicators=detection_indicators(ticket.detections),
                done=done,
                failed=failed,
            ),
        )

    @router.post("/feedback", response_model=None)
    async def give(request: Request) -> Response:
        submitted = await pages.submission(request)
        if isinstance(submitted, Response):
            return submitted
        try:
            feedback = await feedback_of(submitted)
            form_key = _form_key(submitted.form.get(FORM_KEY_FIELD))
        except FeedbackRefusedError as error:
            return message(request, submitted.principal, 422, "Feedback not recorded", f"{error}.")
        except PermissionError as error:
            return message(request, submitted.principal, 403, "Not allowed", f"{error}.")
        except LookupError as error:
            return message(request, submitted.principal, 404, "Not found", f"{error}.")
        event = feedback_event(feedback, form_key)
        key = feedback.ticket_id or feedback.risk_id or ""
        target = safe_next(submitted.form.get("next"))
        try:
            await context.producer.publish(
                [OutgoingEvent(context.topic(RISK_FEEDBACK), key, event)]
            )
        except KafkaError as error:
            log.warning("feedback not published", error=type(error).__name__)
            return _back(target, "failed", "The broker did not take the feedback; try again.")
        log.info("feedback published", event_id=event.id, kind=feedback.kind.value)
        return _back(target, "done", done_message(feedback))

    async def feedback_of(submitted: Submission) -> RiskFeedback:
        form, principal = submitted.form, submitted.principal
        kind = _kind(form.get("kind"))
        if acting_role(principal, kind) is None:
            raise PermissionError(f"your roles may not report {KIND_LABELS[kind]}")
        ticket_id = _identifier(form.get("ticket_id"))
        risk_id = _identifier(form.get("risk_id"))
        correct_level = _level(form.get("correct_level"))
        note = note_of(form)
        now = clock()
        async with context.db.acquire() as connection:
            if ticket_id is not None:
                ticket = await feedback_store.ticket_facts(connection, ticket_id)
                if kind != FeedbackKind.MISSED_RISK and not ticket.known:
                    raise LookupError(f"no ticket {ticket_id} has reached the console")
                return ticket_feedback(
                    kind,
                    ticket,
                    principal,
                    now,
                    note=note,
                    correct_level=correct_level,
                    named_indicator=_named_indicator(form.get("indicator")),
                )
            if risk_id is None:
                raise FeedbackRefusedError("name a ticket or a risk")
            page = await console_store.risk_page(connection, risk_id)
        if page is None:
            raise LookupError(f"no risk {risk_id} has been classified")
        return risk_feedback(
            kind, page.facts, principal, now, note=note, correct_level=correct_level
        )

    return router


def _back(target: str, key: str, text: str) -> RedirectResponse:
    separator = "&" if "?" in target else "?"
    return RedirectResponse(
        f"{target}{separator}{key}={quote(text, safe='')}", status_code=status.HTTP_303_SEE_OTHER
    )
