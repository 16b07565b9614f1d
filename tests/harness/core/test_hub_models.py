"""Hub models are pinned by the content of their snapshot in the Hugging Face cache, never by name.

Every test builds a fake cache laid out as huggingface_hub keeps it (``models--org--name/snapshots/<commit>/``
whose files link into ``blobs/``, and ``refs/<branch>`` naming a commit) and runs offline: nothing here may
reach the network."""

import json
import shutil
import socket

import pytest
from hub_cache import FIRST, HUB_ID, SECOND, cache_snapshot, offline_hub_cache

from harness.core.errors import ModelLoadError
from harness.core.models import changed_model_files, load_model, model_files, resolve_model


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache; a connection attempt fails the test."""
    return offline_hub_cache(tmp_path, monkeypatch)


def retrained(tiny_model, tmp_path):
    """``tiny_model`` with other weights (its last byte flipped): what a new push to the hub brings."""
    folder = tmp_path / "retrained"
    shutil.copytree(tiny_model, folder)
    weights = next(folder.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return folder


def test_a_cached_hub_model_resolves_offline_to_its_snapshot_pinned_by_content(hub_cache, tiny_model):
    snapshot = cache_snapshot(hub_cache, tiny_model, FIRST)
    resolved = resolve_model(HUB_ID)
    assert (resolved.source, resolved.path, resolved.hub_id, resolved.hub_commit) == (
        "hub", str(snapshot), HUB_ID, FIRST)
    # the same files hash the same as a local folder, whichever way they are named
    assert resolved.sha256 == resolve_model(str(snapshot)).sha256 == resolve_model(str(tiny_model)).sha256
    assert {f.name for f in model_files(resolved)} >= {"config.json", "model.safetensors", "tokenizer_config.json"}
    loaded = load_model(resolved)
    assert loaded.model.config.num_hidden_layers == 2
    assert loaded.tokenizer.chat_template  # the snapshot's own template, not one from the hub


def test_a_new_commit_on_main_is_another_model(hub_cache, tiny_model, tmp_path):
    cache_snapshot(hub_cache, tiny_model, FIRST)
    before = resolve_model(HUB_ID)
    cache_snapshot(hub_cache, retrained(tiny_model, tmp_path), SECOND)  # refs/main moves to the new push
    after = resolve_model(HUB_ID)
    assert after.hub_commit == SECOND and after.path != before.path
    assert after.sha256 != before.sha256
    # a revision names its commit, whatever main says now
    pinned = resolve_model(f"{HUB_ID}@{FIRST}")
    assert (pinned.path, pinned.sha256, pinned.hub_id) == (before.path, before.sha256, HUB_ID)


def test_a_tag_revision_resolves_to_the_commit_it_names(hub_cache, tiny_model, tmp_path):
    cache_snapshot(hub_cache, tiny_model, FIRST, refs=("main", "v1"))
    cache_snapshot(hub_cache, retrained(tiny_model, tmp_path), SECOND)
    assert resolve_model(f"{HUB_ID}@v1").hub_commit == FIRST
    assert resolve_model(HUB_ID).hub_commit == SECOND


def test_a_hub_model_not_in_the_cache_fails_at_once_offline(hub_cache, tiny_model):
    cache_snapshot(hub_cache, tiny_model, FIRST, repo_id="org/other")
    with pytest.raises(ModelLoadError, match=r"'org/tiny' looks like a Hugging Face hub id, but the hub cannot be "
                                             r"used: HF_HUB_OFFLINE=1 is set, and the Hugging Face cache .* does not "
                                             r"hold it\. .*pass the local folder"):
        resolve_model(HUB_ID)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE=1 is set"):
        resolve_model(f"org/other@{SECOND}")  # a commit the cache does not hold


def test_an_unreachable_hub_uses_the_cache_and_never_downloads(hub_cache, tiny_model, monkeypatch):
    import huggingface_hub

    downloads = []
    real = huggingface_hub.snapshot_download

    def counted(*args, **kwargs):
        if not kwargs.get("local_files_only"):
            downloads.append(args)
        return real(*args, **kwargs)

    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", counted)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(ModelLoadError, match=r"huggingface\.co is unreachable .*set HF_HUB_OFFLINE=1.*does not hold"):
        resolve_model(HUB_ID)
    snapshot = cache_snapshot(hub_cache, tiny_model, FIRST)
    assert resolve_model(HUB_ID).path == str(snapshot)
    assert downloads == []


def test_pickle_weights_in_a_hub_snapshot_are_refused_without_opt_in(hub_cache, tiny_model, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model, folder)
    for file in folder.glob("*.safetensors"):
        file.rename(file.with_name("pytorch_model.bin"))
    cache_snapshot(hub_cache, folder, FIRST)
    with pytest.raises(ModelLoadError, match=r"only pickle weights .*set allow_pickle: true"):
        resolve_model(HUB_ID)
    assert resolve_model(HUB_ID, allow_pickle=True).source == "hub"


def test_a_hub_snapshot_whose_pickle_weights_were_not_downloaded_says_so(hub_cache, tiny_model, tmp_path):
    # without allow_pickle, *.bin files are left out of the download: a repository of pickle weights only arrives
    # as config and tokenizer, and must not be taken for a model folder without weights
    folder = tmp_path / "no-weights"
    shutil.copytree(tiny_model, folder)
    for file in folder.glob("*.safetensors"):
        file.unlink()
    cache_snapshot(hub_cache, folder, FIRST)
    with pytest.raises(ModelLoadError, match=r"no safetensors weights in the hub snapshot .*pickle weights \(\*\.bin\) "
                                             r"are not downloaded"):
        resolve_model(HUB_ID)


def test_the_gate_rehash_sees_a_file_of_a_hub_snapshot_changed(hub_cache, tiny_model):
    snapshot = cache_snapshot(hub_cache, tiny_model, FIRST)
    measured = resolve_model(HUB_ID)
    assert changed_model_files(measured.model_dump()) is None
    template = snapshot / "tokenizer_config.json"  # a link into blobs/: the write lands in the cached blob
    settings = json.loads(template.read_text())
    settings["chat_template"] = "{{ messages[0]['content'] }}"
    template.write_text(json.dumps(settings))
    changed = changed_model_files(measured.model_dump())
    assert changed is not None
    resolved, now = changed
    assert resolved.sha256 == measured.sha256 and now != measured.sha256
    assert now == resolve_model(HUB_ID).sha256


def test_a_record_that_pinned_a_hub_model_by_name_cannot_pass_the_rehash(hub_cache):
    """Records made before hub models were pinned by content name ``hub:<id>@main``: no bytes to check."""
    named = {"spec": HUB_ID, "source": "hub", "path": HUB_ID, "sha256": f"hub:{HUB_ID}@main"}
    with pytest.raises(ModelLoadError, match="pinned by its hub id only"):
        changed_model_files(named)
