"""The fast defaults of `nift-gate train`: padding-free batches and no per-token metrics, with the padded run's loss."""

import json

import pytest
import torch
import trl.trainer.utils

from harness.core.store import RunStore
from harness.train.config import TrainConfig
from harness.train.train import CPU_HEAD_CHUNK, train_checkpoint


def _ragged(tmp_path):
    """Pairs of very different lengths, so a padded batch carries many pad tokens."""
    qa = [("Sky?", "blue"), ("What colour is the grass in a well-kept garden in late spring, after rain?",
                             "Green, a deep and even green, because the rain has fed it for weeks."),
          ("Snow?", "white"), ("And coal, dug out of a seam deep underground, what colour is that?", "Black.")]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in qa * 4))
    return path


def _cfg(tiny_model, data, name, **kwargs):
    # lora_dropout 0: dropout draws different masks for a padded and a flattened batch; everything else is the
    # same maths on the same tokens.
    return TrainConfig(**{"name": name, "recipe": "nift", "base_model": str(tiny_model), "data": str(data),
                          "threads": 1, "max_steps": 3, "batch_size": 4, "save_steps": 3, "max_length": 128,
                          "learning_rate": 5e-2, "lora_dropout": 0.0, "eval_share": 0.25, **kwargs})


def test_padding_free_is_the_default_and_trains_to_the_padded_loss(tiny_model, tmp_path):
    data, store = _ragged(tmp_path), RunStore("r")
    free = train_checkpoint(_cfg(tiny_model, data, "free"), store)
    padded = train_checkpoint(_cfg(tiny_model, data, "padded", padding_free=False), store)
    assert (free.batching, free.attention, free.batching_note) == ("padding-free", "nift_varlen_sdpa", None)
    assert (padded.batching, padded.attention) == ("padded", "sdpa")
    assert free.tokens_seen == padded.tokens_seen  # the same real tokens; the padded run also fed pad tokens
    losses = [(a.loss, b.loss) for a, b in zip(free.loss_curve, padded.loss_curve, strict=True)]
    assert len(losses) == 3 and losses[0][0] != losses[-1][0]  # it trained: later steps see updated weights
    assert all(a == pytest.approx(b, rel=1e-4) for a, b in losses), losses
    assert [p.loss for p in free.eval_curve] == pytest.approx([p.loss for p in padded.eval_curve], rel=1e-4)


def test_the_default_falls_back_to_padded_batches_and_says_why(tiny_model, tmp_path):
    data, store = _ragged(tmp_path), RunStore("r")
    # the long rows exceed max_length 24: truncating them needs padded batches
    short = train_checkpoint(_cfg(tiny_model, data, "short", max_length=24, max_steps=1), store)
    assert short.batching == "padded" and "longer than max_length=24" in short.batching_note
    assert short.attention == "sdpa"
    eager = train_checkpoint(_cfg(tiny_model, data, "eager", attn_implementation="eager", max_steps=1), store)
    assert eager.batching == "padded" and "attn_implementation='eager'" in eager.batching_note


class _OutputsSpy:
    """Records which per-token fields TRL's fused LM head was asked for, and for how many positions."""

    asked: list[tuple[str, ...]] = []
    positions: list[int] = []
    chunks: set[int] = set()
    real = trl.trainer.utils._ChunkedLogProbFunction

    @classmethod
    def apply(cls, *args):
        cls.asked.append(tuple(args[-1]))
        cls.positions.append(args[0].shape[0])
        cls.chunks.add(args[5])
        return cls.real.apply(*args)


def test_per_token_metrics_are_off_unless_asked_for_and_do_not_change_the_loss(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setattr(trl.trainer.utils, "_ChunkedLogProbFunction", _OutputsSpy)
    data, store = _ragged(tmp_path), RunStore("r")
    lean = train_checkpoint(_cfg(tiny_model, data, "lean"), store)
    assert _OutputsSpy.asked and set(_OutputsSpy.asked) == {("log_probs",)}
    lean_positions, lean_chunks = list(_OutputsSpy.positions), set(_OutputsSpy.chunks)
    _OutputsSpy.asked.clear()
    _OutputsSpy.positions.clear()
    _OutputsSpy.chunks.clear()
    full = train_checkpoint(_cfg(tiny_model, data, "full", token_metrics=True), store)
    assert set(_OutputsSpy.asked) == {("log_probs", "entropy", "is_top1")}
    # TRL's own head scores every position on the CPU; the lean one only the answers' (labelled) positions, of
    # the same batches: fewer rows through the LM head, and (below) the same loss at every step.
    assert (lean_chunks, _OutputsSpy.chunks) == ({CPU_HEAD_CHUNK}, {trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE})
    assert trl.trainer.utils._use_triton(torch.device("cpu")) is False  # TRL's choices are back after each forward
    assert len(lean_positions) == len(_OutputsSpy.positions)
    assert all(a < b for a, b in zip(lean_positions, _OutputsSpy.positions)), (lean_positions, _OutputsSpy.positions)

    def logged(name):
        rows = [json.loads(line) for line in (store.stage_dir("train", name) / "log.jsonl").read_text().splitlines()]
        return set().union(*(r.keys() for r in rows))

    assert not {"entropy", "mean_token_accuracy", "eval_entropy", "eval_mean_token_accuracy"} & logged("lean")
    assert {"entropy", "mean_token_accuracy", "eval_mean_token_accuracy"} <= logged("full")
    assert [p.loss for p in lean.loss_curve] == pytest.approx([p.loss for p in full.loss_curve], rel=1e-5)
    assert [p.loss for p in lean.eval_curve] == pytest.approx([p.loss for p in full.eval_curve], rel=1e-5)
