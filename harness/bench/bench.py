"""`nift-gate bench`: the candidate and each baseline through lm-eval, compared item by item.

Output under ``<run>/bench/<candidate>/``: record.json (BenchRecord), samples/<model>/samples_<task>.jsonl
(every per-item row lm-eval logged), pairwise.jsonl (every judged question, when enabled).
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

from harness.bench.config import BenchConfig
from harness.bench.evaluate import (
    ModelEvalRecord,
    evaluate_model,
    fingerprint_diff,
    load_samples,
)
from harness.bench.pairwise import (
    answer,
    item_rows,
    judge_pair,
    load_questions,
)
from harness.bench.record import STAGE, BenchRecord, EvaluatedModel
from harness.bench.tasks import prepare_tasks, task_manager
from harness.core.config import require_unique
from harness.core.errors import ConfigError
from harness.core.models import EMBEDDED_MODELS, ResolvedModel, model_name
from harness.core.records import InputRef, new_record_id, stage_fingerprint
from harness.core.stats import PairedComparison, paired_comparison
from harness.core.store import (
    RECORD_FILE,
    RunStore,
    atomic_dir,
    atomic_write_jsonl,
    completed_record,
)
from harness.train.record import resolve_base


def check_comparable(candidate: ModelEvalRecord, baseline: ModelEvalRecord, names: tuple[str, str] | None = None) -> None:
    """Refuse to compare results made differently, naming the fields that differ."""
    names = names or (candidate.model_name, baseline.model_name)
    a = {**candidate.fingerprint_fields, "task_versions": {t: s.version for t, s in candidate.tasks.items()}}
    b = {**baseline.fingerprint_fields, "task_versions": {t: s.version for t, s in baseline.tasks.items()}}
    if differing := fingerprint_diff(a, b):
        details = "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differing)
        raise ConfigError(f"cannot compare {names[0]} with {names[1]}: their results were "
                          f"made differently ({details}). Rerun both with the same settings (--force).")


def compare(candidate: ModelEvalRecord, candidate_dir: Path, baseline: ModelEvalRecord, baseline_dir: Path,
            baseline_name: str, config: BenchConfig) -> list[PairedComparison]:
    """Candidate vs one baseline on every task and per-item metric. A cached evaluation keeps the name it
    was first run under, so the configured ``baseline_name`` labels the comparison."""
    check_comparable(candidate, baseline, (model_name(config.candidate), baseline_name))
    comparisons = []
    for task, scores in candidate.tasks.items():
        cand_rows = {r["item"]: r["scores"] for r in load_samples(candidate_dir, task)}
        base_rows = {r["item"]: r["scores"] for r in load_samples(baseline_dir, task)}
        for metric, higher in scores.higher_is_better.items():
            per_item_c = {k: v[metric] for k, v in cand_rows.items() if isinstance(v.get(metric), (int, float, bool))}
            per_item_b = {k: v[metric] for k, v in base_rows.items() if isinstance(v.get(metric), (int, float, bool))}
            if not per_item_c:
                continue  # a corpus-level metric with no per-item value (e.g. IFEval's instruction-level lists)
            comparisons.append(paired_comparison(per_item_c, per_item_b, task=task, metric=metric,
                                                 baseline_name=baseline_name, higher_is_better=higher,
                                                 iterations=config.bootstrap_iterations, confidence=config.confidence,
                                                 seed=config.seed))
    return comparisons


def run_bench(config: BenchConfig, store: RunStore, force: bool = False, lms: dict[str, Any] | None = None,
              generators: dict[str, Any] | None = None, judge: Any = None) -> BenchRecord:
    """Entry point of `nift-gate bench`. ``lms``/``generators``/``judge`` replace real models (tests)."""
    if not config.baselines:
        raise ConfigError("bench.baselines is empty: the candidate needs at least one baseline to be compared with")
    names = [model_name(config.candidate)] + [b.name for b in config.baselines]
    try:
        require_unique(names, "model names (candidate and baselines)")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    specs = [(names[0], "candidate", config.candidate)] + [(b.name, "baseline", b.model) for b in config.baselines]
    resolved = {name: resolve_base(spec, store) for name, _, spec in specs}
    include_paths, task_refs = prepare_tasks(config, store.root / STAGE / "_tasks")
    manager = functools.cache(lambda: task_manager(include_paths, config.tasks))  # only when something must run
    inputs = [ref for _, ref in resolved.values()] + task_refs
    fingerprint = stage_fingerprint(inputs, config.model_dump())
    out_dir = store.stage_dir(STAGE, names[0])
    if not force and (done := completed_record(out_dir, BenchRecord, fingerprint)):
        print(f"bench [{names[0]}]: up to date ({out_dir}); --force reruns")
        return done

    evals: dict[str, ModelEvalRecord] = {}
    dirs: dict[str, Path] = {}
    models = []
    for name, role, _ in specs:
        model = resolved[name][0]
        evals[name], dirs[name], cached = evaluate_model(name, model, config, manager, task_refs, store.home,
                                                         store.run_id, force=force, lm=(lms or {}).get(name))
        models.append(EvaluatedModel(name=name, role=role, model=model, eval_record_id=evals[name].record_id,
                                     cached=cached))
    comparisons = [c for b in config.baselines for c in compare(evals[names[0]], dirs[names[0]], evals[b.name],
                                                                 dirs[b.name], b.name, config)]
    pairwise, items, judge_info = [], [], None
    if config.pairwise.enabled:
        pairwise, items, judge_info = _pairwise(config, names, resolved, generators, judge)

    record = BenchRecord(
        record_id=new_record_id("bench"), run_id=store.run_id, inputs=inputs, config=config.model_dump(),
        fingerprint=fingerprint, candidate=names[0], models=models, fingerprint_fields=evals[names[0]].fingerprint_fields,
        scores={n: e.tasks for n, e in evals.items()}, comparisons=comparisons, pairwise=pairwise, judge=judge_info,
        files={"samples": "samples/<model>/samples_<task>.jsonl", **({"pairwise": "pairwise.jsonl"} if items else {})})
    with atomic_dir(out_dir) as tmp:
        for name in names:
            shutil.copytree(dirs[name], tmp / "samples" / name)
        if items:
            atomic_write_jsonl(tmp / "pairwise.jsonl", item_rows(items))
        (tmp / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
    return record


def _pairwise(config: BenchConfig, names: list[str], resolved: dict[str, tuple[ResolvedModel, InputRef]],
              generators: dict[str, Any] | None, judge: Any):
    from harness.core.generation import make_generator

    pw = config.pairwise
    questions = load_questions(pw.prompts, pw.limit)
    generators = dict(generators or {})
    answers = {}
    for name in names:
        model = generators.get(name) or make_generator(pw.judge.model_copy(update={
            "model": resolved[name][0].path, "max_new_tokens": pw.max_new_tokens, "temperature": 0.0}))
        answers[name] = answer(model, questions, pw.max_new_tokens, config.seed)
    judge = judge or make_generator(pw.judge)
    judge_name = pw.judge.model
    weak = pw.judge.model in EMBEDDED_MODELS
    judge_info = {"model": judge_name, "backend": pw.judge.backend,
                  "note": ("weak judge: a 135M-parameter model judging answers; its verdicts are close to chance and "
                           "only exercise the pipeline" if weak else "")}
    results, items = [], []
    for baseline in names[1:]:
        result, judged = judge_pair(judge, questions, answers[names[0]], answers[baseline], baseline, judge_name,
                                    pw.judge.max_new_tokens, config.bootstrap_iterations, config.confidence, config.seed)
        results.append(result)
        items.extend(judged)
    return results, items, judge_info

