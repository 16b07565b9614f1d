import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from tiny import edit_in_place, overwrite_in_place
from transformers import TrainerCallback

from harness.core.errors import ConfigError, InputError, ModelLoadError
from harness.core.models import resolve_model
from harness.core.store import RunStore
from harness.data.build import build_pairs
from harness.data.config import DataConfig
from harness.train.config import TrainConfig
from harness.train.record import load_checkpoint_record
from harness.train.train import train_checkpoint


def _pairs_file(tmp_path, rows):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _qa(n=8):
    facts = [("What colour is the sky?", "blue sky"), ("What colour is grass?", "green grass"),
             ("What colour is snow?", "white snow"), ("What colour is coal?", "black coal")]
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in (facts * n)[:n]]


def _cfg(tiny_model, data, **kwargs):
    base = {"name": "cand", "recipe": "nift", "base_model": str(tiny_model), "data": str(data), "threads": 1,
            "max_steps": 6, "batch_size": 4, "save_steps": 3, "max_length": 128}
    return TrainConfig(**{**base, **kwargs})


class Snapshot(TrainerCallback):
    """Keeps a copy of every parameter at the start of training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.trainable = {n for n, p in model.named_parameters() if p.requires_grad}


def test_lora_changes_every_adapter_parameter_and_no_frozen_one(tiny_model, tmp_path):
    snapshot = Snapshot()
    data = _pairs_file(tmp_path, _qa(16))
    record = train_checkpoint(_cfg(tiny_model, data, learning_rate=1e-2), RunStore("r"), callbacks=[snapshot])
    assert snapshot.trainable and all("lora_" in n for n in snapshot.trainable)
    folder = RunStore("r").stage_dir("train", "cand")
    adapter = load_file(folder / "model" / "adapter_model.safetensors")
    assert len(adapter) == len(snapshot.trainable) == 2 * 2 * 4  # A and B, 2 layers, q/k/v/o
    for name, before in snapshot.before.items():
        if name in snapshot.trainable:
            key = next(k for k in adapter if name.replace(".default", "").endswith(k.split("base_model.model.", 1)[1]))
            assert not torch.equal(adapter[key], before), f"{name} did not train"
    # frozen weights: the merged model equals the base everywhere LoRA does not reach
    base = load_file(tiny_model / "model.safetensors")
    merged = load_file(folder / "merged" / "model.safetensors")
    for name, tensor in base.items():
        if any(t in name for t in ("q_proj", "k_proj", "v_proj", "o_proj")):
            assert not torch.equal(merged[name], tensor), f"{name}: adapter not merged"
        else:
            assert torch.equal(merged[name], tensor), f"frozen {name} changed"
    assert 0 < record.trainable_parameters < record.total_parameters


def test_loss_falls_on_a_learnable_toy_set(tiny_model, tmp_path):
    data = _pairs_file(tmp_path, _qa(8))
    record = train_checkpoint(_cfg(tiny_model, data, method="full", learning_rate=1e-2, max_steps=40,
                                   save_steps=100), RunStore("r"))
    losses = [p.loss for p in record.loss_curve]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:3]) / 3


def test_record_and_model_card_are_complete_and_load_back(tiny_model, corpus_file, tmp_path):
    store = RunStore("r")
    build_pairs(DataConfig.model_validate({"corpus": {"path": str(corpus_file)},
                                           "variants": [{"name": "raw", "distill": False}]}), store)
    record = train_checkpoint(_cfg(tiny_model, "data:raw", recipe="nift", max_length=512), store)
    folder = store.stage_dir("train", "cand")
    loaded = load_checkpoint_record(folder)
    assert loaded == record
    assert record.steps == 6 and len(record.loss_curve) == 6 and record.tokens_seen > 0
    assert record.wall_seconds > 0 and record.tokens_per_s > 0 and record.peak_memory_mb > 0
    assert record.threads.threads == 1 and record.base_model.sha256 and record.chat_template == "model"
    assert [i.kind for i in record.inputs] == ["model", "nift_dataset", "hardware"]
    assert record.inputs[2].id == "cpu, bf16 off"  # a GPU bf16 run of this config is another checkpoint
    assert record.inputs[1].id.startswith("nift_dataset-")
    assert set(record.weights) == {"model/adapter_model.safetensors", "merged/model.safetensors"}
    assert all(len(h) == 64 for h in record.weights.values())
    for sub in ("model", "merged"):
        card = ModelCard.load(folder / sub / "README.md")
        assert card.data.base_model == str(tiny_model)
        assert card.data.datasets == [record.inputs[1].id]
        assert card.data.library_name == "peft" and "nift" in card.data.tags and "lora" in card.data.tags
    assert not (folder / "_work").exists()
    # unchanged: skipped
    assert train_checkpoint(_cfg(tiny_model, "data:raw", max_length=512), store).record_id == record.record_id


def test_hybrid_starts_from_an_earlier_checkpoint(tiny_model, tmp_path):
    store = RunStore("r")
    data = _pairs_file(tmp_path, _qa(8))
    sft = train_checkpoint(_cfg(tiny_model, data, name="sft", recipe="sft", max_steps=2), store)
    hybrid = train_checkpoint(_cfg(tiny_model, data, name="hyb", recipe="hybrid", base_model="train:sft",
                                   max_steps=2), store)
    assert hybrid.inputs[0].kind == "checkpoint" and hybrid.inputs[0].id == sft.record_id
    assert hybrid.base_model.path.endswith("train/sft/merged")


def test_alpaca_and_sharegpt_rows_become_chat_pairs(tiny_model, tmp_path):
    from harness.train.data import load_training_rows

    alpaca = tmp_path / "a.json"
    alpaca.write_text(json.dumps([{"instruction": "Say hi", "input": "to Ann", "output": "Hi Ann"}]))
    rows = load_training_rows(str(alpaca), "auto", RunStore("r"))
    assert rows.format == "alpaca"
    assert rows.rows[0]["prompt"] == [{"role": "user", "content": "Say hi\n\nto Ann"}]
    assert rows.rows[0]["completion"] == [{"role": "assistant", "content": "Hi Ann"}]
    sharegpt = tmp_path / "s.jsonl"
    sharegpt.write_text(json.dumps({"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"},
                                                      {"from": "human", "value": "c"}, {"from": "gpt", "value": "d"}]}) + "\n")
    rows = load_training_rows(str(sharegpt), "auto", RunStore("r"))
    assert [m["role"] for m in rows.rows[0]["prompt"]] == ["user", "assistant", "user"]
    assert rows.rows[0]["completion"][0]["content"] == "d"


def test_shipped_instruction_set_loads():
    from harness.train.data import load_training_rows

    rows = load_training_rows("embedded:sft/instructions.jsonl", "auto", RunStore("r"))
    assert rows.format == "alpaca" and len(rows.rows) >= 120


@pytest.mark.parametrize("rows, message", [
    ([{"messages": [{"role": "user", "content": "hi"}]}], r"pairs.jsonl:1: no assistant turn"),
    ([{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]}], "no assistant turn"),
    ([], "no training rows"),
    ([{"text": "plain text is no format"}], r"pairs.jsonl:1: cannot tell the data format from fields \['text'\]"),
    ([["a", "list"]], r"pairs.jsonl:1: expected a JSON object per line, got list"),
])
def test_bad_training_data_is_refused_before_anything_is_written(tiny_model, tmp_path, rows, message):
    data = _pairs_file(tmp_path, rows)
    with pytest.raises(InputError, match=message):
        train_checkpoint(_cfg(tiny_model, data), RunStore("r"))
    assert not RunStore("r").root.exists()


def test_a_pickle_only_base_model_is_refused_naming_the_real_config_field(tiny_model, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model, folder)
    for file in folder.glob("*.safetensors"):
        file.rename(file.with_name("pytorch_model.bin"))
    with pytest.raises(ModelLoadError, match=r"train\[\]\.allow_pickle"):
        train_checkpoint(_cfg(folder, _pairs_file(tmp_path, _qa(4))), RunStore("r"))
    assert not RunStore("r").root.exists()


def test_overlong_rows_are_truncated_and_counted_or_rejected(tiny_model, tmp_path):
    long = {"messages": [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}]}
    data = _pairs_file(tmp_path, _qa(4) + [long])
    with pytest.raises(InputError, match="1 rows are longer than max_length=128"):
        train_checkpoint(_cfg(tiny_model, data, overlength="reject"), RunStore("r"))
    record = train_checkpoint(_cfg(tiny_model, data, max_steps=1), RunStore("r"))
    assert record.truncated_rows == 1 and record.rows + record.eval_rows == 5  # held-out rows are counted too


def test_base_without_chat_template(tiny_model, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model, plain)
    config_file = plain / "tokenizer_config.json"
    tok = json.loads(config_file.read_text())
    tok.pop("chat_template", None)
    config_file.write_text(json.dumps(tok))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    data = _pairs_file(tmp_path, _qa(4))
    with pytest.raises(ConfigError, match="no chat template"):
        train_checkpoint(_cfg(plain, data), RunStore("r"))
    record = train_checkpoint(_cfg(plain, data, max_steps=1, default_chat_template=True), RunStore("r"), force=True)
    assert record.chat_template == "default-chatml"


def test_missing_base_and_occupied_folder(tiny_model, tmp_path):
    data = _pairs_file(tmp_path, _qa(4))
    with pytest.raises(ModelLoadError):
        train_checkpoint(_cfg(tmp_path / "nowhere", data), RunStore("r"))
    train_checkpoint(_cfg(tiny_model, data, max_steps=1), RunStore("r"))
    with pytest.raises(InputError, match="holds a different training run"):
        train_checkpoint(_cfg(tiny_model, data, max_steps=2), RunStore("r"))
    assert train_checkpoint(_cfg(tiny_model, data, max_steps=2), RunStore("r"), force=True).steps == 2


def test_training_data_edited_in_place_is_refused_then_retrained_with_force(tiny_model, tmp_path, caplog):
    data = _pairs_file(tmp_path, _qa(4))
    store = RunStore("r")
    first = train_checkpoint(_cfg(tiny_model, data, max_steps=1), store)
    edit_in_place(data, b"blue sky", b"blue SKY")
    caplog.set_level("INFO", logger="nift_gate")
    with pytest.raises(InputError, match="holds a different training run.*--force"):
        train_checkpoint(_cfg(tiny_model, data, max_steps=1), store)
    assert "up to date" not in caplog.text
    assert load_checkpoint_record(store.stage_dir("train", "cand")).record_id == first.record_id  # kept
    again = train_checkpoint(_cfg(tiny_model, data, max_steps=1), store, force=True)
    assert again.record_id != first.record_id and again.inputs[1].sha256 != first.inputs[1].sha256
    assert again.inputs[0] == first.inputs[0]  # the base did not change


@pytest.fixture
def own_model(tiny_model, tmp_path):
    """A copy of the tiny model this test may rewrite."""
    return shutil.copytree(tiny_model, tmp_path / "model")


def test_weights_rewritten_in_place_with_the_mtime_kept_get_a_new_hash(own_model):
    weights = own_model / "model.safetensors"
    before = resolve_model(str(own_model)).sha256
    assert resolve_model(str(own_model)).sha256 == before  # from the hash cache: same file, same answer
    original = weights.read_bytes()[-8:]
    overwrite_in_place(weights, -8, bytes(b ^ 0xFF for b in original))  # the last tensor's last values
    changed = resolve_model(str(own_model)).sha256
    assert changed != before
    overwrite_in_place(weights, -8, original)  # the old bytes back: the old hash back
    assert resolve_model(str(own_model)).sha256 == before


def test_a_base_model_rewritten_in_place_is_another_training_input(own_model, tmp_path):
    data = _pairs_file(tmp_path, _qa(4))
    store = RunStore("r")
    first = train_checkpoint(_cfg(own_model, data, max_steps=1), store)
    tail = (own_model / "model.safetensors").read_bytes()[-4:]
    overwrite_in_place(own_model / "model.safetensors", -4, bytes(b ^ 0x01 for b in tail))
    with pytest.raises(InputError, match="holds a different training run"):
        train_checkpoint(_cfg(own_model, data, max_steps=1), store)
    again = train_checkpoint(_cfg(own_model, data, max_steps=1), store, force=True)
    assert again.base_model.sha256 != first.base_model.sha256 and again.inputs[0].sha256 != first.inputs[0].sha256


def test_kill_9_mid_training_resumes_to_the_same_step_count(tiny_model, tmp_path):
    data = _pairs_file(tmp_path, _qa(64))
    config = tmp_path / "cfg.yaml"
    config.write_text(f"run: r\ntrain:\n  - {{name: cand, recipe: nift, base_model: '{tiny_model}', data: '{data}', "
                      "threads: 1, max_steps: 300, save_steps: 10, batch_size: 4, max_length: 64}\n")
    cmd = [sys.executable, "-m", "harness.app.cli", "train", "--config", str(config)]
    work = tmp_path / "runs" / "r" / "train" / "cand" / "_work"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        done = [p for p in work.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
        if done:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    assert not (work.parent / "record.json").exists()
    finished = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "resuming from" in finished.stdout
    record = load_checkpoint_record(work.parent)
    assert record.steps == 300 and record.resumed_from_step >= 10
    assert [p.step for p in record.loss_curve] == list(range(1, 301))
    assert [p.step for p in record.eval_curve] == list(range(10, 301, 10))  # the resumed run kept the eval curve


def test_checkpoint_selection_by_name(tiny_model, tmp_path):
    from harness.train.train import select_checkpoints

    entries = [_cfg(tiny_model, tmp_path / "d.jsonl", name=n) for n in ("a", "b")]
    assert [e.name for e in select_checkpoints(entries, None)] == ["a", "b"]
    picked = select_checkpoints(entries, ["b"], threads=2)
    assert [e.name for e in picked] == ["b"] and picked[0].threads == 2
    with pytest.raises(ConfigError, match=r"unknown checkpoint\(s\) \['c'\]"):
        select_checkpoints(entries, ["b", "c"])
    with pytest.raises(ConfigError, match="no `train:` entries"):
        select_checkpoints([], None)
