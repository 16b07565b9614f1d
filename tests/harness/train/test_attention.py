"""Padding-free training's per-sequence attention: the same numbers as attending to each sequence alone."""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from harness.core.store import RunStore
from harness.train.attention import register
from harness.train.config import TrainConfig
from harness.train.train import train_checkpoint


def test_varlen_attention_keeps_packed_sequences_apart(tiny_model, monkeypatch):
    name = register()
    sdpa, causal_calls = torch.nn.functional.scaled_dot_product_attention, []

    def spy(*args, **kwargs):
        causal_calls.append(kwargs.get("is_causal"))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    varlen = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=name).eval()
    plain = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation="sdpa").eval()
    lengths = [7, 3, 11]
    ids = torch.randint(5, 100, (1, sum(lengths)), generator=torch.Generator().manual_seed(0))
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    bounds = torch.tensor([0, 7, 10, 21], dtype=torch.int32)
    with torch.no_grad():
        packed = varlen(input_ids=ids, position_ids=positions, cu_seq_lens_q=bounds, cu_seq_lens_k=bounds,
                        use_cache=False).logits[0]
        # the per-sequence path ran: one causal SDPA call per sequence per layer, no block-diagonal mask
        assert causal_calls == [True] * len(lengths) * varlen.config.num_hidden_layers
        for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            alone = plain(input_ids=ids[:, start:end]).logits[0]
            assert torch.allclose(packed[start:end], alone, atol=1e-5)
        # without sequence bounds (padded batches, generation) it is plain sdpa, masks included
        batch = torch.tensor([[5, 6, 7, 8], [9, 10, 2, 2]])
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
        assert torch.allclose(varlen(input_ids=batch, attention_mask=mask).logits,
                              plain(input_ids=batch, attention_mask=mask).logits, atol=1e-6)


def test_padding_free_training_uses_it_and_the_merged_model_loads_anywhere(tiny_model, tmp_path):
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in [("Short?", "yes"), ("A much longer question about the colour of the sky at noon?",
                                             "Blue, mostly, because of scattering.")] * 4]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = train_checkpoint(TrainConfig(name="pf", recipe="nift", base_model=str(tiny_model), data=str(data),
                                          threads=1, max_steps=2, batch_size=4, max_length=128, padding_free=True),
                              RunStore("r"))
    assert record.attention == "nift_varlen_sdpa" and record.steps == 2
    merged = RunStore("r").stage_dir("train", "pf") / record.merged_dir
    # a fresh process that never registered the attention loads the merged weights with stock transformers
    code = ("import sys; from transformers import AutoModelForCausalLM; "
            "m = AutoModelForCausalLM.from_pretrained(sys.argv[1]); print(m.config._attn_implementation)")
    out = subprocess.run([sys.executable, "-c", code, str(merged)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nift_varlen" not in out.stdout


def test_padded_training_keeps_the_models_attention(tiny_model, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi?"},
                                             {"role": "assistant", "content": "Hello."}]}) + "\n")
    record = train_checkpoint(TrainConfig(name="pad", recipe="nift", base_model=str(tiny_model), data=str(data),
                                          threads=1, max_steps=1, batch_size=1, max_length=64, eval_share=0,
                                          padding_free=False), RunStore("r"))
    assert record.attention == "sdpa" and record.batching == "padded" and record.batching_note is None


@pytest.mark.parametrize("impl", ["eager"])
def test_an_explicit_attention_choice_wins(tiny_model, tmp_path, impl):
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi?"},
                                             {"role": "assistant", "content": "Hello."}]}) + "\n")
    record = train_checkpoint(TrainConfig(name="e", recipe="nift", base_model=str(tiny_model), data=str(data),
                                          threads=1, max_steps=1, batch_size=1, max_length=64, padding_free=True,
                                          attn_implementation=impl, eval_share=0), RunStore("r"))
    assert record.attention == impl and record.batching == "padding-free"
