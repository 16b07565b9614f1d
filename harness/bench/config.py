"""Configuration of `nift-gate bench`: which candidate, which baselines, which tasks, how they are run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.core.config import ModelRef, Section
from harness.core.generation import GeneratorConfig


class PairwiseConfig(Section):
    enabled: bool = Field(False, description="Judge candidate vs each baseline answer by answer (MT-Bench style).")
    prompts: str = Field("embedded:suites/pairwise_questions.jsonl",
                         description="JSONL of questions: {id, turns: [one or two user turns]}.")
    limit: int | None = Field(None, ge=1, description="Use only the first N questions.")
    max_new_tokens: int = Field(128, ge=1, description="Answer length for candidate and baselines.")
    judge: GeneratorConfig = Field(default_factory=lambda: GeneratorConfig(temperature=0.0, max_new_tokens=16,
                                                                         repetition_penalty=1.0),
                                 description="The judge model and backend (a strong model where you have one).")


class BenchConfig(Section):
    candidate: str = Field("train:nift-hybrid", description="The model under test (usually train:<checkpoint>).")
    baselines: list[ModelRef] = Field(default_factory=list, description="Models the candidate must match.")
    tasks: list[str] = Field(default_factory=lambda: ["nift_if"],
                             description="lm-eval task names: registered ones, or nift-gate's own: nift_if, "
                                         "nift_ifeval_local, nift_truthfulqa_mc1, nift_truthfulqa_mc2.")
    task_dirs: list[str] = Field(default_factory=list, description="Extra folders of task YAMLs (include_path).")
    ifeval_path: str | None = Field(None, description="IFEval input_data.jsonl for nift_ifeval_local.")
    truthfulqa_path: str | None = Field(None, description="TruthfulQA mc_task.json for nift_truthfulqa_mc1/mc2.")
    limit: int | None = Field(None, ge=1, description="Items per task (quick runs); part of the fingerprint.")
    num_fewshot: int | None = Field(None, ge=0, description="Few-shot examples; None = each task's default.")
    backend: Literal["hf", "vllm"] = Field("hf", description="lm-eval model class: HFLM over nift-gate's loaded "
                                                              "model, or lm-eval's vLLM class (GPU, vllm installed).")
    batch_size: int = Field(8, ge=1, description="lm-eval batch size.")
    apply_chat_template: bool = Field(True, description="Wrap prompts in the model's chat template.")
    max_gen_toks: int = Field(192, ge=1, description="Longest generation for generative tasks (IFEval's own "
                                                     "1280 is hours on a CPU).")
    dtype: str = Field("float32", description="torch dtype the models are loaded in.")
    seed: int = Field(1234, description="lm-eval's random, numpy, torch and few-shot seeds.")
    bootstrap_iterations: int = Field(2000, ge=100, description="Resamples for paired bootstrap CIs.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="CI level.")
    threads: int | None = Field(None, ge=1, description="CPU threads; default: chosen by measurement.")
    pairwise: PairwiseConfig = Field(default_factory=PairwiseConfig)
