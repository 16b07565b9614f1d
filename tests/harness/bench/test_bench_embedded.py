"""The project's suite through lm-eval on the embedded model (slow)."""

import pytest

from harness.bench.bench import run_bench
from harness.bench.config import BenchConfig
from harness.core.store import RunStore


@pytest.mark.slow
def test_embedded_model_against_a_tiny_baseline_on_the_projects_suite(tiny_model):
    config = BenchConfig(candidate="smollm2-135m-instruct", baselines=[{"name": "tiny", "model": str(tiny_model)}],
                         tasks=["nift_if"], limit=4, max_gen_toks=24, batch_size=4)
    record = run_bench(config, RunStore("r"))
    assert record.scores["smollm2-135m-instruct"]["nift_if"].n == 4
    [strict, loose] = sorted(record.comparisons, key=lambda c: c.metric)
    assert strict.n == loose.n == 4 and strict.test == "mcnemar-exact"
    rows = (RunStore("r").stage_dir("bench", "smollm2-135m-instruct") / "samples" / "smollm2-135m-instruct"
            / "samples_nift_if.jsonl").read_text()
    assert rows.count("\n") == 4 and '"response"' in rows
