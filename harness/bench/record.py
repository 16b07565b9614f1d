"""The bench stage's published output: the BenchRecord and readers of its per-item rows.

Layout under ``<run>/bench/<candidate>/``: ``record.json`` (BenchRecord), ``samples/<model>/samples_<task>.jsonl``
(every per-item row lm-eval logged), ``pairwise.jsonl`` (every judged question), ``mt_bench.jsonl`` (every
graded answer), ``alpaca_eval.jsonl`` (every answer judged against the reference) and ``arena.jsonl`` (every
battle of the arena ratings). Other stages read these only through :func:`read_bench`, :func:`bench_items`,
:func:`pairwise_rows`, :func:`mt_bench_rows`, :func:`alpaca_eval_rows` and :func:`arena_rows`, never by path;
:func:`instruction_results` joins an IFEval-style task's rows with the task documents the bench ran on
(``<run>/bench/_tasks/``) to name each checked instruction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from statistics import NormalDist
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from harness.bench.alpaca_eval import ALPACA_EVAL, AlpacaEvalItem, AlpacaEvalResult
from harness.bench.arena import ARENA, ArenaBattle, ArenaResult
from harness.bench.grading import MT_BENCH, OVERALL, RATING_BOUNDS, GradedAnswer, MtBenchResult
from harness.bench.judges import JudgeUse
from harness.bench.pairwise import PairwiseItem, PairwiseResult
from harness.core.errors import InputError
from harness.core.generation_cache import GenerationUsage
from harness.core.lmeval import TaskScores
from harness.core.metrics import (
    MetricDelta,
    MetricSpec,
    MetricValue,
    delta_from_comparison,
)
from harness.core.models import ResolvedModel
from harness.core.records import Record, sha256_file
from harness.core.stats import (
    BOOTSTRAP_PERCENTILE,
    PairedComparison,
    proportion_interval,
)
from harness.core.store import RECORD_FILE, RunStore, parse_jsonl, read_jsonl, read_output, read_record

STAGE = "bench"
SAMPLES_DIR = "samples"
PAIRWISE_FILE = "pairwise.jsonl"
MT_BENCH_FILE = "mt_bench.jsonl"
ALPACA_EVAL_FILE = "alpaca_eval.jsonl"
ARENA_FILE = "arena.jsonl"

POSITION_CONSISTENCY = MetricSpec(
    name="bench.pairwise.position_consistency", higher_is_better=True, unit="rate",
    label="pairwise judge gives the same verdict in both answer orders",
    description="Pairwise judge: share of questions given the same verdict in both answer orders (one value per "
                "baseline, as the attribute); a low share means answer position, not content, decided verdicts.")


ALPACA_EVAL_WIN_RATE = MetricSpec(
    name=f"bench.{ALPACA_EVAL}.win_rate", higher_is_better=True, unit="rate",
    label="AlpacaEval win rate against the reference answers",
    description="AlpacaEval-style: the judge's mean preference for the model's answer over the reference's "
                "(win 1, tie 0.5, both orders), a fraction; the attribute names the reference.")
ALPACA_EVAL_LC_WIN_RATE = MetricSpec(
    name=f"bench.{ALPACA_EVAL}.lc_win_rate", higher_is_better=True, unit="rate",
    label="AlpacaEval win rate with answer length controlled",
    description="AlpacaEval 2's length-controlled win rate: the GLM of the preference on model identity, "
                "standardized length difference and instruction difficulty, with the length term set to zero.")
ARENA_RATING = MetricSpec(
    name=f"bench.{ARENA}.rating", higher_is_better=True, unit="score",
    label="arena rating (Bradley-Terry, Elo scale)",
    description="Bradley-Terry rating over every pairwise verdict of the run, Elo scale (400 points: odds 10 to "
                "1), the anchor at 1000; CIs and the candidate's gaps resample questions.")


#: lm-eval metric -> (plain-language name for the report, unit). IFEval's checkers score nift_if and
#: nift_ifeval_local; their accuracies are shares of prompts or instructions (rates); other metrics are scores.
LM_EVAL_LABELS = {
    "prompt_level_strict_acc": ("prompts whose formatting instructions are all followed (strict check)", "rate"),
    "prompt_level_loose_acc": ("prompts whose formatting instructions are all followed (lenient check)", "rate"),
    "inst_level_strict_acc": ("formatting instructions followed (strict check)", "rate"),
    "inst_level_loose_acc": ("formatting instructions followed (lenient check)", "rate"),
}


def mt_bench_spec(metric: str) -> MetricSpec:
    """``bench.mt_bench.score`` (overall) or ``bench.mt_bench.<category>``: a judge's mean 1-10 rating."""
    what = "all questions" if metric == OVERALL else f"the {metric} questions"
    return MetricSpec(name=f"bench.{MT_BENCH}.{metric}", higher_is_better=True, unit="score", bounds=RATING_BOUNDS,
                      label="MT-Bench rating by the judge (1-10)" if metric == OVERALL
                      else f"MT-Bench rating by the judge, {metric} questions (1-10)",
                      description=f"MT-Bench single-answer grading: the judge's mean 1-10 rating over {what} "
                                  "(a question's score is the mean of its turns').")


