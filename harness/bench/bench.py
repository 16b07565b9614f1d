"""`nift-gate bench`: the candidate and each baseline through lm-eval, compared item by item, and judged.

Output under ``<run>/bench/<candidate>/``: record.json (BenchRecord), samples/<model>/samples_<task>.jsonl
(every per-item row lm-eval logged), and, for each judge task that ran, its rows: pairwise.jsonl (every judged
question), mt_bench.jsonl (every graded answer with the judge's raw replies), alpaca_eval.jsonl (every answer
judged against the reference) and arena.jsonl (every battle of the arena ratings).

Under ``accelerate launch`` the processes share each model's lm-eval documents (harness.core.lmeval's data
parallelism); rank 0 compares, judges and writes everything, the other ranks return None once the last model is
evaluated, having written nothing.
"""

from __future__ import annotations

import functools
import math
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from harness.bench.alpaca_eval import reference_answers
from harness.bench.arena import EarlierCandidate
from harness.bench.config import BenchConfig
from harness.bench.grading import check_categories, load_judge_prompts
from harness.bench.judge_tasks import EarlierAnswers, run_judge_tasks
from harness.bench.pairwise import item_rows, load_questions
from harness.bench.record import (
    ALPACA_EVAL_FILE,
    ARENA_FILE,
    MT_BENCH_FILE,
    PAIRWISE_FILE,
    SAMPLES_DIR,
    STAGE,
    TASKS_DIR,
    VERSION,
    BenchRecord,
    EvaluatedModel,
    bench_candidates,
    bench_folder,
    pairwise_file,
    pairwise_rows,
)
from harness.core.config import require_unique
from harness.core.errors import ConfigError, InputError
from harness.core.lmeval import (
    ModelEvalRecord,
    data_parallel_state,
    evaluate_model,
    fingerprint_diff,
    load_samples,
    prepare_tasks,
    task_manager,
)
from harness.core.models import model_name
from harness.core.runner import StageRun, stage_entry
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
    names = (model_name(config.candidate), baseline_name)
    check_comparable(candidate, baseline, names)
    comparisons = []
    for task, scores in candidate.tasks.items():
        cand_rows = paired_rows(load_samples(candidate_dir, task))
        base_rows = paired_rows(load_samples(baseline_dir, task))
        if cand_rows.keys() != base_rows.keys():
            only_c, only_b = sorted(cand_rows.keys() - base_rows.keys()), sorted(base_rows.keys() - cand_rows.keys())
            raise InputError(f"{task}: {names[0]} and {names[1]} were scored on different documents "
                             f"({len(cand_rows)} and {len(base_rows)} items, {len(only_c)} only in {names[0]}, "
                             f"{len(only_b)} only in {names[1]}, e.g. {(only_c or only_b)[0]!r}); rerun both "
                             f"with --force")
        for metric, higher in scores.higher_is_better.items():
            per_item_c = _metric_scores(cand_rows, task, metric, names[0])
            per_item_b = _metric_scores(base_rows, task, metric, names[1])
            if not per_item_c:
                continue  # a corpus-level metric with no per-item value (e.g. IFEval's instruction-level lists)
            comparison = paired_comparison(per_item_c, per_item_b, task=task, metric=metric,
                                           baseline_name=baseline_name, higher_is_better=higher,
                                           iterations=config.bootstrap_iterations, confidence=config.confidence,
                                           seed=config.seed)
            if comparison is not None:  # None: no item scored for both, so no delta (never a NaN one)
                comparisons.append(comparison)
    return comparisons


def paired_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Item key -> scores, for matching one model's rows with another's. The key is lm-eval's document hash and
    which occurrence of it this is, in document order: a suite may hold the same document twice (two identical
    prompts), which are two items, and keyed by the hash alone the second silently replaced the first. Both
    models see the documents in the same order, so the k-th copy is paired with the k-th copy. A document's
    rows under a later lm-eval filter (the same doc_id again) replace its earlier ones, as before: the task's
    metrics, named without the filter, keep the later filter's aggregate too."""
    copies: dict[str, list[int]] = {}
    for row in rows:
        doc_ids = copies.setdefault(row["item"], [])
        if int(row["doc_id"]) not in doc_ids:
            doc_ids.append(int(row["doc_id"]))
    occurrence = {(item, doc_id): k for item, doc_ids in copies.items() for k, doc_id in enumerate(sorted(doc_ids))}
    return {f"{row['item']}#{occurrence[row['item'], int(row['doc_id'])]}": row["scores"] for row in rows}


def _metric_scores(rows: dict[str, dict[str, Any]], task: str, metric: str, model: str) -> dict[str, float]:
    """Item -> score of one per-item metric; a NaN or infinite score is refused, naming the item (it would make
    the mean and CI NaN and be written as null)."""
    out = {}
    for item, scores in rows.items():
        value = scores.get(metric)
        if isinstance(value, (int, float, bool)):
            if not math.isfinite(value):
                raise InputError(f"{task}: {model}'s {metric} on item {item.rpartition('#')[0]!r} is {value}, "
                                 f"not a score a comparison can use")
            out[item] = value
    return out


