"""What a person's notice says, whatever carries it (e-mail, Teams): pure and clock-free.

An ``escalation-due`` event carries the step and its deadlines; the risk's category, counts and
why it was flagged come from its classification (:class:`RiskDetails`, kept on the escalation
row). Deadlines are shown in the recipient's own time zone and, when the roster gives them a
business calendar, said to fall inside or outside their business hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from riskrelay.escalator.calendar import BusinessCalendar
from riskrelay.shared.events import (
    EscalationDue,
    EscalationReason,
    ReviewDecision,
    RiskClassified,
    Role,
)

MAX_WHY_CHARS = 600


@dataclass(frozen=True)
class RiskDetails:
    """The parts of a risk's classification a notice shows; all of it already redacted."""

    category: str | None = None
    ticket_count: int | None = None
    distinct_customers: int | None = None
    summary: str = ""
    indicators: tuple[str, ...] = ()

    @classmethod
    def of(cls, data: RiskClassified) -> RiskDetails:
        return cls(
            category=data.category.value,
            ticket_count=data.ticket_count,
            distinct_customers=data.distinct_customers,
            summary=data.redacted_summary,
            indicators=tuple(indicator.value for indicator in data.indicators),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "ticket_count": self.ticket_count,
            "distinct_customers": self.distinct_customers,
            "summary": self.summary,
            "indicators": list(self.indicators),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any] | None) -> RiskDetails:
        if not raw:
            return cls()
        return cls(
            category=raw.get("category"),
            ticket_count=raw.get("ticket_count"),
            distinct_customers=raw.get("distinct_customers"),
            summary=str(raw.get("summary") or ""),
            indicators=tuple(raw.get("indicators") or ()),
        )


@dataclass(frozen=True)
class LocalDeadline:
    """A deadline as the recipient reads it."""

    instant: datetime
    local: datetime
    text: str
    """``Wed 2 Dec 2026, 17:00 EST``."""
    business_hours: bool | None
    """Whether it falls inside the recipient's business hours (None: no calendar for them)."""
    time_left: str
    """``2 h 5 min left`` or ``overdue by 4 min`` when the notice was made."""


@dataclass(frozen=True)
class NoticeLink:
    label: str
    url: str
    decision: ReviewDecision | None = None
    token: str = ""
    """The signed link itself (a Slack button carries it as its value)."""


@dataclass(frozen=True)
class Notice:
    headline: str
    title: str
    risk_id: str
    escalation_id: str
    level: int
    level_label: str
    category: str
    ticket_count: int | None
    distinct_customers: int | None
    why: str
    indicators: tuple[str, ...]
    role: str
    reason: str
    recipient_name: str
    ack_deadline: LocalDeadline | None
    protocol_deadline: LocalDeadline | None
    missed: str | None
    links: tuple[NoticeLink, ...]
    console_url: str | None
    footer: str


def humanize(value: str) -> str:
    return value.replace("_", " ")


def duration_text(seconds: float) -> str:
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "under a minute"


def reader_time(instant: datetime, zone: ZoneInfo, now: datetime) -> str:
    """``Tue 1 Dec, 14:30 EST``: a moment as someone in ``zone`` reads it, with the year only
    when it is not the current one there (``Fri 1 Jan 2027, 09:00 EST``)."""
    local = instant.astimezone(zone)
    year = "" if local.year == now.astimezone(zone).year else f" {local.year}"
    # "%-d" is glibc-only; build the day without a leading zero by hand.
    return f"{local:%a} {local.day} {local:%b}{year}, {local:%H:%M} {local.tzname()}"


def local_deadline(
    instant: datetime, zone: ZoneInfo, calendar: BusinessCalendar | None, now: datetime
) -> LocalDeadline:
    local = instant.astimezone(zone)
    # "%-d" is glibc-only; build the day without a leading zero by hand.
    text = f"{local:%a} {local.day} {local:%b %Y, %H:%M} {local.tzname()}"
    left = (instant - now).total_seconds()
    return LocalDeadline(
        instant=instant,
        local=local,
        text=text,
        business_hours=_within_hours(calendar, instant) if calendar is not None else None,
        time_left=f"overdue by {duration_text(left)}"
        if left < 0
        else f"{duration_text(left)} left",
    )