class EvaluatedModel(BaseModel):
    name: str
    role: str = Field(description="'candidate' or 'baseline'.")
    model: ResolvedModel
    eval_record_id: str
    cached: bool = Field(description="True when the lm-eval results came from the cache.")


#: The bench stage's code version, in every fingerprint and in every record (the gate refuses a record of another
#: one): bump it when the record changes for the same inputs and config (2: BCa intervals, none below 10 items;
#: identical documents paired by occurrence; 3: no arena or length-controlled interval below 10 questions or
#: instructions; Alpaca question files keep their input; 4: one lm-eval filter's results per task (n, successes,
#: per-item rows), no CI from a zero stderr, MT-Bench scores that all agree get a constant-bounded interval).
VERSION = "4"


class BenchRecord(Record):
    kind: Literal["bench"] = "bench"
    version: str = Field("", description="Version of the bench that made this record (VERSION); empty in records "
                                         "made before it was recorded, which the gate refuses.")
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
    alpaca_eval: AlpacaEvalResult | None = Field(None, description="AlpacaEval-style win rates against the "
                                                                   "reference, raw and length-controlled.")
    arena: ArenaResult | None = Field(None, description="Bradley-Terry arena ratings over every pairwise verdict "
                                                        "of the run, when enabled.")
    judges: list[JudgeUse] = Field(default_factory=list, description="Every judge task: its judge, self-"
                                                                     "preference flag, position consistency, "
                                                                     "answer lengths per model, usage and cost.")
    world_size: int = Field(1, ge=1, description="Processes of the bench (accelerate launch ranks) that shared "
                                                 "the lm-eval documents of each model evaluated here rather than "
                                                 "taken from the cache; its scores are the ones one process makes.")
    files: dict[str, str]

    METRIC_FAMILIES: ClassVar[dict[str, str]] = {"bench.": "lm-eval task metrics, bench.<task>.<metric>, in the direction lm-eval declares"}
    METRICS = (POSITION_CONSISTENCY,)

    def declared_metrics(self) -> list[MetricSpec]:
        """One spec per lm-eval task metric, in the direction lm-eval declared for that task, and the pairwise
        judge's position consistency when the pairwise comparison ran. A task metric is a rate (0..1) where
        IFEval's checkers score it (:data:`LM_EVAL_LABELS`) or where every model's per-item values are 0 or 1 and
        its aggregate their mean (``TaskScores.successes`` counts its items scoring 1: acc, acc_norm,
        exact_match); any other is a score of the task's own scale, unbounded as far as the gate knows."""
        specs = {POSITION_CONSISTENCY.name: POSITION_CONSISTENCY} if self.pairwise else {}
        proportion: dict[tuple[str, str], bool] = {}  # (task, metric) -> every model counts its successes
        for tasks in self.scores.values():
            for task, scores in tasks.items():
                for metric in scores.higher_is_better:
                    proportion[task, metric] = proportion.get((task, metric), True) and metric in scores.successes
        if self.mt_bench is not None:
            for metric in [OVERALL] + sorted({c for m in self.mt_bench.models for c in m.per_category}):
                specs[f"bench.{MT_BENCH}.{metric}"] = mt_bench_spec(metric)
        if self.alpaca_eval is not None:
            specs.update({s.name: s for s in (ALPACA_EVAL_WIN_RATE, ALPACA_EVAL_LC_WIN_RATE)})
        if self.arena is not None:
            specs[ARENA_RATING.name] = ARENA_RATING
        for tasks in self.scores.values():
            for task, scores in tasks.items():
                for metric, higher in scores.higher_is_better.items():
                    specs[f"bench.{task}.{metric}"] = MetricSpec(
                        name=f"bench.{task}.{metric}", higher_is_better=higher,
                        label=LM_EVAL_LABELS.get(metric, ("", ""))[0],
                        description=f"lm-eval task {task}, metric {metric}",
                        unit="rate" if proportion[task, metric] else LM_EVAL_LABELS.get(metric, ("", "score"))[1])
        return list(specs.values())

    def compute_values(self) -> list[MetricValue]:
        """Every model's aggregate per task and metric. The CI of a proportion (an accuracy over 0/1 items) is
        Wilson's, which stays inside [0, 1] and does not collapse at 0 or n; any other metric's is
        value +- z * lm-eval's stderr where lm-eval gave one above zero. A zero stderr (every item scored alike:
        a record made before nift-gate counted one lm-eval filter's successes, or a constant score) gives no CI,
        never a zero-width one that a rule judged on the CI would read as certainty."""
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
                    elif err is not None and err > 0:
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
        return values + self._preference_values()

    def _preference_values(self) -> list[MetricValue]:
        """AlpacaEval's win rates (attribute: the reference) and the arena ratings, per model."""
        values = []
        alpaca = self.alpaca_eval
        for m in alpaca.models if alpaca else []:
            for spec, result, value in ((ALPACA_EVAL_WIN_RATE, m.win_rate, m.win_rate and m.win_rate.win_rate),
                                        (ALPACA_EVAL_LC_WIN_RATE, m.length_controlled,
                                         m.length_controlled and m.length_controlled.length_controlled_win_rate)):
                if result is not None:
                    values.append(MetricValue(metric=spec.name, model=m.model, value=value, n=result.n,
                                              attribute=alpaca.reference, ci_low=result.ci_low,
                                              ci_high=result.ci_high, interval=result.interval))
        ratings = self.arena.ratings if self.arena else None
        unit = f"{BOOTSTRAP_PERCENTILE} (questions)"
        for r in ratings.ratings if ratings else []:
            values.append(MetricValue(metric=ARENA_RATING.name, model=r.model, value=r.rating, n=r.battles,
                                      ci_low=r.ci_low, ci_high=r.ci_high, interval=unit if r.ci_low is not None
                                      else None))
        return values

    def compute_deltas(self) -> list[MetricDelta]:
        """Paired deltas of every lm-eval task metric and, when graded, of bench.mt_bench.<metric>."""
        graded = self.mt_bench.comparisons if self.mt_bench else []
        alpaca = self.alpaca_eval.comparisons if self.alpaca_eval else []
        deltas = [delta_from_comparison(f"bench.{c.task}.{c.metric}", self.candidate, c)
                  for c in [*self.comparisons, *graded, *alpaca]]
        confidence = self.config.get("confidence", 0.95)
        for d in self.alpaca_eval.lc_differences if self.alpaca_eval else []:
            deltas.append(MetricDelta(metric=ALPACA_EVAL_LC_WIN_RATE.name, candidate=self.candidate,
                                      baseline=d.baseline, difference=d.difference, ci_low=d.ci_low,
                                      ci_high=d.ci_high, confidence=d.confidence, n=d.n, interval=d.interval,
                                      attribute=self.alpaca_eval.reference))
        ratings = self.arena.ratings if self.arena else None
        baselines = {m.name for m in self.models if m.role == "baseline"}
        for d in ratings.differences if ratings else []:
            if d.opponent in baselines:  # a gate compares the candidate with its baselines
                deltas.append(MetricDelta(metric=ARENA_RATING.name, candidate=self.candidate, baseline=d.opponent,
                                          difference=d.difference, ci_low=d.ci_low, ci_high=d.ci_high,
                                          confidence=confidence, n=d.questions,
                                          interval=f"{BOOTSTRAP_PERCENTILE} (questions)"
                                          if d.ci_low is not None else None))
        return deltas


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
    return [folder.name for folder in store.finished(STAGE)]


