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
from harness.bench.pairwise import (
    answer,
    item_rows,
    judge_pair,
    load_questions,
)
from harness.bench.record import (
    PAIRWISE_FILE,
    SAMPLES_DIR,
    STAGE,
    BenchRecord,
    EvaluatedModel,
)
from harness.core.config import require_unique
from harness.core.errors import ConfigError, InputError
from harness.core.lmeval import (
    ModelEvalRecord,
    evaluate_model,
    fingerprint_diff,
    load_samples,
    prepare_tasks,
    task_manager,
)
from harness.core.models import EMBEDDED_MODELS, ResolvedModel, model_name
from harness.core.runner import StageRun
from harness.core.stats import PairedComparison, paired_comparison
from harness.core.store import RunStore
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
            comparison = paired_comparison(per_item_c, per_item_b, task=task, metric=metric,
                                           baseline_name=baseline_name, higher_is_better=higher,
                                           iterations=config.bootstrap_iterations, confidence=config.confidence,
                                           seed=config.seed)
            if comparison is not None:  # None: no item scored for both, so no delta (never a NaN one)
                comparisons.append(comparison)
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
    run = StageRun(store, STAGE, names[0], BenchRecord, force=force, label=STAGE)
    resolved = {name: run.model(spec, resolve_base) for name, _, spec in specs}
    settings = config.lm_eval_settings()
    # the questions first: a bad question file stops the bench before any task file is written
    questions = _questions(config, run) if config.pairwise.enabled else None
    tasks_dir = store.root / STAGE / "_tasks"
    include_paths, task_refs = prepare_tasks(settings, tasks_dir, run)
    if (done := run.cached(config)) is not None:
        return done

    # only when something must run; a refused task name takes the task files just written with it
    manager = functools.cache(lambda: task_manager(include_paths, settings.tasks, written=tasks_dir))
    evals: dict[str, ModelEvalRecord] = {}
    dirs: dict[str, Path] = {}
    models = []
    for name, role, _ in specs:
        evals[name], dirs[name], cached = evaluate_model(name, resolved[name], settings, manager, task_refs,
                                                         store.home, store.run_id, force=force,
                                                         lm=(lms or {}).get(name))
        models.append(EvaluatedModel(name=name, role=role, model=resolved[name], eval_record_id=evals[name].record_id,
                                     cached=cached))
    comparisons = [c for b in config.baselines for c in compare(evals[names[0]], dirs[names[0]], evals[b.name],
                                                                 dirs[b.name], b.name, config)]
    pairwise, items, judge_info = [], [], None
    if questions is not None:
        pairwise, items, judge_info = _pairwise(config, questions, names, resolved, generators, judge)

    record = BenchRecord(
        **run.header(), candidate=names[0], models=models, fingerprint_fields=evals[names[0]].fingerprint_fields,
        scores={n: e.tasks for n, e in evals.items()}, comparisons=comparisons, pairwise=pairwise, judge=judge_info,
        files={"samples": f"{SAMPLES_DIR}/<model>/samples_<task>.jsonl", **({"pairwise": PAIRWISE_FILE} if items else {})})
    files: dict[str, Any] = {f"{SAMPLES_DIR}/{name}": functools.partial(shutil.copytree, dirs[name]) for name in names}
    if items:
        files[PAIRWISE_FILE] = item_rows(items)
    return run.commit(record, files)


def _questions(config: BenchConfig, run: StageRun):
    """The pairwise questions, an input of the bench (an edited question file is another bench)."""
    from harness.core.assets import resolve_asset

    if not resolve_asset(config.pairwise.prompts).is_file():
        raise InputError(f"{resolve_asset(config.pairwise.prompts)}: pairwise questions not found")
    return load_questions(run.file(config.pairwise.prompts, kind="questions"), config.pairwise.limit)


def _pairwise(config: BenchConfig, questions, names: list[str], resolved: dict[str, ResolvedModel],
              generators: dict[str, Any] | None, judge: Any):
    from harness.core.generation import make_generator

    pw = config.pairwise
    generators = dict(generators or {})
    answers = {}
    for name in names:
        model = generators.get(name) or make_generator(pw.judge.model_copy(update={
            "model": resolved[name].path, "max_new_tokens": pw.max_new_tokens, "temperature": 0.0}))
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
                                    pw.judge.max_new_tokens, config.bootstrap_iterations, config.confidence, config.seed,
                                    pw.verdict_rule)
        results.append(result)
        items.extend(judged)
    return results, items, judge_info

