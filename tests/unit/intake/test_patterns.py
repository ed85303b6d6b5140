"""Unusual patterns: EWMA baseline of hourly counts with a Poisson tail test, by event time."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from riskrelay.intake.patterns import (
    RateBaselines,
    RateConfig,
    RateObservation,
    observe_ticket,
    poisson_tail,
    rate_key,
)
from riskrelay.shared.events import Indicator

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)


def feed_hours(
    baselines: RateBaselines,
    per_hour: int,
    hours: int,
    *,
    start: datetime = T0,
    product: str = "App",
    channel: str = "email",
    config: RateConfig | None = None,
) -> list[RateObservation]:
    observations = []
    for hour in range(hours):
        for n in range(per_hour):
            moment = start + timedelta(hours=hour, minutes=n * 60 / max(per_hour, 1))
            observations.append(
                observe_ticket(
                    baselines,
                    product=product,
                    channel=channel,
                    occurred_at=moment,
                    config=config or RateConfig(),
                )
            )
    return observations


def burst(
    baselines: RateBaselines, count: int, at: datetime, config: RateConfig | None = None
) -> list[RateObservation]:
    return [
        observe_ticket(
            baselines,
            product="App",
            channel="email",
            occurred_at=at + timedelta(seconds=i),
            config=config or RateConfig(),
        )
        for i in range(count)
    ]


def test_poisson_tail_matches_the_closed_form() -> None:
    mean = 2.0
    expected = 1 - sum(math.exp(-mean) * mean**k / math.factorial(k) for k in range(5))
    assert poisson_tail(5, mean) == pytest.approx(expected)
    assert poisson_tail(0, mean) == 1.0


def test_steady_traffic_is_not_unusual() -> None:
    baselines = RateBaselines()
    observations = feed_hours(baselines, per_hour=3, hours=72)
    assert not any(o.unusual for o in observations)
    state = baselines.keys[rate_key("App", "email")]
    assert state.mean == pytest.approx(3.0)
    assert state.hours_observed == 71


def test_a_burst_after_enough_history_is_unusual() -> None:
    baselines = RateBaselines()
    feed_hours(baselines, per_hour=2, hours=48)
    observations = burst(baselines, 15, T0 + timedelta(hours=48, minutes=5))
    flagged = [o for o in observations if o.unusual]
    assert flagged, "a 15-ticket hour against a baseline of 2/h must be unusual"
    first = flagged[0]
    # Poisson(2): P(X >= 8) ~ 0.0011, P(X >= 9) ~ 0.0002 -> the 9th ticket is the first flagged.
    assert first.count_this_hour == 9
    assert all(o.unusual for o in observations[8:])
    assert not any(o.unusual for o in observations[:8])
    detection = first.detection()
    assert detection is not None
    assert detection.indicator is Indicator.UNUSUAL_PATTERN
    assert "9 tickets this hour" in detection.evidence


def test_no_alarm_without_minimum_history() -> None:
    baselines = RateBaselines()
    feed_hours(baselines, per_hour=1, hours=5)
    observations = burst(baselines, 40, T0 + timedelta(hours=5))
    assert not any(o.unusual for o in observations)


def test_minimum_count_guards_quiet_keys() -> None:
    config = RateConfig(min_history_hours=2, min_count=5)
    baselines = RateBaselines()
    observe_ticket(baselines, product="App", channel="web", occurred_at=T0, config=config)
    # Two days of silence: baseline is ~0, floored at min_rate.
    later = T0 + timedelta(days=2)
    observations = [
        observe_ticket(
            baselines,
            product="App",
            channel="web",
            occurred_at=later + timedelta(minutes=i),
            config=config,
        )
        for i in range(6)
    ]
    assert [o.unusual for o in observations] == [False, False, False, False, True, True]


def test_keys_are_separate_per_product_and_channel() -> None:
    baselines = RateBaselines()
    feed_hours(baselines, per_hour=2, hours=30, channel="email")
    feed_hours(baselines, per_hour=20, hours=30, channel="chat")
    email_burst = burst(baselines, 5, T0 + timedelta(hours=30))
    assert not any(o.unusual for o in email_burst)
    assert set(baselines.keys) == {rate_key("App", "email"), rate_key("App", "chat")}


def test_late_events_neither_count_nor_alarm() -> None:
    baselines = RateBaselines()
    feed_hours(baselines, per_hour=2, hours=30)
    state = baselines.keys[rate_key("App", "email")]
    before = state.model_dump()
    late = observe_ticket(
        baselines, product="App", channel="email", occurred_at=T0 + timedelta(hours=3)
    )
    assert late.late
    assert not late.unusual
    assert state.model_dump() == before


def test_empty_hours_decay_the_baseline() -> None:
    config = RateConfig(ewma_alpha=0.5)
    baselines = RateBaselines()
    feed_hours(baselines, per_hour=4, hours=3, config=config)
    observe_ticket(
        baselines,
        product="App",
        channel="email",
        occurred_at=T0 + timedelta(hours=6),
        config=config,
    )
    state = baselines.keys[rate_key("App", "email")]
    # Hours 0-2 had 4 each (mean 4), then hours 3-5 were empty: 4 * 0.5**3.
    assert state.mean == pytest.approx(0.5)
    assert state.hours_observed == 6


def test_state_is_json_serializable_and_resumes() -> None:
    live = RateBaselines()
    feed_hours(live, per_hour=2, hours=30)
    restored = RateBaselines.model_validate(json.loads(json.dumps(live.model_dump(mode="json"))))
    at = T0 + timedelta(hours=30, minutes=1)
    assert [o.unusual for o in burst(live, 12, at)] == [o.unusual for o in burst(restored, 12, at)]