@stage_entry
def run_bench(config: BenchConfig, store: RunStore, force: bool = False, lms: dict[str, Any] | None = None,
              generators: dict[str, Any] | None = None, judge: Any = None, grader: Any = None,
              alpaca_judge: Any = None) -> BenchRecord | None:
    """Entry point of `nift-gate bench`. ``lms``/``generators``/``judge`` (the pairwise and arena judge)/``grader``
    (the MT-Bench judge)/``alpaca_judge`` (default: ``judge`` when AlpacaEval uses the pairwise judge) replace
    real models (tests).

    Under ``accelerate launch`` every process calls this; rank 0 returns the record, the others None."""
    if not config.baselines:
        raise ConfigError("bench.baselines is empty: the candidate needs at least one baseline to be compared with")
    names = [model_name(config.candidate)] + [b.name for b in config.baselines]
    try:
        require_unique(names, "model names (candidate and baselines)")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _check_judge_tasks(config, names)
    specs = [(names[0], "candidate", config.candidate)] + [(b.name, "baseline", b.model) for b in config.baselines]
    ranks = data_parallel_state()
    helper = ranks is not None and not ranks.is_main_process
    # Rank 0 first: it writes the task files (and the weights' hash cache) the others then find unchanged.
    with ranks.main_process_first() if ranks is not None else nullcontext():
        run = StageRun(store, STAGE, names[0], BenchRecord, force=force, label=STAGE, version=VERSION)
        resolved = {name: run.model(spec, resolve_base) for name, _, spec in specs}
        settings = config.lm_eval_settings()
        # the questions first: a bad question file stops the bench before any task file is written
        questions = _questions(config, run) if config.pairwise.enabled else None
        grading = _grading_inputs(config, run) if config.mt_bench.enabled else None
        alpaca = _alpaca_inputs(config, run, names) if config.alpaca_eval.enabled else None
        earlier = _earlier_candidates(config, run, store, names, questions)
        injected = {"pairwise": judge, "arena": judge, "mt_bench": grader,
                    "alpaca_eval": alpaca_judge or (judge if config.alpaca_eval_judge() == config.pairwise.judge
                                                    else None)}
        judge_shas = _judge_inputs(config, run, injected)
        tasks_dir = store.root / STAGE / TASKS_DIR
        include_paths, task_refs = prepare_tasks(settings, tasks_dir, run)
        done = run.cached(config)
    if done is not None:
        return None if helper else done

    # only when something must run; a refused task name takes the task files just written with it
    manager = functools.cache(lambda: task_manager(include_paths, settings.tasks, written=tasks_dir))
    evals: dict[str, ModelEvalRecord] = {}
    dirs: dict[str, Path] = {}
    models = []
    for name, role, _ in specs:
        evaluated = evaluate_model(name, resolved[name], settings, manager, task_refs, store.home, store.run_id,
                                   force=force, lm=(lms or {}).get(name), ranks=ranks)
        if evaluated is None:  # a rank other than 0: rank 0 holds the gathered results
            continue
        evals[name], dirs[name], cached = evaluated
        models.append(EvaluatedModel(name=name, role=role, model=resolved[name], eval_record_id=evals[name].record_id,
                                     cached=cached))
    if helper:
        run.log.info(f"rank {ranks.process_index} of {ranks.num_processes}: evaluated its share of every model; "
                     "rank 0 compares, judges and writes the bench")
        return None
    comparisons = [c for b in config.baselines for c in compare(evals[names[0]], dirs[names[0]], evals[b.name],
                                                                 dirs[b.name], b.name, config)]
    judged = run_judge_tasks(config, names, {name: spec for name, _, spec in specs}, resolved, store.home,
                             pairwise_questions=questions, grading=grading, alpaca=alpaca, earlier=earlier,
                             judge_shas=judge_shas, generators=generators, injected=injected)
    rows = {PAIRWISE_FILE: item_rows(judged.pairwise_items),
            MT_BENCH_FILE: [row.model_dump() for row in judged.graded],
            ALPACA_EVAL_FILE: [row.model_dump() for row in judged.alpaca_rows],
            ARENA_FILE: [row.model_dump() for row in judged.battles]}
    rows = {path: content for path, content in rows.items() if content}
    record = BenchRecord(
        **run.header(), version=VERSION, candidate=names[0], models=models,
        fingerprint_fields=evals[names[0]].fingerprint_fields,
        scores={n: e.tasks for n, e in evals.items()}, comparisons=comparisons, pairwise=judged.pairwise,
        judge=judged.judge_info, judge_usage=judged.judge_usage, mt_bench=judged.mt_bench,
        alpaca_eval=judged.alpaca_eval, arena=judged.arena, judges=judged.judges,
        world_size=ranks.num_processes if ranks is not None else 1,
        files={"samples": f"{SAMPLES_DIR}/<model>/samples_<task>.jsonl",
               **{path.removesuffix(".jsonl"): path for path in rows}})
    files: dict[str, Any] = {f"{SAMPLES_DIR}/{name}": functools.partial(shutil.copytree, dirs[name]) for name in names}
    return run.commit(record, {**files, **rows})