def read_bench(store: RunStore, candidate: str) -> BenchRecord | None:
    """The candidate's bench record, or None when the bench has not run for it."""
    folder = bench_folder(store, candidate)
    return read_record(folder, BenchRecord) if (folder / RECORD_FILE).exists() else None


def _pinned_rows(store: RunStore, candidate: str, relative: str) -> list[dict[str, Any]]:
    """The JSON Lines file ``relative`` to the candidate's bench folder, as the bench record pins it (empty when
    there is none; refused when it changed after the record was written, or the record does not pin it)."""
    folder = bench_folder(store, candidate)
    record = read_bench(store, candidate)
    if record is None or (relative not in record.outputs and not (folder / relative).exists()):
        return []
    return parse_jsonl(read_output(folder, record, relative), folder / relative)


def _sample_rows(store: RunStore, candidate: str, model: str, task: str) -> list[dict[str, Any]]:
    """``model``'s per-item rows on ``task`` in the candidate's bench, as its record pins them."""
    return _pinned_rows(store, candidate, f"{SAMPLES_DIR}/{model}/samples_{task}.jsonl")


def bench_items(store: RunStore, candidate: str, model: str, task: str) -> list[BenchItem]:
    """Every per-item row ``model`` produced on ``task`` in the candidate's bench (empty when none)."""
    return [BenchItem(task=task, model=model, item=str(row.get("item")), prompt=row.get("prompt"),
                      response=row.get("response"), scores=row.get("scores") or {})
            for row in _sample_rows(store, candidate, model, task)]


