"""Arena ratings: Bradley-Terry over every pairwise verdict of the run, as Chatbot Arena and Arena-Hard rate models.

The battles are the pairwise judge's verdicts on every pair of models -- the candidate, every baseline, and the
earlier candidates of this run whose stored pairwise answers are to the same questions -- over bench.pairwise's
questions (one battle per question and pair: the verdict of both orders under the pairwise verdict rule), plus
the AlpacaEval verdicts against the reference when the same judge gave them (the reference model then takes
part). A pair's verdict on a question that two sources both hold is counted once.

Ratings and their CIs come from :func:`harness.core.preferences.bradley_terry`, resampling questions (each with
all its battles: one hard question is hard for every model), on the Elo scale with the anchor at 1000; the
candidate's gap to each baseline, with its CI from the same resamples, is what a policy gates on
(``bench.arena.rating``).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from harness.bench.pairwise import PairwiseItem
from harness.core.errors import InputError
from harness.core.preferences import ArenaRatings, Battle, bradley_terry
from harness.core.records import config_hash

ARENA = "arena"
#: A candidate-side outcome as the winner of a battle whose model_a is that candidate.
WINNER = {"win": "a", "loss": "b", "tie": "tie"}


class ArenaBattle(BaseModel):
    """One question judged between two models: a row of ``arena.jsonl``."""

    question_id: str
    question: str = Field(description="Hash of the question's turns: the unit the bootstrap resamples (the same "
                                      "question asked by two suites is one question).")
    source: str = Field(description="'pairwise' (bench.pairwise's questions) or 'alpaca_eval'.")
    model_a: str
    model_b: str
    verdict_a_first: str = Field(description="The judge's verdict with model_a's answer shown as A.")
    verdict_b_first: str = Field(description="The judge's verdict with model_b's answer shown as A.")
    winner: str = Field(description="'a', 'b', 'tie', or 'unparseable' (left out of the fit).")
    consistent: bool | None


class EarlierCandidate(BaseModel):
    """Another candidate benched in this run, and whether its answers took part."""

    name: str
    record_id: str
    included: bool
    reason: str = Field("", description="Why it was left out (other questions, length or seed), else empty.")


class ArenaResult(BaseModel):
    """Bradley-Terry arena ratings of the run's models (``BenchRecord.arena``)."""

    judge: str
    judge_backend: str
    note: str = Field("", description="A warning about the judge (the embedded one is weak), else empty.")
    models: list[str] = Field(description="Every model rated: candidate, baselines, earlier candidates, and the "
                                          "AlpacaEval reference when its verdicts took part.")
    earlier_candidates: list[EarlierCandidate] = Field(default_factory=list)
    battles: int = Field(description="Battles fitted (parseable verdicts).")
    unparseable: int = Field(description="Question-pairs whose verdicts did not parse (left out).")
    sources: dict[str, int] = Field(description="Battles fitted per source (pairwise, alpaca_eval).")
    ratings: ArenaRatings | None = Field(description="Ratings with bootstrap CIs by question; None when no "
                                                     "battle parsed.")
    reason: str = Field("", description="Why there are no ratings, else empty.")


def question_key(turns: list[str]) -> str:
    """The resampled unit of a battle: its question's turns, by content."""
    return config_hash(list(turns))[:16]


def battles_of(items: list[PairwiseItem], model_a: str, source: str) -> list[ArenaBattle]:
    """Judged pairwise items (``model_a`` was the pair's first, 'candidate' side) as arena battles."""
    return [ArenaBattle(question_id=i.question_id, question=question_key(i.turns), source=source, model_a=model_a,
                        model_b=i.baseline, verdict_a_first=i.verdict_candidate_first,
                        verdict_b_first=i.verdict_baseline_first, winner=WINNER.get(i.outcome, "unparseable"),
                        consistent=i.consistent) for i in items]


def rate(battles: list[ArenaBattle], candidate: str, anchor: str, *, iterations: int,
         confidence: float, seed: int, inverse_regularization: float | None
         ) -> tuple[ArenaRatings | None, list[ArenaBattle], str]:
    """The ratings of the parseable battles, each (question, pair) once; the battles fitted; why none (or '')."""
    fitted, seen = [], set()
    for b in battles:
        key = (b.question, frozenset((b.model_a, b.model_b)))
        if b.winner == "unparseable" or key in seen:
            continue
        seen.add(key)
        fitted.append(b)
    if not fitted:
        return None, [], "no battle has a parseable verdict in both orders"
    rated = {m for b in fitted for m in (b.model_a, b.model_b)}
    if candidate not in rated or anchor not in rated:
        return None, fitted, f"{candidate if candidate not in rated else anchor} has no parseable battle"
    try:
        ratings = bradley_terry([Battle(model_a=b.model_a, model_b=b.model_b, winner=b.winner, question=b.question)
                                 for b in fitted], anchor=anchor, confidence=confidence, iterations=iterations,
                                seed=seed, inverse_regularization=inverse_regularization, resample="questions",
                                versus=candidate)
    except InputError as exc:  # the parseable battles leave the models in groups no battle connects
        return None, fitted, str(exc)
    return ratings, fitted, ""
