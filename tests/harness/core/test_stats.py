"""Intervals and paired comparisons: published numbers, hand-computed formulas, and coverage by simulation."""

import math

import numpy as np
import pytest
from scipy import stats

from harness.core.stats import (
    bootstrap_mean_ci,
    mean_interval,
    newcombe_paired_interval,
    paired_comparison,
    proportion_interval,
)

Z = 1.959963984540054  # the 97.5% normal quantile


def _wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson's score interval written out, independently of scipy."""
    p = successes / n
    centre = p + Z ** 2 / (2 * n)
    half = Z * math.sqrt(p * (1 - p) / n + Z ** 2 / (4 * n * n))
    return (centre - half) / (1 + Z ** 2 / n), (centre + half) / (1 + Z ** 2 / n)


def test_proportion_intervals_at_0_of_24_and_5_of_5():
    # the numbers the percentile bootstrap got wrong ([0, 0] and [1, 1])
    low, high = proportion_interval(0, 24, 0.95, "clopper-pearson")
    assert low == 0.0 and high == pytest.approx(0.1425, abs=5e-5)
    assert proportion_interval(0, 24, 0.95, "wilson")[1] == pytest.approx(0.1380, abs=5e-5)
    low, high = proportion_interval(5, 5, 0.95, "clopper-pearson")
    assert low == pytest.approx(0.4782, abs=5e-5) and high == 1.0  # 0.025 ** (1 / 5)
    assert proportion_interval(7, 19, 0.95, "wilson") == pytest.approx(_wilson(7, 19))
    assert proportion_interval(0, 0, 0.95) == (None, None)
    with pytest.raises(ValueError, match="unknown proportion interval"):
        proportion_interval(1, 2, 0.95, "wald")


def test_newcombe_paired_interval_matches_the_published_example():
    # Cavo et al. (2012), complete response before and after consolidation therapy, as worked in Fagerland,
    # Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017), ch. 8: Newcombe's square-and-add
    # interval -0.0621 (95% CI -0.1186 to -0.0046). Here ad - bc = 4624 > n/2, so the phi correction applies.
    low, high = newcombe_paired_interval(59, 6, 16, 80, 0.95)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


@pytest.mark.parametrize("both, only_candidate, only_baseline, neither, phi", [
    (1, 1, 7, 12, 0.0),     # ad - bc = 5 lies in [0, n/2]: the corrected phi is 0
    (2, 5, 1, 2, -1 / 21),  # ad - bc = -1 < 0: phi = -1 / sqrt(7 * 3 * 3 * 7), uncorrected
    (0, 0, 0, 24, 0.0),     # no discordant item, and a zero margin: phi = 0
])
def test_newcombe_paired_interval_from_the_formula_written_out(both, only_candidate, only_baseline, neither, phi):
    n = both + only_candidate + only_baseline + neither
    p1, p2 = (both + only_candidate) / n, (both + only_baseline) / n
    (l1, u1), (l2, u2) = _wilson(both + only_candidate, n), _wilson(both + only_baseline, n)
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2)
    assert newcombe_paired_interval(both, only_candidate, only_baseline, neither, 0.95) == pytest.approx((low, high))


def test_no_shared_item_gives_no_comparison():
    # a baseline with no value for the metric (every SelfCheck answer empty): no NaN delta, no comparison
    assert paired_comparison({"a": 0.3, "b": 0.4}, {}, task="t", metric="m", baseline_name="b") is None
    assert paired_comparison({"a": 1.0}, {"c": 0.0}, task="t", metric="m", baseline_name="b") is None


def test_binary_metrics_get_newcombe_and_continuous_ones_the_paired_bootstrap():
    # no toxic prompt for either model on 24 prompts: the bootstrap said [0, 0], Newcombe about +-0.14
    none = paired_comparison({str(i): 0.0 for i in range(24)}, {str(i): 0.0 for i in range(24)}, task="t",
                             metric="toxicity_probability", baseline_name="b", higher_is_better=False)
    assert none.interval == "newcombe" and none.test == "mcnemar-exact" and none.n == 24
    assert (none.ci_low, none.ci_high) == pytest.approx((-0.1380, 0.1380), abs=5e-5)
    # 8 right only for the candidate, 2 only for the baseline, of 10
    mixed = paired_comparison({str(i): float(i < 8) for i in range(10)}, {str(i): float(i >= 8) for i in range(10)},
                              task="t", metric="acc", baseline_name="b")
    assert (mixed.ci_low, mixed.ci_high) == pytest.approx(newcombe_paired_interval(0, 8, 2, 0, 0.95))
    scores = [0.2, 0.9, 0.4, 0.35, 0.8, 0.15, 0.6, 0.55, 0.3, 0.7]
    continuous = paired_comparison(dict(enumerate(scores)), dict(enumerate([0.1, 0.3, 0.5] + scores[3:])),
                                   task="t", metric="emt", baseline_name="b")
    assert continuous.interval == "bootstrap-bca" and continuous.test == "sign"
    single = paired_comparison({"a": 0.2}, {"a": 0.1}, task="t", metric="emt", baseline_name="b")
    assert (single.ci_low, single.interval) == (None, None)


