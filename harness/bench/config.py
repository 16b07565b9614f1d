"""Configuration of `nift-gate bench`: which candidate, which baselines, which tasks, how they are run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from harness.bench.pairwise import VerdictRule
from harness.core.config import ModelRef, Section
from harness.core.generation import GeneratorConfig
from harness.core.lmeval import LmEvalSettings

_LM_EVAL = LmEvalSettings.model_fields


def greedy_unless_told(value: Any) -> Any:
    """A judge given without a temperature judges greedily (temperature 0): the same answers must get the same
    verdict on every run. A temperature the user wrote is kept."""
    if isinstance(value, dict) and "temperature" not in value:
        return {**value, "temperature": 0.0}
    return value


class PairwiseConfig(Section):
    enabled: bool = Field(False, description="Judge candidate vs each baseline answer by answer (MT-Bench style).")
    prompts: str = Field("embedded:suites/pairwise_questions.jsonl",
                         description="JSONL of questions: {id, turns: [one or two user turns]}; MT-Bench's "
                                     "question file (question_id is used as the id) and AlpacaEval's "
                                     "instruction/output file (JSONL or JSON array) are read as published.")
    limit: int | None = Field(None, ge=1, description="Use only the first N questions.")
    max_new_tokens: int = Field(128, ge=1, description="Answer length for candidate and baselines.")
    verdict_rule: VerdictRule = Field(
        "mt-bench", description="A question whose two verdicts differ once the order is un-swapped: 'mt-bench' "
                                "counts it a tie (MT-Bench's rule); 'lenient' counts a win in one order and a tie "
                                "in the other as a win.")
    judge: GeneratorConfig = Field(default_factory=lambda: GeneratorConfig(temperature=0.0, max_new_tokens=16,
                                                                         repetition_penalty=1.0),
                                 description="The judge model and backend (a strong model where you have one); "
                                             "temperature 0 unless set.")

    _greedy = field_validator("judge", mode="before")(greedy_unless_told)


class MtBenchConfig(Section):
    enabled: bool = Field(False, description="Grade every answer of the candidate and each baseline 1-10 with the "
                                             "judge (MT-Bench's single-answer grading) and compare the scores "
                                             "question by question.")
    prompts: str = Field("embedded:suites/pairwise_questions.jsonl",
                         description="Questions: nift-gate's format, MT-Bench's question.jsonl (question_id, "
                                     "category, turns, optional reference) or AlpacaEval's instruction/output file "
                                     "(JSON array or JSONL), read as published.")
    limit: int | None = Field(None, ge=1, description="Use only the first N questions.")
    max_new_tokens: int = Field(128, ge=1, description="Answer length for candidate and baselines (answers are "
                                                       "shared with the pairwise judge when its questions and "
                                                       "length are the same).")
    judge: GeneratorConfig | None = Field(None, description="The grading judge (the fields of data.teacher.*; "
                                                            "temperature 0 unless set); default (null): "
                                                            "bench.pairwise.judge, the bench's one judge.")
    judge_max_new_tokens: int = Field(256, ge=1, description="Length of a grading reply: a short justification, "
                                                             "then the [[n]] rating.")
    judge_prompts: str = Field("embedded:judges/single_grading.jsonl",
                               description="JSONL of the four grading templates (single, single-reference, "
                                           "multi-turn, multi-turn-reference), fields {question_1}, {answer_1}, "
                                           "{reference_1}, {question_2}, ...")
    rating: Literal["auto", "written", "constrained"] = Field(
        "auto", description="How the rating is read. written: the judge writes a justification and [[n]], parsed "
                            "from its reply. constrained: the judge's turn starts with 'Rating: [[' and the rating "
                            "is the most likely of 1..10 (local transformers judges only; for a model too small to "
                            "keep the format, it writes no justification). auto: constrained for a transformers "
                            "judge, written for an endpoint or vLLM.")

    _greedy = field_validator("judge", mode="before")(greedy_unless_told)


class AlpacaEvalConfig(Section):
    enabled: bool = Field(False, description="AlpacaEval-style win rates: the judge compares every model's answer "
                                             "with a reference answer (both orders), and the length-controlled win "
                                             "rate is fitted (AlpacaEval 2's GLM).")
    prompts: str = Field("embedded:suites/pairwise_questions.jsonl",
                         description="Instructions: AlpacaEval's file (instruction, output, generator, dataset; "
                                     "JSON array or JSONL) as published, whose output is the reference answer; or "
                                     "any question file when the reference is a baseline.")
    reference: str | None = Field(None, description="Whose answers are the reference: null: the file's 'output' "
                                                     "(named by its 'generator'); a baseline's name: that "
                                                     "baseline's answers (it is then not judged itself).")
    limit: int | None = Field(None, ge=1, description="Use only the first N instructions.")
    max_new_tokens: int = Field(128, ge=1, description="Answer length for candidate and baselines (answers are "
                                                       "shared with the other judge tasks at the same length).")
    judge: GeneratorConfig | None = Field(None, description="The judge (temperature 0 unless set); default (null): "
                                                            "bench.pairwise.judge.")
    inverse_regularization: float = Field(1.0, gt=0, description="C of the L2 penalty on the length-controlled "
                                                                 "GLM's length and difficulty weights.")

    _greedy = field_validator("judge", mode="before")(greedy_unless_told)


class ArenaConfig(Section):
    enabled: bool = Field(False, description="Bradley-Terry arena ratings from every pairwise verdict of the run: "
                                             "the pairwise judge on every pair of models (candidate, baselines, "
                                             "earlier candidates) over bench.pairwise's questions, and the "
                                             "AlpacaEval verdicts when the same judge gave them. Needs "
                                             "bench.pairwise.enabled.")
    earlier_candidates: bool = Field(True, description="Also rate the other candidates benched in this run whose "
                                                       "stored pairwise answers are to the same questions, at the "
                                                       "same length and seed (their bench records become inputs).")
    anchor: str | None = Field(None, description="The model rated 1000; default (null): the first baseline.")
    inverse_regularization: float | None = Field(1.0, gt=0, description="C of the L2 penalty that keeps a model "
                                                                        "that won every battle finite; null: none "
                                                                        "(Arena-Hard).")


class BenchConfig(Section):
    candidate: str = Field("train:nift-hybrid", description="The model under test (usually train:<checkpoint>).")
    baselines: list[ModelRef] = Field(default_factory=list, description="Models the candidate must match.")
    # How lm-eval runs: the core's LmEvalSettings fields, declared there once and listed here in bench's order.
    tasks: list[str] = _LM_EVAL["tasks"]
    task_dirs: list[str] = _LM_EVAL["task_dirs"]
    ifeval_path: str | None = _LM_EVAL["ifeval_path"]
    truthfulqa_path: str | None = _LM_EVAL["truthfulqa_path"]
    limit: int | None = _LM_EVAL["limit"]
    num_fewshot: int | None = _LM_EVAL["num_fewshot"]
    backend: Literal["hf", "vllm"] = _LM_EVAL["backend"]
    batch_size: int = _LM_EVAL["batch_size"]
    apply_chat_template: bool = _LM_EVAL["apply_chat_template"]
    max_gen_toks: int = _LM_EVAL["max_gen_toks"]
    dtype: str = _LM_EVAL["dtype"]
    seed: int = _LM_EVAL["seed"]
    bootstrap_iterations: int = Field(2000, ge=100, description="Resamples for paired bootstrap CIs.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="CI level.")
    threads: int | None = _LM_EVAL["threads"]
    pairwise: PairwiseConfig = Field(default_factory=PairwiseConfig)
    mt_bench: MtBenchConfig = Field(default_factory=MtBenchConfig)
    alpaca_eval: AlpacaEvalConfig = Field(default_factory=AlpacaEvalConfig)
    arena: ArenaConfig = Field(default_factory=ArenaConfig)

    def grading_judge(self) -> GeneratorConfig:
        """The MT-Bench judge: ``mt_bench.judge``, else the pairwise judge."""
        return self.mt_bench.judge or self.pairwise.judge

    def alpaca_eval_judge(self) -> GeneratorConfig:
        """The AlpacaEval judge: ``alpaca_eval.judge``, else the pairwise judge."""
        return self.alpaca_eval.judge or self.pairwise.judge

    def lm_eval_settings(self) -> LmEvalSettings:
        """The settings lm-eval runs with (tasks, data, generation, batching), for :mod:`harness.core.lmeval`."""
        return LmEvalSettings.model_validate({name: getattr(self, name) for name in LmEvalSettings.model_fields})
