"""`nift-gate bench`: the candidate and each baseline through lm-eval, compared item by item.

Output under ``<run>/bench/<candidate>/``: record.json (BenchRecord), samples/<model>/samples_<task>.jsonl
(every per-item row lm-eval logged), pairwise.jsonl (every judged question, when enabled), mt_bench.jsonl (every
graded answer with the judge's raw replies, when MT-Bench grading is enabled).
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

from harness.bench.config import BenchConfig
from harness.bench.grading import (
    REFERENCE_CATEGORIES,
    WEAK_GRADER_NOTE,
    MtBenchResult,
    check_categories,
    compare_grades,
    grade,
    load_judge_prompts,
    summarise,
)
from harness.bench.pairwise import (
    answer,
    item_rows,
    judge_pair,
    load_questions,
)
from harness.bench.record import (
    MT_BENCH_FILE,
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
              generators: dict[str, Any] | None = None, judge: Any = None, grader: Any = None) -> BenchRecord:
    """Entry point of `nift-gate bench`. ``lms``/``generators``/``judge``/``grader`` (the MT-Bench judge)
    replace real models (tests)."""
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
    grading = _grading_inputs(config, run) if config.mt_bench.enabled else None
    _judge_inputs(config, run, judge, grader)
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
    pairwise, items, judge_info, judge_usage = [], [], None, None
    if questions is not None:
        pairwise, items, judge_info, judge_usage = _pairwise(config, questions, names, resolved, generators, judge,
                                                             store.home)

    mt_bench, graded = None, []
    if grading is not None:
        mt_bench, graded = _mt_bench(config, *grading, names, resolved, generators, grader, items, store.home)

    record = BenchRecord(
        **run.header(), candidate=names[0], models=models, fingerprint_fields=evals[names[0]].fingerprint_fields,
        scores={n: e.tasks for n, e in evals.items()}, comparisons=comparisons, pairwise=pairwise, judge=judge_info,
        judge_usage=judge_usage,
        files={"samples": f"{SAMPLES_DIR}/<model>/samples_<task>.jsonl", **({"pairwise": PAIRWISE_FILE} if items else {}),
               **({"mt_bench": MT_BENCH_FILE} if grading else {})},
        mt_bench=mt_bench)
    files: dict[str, Any] = {f"{SAMPLES_DIR}/{name}": functools.partial(shutil.copytree, dirs[name]) for name in names}
    if items:
        files[PAIRWISE_FILE] = item_rows(items)
    if grading:
        files[MT_BENCH_FILE] = [row.model_dump() for row in graded]
    return run.commit(record, files)


def _questions(config: BenchConfig, run: StageRun):
    """The pairwise questions, an input of the bench (an edited question file is another bench)."""
    from harness.core.assets import resolve_asset

    if not resolve_asset(config.pairwise.prompts).is_file():
        raise InputError(f"{resolve_asset(config.pairwise.prompts)}: pairwise questions not found")
    return load_questions(run.file(config.pairwise.prompts, kind="questions"), config.pairwise.limit)


def _judge_inputs(config: BenchConfig, run: StageRun, judge: Any, grader: Any) -> None:
    """A judge's weights decide its verdicts and ratings as a model's decide its answers: the pairwise judge and
    the MT-Bench grader are inputs by content (judges injected by tests are not)."""
    from harness.core.generation import generator_input

    if config.pairwise.enabled and judge is None:
        run.add(generator_input(config.pairwise.judge, kind="judge_model"))
    if config.mt_bench.enabled and grader is None and not (config.pairwise.enabled
                                                           and config.grading_judge() == config.pairwise.judge):
        run.add(generator_input(config.grading_judge(), kind="grading_judge_model"))


def _pairwise(config: BenchConfig, questions, names: list[str], resolved: dict[str, ResolvedModel],
              generators: dict[str, Any] | None, judge: Any, home: Path):
    from harness.core.generation import make_generator
    from harness.core.generation_cache import cached_generator

    pw = config.pairwise
    generators = dict(generators or {})
    answers = {}
    for name in names:
        model = generators.get(name) or make_generator(pw.judge.model_copy(update={
            "model": resolved[name].path, "max_new_tokens": pw.max_new_tokens, "temperature": 0.0}))
        answers[name] = answer(model, questions, pw.max_new_tokens, config.seed)
    # the judge's answers are cached on the runs home: an unchanged pair is never judged twice
    judge = judge or cached_generator(pw.judge, home)
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
    return results, items, judge_info, getattr(judge, "usage", None)  # an injected judge (tests) may not count


def _grading_inputs(config: BenchConfig, run: StageRun):
    """The MT-Bench questions and the judge's templates, inputs of the bench (hashed, like the pairwise
    questions): (questions, templates)."""
    mt = config.mt_bench
    questions = load_questions(run.file(mt.prompts, kind="mt_bench_questions"), mt.limit)
    check_categories(questions, mt.prompts)
    return questions, load_judge_prompts(run.file(mt.judge_prompts, kind="judge_prompts"))


def _mt_bench(config: BenchConfig, questions, templates: dict[str, str], names: list[str],
              resolved: dict[str, ResolvedModel], generators: dict[str, Any] | None, grader: Any,
              pairwise_items: list, home: Path) -> tuple[MtBenchResult, list]:
    """Every model answers (or reuses its pairwise answers), the judge grades every turn, and the candidate is
    compared with each baseline question by question."""
    from harness.core.generation import make_generator
    from harness.core.generation_cache import cached_generator
    from harness.core.log import get_logger

    mt, judge_config = config.mt_bench, config.grading_judge()
    # the pairwise answers are the same generation when the questions, length and settings are: reuse them
    reuse = judge_config == config.pairwise.judge and mt.max_new_tokens == config.pairwise.max_new_tokens
    known: dict[str, dict[tuple, list[str]]] = {name: {} for name in names}
    for item in pairwise_items if reuse else []:
        known[names[0]][(item.question_id, tuple(item.turns))] = item.candidate_answer
        known[item.baseline][(item.question_id, tuple(item.turns))] = item.baseline_answer
    answers = {}
    for name in names:
        todo = [q for q in questions if (q.id, tuple(q.turns)) not in known[name]]
        fresh = {}
        if todo:
            model = (generators or {}).get(name) or make_generator(judge_config.model_copy(update={
                "model": resolved[name].path, "max_new_tokens": mt.max_new_tokens, "temperature": 0.0}))
            fresh = answer(model, todo, mt.max_new_tokens, config.seed)
        answers[name] = {q.id: fresh[q.id] if q.id in fresh else known[name][(q.id, tuple(q.turns))]
                         for q in questions}
    # cached like the pairwise judge: an unchanged answer is never graded twice
    grader = grader or cached_generator(judge_config, home)
    rows = grade(grader, templates, questions, answers, mt.judge_max_new_tokens, config.seed)
    stats = (config.bootstrap_iterations, config.confidence, config.seed)
    grades = [summarise(rows, name, *stats) for name in names]
    for g in grades:
        if g.unparseable:
            get_logger("bench").warning(f"MT-Bench: {g.unparseable} of {g.judgements} judge replies for {g.model} "
                                        f"had no [[1-10]] rating; {g.unscored_questions} questions left unscored")
    weak = judge_config.model in EMBEDDED_MODELS
    missing = [q.id for q in questions if q.category in REFERENCE_CATEGORIES and not q.reference]
    result = MtBenchResult(
        judge=judge_config.model, judge_backend=judge_config.backend, questions=len(questions),
        note=(WEAK_GRADER_NOTE if weak else ""), judge_usage=getattr(grader, "usage", None),
        reference_graded=sum(1 for q in questions if q.reference), missing_reference=missing, models=grades,
        comparisons=[c for b in names[1:] for c in compare_grades(rows, names[0], b, *stats)])
    return result, rows