def test_mean_interval_chooses_by_what_the_items_are():
    rate = mean_interval([0.0] * 23 + [1.0], iterations=1000, confidence=0.95, seed=0,
                         proportion_method="clopper-pearson")
    assert rate.method == "clopper-pearson" and rate == proportion_interval(1, 24, 0.95, "clopper-pearson") + (
        "clopper-pearson",)
    per_record = [1.0, 0.5, 0.0, 1.0] * 3  # e.g. HaluEval discrimination: the mean of two judgements per record
    scores = mean_interval(per_record, iterations=1000, confidence=0.95, seed=3, proportion_method="wilson")
    assert scores.method == "bootstrap-bca"
    assert scores == bootstrap_mean_ci(per_record, 1000, 0.95, 3)
    assert mean_interval([0.4], iterations=1000, confidence=0.95, seed=0, proportion_method="wilson") == (
        None, None, None)


def _old_percentile_upper(values: list[float]) -> float:
    """The upper bound of the percentile bootstrap these intervals replaced (constant data: the constant)."""
    data = np.asarray(values)
    if np.all(data == data[0]):
        return float(data[0])
    return float(stats.bootstrap((data,), np.mean, n_resamples=2000, method="percentile",
                                 random_state=np.random.default_rng(0)).confidence_interval.high)


def _coverage(draws: np.ndarray, n: int, p: float, upper) -> float:
    """Share of simulated counts whose interval's upper bound reaches the true rate (one bound per count)."""
    bounds = {int(k): upper(int(k)) for k in np.unique(draws)}
    return float(np.mean([bounds[int(k)] >= p for k in draws]))


def test_upper_bound_coverage_at_24_prompts_and_a_true_rate_of_5_percent():
    n, p = 24, 0.05
    draws = np.random.default_rng(12).binomial(n, p, size=4000)

    def bootstrap_upper(k: int) -> float:  # the old interval: percentile bootstrap over the 0/1 items
        return _old_percentile_upper([1.0] * k + [0.0] * (n - k))

    exact = _coverage(draws, n, p, lambda k: proportion_interval(k, n, 0.95, "clopper-pearson")[1])
    wilson = _coverage(draws, n, p, lambda k: proportion_interval(k, n, 0.95, "wilson")[1])
    old = _coverage(draws, n, p, bootstrap_upper)
    assert exact >= 0.95 and wilson >= 0.95
    # the bootstrap's upper bound is 0 whenever no prompt is toxic: P = 0.95 ** 24 = 0.29, so it covers ~71%
    assert old == pytest.approx(1 - 0.95 ** 24, abs=0.03) and old < 0.75


def test_newcombe_upper_bound_covers_a_worse_candidate_where_the_paired_bootstrap_does_not():
    # a candidate toxic on 5% of prompts against a baseline that never is: the true difference is +0.05, and a
    # non-inferiority rule on a lower-is-better rate judges the upper bound of the paired CI
    n, p = 24, 0.05
    rng = np.random.default_rng(5)
    toxic = [int(k) for k in rng.binomial(n, p, size=2000)]  # candidate's toxic prompts; none of the baseline's
    newcombe, bootstrap = {}, {}
    for k in set(toxic):
        result = paired_comparison({str(i): float(i < k) for i in range(n)}, {str(i): 0.0 for i in range(n)},
                                   task="t", metric="toxicity_probability", baseline_name="b",
                                   higher_is_better=False)
        assert result.interval == "newcombe"
        assert (result.ci_low, result.ci_high) == pytest.approx(newcombe_paired_interval(0, k, 0, n - k, 0.95))
        newcombe[k] = result.ci_high
        bootstrap[k] = _old_percentile_upper([1.0] * k + [0.0] * (n - k))  # the old paired CI
    assert np.mean([newcombe[k] >= p for k in toxic]) >= 0.95
    assert np.mean([bootstrap[k] >= p for k in toxic]) < 0.75  # [0, 0] whenever the candidate was lucky