#: The task files and data copies the bench ran lm-eval on, under ``<run>/bench/``; each data file is named by its
#: content hash (``<stem>-<sha256[:16]><suffix>``, harness.core.lmeval.materialise).
TASKS_DIR = "_tasks"


class InstructionResult(BaseModel):
    """One instruction of one IFEval-style item, as lm-eval's checkers judged one model's response to it."""

    task: str
    model: str
    item: str = Field(description="lm-eval's item key (doc hash), as in BenchItem: the same in every model's rows.")
    index: int = Field(description="The instruction's position in the item's instruction_id_list.")
    instruction: str = Field(description="IFEval instruction id, e.g. length_constraints:number_words.")
    strict: bool = Field(description="Followed, by IFEval's strict check (inst_level_strict_acc).")
    loose: bool | None = Field(None, description="Followed, by IFEval's lenient check (inst_level_loose_acc); "
                                                 "None when the row has no lenient result.")
    prompt: str = Field(description="The item's prompt as its task document states it (no chat template).")
    response: str = Field(description="The model's output (lm-eval's filtered response).")


def _first_text(value: Any) -> str:
    """The first string of lm-eval's nested lists (``filtered_resps``, ``arguments``)."""
    while isinstance(value, list | tuple) and value:
        value = value[0]
    return value if isinstance(value, str) else ""


def _doc_hash(doc: dict[str, Any]) -> str:
    """lm-eval's ``doc_hash`` of a document (evaluator.py: sha256 of the document as indented JSON)."""
    return hashlib.sha256(json.dumps(doc, indent=2, ensure_ascii=False, default=str).encode("utf-8")).hexdigest()


def _task_documents(store: RunStore, candidate: str, task: str) -> tuple[Path, list[dict[str, Any]]] | None:
    """The task data the candidate's bench pinned for ``task`` (its ``task_data`` input), read from the bench's
    content-named copy; None when the record pins none (a hub dataset) or the copy is gone (a later bench on
    other data replaced it)."""
    record = read_bench(store, candidate)
    ref = next((r for r in (record.inputs if record else []) if r.kind == "task_data"
                and r.id.startswith(f"{task}:")), None)
    if ref is None:
        return None
    name = Path(ref.id.split(":", 1)[1])
    path = store.root / STAGE / TASKS_DIR / f"{name.stem}-{ref.sha256[:16]}{name.suffix}"
    if not path.is_file():
        return None
    if sha256_file(path) != ref.sha256:
        raise InputError(f"{path}: task data changed since the bench ran (not the content "
                         f"{bench_folder(store, candidate) / RECORD_FILE} pinned)")
    return path, read_jsonl(path)


