"""The memorization probe generating for real: a tiny checkpoint trained on NIFT pairs, and the embedded model as
its baseline, through the shared Generator (slow)."""

import pytest

from audits.config import AuditConfig
from audits.memorization.audit import run_memorization_audit
from harness.core.config import ModelRef
from harness.core.samples import AuditSample
from harness.core.store import RunStore, read_jsonl
from harness.data.build import build_pairs
from harness.data.config import DataConfig
from harness.train.config import TrainConfig
from harness.train.train import train_checkpoint


@pytest.mark.slow
def test_the_probe_runs_on_real_models(tiny_model, corpus_file):
    store = RunStore("r")
    build_pairs(DataConfig.model_validate({"corpus": {"path": str(corpus_file)},
                                           "variants": [{"name": "raw", "distill": False}]}), store)
    train_checkpoint(TrainConfig(name="cand", recipe="nift", base_model=str(tiny_model), data="data:raw", max_steps=1,
                                 batch_size=4, max_length=512, threads=1, eval_share=0.25), store)
    config = AuditConfig(bootstrap_iterations=200, threads=1, memorization={
        "enabled": True, "train_prompts": 2, "held_out_prompts": 2, "max_new_tokens": 16})
    record = run_memorization_audit(config, "train:cand", [ModelRef(name="shipped", model="smollm2-135m-instruct")],
                                    store)
    assert [m.name for m in record.models] == ["cand", "shipped"]
    assert record.models[1].model.source == "embedded"
    rows = [AuditSample.model_validate(r) for r in read_jsonl(store.stage_dir("audit", "memorization")
                                                              / "samples.jsonl")]
    assert len(rows) == 8 and {r.suite for r in rows} == {"train", "held_out"}
    shipped = [r for r in rows if r.model == "shipped"]
    assert all(r.output.strip() for r in shipped)  # the embedded model answered every prompt
    for r in rows:
        assert 0.0 <= r.scores["lcs_ratio"] <= 1.0 and 0.0 <= r.scores["ngram_overlap"] <= 1.0
    assert {v.metric for v in record.values if v.model == "shipped"} >= {"memorization.gap.lcs_ratio",
                                                                          "memorization.train.memorized_rate"}
    assert {d.baseline for d in record.deltas} == {"shipped"}
