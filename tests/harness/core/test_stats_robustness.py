"""What the intervals and paired comparisons do with the inputs that used to slip through: few or constant
items, skewed scores, NaN, ids of different types or repeated, and a confidence that is not a level."""

import math

import numpy as np
import pytest
from scipy import stats

from harness.bench.bench import _metric_scores, paired_rows
from harness.core.errors import InputError
from harness.core.metrics import delta_from_comparison
from harness.core.stats import (
    MIN_BOOTSTRAP_ITEMS,
    bootstrap_mean_ci,
    independent_difference_interval,
    mean_interval,
    newcombe_paired_interval,
    paired_comparison,
    proportion_interval,
)
from harness.gate.policy import NonInferiorityRule
from harness.gate.rules import _non_inferiority_outcome


def _compare(candidate, baseline, **kwargs):
    return paired_comparison(candidate, baseline, task="t", metric="m", baseline_name="b", **kwargs)


# ---------------------------------------------------------------- few or constant items: no interval

def test_two_items_with_one_difference_cannot_pass_a_non_inferiority_rule():
    # 0.55 - 0.6 and 0.75 - 0.8: one difference, -0.05, up to float rounding. The percentile bootstrap gave
    # [-0.05, -0.05], and a margin of 0.06 passed on two items.
    comparison = _compare({"a": 0.55, "b": 0.75}, {"a": 0.6, "b": 0.8}, continuous=True)
    assert (comparison.ci_low, comparison.ci_high, comparison.interval) == (None, None, None)
    assert comparison.mean_difference == pytest.approx(-0.05) and comparison.losses == 2
    delta = delta_from_comparison("bench.t.m", "cand", comparison)
    for inconclusive in (False, True):
        rule = NonInferiorityRule(name="ni", type="non_inferiority", metric="bench.t.m", margin=0.06,
                                  inconclusive=inconclusive)
        outcome = _non_inferiority_outcome(rule, True, delta, "rec")
        assert outcome.status == "fail" and "no CI" in outcome.detail


def test_constant_and_small_samples_have_no_bootstrap_interval():
    varying = [0.12, 0.4, 0.05, 0.33, 0.9, 0.21, 0.07, 0.5, 0.15]
    assert len(varying) == MIN_BOOTSTRAP_ITEMS - 1
    assert bootstrap_mean_ci(varying, 1000, 0.95, 0) == (None, None, None)
    assert bootstrap_mean_ci(varying + [0.3], 1000, 0.95, 0).method == "bootstrap-bca"
    assert bootstrap_mean_ci([0.2] * 40, 1000, 0.95, 0) == (None, None, None)  # was [0.2, 0.2]
    assert mean_interval([0.3] * 40, iterations=1000, confidence=0.95, seed=0, proportion_method="wilson") == (
        None, None, None)
    same = _compare({str(i): 0.3 + i / 10 for i in range(40)}, {str(i): i / 10 for i in range(40)})
    assert (same.ci_low, same.ci_high, same.interval) == (None, None, None)  # was [0.3, 0.3]
    few = _compare({str(i): v for i, v in enumerate(varying)}, {str(i): 0.2 for i in range(9)})
    assert (few.n, few.ci_low, few.interval) == (9, None, None)
    # proportions keep their exact intervals at any n, constant or not
    assert _compare({"a": 1.0, "b": 1.0}, {"a": 0.0, "b": 0.0}).interval == "newcombe"


