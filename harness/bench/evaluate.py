"""Run lm-eval on one model and keep every per-item row; cache results by (model hash, fingerprint)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.bench.config import BenchConfig
from harness.core.errors import InputError
from harness.core.models import ResolvedModel
from harness.core.records import (
    InputRef,
    Record,
    config_hash,
    library_versions,
    new_record_id,
)
from harness.core.store import (
    RECORD_FILE,
    atomic_dir,
    atomic_write_jsonl,
    read_jsonl,
    read_record,
)

#: Config fields that change scores; with lm-eval's version and the task data hashes they form the fingerprint.
FINGERPRINT_FIELDS = ("apply_chat_template", "num_fewshot", "batch_size", "dtype", "seed", "limit", "max_gen_toks",
                      "tasks", "backend")


class TaskScores(BaseModel):
    version: str | None = Field(description="The task's metadata.version.")
    n: int = Field(description="Items scored.")
    metrics: dict[str, float] = Field(description="Aggregate per metric (lm-eval's 'acc,none' style keys trimmed).")
    stderr: dict[str, float | None] = Field(default_factory=dict)
    higher_is_better: dict[str, bool] = Field(description="lm-eval's direction for each metric.")


class ModelEvalRecord(Record):
    """One model's lm-eval results on the bench tasks; per-item rows in samples_<task>.jsonl beside it."""

    kind: Literal["model_eval"] = "model_eval"
    model_name: str
    model: ResolvedModel
    fingerprint_fields: dict[str, Any] = Field(description="What must match for two results to be compared.")
    tasks: dict[str, TaskScores]
    seconds: float
    threads: dict[str, Any] = Field(default_factory=dict)


def fingerprint_fields(config: BenchConfig, task_refs: list[InputRef]) -> dict[str, Any]:
    fields = {name: getattr(config, name) for name in FINGERPRINT_FIELDS}
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


def run_lm_eval(lm, config: BenchConfig, task_manager) -> tuple[dict[str, TaskScores], dict[str, list[dict]], float]:
    """``lm`` is any lm-eval LM (HFLM in production, a scripted model in tests)."""
    import lm_eval

    start = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model=lm, tasks=list(config.tasks), task_manager=task_manager, num_fewshot=config.num_fewshot,
        limit=config.limit, log_samples=True, apply_chat_template=config.apply_chat_template,
        bootstrap_iters=1000, random_seed=config.seed, numpy_random_seed=config.seed,
        torch_random_seed=config.seed, fewshot_random_seed=config.seed)
    seconds = time.perf_counter() - start
    scores, rows = {}, {}
    for task in config.tasks:
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


def load_lm(resolved: ResolvedModel, config: BenchConfig):
    """lm-eval's HFLM around the model nift-gate loaded, or lm-eval's vLLM class on the same folder."""
    import torch
    from lm_eval.models.huggingface import HFLM

    from harness.core.errors import ConfigError
    from harness.core.models import load_model

    if config.backend == "vllm":
        try:
            from lm_eval.models.vllm_causallms import VLLM
        except ImportError:
            raise ConfigError("bench.backend=vllm needs vLLM (pip install vllm, on a GPU machine)") from None
        return VLLM(pretrained=resolved.path, dtype=config.dtype, batch_size=config.batch_size, seed=config.seed)

    loaded = load_model(resolved, dtype=config.dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFLM(pretrained=loaded.model.to(device), tokenizer=loaded.tokenizer, batch_size=config.batch_size,
                device=device)


def cache_dir(home: Path, model_sha: str, fields: dict[str, Any]) -> Path:
    return home / "_cache" / "bench" / f"{model_sha[:16]}-{config_hash(fields)[:16]}"


def evaluate_model(name: str, resolved: ResolvedModel, config: BenchConfig, task_manager: Callable[[], Any],
                   task_refs: list[InputRef],
                   home: Path, run_id: str, force: bool = False, lm=None) -> tuple[ModelEvalRecord, Path, bool]:
    """lm-eval results for one model, from the cache when this model was run with the same fingerprint.

    ``task_manager`` is called only when the model must really be evaluated. Returns the record, the folder
    holding it and its per-item rows, and whether it came from the cache.
    """
    fields = fingerprint_fields(config, task_refs)
    folder = cache_dir(home, resolved.sha256, fields)
    if not force and (folder / RECORD_FILE).exists():
        record = read_record(folder, ModelEvalRecord)
        print(f"bench [{name}]: cached lm-eval results reused ({folder}); --force reruns")
        return record, folder, True
    from harness.core.threads import choose_threads

    threads = choose_threads("generate", config.threads)
    manager = task_manager()  # first: an unknown task fails before a model is loaded
    scores, rows, seconds = run_lm_eval(lm if lm is not None else load_lm(resolved, config), config, manager)
    record = ModelEvalRecord(
        record_id=new_record_id("model_eval"), run_id=run_id, config=config.model_dump(),
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
