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


@pytest.mark.slow
def test_the_embedded_judge_grades_mt_bench_constrained_says_it_is_weak_and_flags_itself(tiny_model):
    # the demo's judge on two of the embedded questions (one two-turn), the embedded model also a baseline
    config = BenchConfig(candidate=str(tiny_model), baselines=[{"name": "shipped", "model": "smollm2-135m-instruct"}],
                         tasks=["nift_if"], limit=2, max_gen_toks=8, batch_size=4,
                         mt_bench={"enabled": True, "limit": 2, "max_new_tokens": 24})
    record = run_bench(config, RunStore("r"))
    mt = record.mt_bench
    assert mt.rating_method == "constrained" and "weak judge" in mt.note and "ratings constrained" in mt.note
    assert all(g.unparseable == 0 and g.overall.mean is not None for g in mt.models)  # every rating read
    [use] = record.judges
    assert use.weak and use.self_preference == ["shipped"] and use.self_preference_basis == "same weights (sha256)"
