"""Acknowledgement links in the console: the page an e-mail's or a Teams card's link opens.

``GET /console/links/ack?token=...`` shows what the link would do (the step, its risk, the
decision of a Level 3 review link) and changes nothing, so a mail scanner or a link preview
acknowledges nothing; the page's button POSTs (with the CSRF token) and only that acknowledges.
Both ask the escalator (``/v1/ack-links/inspect`` and ``/redeem``) with the signed-in person's
own token: the escalator checks the link's signature, expiry, person and single use, records
refusals, and records the acknowledgement as this person with the channel of the link. Without
a session the page sends the person to sign in and back.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response

from riskrelay.reporting.console import (
    ESCALATOR_CLIENT,
    SESSION_COOKIE,
    ConsolePages,
    login_redirect,
    read_form,
)
from riskrelay.reporting.reports import level_label
from riskrelay.reporting.settings import ConsoleSettings
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.clock import Clock
from riskrelay.shared.logging import get_logger

log = get_logger(__name__)

MAX_TOKEN_CHARS = 4_096

REFUSAL_TITLES = {
    "expired": "This link has expired",
    "reused": "Already acknowledged",
    "tampered": "This link is not valid",
    "wrong_person": "This link was sent to someone else",
    "unknown_step": "This escalation does not exist",
}
DECISION_LABELS = {
    "confirmed": "Confirm the risk (Risk Management is told)",
    "not_confirmed": "Not confirmed (to the Weekly Risk Review)",
}


async def _ask_escalator(
    context: ServiceContext, request: Request, action: str, token: str
) -> tuple[int, dict[str, Any]]:
    client: httpx.AsyncClient = context.state[ESCALATOR_CLIENT]
    try:
        response = await client.post(
            f"/v1/ack-links/{action}",
            json={"token": token},
            headers={"Authorization": f"Bearer {request.cookies[SESSION_COOKIE]}"},
        )
    except httpx.HTTPError as error:
        log.warning("escalator unreachable", error=type(error).__name__)
        return 503, {"detail": "The escalator did not answer; nothing was acknowledged."}
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:200]}
    return response.status_code, body if isinstance(body, dict) else {"detail": str(body)}


def build_console_links_router(
    context: ServiceContext, settings: ConsoleSettings, clock: Clock
) -> APIRouter:
    router = APIRouter(prefix="/console/links", tags=["console"], include_in_schema=False)
    pages = ConsolePages(context, settings, clock)

    def refused(request: Request, code: int, body: dict[str, Any]) -> Response:
        reason = body.get("reason")
        title = REFUSAL_TITLES.get(
            str(reason), "Not allowed" if code == 403 else "The escalator refused this link"
        )
        return pages.page(
            request,
            "console_link_result.html.j2",
            status_code=code,
            principal=pages.session(request),
            ok=False,
            title=title,
            message=str(body.get("detail", "")),
            step=body.get("step"),
        )

    @router.get("/ack", response_model=None)
    async def confirm_page(request: Request, token: str = "") -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        if not token or len(token) > MAX_TOKEN_CHARS:
            return refused(request, 400, {"reason": "tampered", "detail": "The link has no token."})
        code, body = await _ask_escalator(context, request, "inspect", token)
        if code != 200:
            return refused(request, code, body)
        step = body["step"]
        decision = body.get("decision")
        return pages.page(
            request,
            "console_link_confirm.html.j2",
            principal=principal,
            token=token,
            step=step,
            level_label=level_label(int(step["level"])),
            decision=decision,
            action_label=DECISION_LABELS.get(decision or "", "Acknowledge"),
            channel=body.get("channel"),
            # The escalator words both times in the person's roster time zone.
            ack_due_text=body.get("ack_due_text"),
            expires_at=body.get("expires_text") or body.get("expires_at"),
        )

    @router.post("/ack", response_model=None)
    async def redeem(request: Request) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        form = await read_form(request)
        if (refusal := pages.refuse_without_csrf(request, form)) is not None:
            return refusal
        token = form.get("token", "")
        if not token or len(token) > MAX_TOKEN_CHARS:
            return refused(request, 400, {"reason": "tampered", "detail": "The form has no link."})
        code, body = await _ask_escalator(context, request, "redeem", token)
        if code != 200:
            return refused(request, code, body)
        step = body["step"]
        late = " It was past its deadline; that is recorded." if body.get("late") else ""
        if body["status"] == "accepted":
            title = "Acknowledged"
            decision = body.get("decision")
            what = f" with the decision {decision.replace('_', ' ')}" if decision else ""
            message = f"You acknowledged this step{what}; its reminders stop.{late}"
        else:
            title = "Already acknowledged"
            by = f" by {step['acknowledged_by']}" if step.get("acknowledged_by") else ""
            message = f"This step was already acknowledged{by}; nothing changed."
        return pages.page(
            request,
            "console_link_result.html.j2",
            principal=principal,
            ok=True,
            title=title,
            message=message,
            step=step,
        )

    return router
