"""The console's risk page, ``/console/risks/{risk_id}``: what the risk is, why it was flagged,
its escalation timeline, its tickets and its register entry, from reporting's read model.

Every person of the protocol (any console role) may read it: it shows ids, times, levels and
what intake and the classifier published redacted, never ticket text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import Response

from riskrelay.reporting import console_store
from riskrelay.reporting.console import ConsolePages, login_redirect
from riskrelay.reporting.reports import level_label
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.events import Role

# The register service's readers (its API refuses anyone else): who gets the register link.
REGISTER_READERS = frozenset(
    {Role.ANALYST, Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.SUPPORT_DIRECTOR, Role.ADMIN}
)

TIMELINE_LABELS = {
    "initial": "Notified",
    "reminder": "Reminder",
    "pre_breach_warning": "Pre-breach warning",
    "breach": "Breach",
    "weekly_review": "Weekly review",
    "acknowledged": "Acknowledged",
}


@dataclass
class DetectionRow:
    """One distinct detection (indicator, rule and redacted sentence) and how often it fired."""

    indicator: str
    rule_id: str
    evidence: str
    confidence: float
    tickets: set[str] = field(default_factory=set)
    model: dict[str, Any] | None = None

    @property
    def learned(self) -> bool:
        return self.model is not None


def detections_summary(
    evidence: list[dict[str, Any]], flags: list[console_store.TicketFlag]
) -> list[DetectionRow]:
    """The classification's evidence and every flag's detections, one row per distinct
    (indicator, rule, sentence), the highest confidence kept; most tickets first."""
    rows: dict[tuple[str, str, str], DetectionRow] = {}

    def add(detection: dict[str, Any], ticket_id: str | None) -> None:
        key = (detection["indicator"], detection["rule_id"], detection["evidence"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = DetectionRow(*key, confidence=detection["confidence"])
        row.confidence = max(row.confidence, detection["confidence"])
        row.model = row.model or detection.get("explanation")
        if ticket_id is not None:
            row.tickets.add(ticket_id)

    for detection in evidence:
        add(detection, None)
    for flag in flags:
        for detection in flag.detections:
            add(detection, flag.ticket_id)
    return sorted(
        rows.values(), key=lambda r: (-len(r.tickets), -r.confidence, r.indicator, r.rule_id)
    )


def ticket_indicators(flags: list[console_store.TicketFlag]) -> dict[str, list[str]]:
    """Each ticket's indicators over all its flags, in the order first seen."""
    seen: dict[str, dict[str, None]] = {}
    for flag in flags:
        indicators = seen.setdefault(flag.ticket_id, {})
        for detection in flag.detections:
            indicators.setdefault(detection["indicator"], None)
    return {ticket_id: list(indicators) for ticket_id, indicators in seen.items()}


def build_risk_router(context: ServiceContext, pages: ConsolePages) -> APIRouter:
    router = APIRouter()

    @router.get("/risks/{risk_id}", response_model=None)
    async def risk(
        risk_id: str, request: Request, done: str | None = None, failed: str | None = None
    ) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        async with context.db.acquire() as connection:
            page = await console_store.risk_page(connection, risk_id)
        if page is None:
            return pages.page(
                request,
                "console_message.html.j2",
                status_code=status.HTTP_404_NOT_FOUND,
                principal=principal,
                title="Unknown risk",
                message=f"No risk {risk_id} has been classified (or reported here) yet.",
            )
        return pages.page(
            request,
            "console_risk.html.j2",
            principal=principal,
            page=page,
            facts=page.facts,
            level_name=level_label(page.facts.level),
            detections=detections_summary(page.facts.evidence, page.flags),
            indicators=ticket_indicators(page.flags),
            timeline_labels=TIMELINE_LABELS,
            register_link=bool(principal.roles & REGISTER_READERS),
            done=done,
            failed=failed,
        )

    return router
