"""Record signatures: the stage runner signs every record it commits when NIFT_RECORD_KEY holds a key."""

import json
import os
from typing import Literal

import pytest

import harness.core.runner as runner_module
import harness.core.store as store_module
from harness.core.errors import ConfigError
from harness.core.records import Record
from harness.core.runner import StageRun
from harness.core.signing import KEY_VARIABLE, SIGNATURE_FILE, RecordKey, signature_problem
from harness.core.store import RECORD_FILE, RunStore

KEY = "k" * 24 + "-ci-secret-0123456789"  # 45 bytes, and distinctive: no record or error may hold it


class ToyRecord(Record):
    kind: Literal["toy"] = "toy"
    lines: int


def _commit(store, lines=1, in_place=False):
    run = StageRun(store, "toy", "one", ToyRecord)
    run.cached({"lines": lines})
    record = ToyRecord(**run.header(), lines=lines)
    if in_place:
        return run.commit_in_place(record, {"rows.jsonl": [{"line": i} for i in range(lines)]})
    return run.commit(record, {"rows.jsonl": [{"line": i} for i in range(lines)]})


def _problem(folder, key=KEY, required=True):
    return signature_problem((folder / RECORD_FILE).read_bytes(), folder, RecordKey(key.encode()), required=required)


@pytest.mark.parametrize("in_place", [False, True])
def test_a_commit_with_the_key_signs_the_record_bytes_and_verifies(tmp_path, monkeypatch, in_place):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    store = RunStore("r", tmp_path)
    _commit(store, in_place=in_place)
    folder = store.stage_dir("toy", "one")
    signature = json.loads((folder / SIGNATURE_FILE).read_text())
    assert signature["algorithm"] == "hmac-sha256" and signature["key_id"] == RecordKey(KEY.encode()).key_id
    assert len(signature["hmac"]) == 1
    assert _problem(folder) is None
    assert "is signed with key id" in _problem(folder, key="another key, also long enough to be used")
    edited = (folder / RECORD_FILE).read_bytes().replace(b'"lines": 1', b'"lines": 2')
    assert "edited after it was signed" in signature_problem(edited, folder, RecordKey(KEY.encode()), required=True)


def test_a_record_signed_with_another_key_names_the_key_ids_not_the_keys(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    store = RunStore("r", tmp_path)
    _commit(store)
    other = "another key, also long enough to be used"
    problem = _problem(store.stage_dir("toy", "one"), key=other)
    assert RecordKey(KEY.encode()).key_id in problem and RecordKey(other.encode()).key_id in problem
    assert KEY not in problem and other not in problem


def test_the_key_is_written_nowhere_in_the_run_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    store = RunStore("r", tmp_path)
    _commit(store)
    _commit(store, lines=2, in_place=True)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == SIGNATURE_FILE for p in files)
    assert not [p for p in files if KEY.encode() in p.read_bytes()]
    assert KEY not in repr(RecordKey(KEY.encode()))


def test_without_the_key_nothing_is_signed_and_no_stale_signature_is_left(tmp_path, monkeypatch):
    store = RunStore("r", tmp_path)
    folder = store.stage_dir("toy", "one")
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    _commit(store, in_place=True)
    monkeypatch.delenv(KEY_VARIABLE)
    _commit(store, lines=2, in_place=True)
    assert not (folder / SIGNATURE_FILE).exists()
    _commit(store, lines=3)
    assert not (folder / SIGNATURE_FILE).exists()


def test_a_key_too_short_is_refused_before_any_work_without_showing_it(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, "short-secret")
    with pytest.raises(ConfigError, match="holds 12 bytes; a record signing key needs at least 32") as error:
        StageRun(RunStore("r", tmp_path), "toy", "one", ToyRecord)
    assert "short-secret" not in str(error.value)


def test_an_unsigned_record_is_no_cache_hit_for_a_run_holding_the_key(tmp_path, monkeypatch):
    store = RunStore("r", tmp_path)
    first = _commit(store)
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    run = StageRun(store, "toy", "one", ToyRecord)
    assert run.cached({"lines": 1}) is None  # rebuilt and signed, never signed as found
    run.commit(ToyRecord(**run.header(), lines=1))
    assert _problem(store.stage_dir("toy", "one")) is None
    again = StageRun(store, "toy", "one", ToyRecord)
    assert again.cached({"lines": 1}) is not None and first.fingerprint == again.fingerprint


def test_the_signature_is_inside_the_folder_the_commit_renames_into_place(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    store = RunStore("r", tmp_path)
    _commit(store)
    folder = store.stage_dir("toy", "one")
    published = []
    replace = os.replace

    def killed_at_the_rename(source, target):
        if os.path.realpath(target) == os.path.realpath(folder) and str(source).endswith(".tmp"):
            published.append(sorted(p.name for p in type(folder)(source).iterdir()))
            raise KeyboardInterrupt  # killed right at the rename that publishes the new folder
        return replace(source, target)

    monkeypatch.setattr(store_module.os, "replace", killed_at_the_rename)
    with pytest.raises(KeyboardInterrupt):
        _commit(store, lines=2)
    # the folder one rename publishes holds the record and its signature: no reader sees one without the other
    assert published == [[RECORD_FILE, SIGNATURE_FILE, "rows.jsonl"]]


@pytest.mark.parametrize("killed_at", [1, 2, 3, 4])
def test_an_in_place_commit_killed_at_any_write_leaves_a_record_its_signature_vouches_for(tmp_path, monkeypatch,
                                                                                          killed_at):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    store = RunStore("r", tmp_path)
    _commit(store, in_place=True)
    folder = store.stage_dir("toy", "one")
    writes = []
    for name in ("atomic_write_text", "atomic_write_bytes", "atomic_write_jsonl"):
        real = getattr(runner_module, name)

        def write(path, content, real=real):
            writes.append(path)
            if len(writes) == killed_at:
                raise KeyboardInterrupt
            return real(path, content)
        monkeypatch.setattr(runner_module, name, write)
    with pytest.raises(KeyboardInterrupt):
        _commit(store, lines=2, in_place=True)
    assert _problem(folder) is None, f"killed at write {killed_at} ({writes[-1].name})"
