"""The bench stage's published output: the BenchRecord and readers of its per-item rows.

Layout under ``<run>/bench/<candidate>/``: ``record.json`` (BenchRecord), ``samples/<model>/samples_<task>.jsonl``
(every per-item row lm-eval logged), ``pairwise.jsonl`` (every judged question) and ``mt_bench.jsonl`` (every
graded answer). Other stages read these only through :func:`read_bench`, :func:`bench_items`,
:func:`pairwise_rows` and :func:`mt_bench_rows`, never by path.
"""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from harness.bench.grading import MT_BENCH, OVERALL, GradedAnswer, MtBenchResult
from harness.bench.pairwise import PairwiseItem, PairwiseResult
from harness.core.generation_cache import GenerationUsage
from harness.core.lmeval import TaskScores
from harness.core.metrics import (
    MetricDelta,
    MetricSpec,
    MetricValue,
    delta_from_comparison,
)
from harness.core.models import ResolvedModel
from harness.core.records import Record
from harness.core.stats import PairedComparison, proportion_interval
from harness.core.store import RECORD_FILE, RunStore, read_jsonl, read_record

STAGE = "bench"
SAMPLES_DIR = "samples"
PAIRWISE_FILE = "pairwise.jsonl"
MT_BENCH_FILE = "mt_bench.jsonl"

POSITION_CONSISTENCY = MetricSpec(
    name="bench.pairwise.position_consistency", higher_is_better=True, unit="rate",
    description="Pairwise judge: share of questions given the same verdict in both answer orders (one value per "
                "baseline, as the attribute); a low share means answer position, not content, decided verdicts.")


def mt_bench_spec(metric: str) -> MetricSpec:
    """``bench.mt_bench.score`` (overall) or ``bench.mt_bench.<category>``: a judge's mean 1-10 rating."""
    what = "all questions" if metric == OVERALL else f"the {metric} questions"
    return MetricSpec(name=f"bench.{MT_BENCH}.{metric}", higher_is_better=True, unit="score",
                      description=f"MT-Bench single-answer grading: the judge's mean 1-10 rating over {what} "
                                  "(a question's score is the mean of its turns').")


class EvaluatedModel(BaseModel):
    name: str
    role: str = Field(description="'candidate' or 'baseline'.")
    model: ResolvedModel
    eval_record_id: str
    cached: bool = Field(description="True when the lm-eval results came from the cache.")


class BenchRecord(Record):
    kind: Literal["bench"] = "bench"
    candidate: str
    models: list[EvaluatedModel]
    fingerprint_fields: dict[str, Any] = Field(description="Shared by every result compared here.")
    scores: dict[str, dict[str, TaskScores]] = Field(description="Model name -> task -> aggregate scores.")
    comparisons: list[PairedComparison] = Field(description="Candidate vs each baseline, per task and metric.")
    pairwise: list[PairwiseResult] = Field(default_factory=list)
    judge: dict[str, Any] | None = Field(None, description="Judge identity and a note on its strength.")
    judge_usage: GenerationUsage | None = Field(None, description="The pairwise judge's calls, cache hits, tokens "
                                                                  "and estimated cost (None: an injected judge).")
    mt_bench: MtBenchResult | None = Field(None, description="MT-Bench single-answer grading, when enabled.")
    files: dict[str, str]

    METRIC_FAMILIES: ClassVar[dict[str, str]] = {"bench.": "lm-eval task metrics, bench.<task>.<metric>, in the direction lm-eval declares"}
    METRICS = (POSITION_CONSISTENCY,)

    def declared_metrics(self) -> list[MetricSpec]:
        """One spec per lm-eval task metric, in the direction lm-eval declared for that task, and the pairwise
        judge's position consistency when the pairwise comparison ran."""
        specs = {POSITION_CONSISTENCY.name: POSITION_CONSISTENCY} if self.pairwise else {}
        if self.mt_bench is not None:
            for metric in [OVERALL] + sorted({c for m in self.mt_bench.models for c in m.per_category}):
                specs[f"bench.{MT_BENCH}.{metric}"] = mt_bench_spec(metric)
        for tasks in self.scores.values():
            for task, scores in tasks.items():
                for metric, higher in scores.higher_is_better.items():
                    specs[f"bench.{task}.{metric}"] = MetricSpec(
                        name=f"bench.{task}.{metric}", higher_is_better=higher,
                        description=f"lm-eval task {task}, metric {metric}", unit="score")
        return list(specs.values())

    def compute_values(self) -> list[MetricValue]:
        """Every model's aggregate per task and metric. The CI of a proportion (an accuracy over 0/1 items) is
        Wilson's, which stays inside [0, 1] and does not collapse at 0 or n; any other metric's is
        value +- z * lm-eval's stderr where lm-eval gave one."""
        confidence = self.config.get("confidence", 0.95)
        z = float(NormalDist().inv_cdf(0.5 + confidence / 2))
        values = []
        for model, tasks in self.scores.items():
            for task, scores in tasks.items():
                for metric, value in scores.metrics.items():
                    if metric not in scores.higher_is_better:
                        continue
                    err = scores.stderr.get(metric)
                    if metric in scores.successes:
                        low, high = proportion_interval(scores.successes[metric], scores.n, confidence, "wilson")
                        interval = "wilson"
                    elif err is not None:
                        low, high, interval = value - z * err, value + z * err, "normal (lm-eval stderr)"
                    else:
                        low = high = interval = None
                    values.append(MetricValue(metric=f"bench.{task}.{metric}", model=model, value=value, n=scores.n,
                                              ci_low=low, ci_high=high, interval=interval))
        values += [MetricValue(metric=POSITION_CONSISTENCY.name, model=self.candidate, value=p.position_consistency,
                               n=p.n, attribute=p.baseline, ci_low=p.consistency_ci_low,
                               ci_high=p.consistency_ci_high, interval="wilson")
                   for p in self.pairwise if p.position_consistency is not None]
        for grades in self.mt_bench.models if self.mt_bench else []:
            for metric, summary in [(OVERALL, grades.overall), *grades.per_category.items()]:
                if summary.mean is not None:
                    values.append(MetricValue(metric=f"bench.{MT_BENCH}.{metric}", model=grades.model,
                                              value=summary.mean, n=summary.n, ci_low=summary.ci_low,
                                              ci_high=summary.ci_high, interval=summary.interval))
        return values

    def compute_deltas(self) -> list[MetricDelta]:
        """Paired deltas of every lm-eval task metric and, when graded, of bench.mt_bench.<metric>."""
        graded = self.mt_bench.comparisons if self.mt_bench else []
        return [delta_from_comparison(f"bench.{c.task}.{c.metric}", self.candidate, c)
                for c in [*self.comparisons, *graded]]


