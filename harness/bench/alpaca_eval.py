"""AlpacaEval-style win rates against a reference model's answers, raw and length-controlled.

The reference side is either the ``output`` of the user's AlpacaEval file (AlpacaEval 2 publishes GPT-4 Turbo's
outputs as its reference; the file's ``generator`` names it) or a baseline's answers to the same instructions.
Each model's answer is judged against the reference's in both orders with the pairwise judge's prompt and
verdict rule (:mod:`harness.bench.pairwise`), so a verdict is a win, a tie or a loss (preference 1, 0.5, 0),
or unparseable, which leaves the instruction out.

* win rate: the mean preference over instructions (:func:`harness.core.preferences.win_rate`), a fraction;
  AlpacaEval's leaderboard shows 100 times it.
* length-controlled win rate: AlpacaEval 2's GLM of the preference on the model's identity, the standardized
  length difference (characters) and the instruction's difficulty (estimated across every model judged here),
  with the length term set to zero (:func:`harness.core.preferences.length_controlled_win_rate`). A judge that
  favours long answers moves the raw win rate of a verbose model; it does not move this one.

AlpacaEval's own judge ranks the two outputs once, with randomised order and token log-probabilities; here the
judge gives a verdict in both orders instead, so position bias cancels and its consistency is measured.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from harness.bench.pairwise import PairwiseItem, Question, VerdictRule, judge_pair
from harness.core.errors import ConfigError, InputError
from harness.core.preferences import (
    LengthControlledDifference,
    LengthControlledWinRate,
    PreferenceJudgement,
    WinRate,
    length_controlled_difference,
    length_controlled_win_rate,
    win_rate,
)
from harness.core.stats import PairedComparison, paired_comparison

ALPACA_EVAL = "alpaca_eval"
PREFERENCE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


class AlpacaEvalItem(BaseModel):
    """One model's answer to one instruction judged against the reference's: a row of ``alpaca_eval.jsonl``."""

    question_id: str
    turns: list[str]
    model: str
    reference: str = Field(description="The reference model's name.")
    answer: list[str]
    reference_answer: list[str]
    verdict_model_first: str = Field(description="The judge's verdict with the model's answer as A.")
    verdict_reference_first: str = Field(description="The judge's verdict with the reference's answer as A.")
    outcome: str = Field(description="'win', 'tie', 'loss' (for the model) or 'unparseable'.")
    consistent: bool | None = Field(description="Same verdict in both orders; None when one was unparseable.")
    preference: float | None = Field(description="1 win, 0.5 tie, 0 loss; None when unparseable.")
    model_length: int = Field(description="Characters of the model's answer (all turns).")
    reference_length: int = Field(description="Characters of the reference's answer.")


class AlpacaEvalModel(BaseModel):
    """One model's win rates against the reference."""

    model: str
    judged: int = Field(description="Instructions judged.")
    unparseable: int = Field(description="Instructions without a parseable verdict in both orders (left out).")
    consistent: int = Field(description="Instructions with the same verdict in both orders.")
    win_rate: WinRate | None = Field(description="Mean preference with its CI; None when no verdict parsed.")
    length_controlled: LengthControlledWinRate | None = Field(description="AlpacaEval 2's length-controlled win "
                                                                          "rate; None when no verdict parsed.")


class AlpacaEvalResult(BaseModel):
    """AlpacaEval-style evaluation of the candidate and the baselines (``BenchRecord.alpaca_eval``)."""

    reference: str = Field(description="The reference model: the file's generator, or the baseline's name.")
    reference_source: Literal["file", "baseline"] = Field(description="'file': the instruction file's outputs; "
                                                                      "'baseline': a baseline's answers.")
    judge: str
    judge_backend: str
    note: str = Field("", description="A warning about the judge (the embedded one is weak), else empty.")
    verdict_rule: VerdictRule
    instructions: int
    length_unit: Literal["characters"] = "characters"
    models: list[AlpacaEvalModel] = Field(description="Candidate first, then every baseline that is not the "
                                                      "reference.")
    comparisons: list[PairedComparison] = Field(default_factory=list, description="Candidate vs each judged "
                                                                                  "baseline, paired by "
                                                                                  "instruction: metric win_rate.")
    lc_differences: list[LengthControlledDifference] = Field(
        default_factory=list, description="Candidate minus each judged baseline in length-controlled win rate, "
                                          "on the instructions both were judged on (paired bootstrap).")


