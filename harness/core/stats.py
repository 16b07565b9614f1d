"""Intervals and paired statistics: one model's rate or mean over items, and candidate vs baseline scored on
the same items, compared item by item.

Which interval a number gets depends on what its items are:

- a proportion (every item 0 or 1: toxic or not, right or wrong): an exact or score interval,
  :func:`proportion_interval` (Clopper-Pearson or Wilson). The percentile bootstrap collapses to [0, 0] at
  0 of 24 toxic prompts, where the exact upper bound is 0.14;
- a paired difference of proportions: Newcombe's hybrid score interval for paired data
  (:func:`newcombe_paired_interval`);
- a continuous mean (expected maximum toxicity, SelfCheck scores): the bias-corrected and accelerated (BCa)
  bootstrap, ``scipy.stats.bootstrap(method="BCa")`` (``paired=True`` for differences). The percentile
  bootstrap it replaced is too narrow on few, skewed items: its upper bound on a mean of 12 right-skewed
  toxicity maxima fell below the true mean in 12-13% of samples where 2.5% is nominal (BCa: 9-10%; at 24
  items 7-8% against 5%). Below :data:`MIN_BOOTSTRAP_ITEMS` items, or when the values do not vary, there is
  no interval (None, None): the bootstrap's spread then measures nothing (every resample of a constant is the
  same), and a rule judged on the CI (``judge_on: ci``, non-inferiority) fails for want of one instead of
  passing on a zero-width interval. Values that do not vary on a scale with known bounds (a judge's 1-10
  rating) get :func:`constant_interval` instead, from at least :data:`MIN_BOOTSTRAP_ITEMS` of them: a model
  scored exactly as its baseline on 80 questions is not "no evidence".

p-values come from the exact binomial test (``scipy.stats.binomtest``): on the discordant pairs for binary
metrics (exact McNemar), on the signs of the differences otherwise (sign test). Every interval is returned with
the name of its method, which records store beside it (``MetricValue.interval``, ``MetricDelta.interval``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from harness.core.errors import InputError

#: Interval names as records store them.
NEWCOMBE = "newcombe"
BOOTSTRAP_BCA = "bootstrap-bca"
#: The percentile bootstrap: still the arena's (resampled battles).
BOOTSTRAP_PERCENTILE = "bootstrap-percentile"
#: Values that all agree, on a bounded scale: :func:`constant_interval`.
CONSTANT_BOUNDED = "constant-bounded"

#: Fewest items a bootstrap interval is made from. Measured one-sided error of the bound a rule judges
#: (nominal 2.5% at 95%; 800 simulations, 2000 resamples): BCa upper bound of a mean of right-skewed scores
#: (Beta(0.4, 3), like per-prompt toxicity maxima) 12.9% at 8 items, 9.6% at 10, 6.0% at 20, 3.1% at 50;
#: lower bound of a mean of normal paired differences 9.2% at 5, 5.5% at 8, 4.4% at 10. Below 10 items the
#: error is two to five times nominal, so no interval is given (a rule judged on it fails);
#: from 10 to about 30 items it is still up to four times nominal on skewed scores, which the README states.
MIN_BOOTSTRAP_ITEMS = 10

#: Resampled values held at once (``scipy.stats.bootstrap``'s ``batch``): at 10,000 items the default, every
#: resample and every jackknife sample at once, takes gigabytes.
_BOOTSTRAP_BATCH_VALUES = 2_000_000


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
                                             "binary metrics, a paired BCa bootstrap otherwise (None when a "
                                             "continuous metric has fewer than MIN_BOOTSTRAP_ITEMS items, or "
                                             "differences that do not vary on a scale without bounds).")
    ci_high: float | None
    confidence: float
    test: str = Field(description="'mcnemar-exact' (binary metrics) or 'sign' (others).")
    p_value: float
    wins: int = Field(description="Items where the candidate scored better (by the metric's direction).")
    losses: int
    ties: int
    interval: str | None = Field(None, description="How ci_low/ci_high were computed: 'newcombe' (binary "
                                                   "metrics), 'bootstrap-bca', or 'constant-bounded' (differences "
                                                   "that all agree); None without an interval.")


class Interval(NamedTuple):
    """A CI and the name of the method that made it (``method`` is None when there is no interval)."""

    low: float | None
    high: float | None
    method: str | None


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


def check_confidence(confidence: float) -> None:
    """Refuse a CI level outside (0, 1): 95 (a percentage) gave NaN bounds, 0 a zero-width interval."""
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1 (e.g. 0.95), not {confidence!r}")


def _scores_by_id(scores: Mapping, side: str, task: str, metric: str) -> dict[str, float]:
    """Item id -> finite float score, ids as str: ids read back as 1 on one side and "1" on the other are the
    same item. Refuses two ids that are one as text and a non-finite score (NaN would make the mean and CI NaN,
    count as a tie in the sign test, and be written as null that no longer loads)."""
    out: dict[str, float] = {}
    original: dict[str, object] = {}
    for key, value in scores.items():
        text = str(key)
        if text in out:
            raise InputError(f"{task} {metric}: {side} has item ids {original[text]!r} and {key!r}, one id as text")
        original[text] = key
        try:
            if isinstance(value, str | bytes):  # float("1.5") would take a score written as text
                raise TypeError
            score = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{task} {metric}: item {text!r} of {side} has no numeric score ({value!r})") from None
        if not math.isfinite(score):
            raise InputError(f"{task} {metric}: item {text!r} of {side} has a non-finite score ({score}); "
                             f"fix or drop it before comparing")
        out[text] = score
    return out


def _finite_array(values: Sequence[float], what: str) -> np.ndarray:
    data = np.asarray(values, dtype=float)
    if bad := np.flatnonzero(~np.isfinite(data)).tolist():
        raise InputError(f"{what}: {len(bad)} non-finite value(s), the first ({data[bad[0]]}) at position {bad[0]}")
    return data


def _varies(data: np.ndarray) -> bool:
    """Whether values differ by more than float rounding (0.55 - 0.6 and 0.75 - 0.8 are one difference)."""
    return bool(np.ptp(data) > 1e-9 * np.abs(data).max())


#: Relative size below which a difference of two scores is float rounding (0.1 + 0.2 against 0.3), not a win.
_ROUNDING = 1e-9


def constant_interval(value: float, n: int, bounds: tuple[float, float], confidence: float) -> Interval:
    """CI of a mean whose ``n`` observed values all equal ``value``, on a scale bounded by ``bounds``
    (the lowest and highest value one item can take); no interval below :data:`MIN_BOOTSTRAP_ITEMS` values or
    on an unbounded scale.

    The bootstrap has nothing to resample here. What the items do show is how rare a different value is: had a
    share q of the population any other value, n agreeing items would have had chance (1 - q)^n, so q is at
    most q_u = 1 - (alpha/2)^(1/n), Clopper-Pearson's one-sided bound for 0 of n at each side's alpha/2. The
    mean then lies within [value - q_u (value - lowest), value + q_u (highest - value)], whatever the other
    values are: each bound errs with chance below alpha/2, as a rule judging it assumes. 80 equal 1-10 ratings
    give q_u = 0.045 and value +/- at most 0.41; 10 give q_u = 0.31."""
    check_confidence(confidence)
    low, high = bounds
    if n < MIN_BOOTSTRAP_ITEMS or not (math.isfinite(low) and math.isfinite(high)) or not low <= value <= high:
        return Interval(None, None, None)
    share = 1 - ((1 - confidence) / 2) ** (1 / n)
    return Interval(value - share * (value - low), value + share * (high - value), CONSTANT_BOUNDED)


def _bca(samples: tuple[np.ndarray, ...], statistic: Callable, paired: bool, iterations: int, confidence: float,
         seed: int) -> tuple[float, float] | None:
    """``scipy.stats.bootstrap``'s BCa interval; None where scipy cannot compute one (a degenerate bootstrap
    distribution gives NaN bounds, which a rule must not judge)."""
    n = len(samples[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(samples, statistic, paired=paired, vectorized=True, n_resamples=iterations,
                                 confidence_level=confidence, method="BCa",
                                 batch=max(1, _BOOTSTRAP_BATCH_VALUES // n), random_state=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (low, high) if math.isfinite(low) and math.isfinite(high) else None


def paired_comparison(candidate: Mapping, baseline: Mapping, *, task: str, metric: str,
                      baseline_name: str, higher_is_better: bool = True, iterations: int = 2000,
                      confidence: float = 0.95, seed: int = 0, continuous: bool = False,
                      bounds: tuple[float, float] | None = None) -> PairedComparison | None:
    """Compare per-item scores keyed by item id; only items both models were scored on count. ``continuous``:
    the scores are means on a scale (judge ratings), never proportions, even where every one is 0 or 1.
    ``bounds``: the lowest and highest score one item can take, where the scale has them; differences that do
    not vary then get :func:`constant_interval` (else no interval).

    Two scores that differ only by float rounding are a tie, in the counts and in the sign test.

    Ids are compared as text (1 and "1" are one item). Raises :class:`InputError` on a non-finite score and
    ``ValueError`` on a confidence outside (0, 1). None when no item is shared (e.g. a baseline whose every
    SelfCheck answer was empty): there is no delta without items, and callers leave the comparison out instead
    of writing a NaN difference. Callers whose two models must have scored the same items (the same lm-eval
    documents) check that themselves: others legitimately share only some (unparseable verdicts, empty answers).
    """
    check_confidence(confidence)
    cand = _scores_by_id(candidate, "the candidate", task, metric)
    base = _scores_by_id(baseline, f"baseline {baseline_name!r}", task, metric)
    keys = sorted(set(cand) & set(base))
    if not keys:
        return None
    c = np.array([cand[k] for k in keys])
    b = np.array([base[k] for k in keys])
    diff = c - b
    diff[np.abs(diff) <= _ROUNDING * np.maximum(np.abs(c), np.abs(b))] = 0.0
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
        interval = _paired_bootstrap(c, b, iterations, confidence, seed, bounds)
    p_value = 1.0 if better + worse == 0 else float(stats.binomtest(better, better + worse, 0.5).pvalue)
    return PairedComparison(
        task=task, metric=metric, baseline=baseline_name, higher_is_better=higher_is_better, n=len(keys),
        candidate_mean=float(c.mean()), baseline_mean=float(b.mean()), mean_difference=float(diff.mean()),
        ci_low=interval.low, ci_high=interval.high, interval=interval.method, confidence=confidence,
        test="mcnemar-exact" if binary else "sign", p_value=p_value, wins=wins, losses=losses,
        ties=len(keys) - wins - losses)


def _paired_bootstrap(c: np.ndarray, b: np.ndarray, iterations: int, confidence: float, seed: int,
                      bounds: tuple[float, float] | None = None) -> Interval:
    """BCa bootstrap CI of the mean difference, resampling items (both models' scores together); no interval
    below :data:`MIN_BOOTSTRAP_ITEMS` items. Differences that do not vary get :func:`constant_interval` on
    the scale of a difference (lowest - highest to highest - lowest) where the scores have ``bounds``."""
    diff = c - b
    if len(diff) < MIN_BOOTSTRAP_ITEMS:
        return Interval(None, None, None)
    if not _varies(diff):
        if bounds is None:
            return Interval(None, None, None)
        spread = bounds[1] - bounds[0]
        return constant_interval(float(diff.mean()), len(diff), (-spread, spread), confidence)
    bounds = _bca((c, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), True, iterations, confidence, seed)
    return Interval(None, None, None) if bounds is None else Interval(*bounds, BOOTSTRAP_BCA)


def bootstrap_interval(samples: Sequence[Sequence[float]], statistic: Callable, *, paired: bool, iterations: int,
                       confidence: float, seed: int) -> Interval:
    """BCa bootstrap CI of ``statistic`` over items, for statistics that are not a mean of one score per item
    (a ratio over items, a difference between two independent samples). ``paired``: the samples are columns of
    the same items, resampled with the same indices; else each sample is resampled on its own. No interval when
    a sample has fewer than :data:`MIN_BOOTSTRAP_ITEMS` items, when no sample's values vary (every resample
    gives the same statistic), or where scipy's BCa is undefined."""
    check_confidence(confidence)
    data = tuple(_finite_array(sample, f"bootstrap_interval, sample {k + 1}") for k, sample in enumerate(samples))
    if min(len(sample) for sample in data) < MIN_BOOTSTRAP_ITEMS or not any(map(_varies, data)):
        return Interval(None, None, None)
    bounds = _bca(data, statistic, paired, iterations, confidence, seed)
    return Interval(None, None, None) if bounds is None else Interval(*bounds, BOOTSTRAP_BCA)


