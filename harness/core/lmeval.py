"""lm-eval on one model: the tasks made concrete for this machine, the run, and a cache of its results.

Used by every stage that scores a model with lm-eval tasks (bench, and the hallucination audit's TruthfulQA).

* Tasks: registered lm-eval tasks by name, and nift-gate's own YAMLs (``harness/assets/tasks/``), which name
  their data with ``${data_file}`` and include lm-eval's own task files with ``${lm_eval_tasks}``; they are
  filled in and written to a folder of the calling stage, then loaded with ``TaskManager(include_path=...)``.
  :func:`prepare_tasks` opens every task data file and task folder through the stage's
  :class:`~harness.core.runner.StageRun`, so each is an input of that stage.
* Cache: one model's results under ``<home>/_cache/bench/<model hash>-<settings hash>/``, keyed by the
  model's weights hash and the :data:`FINGERPRINT_FIELDS` of the settings, lm-eval's version and the task
  data hashes; any stage evaluating the same model the same way reuses them.
"""

from __future__ import annotations

import difflib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, Field

from harness.core.assets import assets_dir, resolve_asset
from harness.core.config import Section
from harness.core.errors import ConfigError, InputError
from harness.core.log import get_logger
from harness.core.models import ResolvedModel
from harness.core.records import (
    InputRef,
    Record,
    config_hash,
    library_versions,
    new_record_id,
    sha256_bytes,
)
from harness.core.store import (
    RECORD_FILE,
    atomic_dir,
    atomic_write_bytes,
    atomic_write_jsonl,
    read_jsonl,
    read_record,
)

if TYPE_CHECKING:
    from harness.core.runner import StageRun

log = get_logger("lmeval")

#: nift-gate's own tasks, written from the templates in ``harness/assets/tasks/``.
TRUTHFULQA_TASKS = {"nift_truthfulqa_mc1", "nift_truthfulqa_mc2"}
PROJECT_TASKS = {"nift_if", "nift_ifeval_local", *TRUTHFULQA_TASKS}

#: Settings that change scores; with lm-eval's version and the task data hashes they form the cache key.
FINGERPRINT_FIELDS = ("apply_chat_template", "num_fewshot", "batch_size", "dtype", "seed", "limit", "max_gen_toks",
                      "tasks", "backend")


class LmEvalSettings(Section):
    """How lm-eval runs: which tasks, on what data, with which generation and batching settings."""

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
    threads: int | None = Field(None, ge=1, description="CPU threads; default: chosen by measurement.")


# --- tasks ----------------------------------------------------------------------------------------------------


def use_local_nltk_data() -> None:
    """Point nltk at the shipped punkt_tab, so IFEval's checkers never try to download it."""
    import sys

    local = str(assets_dir() / "nltk_data")
    if local not in os.environ.get("NLTK_DATA", "").split(os.pathsep):
        os.environ["NLTK_DATA"] = os.pathsep.join(p for p in (local, os.environ.get("NLTK_DATA")) if p)
    nltk = sys.modules.get("nltk")  # already imported: its search path was fixed at import time
    if nltk is not None and local not in nltk.data.path:
        nltk.data.path.insert(0, local)


class _TaskYamlLoader(yaml.SafeLoader):
    """Parses lm-eval task YAML for validation: `!function` and other tags are accepted, not run."""


_TaskYamlLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def validate_task_dir(folder: Path) -> None:
    for path in sorted(folder.rglob("*.yaml")):
        try:
            yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise InputError(f"{path}{where}: task file does not parse ({getattr(exc, 'problem', exc)})") from None