def test_values_that_all_agree_on_a_bounded_scale_get_an_interval_from_the_share_of_other_values():
    """80 equal 1-10 ratings: had a share q of questions another rating, 80 in a row would have chance (1-q)^80;
    q <= 1 - 0.025^(1/80) = 0.0451, so the mean lies within 6 - 0.0451*5 .. 6 + 0.0451*4."""
    share = 1 - 0.025 ** (1 / 80)
    low, high, method = bootstrap_mean_ci([6.0] * 80, 1000, 0.95, 0, bounds=(1.0, 10.0))
    assert method == "constant-bounded"
    assert (low, high) == pytest.approx((6 - share * 5, 6 + share * 4))
    # each bound errs at most alpha/2: the chance of 80 agreeing items when a share q_u differs is exactly that
    assert (1 - share) ** 80 == pytest.approx(0.025)
    assert bootstrap_mean_ci([6.0] * 9, 1000, 0.95, 0, bounds=(1.0, 10.0)) == (None, None, None)
    assert bootstrap_mean_ci([6.0] * 80, 1000, 0.95, 0) == (None, None, None)  # a scale without bounds: none
    assert mean_interval([0.3] * 40, iterations=1000, confidence=0.95, seed=0, proportion_method="wilson",
                         bounds=(0.0, 1.0)).method == "constant-bounded"


def test_a_candidate_scored_exactly_as_its_baseline_is_non_inferior_by_a_margin():
    # identical 1-10 ratings on 80 questions had no CI, and a non-inferiority rule failed for want of one;
    # one rating 0.5 higher gave a CI [0, 0.03] and passed
    scores = {f"q{i}": float(1 + i % 10) for i in range(80)}
    same = paired_comparison(scores, dict(scores), task="mt_bench", metric="score", baseline_name="b",
                             continuous=True, bounds=(1.0, 10.0))
    share = 1 - 0.025 ** (1 / 80)
    assert same.interval == "constant-bounded"
    assert (same.ci_low, same.ci_high) == pytest.approx((-9 * share, 9 * share))
    delta = delta_from_comparison("bench.mt_bench.score", "cand", same)
    rule = NonInferiorityRule(name="ni", type="non_inferiority", metric="bench.mt_bench.score", margin=1.0)
    assert _non_inferiority_outcome(rule, True, delta, "rec").status == "pass"
    rule = NonInferiorityRule(name="ni", type="non_inferiority", metric="bench.mt_bench.score", margin=0.3)
    assert _non_inferiority_outcome(rule, True, delta, "rec").status != "pass"  # 0.41 of doubt is more than 0.3
    worse = paired_comparison(scores, {k: v + 0.5 for k, v in scores.items() if v < 10}, task="mt_bench",
                              metric="score", baseline_name="b", continuous=True, bounds=(1.0, 10.0))
    assert worse.mean_difference == -0.5 and worse.ci_low < -0.5 < worse.ci_high < 0


def test_scores_that_differ_by_float_rounding_are_ties_in_the_sign_test():
    candidate = {str(i): 0.1 + 0.2 for i in range(30)}  # 0.30000000000000004
    same = paired_comparison(candidate, {str(i): 0.3 for i in range(30)}, task="t", metric="m", baseline_name="b",
                             continuous=True)
    assert (same.wins, same.losses, same.ties, same.p_value) == (0, 0, 30, 1.0)


@pytest.mark.parametrize("score", [None, "0.5", [0.5]])
def test_a_score_that_is_no_number_is_refused_naming_the_item(score):
    with pytest.raises(InputError, match=r"t m: item 'x' of the candidate has no numeric score"):
        paired_comparison({"x": score, "y": 0.2}, {"x": 0.1, "y": 0.2}, task="t", metric="m", baseline_name="b")


# ---------------------------------------------------------------- skewed scores: BCa

def _skewed(n: int, sims: int) -> tuple[float, list[np.ndarray]]:
    a, b = 0.4, 3.0  # right-skewed in [0, 1], like per-prompt toxicity maxima
    rng = np.random.default_rng(11)
    return a / (a + b), [rng.beta(a, b, n) for _ in range(sims)]


