"""Which way is better for a bench metric: everywhere the bench record says it, and where it is known outside it.

A bench record states the direction of an lm-eval metric in several places: each model's ``scores`` (lm-eval's
``higher_is_better``), each paired comparison (``comparisons``, and MT-Bench's and AlpacaEval's) and its
``metrics``. ``BenchRecord.declared_metrics`` reads it from the scores, which the record itself holds, so an edit
of the scores and ``metrics`` alone would turn a loss into a win. The gate therefore refuses a record whose places
disagree, and one that declares the opposite of what is known without it: nift-gate's own specs of the bench's
judge metrics (``harness.bench.record``), the ``metric_list`` of the task's YAML (a task nift-gate ships, with the
lm-eval file it includes, or lm-eval's own ``tasks/<task>/<task>.yaml``), else lm-eval's metric registry. A
metric known to none of them (a user's task with a metric of its own) is judged by the record's word alone.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from pathlib import Path


from harness.bench.record import (
    ALPACA_EVAL_LC_WIN_RATE,
    ALPACA_EVAL_WIN_RATE,
    ARENA_RATING,
    MT_BENCH,
    POSITION_CONSISTENCY,
    BenchRecord,
    mt_bench_spec,
)
from harness.core.assets import assets_dir
from harness.core.errors import InputError
from harness.core.lmeval import PROJECT_TASKS, load_task_yaml

#: The bench's metrics whose spec is nift-gate code, not a field of the record.
CODE_SPECS = {s.name: s for s in (POSITION_CONSISTENCY, ALPACA_EVAL_WIN_RATE, ALPACA_EVAL_LC_WIN_RATE, ARENA_RATING)}


def stated_directions(record: BenchRecord) -> dict[str, dict[bool, list[str]]]:
    """Metric -> direction -> every place of the record that states it."""
    stated: dict[str, dict[bool, list[str]]] = {}

    def state(metric: str, higher: bool, where: str) -> None:
        stated.setdefault(metric, {}).setdefault(higher, []).append(where)

    for spec in record.metrics:
        state(spec.name, spec.higher_is_better, "metrics")
    for model, tasks in record.scores.items():
        for task, scores in tasks.items():
            for metric, higher in scores.higher_is_better.items():
                state(f"bench.{task}.{metric}", higher, f"scores.{model}.{task}.higher_is_better")
    compared = [("comparisons", record.comparisons),
                ("mt_bench.comparisons", record.mt_bench.comparisons if record.mt_bench else []),
                ("alpaca_eval.comparisons", record.alpaca_eval.comparisons if record.alpaca_eval else [])]
    for field, comparisons in compared:
        for c in comparisons:
            state(f"bench.{c.task}.{c.metric}", c.higher_is_better, f"{field} (vs {c.baseline})")
    return stated


def known_direction(metric: str) -> tuple[bool, str] | None:
    """(higher_is_better, where that is said) for a bench metric, from a source the record cannot edit; None
    when none knows it."""
    if metric in CODE_SPECS:
        return CODE_SPECS[metric].higher_is_better, "nift-gate's spec of it (harness.bench.record)"
    task, _, name = metric.removeprefix("bench.").partition(".")
    if not name:
        return None
    if task == MT_BENCH:
        return mt_bench_spec(name).higher_is_better, "nift-gate's MT-Bench spec (harness.bench.record)"
    found = _task_directions(task)
    if name in found:
        return found[name]
    try:
        importlib.import_module("lm_eval.api.metrics")  # importing it registers lm-eval's metrics
        from lm_eval.api.registry import HIGHER_IS_BETTER_REGISTRY
    except ImportError:
        return None
    higher = HIGHER_IS_BETTER_REGISTRY.get(name, None)
    return (higher, "lm-eval's metric registry") if isinstance(higher, bool) else None


def check_bench_directions(path: Path, record: BenchRecord) -> None:
    """Refuse a bench record that states a metric's direction two ways, or the opposite of :func:`known_direction`."""
    def way(higher: bool) -> str:
        return "higher" if higher else "lower"

    for metric, directions in sorted(stated_directions(record).items()):
        if len(directions) > 1:
            raise InputError(f"{path}: record {record.record_id} says {metric} is higher-is-better in "
                             f"{', '.join(directions[True])} but lower-is-better in {', '.join(directions[False])}; "
                             f"a record that contradicts itself was edited: rerun bench")
        (stated,) = directions
        known = known_direction(metric)
        if known is not None and known[0] != stated:
            raise InputError(f"{path}: record {record.record_id} declares {metric} {way(stated)}-is-better, but "
                             f"{known[1]} says {way(known[0])} is better; the record was edited: rerun bench")


def _lm_eval_tasks() -> Path | None:
    spec = importlib.util.find_spec("lm_eval")  # located, not imported (lm_eval.tasks takes seconds)
    return Path(spec.origin).parent / "tasks" if spec is not None and spec.origin else None


@lru_cache(maxsize=None)
def _task_directions(task: str) -> dict[str, tuple[bool, str]]:
    """Metric -> (higher_is_better, the YAML saying it) from ``task``'s ``metric_list``, where its YAML is known."""
    lm_eval_tasks = _lm_eval_tasks()
    if task in PROJECT_TASKS:
        path: Path | None = assets_dir() / "tasks" / f"{task}.yaml"
    else:
        path = lm_eval_tasks / task / f"{task}.yaml" if lm_eval_tasks is not None else None
    if path is None or not path.is_file():
        return {}
    render = (lambda text: text.replace("${lm_eval_tasks}", str(lm_eval_tasks))) if lm_eval_tasks else None
    try:
        config = load_task_yaml(path, render=render) or {}
    except InputError:  # not UTF-8 or not YAML: nothing is known from it
        return {}
    if task not in PROJECT_TASKS and config.get("task") != task:
        return {}  # a file of that name defining another task, or a group
    return {entry["metric"]: (entry["higher_is_better"], f"the task's YAML ({path})")
            for entry in config.get("metric_list") or []
            if isinstance(entry, dict) and isinstance(entry.get("metric"), str)
            and isinstance(entry.get("higher_is_better"), bool)}
