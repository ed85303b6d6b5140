"""The escalator's Prometheus metrics (names agreed across services, see the README)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from riskrelay.shared.events import RiskLevel

_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Acknowledgement times span minutes (Level 5) to days (Level 3 reviews, weekly reviews).
_ACK_BUCKETS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 172800)


@dataclass
class EscalatorMetrics:
    registry: CollectorRegistry
    time_to_ack: Histogram = field(init=False)
    overdue: Gauge = field(init=False)
    timer_lag: Histogram = field(init=False)
    breaches: Counter = field(init=False)
    fired: Counter = field(init=False)
    reminders_skipped: Counter = field(init=False)
    pending_timers: Gauge = field(init=False)
    deliveries: Counter = field(init=False)

    def __post_init__(self) -> None:
        self.time_to_ack = Histogram(
            "riskrelay_escalation_time_to_ack_seconds",
            "Time from a step's notification to its accepted acknowledgement.",
            ["level", "role"],
            registry=self.registry,
            buckets=_ACK_BUCKETS,
        )
        self.overdue = Gauge(
            "riskrelay_escalations_overdue",
            "Open escalation steps past their acknowledgement deadline.",
            ["level"],
            registry=self.registry,
        )
        self.timer_lag = Histogram(
            "riskrelay_escalation_timer_lag_seconds",
            "Fire time minus due time of each fired timer.",
            registry=self.registry,
            buckets=_LAG_BUCKETS,
        )
        self.breaches = Counter(
            "riskrelay_escalation_breaches_total",
            "Acknowledgement deadlines missed (one per step).",
            ["level"],
            registry=self.registry,
        )
        self.fired = Counter(
            "riskrelay_escalation_fired_total",
            "escalation-due events emitted, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.reminders_skipped = Counter(
            "riskrelay_escalation_reminders_skipped_total",
            "Overdue reminders not sent: the catch-up rule fired their series' latest instead.",
            ["level"],
            registry=self.registry,
        )
        self.pending_timers = Gauge(
            "riskrelay_escalation_pending_timers",
            "Timers waiting to fire.",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "riskrelay_notification_deliveries_total",
            "Notification delivery attempts by channel and outcome (delivered, retry, failed).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        for level in RiskLevel:
            self.overdue.labels(str(int(level))).set(0)
