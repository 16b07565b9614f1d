"""Paired statistics: candidate and baseline scored on the same items, compared item by item.

Bootstrap CIs come from ``scipy.stats.bootstrap(paired=True)``; p-values from the exact binomial test
(``scipy.stats.binomtest``): on the discordant pairs for binary metrics (exact McNemar), on the signs of
the differences otherwise (sign test).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats


class PairedComparison(BaseModel):
    task: str
    metric: str
    baseline: str
    higher_is_better: bool = Field(description="From lm-eval's metric registry for this task.")
    n: int = Field(description="Items scored for both models.")
    candidate_mean: float
    baseline_mean: float
    mean_difference: float = Field(description="candidate - baseline, in the metric's units.")
    ci_low: float | None = Field(description="Paired bootstrap CI of the mean difference (None when n < 2).")
    ci_high: float | None
    confidence: float
    test: str = Field(description="'mcnemar-exact' (binary metrics) or 'sign' (others).")
    p_value: float
    wins: int = Field(description="Items where the candidate scored better (by the metric's direction).")
    losses: int
    ties: int


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def paired_comparison(candidate: dict[str, float], baseline: dict[str, float], *, task: str, metric: str,
                      baseline_name: str, higher_is_better: bool = True, iterations: int = 2000,
                      confidence: float = 0.95, seed: int = 0) -> PairedComparison:
    """Compare per-item scores keyed by item id; only items both models were scored on count."""
    keys = sorted(set(candidate) & set(baseline))
    c = np.array([float(candidate[k]) for k in keys])
    b = np.array([float(baseline[k]) for k in keys])
    diff = c - b
    sign = 1 if higher_is_better else -1
    wins, losses = int((sign * diff > 0).sum()), int((sign * diff < 0).sum())
    ci_low = ci_high = None
    if len(keys) >= 2:
        if np.all(diff == diff[0]):  # no spread: every resample has the same mean
            ci_low = ci_high = float(diff[0])
        else:
            result = stats.bootstrap((c, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True,
                                     vectorized=True, n_resamples=iterations, confidence_level=confidence,
                                     method="percentile", random_state=np.random.default_rng(seed))
            ci_low, ci_high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    binary = _is_binary(c) and _is_binary(b)
    if binary:  # exact McNemar: only the discordant items carry information
        better, worse = int(((c == 1) & (b == 0)).sum()), int(((c == 0) & (b == 1)).sum())
    else:
        better, worse = int((diff > 0).sum()), int((diff < 0).sum())
    p_value = 1.0 if better + worse == 0 else float(stats.binomtest(better, better + worse, 0.5).pvalue)
    return PairedComparison(
        task=task, metric=metric, baseline=baseline_name, higher_is_better=higher_is_better, n=len(keys),
        candidate_mean=float(c.mean()) if len(keys) else float("nan"),
        baseline_mean=float(b.mean()) if len(keys) else float("nan"),
        mean_difference=float(diff.mean()) if len(keys) else float("nan"), ci_low=ci_low, ci_high=ci_high,
        confidence=confidence, test="mcnemar-exact" if binary else "sign", p_value=p_value, wins=wins,
        losses=losses, ties=len(keys) - wins - losses)


def bootstrap_mean_ci(values: list[float], iterations: int, confidence: float, seed: int) -> tuple[float | None, float | None]:
    """Percentile bootstrap CI of a mean (for win rates and other unpaired summaries)."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return None, None
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = stats.bootstrap((data,), np.mean, n_resamples=iterations, confidence_level=confidence,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


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