def test_upper_bound_of_a_skewed_mean_misses_less_often_than_the_percentile_bootstraps():
    # the side a toxicity ceiling judges: P(upper bound < true mean) should be 2.5% at 95%
    mean, samples = _skewed(24, 300)
    highs = [bootstrap_mean_ci(list(x), 1000, 0.95, s)[1] for s, x in enumerate(samples)]
    percentile = [stats.bootstrap((x,), np.mean, n_resamples=1000, method="percentile",
                                  random_state=np.random.default_rng(s)).confidence_interval.high
                  for s, x in enumerate(samples)]
    bca_miss, percentile_miss = np.mean(np.array(highs) < mean), np.mean(np.array(percentile) < mean)
    # 4.7% against 7.3% on these samples (800 samples: 5.4% against 7.1%; neither is 2.5% at 24 items)
    assert bca_miss < 0.05 and percentile_miss > 0.07
    # BCa moves the upper bound out, towards the long tail, on (nearly) every right-skewed sample
    assert np.mean(np.array(highs) > np.array(percentile)) > 0.95
    x = samples[0]
    assert mean_interval(list(x), iterations=1000, confidence=0.95, seed=0,
                         proportion_method="wilson").method == "bootstrap-bca"
    comparison = _compare(dict(enumerate(x)), dict.fromkeys(range(24), 0.1))
    assert comparison.interval == "bootstrap-bca"
    assert comparison.ci_low < comparison.mean_difference < comparison.ci_high


# ---------------------------------------------------------------- non-finite scores

@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_scores_are_refused_naming_the_item(bad):
    with pytest.raises(InputError, match=r"t m: item 'b' of the candidate has a non-finite score"):
        _compare({"a": 0.5, "b": bad, "c": 0.2}, {"a": 0.4, "b": 0.3, "c": 0.1})
    with pytest.raises(InputError, match=r"item 'c' of baseline 'b' has a non-finite score"):
        _compare({"a": 1.0, "c": 0.0}, {"a": 0.0, "c": bad})
    with pytest.raises(InputError, match="non-finite"):
        bootstrap_mean_ci([0.4, bad] + [0.2] * 10, 1000, 0.95, 0)
    with pytest.raises(InputError, match="non-finite"):
        mean_interval([1.0, bad], iterations=1000, confidence=0.95, seed=0, proportion_method="wilson")
    with pytest.raises(InputError, match="non-finite"):
        independent_difference_interval([0.1, bad], [0.2, 0.3], iterations=100, confidence=0.95, seed=0)


def test_bench_refuses_a_nan_score_naming_model_metric_and_item():
    rows = paired_rows([{"doc_id": 0, "item": "h0", "scores": {"f1": 0.5}},
                        {"doc_id": 1, "item": "h1", "scores": {"f1": float("nan")}}])
    with pytest.raises(InputError, match=r"squad: cand's f1 on item 'h1' is nan"):
        _metric_scores(rows, "squad", "f1", "cand")


# ---------------------------------------------------------------- item ids

def test_ids_are_compared_as_text():
    # ids read back as ints on one side and strings on the other are the same items (was: no comparison)
    comparison = _compare({1: 1.0, 2: 0.0}, {"1": 1.0, "2": 0.0})
    assert comparison is not None and comparison.n == 2
    with pytest.raises(InputError, match="one id as text"):
        _compare({1: 1.0, "1": 0.0}, {"1": 1.0})


def test_repeated_documents_are_separate_items_paired_by_occurrence():
    # lm-eval's item key is the document hash: two identical prompts share it. Keyed by the hash alone the
    # second replaced the first: 3 rows became 2 items and a mean of 0.5 where the rows say 2/3.
    cand = paired_rows([{"doc_id": 0, "item": "h1", "scores": {"acc": 1}},
                        {"doc_id": 1, "item": "h1", "scores": {"acc": 0}},
                        {"doc_id": 2, "item": "h2", "scores": {"acc": 1}}])
    base = paired_rows([{"doc_id": 2, "item": "h2", "scores": {"acc": 0}},  # row order does not matter
                        {"doc_id": 1, "item": "h1", "scores": {"acc": 1}},
                        {"doc_id": 0, "item": "h1", "scores": {"acc": 0}}])
    comparison = _compare(_metric_scores(cand, "t", "acc", "c"), _metric_scores(base, "t", "acc", "b"))
    assert (comparison.n, comparison.candidate_mean, comparison.baseline_mean) == (3, pytest.approx(2 / 3),
                                                                                     pytest.approx(1 / 3))
    assert (comparison.wins, comparison.losses, comparison.ties) == (2, 1, 0)  # doc 0 with doc 0, 1 with 1
    # the same document under a second lm-eval filter is the same item, its later row kept (as before)
    filtered = paired_rows([{"doc_id": 0, "item": "h1", "scores": {"em": 0}},
                            {"doc_id": 0, "item": "h1", "scores": {"em": 1}}])
    assert list(filtered.values()) == [{"em": 1}]


