"""The stage runner: every input it opens is in the fingerprint, by content."""

from pathlib import Path
from typing import Literal

import pytest
from tiny import edit_in_place

from harness.core.errors import InputError
from harness.core.records import InputRef, Record, sha256_bytes
from harness.core.runner import StageRun
from harness.core.store import RunStore, read_output, read_record, write_record


class ToyRecord(Record):
    kind: Literal["toy"] = "toy"
    lines: int


def _run(store, prompts, force=False, on_change="replace"):
    run = StageRun(store, "toy", "one", ToyRecord, force=force, on_change=on_change)
    path = run.file(prompts, kind="prompt_set")
    if (done := run.cached({"setting": 1})) is not None:
        return done, False
    record = ToyRecord(**run.header(), lines=len(path.read_text().splitlines()))
    return run.commit(record, {"rows.jsonl": [{"line": line} for line in path.read_text().splitlines()],
                               "note.md": "hello"}), True


def test_an_input_file_edited_in_place_is_recomputed_even_with_the_mtime_kept(tmp_path, caplog):
    store = RunStore("r", tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("alpha\nbeta\n")
    first, ran = _run(store, prompts)
    assert ran and first.inputs[0].kind == "prompt_set"
    caplog.set_level("INFO", logger="nift_gate")
    again, ran = _run(store, prompts)
    assert not ran and again.record_id == first.record_id and "up to date" in caplog.text
    edit_in_place(prompts, b"beta", b"gamm")
    changed, ran = _run(store, prompts)
    assert ran and changed.fingerprint != first.fingerprint
    assert (store.stage_dir("toy", "one") / "rows.jsonl").read_text().count("gamm") == 1
    assert "inputs or config changed" in caplog.text


def test_refuse_mode_keeps_a_folder_made_from_other_inputs_unless_forced(tmp_path):
    store = RunStore("r", tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("alpha\n")
    first, _ = _run(store, prompts, on_change="refuse")
    edit_in_place(prompts, b"alpha", b"omega")
    with pytest.raises(InputError, match="holds output made from other inputs or config; pass --force"):
        _run(store, prompts, on_change="refuse")
    forced, ran = _run(store, prompts, force=True, on_change="refuse")
    assert ran and forced.fingerprint != first.fingerprint


def test_tree_inputs_hash_every_file(tmp_path):
    store = RunStore("r", tmp_path)
    tasks = tmp_path / "tasks"
    (tasks / "sub").mkdir(parents=True)
    (tasks / "sub" / "task.yaml").write_text("task: x\n")

    def fingerprint():
        run = StageRun(store, "toy", "tree", ToyRecord)
        run.tree(tasks, kind="tasks")
        run.cached({})
        return run.fingerprint

    seen = [fingerprint()]
    assert fingerprint() == seen[0]
    (tasks / "sub" / "task.yaml").write_text("task: y\n")
    seen.append(fingerprint())
    (tasks / "extra.yaml").write_text("")
    seen.append(fingerprint())
    assert len(set(seen)) == 3


def test_missing_input_and_late_inputs_are_errors(tmp_path):
    store = RunStore("r", tmp_path)
    run = StageRun(store, "toy", "x", ToyRecord)
    with pytest.raises(InputError, match="missing.txt: prompt_set file not found"):
        run.file(tmp_path / "missing.txt", kind="prompt_set")
    run.cached({})
    with pytest.raises(RuntimeError, match="added after the fingerprint was fixed"):
        run.add(InputRef(kind="model", id="m", sha256="0" * 64))


def test_commit_is_atomic_and_clears_resume_state(tmp_path):
    store = RunStore("r", tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\n")
    run = StageRun(store, "toy", "one", ToyRecord)
    run.file(prompts, kind="prompt_set")
    assert run.cached({}) is None
    run.progress.save("model-a", {"outputs": [1, 2]})
    assert run.progress.load("model-a") == {"outputs": [1, 2]}

    def boom(path):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run.commit(ToyRecord(**run.header(), lines=1), {"a.jsonl": [{"x": 1}], "b": boom})
    folder = store.stage_dir("toy", "one")
    assert not folder.exists()  # nothing half-written
    assert run.progress.load("model-a") is not None  # the work survives a failed commit
    run.commit(ToyRecord(**run.header(), lines=1), {"a.jsonl": [{"x": 1}]})
    assert (folder / "record.json").exists() and (folder / "a.jsonl").read_text() == '{"x": 1}\n'
    assert run.progress.load("model-a") is None


def test_read_gives_the_hashed_bytes_and_refuses_a_file_edited_since(tmp_path):
    store = RunStore("r", tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    tasks = tmp_path / "tasks"
    (tasks / "sub").mkdir(parents=True)
    (tasks / "sub" / "t.yaml").write_text("task: x\n")
    run = StageRun(store, "toy", "one", ToyRecord)
    path = run.file(prompts, kind="prompt_set")
    folder = run.tree(tasks, kind="tasks")
    assert run.read(path) == b"one\ntwo\n" and run.read(folder / "sub" / "t.yaml") == b"task: x\n"
    edit_in_place(prompts, b"two", b"TWO")  # between the hash and the read: same size and mtime
    (tasks / "sub" / "t.yaml").write_text("task: y\n")
    with pytest.raises(InputError, match=r"p.txt: changed while toy/one was running"):
        run.read(path)
    with pytest.raises(InputError, match=r"t.yaml: changed while toy/one was running"):
        run.read(folder / "sub" / "t.yaml")
    with pytest.raises(RuntimeError, match="was not opened with file"):
        run.read(tmp_path / "other.txt")



@pytest.mark.parametrize("change", ["edited", "edited and put back", "replaced and put back", "removed",
                                    "file in a tree edited"])
def test_an_input_read_by_path_and_changed_before_the_commit_writes_nothing(tmp_path, change):
    """A library that takes only a path (lm-eval's task files, detoxify's checkpoint) reads after the hash;
    the commit checks every input's identity (ctime included) and hashes it again, so the record never names
    bytes the work did not read, even when the file is put back before the commit."""
    store = RunStore("r", tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "t.yaml").write_text("task: x\n")
    run = StageRun(store, "toy", "one", ToyRecord)
    run.file(prompts, kind="prompt_set")
    run.tree(tasks, kind="tasks")
    assert run.cached({}) is None
    run.progress.save("model-a", {"outputs": [1]})
    if change == "edited":
        edit_in_place(prompts, b"two", b"TWO")  # same size and mtime
    elif change == "edited and put back":  # a library could have read TWO in between
        edit_in_place(prompts, b"two", b"TWO")
        edit_in_place(prompts, b"TWO", b"two")
    elif change == "replaced and put back":
        prompts.rename(tmp_path / "aside.txt")
        prompts.write_text("one\nTWO\n")
        (tmp_path / "aside.txt").replace(prompts)
    elif change == "removed":
        prompts.unlink()
    else:
        (tasks / "t.yaml").write_text("task: y\n")
    verb = "removed" if change == "removed" else "changed"
    name = "t.yaml" if change.startswith("file in") else "p.txt"
    with pytest.raises(InputError, match=rf"{name}: {verb} while toy/one was running .*nothing was written"):
        run.commit(ToyRecord(**run.header(), lines=2), {"rows.jsonl": [{"line": "one"}]})
    assert not store.stage_dir("toy", "one").exists()
    assert run.progress.load("model-a") == {"outputs": [1]}  # the finished work is kept for the rerun
    with pytest.raises(InputError, match=rf"{name}: {verb} while"):
        run.commit_in_place(ToyRecord(**run.header(), lines=2))
    assert not (store.stage_dir("toy", "one") / "record.json").exists()


def test_a_model_file_written_after_the_model_was_resolved_stops_the_commit(tiny_model, tmp_path):
    """Weights and tokenizer files are read by transformers by path: one rewritten (even with its bytes put
    back) after the model's hash was taken means the work may have loaded other files than the hash names."""
    import shutil

    from harness.train.record import resolve_base

    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    store = RunStore("r", tmp_path / "home")
    run = StageRun(store, "toy", "one", ToyRecord)
    run.model(str(folder), resolve_base)
    assert run.cached({}) is None
    template = folder / "tokenizer_config.json"
    template.write_bytes(template.read_bytes())  # same bytes, written again
    with pytest.raises(InputError, match=r"tokenizer_config.json: changed while toy/one was running .*even if its "
                                         r"bytes are back"):
        run.commit(ToyRecord(**run.header(), lines=0))
    assert not store.stage_dir("toy", "one").exists()


def test_a_file_written_while_it_is_hashed_is_refused(tmp_path, monkeypatch):
    import harness.core.runner as runner

    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    real = runner.sha256_file

    def hash_then_edit(path):
        digest = real(path)
        edit_in_place(prompts, b"two", b"TWO")
        return digest

    monkeypatch.setattr(runner, "sha256_file", hash_then_edit)
    run = StageRun(RunStore("r", tmp_path), "toy", "one", ToyRecord)
    with pytest.raises(InputError, match=r"p.txt: written to while toy/one hashed it"):
        run.file(prompts, kind="prompt_set")


def test_a_record_input_is_parsed_from_the_bytes_it_is_pinned_by(tmp_path):
    store = RunStore("r", tmp_path)
    folder = tmp_path / "other"
    write_record(folder, ToyRecord(record_id="t1", run_id="r", fingerprint="f", lines=1))
    data = (folder / "record.json").read_bytes()
    (folder / "record.json").write_bytes(data.replace(b'"r"', b'"\xe9"'))
    with pytest.raises(InputError, match=r"record.json:\d+: not UTF-8"):
        StageRun(store, "toy", "one", ToyRecord).record(folder, ToyRecord)


def test_a_new_stage_version_or_library_version_is_not_up_to_date(tmp_path, monkeypatch):
    """The code that made a record is in its fingerprint: a stage whose output changed (its version bumped) or
    an upgraded library that changes numbers (lm-eval, transformers, scipy) recomputes instead of reusing."""
    import harness.core.records as records

    store = RunStore("r", tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\n")

    def run(version="1"):
        run = StageRun(store, "toy", "one", ToyRecord, version=version)
        run.file(prompts, kind="prompt_set")
        done = run.cached({"setting": 1})
        return done if done is not None else run.commit(ToyRecord(**run.header(), lines=1))

    first = run()
    assert run().record_id == first.record_id  # same code: reused
    assert run(version="2").fingerprint != first.fingerprint
    bumped = run(version="2")
    real = records._installed_version
    monkeypatch.setattr(records, "_installed_version",
                        lambda name: "99.0" if name == "lm-eval" else real(name))
    assert run(version="2").fingerprint != bumped.fingerprint


def test_every_file_a_commit_writes_is_pinned_by_its_record_and_read_back_checked(tmp_path):
    store = RunStore("r", tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\nb\n")
    record, _ = _run(store, prompts)
    folder = store.stage_dir("toy", "one")
    assert set(record.outputs) == {"rows.jsonl", "note.md"}
    stored = read_record(folder, ToyRecord)
    assert stored.outputs == record.outputs and stored.outputs["note.md"] == sha256_bytes(b"hello")
    assert read_output(folder, stored, "rows.jsonl") == b'{"line": "a"}\n{"line": "b"}\n'
    # a per-item file edited after the record was written shows answers no record rests on: refused
    (folder / "rows.jsonl").write_text('{"line": "z"}\n')
    with pytest.raises(InputError, match=r"toy/one/rows.jsonl: changed after .*toy/one/record.json was written"):
        read_output(folder, stored, "rows.jsonl")
    # and a file the record never wrote is not one of its outputs
    (folder / "extra.jsonl").write_text("{}\n")
    with pytest.raises(InputError, match=r"toy/one/extra.jsonl: not one of the files .*record.json pins"):
        read_output(folder, stored, "extra.jsonl")
    (folder / "note.md").unlink()
    with pytest.raises(InputError, match=r"note.md"):
        read_output(folder, stored, "note.md")


def test_a_replaced_stage_folder_is_never_left_half_deleted(tmp_path, monkeypatch):
    # a kill while the old folder is deleted used to leave its record.json beside half its files, which the next
    # run took as up to date; the old folder is now renamed aside whole, and deleted once the new one is in place
    import os
    import shutil

    from harness.core.store import atomic_dir

    store = RunStore("r", tmp_path)
    folder = store.stage_dir("data", "raw")
    with atomic_dir(folder) as tmp:
        (tmp / "pairs.jsonl").write_text("old\n")
        (tmp / "record.json").write_text("{}")
    removed = []

    def killed(path, *args, **kwargs):
        removed.append(os.path.basename(path))
        raise KeyboardInterrupt  # the process dies while a folder is being deleted

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt), atomic_dir(folder) as tmp:
        (tmp / "pairs.jsonl").write_text("new\n")
        (tmp / "record.json").write_text("{}")
    assert removed and removed[0].startswith(".raw.") and removed[0].endswith(".old")
    assert sorted(p.name for p in folder.iterdir()) == ["pairs.jsonl", "record.json"]
    assert (folder / "pairs.jsonl").read_text() == "new\n"
    assert any(p.name.endswith(".old") for p in folder.parent.iterdir())  # left by the kill: no stage output
    assert [p.name for p in store.finished("data")] == ["raw"]


def test_a_second_run_of_the_same_stage_into_the_same_folder_writes_nothing_once_the_first_committed(tmp_path):
    # two processes building one folder at once: the later commit used to replace the earlier one's output (or
    # crash with a traceback while both replaced it), and the earlier one had already reported its own result
    store = RunStore("r", tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\nb\n")
    first, second = (StageRun(store, "toy", "one", ToyRecord, force=True) for _ in range(2))
    for run in (first, second):
        run.file(prompts, kind="prompt_set")
        assert run.cached({"setting": 1}) is None
    second.commit(ToyRecord(**second.header(), lines=2), {"rows.jsonl": [{"from": "second"}]})
    with pytest.raises(InputError, match=r"toy/one: another process wrote this toy while this run worked"):
        first.commit(ToyRecord(**first.header(), lines=2), {"rows.jsonl": [{"from": "first"}]})
    folder = store.stage_dir("toy", "one")
    assert (folder / "rows.jsonl").read_text() == '{"from": "second"}\n'
    assert (folder.parent / ".one.lock").exists() and [p.name for p in store.finished("toy")] == ["one"]
    # a run that looked after that commit replaces it as usual
    third = StageRun(store, "toy", "one", ToyRecord, force=True)
    third.file(prompts, kind="prompt_set")
    third.cached({"setting": 1})
    third.commit(ToyRecord(**third.header(), lines=2), {"rows.jsonl": [{"from": "third"}]})
    assert (folder / "rows.jsonl").read_text() == '{"from": "third"}\n'


def test_a_commit_deletes_the_folders_a_killed_commit_left_beside_its_folder_and_nothing_else(tmp_path):
    # a commit killed mid-way leaves its temp folder (.<name>.<random>.tmp) or the old folder renamed aside
    # (.old); readers skip them, and the next commit of the same folder, under its lock, now deletes them
    import tempfile

    store = RunStore("r", tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\n")
    parent = store.stage_dir("toy", "one").parent
    parent.mkdir(parents=True)
    killed = [Path(tempfile.mkdtemp(prefix=".one.", suffix=suffix, dir=parent)) for suffix in (".tmp", ".old")]
    for folder in killed:
        (folder / "record.json").write_text("{}")
    kept = [Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent)) for prefix in (".two.", ".one.x.")]
    (parent / ".one.abcdefgh.tmp").write_text("a file, not a commit's folder")
    _run(store, prompts)
    assert not any(folder.exists() for folder in killed)
    assert all(folder.is_dir() for folder in kept) and (parent / ".one.abcdefgh.tmp").is_file()
    assert [p.name for p in store.finished("toy")] == ["one"]


def test_a_commit_reaches_the_disk_before_the_rename_that_publishes_it(tmp_path, monkeypatch):
    # without fsync a power loss after the rename could leave record.json naming files whose bytes never
    # reached the disk; every file and folder of the new folder is synced before it is renamed into place
    import os

    import harness.core.store as store_module

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    monkeypatch.setattr(store_module.os, "replace", replace)
    store = RunStore("r", tmp_path)
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\n")
    _run(store, prompts)
    folder = store.stage_dir("toy", "one")
    publish = events.index(("replace", os.fspath(folder)))
    synced_before = {Path(path).name for kind, path in events[:publish] if kind == "fsync"}
    assert {"rows.jsonl", "note.md", "record.json"} <= synced_before
    assert any(name.startswith(".one.") and name.endswith(".tmp") for name in synced_before)  # the folder itself
    assert ("fsync", os.path.realpath(folder.parent)) in events[publish:]
