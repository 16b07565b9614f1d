"""`nift-gate bench` under `accelerate launch` with 2 CPU processes (gloo, configs/accelerate/cpu-ddp.yaml): the
ranks share each model's lm-eval documents and the bench is the single-process one, row for row."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny import build_tiny_model
from toy_task import write_toy_mc_task

from harness.bench.bench import run_bench
from harness.bench.config import BenchConfig
from harness.bench.record import BenchRecord
from harness.core.lmeval import ModelEvalRecord, _merge_rank_results
from harness.core.store import RECORD_FILE, RunStore, read_record
from tests.support.devtools import free_port

ACCELERATE_CONFIG = Path(__file__).parents[3] / "configs" / "accelerate" / "cpu-ddp.yaml"
#: 11 items (ranks take 6 and 5) with 2 to 4 choices: the ranks hold different numbers of requests, so lm-eval
#: pads the shorter one's, and the gathered rows must still come back in one process's order.
QUESTIONS = [{"question": f"Question {i}: which word comes next?", "choices": ["right", "wrong", "maybe", "never"][
    :2 + i % 3], "answer": i % 2} for i in range(11)]


def _rows(home: Path, run: str, model: str) -> list[dict]:
    path = home / run / "bench" / "model" / "samples" / model / "samples_toy_mc.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_bench_the_single_process_rows_and_scores_and_only_rank_0_writes(
        tiny_model, tmp_path_factory, embedded_texts, tmp_path):
    baseline = build_tiny_model(tmp_path_factory.mktemp("tiny-ddp-b") / "model", embedded_texts, seed=1)
    bench = {"candidate": str(tiny_model), "baselines": [{"name": "base", "model": str(baseline)}],
             "tasks": ["toy_mc"], "task_dirs": [str(write_toy_mc_task(tmp_path, QUESTIONS))],
             "apply_chat_template": False, "threads": 1, "batch_size": 4}

    # one process, in this one, into its own home: the two-rank run below may not reuse its cache
    single_home = tmp_path / "single"
    single = run_bench(BenchConfig(**bench), RunStore("one", single_home))

    config = tmp_path / "bench.yaml"
    config.write_text(json.dumps({"run": "two", "bench": bench}))
    ddp_home = tmp_path / "ddp"
    # through `nift-gate launch` (accelerate's launcher, run in-process): its success path; the train test
    # launches with `accelerate launch` itself
    cmd = [sys.executable, "-m", "harness.app.cli", "launch", "--main-process-port", str(free_port()),
           str(ACCELERATE_CONFIG), "bench", "--config", str(config), "--home", str(ddp_home)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 1 returned no record: only rank 0 printed the bench's summary
    assert done.stdout.count("bench [model] -> ") == 1, done.stdout

    folder = ddp_home / "two" / "bench" / "model"
    two = read_record(folder, BenchRecord)
    assert (two.world_size, single.world_size) == (2, 1)
    assert [m.cached for m in two.models] == [False, False]
    for name in ("model", "base"):
        rows = _rows(ddp_home, "two", name)
        assert rows == _rows(single_home, "one", name)  # same items, same order, same scores and logprobs
        assert [r["doc_id"] for r in rows] == list(range(len(QUESTIONS)))
    assert two.scores == single.scores  # aggregates and stderr included
    assert [c.model_dump() for c in two.comparisons] == [c.model_dump() for c in single.comparisons]
    # one cache entry per model, written once, naming the processes that shared it
    entries = sorted((ddp_home / "_cache" / "bench").iterdir())
    assert len(entries) == 2
    assert {read_record(e, ModelEvalRecord).world_size for e in entries} == {2}
    assert all((e / RECORD_FILE).exists() for e in entries)


@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_results_merge_back_into_one_processs_order(world_size):
    """Each rank holds lm-eval's share of 5 documents (``create_iterator``, the evaluator's split): per filter
    every document's sample, and one raw value per document and (metric, filter); merged, they are what one
    process holds, entry for entry."""
    from lm_eval.utils import create_iterator

    def payloads(rank: int, size: int) -> tuple[dict, dict]:
        docs = [doc for doc, _ in create_iterator(enumerate("abcde"), rank=rank, world_size=size)]
        samples = [{"doc_id": d, "filter": f} for f in ("strict", "loose") for d in docs]
        metrics = {(m, f): [(m, f, d) for d in docs] for m in ("acc", "f1") for f in ("strict", "loose")}
        return {"task": samples, "other": samples[:len(docs)]}, {"task": metrics}

    one_samples, one_metrics = payloads(0, 1)
    parts = [payloads(rank, world_size) for rank in range(world_size)]
    assert _merge_rank_results([samples for samples, _ in parts]) == one_samples
    assert _merge_rank_results([metrics for _, metrics in parts]) == one_metrics
    assert [s["doc_id"] for s in parts[0][0]["task"]] != [s["doc_id"] for s in one_samples["task"]]