def instruction_results(store: RunStore, candidate: str, model: str, task: str) -> list[InstructionResult] | None:
    """Every checked instruction of ``model``'s rows on an IFEval-style ``task`` in the candidate's bench, named
    by its IFEval instruction id.

    Rows keep the ids beside their per-instruction pass/fail lists (``instruction_id_list``). Rows written
    before they did come without them; their ids come from the task data the bench ran on, matched by lm-eval's
    doc hash (else by doc id, when that document's prompt is the row's). ``[]``: the task checks no
    instructions (or the model has no rows); ``None``: it does, but neither the rows nor documents stored with
    the bench name them (an old run of lm-eval's hub ``ifeval``, or a copy since replaced). A row that matches
    no document is an error naming the samples file and line."""
    path = bench_folder(store, candidate) / SAMPLES_DIR / model / f"samples_{task}.jsonl"
    rows = _sample_rows(store, candidate, model, task)
    if not any(isinstance((row.get("scores") or {}).get("inst_level_strict_acc"), list) for row in rows):
        return []
    rows_name_them = all(isinstance(row.get("instruction_id_list"), list) for row in rows)
    found = _task_documents(store, candidate, task)
    if found is None and not rows_name_them:
        return None
    data, docs = found or (path, [])
    by_hash = {_doc_hash(doc): doc for doc in docs}
    results = []
    for number, row in enumerate(rows, 1):
        scores = row.get("scores") or {}
        strict = scores.get("inst_level_strict_acc")
        if not isinstance(strict, list):
            continue
        doc = by_hash.get(str(row.get("item")))
        doc_id = row.get("doc_id")
        if doc is None and isinstance(doc_id, int) and 0 <= doc_id < len(docs) \
                and str(docs[doc_id].get("prompt", "\0")) in _first_text(row.get("prompt")):
            doc = docs[doc_id]
        if doc is None and isinstance(row.get("instruction_id_list"), list):  # no stored document: the row's own
            doc = {"instruction_id_list": row["instruction_id_list"], "prompt": _first_text(row.get("prompt"))}
        ids = (doc or {}).get("instruction_id_list")
        if not isinstance(ids, list) or len(ids) != len(strict):
            raise InputError(f"{path}:{number}: item {row.get('item')} matches no document of {data} with "
                             f"{len(strict)} instructions")
        loose = scores.get("inst_level_loose_acc")
        loose = loose if isinstance(loose, list) and len(loose) == len(ids) else [None] * len(ids)
        results += [InstructionResult(task=task, model=model, item=str(row.get("item")), index=i,
                                      instruction=str(instruction), strict=bool(passed),
                                      loose=None if lenient is None else bool(lenient),
                                      prompt=str(doc.get("prompt", "")), response=_first_text(row.get("response")))
                    for i, (instruction, passed, lenient) in enumerate(zip(ids, strict, loose, strict=True))]
    return results


def pairwise_file(store: RunStore, candidate: str) -> Path:
    """Where the candidate's bench keeps its judged pairwise questions."""
    return bench_folder(store, candidate) / PAIRWISE_FILE


def pairwise_rows(store: RunStore, candidate: str, read: Callable[[Path], bytes] | None = None) -> list[PairwiseItem]:
    """Every judged pairwise question of the candidate's bench (empty when pairwise was off). ``read`` gives the
    file's bytes (a stage that takes these answers as an input passes ``StageRun.read``); without it the file
    is read as the bench record pins it."""
    path = pairwise_file(store, candidate)
    if read is None:
        return [PairwiseItem.model_validate(row) for row in _pinned_rows(store, candidate, PAIRWISE_FILE)]
    return [PairwiseItem.model_validate(row) for row in parse_jsonl(read(path), path)] if path.exists() else []


def mt_bench_rows(store: RunStore, candidate: str) -> list[GradedAnswer]:
    """Every graded answer (each model, each question, the judge's raw replies) of the candidate's bench; empty
    when MT-Bench grading was off."""
    return [GradedAnswer.model_validate(row) for row in _pinned_rows(store, candidate, MT_BENCH_FILE)]


def alpaca_eval_rows(store: RunStore, candidate: str) -> list[AlpacaEvalItem]:
    """Every answer judged against the AlpacaEval reference in the candidate's bench (empty when it was off)."""
    return [AlpacaEvalItem.model_validate(row) for row in _pinned_rows(store, candidate, ALPACA_EVAL_FILE)]


def arena_rows(store: RunStore, candidate: str) -> list[ArenaBattle]:
    """Every battle behind the candidate's bench arena ratings (empty when the arena was off)."""
    return [ArenaBattle.model_validate(row) for row in _pinned_rows(store, candidate, ARENA_FILE)]
