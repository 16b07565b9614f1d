"""A fake Hugging Face hub cache, laid out as huggingface_hub keeps it, for tests that pin hub models offline.

``models--org--name/snapshots/<commit>/`` holds files that link into ``blobs/``, and ``refs/<branch>`` names a
commit."""

import hashlib
import os
import shutil
import socket

HUB_ID = "org/tiny"
FIRST, SECOND = "1" * 40, "2" * 40


def offline_hub_cache(tmp_path, monkeypatch):
    """An empty hub cache under ``tmp_path``, offline; a connection attempt fails the test."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError(f"a test of hub models tried to connect to {args[0] if args else kwargs}")

    monkeypatch.setattr(socket, "create_connection", no_network)
    return cache


def cache_snapshot(cache, folder, commit, *, refs=("main",), repo_id=HUB_ID):
    """Put the model ``folder`` into the hub cache as ``repo_id`` at ``commit``, and point ``refs`` at it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in folder.iterdir():
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    for ref in refs:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot
