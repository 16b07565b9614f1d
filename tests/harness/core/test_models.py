import shutil

import pytest

from harness.core.errors import ModelLoadError
from harness.core.models import embedded_gguf_path, load_model, resolve_model
from harness.core.threads import choose_threads


def test_local_safetensors_folder_loads_with_a_stable_hash(tiny_model):
    first = resolve_model(str(tiny_model))
    assert first.source == "local" and len(first.sha256) == 64
    assert resolve_model(str(tiny_model)).sha256 == first.sha256
    loaded = load_model(first)
    assert loaded.model.config.num_hidden_layers == 2
    assert loaded.tokenizer.chat_template


def test_pickle_weights_are_refused_without_opt_in(tiny_model, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model, folder)
    for file in folder.glob("*.safetensors"):
        file.rename(file.with_name("pytorch_model.bin"))
    with pytest.raises(ModelLoadError, match=r"pickle weights .*set allow_pickle: true .*train\[\]\.allow_pickle") as refused:
        resolve_model(str(folder))
    assert "--allow-pickle" not in str(refused.value)  # no such flag exists
    assert resolve_model(str(folder), allow_pickle=True).source == "local"


def test_unknown_model_names_the_alternatives():
    with pytest.raises(ModelLoadError, match="unknown model 'not-a-model'.*smollm2-135m-instruct"):
        resolve_model("not-a-model")


def test_hub_id_offline_fails_at_once_naming_the_way_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1 is set.*local folder"):
        resolve_model("HuggingFaceTB/SmolLM2-135M")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_thread_choice_is_recorded(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads("generate", requested=1).model_dump()["how"] == "requested"
    measured = choose_threads("generate", repeats=3)
    assert measured.how == "measured" and measured.threads >= 1
    assert str(measured.threads) in measured.ms_per_matmul
    assert measured.ms_per_matmul[str(measured.threads)] == min(measured.ms_per_matmul.values())
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert choose_threads("train").how == "env"


@pytest.mark.slow
def test_embedded_model_and_its_gguf_file_load():
    embedded = load_model("smollm2-135m-instruct")
    assert embedded.resolved.source == "embedded"
    assert sum(p.numel() for p in embedded.model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    gguf = resolve_model(str(embedded_gguf_path("smollm2-135m-instruct")))
    assert gguf.source == "gguf" and gguf.gguf_file.endswith(".gguf")
    assert load_model(gguf).model.config.num_hidden_layers == embedded.model.config.num_hidden_layers


def test_weights_rewritten_in_place_with_the_mtime_kept_get_a_new_hash(tiny_model, tmp_path):
    """The speed cache is keyed by inode, size, mtime and ctime: restoring the mtime after an edit
    does not bring the old hash back."""
    import os

    folder = tmp_path / "swapped"
    shutil.copytree(tiny_model, folder)
    before = resolve_model(str(folder)).sha256
    weights = next(folder.glob("*.safetensors"))
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    with open(weights, "r+b") as handle:  # in place: same inode
        handle.write(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_mtime_ns == stat.st_mtime_ns and weights.stat().st_size == stat.st_size
    assert resolve_model(str(folder)).sha256 != before


@pytest.mark.parametrize("name", ["tokenizer_config.json", "config.json", "generation_config.json"])
def test_the_files_beside_the_weights_are_in_the_model_hash(tiny_model, tmp_path, name):
    """A chat template, config or generation default edited changes the answers, so it changes the hash."""
    import json

    folder = tmp_path / "edited"
    shutil.copytree(tiny_model, folder)
    before = resolve_model(str(folder)).sha256
    path = folder / name
    settings = json.loads(path.read_text()) if path.exists() else {}
    settings["edited_by_test"] = True
    path.write_text(json.dumps(settings))
    edited = resolve_model(str(folder)).sha256
    assert edited != before
    (folder / ".hidden-note").write_text("not read by transformers")  # hidden files are not the model's
    (folder / "README.md").write_text("a model card a promotion rewrites")  # nor its card
    assert resolve_model(str(folder)).sha256 == edited


def test_a_sharded_folder_missing_a_shard_is_refused_before_it_is_pinned(tiny_model, tmp_path):
    # a copy or download stopped part-way: the index names two shards, one is there
    import json

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "sharded"
    shutil.copytree(tiny_model, folder)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    names = sorted(weights)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for file, keys in halves.items():
        save_file({k: weights[k].contiguous() for k in keys}, folder / file, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: file for file, keys in halves.items() for k in keys}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert resolve_model(str(folder)).source == "local"  # whole: resolved
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"model\.safetensors\.index\.json: names 1 weight file\(s\) the folder "
                                             r"does not hold \(model-00002-of-00002\.safetensors\): the copy or "
                                             r"download is incomplete"):
        resolve_model(str(folder))


def test_processes_starting_together_convert_the_embedded_model_once(tmp_path, monkeypatch):
    """Two gates (or the ranks of `launch`) on a fresh machine: one converts, the other waits and reuses."""
    import threading
    import time

    from harness.core import models

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    conversions = []

    def convert(source, out):
        conversions.append(out)
        time.sleep(0.5)  # long enough for the other caller to arrive while this one converts
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setenv("NIFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "embedded_gguf_path", lambda name: gguf)
    monkeypatch.setattr(models, "_dequantise_gguf", convert)
    found = []
    callers = [threading.Thread(target=lambda: found.append(models.embedded_model_dir("smollm2-135m-instruct")))
               for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(conversions) == 1
    assert found == [tmp_path / "cache" / "models" / "smollm2-135m-instruct"] * 2
    assert (found[0] / "model.safetensors").read_bytes() == b"weights"