def _truthfulqa_rows(path: Path) -> list[dict]:
    """TruthfulQA's mc_task.json ({choice: label} maps) -> lm-eval's fields (choices and labels lists)."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    rows = []
    for number, item in enumerate(items, 1):
        try:
            rows.append({"question": item["question"],
                         **{key: {"choices": list(item[key]), "labels": list(item[key].values())}
                            for key in ("mc1_targets", "mc2_targets")}})
        except (KeyError, TypeError, AttributeError):
            raise InputError(f"{path}: item {number} lacks question/mc1_targets/mc2_targets") from None
    return rows


def _input_file(run: StageRun | None, spec: str, missing: str, id: str) -> Path:
    """``spec`` resolved; an input of ``run`` (hashed by content) when one is given. ``missing`` is the error
    text after the path when the file is not there."""
    path = resolve_asset(spec)
    if not path.is_file():
        raise InputError(f"{path}: {missing}")
    return run.file(spec, kind="task_data", id=id) if run is not None else path


def _content_named_copy(folder: Path, name: str, content: bytes, digest: str) -> Path:
    """``content`` as ``folder/<stem>-<hash><suffix>``. lm-eval reads task data through ``datasets``, whose
    cache knows a local file by its path and mtime only: a file edited in place with its mtime kept would be
    read back stale, a file named by its content never is. Copies of earlier content are removed."""
    stem, suffix = Path(name).stem, Path(name).suffix
    target = folder / f"{stem}-{digest[:16]}{suffix}"
    if not target.exists():
        atomic_write_bytes(target, content)
    for old in folder.glob(f"{stem}-*{suffix}"):
        if old != target and len(old.name) == len(target.name):
            old.unlink(missing_ok=True)
    return target


def materialise(settings: LmEvalSettings, folder: Path, run: StageRun | None = None) -> tuple[str, list[InputRef]]:
    """Write the project tasks these settings use into ``folder``; return the include path and the data refs
    that key the result cache. The data of every task asked for is an input of ``run``."""
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    # Located, not imported: importing lm_eval.tasks costs seconds a cached rerun does not need.
    lm_eval_tasks = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"
    refs = []
    truthfulqa_rows = None
    if settings.truthfulqa_path:  # mc1 and mc2 share one source, converted to lm-eval's fields once
        wanted = bool(TRUTHFULQA_TASKS & set(settings.tasks))
        source = _input_file(run if wanted else None, settings.truthfulqa_path, "TruthfulQA file not found",
                             f"truthfulqa:{settings.truthfulqa_path}")
        truthfulqa_rows = "".join(json.dumps(r) + "\n" for r in _truthfulqa_rows(source)).encode()
    # Every project task whose data is at hand is written (so its name is known and suggested); one that
    # is asked for without its data is an error.
    for task in sorted(PROJECT_TASKS):
        wanted = task in settings.tasks
        if task == "nift_if":
            spec = "embedded:suites/instruction_following.jsonl"
            source = _input_file(run if wanted else None, spec, f"data for task {task} not found",
                                 f"{task}:{resolve_asset(spec).name}")
            name, content = source.name, source.read_bytes()
        elif task == "nift_ifeval_local":
            if not settings.ifeval_path:
                if wanted:
                    raise ConfigError("task nift_ifeval_local needs bench.ifeval_path (IFEval's input_data.jsonl)")
                continue
            source = _input_file(run if wanted else None, settings.ifeval_path, f"data for task {task} not found",
                                 f"{task}:{resolve_asset(settings.ifeval_path).name}")
            name, content = source.name, source.read_bytes()
        else:
            if truthfulqa_rows is None:
                if wanted:
                    raise ConfigError(f"task {task} needs bench.truthfulqa_path (TruthfulQA's mc_task.json)")
                continue
            name, content = "truthfulqa_mc.jsonl", truthfulqa_rows
        digest = sha256_bytes(content)
        if wanted:
            refs.append(InputRef(kind="task_data", id=f"{task}:{name}", sha256=digest))
        data = _content_named_copy(folder, name, content, digest)
        template = Template((assets_dir() / "tasks" / f"{task}.yaml").read_text())
        (folder / f"{task}.yaml").write_text(template.substitute(
            lm_eval_tasks=lm_eval_tasks, data_file=data.resolve(), max_gen_toks=settings.max_gen_toks))
    return str(folder), refs


def prepare_tasks(settings: LmEvalSettings, folder: Path, run: StageRun | None = None) -> tuple[list[str], list[InputRef]]:
    """Write nift-gate's task files into ``folder`` and check the user's; returns the include paths and the
    refs that key the result cache (task data, and each user task folder's content).

    ``run`` is the calling stage's run: every task data file and task folder asked for becomes one of its
    inputs. Cheap: a fully cached rerun needs no more than this (building a TaskManager indexes every task
    lm-eval ships, several seconds).
    """
    from harness.core.runner import tree_sha256

    use_local_nltk_data()
    include, refs = materialise(settings, folder, run)
    paths = [include]
    for extra in settings.task_dirs:
        path = resolve_asset(extra)
        if not path.is_dir():
            raise InputError(f"{path}: task folder not found")
        validate_task_dir(path)
        if run is not None:
            run.tree(extra, kind="task_dir")
            refs.append(InputRef(kind="task_dir", id=extra, sha256=run.inputs[-1].sha256))
        else:
            refs.append(InputRef(kind="task_dir", id=extra, sha256=tree_sha256(path)))
        paths.append(str(path))
    return paths, refs


def task_manager(include_paths: list[str], tasks: list[str]):
    """A TaskManager over lm-eval's tasks and ``include_paths``; unknown task names are refused."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_paths)
    known = set(manager.all_tasks)
    for task in tasks:
        if task not in known:
            close = difflib.get_close_matches(task, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `lm-eval ls tasks` lists them"
            raise ConfigError(f"unknown task {task!r}{hint}")
    return manager


# --- evaluation -----------------------------------------------------------------------------------------------


class TaskScores(BaseModel):
    version: str | None = Field(description="The task's metadata.version.")
    n: int = Field(description="Items scored.")
    metrics: dict[str, float] = Field(description="Aggregate per metric (lm-eval's 'acc,none' style keys trimmed).")
    stderr: dict[str, float | None] = Field(default_factory=dict)
    higher_is_better: dict[str, bool] = Field(description="lm-eval's direction for each metric.")


class ModelEvalRecord(Record):
    """One model's lm-eval results on the tasks; per-item rows in samples_<task>.jsonl beside it."""

    kind: Literal["model_eval"] = "model_eval"
    model_name: str
    model: ResolvedModel
    fingerprint_fields: dict[str, Any] = Field(description="What must match for two results to be compared.")
    tasks: dict[str, TaskScores]
    seconds: float
    threads: dict[str, Any] = Field(default_factory=dict)


def fingerprint_fields(settings: LmEvalSettings, task_refs: list[InputRef]) -> dict[str, Any]:
    fields = {name: getattr(settings, name) for name in FINGERPRINT_FIELDS}
    fields["lm_eval_version"] = library_versions().get("lm-eval")
    fields["task_data"] = {ref.id: ref.sha256 for ref in task_refs}
    return fields


def fingerprint_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of fingerprint fields that differ (task versions included), for a refusal message."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _metric_name(key: str) -> str:
    return key.split(",", 1)[0]


def item_key(sample: dict[str, Any]) -> str:
    """Items are matched across models by lm-eval's document hash (the same doc gives the same hash)."""
    return str(sample.get("doc_hash") or sample["doc_id"])


def _sample_row(sample: dict[str, Any], metrics: list[str]) -> dict[str, Any]:
    def plain(value):
        return value if isinstance(value, (int, float, str, bool)) or value is None else json.loads(
            json.dumps(value, default=str))

    return {"doc_id": sample["doc_id"], "item": item_key(sample), "target": plain(sample.get("target")),
            "response": plain(sample.get("filtered_resps")), "prompt": plain(sample.get("arguments")),
            "scores": {m: plain(sample[m]) for m in metrics if m in sample}}


def run_lm_eval(lm, settings: LmEvalSettings, task_manager) -> tuple[dict[str, TaskScores], dict[str, list[dict]], float]:
    """``lm`` is any lm-eval LM (HFLM in production, a scripted model in tests)."""
    import lm_eval

    start = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model=lm, tasks=list(settings.tasks), task_manager=task_manager, num_fewshot=settings.num_fewshot,
        limit=settings.limit, log_samples=True, apply_chat_template=settings.apply_chat_template,
        bootstrap_iters=1000, random_seed=settings.seed, numpy_random_seed=settings.seed,
        torch_random_seed=settings.seed, fewshot_random_seed=settings.seed)
    seconds = time.perf_counter() - start
    scores, rows = {}, {}
    for task in settings.tasks:
        aggregate = results["results"][task]
        directions = results.get("higher_is_better", {}).get(task, {})
        metrics = {_metric_name(k): float(v) for k, v in aggregate.items()
                   if "," in k and "_stderr" not in k and isinstance(v, (int, float))}
        stderr = {_metric_name(k).replace("_stderr", ""): (float(v) if isinstance(v, (int, float)) else None)
                  for k, v in aggregate.items() if "_stderr" in k}
        samples = results["samples"][task]
        rows[task] = [_sample_row(s, list(metrics)) for s in samples]
        scores[task] = TaskScores(version=str(results.get("versions", {}).get(task)), n=len(samples),
                                  metrics=metrics, stderr=stderr,
                                  higher_is_better={m: bool(directions.get(m, True)) for m in metrics})
    return scores, rows, seconds


def load_lm(resolved: ResolvedModel, settings: LmEvalSettings):
    """lm-eval's HFLM around the model nift-gate loaded, or lm-eval's vLLM class on the same folder."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from harness.core.models import load_model

    if settings.backend == "vllm":
        try:
            from lm_eval.models.vllm_causallms import VLLM
        except ImportError:
            raise ConfigError("bench.backend=vllm needs vLLM (pip install vllm, on a GPU machine)") from None
        return VLLM(pretrained=resolved.path, dtype=settings.dtype, batch_size=settings.batch_size,
                    seed=settings.seed)

    loaded = load_model(resolved, dtype=settings.dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFLM(pretrained=loaded.model.to(device), tokenizer=loaded.tokenizer, batch_size=settings.batch_size,
                device=device)


def cache_dir(home: Path, model_sha: str, fields: dict[str, Any]) -> Path:
    return home / "_cache" / "bench" / f"{model_sha[:16]}-{config_hash(fields)[:16]}"


def evaluate_model(name: str, resolved: ResolvedModel, settings: LmEvalSettings, task_manager: Callable[[], Any],
                   task_refs: list[InputRef], home: Path, run_id: str, force: bool = False,
                   lm=None) -> tuple[ModelEvalRecord, Path, bool]:
    """lm-eval results for one model, from the cache when this model was run with the same fingerprint.

    ``task_refs`` are :func:`prepare_tasks`' refs. ``task_manager`` is called only when the model must really
    be evaluated. Returns the record, the folder holding it and its per-item rows, and whether it came from
    the cache.
    """
    fields = fingerprint_fields(settings, task_refs)
    folder = cache_dir(home, resolved.sha256, fields)
    if not force and (folder / RECORD_FILE).exists():
        record = read_record(folder, ModelEvalRecord)
        log.info(f"[{name}] cached lm-eval results reused ({folder}); --force reruns")
        return record, folder, True
    from harness.core.threads import choose_threads

    threads = choose_threads("generate", settings.threads)
    manager = task_manager()  # first: an unknown task fails before a model is loaded
    scores, rows, seconds = run_lm_eval(lm if lm is not None else load_lm(resolved, settings), settings, manager)
    record = ModelEvalRecord(
        record_id=new_record_id("model_eval"), run_id=run_id, config=settings.model_dump(),
        inputs=[InputRef(kind="model", id=resolved.spec, sha256=resolved.sha256), *task_refs],
        fingerprint=config_hash(fields), model_name=name, model=resolved, fingerprint_fields=fields, tasks=scores,
        seconds=round(seconds, 2), threads=threads.model_dump())
    with atomic_dir(folder) as tmp:
        for task, task_rows in rows.items():
            atomic_write_jsonl(tmp / f"samples_{task}.jsonl", task_rows)
        (tmp / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
    return record, folder, False


def load_samples(record_dir: Path, task: str) -> list[dict[str, Any]]:
    path = record_dir / f"samples_{task}.jsonl"
    if not path.exists():
        raise InputError(f"{path}: per-item rows missing; rerun with --force")
    return read_jsonl(path)