def _within_hours(calendar: BusinessCalendar, instant: datetime) -> bool:
    """Open at the deadline, or the deadline is the closing minute of a business day."""
    if calendar.is_open(instant):
        return True
    hours = calendar.hours_on(calendar.local_date(instant))
    return hours is not None and hours[1] == instant


def headline(due: EscalationDue) -> str:
    level = f"Level {int(due.level)} ({due.level.label})"
    match due.reason:
        case EscalationReason.INITIAL:
            return f"{level} risk escalated to {role_name(due.target_role)}"
        case EscalationReason.PRE_BREACH_WARNING:
            return f"{level} risk: acknowledgement due soon"
        case EscalationReason.BREACH:
            return f"{level} risk: acknowledgement overdue"
        case EscalationReason.REMINDER:
            return f"{level} risk still unacknowledged ({reminder_count(due)})"
        case EscalationReason.WEEKLY_REVIEW:
            return f"{level} risk on the Weekly Risk Review agenda"
    raise AssertionError(f"unhandled reason {due.reason}")  # pragma: no cover


def reminder_count(due: EscalationDue) -> str:
    reminder = f"reminder {due.attempt - 1}"
    if not due.missed_reminders or due.missed_since is None:
        return reminder
    plural = "s" if due.missed_reminders > 1 else ""
    return (
        f"{reminder}; {due.missed_reminders} earlier reminder{plural} missed since"
        f" {due.missed_since.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )


def role_name(role: Role) -> str:
    return role.value.replace("_", " ").title()


def build_notice(
    due: EscalationDue,
    details: RiskDetails,
    *,
    recipient_name: str,
    zone: ZoneInfo,
    calendar: BusinessCalendar | None,
    links: tuple[NoticeLink, ...],
    console_url: str | None,
    now: datetime,
) -> Notice:
    missed = None
    if due.missed_reminders and due.missed_since is not None:
        since = local_deadline(due.missed_since, zone, None, now).text
        missed = f"{due.missed_reminders} earlier reminder(s) missed since {since}"
    why = details.summary.strip()
    if len(why) > MAX_WHY_CHARS:
        why = why[: MAX_WHY_CHARS - 1].rstrip() + "…"
    return Notice(
        headline=headline(due),
        title=due.title or due.risk_id,
        risk_id=due.risk_id,
        escalation_id=due.escalation_id,
        level=int(due.level),
        level_label=due.level.label,
        category=humanize(details.category) if details.category else "not recorded",
        ticket_count=details.ticket_count,
        distinct_customers=details.distinct_customers,
        why=why,
        indicators=tuple(humanize(indicator) for indicator in details.indicators),
        role=role_name(due.target_role),
        reason=humanize(due.reason.value),
        recipient_name=recipient_name,
        ack_deadline=(
            local_deadline(due.ack_due_at, zone, calendar, now) if due.ack_due_at else None
        ),
        protocol_deadline=(
            local_deadline(due.timeframe_due_at, zone, calendar, now)
            if due.timeframe_due_at
            else None
        ),
        missed=missed,
        links=links,
        console_url=console_url,
        footer=(
            f"escalation {due.escalation_id} · step {due.step} · plan v{due.plan_version}"
            f" · {due.reason.value}"
        ),
    )


def in_quiet_hours(start: time, end: time, local: time) -> bool:
    if start < end:
        return start <= local < end
    return local >= start or local < end  # over midnight


def quiet_until(start: time, end: time, zone: ZoneInfo, now: datetime) -> datetime | None:
    """When quiet hours that hold ``now`` end (None when ``now`` is not in them)."""
    local = now.astimezone(zone)
    wall = local.time().replace(tzinfo=None)
    if not in_quiet_hours(start, end, wall):
        return None
    day = local.date()
    if start > end and wall >= start:  # the evening part: they end tomorrow morning
        day += timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)
