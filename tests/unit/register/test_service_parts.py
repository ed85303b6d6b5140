"""The register service's pure parts: ETags, cursors, CSV, the Customer Support brief, the
assessment request, folding the register topic, and escalation signals on entries."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from riskrelay.register.api import (
    CSV_COLUMNS,
    AssessmentUpdate,
    entries_to_csv,
    etag,
    if_match_satisfied,
    if_none_match_satisfied,
)
from riskrelay.register.domain import (
    apply_escalation_signal,
    merge_classification,
    signal_matters_once_registered,
    support_brief,
)
from riskrelay.register.handlers import registered_event_id
from riskrelay.register.rebuild import fold_entries
from riskrelay.register.store import InvalidCursor, PageCursor, RiskFilter
from riskrelay.shared.events import (
    EscalationAcknowledged,
    EscalationDue,
    EscalationReason,
    Indicator,
    MitigationPlan,
    ReviewDecision,
    RiskCategory,
    RiskClassified,
    RiskLevel,
    RiskRegisterEntry,
    RiskStatus,
    Role,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def entry(**overrides: Any) -> RiskRegisterEntry:
    classified = RiskClassified(
        risk_id="risk-1",
        level=RiskLevel.HIGH,
        category=RiskCategory.DATA_SECURITY_PRIVACY,
        ticket_id="T-3",
        ticket_ids=["T-1", "T-2", "T-3"],
        ticket_count=3,
        distinct_customers=2,
        customer_segments=["enterprise"],
        products=["Portal"],
        indicators=[Indicator.DATA_CONCERN],
        title="Other customers' invoices visible",
        redacted_summary="Invoice page shows another company's data",
        first_reported_at=T0,
        flagged_at=T0 + timedelta(hours=12),
        policy_version="p1",
        rules_fired=[],
        evidence=[],
    )
    base = merge_classification(None, classified, T0 + timedelta(hours=12))
    return RiskRegisterEntry.model_validate(base.model_dump() | overrides)


# ---------------------------------------------------------------------------------------------
# ETags and conditional requests
# ---------------------------------------------------------------------------------------------


def test_etag_follows_the_version() -> None:
    assert etag(entry()) == '"v1"'
    assert etag(entry(version=7)) == '"v7"'


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"v3"', True),
        ('"v2", "v3"', True),
        ("*", True),
        ('"v2"', False),
        ('W/"v3"', False),  # If-Match uses the strong comparison
        ("v3", False),
        ("", False),
    ],
)
def test_if_match(header: str, matches: bool) -> None:
    assert if_match_satisfied(header, entry(version=3)) is matches


def test_if_none_match_uses_weak_comparison() -> None:
    assert if_none_match_satisfied('W/"v3"', entry(version=3))
    assert not if_none_match_satisfied('"v2"', entry(version=3))


# ---------------------------------------------------------------------------------------------
# Cursors and filters
# ---------------------------------------------------------------------------------------------


def test_cursor_round_trip_is_opaque_and_url_safe() -> None:
    cursor = PageCursor(T0, "risk/ä 1")
    text = cursor.encode()
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert PageCursor.decode(text) == cursor


@pytest.mark.parametrize(
    "text", ["", "%%%", "bm90IGpzb24", "WzEsMl0", "WyIyMDI2LTAxLTAxIiwgInIiXQ"]
)
def test_foreign_cursors_are_refused(text: str) -> None:
    # the last one is a naive time: not something this API hands out
    with pytest.raises(InvalidCursor):
        PageCursor.decode(text)


def test_filter_sql_binds_every_value() -> None:
    sql, params = RiskFilter(
        levels=[RiskLevel.HIGH],
        categories=[RiskCategory.COMPLIANCE],
        statuses=[RiskStatus.CLOSED],
        reported_from=T0,
        reported_to=T0 + timedelta(days=1),
        text="50%_off; DROP TABLE risks",
    ).where()
    assert "DROP" not in sql
    assert params[:5] == [[4], ["compliance"], ["closed"], T0, T0 + timedelta(days=1)]
    assert params[5] == "50%_off; DROP TABLE risks"
    assert params[6] == "%50\\%\\_off; DROP TABLE risks%"
    assert RiskFilter().where() == ("", [])


# ---------------------------------------------------------------------------------------------
# CSV export
# ---------------------------------------------------------------------------------------------


def test_csv_has_every_column_and_defuses_formulas() -> None:
    plan = MitigationPlan(strategy="Hotfix the tenant filter", owner="rm-li", target_date=T0)
    rows = list(
        csv.reader(
            io.StringIO(
                entries_to_csv(
                    [entry(title='=HYPERLINK("http://x")', mitigation=plan, owner="rm-li")]
                )
            )
        )
    )
    assert tuple(rows[0]) == CSV_COLUMNS
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["title"] == '\'=HYPERLINK("http://x")'
    assert record["level"] == "4"
    assert record["ticket_ids"] == "T-1; T-2; T-3"
    assert record["mitigation_strategy"] == "Hotfix the tenant filter"
    assert record["mitigation_target_date"] == T0.isoformat()
    assert record["treatment"] == ""


# ---------------------------------------------------------------------------------------------
# Information sharing, requests
# ---------------------------------------------------------------------------------------------


def test_support_brief_carries_what_the_protocol_lists() -> None:
    brief = support_brief(entry())
    assert brief.description.startswith("Other customers' invoices visible: Invoice page")
    assert brief.affected_customers == 2
    assert brief.ticket_count == 3
    assert brief.reports_per_day == 6.0  # 3 reports in 12 hours
    assert brief.ticket_ids == ["T-1", "T-2", "T-3"]
    assert brief.customer_impact.level_label == "High"
    assert brief.customer_impact.impact == 5  # level 4 + enterprise segment
    assert brief.customer_impact.customer_segments == ["enterprise"]


def test_assessment_update_maps_onto_the_domain_and_forbids_unknown_fields() -> None:
    update = AssessmentUpdate.model_validate(
        {"likelihood": 3, "mitigation": {"strategy": "Rotate keys", "target_date": T0.isoformat()}}
    )
    assessment = update.to_assessment()
    assert assessment.likelihood == 3
    assert assessment.mitigation == MitigationPlan(strategy="Rotate keys", target_date=T0)
    with pytest.raises(ValidationError, match="status"):
        AssessmentUpdate.model_validate({"status": "closed"})
    with pytest.raises(ValidationError, match="target_date"):
        AssessmentUpdate.model_validate(
            {"mitigation": {"strategy": "x", "target_date": "2026-03-01T00:00:00"}}
        )


# ---------------------------------------------------------------------------------------------
# The register topic
# ---------------------------------------------------------------------------------------------


def test_fold_keeps_the_highest_version_whatever_the_order_and_duplicates() -> None:
    v1, v2, v3 = entry(), entry(version=2, owner="a"), entry(version=3, owner="b")
    other = entry(risk_id="risk-2")
    assert fold_entries([v1, v3, v2, v3, other]) == {"risk-1": v3, "risk-2": other}
    assert fold_entries([]) == {}


def test_registered_event_ids_are_deterministic_per_version() -> None:
    assert registered_event_id("risk-1", 1) == registered_event_id("risk-1", 1)
    assert registered_event_id("risk-1", 1) != registered_event_id("risk-1", 2)
    assert registered_event_id("risk-1", 1) != registered_event_id("risk-2", 1)


# ---------------------------------------------------------------------------------------------
# Escalation signals on entries
# ---------------------------------------------------------------------------------------------


def due(role: Role, reason: EscalationReason = EscalationReason.INITIAL) -> EscalationDue:
    return EscalationDue(
        escalation_id="e", risk_id="risk-1", level=RiskLevel.HIGH, step=3,
        target_role=role, reason=reason, due_at=T0,
    )  # fmt: skip


def ack(role: Role, decision: ReviewDecision | None = None) -> EscalationAcknowledged:
    return EscalationAcknowledged(
        escalation_id="e", risk_id="risk-1", role=role, acknowledged_by="p",
        acknowledged_at=T0, decision=decision,
    )  # fmt: skip


def test_a_notice_to_risk_management_escalates_once() -> None:
    later = T0 + timedelta(days=1)
    escalated = apply_escalation_signal(entry(), due(Role.RISK_MANAGEMENT), later)
    assert (escalated.status, escalated.version, escalated.updated_at) == (
        RiskStatus.ESCALATED,
        2,
        later,
    )
    assert apply_escalation_signal(escalated, due(Role.RISK_MANAGEMENT), later) is escalated
    assert apply_escalation_signal(entry(), due(Role.TEAM_LEAD), later) == entry()


def test_which_early_signals_are_kept() -> None:
    assert signal_matters_once_registered(due(Role.RISK_MANAGEMENT))
    assert not signal_matters_once_registered(
        due(Role.RISK_MANAGEMENT, EscalationReason.WEEKLY_REVIEW)
    )
    assert not signal_matters_once_registered(due(Role.AGENT))
    assert signal_matters_once_registered(ack(Role.SUPPORT_MANAGER, ReviewDecision.CONFIRMED))
    assert not signal_matters_once_registered(
        ack(Role.SUPPORT_MANAGER, ReviewDecision.NOT_CONFIRMED)
    )
    assert not signal_matters_once_registered(ack(Role.TEAM_LEAD))
