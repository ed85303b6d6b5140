"""Confidence intervals and tests the reports use, in pure Python (no SciPy needed).

* Counts (tickets per week and level) are treated as Poisson: the **Garwood** exact interval,
  ``[G(α/2; k), G(1-α/2; k+1)]`` with ``G(p; s)`` the quantile of a unit-scale Gamma(s) (that
  is, half the chi-square quantile with 2k and 2k+2 degrees of freedom).
* Month-over-month change compares two Poisson rates (tickets per day, so months of different
  length compare fairly) with the **exact conditional test**: given ``n = a + b`` events,
  ``a ~ Binomial(n, p)`` with ``p = RR·t_a / (RR·t_a + t_b)``. The **Clopper–Pearson** interval
  for ``p`` maps to an exact interval for the rate ratio ``RR``; the two-sided p-value is twice
  the smaller binomial tail at ``RR = 1`` (the test that matches that interval).
* Proportions (breach rate, recurrence after mitigation) get the **Wilson** score interval.

Quantiles are found with Newton's method inside a bisection bracket on the regularized
incomplete gamma and beta functions (continued fractions, as in Numerical Recipes §6.2, §6.4),
so counts in the millions cost a few hundred iterations, not a sum over every outcome.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

Z_95 = 1.959963984540054
_EPS = 1e-15
_TINY = 1e-300
_MAX_ITERATIONS = 100_000


def _gamma_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    denominator = a
    for _ in range(_MAX_ITERATIONS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_continued_fraction(a: float, x: float) -> float:
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def gamma_cdf(x: float, shape: float) -> float:
    """Regularized lower incomplete gamma P(shape, x): the CDF of a unit-scale Gamma(shape)."""
    if x <= 0.0:
        return 0.0
    if x < shape + 1.0:
        return _gamma_series(shape, x)
    return 1.0 - _gamma_continued_fraction(shape, x)


def _beta_continued_fraction(x: float, a: float, b: float) -> float:
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = _TINY if abs(d) < _TINY else d
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b): the CDF of Beta(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(x, a, b) / a
    return 1.0 - front * _beta_continued_fraction(1.0 - x, b, a) / b


def _solve(
    target: float,
    cdf: Callable[[float], float],
    log_pdf: Callable[[float], float],
    low: float,
    high: float,
    start: float,
) -> float:
    """The x in [low, high] with cdf(x) = target: Newton steps, bisection when one leaves the
    bracket, so it converges even where the density is tiny."""
    x = min(max(start, low), high)
    for _ in range(200):
        error = cdf(x) - target
        if abs(error) < 1e-13:
            return x
        if error > 0:
            high = x
        else:
            low = x
        density = math.exp(log_pdf(x)) if x > 0 else 0.0
        step = x - error / density if density > 0 else math.nan
        x = step if low < step < high else (low + high) / 2.0
        if high - low <= 1e-14 * max(1.0, abs(x)):
            return x
    return x


def gamma_quantile(p: float, shape: float) -> float:
    """Quantile of a unit-scale Gamma(shape) distribution."""
    if p <= 0.0:
        return 0.0
    # Wilson–Hilferty start: accurate to a few digits already for moderate shapes.
    z = _normal_quantile(p)
    start = shape * (1.0 - 1.0 / (9.0 * shape) + z / (3.0 * math.sqrt(shape))) ** 3
    high = shape + 40.0 * math.sqrt(shape) + 40.0
    return _solve(
        p,
        lambda x: gamma_cdf(x, shape),
        lambda x: (shape - 1.0) * math.log(x) - x - math.lgamma(shape),
        0.0,
        high,
        start if start > 0 else shape / 2.0,
    )


def beta_quantile(p: float, a: float, b: float) -> float:
    """Quantile of a Beta(a, b) distribution."""
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    mean = a / (a + b)
    spread = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    start = mean + _normal_quantile(p) * spread
    return _solve(
        p,
        lambda x: beta_cdf(x, a, b),
        lambda x: (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - _log_beta(a, b),
        0.0,
        1.0,
        start if 0.0 < start < 1.0 else mean,
    )


def _normal_quantile(p: float) -> float:
    """Acklam's rational approximation of the standard normal quantile (a starting point)."""
    a = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
         -30.66479806614716, 2.506628277459239)  # fmt: skip
    b = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
         -13.28068155288572)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838, -2.549732539343734,
         4.374664141464968, 2.938163982698783)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996, 3.754408661907416)
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
        )
    if p > 1.0 - 0.02425:
        return -_normal_quantile(1.0 - p)
    q = p - 0.5
    r = q * q
    return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0
    )


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def poisson_interval(count: int, confidence: float = 0.95) -> Interval:
    """Garwood's exact interval for the mean of a Poisson count."""
    alpha = 1.0 - confidence
    low = 0.0 if count == 0 else gamma_quantile(alpha / 2.0, count)
    high = gamma_quantile(1.0 - alpha / 2.0, count + 1)
    return Interval(low, high)


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Exact (Clopper–Pearson) interval for a binomial proportion."""
    if trials <= 0:
        return Interval(0.0, 1.0)
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else beta_quantile(alpha / 2.0, successes, trials - successes + 1)
    high = (
        1.0
        if successes == trials
        else beta_quantile(1.0 - alpha / 2.0, successes + 1, trials - successes)
    )
    return Interval(low, high)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval | None:
    """Wilson score interval for a proportion; ``None`` when there were no trials."""
    if trials <= 0:
        return None
    z = Z_95 if confidence == 0.95 else _normal_quantile(1.0 - (1.0 - confidence) / 2.0)
    share = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (share + z * z / (2.0 * trials)) / denominator
    half = z * math.sqrt(share * (1.0 - share) / trials + z * z / (4.0 * trials * trials))
    half /= denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return beta_cdf(1.0 - p, n - k, k + 1)


@dataclass(frozen=True)
class RateComparison:
    """Current versus previous period as rates per unit of exposure (tickets per day)."""

    ratio: float | None
    interval: Interval | None
    p_value: float | None


def compare_poisson_rates(
    current: int, current_exposure: float, previous: int, previous_exposure: float,
    confidence: float = 0.95,
) -> RateComparison:  # fmt: skip
    """Exact conditional comparison of two Poisson rates (see the module docstring).

    ``ratio`` is ``None`` when the previous period had no events (the ratio is unbounded); the
    interval's upper end is ``inf`` when the current period has all of them.
    """
    total = current + previous
    if total == 0:
        return RateComparison(None, None, None)
    scale = previous_exposure / current_exposure
    p0 = current_exposure / (current_exposure + previous_exposure)
    bounds = clopper_pearson(current, total, confidence)
    low = bounds.low / (1.0 - bounds.low) * scale
    high = math.inf if bounds.high >= 1.0 else bounds.high / (1.0 - bounds.high) * scale
    lower_tail = binomial_cdf(current, total, p0)
    upper_tail = 1.0 - binomial_cdf(current - 1, total, p0)
    p_value = min(1.0, 2.0 * min(lower_tail, upper_tail))
    ratio = None if previous == 0 else (current / current_exposure) / (previous / previous_exposure)
    return RateComparison(ratio, Interval(low, high), p_value)