def reference_answers(questions: list[Question], reference: str | None, baselines: list[str], path: str
                      ) -> tuple[str, str, dict[str, list[str]] | None]:
    """(reference name, source, the file's reference answers or None for a baseline's). A reference that is not
    a baseline, or a file row without an ``output``, is refused naming the field."""
    if reference is not None:
        if reference not in baselines:
            raise ConfigError(f"bench.alpaca_eval.reference: {reference!r} is not a baseline "
                              f"({', '.join(baselines)}); use a baseline's name, or null for the file's outputs")
        return reference, "baseline", None
    if missing := [q.id for q in questions if not (q.reference_output or "").strip()]:
        raise InputError(f"{path}: instruction {missing[0]!r} has no 'output' (the reference answer; "
                         f"{len(missing)} of {len(questions)} lack one); use AlpacaEval's file with outputs, or set "
                         f"bench.alpaca_eval.reference to a baseline's name")
    generators = {q.reference_generator for q in questions if q.reference_generator}
    name = generators.pop() if len(generators) == 1 else "reference"
    return name, "file", {q.id: [q.reference_output] for q in questions}


def judge_against_reference(judge, questions: list[Question], answers: dict[str, dict[str, list[str]]],
                            reference: dict[str, list[str]], reference_name: str, judge_name: str,
                            max_new_tokens: int, rule: VerdictRule, iterations: int, confidence: float, seed: int,
                            inverse_regularization: float) -> tuple[list[AlpacaEvalModel], list[AlpacaEvalItem],
                                                                    list[PairedComparison],
                                                                    list[LengthControlledDifference]]:
    """Every model (``answers``, candidate first) judged against ``reference`` in both orders; each model's win
    rate and length-controlled win rate, and the candidate's paired comparisons with the others."""
    rows: list[AlpacaEvalItem] = []
    for model, own in answers.items():
        _, judged = judge_pair(judge, questions, own, reference, reference_name, judge_name, max_new_tokens,
                               iterations, confidence, seed, rule)
        rows += [_item(i, model, reference_name) for i in judged]
    judgements = [PreferenceJudgement(instruction=r.question_id, model=r.model, reference=reference_name,
                                      preference=r.preference, model_length=r.model_length,
                                      reference_length=r.reference_length) for r in rows if r.preference is not None]
    stats = {"confidence": confidence, "iterations": iterations, "seed": seed}
    results = []
    for model in answers:
        mine = [r for r in rows if r.model == model]
        prefs = {r.question_id: r.preference for r in mine if r.preference is not None}
        results.append(AlpacaEvalModel(
            model=model, judged=len(mine), unparseable=len(mine) - len(prefs),
            consistent=sum(1 for r in mine if r.consistent),
            win_rate=win_rate(prefs, model=model, reference=reference_name, **stats) if prefs else None,
            length_controlled=length_controlled_win_rate(judgements, model, inverse_regularization=inverse_regularization,
                                                         **stats) if prefs else None))
    candidate, others = next(iter(answers)), list(answers)[1:]
    comparisons, differences = [], []
    for other in others:
        mine, theirs = ({r.question_id: r.preference for r in rows if r.model == m and r.preference is not None}
                        for m in (candidate, other))
        comparison = paired_comparison(mine, theirs, task=ALPACA_EVAL, metric="win_rate", baseline_name=other,
                                       higher_is_better=True, iterations=iterations, confidence=confidence,
                                       seed=seed, continuous=True)
        if comparison is not None:  # None: no instruction with a verdict for both
            comparisons.append(comparison)
            differences.append(length_controlled_difference(judgements, candidate, other,
                                                            inverse_regularization=inverse_regularization, **stats))
    return results, rows, comparisons, differences


def _item(item: PairwiseItem, model: str, reference: str) -> AlpacaEvalItem:
    return AlpacaEvalItem(
        question_id=item.question_id, turns=item.turns, model=model, reference=reference, answer=item.candidate_answer,
        reference_answer=item.baseline_answer, verdict_model_first=item.verdict_candidate_first,
        verdict_reference_first=item.verdict_baseline_first, outcome=item.outcome, consistent=item.consistent,
        preference=PREFERENCE.get(item.outcome), model_length=sum(map(len, item.candidate_answer)),
        reference_length=sum(map(len, item.baseline_answer)))
