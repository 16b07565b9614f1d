"""Intervals and paired statistics: one model's rate or mean over items, and candidate vs baseline scored on
the same items, compared item by item.

Which interval a number gets depends on what its items are:

- a proportion (every item 0 or 1: toxic or not, right or wrong): an exact or score interval,
  :func:`proportion_interval` (Clopper-Pearson or Wilson). The percentile bootstrap collapses to [0, 0] at
  0 of 24 toxic prompts, where the exact upper bound is 0.14;
- a paired difference of proportions: Newcombe's hybrid score interval for paired data
  (:func:`newcombe_paired_interval`);
- a continuous mean (expected maximum toxicity, SelfCheck scores): the percentile bootstrap,
  ``scipy.stats.bootstrap`` (``paired=True`` for differences).

p-values come from the exact binomial test (``scipy.stats.binomtest``): on the discordant pairs for binary
metrics (exact McNemar), on the signs of the differences otherwise (sign test). Every interval is returned with
the name of its method, which records store beside it (``MetricValue.interval``, ``MetricDelta.interval``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

#: Interval names as records store them.
NEWCOMBE = "newcombe"
BOOTSTRAP_PERCENTILE = "bootstrap-percentile"


class PairedComparison(BaseModel):
    task: str
    metric: str
    baseline: str
    higher_is_better: bool = Field(description="From lm-eval's metric registry for this task.")
    n: int = Field(ge=1, description="Items scored for both models (at least one: there is no comparison "
                                     "without shared items).")
    candidate_mean: float
    baseline_mean: float
    mean_difference: float = Field(description="candidate - baseline, in the metric's units.")
    ci_low: float | None = Field(description="CI of the mean difference: Newcombe's paired score interval for "
                                             "binary metrics, a paired percentile bootstrap otherwise (None when "
                                             "a continuous metric has n < 2).")
    ci_high: float | None
    confidence: float
    test: str = Field(description="'mcnemar-exact' (binary metrics) or 'sign' (others).")
    p_value: float
    wins: int = Field(description="Items where the candidate scored better (by the metric's direction).")
    losses: int
    ties: int
    interval: str | None = Field(None, description="How ci_low/ci_high were computed: 'newcombe' (binary "
                                                   "metrics) or 'bootstrap-percentile'; None without an interval.")


class Interval(NamedTuple):
    """A CI and the name of the method that made it (``method`` is None when there is no interval)."""

    low: float | None
    high: float | None
    method: str | None


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def paired_comparison(candidate: dict[str, float], baseline: dict[str, float], *, task: str, metric: str,
                      baseline_name: str, higher_is_better: bool = True, iterations: int = 2000,
                      confidence: float = 0.95, seed: int = 0, continuous: bool = False) -> PairedComparison | None:
    """Compare per-item scores keyed by item id; only items both models were scored on count. ``continuous``:
    the scores are means on a scale (judge ratings), never proportions, even where every one is 0 or 1.

    None when no item is shared (e.g. a baseline whose every SelfCheck answer was empty): there is no delta
    without items, and callers leave the comparison out instead of writing a NaN difference.
    """
    keys = sorted(set(candidate) & set(baseline))
    if not keys:
        return None
    c = np.array([float(candidate[k]) for k in keys])
    b = np.array([float(baseline[k]) for k in keys])
    diff = c - b
    sign = 1 if higher_is_better else -1
    wins, losses = int((sign * diff > 0).sum()), int((sign * diff < 0).sum())
    binary = not continuous and _is_binary(c) and _is_binary(b)
    if binary:  # exact McNemar: only the discordant items carry information
        better, worse = int(((c == 1) & (b == 0)).sum()), int(((c == 0) & (b == 1)).sum())
        both = int(((c == 1) & (b == 1)).sum())
        low, high = newcombe_paired_interval(both, better, worse, len(keys) - both - better - worse, confidence)
        interval = Interval(low, high, NEWCOMBE)
    else:
        better, worse = int((diff > 0).sum()), int((diff < 0).sum())
        interval = _paired_bootstrap(c, b, iterations, confidence, seed)
    p_value = 1.0 if better + worse == 0 else float(stats.binomtest(better, better + worse, 0.5).pvalue)
    return PairedComparison(
        task=task, metric=metric, baseline=baseline_name, higher_is_better=higher_is_better, n=len(keys),
        candidate_mean=float(c.mean()), baseline_mean=float(b.mean()), mean_difference=float(diff.mean()),
        ci_low=interval.low, ci_high=interval.high, interval=interval.method, confidence=confidence,
        test="mcnemar-exact" if binary else "sign", p_value=p_value, wins=wins, losses=losses,
        ties=len(keys) - wins - losses)


def _paired_bootstrap(c: np.ndarray, b: np.ndarray, iterations: int, confidence: float, seed: int) -> Interval:
    """Percentile bootstrap CI of the mean difference, resampling items (both models' scores together)."""
    diff = c - b
    if len(diff) < 2:
        return Interval(None, None, None)
    if np.all(diff == diff[0]):  # no spread: every resample has the same mean
        return Interval(float(diff[0]), float(diff[0]), BOOTSTRAP_PERCENTILE)
    result = stats.bootstrap((c, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True,
                             vectorized=True, n_resamples=iterations, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed))
    return Interval(float(result.confidence_interval.low), float(result.confidence_interval.high),
                    BOOTSTRAP_PERCENTILE)


def independent_difference_interval(a: Sequence[float], b: Sequence[float], *, iterations: int, confidence: float,
                                    seed: int) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of mean(a) - mean(b) for two independent samples, each resampled on its own (the
    memorization probe's training prompts against held-out ones: different items, nothing to pair); (None, None)
    when either has fewer than two values."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return None, None
    if np.all(x == x[0]) and np.all(y == y[0]):  # no spread: every resample gives the same difference
        return float(x[0] - y[0]), float(x[0] - y[0])
    result = stats.bootstrap((x, y), lambda p, q, axis=-1: np.mean(p, axis=axis) - np.mean(q, axis=axis),
                             paired=False, vectorized=True, n_resamples=iterations, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def newcombe_paired_interval(both: int, only_candidate: int, only_baseline: int, neither: int,
                             confidence: float = 0.95) -> tuple[float, float]:
    """CI of a difference of paired proportions, candidate minus baseline: Newcombe's (1998) method 10.

    The counts are the paired 2x2 table: items where both models succeed, only the candidate, only the baseline,
    neither. The limits combine the Wilson score intervals (l1, u1) of the candidate's proportion p1 and
    (l2, u2) of the baseline's p2, corrected for their correlation phi::

        low  = (p1 - p2) - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2)
        high = (p1 - p2) + sqrt((p2 - l2)^2 - 2 phi (p2 - l2)(u1 - p1) + (u1 - p1)^2)

    with phi = max(A - n/2, 0) / sqrt(e f g h) for A = both*neither - only_candidate*only_baseline >= 0 and
    phi = A / sqrt(e f g h) for A < 0 (e, f, g, h: the table's margins; phi = 0 when one is 0). Newcombe,
    "Improved confidence intervals for the difference between binomial proportions based on paired data",
    Statistics in Medicine 17 (1998) 2635-2650. Unlike the bootstrap it does not collapse to a point when no
    item is discordant.
    """
    n = both + only_candidate + only_baseline + neither
    if n == 0:
        raise ValueError("a paired interval needs at least one item")
    p1, p2 = (both + only_candidate) / n, (both + only_baseline) / n
    l1, u1 = proportion_interval(both + only_candidate, n, confidence, "wilson")
    l2, u2 = proportion_interval(both + only_baseline, n, confidence, "wilson")
    margins = ((both + only_candidate) * (only_baseline + neither) * (both + only_baseline)
               * (only_candidate + neither))
    phi = 0.0
    if margins > 0:
        association = both * neither - only_candidate * only_baseline
        corrected = association - n / 2 if association > n / 2 else min(association, 0)
        phi = corrected / math.sqrt(margins)
    low = (p1 - p2) - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    high = (p1 - p2) + math.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    return max(low, -1.0), min(high, 1.0)


def bootstrap_mean_ci(values: list[float], iterations: int, confidence: float, seed: int) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of a mean (for continuous summaries; proportions take
    :func:`proportion_interval`)."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return None, None
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap((data,), np.mean, n_resamples=iterations, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_interval(values: list[float], *, iterations: int, confidence: float, seed: int,
                  proportion_method: str) -> Interval:
    """CI of a mean over items, by what the items are: a proportion interval when every value is 0 or 1
    (``proportion_method``), the percentile bootstrap otherwise (no interval for fewer than two values)."""
    data = np.asarray(values, dtype=float)
    if len(data) and _is_binary(data):
        low, high = proportion_interval(int(data.sum()), len(data), confidence, proportion_method)
        return Interval(low, high, proportion_method)
    low, high = bootstrap_mean_ci(list(data), iterations, confidence, seed)
    return Interval(low, high, None if low is None else BOOTSTRAP_PERCENTILE)


PROPORTION_METHODS = {"wilson": "wilson", "clopper-pearson": "exact"}


def proportion_interval(successes: int, n: int, confidence: float, method: str = "wilson"
                        ) -> tuple[float | None, float | None]:
    """Two-sided CI of a proportion ``successes / n`` by a score or exact method (scipy's ``binomtest``).

    Unlike the percentile bootstrap, these do not collapse at 0 or n successes: 0 of 24 gives an upper
    bound of about 0.14 (Clopper-Pearson), 5 of 5 a lower bound of about 0.48. ``method`` is 'wilson' or
    'clopper-pearson'; (None, None) when there are no items.
    """
    if method not in PROPORTION_METHODS:
        raise ValueError(f"unknown proportion interval {method!r}; known: {', '.join(PROPORTION_METHODS)}")
    if n == 0:
        return None, None
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence,
                                                                method=PROPORTION_METHODS[method])
    return float(ci.low), float(ci.high)
