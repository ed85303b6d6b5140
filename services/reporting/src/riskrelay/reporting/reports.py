"""The Weekly Risk Summary and the Monthly Risk Report as pure functions of query results.

Everything here is deterministic given its arguments (the aggregated rows, the period and the
``now`` the report is generated at): no SQL, no clock, so golden files can pin every number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from riskrelay.reporting.feedback_report import reviewer_judgement
from riskrelay.reporting.model import (
    ChangeItem,
    CountItem,
    CountRow,
    EscalationItem,
    EscalationRow,
    FlaggedBreakdown,
    Methods,
    Mitigation,
    MitigationItem,
    MitigationRow,
    MonthlyInputs,
    MonthlyReport,
    MonthOverMonth,
    NearMisses,
    NearMissItem,
    NearMissRow,
    PeriodCountRow,
    PeriodInfo,
    RecurringIssues,
    RecurringItem,
    RecurringRow,
    ReviewAgenda,
    ReviewDecisionItem,
    ReviewDecisionRow,
    RiskActivity,
    RiskActivityItem,
    RiskActivityRow,
    RiskEntry,
    RiskList,
    RiskListing,
    TrendRow,
    TrendSeries,
    WeekCount,
    WeekInfo,
    WeeklyInputs,
    WeeklyReport,
    WeeklyTrend,
)
from riskrelay.reporting.periods import Coverage, Period, coverage, week_label
from riskrelay.reporting.stats import compare_poisson_rates, poisson_interval, wilson_interval
from riskrelay.shared.events import RiskCategory, RiskLevel

UNCLASSIFIED = "unclassified"
ALL_LEVELS = "All levels"
LEVELS_DESCENDING = [int(level) for level in sorted(RiskLevel, reverse=True)]
SIGNIFICANCE = 0.05

METHODS = Methods(
    weekly_counts=(
        "Weekly counts are Poisson counts with Garwood's exact 95% interval"
        " (chi-square quantiles with 2k and 2k+2 degrees of freedom, halved). Weeks that have"
        " not begun at the report's time, or end before the first event, are not drawn."
    ),
    month_over_month=(
        "Change is the ratio of daily rates (tickets per day, so months of different length compare"
        " fairly), tested with the exact conditional test for two Poisson rates: given both months'"
        " total, this month's count is binomial. The 95% interval is Clopper-Pearson's for that"
        " binomial share, mapped to the rate ratio; the two-sided p-value doubles the smaller"
        f" tail. 'significant' means p < {SIGNIFICANCE}. Rates are over the part of each month"
        " the data cover (from the first event the read model holds, up to the report's time);"
        " a month with no data (before that first event) is 'no data', not zero, and is not"
        " tested."
    ),
    proportions="Breach and recurrence rates carry Wilson's 95% score interval.",
    levels=(
        "A ticket counts once, in the period of its first flag, at its risk's level and category"
        " as known when the report was generated; tickets of no classified risk yet are"
        " 'unclassified'. Weeks are ISO weeks and months calendar months, in UTC."
    ),
)


def level_label(level: int | None) -> str:
    return ALL_LEVELS if level is None else f"{RiskLevel(level).label} (Level {level})"


def category_label(category: str) -> str:
    if category == UNCLASSIFIED:
        return "Unclassified"
    return category.replace("_", " ").capitalize().replace("security privacy", "security & privacy")


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return None
    return round(value, digits)


def _share(part: int, whole: int) -> float | None:
    return _round(part / whole) if whole else None


def _period_info(period: Period, covered: Coverage) -> PeriodInfo:
    return PeriodInfo(
        label=period.label,
        start=period.start,
        end=period.end,
        coverage=covered.status,
        covered_from=covered.covered_from,
        covered_until=covered.covered_until,
        covered_days=round(covered.days, 4),
    )


def _since(data_since: datetime | None) -> str:
    if data_since is None:
        return "the read model holds no events yet"
    return f"the first event the read model holds is at {data_since.isoformat()}"


def coverage_notes(
    period: Period, covered: Coverage, data_since: datetime | None, now: datetime
) -> list[str]:
    """What a reader must know about the period's coverage before reading its figures."""
    if covered.status == "future":
        return [f"{period.label} has not begun at {now.isoformat()}: there is nothing to report."]
    if covered.status == "no_data":
        return [f"No data for {period.label}: {_since(data_since)}."]
    notes = []
    if covered.covered_from is not None and covered.covered_from > period.start:
        notes.append(
            f"Data start within {period.label}: {_since(data_since)}; figures cover"
            f" {covered.days:.1f} of its {period.days} days."
        )
    if now < period.end:
        notes.append(f"{period.label} is not over yet: figures cover it up to {now.isoformat()}.")
    return notes


