"""The confidence intervals and the rate test: textbook values, SciPy when it is installed, and
the defining properties (coverage ends, monotonicity)."""

from __future__ import annotations

import math

import pytest

from riskrelay.reporting.stats import (
    beta_cdf,
    beta_quantile,
    binomial_cdf,
    clopper_pearson,
    compare_poisson_rates,
    gamma_cdf,
    gamma_quantile,
    poisson_interval,
    wilson_interval,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("count", "low", "high"),
    [
        # Garwood (1936) / standard tables of exact Poisson 95% limits.
        (0, 0.0, 3.6889),
        (1, 0.0253, 5.5716),
        (5, 1.6235, 11.6683),
        (10, 4.7954, 18.3904),
        (100, 81.3640, 121.6268),
    ],
)
def test_garwood_interval_matches_the_tables(count: int, low: float, high: float) -> None:
    interval = poisson_interval(count)
    assert interval.low == pytest.approx(low, abs=1e-4)
    assert interval.high == pytest.approx(high, abs=1e-4)


def test_clopper_pearson_matches_known_values() -> None:
    # 3 of 10: the classic example (0.0667, 0.6525).
    interval = clopper_pearson(3, 10)
    assert interval.low == pytest.approx(0.066739, abs=1e-6)
    assert interval.high == pytest.approx(0.652453, abs=1e-6)
    assert clopper_pearson(0, 5).low == 0.0
    assert clopper_pearson(5, 5).high == 1.0


def test_wilson_interval_matches_the_formula_and_handles_no_trials() -> None:
    interval = wilson_interval(3, 10)
    assert interval is not None
    assert interval.low == pytest.approx(0.107791, abs=1e-6)
    assert interval.high == pytest.approx(0.603222, abs=1e-6)
    assert wilson_interval(0, 0) is None


def test_quantiles_invert_their_distributions() -> None:
    for shape in (0.5, 1.0, 7.0, 250.0, 200_000.0):
        for p in (0.025, 0.5, 0.975):
            assert gamma_cdf(gamma_quantile(p, shape), shape) == pytest.approx(p, abs=1e-10)
    for a, b in ((1.0, 1.0), (3.0, 8.0), (600_000.0, 500_001.0)):
        for p in (0.025, 0.975):
            assert beta_cdf(beta_quantile(p, a, b), a, b) == pytest.approx(p, abs=1e-9)


def test_binomial_cdf_matches_a_direct_sum() -> None:
    n, p = 12, 0.3
    for k in range(-1, n + 1):
        direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
        assert binomial_cdf(k, n, p) == pytest.approx(direct, abs=1e-12)


def test_rate_comparison_normalises_by_exposure() -> None:
    same_rate = compare_poisson_rates(30, 30, 31, 31)
    assert same_rate.ratio == pytest.approx(1.0)
    assert same_rate.p_value == pytest.approx(1.0)
    assert same_rate.interval is not None
    assert same_rate.interval.low < 1.0 < same_rate.interval.high


def test_rate_comparison_detects_a_real_increase_and_bounds_the_ratio() -> None:
    result = compare_poisson_rates(80, 30, 30, 31)
    assert result.ratio == pytest.approx((80 / 30) / (30 / 31))
    assert result.interval is not None
    assert 1.0 < result.interval.low < result.ratio < result.interval.high
    assert result.p_value is not None
    assert result.p_value < 0.001


def test_rate_comparison_edge_cases() -> None:
    assert compare_poisson_rates(0, 30, 0, 31).ratio is None
    unbounded = compare_poisson_rates(5, 30, 0, 31)
    assert unbounded.ratio is None
    assert unbounded.interval is not None
    assert math.isinf(unbounded.interval.high)
    zero = compare_poisson_rates(0, 30, 5, 31)
    assert zero.ratio == 0.0
    assert zero.interval is not None
    assert zero.interval.low == 0.0


def test_against_scipy_when_available() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    for count in (0, 2, 37, 1234, 150_000):
        interval = poisson_interval(count)
        expected_low = 0.0 if count == 0 else scipy_stats.chi2.ppf(0.025, 2 * count) / 2
        assert interval.low == pytest.approx(expected_low, rel=1e-9, abs=1e-12)
        assert interval.high == pytest.approx(
            scipy_stats.chi2.ppf(0.975, 2 * count + 2) / 2, rel=1e-9
        )
    for successes, trials in ((1, 20), (45, 90), (700_000, 1_250_000)):
        ours = clopper_pearson(successes, trials)
        theirs = scipy_stats.binomtest(successes, trials).proportion_ci(method="exact")
        assert ours.low == pytest.approx(theirs.low, rel=1e-8)
        assert ours.high == pytest.approx(theirs.high, rel=1e-8)
    # The p-value is the doubled smaller tail (the test that matches Clopper-Pearson).
    a, b, t_a, t_b = 30, 20, 30.0, 31.0
    p0 = t_a / (t_a + t_b)
    lower = scipy_stats.binom.cdf(a, a + b, p0)
    upper = scipy_stats.binom.sf(a - 1, a + b, p0)
    result = compare_poisson_rates(a, t_a, b, t_b)
    assert result.p_value == pytest.approx(min(1.0, 2 * min(lower, upper)), rel=1e-9)
