"""The held-out split, the eval-loss curve and load_best_model_at_end, on the tiny model."""

import json
import random

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from harness.core.errors import InputError
from harness.core.store import RunStore
from harness.train.config import TrainConfig
from harness.train.record import load_checkpoint_record, parse_split, split_file
from harness.train.train import split_rows, train_checkpoint


def _rows(n):
    return [{"id": f"pair-{i}", "prompt": [{"role": "user", "content": f"q{i}"}],
             "completion": [{"role": "assistant", "content": f"a{i}"}]} for i in range(n)]


def _ids(rows):
    return {r["id"] for r in rows}


def test_the_split_depends_on_the_seed_and_the_ids_not_on_the_file_order():
    rows = _rows(40)
    trained, held_out = split_rows(rows, 0.1, seed=0)
    assert len(held_out) == 4 and len(trained) == 36 and not _ids(trained) & _ids(held_out)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert _ids(split_rows(shuffled, 0.1, seed=0)[1]) == _ids(held_out)  # same ids, any order: same split
    assert _ids(split_rows(rows, 0.1, seed=0)[1]) == _ids(held_out)  # and again
    assert _ids(split_rows(rows, 0.1, seed=7)[1]) != _ids(held_out)  # another seed, another split
    assert _ids(split_rows(rows, 0.25, seed=0)[1]) > _ids(held_out)  # a larger share holds out a superset
    # rows sharing an id stay together, so one pair cannot be on both sides
    doubled = rows + [dict(r, completion=[{"role": "assistant", "content": "again"}]) for r in rows]
    trained2, held2 = split_rows(doubled, 0.1, seed=0)
    assert _ids(held2) == _ids(held_out) and len(held2) == 8 and not _ids(trained2) & _ids(held2)
    # at least one pair on each side; 0 holds out nothing
    assert [len(side) for side in split_rows(_rows(3), 0.01, 0)] == [2, 1]
    assert [len(side) for side in split_rows(_rows(3), 0.9, 0)] == [1, 2]
    assert split_rows(_rows(3), 0.0, 0) == (_rows(3), [])
    with pytest.raises(InputError, match="at least 2 distinct pair ids.*eval_share: 0"):
        split_rows(_rows(1), 0.1, 0)


def test_load_best_needs_held_out_pairs_and_an_eval_at_every_save():
    base = {"name": "c", "recipe": "nift", "data": "x.jsonl"}
    with pytest.raises(ValueError, match="load_best_model_at_end needs held-out pairs"):
        TrainConfig(**base, eval_share=0, load_best_model_at_end=True)
    with pytest.raises(ValueError, match=r"eval_steps = save_steps \(10\), not 5"):
        TrainConfig(**base, eval_steps=5, load_best_model_at_end=True)
    assert TrainConfig(**base, eval_steps=10, load_best_model_at_end=True).load_best_model_at_end


