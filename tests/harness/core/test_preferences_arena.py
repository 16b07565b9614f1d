"""Arena ratings resampled by question, rating gaps with their CIs, and the paired difference of two models'
length-controlled win rates."""

import numpy as np
import pytest

from harness.core.errors import InputError
from harness.core.preferences import (
    Battle,
    PreferenceJudgement,
    bradley_terry,
    length_controlled_difference,
    length_controlled_win_rate,
)


def _clustered(rng, questions: int, repeats: int) -> list[Battle]:
    """Battles of a against b where a question decides them all: a wins every battle of 60% of the questions."""
    battles = []
    for q in range(questions):
        winner = "a" if rng.random() < 0.6 else "b"
        battles += [Battle(model_a="a", model_b="b", winner=winner, question=f"q{q}") for _ in range(repeats)]
    return battles


def test_resampling_questions_keeps_the_ratings_and_widens_the_ci_of_correlated_battles():
    battles = _clustered(np.random.default_rng(3), 40, 5)
    by_battle = bradley_terry(battles, anchor="b", iterations=200, seed=1)
    by_question = bradley_terry(battles, anchor="b", iterations=200, seed=1, resample="questions")
    a_battle, a_question = (next(r for r in x.ratings if r.model == "a") for x in (by_battle, by_question))
    assert a_battle.rating == pytest.approx(a_question.rating)  # the same fit; only the bootstrap differs
    # five battles per question carry one question's information: the honest CI is about sqrt(5) times wider
    ratio = (a_question.ci_high - a_question.ci_low) / (a_battle.ci_high - a_battle.ci_low)
    assert 1.6 < ratio < 3.0
    assert (by_question.resampled, by_question.questions, by_battle.resampled, by_battle.questions) == (
        "questions", 40, "battles", None)


def test_the_gap_to_every_other_model_comes_with_a_ci_and_does_not_depend_on_the_anchor():
    rng = np.random.default_rng(8)
    strength = {"cand": 1.0, "base": 0.0, "weak": -1.0}
    battles = []
    for q in range(150):
        for a, b in (("cand", "base"), ("cand", "weak"), ("base", "weak")):
            p = 1 / (1 + np.exp(strength[b] - strength[a]))
            battles.append(Battle(model_a=a, model_b=b, winner="a" if rng.random() < p else "b", question=f"q{q}"))
    on_base = bradley_terry(battles, anchor="base", iterations=100, resample="questions", versus="cand")
    on_weak = bradley_terry(battles, anchor="weak", iterations=100, resample="questions", versus="cand")
    rating = {r.model: r.rating for r in on_base.ratings}
    gaps = {d.opponent: d for d in on_base.differences}
    assert set(gaps) == {"base", "weak"} and all(d.model == "cand" and d.questions == 150 for d in gaps.values())
    assert gaps["base"].difference == pytest.approx(rating["cand"] - rating["base"])
    assert 0 < gaps["base"].ci_low < gaps["base"].difference < gaps["base"].ci_high
    assert gaps["weak"].difference > gaps["base"].difference
    for d, e in zip(on_base.differences, on_weak.differences):  # anchor-free, resample by resample
        assert (d.difference, d.ci_low, d.ci_high) == pytest.approx((e.difference, e.ci_low, e.ci_high), abs=1e-6)


@pytest.mark.parametrize("battles, kwargs, message", [
    ([Battle(model_a="a", model_b="b", winner="a")], {"resample": "questions"}, "battle 0 names no question"),
    ([Battle(model_a="a", model_b="b", winner="a")], {"versus": "c"}, "versus 'c' is in no battle"),
])
def test_resampling_questions_needs_them_and_versus_must_battle(battles, kwargs, message):
    with pytest.raises(InputError, match=message):
        bradley_terry(battles, **kwargs)


def _judged(rng, n, model, verbosity, quality):
    reference = rng.lognormal(6, 0.5, n)
    own = np.clip(reference + rng.normal(verbosity, 300, n), 1, None)
    logit = quality + 1.5 * np.tanh((own - reference) / 300)
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    return [PreferenceJudgement(instruction=f"x{k}", model=model, reference="ref", preference=float(won[k]),
                                model_length=float(own[k]), reference_length=float(reference[k])) for k in range(n)]


def test_the_length_controlled_difference_of_two_models_is_paired_by_instruction():
    rng = np.random.default_rng(2)
    # equally good, one verbose: the raw gap is large, the length-controlled one is not
    same = _judged(rng, 600, "verbose", 400, 0.0) + _judged(rng, 600, "plain", 0, 0.0)
    gap = length_controlled_difference(same, "verbose", "plain", iterations=60, seed=0)
    raw = np.mean([j.preference for j in same if j.model == "verbose"]) - np.mean(
        [j.preference for j in same if j.model == "plain"])
    assert raw > 0.15 and abs(gap.difference) < 0.08 and gap.ci_low <= 0 <= gap.ci_high
    assert (gap.n, gap.interval, gap.reference) == (600, "bootstrap-percentile", "ref")
    # the difference of the two models' own length-controlled win rates (same instructions, same difficulty)
    separately = [length_controlled_win_rate(same, m, iterations=0).length_controlled_win_rate
                  for m in ("verbose", "plain")]
    assert gap.difference == pytest.approx(separately[0] - separately[1], abs=1e-9)
    # a better model (log-odds +1 at equal length) keeps its advantage, and its CI excludes 0
    better = _judged(rng, 600, "better", 0, 1.0) + _judged(rng, 600, "plain", 0, 0.0)
    ahead = length_controlled_difference(better, "better", "plain", iterations=60, seed=0)
    assert ahead.difference > 0.1 and ahead.ci_low > 0
    with pytest.raises(InputError, match="share no judged instruction"):
        length_controlled_difference([j.model_copy(update={"instruction": "y" + j.instruction}) if j.model == "plain"
                                      else j for j in same], "verbose", "plain", iterations=0)
