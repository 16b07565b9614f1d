"""Win rate, AlpacaEval's length-controlled win rate and Bradley-Terry arena ratings: closed forms where they
exist, and seeded simulations of judges with known behaviour (a length-biased judge, known model strengths)."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from harness.core.errors import InputError
from harness.core.preferences import (
    Battle,
    PreferenceJudgement,
    bradley_terry,
    length_controlled_win_rate,
    predicted_win_rate,
    win_rate,
)
from harness.core.stats import proportion_interval


# ---------------------------------------------------------------- win rate

def test_win_rate_of_binary_verdicts_takes_a_proportion_interval():
    result = win_rate({"q1": 1, "q2": 1, "q3": 0, "q4": 1, "q5": 0}, model="cand", reference="base")
    assert (result.n, result.win_rate, result.wins, result.ties, result.losses) == (5, 0.6, 3, 0, 2)
    assert (result.ci_low, result.ci_high) == pytest.approx(proportion_interval(3, 5, 0.95, "wilson"))
    assert result.interval == "wilson" and result.method == "mean-preference"
    # 5 of 5 wins: the interval does not collapse to [1, 1]
    exact = win_rate([1.0] * 5, proportion_method="clopper-pearson")
    assert exact.ci_low == pytest.approx(0.025 ** (1 / 5)) and exact.interval == "clopper-pearson"


def test_win_rate_with_ties_is_the_mean_preference_with_a_bootstrap_interval():
    result = win_rate([1, 0.5, 0.5, 0, 1, 1, 0.5, 0] * 2, seed=3)
    assert result.win_rate == pytest.approx(4.5 / 8) and (result.wins, result.ties, result.losses) == (6, 6, 4)
    assert result.interval == "bootstrap-bca" and result.ci_low < 4.5 / 8 < result.ci_high
    # 8 instructions: fewer than MIN_BOOTSTRAP_ITEMS, no interval; all ties: preferences that do not vary
    few = win_rate([1, 0.5, 0.5, 0, 1, 1, 0.5, 0], seed=3)
    assert few.win_rate == pytest.approx(4.5 / 8) and (few.ci_low, few.ci_high, few.interval) == (None, None, None)
    ties = win_rate([0.5] * 20)
    assert (ties.win_rate, ties.ci_low, ties.interval) == (0.5, None, None)


@pytest.mark.parametrize("preferences, message", [
    ({"q7": 1.5}, "instruction 'q7': preference must be in \\[0, 1\\]"),
    ([0.5, float("nan")], "preference 1: preference must be in"),
    ([], "no preferences"),
])
def test_win_rate_refuses_bad_preferences(preferences, message):
    with pytest.raises(InputError, match=message):
        win_rate(preferences)


# ---------------------------------------------------------------- length-controlled win rate

def _judged(rng, n, *, model, verbosity, quality=0.0, difficulty=None, bias=1.5):
    """A judge that prefers the longer answer: P(model preferred) = logistic(quality + difficulty_x +
    bias * tanh(dlen / 300)); the model's answers are ``verbosity`` characters longer than the reference's on
    average (sd 300). The judge's length scale (300 characters) is not the GLM's (the std of dlen), as with a
    real judge."""
    reference = rng.lognormal(6, 0.5, n)
    own = np.clip(reference + rng.normal(verbosity, 300, n), 1, None)
    logit = quality + (0 if difficulty is None else difficulty) + bias * np.tanh((own - reference) / 300)
    preferred = rng.random(n) < 1 / (1 + np.exp(-logit))
    return [PreferenceJudgement(instruction=f"x{k}", model=model, reference="ref", preference=float(preferred[k]),
                                model_length=float(own[k]), reference_length=float(reference[k]))
            for k in range(n)]


@pytest.mark.parametrize("verbosity", [400, -400])
def test_length_biased_judge_moves_the_raw_win_rate_but_not_the_length_controlled_one(verbosity):
    # two equally good models; one writes answers 400 characters longer (or shorter) than the other
    judgements = _judged(np.random.default_rng(7), 800, model="verbose", verbosity=verbosity)
    result = length_controlled_win_rate(judgements, "verbose", iterations=200, seed=1)
    raw = win_rate([j.preference for j in judgements])
    assert abs(raw.win_rate - 0.5) > 0.2 and not raw.ci_low <= 0.5 <= raw.ci_high
    # tolerance 0.07: over 15 seeds of this simulation the LC win rate lay in [0.436, 0.564]
    assert result.length_controlled_win_rate == pytest.approx(0.5, abs=0.07)
    assert result.ci_low <= 0.5 <= result.ci_high and result.interval == "bootstrap-percentile"
    assert result.win_rate == pytest.approx(raw.win_rate)
    assert result.length_coefficient > 0.5  # the judge's taste for length is found
    assert (result.difficulty, result.difficulty_coefficient) == ("omitted: one model", None)
    assert math.copysign(1, result.mean_length_difference) == math.copysign(1, verbosity)
    assert result.scale == "fraction" and result.reference == "ref"


def test_instruction_difficulty_across_models_and_a_better_model_keeps_its_advantage():
    rng = np.random.default_rng(11)
    difficulty = rng.normal(0, 1.0, 600)
    judgements = (_judged(rng, 600, model="plain", verbosity=0, difficulty=difficulty)
                  + _judged(rng, 600, model="verbose", verbosity=400, difficulty=difficulty)
                  # better (log-odds +1 against the reference at equal length) but terse
                  + _judged(rng, 600, model="better", verbosity=-300, quality=1.0, difficulty=difficulty))
    results = {m: length_controlled_win_rate(judgements, m, iterations=0) for m in ("plain", "verbose", "better")}
    assert all(r.difficulty == "per-instruction, estimated across 3 models" for r in results.values())
    assert all(r.difficulty_coefficient > 0.5 for r in results.values())  # difficulty is found in every model
    assert results["verbose"].win_rate > 0.65
    assert results["plain"].length_controlled_win_rate == pytest.approx(0.5, abs=0.06)
    assert results["verbose"].length_controlled_win_rate == pytest.approx(0.5, abs=0.06)
    # the better model's true length-free win rate: mean over instructions of logistic(1 + difficulty)
    truth = float(np.mean(1 / (1 + np.exp(-(1 + difficulty)))))
    assert results["better"].win_rate < truth - 0.1  # its terse answers cost it under the biased judge
    assert results["better"].length_controlled_win_rate == pytest.approx(truth, abs=0.05)
    assert results["better"].ci_low is None and results["better"].iterations == 0


def test_length_controlled_win_rate_without_length_differences_is_the_raw_win_rate():
    # no length term and no difficulty: the GLM is an intercept, and logistic(theta) is the mean preference
    prefs = [1, 1, 0, 1, 0.5, 1, 0, 1, 1, 0.5]
    judgements = [PreferenceJudgement(instruction=str(k), model="m", preference=p, model_length=50,
                                      reference_length=50) for k, p in enumerate(prefs)]
    result = length_controlled_win_rate(judgements, "m", iterations=100)
    assert result.length_controlled_win_rate == pytest.approx(np.mean(prefs), abs=1e-6)
    assert result.length_difference_std == 0 and result.length_coefficient == 0
    # a model judged against its own answers: 0.5 exactly, with no spread
    tie = [j.model_copy(update={"preference": 0.5}) for j in judgements]
    same = length_controlled_win_rate(tie, "m", iterations=50)
    assert (same.length_controlled_win_rate, same.ci_low, same.ci_high) == pytest.approx((0.5, 0.5, 0.5))


def test_a_model_that_wins_every_instruction_gets_a_finite_length_controlled_win_rate():
    judgements = [PreferenceJudgement(instruction=str(k), model="m", preference=1.0, model_length=10 + 7 * k,
                                      reference_length=100) for k in range(30)]
    result = length_controlled_win_rate(judgements, "m", iterations=20)
    assert result.length_controlled_win_rate == pytest.approx(1.0, abs=1e-3)
    assert math.isfinite(result.model_coefficient) and result.ci_low == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("rows, message", [
    ([("m", "x1", "r1"), ("m", "x2", "r2")], "several references \\(r1, r2\\)"),
    ([("m", "x1", "r"), ("m", "x1", "r")], "model 'm' is judged twice on instruction 'x1'"),
    ([("other", "x1", "r")], "no judgements of model 'm'"),
])
def test_length_controlled_win_rate_refuses_inconsistent_judgements(rows, message):
    judgements = [PreferenceJudgement(instruction=x, model=m, reference=r, preference=1, model_length=1,
                                      reference_length=1) for m, x, r in rows]
    with pytest.raises(InputError, match=message):
        length_controlled_win_rate(judgements, "m", iterations=0)


# ---------------------------------------------------------------- Bradley-Terry arena ratings

TRUE = {"base": 1000.0, "mid": 1100.0, "top": 1250.0, "low": 900.0}


def _battles(rng, n):
    """Battles between random pairs, decided by the Bradley-Terry model at the TRUE ratings (no ties)."""
    names, battles = list(TRUE), []
    for _ in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        battles.append(Battle(model_a=a, model_b=b,
                              winner="a" if rng.random() < predicted_win_rate(TRUE[a], TRUE[b]) else "b"))
    return battles


def test_ratings_recover_known_strengths_and_their_cis_cover_the_true_gaps():
    result = bradley_terry(_battles(np.random.default_rng(0), 1500), anchor="base", iterations=200, seed=0)
    assert [r.model for r in result.ratings] == ["top", "mid", "base", "low"]
    by_model = {r.model: r for r in result.ratings}
    assert by_model["base"].rating == 1000 and (by_model["base"].ci_low, by_model["base"].ci_high) == (1000, 1000)
    for name, rating in by_model.items():
        assert rating.rating == pytest.approx(TRUE[name], abs=40)  # gaps of 100-250 points, within 40
        assert rating.ci_low <= TRUE[name] <= rating.ci_high
        assert rating.win_rate_vs_anchor == pytest.approx(1 / (1 + 10 ** ((1000 - rating.rating) / 400)))
        assert rating.win_rate_ci_low <= rating.win_rate_vs_anchor <= rating.win_rate_ci_high
    assert sum(r.battles for r in result.ratings) == 2 * 1500 and result.resamples_used == 200
    assert (result.anchor, result.interval, result.iterations) == ("base", "bootstrap-percentile", 200)


def test_rating_cis_cover_the_true_gaps_in_most_simulations():
    # 10 seeded simulations x 3 non-anchor models: 95% intervals should cover about 28.5 of 30 (binomial sd
    # 1.2; these seeds give 25, over 40 other seeds coverage was 94%). 24 leaves room for a library's change of
    # solver and still fails intervals half as wide as they should be (they would cover about 20)
    covered = 0
    for seed in range(10):
        result = bradley_terry(_battles(np.random.default_rng(100 + seed), 300), anchor="base", iterations=100,
                               seed=seed)
        covered += sum(r.ci_low <= TRUE[r.model] <= r.ci_high for r in result.ratings if r.model != "base")
    assert covered >= 24


def test_ties_count_as_half_a_win_each():
    # unpenalised two-model fit: the odds are (wins + ties/2) / (losses + ties/2), so the gap is
    # 400 log10 of them: 30 wins, 10 losses and 20 ties give odds 40:20
    battles = ([Battle(model_a="a", model_b="b", winner="a")] * 30 + [Battle(model_a="b", model_b="a", winner="a")] * 10
               + [Battle(model_a="a", model_b="b", winner="tie")] * 20)
    result = bradley_terry(battles, anchor="b", iterations=0, inverse_regularization=None)
    by_model = {r.model: r for r in result.ratings}
    assert by_model["a"].rating == pytest.approx(1000 + 400 * math.log10(2), abs=0.01)
    assert by_model["a"].win_rate_vs_anchor == pytest.approx(40 / 60, abs=1e-4)
    assert (by_model["a"].wins, by_model["a"].ties, by_model["a"].losses) == (30, 20, 10)
    assert by_model["a"].ci_low is None and result.resamples_used == 0
    only_ties = bradley_terry([Battle(model_a="a", model_b="b", winner="tie")] * 6, iterations=10)
    assert [r.rating for r in only_ties.ratings] == pytest.approx([1000, 1000])


def test_a_model_with_only_wins_gets_a_finite_rating():
    # 48 wins in 48 battles. With the L2 penalty (C = 1) the ratings are +-400 b around 1000, where b solves
    # 2 b = 48 * 2 ln(10) * logistic(-2 ln(10) b) (the penalised likelihood's stationary point, by symmetry)
    result = bradley_terry([Battle(model_a="x", model_b="y", winner="a")] * 48, iterations=20)
    b = brentq(lambda b: 2 * b - 48 * 2 * math.log(10) / (1 + math.exp(2 * math.log(10) * b)), 0, 10)
    top, bottom = result.ratings
    assert (top.model, bottom.model) == ("x", "y")
    assert top.rating == pytest.approx(1000 + 400 * b, abs=0.1) and bottom.rating == pytest.approx(1000 - 400 * b,
                                                                                                  abs=0.1)
    assert 700 < top.rating - bottom.rating < 900 and top.win_rate_vs_anchor < 1  # anchored on the mean: 1000
    assert math.isfinite(top.ci_high)


@pytest.mark.parametrize("battles, anchor, message", [
    ([], None, "no battles"),
    ([Battle(model_a="a", model_b="a", winner="tie")], None, "battle 0 pits 'a' against itself"),
    ([Battle(model_a="a", model_b="b", winner="a")], "c", "anchor 'c' is in no battle"),
    ([Battle(model_a="a", model_b="b", winner="a"), Battle(model_a="c", model_b="d", winner="b")], None,
     "do not connect all models; separate groups: \\[a, b\\]; \\[c, d\\]"),
])
def test_bradley_terry_refuses_unusable_battles(battles, anchor, message):
    with pytest.raises(InputError, match=message):
        bradley_terry(battles, anchor=anchor, iterations=0)


def test_no_preference_interval_from_fewer_than_ten_resampled_units():
    # like every bootstrap of the project, these give no interval below MIN_BOOTSTRAP_ITEMS instructions or
    # battles (the percentile bootstrap used to give one from 2)
    def judged(k):
        return PreferenceJudgement(instruction=f"x{k}", model="m", reference="ref", preference=float(k % 2),
                                   model_length=100.0 + k, reference_length=100.0)

    few = length_controlled_win_rate([judged(k) for k in range(9)], "m", iterations=200)
    assert (few.ci_low, few.ci_high, few.interval, few.iterations) == (None, None, None, 0)
    enough = length_controlled_win_rate([judged(k) for k in range(10)], "m", iterations=200)
    assert enough.interval == "bootstrap-percentile"
    assert enough.ci_low < enough.length_controlled_win_rate < enough.ci_high

    battles = [Battle(model_a="a", model_b="b", winner="a" if k % 3 else "b") for k in range(10)]
    few_battles = bradley_terry(battles[:9], anchor="b", iterations=200)
    assert few_battles.iterations == few_battles.resamples_used == 0
    assert all(r.ci_low is None for r in few_battles.ratings)
    rated = {r.model: r for r in bradley_terry(battles, anchor="b", iterations=200).ratings}
    assert rated["a"].ci_low < rated["a"].rating < rated["a"].ci_high