def test_bench_refuses_to_compare_models_scored_on_different_documents(tmp_path):
    from types import SimpleNamespace

    from harness.bench.bench import compare
    from harness.core.lmeval import ModelEvalRecord, TaskScores
    from harness.core.store import atomic_write_jsonl

    def evaluated(name, items):
        folder = tmp_path / name
        atomic_write_jsonl(folder / "samples_t.jsonl", [{"doc_id": i, "item": item, "scores": {"acc": 1}}
                                                         for i, item in enumerate(items)])
        record = ModelEvalRecord(record_id=name, run_id="r", fingerprint="f", model_name=name,
                                 model={"spec": name, "source": "local", "path": name, "sha256": name},
                                 fingerprint_fields={"seed": 1}, seconds=1,
                                 tasks={"t": TaskScores(version="1", n=len(items), metrics={"acc": 1.0},
                                                        higher_is_better={"acc": True})})
        return record, folder

    config = SimpleNamespace(candidate="cand", bootstrap_iterations=100, confidence=0.95, seed=0)
    cand, cand_dir = evaluated("cand", ["h1", "h2", "h3"])
    base, base_dir = evaluated("base", ["h1", "h2", "h4"])
    with pytest.raises(InputError, match=r"t: cand and base were scored on different documents \(3 and 3 items, "
                                         r"1 only in cand, 1 only in base"):
        compare(cand, cand_dir, base, base_dir, "base", config)
    same, same_dir = evaluated("same", ["h1", "h2", "h3"])
    [comparison] = compare(cand, cand_dir, same, same_dir, "same", config)
    assert comparison.n == 3


def test_bias_refuses_a_repeated_item_id():
    from audits.bias.metrics import ItemOutcome, paired_deltas

    def outcome(item_id):
        return ItemOutcome(item_id=item_id, category="Age", condition="ambig", correct=True, biased=False,
                           non_unknown=False)

    with pytest.raises(InputError, match=r"bias: cand has 1 BBQ item id\(s\) more than once, e.g. 'Age-1'"):
        paired_deltas({"cand": [outcome("Age-1"), outcome("Age-1"), outcome("Age-2")],
                       "base": [outcome("Age-1"), outcome("Age-2")]}, "cand", iterations=100, confidence=0.95,
                      seed=0)


# ---------------------------------------------------------------- the confidence level

@pytest.mark.parametrize("confidence", [95, 0.0, 1.0, -0.5, math.nan])
def test_a_confidence_outside_0_1_is_refused_everywhere(confidence):
    # 95 (a percentage) gave NaN bounds, 0 a zero-width interval
    calls = [
        lambda: _compare({str(i): i / 20 for i in range(20)}, {str(i): 0.3 for i in range(20)}, confidence=confidence),
        lambda: _compare({"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 0.0}, confidence=confidence),
        lambda: bootstrap_mean_ci([i / 20 for i in range(20)], 100, confidence, 0),
        lambda: mean_interval([0.1, 0.2], iterations=100, confidence=confidence, seed=0, proportion_method="wilson"),
        lambda: independent_difference_interval([0.1, 0.2], [0.3, 0.5], iterations=100, confidence=confidence,
                                                seed=0),
        lambda: newcombe_paired_interval(1, 2, 3, 4, confidence),
        lambda: proportion_interval(1, 4, confidence, "wilson"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
            call()