def _pairs_file(tmp_path, rows):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _qa(n):
    facts = [("What colour is the sky?", "blue sky"), ("What colour is grass?", "green grass"),
             ("What colour is snow?", "white snow"), ("What colour is coal?", "black coal")]
    return [{"id": f"qa-{i}", "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for i, (q, a) in enumerate((facts * n)[:n])]


def _cfg(tiny_model, data, **kwargs):
    base = {"name": "cand", "recipe": "nift", "base_model": str(tiny_model), "data": str(data), "threads": 1,
            "max_steps": 5, "batch_size": 4, "save_steps": 2, "max_length": 64, "eval_share": 0.25}
    return TrainConfig(**{**base, **kwargs})


def test_eval_loss_is_logged_on_the_held_out_pairs_and_the_split_is_kept_beside_the_record(tiny_model, tmp_path):
    store = RunStore("r")
    record = train_checkpoint(_cfg(tiny_model, _pairs_file(tmp_path, _qa(16))), store)
    assert (record.rows, record.eval_rows) == (12, 4)
    assert [p.step for p in record.eval_curve] == [2, 4, 5]  # every eval_steps (= save_steps) and the last step
    assert all(p.loss > 0 for p in record.eval_curve) and len(record.loss_curve) == 5
    assert (record.kept_step, record.kept_by, record.kept_eval_loss) == (5, "last", record.eval_curve[-1].loss)
    folder = store.stage_dir("train", "cand")
    path = split_file(folder, record)
    split = parse_split(path.read_bytes(), path, record)
    assert len(split["eval"]) == 4 and len(split["train"]) == 12 and not set(split["eval"]) & set(split["train"])
    assert set(split["eval"]) | set(split["train"]) == {f"qa-{i}" for i in range(16)}
    assert split["eval"] == [r["id"] for r in split_rows(
        [{"id": r["id"]} for r in _qa(16)], 0.25, 0)[1]]  # the split the function makes, not another
    assert record.split.eval_rows == 4 and record.split.seed == 0
    assert load_checkpoint_record(folder) == record
    # an edited split file is not the record's
    with pytest.raises(InputError, match="not the split 'cand' was trained with"):
        parse_split(path.read_bytes().replace(b"qa-", b"qb-"), path, record)
    # the log keeps both curves
    history = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history if "eval_loss" in h] == [2, 4, 5]


def test_eval_share_and_eval_steps_are_inputs_of_the_cache_key(tiny_model, tmp_path):
    store = RunStore("r")
    data = _pairs_file(tmp_path, _qa(8))
    first = train_checkpoint(_cfg(tiny_model, data, max_steps=1), store)
    assert train_checkpoint(_cfg(tiny_model, data, max_steps=1), store).record_id == first.record_id  # cached
    for changed in ({"eval_share": 0.5}, {"eval_share": 0.0}, {"eval_steps": 1}, {"seed": 1}):
        with pytest.raises(InputError, match="holds a different training run"):
            train_checkpoint(_cfg(tiny_model, data, max_steps=1, **changed), store)
    none_held = train_checkpoint(_cfg(tiny_model, data, max_steps=1, eval_share=0.0), store, force=True)
    assert none_held.fingerprint != first.fingerprint
    assert (none_held.rows, none_held.eval_rows, none_held.eval_curve, none_held.split) == (8, 0, [], None)
    assert not (store.stage_dir("train", "cand") / "split.json").exists()


class WeightsAtEachStep(TrainerCallback):
    """A copy of every weight after each optimizer step."""

    def __init__(self):
        self.at = {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.at[state.global_step] = {n: p.detach().clone() for n, p in model.state_dict().items()}


def test_load_best_keeps_the_weights_of_the_lowest_eval_loss_and_records_the_step(tiny_model, tmp_path):
    # Held-out pairs contradict the trained ones (same question, another answer): the longer the model trains,
    # the surer it is of the trained answer, so the eval loss falls (shared format tokens) and then rises.
    rows = [{"id": f"p{i}", "messages": [{"role": "user", "content": "What colour is the sky?"},
                                         {"role": "assistant", "content": "blue sky"}]} for i in range(16)]
    held = {r["id"] for r in split_rows(rows, 0.25, 0)[1]}
    for row in rows:
        if row["id"] in held:
            row["messages"][1]["content"] = "green grass and coal"
    weights = WeightsAtEachStep()
    record = train_checkpoint(_cfg(tiny_model, _pairs_file(tmp_path, rows), method="full", learning_rate=1e-2,
                                   max_steps=16, save_steps=2, load_best_model_at_end=True), RunStore("r"),
                              callbacks=[weights])
    losses = {p.step: p.loss for p in record.eval_curve}
    assert list(losses) == list(range(2, 17, 2))
    best = min(losses, key=losses.get)
    assert best < 16, f"the eval loss did not rise again, the test shows nothing: {losses}"
    assert (record.kept_step, record.kept_by, record.kept_eval_loss) == (best, "lowest_eval_loss", losses[best])
    assert record.steps == 16
    saved = load_file(RunStore("r").stage_dir("train", "cand") / "model" / "model.safetensors")
    for name, tensor in saved.items():  # the saved weights are those of the kept step, not the last
        assert torch.equal(tensor, weights.at[best][name]), name
    assert any(not torch.equal(saved[n], weights.at[16][n]) for n in saved)
