"""What the store's queries return (inputs) and what the reports are (outputs).

Inputs are small frozen dataclasses, already aggregated by SQL; outputs are pydantic models so
the JSON format is simply their serialization and the HTML, Markdown and CSV renderers read the
same objects (one set of numbers, four formats).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

# ---------------------------------------------------------------------------------------------
# Query results
# ---------------------------------------------------------------------------------------------

Dimension = Literal["level", "category", "channel", "product", "total"]


@dataclass(frozen=True)
class CountRow:
    """Flagged tickets in one group; ``key`` is None for tickets of no known risk (yet)."""

    dimension: Dimension
    key: str | None
    tickets: int


@dataclass(frozen=True)
class RiskActivityRow:
    """Risks with activity in the period, per current level."""

    level: int
    active: int
    new: int
    recurring: int
    returned_after_closure: int


@dataclass(frozen=True)
class EscalationRow:
    """Escalation steps first due in the period, per level (``level`` None: all levels)."""

    level: int | None
    steps: int
    with_deadline: int
    acknowledged: int
    acknowledged_in_time: int
    acknowledged_late: int
    unacknowledged_overdue: int
    pending: int
    breach_notices: int
    median_ack_seconds: float | None
    p90_ack_seconds: float | None


@dataclass(frozen=True)
class RiskItem:
    risk_id: str
    level: int
    category: str
    title: str
    status: str | None
    owner: str | None
    first_reported_at: datetime
    ticket_count: int
    tickets_in_period: int = 0
    next_review_at: datetime | None = None


@dataclass(frozen=True)
class RiskList:
    total: int
    items: list[RiskItem] = field(default_factory=list)


@dataclass(frozen=True)
class WeeklyInputs:
    counts: list[CountRow]
    activity: list[RiskActivityRow]
    escalations: list[EscalationRow]
    open_risks: RiskList
    agenda_low: RiskList
    agenda_level3: RiskList
    data_since: datetime | None
    """Time of the first event the read model holds (None: it holds none)."""
    agenda_overdue: RiskList = field(default_factory=lambda: RiskList(0))
    review_decisions: list[ReviewDecisionRow] = field(default_factory=list)


@dataclass(frozen=True)
class ReviewDecisionRow:
    """One decision the Weekly Risk Review took (through the owning service) and recorded."""

    decision_id: str
    risk_id: str
    title: str
    level: int | None
    agenda: str
    decision: str
    detail: str | None
    note: str | None
    decided_by: str
    decided_by_name: str
    decided_at: datetime


@dataclass(frozen=True)
class TrendRow:
    week_start: datetime
    dimension: Literal["level", "category"]
    key: str | None
    tickets: int


@dataclass(frozen=True)
class PeriodCountRow:
    period: Literal["current", "previous"]
    dimension: Literal["level", "category", "total"]
    key: str | None
    tickets: int


@dataclass(frozen=True)
class RecurringRow:
    risk_id: str
    title: str
    level: int
    category: str
    cluster_id: str | None
    closed_at: datetime
    returned_at: datetime
    reopened: bool
    tickets_after_closure: int


@dataclass(frozen=True)
class MitigationRow:
    """Risks whose mitigation completed in the period (``level`` None: all levels)."""

    level: int | None
    mitigated: int
    median_seconds: float | None
    p90_seconds: float | None
    recurred: int


@dataclass(frozen=True)
class NearMissRow:
    risk_id: str
    title: str
    category: str
    initial_level: int
    upgraded_level: int
    first_classified_at: datetime
    upgraded_at: datetime
    overridden: bool


@dataclass(frozen=True)
class MonthlyInputs:
    trend: list[TrendRow]
    period_counts: list[PeriodCountRow]
    new_risks: int
    recurring_total: int
    recurring: list[RecurringRow]
    mitigation: list[MitigationRow]
    escalations: list[EscalationRow]
    near_miss_total: int
    near_misses: list[NearMissRow]
    near_miss_categories: list[CountRow]
    data_since: datetime | None
    """Time of the first event the read model holds (None: it holds none)."""
    feedback: FeedbackInputs | None = None
    """People's feedback on the month's flags (None: not read, as in reports built before)."""


@dataclass(frozen=True)
class MissedRiskRow:
    ticket_id: str
    indicator: str | None
    reported_at: datetime
    role: str


@dataclass(frozen=True)
class FeedbackInputs:
    """Reviewers' feedback: on the tickets first flagged in the month (marked "not a risk" on
    the ticket or its whole risk, or given any feedback), and what was said during the month."""

    flagged: int
    reviewed: int
    not_a_risk: int
    wrong_level: int
    level_too_high: int
    level_too_low: int
    missed_total: int
    missed: list[MissedRiskRow]


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------


class Output(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Coverage = Literal["complete", "partial", "no_data", "future"]


class PeriodInfo(Output):
    """A period and the part of it the read model has data for (see ``periods.coverage``)."""

    label: str
    start: datetime
    end: datetime
    timezone: Literal["UTC"] = "UTC"
    coverage: Coverage
    covered_from: datetime | None
    covered_until: datetime | None
    covered_days: float


class CountItem(Output):
    key: str
    label: str
    tickets: int
    share: float | None


class FlaggedBreakdown(Output):
    total: int
    by_level: list[CountItem]
    by_category: list[CountItem]
    by_channel: list[CountItem]
    by_product: list[CountItem]


class RiskActivityItem(Output):
    level: int
    label: str
    active: int
    new: int
    recurring: int
    returned_after_closure: int


class RiskActivity(Output):
    by_level: list[RiskActivityItem]
    total: RiskActivityItem


class EscalationItem(Output):
    level: int | None
    label: str
    steps: int
    with_deadline: int
    acknowledged: int
    acknowledged_in_time: int
    acknowledged_late: int
    unacknowledged_overdue: int
    breached: int
    pending: int
    breach_notices: int
    breach_rate: float | None
    breach_rate_ci_low: float | None
    breach_rate_ci_high: float | None
    median_ack_minutes: float | None
    p90_ack_minutes: float | None


class RiskEntry(Output):
    risk_id: str
    level: int
    label: str
    category: str
    title: str
    status: str
    owner: str | None
    first_reported_at: datetime
    ticket_count: int
    tickets_in_period: int
    next_review_at: datetime | None
    review_overdue: bool


class RiskListing(Output):
    total: int
    shown: int
    items: list[RiskEntry]


class ReviewAgenda(Output):
    level_1_2: RiskListing
    level_3_awaiting_review: RiskListing
    overdue_reviews: RiskListing


class ReviewDecisionItem(Output):
    """What the Weekly Risk Review decided about one item, by whom and when."""

    risk_id: str
    title: str
    level: int | None
    agenda: str
    decision: str
    label: str
    detail: str | None
    note: str | None
    decided_by: str
    decided_by_name: str
    decided_at: datetime


class WeeklyReport(Output):
    report: Literal["weekly_risk_summary"] = "weekly_risk_summary"
    title: str
    period: PeriodInfo
    generated_at: datetime
    empty: bool
    notes: list[str]
    flagged_tickets: FlaggedBreakdown
    risks: RiskActivity
    escalations: list[EscalationItem]
    escalations_total: EscalationItem
    open_risks: RiskListing
    weekly_review_agenda: ReviewAgenda
    review_decisions: list[ReviewDecisionItem]


class WeekInfo(Output):
    week: str
    start: datetime
    days_in_month: int
    coverage: Coverage


class WeekCount(Output):
    """Tickets of one week; ``None`` (not drawn) for a week in the future or with no data."""

    week: str
    coverage: Coverage
    tickets: int | None
    ci_low: float | None
    ci_high: float | None


class TrendSeries(Output):
    key: str
    label: str
    total: int | None
    weeks: list[WeekCount]


class WeeklyTrend(Output):
    weeks: list[WeekInfo]
    by_level: list[TrendSeries]
    by_category: list[TrendSeries]


class ChangeItem(Output):
    """This month against the previous one; a month without data has ``None`` counts and rates
    and no test is run (``tested`` false, ``note`` says why)."""

    key: str
    label: str
    current: int | None
    previous: int | None
    current_per_day: float | None
    previous_per_day: float | None
    tested: bool
    note: str | None
    change_pct: float | None
    rate_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool


class MonthOverMonth(Output):
    total: ChangeItem
    by_level: list[ChangeItem]
    by_category: list[ChangeItem]


class RecurringItem(Output):
    risk_id: str
    title: str
    level: int
    label: str
    category: str
    cluster_id: str | None
    closed_at: datetime
    returned_at: datetime
    days_closed: float
    reopened: bool
    tickets_after_closure: int


class RecurringIssues(Output):
    total: int
    shown: int
    items: list[RecurringItem]


class MitigationItem(Output):
    level: int | None
    label: str
    mitigated: int
    median_days_to_mitigate: float | None
    p90_days_to_mitigate: float | None
    recurred: int
    recurrence_rate: float | None
    recurrence_ci_low: float | None
    recurrence_ci_high: float | None


class Mitigation(Output):
    by_level: list[MitigationItem]
    total: MitigationItem


class NearMissItem(Output):
    risk_id: str
    title: str
    category: str
    initial_level: int
    upgraded_level: int
    first_classified_at: datetime
    upgraded_at: datetime
    hours_to_upgrade: float
    overridden: bool


class NearMisses(Output):
    total: int
    shown: int
    by_category: list[CountItem]
    items: list[NearMissItem]


class Methods(Output):
    weekly_counts: str
    month_over_month: str
    proportions: str
    levels: str


class MissedRiskItem(Output):
    ticket_id: str
    indicator: str | None
    reported_at: datetime
    role: str


class ReviewerJudgement(Output):
    """Precision and misses as the people who act on risks judged them (their feedback)."""

    flagged_tickets: int
    reviewed_tickets: int
    marked_not_a_risk: int
    precision: float | None
    precision_ci_low: float | None
    precision_ci_high: float | None
    wrong_level: int
    level_too_high: int
    level_too_low: int
    missed_risks: int
    missed_share: float | None
    shown: int
    missed: list[MissedRiskItem]
    method: str


class MonthlyReport(Output):
    report: Literal["monthly_risk_report"] = "monthly_risk_report"
    title: str
    period: PeriodInfo
    previous_period: PeriodInfo
    generated_at: datetime
    empty: bool
    notes: list[str]
    methods: Methods
    flagged_tickets: int | None
    new_risks: int
    weekly_trend: WeeklyTrend
    month_over_month: MonthOverMonth
    recurring_issues: RecurringIssues
    mitigation_effectiveness: Mitigation
    escalation_timeliness: list[EscalationItem]
    escalation_timeliness_total: EscalationItem
    near_misses: NearMisses
    reviewer_judgement: ReviewerJudgement | None = None