def _check_judge_tasks(config: BenchConfig, names: list[str]) -> None:
    """Refuse judge settings that cannot work, before anything is written."""
    if config.arena.enabled and not config.pairwise.enabled:
        raise ConfigError("bench.arena needs bench.pairwise.enabled: the arena rates the pairwise judge's verdicts")
    if config.arena.anchor is not None and config.arena.anchor not in names:
        raise ConfigError(f"bench.arena.anchor: {config.arena.anchor!r} is neither the candidate nor a baseline "
                          f"({', '.join(names)})")
    if config.mt_bench.enabled and config.mt_bench.rating == "constrained" \
            and config.grading_judge().backend != "transformers":
        raise ConfigError(f"bench.mt_bench.rating: constrained needs a local transformers judge, not backend "
                          f"{config.grading_judge().backend!r}; use written or auto")


def _questions(config: BenchConfig, run: StageRun):
    """The pairwise questions, an input of the bench (an edited question file is another bench)."""
    from harness.core.assets import resolve_asset

    if not resolve_asset(config.pairwise.prompts).is_file():
        raise InputError(f"{resolve_asset(config.pairwise.prompts)}: pairwise questions not found")
    return load_questions(run.file(config.pairwise.prompts, kind="questions"), config.pairwise.limit, run.read)


def _judge_inputs(config: BenchConfig, run: StageRun, injected: dict[str, Any]) -> dict[str, str | None]:
    """A judge's weights decide its verdicts and ratings as a model's decide its answers: every configured judge
    is an input by content, once however many tasks it serves (judges injected by tests are not). Returns each
    judge's weights hash by config hash (for the self-preference check)."""
    from harness.core.generation import generator_input
    from harness.core.records import config_hash

    wanted = [("pairwise", config.pairwise.enabled, config.pairwise.judge, "judge_model"),
              ("mt_bench", config.mt_bench.enabled, config.grading_judge(), "grading_judge_model"),
              ("alpaca_eval", config.alpaca_eval.enabled, config.alpaca_eval_judge(), "alpaca_eval_judge_model")]
    shas: dict[str, str | None] = {}
    for task, enabled, judge_config, kind in wanted:
        key = config_hash(judge_config.model_dump())
        if not enabled or injected.get(task) is not None or key in shas:
            continue
        ref = run.add(generator_input(judge_config, kind=kind))
        shas[key] = None if judge_config.backend == "openai" else ref.sha256
    return shas


def _grading_inputs(config: BenchConfig, run: StageRun):
    """The MT-Bench questions and the judge's templates, inputs of the bench (hashed, like the pairwise
    questions): (questions, templates)."""
    mt = config.mt_bench
    questions = load_questions(run.file(mt.prompts, kind="mt_bench_questions"), mt.limit, run.read)
    check_categories(questions, mt.prompts)
    return questions, load_judge_prompts(run.file(mt.judge_prompts, kind="judge_prompts"), run.read)


def _alpaca_inputs(config: BenchConfig, run: StageRun, names: list[str]):
    """The AlpacaEval instructions (an input) and the reference: (questions, reference name, source, the file's
    reference answers or None)."""
    ae = config.alpaca_eval
    questions = load_questions(run.file(ae.prompts, kind="alpaca_eval_instructions"), ae.limit, run.read)
    return (questions, *reference_answers(questions, ae.reference, names[1:], ae.prompts))


def _earlier_candidates(config: BenchConfig, run: StageRun, store: RunStore, names: list[str],
                        questions) -> list[EarlierAnswers]:
    """The other candidates benched in this run, for the arena: each bench record an input (pinned by content),
    its stored pairwise answers used when they answer the same questions at the same length and seed."""
    if not (config.arena.enabled and config.arena.earlier_candidates and questions is not None):
        return []
    out = []
    for other in bench_candidates(store):
        if other == names[0]:
            continue
        record = run.record(bench_folder(store, other), BenchRecord, kind="earlier_bench")
        entry = EarlierCandidate(name=other, record_id=record.record_id, included=False)
        earlier = EarlierAnswers(entry=entry, spec=record.config.get("candidate", other),
                                 model=next((m.model for m in record.models if m.role == "candidate"), None))
        if (answers := pairwise_file(store, other)).exists():  # their answers feed the ratings: an input too
            run.file(answers, kind="earlier_bench_answers", id=f"{other}:pairwise")
        asked = {r.question_id: r for r in pairwise_rows(store, other, run.read)}
        theirs = record.config.get("pairwise") or {}
        if other in names:
            entry.reason = "named like a baseline of this bench"
        elif not asked:
            entry.reason = "its bench judged no pairwise question"
        elif (theirs.get("max_new_tokens"), record.config.get("seed")) != (config.pairwise.max_new_tokens,
                                                                             config.seed):
            entry.reason = "answered at another length or seed"
        elif missing := [q.id for q in questions if q.id not in asked or asked[q.id].turns != q.turns]:
            entry.reason = f"did not answer the same questions (first differing: {missing[0]})"
        else:
            entry.included = True
            earlier.answers = {q.id: asked[q.id].candidate_answer for q in questions}
        out.append(earlier)
    return out