def independent_difference_interval(a: Sequence[float], b: Sequence[float], *, iterations: int, confidence: float,
                                    seed: int) -> Interval:
    """BCa bootstrap CI of mean(a) - mean(b) for two independent samples, each resampled on its own (the
    memorization probe's training prompts against held-out ones: different items, nothing to pair); none when
    either has fewer than :data:`MIN_BOOTSTRAP_ITEMS` values or neither varies."""
    return bootstrap_interval((a, b), lambda p, q, axis=-1: np.mean(p, axis=axis) - np.mean(q, axis=axis),
                              paired=False, iterations=iterations, confidence=confidence, seed=seed)


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
    check_confidence(confidence)
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


def bootstrap_mean_ci(values: Sequence[float], iterations: int, confidence: float, seed: int,
                      bounds: tuple[float, float] | None = None) -> Interval:
    """BCa bootstrap CI of a mean (for continuous summaries; proportions take :func:`proportion_interval`);
    no interval below :data:`MIN_BOOTSTRAP_ITEMS` values. Values that do not vary get
    :func:`constant_interval` where the scale has ``bounds`` (the lowest and highest value), else none."""
    check_confidence(confidence)
    data = _finite_array(values, "bootstrap_mean_ci")
    if len(data) < MIN_BOOTSTRAP_ITEMS:
        return Interval(None, None, None)
    if not _varies(data):
        return Interval(None, None, None) if bounds is None else constant_interval(
            float(data.mean()), len(data), bounds, confidence)
    limits = _bca((data,), np.mean, False, iterations, confidence, seed)
    return Interval(None, None, None) if limits is None else Interval(*limits, BOOTSTRAP_BCA)


