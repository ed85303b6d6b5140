"""Writes ``history.jsonl``: the fixed event history behind the reporting golden files.

Run ``uv run --frozen python tests/golden/reporting/build_history.py`` after changing it, then
regenerate the expected reports (see ``tests/integration/test_reporting_golden.py``). Every line
is ``{"topic", "key", "event"}`` with a valid CloudEvent, so tests can apply it through the store
or produce it to the broker.

The story (week 2026-W47 is 16-22 November 2026; the month is 2026-11, compared with 2026-10):

* R-login (cluster cl-login, data security): Low on 3 Nov, upgraded to High on 17 Nov (a near
  miss); three tickets, one of which joined through the cluster only; registered, mitigating,
  then monitoring on 20 Nov. Its three escalation steps: acknowledged in time, acknowledged late,
  never acknowledged (and the escalator declared a breach).
* R-outage (ticket T-10, service disruption): Critical on 19 Nov; one step acknowledged in time,
  one still inside its deadline when the reports are generated.
* R-refund (cluster cl-refund, reputation): Medium in October, closed on 28 Oct, came back with a
  new ticket and a reopening on 18 Nov; never reviewed, so it awaits the Level 3 review.
* R-ship (cluster cl-ship, product safety): Medium on 5 Nov, reviewed and confirmed on 6 Nov.
* R-T30 and R-T31: Minimal and Low, for the Weekly Risk Review agenda; R-T63 Low in October.
* T-50 is flagged but belongs to no classified risk; T-100..T-105 are never flagged.
* Feedback (risk-feedback): a team lead marks T-30 and T-50 "not a risk" and says R-login's
  level should be Critical; a support manager reports T-103 as a missed security issue; in
  October an analyst marks T-63 "not a risk".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riskrelay.shared.envelope import CloudEvent, derive_event_id
from riskrelay.shared.events import (
    ClusterInfo,
    Customer,
    Detection,
    EscalationAcknowledged,
    EscalationAcknowledgedEvent,
    EscalationDue,
    EscalationDueEvent,
    EscalationReason,
    FeedbackKind,
    FeedbackText,
    FeedbackTextSource,
    Indicator,
    ReviewDecision,
    RiskCategory,
    RiskClassified,
    RiskClassifiedEvent,
    RiskFeedback,
    RiskFeedbackEvent,
    RiskLevel,
    RiskRegisteredEvent,
    RiskRegisterEntry,
    RiskStatus,
    Role,
    TicketData,
    TicketEvent,
    TicketEventKind,
    TicketFlagged,
    TicketFlaggedEvent,
)

HERE = Path(__file__).parent


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


LINES: list[dict[str, Any]] = []


def emit(topic: str, key: str, event: CloudEvent[Any]) -> None:
    LINES.append({"topic": topic, "key": key, "event": json.loads(event.to_json_bytes())})


def ticket(ticket_id: str, when: str, channel: str, product: str, kind: str = "created") -> None:
    data = TicketData(
        ticket_id=ticket_id,
        subject="Customer report",
        description="Text reporting must never store.",
        channel=channel,
        customer=Customer(id=f"C-{ticket_id}", segment="smb"),
        product=product,
        priority="normal",
    )
    event = TicketEvent(
        id=f"up-{ticket_id}-{kind}",
        source="zendesk://acme",
        type=f"riskrelay.ticket.{kind}.v1",  # type: ignore[arg-type]
        time=at(when),
        subject=ticket_id,
        data=data,
    )
    emit("ticket-events", ticket_id, event)


def flag(ticket_id: str, when: str, channel: str, product: str, cluster: str | None = None,
         cluster_size: int = 1) -> None:  # fmt: skip
    ticket(ticket_id, when, channel, product)
    info = None
    if cluster is not None:
        info = ClusterInfo(
            cluster_id=cluster,
            size=cluster_size,
            distinct_customers=cluster_size,
            surging=cluster_size >= 3,
            first_seen_at=at(when),
        )
    data = TicketFlagged(
        ticket_id=ticket_id,
        upstream_event_id=f"up-{ticket_id}-created",
        upstream_source="zendesk://acme",
        event_kind=TicketEventKind.CREATED,
        occurred_at=at(when),
        channel=channel,
        priority="normal",
        product=product,
        customer_id=f"C-{ticket_id}",
        customer_segment="smb",
        redacted_subject="Customer report",
        redacted_summary="Redacted summary",
        indicators=[
            Detection(
                indicator=Indicator.SEVERE_IMPACT,
                rule_id="severe_impact.test",
                evidence="test",
                confidence=0.9,
            )
        ],
        cluster=info,
        rule_pack_version="golden",
    )
    event = TicketFlaggedEvent(
        id=derive_event_id(f"up-{ticket_id}-created", "flag"),
        source="riskrelay/intake",
        time=at(when),
        subject=ticket_id,
        data=data,
    )
    emit("ticket-flagged", ticket_id, event)


def classify(risk_id: str, when: str, level: int, category: RiskCategory, tickets: list[str],
             cluster: str | None = None, previous: int | None = None, first: str | None = None,
             title: str = "") -> None:  # fmt: skip
    data = RiskClassified(
        risk_id=risk_id,
        level=RiskLevel(level),
        category=category,
        previous_level=RiskLevel(previous) if previous else None,
        ticket_id=tickets[-1],
        ticket_ids=tickets,
        ticket_count=len(tickets),
        distinct_customers=len(tickets),
        cluster_id=cluster,
        indicators=[Indicator.SEVERE_IMPACT],
        title=title or f"{risk_id} title",
        redacted_summary="Redacted summary",
        first_reported_at=at(first or when),
        flagged_at=at(when),
        policy_version="golden",
        rules_fired=[],
        evidence=[],
    )
    event = RiskClassifiedEvent(
        id=derive_event_id(f"{risk_id}@{when}", "classify"),
        source="riskrelay/classifier",
        time=at(when),
        subject=risk_id,
        data=data,
    )
    emit("risk-classified", risk_id, event)


def register(risk_id: str, version: int, when: str, level: int, category: RiskCategory,
             status: RiskStatus, first: str, tickets: int,
             next_review: str | None = None) -> None:  # fmt: skip
    data = RiskRegisterEntry(
        risk_id=risk_id,
        version=version,
        title=f"{risk_id} title",
        redacted_summary="Redacted summary",
        level=RiskLevel(level),
        category=category,
        status=status,
        owner="rm-owner" if version > 1 else None,
        first_reported_at=at(first),
        last_reported_at=at(when),
        ticket_count=tickets,
        distinct_customers=tickets,
        policy_version="golden",
        next_review_at=at(next_review) if next_review else None,
        updated_at=at(when),
    )
    event = RiskRegisteredEvent(
        id=derive_event_id(f"{risk_id}/v{version}", "register"),
        source="riskrelay/register",
        time=at(when),
        subject=risk_id,
        data=data,
    )
    emit("risk-registered", risk_id, event)


def due(escalation_id: str, risk_id: str, level: int, role: Role, when: str,
        ack_minutes: int | None, reason: EscalationReason = EscalationReason.INITIAL) -> None:  # fmt: skip
    data = EscalationDue(
        escalation_id=escalation_id,
        risk_id=risk_id,
        level=RiskLevel(level),
        step=0,
        target_role=role,
        reason=reason,
        due_at=at(when),
        ack_due_at=at(when) + timedelta(minutes=ack_minutes) if ack_minutes is not None else None,
    )
    event = EscalationDueEvent(
        id=derive_event_id(f"{escalation_id}@{when}/{reason.value}", "due"),
        source="riskrelay/escalator",
        time=at(when),
        subject=risk_id,
        data=data,
    )
    emit("escalation-due", risk_id, event)


def ack(escalation_id: str, risk_id: str, role: Role, when: str,
        decision: ReviewDecision | None = None) -> None:  # fmt: skip
    data = EscalationAcknowledged(
        escalation_id=escalation_id,
        risk_id=risk_id,
        role=role,
        acknowledged_by=f"{role.value}-1",
        acknowledged_at=at(when),
        decision=decision,
    )
    event = EscalationAcknowledgedEvent(
        id=derive_event_id(f"{escalation_id}@{when}", "ack"),
        source="riskrelay/escalator",
        time=at(when),
        subject=risk_id,
        data=data,
    )
    emit("escalation-acks", risk_id, event)


def feedback(kind: FeedbackKind, when: str, role: Role, ticket_id: str | None = None,
             risk_id: str | None = None, correct_level: int | None = None,
             indicators: tuple[Indicator, ...] = (), level: int | None = None) -> None:  # fmt: skip
    texts = [FeedbackText(text="Customer report", source=FeedbackTextSource.SUBJECT)]
    data = RiskFeedback(
        kind=kind,
        ticket_id=ticket_id,
        risk_id=risk_id,
        given_by=f"{role.value}@example.org",
        role=role,
        given_at=at(when),
        level=RiskLevel(level) if level else None,
        correct_level=RiskLevel(correct_level) if correct_level else None,
        indicators=list(indicators),
        texts=texts if ticket_id and kind != FeedbackKind.MISSED_RISK else [],
    )
    subject = ticket_id or risk_id or ""
    event = RiskFeedbackEvent(
        id=derive_event_id(f"{subject}@{when}", "feedback"),
        source="riskrelay/console",
        time=at(when),
        subject=subject,
        data=data,
    )
    emit("risk-feedback", subject, event)


def build() -> None:
    cat = RiskCategory
    # October (the comparison month)
    flag("T-60", "2026-10-20T09:00:00", "email", "Refunds", "cl-refund", 1)
    flag("T-61", "2026-10-20T10:00:00", "chat", "Refunds", "cl-refund", 2)
    flag("T-62", "2026-10-21T11:00:00", "email", "Refunds", "cl-refund", 3)
    classify("R-refund", "2026-10-20T09:05:00", 3, cat.REPUTATION, ["T-60"], "cl-refund")
    register("R-refund", 1, "2026-10-20T09:10:00", 3, cat.REPUTATION, RiskStatus.IDENTIFIED,
             "2026-10-20T09:00:00", 1)  # fmt: skip
    register("R-refund", 2, "2026-10-28T15:00:00", 3, cat.REPUTATION, RiskStatus.CLOSED,
             "2026-10-20T09:00:00", 3)  # fmt: skip
    flag("T-63", "2026-10-10T08:00:00", "phone", "Portal")
    flag("T-64", "2026-10-11T08:00:00", "phone", "Portal")
    classify("R-T63", "2026-10-10T08:01:00", 2, cat.OPERATIONAL, ["T-63", "T-64"])

    # November, before the week
    flag("T-1", "2026-11-03T09:00:00", "email", "Payments API", "cl-login", 1)
    classify("R-login", "2026-11-03T09:01:00", 2, cat.DATA_SECURITY_PRIVACY, ["T-1"], "cl-login",
             first="2026-11-03T09:00:00")  # fmt: skip
    flag("T-40", "2026-11-05T14:00:00", "web", "Shipping", "cl-ship", 1)
    flag("T-41", "2026-11-05T15:00:00", "Web", "Shipping", "cl-ship", 2)
    classify("R-ship", "2026-11-05T14:01:00", 3, cat.PRODUCT_SAFETY, ["T-40", "T-41"], "cl-ship")
    register("R-ship", 1, "2026-11-05T14:05:00", 3, cat.PRODUCT_SAFETY, RiskStatus.IDENTIFIED,
             "2026-11-05T14:00:00", 2, next_review="2026-11-12T14:00:00")  # fmt: skip
    register("R-ship", 2, "2026-11-09T10:00:00", 3, cat.PRODUCT_SAFETY, RiskStatus.MITIGATING,
             "2026-11-05T14:00:00", 2, next_review="2026-11-30T10:00:00")  # fmt: skip
    due("E-ship-sm", "R-ship", 3, Role.SUPPORT_MANAGER, "2026-11-05T14:02:00", 24 * 60)
    ack("E-ship-sm", "R-ship", Role.SUPPORT_MANAGER, "2026-11-06T09:00:00",
        ReviewDecision.CONFIRMED)  # fmt: skip

    # The week 2026-W47
    flag("T-2", "2026-11-17T09:30:00", "chat", "Payments API", "cl-login", 2)
    flag("T-3", "2026-11-17T09:40:00", "email", "Payments API", "cl-login", 3)
    classify("R-login", "2026-11-17T09:45:00", 4, cat.DATA_SECURITY_PRIVACY, ["T-1", "T-2"],
             "cl-login", previous=2, first="2026-11-03T09:00:00")  # fmt: skip
    register("R-login", 1, "2026-11-17T09:50:00", 4, cat.DATA_SECURITY_PRIVACY,
             RiskStatus.ESCALATED, "2026-11-03T09:00:00", 3)  # fmt: skip
    register("R-login", 2, "2026-11-18T10:00:00", 4, cat.DATA_SECURITY_PRIVACY,
             RiskStatus.MITIGATING, "2026-11-03T09:00:00", 3)  # fmt: skip
    register("R-login", 3, "2026-11-20T16:00:00", 4, cat.DATA_SECURITY_PRIVACY,
             RiskStatus.MONITORING, "2026-11-03T09:00:00", 3,
             next_review="2026-11-27T16:00:00")  # fmt: skip
    due("E-login-tl", "R-login", 4, Role.TEAM_LEAD, "2026-11-17T10:00:00", 30)
    due("E-login-tl", "R-login", 4, Role.TEAM_LEAD, "2026-11-17T10:10:00", 20,
        EscalationReason.REMINDER)  # fmt: skip
    ack("E-login-tl", "R-login", Role.TEAM_LEAD, "2026-11-17T10:12:00")
    due("E-login-sm", "R-login", 4, Role.SUPPORT_MANAGER, "2026-11-17T10:00:00", 60)
    ack("E-login-sm", "R-login", Role.SUPPORT_MANAGER, "2026-11-17T11:30:00")
    due("E-login-rm", "R-login", 4, Role.RISK_MANAGEMENT, "2026-11-17T10:00:00", 120)
    due("E-login-rm", "R-login", 4, Role.RISK_MANAGEMENT, "2026-11-17T12:00:00", None,
        EscalationReason.BREACH)  # fmt: skip

    flag("T-20", "2026-11-18T08:00:00", "email", "Refunds", "cl-refund", 4)
    register("R-refund", 3, "2026-11-18T12:00:00", 3, cat.REPUTATION, RiskStatus.REOPENED,
             "2026-10-20T09:00:00", 4)  # fmt: skip

    flag("T-10", "2026-11-19T07:55:00", "web", "Mobile App")
    classify("R-outage", "2026-11-19T08:00:00", 5, cat.SERVICE_DISRUPTION, ["T-10"])
    register("R-outage", 1, "2026-11-19T08:02:00", 5, cat.SERVICE_DISRUPTION,
             RiskStatus.ESCALATED, "2026-11-19T07:55:00", 1)  # fmt: skip
    due("E-outage-rm", "R-outage", 5, Role.RISK_MANAGEMENT, "2026-11-19T08:00:00", 15)
    ack("E-outage-rm", "R-outage", Role.RISK_MANAGEMENT, "2026-11-19T08:05:00")
    due("E-outage-dir", "R-outage", 5, Role.SUPPORT_DIRECTOR, "2026-11-22T23:50:00", 8 * 60)

    flag("T-30", "2026-11-20T11:00:00", "phone", "Portal")
    classify("R-T30", "2026-11-20T11:01:00", 1, cat.OPERATIONAL, ["T-30"])
    flag("T-31", "2026-11-21T12:00:00", "email", "Portal")
    classify("R-T31", "2026-11-21T12:01:00", 2, cat.COMPLIANCE, ["T-31"])
    flag("T-50", "2026-11-22T20:00:00", "email", "Payments API")

    for n, channel in enumerate(["email", "email", "chat", "chat", "phone", "web"]):
        ticket(f"T-{100 + n}", f"2026-11-{16 + n}T10:00:00", channel, "Portal")
    ticket("T-100", "2026-11-21T10:00:00", "email", "Portal", kind="closed")

    # Feedback
    severe = (Indicator.SEVERE_IMPACT,)
    feedback(FeedbackKind.NOT_A_RISK, "2026-10-12T09:00:00", Role.ANALYST, "T-63", "R-T63",
             indicators=severe)  # fmt: skip
    feedback(FeedbackKind.WRONG_LEVEL, "2026-11-18T09:00:00", Role.TEAM_LEAD, risk_id="R-login",
             correct_level=5, indicators=severe, level=4)  # fmt: skip
    feedback(FeedbackKind.MISSED_RISK, "2026-11-19T10:00:00", Role.SUPPORT_MANAGER, "T-103",
             indicators=(Indicator.SECURITY_ISSUE,))  # fmt: skip
    feedback(FeedbackKind.NOT_A_RISK, "2026-11-20T15:00:00", Role.TEAM_LEAD, "T-30", "R-T30",
             indicators=severe)  # fmt: skip
    feedback(FeedbackKind.NOT_A_RISK, "2026-11-23T08:00:00", Role.TEAM_LEAD, "T-50",
             indicators=severe)  # fmt: skip


def main() -> None:
    build()
    path = HERE / "history.jsonl"
    path.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in LINES))
    print(f"wrote {len(LINES)} events to {path}")


if __name__ == "__main__":
    main()
