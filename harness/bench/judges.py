"""What stands next to every judge-based number of the bench (item 8 of the judging issue): which judge gave it,
whether that judge is itself one of the models it judged (self-preference), how consistent its verdicts were
under a swap of the answers' positions, how long the answers it saw were, and what it cost.

A judge is one of the models it judges when it has the same weights (content hash) as a candidate or baseline,
or, for an endpoint (whose weights cannot be seen from here), when its served model name is that model's
reference. LLM judges are known to favour their own answers (Zheng et al. 2023, section 3.3; Panickssery et al.
2024), so such a judge's numbers about its own model are flagged, not trusted.

Answer lengths are in characters (AlpacaEval's unit), all turns of an answer together: judges also favour long
answers, so a win rate is read with the lengths beside it.
"""

from __future__ import annotations

from statistics import median
from typing import Literal

from pydantic import BaseModel, Field

from harness.core.generation import GeneratorConfig
from harness.core.generation_cache import GenerationUsage
from harness.core.models import EMBEDDED_MODELS, ResolvedModel

JudgeTask = Literal["pairwise", "mt_bench", "alpaca_eval", "arena"]


class AnswerLength(BaseModel):
    """One model's answer lengths over the questions a judge task saw."""

    mean: float | None = Field(description="Mean characters per answer (all turns together); None without one.")
    median: float | None
    n: int = Field(description="Answers measured.")
    unit: Literal["characters"] = "characters"


class JudgeUse(BaseModel):
    """One judge task of the bench, and what stands next to every number it produced."""

    task: JudgeTask = Field(description="pairwise, mt_bench (single-answer grading), alpaca_eval or arena.")
    judge: str = Field(description="The judge model (its served name for an endpoint).")
    backend: str
    weak: bool = Field(description="The embedded 135M model: its verdicts and ratings only exercise the pipeline.")
    note: str = Field("", description="What to keep in mind when reading this task's numbers.")
    self_preference: list[str] = Field(default_factory=list, description="Models judged here that the judge is "
                                                                         "itself: its numbers about them may be "
                                                                         "inflated by self-preference.")
    self_preference_basis: str = Field("", description="How they were recognised: 'same weights (sha256)' or "
                                                       "'same model name' (an endpoint); empty when none.")
    judgements: int = Field(0, description="Judge replies this task asked for (both orders count).")
    unparseable: int = Field(0, description="Replies that named no verdict or rating (never a default one).")
    consistent: int | None = Field(None, description="Questions with the same verdict in both answer orders "
                                                     "(None for single-answer grading: no positions to swap).")
    position_consistency: float | None = Field(None, description="consistent / questions with two parseable "
                                                                 "verdicts; None for single-answer grading.")
    position_n: int | None = Field(None, description="The questions position consistency is counted over.")
    answer_length: dict[str, AnswerLength] = Field(default_factory=dict, description="Model -> lengths of the "
                                                                                     "answers the judge saw.")
    usage: GenerationUsage | None = Field(None, description="Calls, cache hits, tokens and estimated cost of this "
                                                            "task (None: a judge injected by a test).")


def answer_lengths(answers: dict[str, dict[str, list[str]]]) -> dict[str, AnswerLength]:
    """Model -> lengths of its answers (``answers``: model -> question id -> the answer to each turn)."""
    out = {}
    for model, by_question in answers.items():
        sizes = [sum(len(turn) for turn in turns) for turns in by_question.values()]
        out[model] = AnswerLength(mean=sum(sizes) / len(sizes) if sizes else None,
                                  median=float(median(sizes)) if sizes else None, n=len(sizes))
    return out


def self_preference(judge: GeneratorConfig, judge_sha256: str | None, models: dict[str, tuple[str, ResolvedModel]]
                    ) -> tuple[list[str], str]:
    """The models (name -> (configured spec, resolved model)) that ``judge`` is, and on what basis: by weights
    hash where the judge's is known (a local judge), else by the judge's model name against each model's spec,
    embedded name, folder or hub id (an endpoint serving the model under that name)."""
    if judge_sha256 is not None and judge.backend != "openai":
        same = [name for name, (_, resolved) in models.items() if resolved.sha256 == judge_sha256]
        return same, "same weights (sha256)" if same else ""
    same = [name for name, (spec, resolved) in models.items()
            if judge.model in {name, spec, resolved.spec, resolved.path, resolved.hub_id}]
    return same, "same model name" if same else ""


def is_weak(judge: GeneratorConfig) -> bool:
    """The embedded model judging: a 135M model's verdicts and ratings are close to chance."""
    return judge.model in EMBEDDED_MODELS