def mean_interval(values: Sequence[float], *, iterations: int, confidence: float, seed: int,
                  proportion_method: str, bounds: tuple[float, float] | None = None) -> Interval:
    """CI of a mean over items, by what the items are: a proportion interval when every value is 0 or 1
    (``proportion_method``), :func:`bootstrap_mean_ci` otherwise (``bounds`` as there)."""
    check_confidence(confidence)
    data = _finite_array(values, "mean_interval")
    if len(data) and _is_binary(data):
        low, high = proportion_interval(int(data.sum()), len(data), confidence, proportion_method)
        return Interval(low, high, proportion_method)
    return bootstrap_mean_ci(data, iterations, confidence, seed, bounds)


PROPORTION_METHODS = {"wilson": "wilson", "clopper-pearson": "exact"}


def proportion_interval(successes: int, n: int, confidence: float, method: str = "wilson"
                        ) -> tuple[float | None, float | None]:
    """Two-sided CI of a proportion ``successes / n`` by a score or exact method (scipy's ``binomtest``).

    Unlike a bootstrap, these do not collapse at 0 or n successes: 0 of 24 gives an upper
    bound of about 0.14 (Clopper-Pearson), 5 of 5 a lower bound of about 0.48. ``method`` is 'wilson' or
    'clopper-pearson'; (None, None) when there are no items.
    """
    if method not in PROPORTION_METHODS:
        raise ValueError(f"unknown proportion interval {method!r}; known: {', '.join(PROPORTION_METHODS)}")
    check_confidence(confidence)
    if n == 0:
        return None, None
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence,
                                                                method=PROPORTION_METHODS[method])
    return float(ci.low), float(ci.high)