# ---------------------------------------------------------------------------------------------
# Counts
# ---------------------------------------------------------------------------------------------


def _counts(rows: Iterable[CountRow], dimension: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for row in rows:
        if row.dimension == dimension:
            key = UNCLASSIFIED if row.key is None else row.key
            found[key] = found.get(key, 0) + row.tickets
    return found


def _level_items(counts: dict[str, int], total: int) -> list[CountItem]:
    items = [
        CountItem(
            key=str(level),
            label=level_label(level),
            tickets=counts.get(str(level), 0),
            share=_share(counts.get(str(level), 0), total),
        )
        for level in LEVELS_DESCENDING
    ]
    if counts.get(UNCLASSIFIED):
        items.append(
            CountItem(
                key=UNCLASSIFIED,
                label="Unclassified",
                tickets=counts[UNCLASSIFIED],
                share=_share(counts[UNCLASSIFIED], total),
            )
        )
    return items


def _category_items(counts: dict[str, int], total: int) -> list[CountItem]:
    keys = [category.value for category in RiskCategory]
    keys += sorted(key for key in counts if key not in keys and key != UNCLASSIFIED)
    if counts.get(UNCLASSIFIED):
        keys.append(UNCLASSIFIED)
    return [
        CountItem(
            key=key,
            label=category_label(key),
            tickets=counts.get(key, 0),
            share=_share(counts.get(key, 0), total),
        )
        for key in keys
    ]


def _ranked_items(counts: dict[str, int], total: int) -> list[CountItem]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [CountItem(key=k, label=k, tickets=v, share=_share(v, total)) for k, v in ranked]


def flagged_breakdown(rows: Sequence[CountRow]) -> FlaggedBreakdown:
    total = sum(_counts(rows, "total").values())
    return FlaggedBreakdown(
        total=total,
        by_level=_level_items(_counts(rows, "level"), total),
        by_category=_category_items(_counts(rows, "category"), total),
        by_channel=_ranked_items(_counts(rows, "channel"), total),
        by_product=_ranked_items(_counts(rows, "product"), total),
    )


# ---------------------------------------------------------------------------------------------
# Escalations
# ---------------------------------------------------------------------------------------------


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else _round(seconds / 60.0, 2)


def escalation_item(row: EscalationRow) -> EscalationItem:
    """Breached = acknowledged after the deadline, or not acknowledged and the deadline passed.

    The breach rate is over steps whose outcome is known (deadline passed or acknowledged);
    steps still inside their deadline are ``pending`` and not in the denominator."""
    breached = row.acknowledged_late + row.unacknowledged_overdue
    decided = row.acknowledged_in_time + breached
    interval = wilson_interval(breached, decided)
    return EscalationItem(
        level=row.level,
        label=level_label(row.level),
        steps=row.steps,
        with_deadline=row.with_deadline,
        acknowledged=row.acknowledged,
        acknowledged_in_time=row.acknowledged_in_time,
        acknowledged_late=row.acknowledged_late,
        unacknowledged_overdue=row.unacknowledged_overdue,
        breached=breached,
        pending=row.pending,
        breach_notices=row.breach_notices,
        breach_rate=_share(breached, decided),
        breach_rate_ci_low=_round(interval.low) if interval else None,
        breach_rate_ci_high=_round(interval.high) if interval else None,
        median_ack_minutes=_minutes(row.median_ack_seconds),
        p90_ack_minutes=_minutes(row.p90_ack_seconds),
    )


def _empty_escalation(level: int | None) -> EscalationRow:
    return EscalationRow(level, 0, 0, 0, 0, 0, 0, 0, 0, None, None)


def escalation_items(rows: Sequence[EscalationRow]) -> tuple[list[EscalationItem], EscalationItem]:
    by_level = {row.level: row for row in rows if row.level is not None}
    total = next((row for row in rows if row.level is None), _empty_escalation(None))
    items = [
        escalation_item(by_level.get(level, _empty_escalation(level)))
        for level in LEVELS_DESCENDING
    ]
    return items, escalation_item(total)


# ---------------------------------------------------------------------------------------------
# Risk listings
# ---------------------------------------------------------------------------------------------


def risk_listing(found: RiskList, now: datetime) -> RiskListing:
    items = [
        RiskEntry(
            risk_id=item.risk_id,
            level=item.level,
            label=level_label(item.level),
            category=item.category,
            title=item.title,
            status=item.status or "not in register yet",
            owner=item.owner,
            first_reported_at=item.first_reported_at,
            ticket_count=item.ticket_count,
            tickets_in_period=item.tickets_in_period,
            next_review_at=item.next_review_at,
            review_overdue=item.next_review_at is not None and item.next_review_at < now,
        )
        for item in found.items
    ]
    return RiskListing(total=found.total, shown=len(items), items=items)


def risk_activity(rows: Sequence[RiskActivityRow]) -> RiskActivity:
    by_level = {row.level: row for row in rows}
    items = []
    for level in LEVELS_DESCENDING:
        row = by_level.get(level)
        items.append(
            RiskActivityItem(
                level=level,
                label=level_label(level),
                active=row.active if row else 0,
                new=row.new if row else 0,
                recurring=row.recurring if row else 0,
                returned_after_closure=row.returned_after_closure if row else 0,
            )
        )
    total = RiskActivityItem(
        level=0,
        label=ALL_LEVELS,
        active=sum(i.active for i in items),
        new=sum(i.new for i in items),
        recurring=sum(i.recurring for i in items),
        returned_after_closure=sum(i.returned_after_closure for i in items),
    )
    return RiskActivity(by_level=items, total=total)


# ---------------------------------------------------------------------------------------------
# The Weekly Risk Review's decisions
# ---------------------------------------------------------------------------------------------

AGENDA_LABELS = {
    "level_1_2": "Level 1-2 items",
    "level_3_awaiting_review": "Level 3 items awaiting review",
    "overdue_review": "Overdue reviews",
}
REVIEW_DECISION_LABELS = {
    "monitored": "Reviewed: keep monitoring",
    "confirmed": "Level 3 confirmed: Risk Management is told",
    "not_confirmed": "Level 3 not confirmed: monitored at the weekly review",
    "level_changed": "Level changed",
    "reviewed": "Register review recorded",
    "moved": "Lifecycle moved",
}


def review_decision_items(rows: Sequence[ReviewDecisionRow]) -> list[ReviewDecisionItem]:
    """The recorded decisions in the order they were taken."""
    return [
        ReviewDecisionItem(
            risk_id=row.risk_id,
            title=row.title,
            level=row.level,
            agenda=row.agenda,
            decision=row.decision,
            label=REVIEW_DECISION_LABELS.get(row.decision, row.decision),
            detail=row.detail,
            note=row.note,
            decided_by=row.decided_by,
            decided_by_name=row.decided_by_name,
            decided_at=row.decided_at,
        )
        for row in sorted(rows, key=lambda r: (r.decided_at, r.decision_id))
    ]


# ---------------------------------------------------------------------------------------------
# Weekly Risk Summary
# ---------------------------------------------------------------------------------------------


def weekly_report(inputs: WeeklyInputs, period: Period, now: datetime) -> WeeklyReport:
    """The protocol's Weekly Risk Summary for one ISO week."""
    flagged = flagged_breakdown(inputs.counts)
    activity = risk_activity(inputs.activity)
    escalations, escalations_total = escalation_items(inputs.escalations)
    covered = coverage(period, inputs.data_since, now)
    empty = flagged.total == 0 and activity.total.active == 0 and escalations_total.steps == 0
    notes = []
    if empty and covered.covered:
        notes.append(
            f"No risk-flagged tickets, risk activity or escalations in {period.label}:"
            " this summary is empty."
        )
    notes.extend(coverage_notes(period, covered, inputs.data_since, now))
    unclassified = next((i.tickets for i in flagged.by_level if i.key == UNCLASSIFIED), 0)
    if unclassified:
        notes.append(f"{unclassified} flagged ticket(s) belong to no classified risk yet.")
    return WeeklyReport(
        title=f"Weekly Risk Summary {period.label}",
        period=_period_info(period, covered),
        generated_at=now,
        empty=empty,
        notes=notes,
        flagged_tickets=flagged,
        risks=activity,
        escalations=escalations,
        escalations_total=escalations_total,
        open_risks=risk_listing(inputs.open_risks, now),
        weekly_review_agenda=ReviewAgenda(
            level_1_2=risk_listing(inputs.agenda_low, now),
            level_3_awaiting_review=risk_listing(inputs.agenda_level3, now),
            overdue_reviews=risk_listing(inputs.agenda_overdue, now),
        ),
        review_decisions=review_decision_items(inputs.review_decisions),
    )


# ---------------------------------------------------------------------------------------------
# Monthly Risk Report
# ---------------------------------------------------------------------------------------------


def month_weeks(period: Period, data_since: datetime | None, now: datetime) -> list[WeekInfo]:
    """ISO weeks overlapping the month, with how many of their days fall inside it and how much
    of that part the data cover."""
    weeks = []
    monday = period.start - timedelta(days=period.start.weekday())
    while monday < period.end:
        label = week_label(monday)
        inside = Period(
            label, max(monday, period.start), min(monday + timedelta(days=7), period.end)
        )
        weeks.append(
            WeekInfo(
                week=label,
                start=monday,
                days_in_month=inside.days,
                coverage=coverage(inside, data_since, now).status,
            )
        )
        monday += timedelta(days=7)
    return weeks


def _drawn(week: WeekInfo) -> bool:
    return week.coverage in ("complete", "partial")


def _trend_series(
    rows: Sequence[TrendRow], dimension: str, keys: list[tuple[str, str]], weeks: list[WeekInfo]
) -> list[TrendSeries]:
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        if row.dimension == dimension:
            key = UNCLASSIFIED if row.key is None else row.key
            label = week_label(row.week_start)
            counts[(key, label)] = counts.get((key, label), 0) + row.tickets
    present = {key for key, _ in counts}
    series = []
    for key, label in keys + [(k, k) for k in sorted(present - {k for k, _ in keys})]:
        if key == UNCLASSIFIED and key not in present:
            continue
        points = []
        for week in weeks:
            if not _drawn(week):
                points.append(
                    WeekCount(
                        week=week.week,
                        coverage=week.coverage,
                        tickets=None,
                        ci_low=None,
                        ci_high=None,
                    )
                )
                continue
            tickets = counts.get((key, week.week), 0)
            interval = poisson_interval(tickets)
            points.append(
                WeekCount(
                    week=week.week,
                    coverage=week.coverage,
                    tickets=tickets,
                    ci_low=round(interval.low, 3),
                    ci_high=round(interval.high, 3),
                )
            )
        drawn = [p.tickets for p in points if p.tickets is not None]
        total = sum(drawn) if drawn else None
        series.append(TrendSeries(key=key, label=label, total=total, weeks=points))
    return series


def _level_keys() -> list[tuple[str, str]]:
    return [(str(level), level_label(level)) for level in LEVELS_DESCENDING] + [
        (UNCLASSIFIED, "Unclassified")
    ]


def _category_keys() -> list[tuple[str, str]]:
    return [(c.value, category_label(c.value)) for c in RiskCategory] + [
        (UNCLASSIFIED, "Unclassified")
    ]


def _per_day(count: int | None, days: float) -> float | None:
    return None if count is None else round(count / days, 4)


def change_item(
    key: str,
    label: str,
    current: int | None,
    previous: int | None,
    current_days: float,
    previous_days: float,
    no_data: str | None = None,
) -> ChangeItem:
    """Daily rates over the covered days of each month, tested when both months have data.

    ``None`` for a count means the month has no data (``no_data`` says which and why): the
    other month's figures are still shown, but nothing is compared or tested."""
    if current is None or previous is None:
        return ChangeItem(
            key=key,
            label=label,
            current=current,
            previous=previous,
            current_per_day=_per_day(current, current_days),
            previous_per_day=_per_day(previous, previous_days),
            tested=False,
            note=no_data or "no data: not tested",
            change_pct=None,
            rate_ratio=None,
            ci_low=None,
            ci_high=None,
            p_value=None,
            significant=False,
        )
    comparison = compare_poisson_rates(current, current_days, previous, previous_days)
    current_rate = current / current_days
    previous_rate = previous / previous_days
    change = None if previous == 0 else (current_rate - previous_rate) / previous_rate * 100.0
    interval = comparison.interval
    return ChangeItem(
        key=key,
        label=label,
        current=current,
        previous=previous,
        current_per_day=round(current_rate, 4),
        previous_per_day=round(previous_rate, 4),
        tested=comparison.p_value is not None,
        note=None if comparison.p_value is not None else "no tickets in either month",
        change_pct=_round(change, 2),
        rate_ratio=_round(comparison.ratio),
        ci_low=_round(interval.low) if interval else None,
        ci_high=_round(interval.high) if interval else None,
        p_value=_round(comparison.p_value, 6),
        significant=comparison.p_value is not None and comparison.p_value < SIGNIFICANCE,
    )


def _period_counts(rows: Sequence[PeriodCountRow], dimension: str) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        if row.dimension == dimension:
            key = UNCLASSIFIED if row.key is None else row.key
            counts[(row.period, key)] = counts.get((row.period, key), 0) + row.tickets
    return counts


def month_over_month(
    rows: Sequence[PeriodCountRow],
    period: Period,
    previous: Period,
    current_coverage: Coverage,
    previous_coverage: Coverage,
) -> MonthOverMonth:
    """Each group's change; a month without data gives ``None`` counts and no test."""
    missing = [
        f"{p.label} ({'not begun' if c.status == 'future' else 'no data'})"
        for p, c in ((period, current_coverage), (previous, previous_coverage))
        if not c.covered
    ]
    no_data = f"{' and '.join(missing)}: not tested" if missing else None

    def change(key: str, label: str, current: int, before: int) -> ChangeItem:
        return change_item(
            key,
            label,
            current if current_coverage.covered else None,
            before if previous_coverage.covered else None,
            current_coverage.days,
            previous_coverage.days,
            no_data,
        )

    def items(dimension: str, keys: list[tuple[str, str]]) -> list[ChangeItem]:
        counts = _period_counts(rows, dimension)
        seen = {key for _, key in counts}
        found = []
        for key, label in keys + [(k, k) for k in sorted(seen - {k for k, _ in keys})]:
            if key == UNCLASSIFIED and key not in seen:
                continue
            found.append(
                change(
                    key, label, counts.get(("current", key), 0), counts.get(("previous", key), 0)
                )
            )
        return found

    totals = _period_counts(rows, "total")
    total = change(
        "total",
        "All flagged tickets",
        sum(v for (p, _), v in totals.items() if p == "current"),
        sum(v for (p, _), v in totals.items() if p == "previous"),
    )
    return MonthOverMonth(
        total=total,
        by_level=items("level", _level_keys()),
        by_category=items("category", _category_keys()),
    )


def _days(seconds: float | None) -> float | None:
    return None if seconds is None else _round(seconds / 86_400.0, 2)


def mitigation_item(row: MitigationRow) -> MitigationItem:
    interval = wilson_interval(row.recurred, row.mitigated)
    return MitigationItem(
        level=row.level,
        label=level_label(row.level),
        mitigated=row.mitigated,
        median_days_to_mitigate=_days(row.median_seconds),
        p90_days_to_mitigate=_days(row.p90_seconds),
        recurred=row.recurred,
        recurrence_rate=_share(row.recurred, row.mitigated),
        recurrence_ci_low=_round(interval.low) if interval else None,
        recurrence_ci_high=_round(interval.high) if interval else None,
    )


def mitigation(rows: Sequence[MitigationRow]) -> Mitigation:
    by_level = {row.level: row for row in rows if row.level is not None}
    total = next((row for row in rows if row.level is None), MitigationRow(None, 0, None, None, 0))
    levels = [level for level in LEVELS_DESCENDING if level >= RiskLevel.MEDIUM]
    items = [
        mitigation_item(by_level.get(level, MitigationRow(level, 0, None, None, 0)))
        for level in levels
    ]
    return Mitigation(by_level=items, total=mitigation_item(total))


def recurring_issues(total: int, rows: Sequence[RecurringRow]) -> RecurringIssues:
    items = [
        RecurringItem(
            risk_id=row.risk_id,
            title=row.title,
            level=row.level,
            label=level_label(row.level),
            category=row.category,
            cluster_id=row.cluster_id,
            closed_at=row.closed_at,
            returned_at=row.returned_at,
            days_closed=round((row.returned_at - row.closed_at).total_seconds() / 86_400.0, 2),
            reopened=row.reopened,
            tickets_after_closure=row.tickets_after_closure,
        )
        for row in rows
    ]
    return RecurringIssues(total=total, shown=len(items), items=items)


def near_misses(
    total: int, rows: Sequence[NearMissRow], categories: Sequence[CountRow]
) -> NearMisses:
    counts = _counts(categories, "category")
    items = [
        NearMissItem(
            risk_id=row.risk_id,
            title=row.title,
            category=row.category,
            initial_level=row.initial_level,
            upgraded_level=row.upgraded_level,
            first_classified_at=row.first_classified_at,
            upgraded_at=row.upgraded_at,
            hours_to_upgrade=round(
                (row.upgraded_at - row.first_classified_at).total_seconds() / 3600.0, 2
            ),
            overridden=row.overridden,
        )
        for row in rows
    ]
    by_category = [item for item in _category_items(counts, total) if item.tickets]
    return NearMisses(total=total, shown=len(items), by_category=by_category, items=items)


def monthly_report(
    inputs: MonthlyInputs, period: Period, previous: Period, now: datetime
) -> MonthlyReport:
    """The protocol's Monthly Risk Report: trends, recurring issues, mitigation effectiveness,
    escalation timeliness and near misses for one calendar month."""
    covered = coverage(period, inputs.data_since, now)
    previous_covered = coverage(previous, inputs.data_since, now)
    weeks = month_weeks(period, inputs.data_since, now)
    change = month_over_month(inputs.period_counts, period, previous, covered, previous_covered)
    escalations, escalations_total = escalation_items(inputs.escalations)
    mitigated = mitigation(inputs.mitigation)
    empty = (
        not change.total.current
        and inputs.new_risks == 0
        and inputs.recurring_total == 0
        and mitigated.total.mitigated == 0
        and escalations_total.steps == 0
        and inputs.near_miss_total == 0
    )
    notes = []
    if empty and covered.covered:
        notes.append(
            f"No risk-flagged tickets, risks, escalations or register changes in {period.label}:"
            " this report is empty."
        )
    notes.extend(coverage_notes(period, covered, inputs.data_since, now))
    if covered.covered and previous_covered.status == "no_data":
        notes.append(
            f"No data for {previous.label}, the month compared with: {_since(inputs.data_since)}."
            " Its counts are unknown, not zero, so nothing is compared or tested."
        )
    elif (
        previous_covered.covered_from is not None and previous_covered.covered_from > previous.start
    ):
        notes.append(
            f"Data start within {previous.label}: its rate is over its {previous_covered.days:.1f}"
            f" covered days ({_since(inputs.data_since)})."
        )
    if change.total.previous == 0 and change.total.current:
        notes.append(f"{previous.label} had no flagged tickets: no month-over-month ratio.")
    if mitigated.total.mitigated:
        notes.append(
            "Recurrence after mitigation counts reopenings and new tickets up to the report's"
            " generation time; risks mitigated late in the month had less time to recur."
        )
    return MonthlyReport(
        title=f"Monthly Risk Report {period.label}",
        period=_period_info(period, covered),
        previous_period=_period_info(previous, previous_covered),
        generated_at=now,
        empty=empty,
        notes=notes,
        methods=METHODS,
        flagged_tickets=change.total.current,
        new_risks=inputs.new_risks,
        weekly_trend=WeeklyTrend(
            weeks=weeks,
            by_level=_trend_series(inputs.trend, "level", _level_keys(), weeks),
            by_category=_trend_series(inputs.trend, "category", _category_keys(), weeks),
        ),
        month_over_month=change,
        recurring_issues=recurring_issues(inputs.recurring_total, inputs.recurring),
        mitigation_effectiveness=mitigated,
        escalation_timeliness=escalations,
        escalation_timeliness_total=escalations_total,
        near_misses=near_misses(
            inputs.near_miss_total, inputs.near_misses, inputs.near_miss_categories
        ),
        reviewer_judgement=reviewer_judgement(inputs.feedback) if inputs.feedback else None,
    )