class BenchItem(BaseModel):
    """One lm-eval per-item row of one model on one task, as the review queue and the report read it."""

    task: str
    model: str
    item: str = Field(description="lm-eval's item key (doc id).")
    prompt: Any = Field(None, description="The prompt as lm-eval logged it (text, or a structure for MC tasks).")
    response: Any = Field(None, description="The model's output as lm-eval logged it.")
    scores: dict[str, Any] = Field(default_factory=dict, description="Per-item metric values.")


def bench_folder(store: RunStore, candidate: str) -> Path:
    return store.stage_dir(STAGE, candidate)


def bench_candidates(store: RunStore) -> list[str]:
    """Candidates with a finished bench record in this run."""
    root = store.root / STAGE
    return sorted(p.name for p in root.iterdir() if (p / RECORD_FILE).exists()) if root.is_dir() else []


def read_bench(store: RunStore, candidate: str) -> BenchRecord | None:
    """The candidate's bench record, or None when the bench has not run for it."""
    folder = bench_folder(store, candidate)
    return read_record(folder, BenchRecord) if (folder / RECORD_FILE).exists() else None


def bench_items(store: RunStore, candidate: str, model: str, task: str) -> list[BenchItem]:
    """Every per-item row ``model`` produced on ``task`` in the candidate's bench (empty when none)."""
    path = bench_folder(store, candidate) / SAMPLES_DIR / model / f"samples_{task}.jsonl"
    if not path.exists():
        return []
    return [BenchItem(task=task, model=model, item=str(row.get("item")), prompt=row.get("prompt"),
                      response=row.get("response"), scores=row.get("scores") or {}) for row in read_jsonl(path)]


def pairwise_rows(store: RunStore, candidate: str) -> list[PairwiseItem]:
    """Every judged pairwise question of the candidate's bench (empty when pairwise was off)."""
    path = bench_folder(store, candidate) / PAIRWISE_FILE
    return [PairwiseItem.model_validate(row) for row in read_jsonl(path)] if path.exists() else []


def mt_bench_rows(store: RunStore, candidate: str) -> list[GradedAnswer]:
    """Every graded answer (each model, each question, the judge's raw replies) of the candidate's bench; empty
    when MT-Bench grading was off."""
    path = bench_folder(store, candidate) / MT_BENCH_FILE
    return [GradedAnswer.model_validate(row) for row in read_jsonl(path)] if path.exists() else []
