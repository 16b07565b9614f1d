"""The embedded model trained for real on a handful of pairs (slow)."""

import json

import pytest

from harness.core.models import load_model
from harness.core.store import RunStore
from harness.train.config import TrainConfig
from harness.train.train import train_checkpoint


@pytest.mark.slow
def test_embedded_model_lora_on_a_handful_of_pairs(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    docs = ["The harbour was quiet that morning.", "Snow fell on the mountain pass overnight.",
            "The library reopened after the long repairs.", "A new bridge crossed the river at last."]
    pairs.write_text("".join(json.dumps({"messages": [{"role": "user", "content": d},
                                                      {"role": "assistant", "content": "And the town went on."}]}) + "\n"
                             for d in docs))
    record = train_checkpoint(TrainConfig(name="smoke", recipe="hybrid", data=str(pairs), max_steps=2, batch_size=2,
                                          max_length=128, threads=1), RunStore("r"))
    assert record.steps == 2 and record.tokens_seen > 0
    assert record.base_model.source == "embedded" and record.trainable_parameters == 921_600
    merged = load_model(str(RunStore("r").stage_dir("train", "smoke") / record.eval_dir))
    assert sum(p.numel() for p in merged.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
