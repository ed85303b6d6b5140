"""Unusual patterns: ticket rates per (product, channel) that depart from their own baseline.

Model
    Tickets are counted per (product, channel) in hourly buckets of *event* time. When a bucket
    closes, its count updates an exponentially weighted moving average (EWMA) of the hourly rate,
    ``mean <- alpha * count + (1 - alpha) * mean``; hours with no ticket at all count as zeros
    (folded in closed form, ``mean * (1 - alpha) ** k``), so a quiet week lowers the baseline.
    ``alpha`` defaults to 0.05, a memory of roughly 20 hours.

Test
    Within the current hour, the count so far is compared with a Poisson distribution whose mean
    is the baseline (floored at ``min_rate`` so a near-silent key cannot alarm on its second
    ticket): the tail probability ``P(X >= count)`` is the regularized lower incomplete gamma
    function ``gammainc(count, mean)``. The ticket that brings the count to a level with tail
    probability below ``alpha_tail`` (default 0.001), and every later ticket of that hour, gets
    the UNUSUAL_PATTERN indicator. Because the baseline is fixed for the hour, the smallest such
    count is computed once when the bucket opens; each ticket then costs one comparison.

Guards
    No alarm before ``min_history_hours`` (default 24) of baseline exist for the key, nor below
    ``min_count`` tickets in the hour (default 5): a burst of three is not a pattern. Events older
    than the current bucket (late arrivals) are counted nowhere and never alarm; the baseline moves
    forward only. Hour-of-day and weekday seasonality are not modelled: the EWMA adapts within a
    day, and the conservative tail probability absorbs ordinary daily swings.

State
    :class:`RateBaselines` holds one :class:`RateState` per key, JSON-serializable, mutated
    explicitly by :func:`observe_ticket`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from scipy.special import gammainc  # type: ignore[import-untyped]

from riskrelay.shared.events import Detection, Indicator

_HOUR = timedelta(hours=1)
_MAX_ALERT_COUNT = 1_000_000


class RateConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ewma_alpha: float = Field(default=0.05, gt=0.0, le=1.0, description="EWMA smoothing factor.")
    alpha_tail: float = Field(default=1e-3, gt=0.0, lt=1.0, description="Poisson tail cut-off.")
    min_history_hours: int = Field(default=24, ge=1, description="Baseline hours before alarms.")
    min_count: int = Field(default=5, ge=1, description="Fewest tickets in an hour to alarm.")
    min_rate: float = Field(default=0.5, gt=0.0, description="Floor of the baseline rate.")


DEFAULT_RATE_CONFIG = RateConfig()


class RateState(BaseModel):
    """Baseline of one (product, channel)."""

    model_config = ConfigDict(extra="forbid")

    bucket_start: AwareDatetime = Field(description="Start of the current hour (event time).")
    bucket_count: int = Field(default=0, ge=0)
    mean: float = Field(default=0.0, ge=0.0, description="EWMA of closed hourly counts.")
    hours_observed: int = Field(default=0, ge=0, description="Closed hours in the baseline.")
    alert_count: int | None = Field(
        default=None, description="Smallest count of the current hour that is anomalous."
    )


class RateBaselines(BaseModel):
    """All rate state; serialize with ``model_dump(mode="json")``."""

    model_config = ConfigDict(extra="forbid")

    keys: dict[str, RateState] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RateObservation:
    key: str
    count_this_hour: int
    baseline_per_hour: float
    hours_observed: int
    tail_probability: float | None
    unusual: bool
    late: bool

    def detection(self) -> Detection | None:
        if not self.unusual:
            return None
        return Detection(
            indicator=Indicator.UNUSUAL_PATTERN,
            rule_id="rate.poisson-ewma",
            evidence=(
                f"{self.count_this_hour} tickets this hour for {self.key.replace(chr(31), ' via ')} "
                f"against a baseline of {self.baseline_per_hour:.2f}/h over "
                f"{self.hours_observed} h (P(X>={self.count_this_hour}) = "
                f"{self.tail_probability:.2g})"
            ),
            confidence=0.6,
        )


def rate_key(product: str, channel: str) -> str:
    return f"{' '.join(product.casefold().split())}\x1f{channel}"


def poisson_tail(count: int, mean: float) -> float:
    """``P(X >= count)`` for ``X ~ Poisson(mean)``."""
    if count <= 0:
        return 1.0
    return float(gammainc(count, mean))


def _alert_count(mean: float, config: RateConfig) -> int:
    """Smallest count whose Poisson tail is below ``alpha_tail`` (and at least ``min_count``)."""
    rate = max(mean, config.min_rate)
    count = max(config.min_count, math.ceil(rate))
    while poisson_tail(count, rate) >= config.alpha_tail and count < _MAX_ALERT_COUNT:
        count = max(count + 1, math.ceil(count * 1.01)) if count > 1000 else count + 1
    return count


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _advance(state: RateState, bucket: datetime, config: RateConfig) -> None:
    """Close the current hour (and any empty hours after it) into the EWMA."""
    alpha = config.ewma_alpha
    if state.hours_observed == 0:
        state.mean = float(state.bucket_count)
    else:
        state.mean = alpha * state.bucket_count + (1 - alpha) * state.mean
    empty_hours = int((bucket - state.bucket_start) / _HOUR) - 1
    if empty_hours > 0:
        state.mean *= (1 - alpha) ** empty_hours
    state.hours_observed += 1 + max(empty_hours, 0)
    state.bucket_start = bucket
    state.bucket_count = 0
    state.alert_count = None


def observe_ticket(
    baselines: RateBaselines,
    *,
    product: str,
    channel: str,
    occurred_at: datetime,
    config: RateConfig = DEFAULT_RATE_CONFIG,
) -> RateObservation:
    """Count one new ticket (mutating ``baselines``) and say whether its hour is unusual.

    Call it once per new ticket, not for follow-up events of a known ticket.
    """
    key = rate_key(product, channel)
    bucket = _hour_floor(occurred_at)
    state = baselines.keys.get(key)
    if state is None:
        state = RateState(bucket_start=bucket)
        baselines.keys[key] = state
    elif bucket < state.bucket_start:
        return RateObservation(
            key, state.bucket_count, state.mean, state.hours_observed, None, False, True
        )
    elif bucket > state.bucket_start:
        _advance(state, bucket, config)

    state.bucket_count += 1
    if state.hours_observed < config.min_history_hours:
        return RateObservation(
            key, state.bucket_count, state.mean, state.hours_observed, None, False, False
        )
    if state.alert_count is None:
        state.alert_count = _alert_count(state.mean, config)
    unusual = state.bucket_count >= state.alert_count
    tail = poisson_tail(state.bucket_count, max(state.mean, config.min_rate)) if unusual else None
    return RateObservation(
        key, state.bucket_count, state.mean, state.hours_observed, tail, unusual, False
    )
