"""The stage lock, held from the cache check to the commit: a second process building the same folder is turned
away before it does any work; a killed holder frees it; this process's own runs never refuse themselves."""

import contextlib
import fcntl
import gc
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from harness.core.errors import InputError
from harness.core.records import Record
from harness.core.runner import StageRun, stage_entry
from harness.core.store import RunStore

ROOT = Path(__file__).resolve().parents[3]

# A nift-gate run in another process, stopped in its work: it passed the cache check of toy/one and sleeps.
HOLDER = """
import os, sys, time
from typing import Literal
from harness.core.records import Record
from harness.core.runner import StageRun, stage_entry
from harness.core.store import RunStore

class ToyRecord(Record):
    kind: Literal["toy"] = "toy"
    lines: int

run = StageRun(RunStore("r", sys.argv[1]), "toy", "one", ToyRecord)
assert run.cached({"holder": True}) is None
ready_r, ready_w = os.pipe()
worker = os.fork() if sys.argv[2] == "fork" else None  # a worker of the holder's (a data loader, say)
if worker == 0:
    os.write(ready_w, b"x")  # fork's at-fork hooks have run in the child: its copy of the lock is closed
    time.sleep(600)
    os._exit(0)
if worker:
    os.read(ready_r, 1)  # on a busy machine the child may run its hooks after the parent is killed
print("holding", worker or "", flush=True)
time.sleep(600)
"""


class ToyRecord(Record):
    kind: Literal["toy"] = "toy"
    lines: int


def _run(store, prompts, work, force=False, on_change="replace", **kwargs):
    """toy/one; ``work`` gets one entry each time the stage does its work (past its cache check)."""
    run = StageRun(store, "toy", "one", ToyRecord, force=force, on_change=on_change, **kwargs)
    path = run.file(prompts, kind="prompt_set")
    if (done := run.cached({"setting": 1})) is not None:
        return done
    work.append(run)
    return run.commit(ToyRecord(**run.header(), lines=len(path.read_text().splitlines())), {"rows.txt": "a\n"})


def _free(lock: Path) -> bool:
    """Whether another process could take the lock now (a second open file is another holder to flock, even in
    this process)."""
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


def _line(process: subprocess.Popen, timeout: float = 60) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the holder process did not report in time"
    line = process.stdout.readline()
    assert line, f"the holder process ended: {process.stderr.read()}"
    return line.strip()


def _holder(home: Path, mode: str = "plain") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(home), mode], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("alpha\nbeta\n")
    return path


def test_a_second_process_is_refused_before_any_work_and_a_holder_killed_with_9_frees_the_folder(tmp_path, prompts):
    # Both processes used to do all the work (hours for a training run) before the later one was turned away at
    # its commit; now the lock is held from the cache check, and the second is refused at its cache check.
    store = RunStore("r", tmp_path)
    holder = _holder(tmp_path)
    try:
        assert _line(holder) == "holding"
        work = []
        with pytest.raises(InputError) as refused:
            _run(store, prompts, work, force=True)
        message = str(refused.value)
        assert f"toy/one: another nift-gate run (pid {holder.pid}) is building this folder" in message
        assert "\n" not in message and refused.value.exit_code == 2
        assert work == [] and not store.stage_dir("toy", "one").exists()
        holder.send_signal(signal.SIGKILL)  # no cleanup of its own: the kernel drops the flock
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
        holder.stderr.close()
    record = _run(store, prompts, work)
    assert len(work) == 1 and (store.stage_dir("toy", "one") / "record.json").exists()
    assert record.config == {"setting": 1}


def test_a_worker_forked_by_a_holder_does_not_keep_the_folder_locked_once_the_holder_is_killed(tmp_path, prompts):
    # A forked child shares its parent's open lock file: left open, it would keep the lock after the parent died.
    store = RunStore("r", tmp_path)
    holder = _holder(tmp_path, "fork")
    worker = None
    try:
        said, worker = _line(holder).split()
        worker = int(worker)
        assert said == "holding" and not _free(tmp_path / "r" / "toy" / ".one.lock")
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        os.kill(worker, 0)  # the worker lives on
        work = []
        _run(store, prompts, work)
        assert len(work) == 1
    finally:
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
        holder.stderr.close()


def test_the_lock_is_released_by_a_commit_a_cache_hit_and_a_refusal(tmp_path, prompts):
    store = RunStore("r", tmp_path)
    lock = tmp_path / "r" / "toy" / ".one.lock"
    work = []
    _run(store, prompts, work)
    assert len(work) == 1 and _free(lock)  # committed
    _run(store, prompts, work)
    assert len(work) == 1 and _free(lock)  # up to date: no work, no lock kept for the rest of the process
    prompts.write_text("gamma\n")
    with pytest.raises(InputError, match="holds output made from other inputs"):
        _run(store, prompts, work, on_change="refuse")
    assert _free(lock)
    run = StageRun(store, "toy", "one", ToyRecord)
    run.file(prompts, kind="prompt_set")
    assert run.cached({"setting": 2}) is None and not _free(lock)  # held through the work
    run.release()
    assert _free(lock)


def test_a_run_that_raised_never_refuses_the_next_run_of_its_folder_in_the_same_process(tmp_path, prompts):
    # The pipeline and the tests run many stages in one process; a failed run's frame lives on in its traceback.
    store = RunStore("r", tmp_path)
    lock = tmp_path / "r" / "toy" / ".one.lock"

    def failing():
        run = StageRun(store, "toy", "one", ToyRecord)
        run.file(prompts, kind="prompt_set")
        run.cached({"setting": 1})
        raise RuntimeError("the work failed")

    with pytest.raises(RuntimeError) as failed:
        failing()
    assert not _free(lock)  # another process is still kept out while the failed run is alive
    work = []
    _run(store, prompts, work, force=True)  # a --force rerun in this process takes the lock over
    assert len(work) == 1 and _free(lock)
    del failed
    gc.collect()
    assert _free(lock)  # the failed run's finaliser does not unlock a lock it no longer owns
    with pytest.raises(RuntimeError) as failed:
        failing()
    del failed
    gc.collect()
    assert _free(lock)  # and it releases its own when it is collected


def test_train_force_discards_the_folder_and_keeps_the_lock_until_its_commit(tmp_path, prompts):
    store = RunStore("r", tmp_path)
    lock = tmp_path / "r" / "toy" / ".one.lock"
    _run(store, prompts, [])
    run = StageRun(store, "toy", "one", ToyRecord, force=True, on_change="refuse")
    run.file(prompts, kind="prompt_set")
    assert run.cached({"setting": 1}) is None
    run.discard()  # as `train --force` does before training in place
    (run.stamp_work() / "checkpoint").write_text("step 1\n")
    assert not store.stage_dir("toy", "one").joinpath("record.json").exists() and not _free(lock)
    record = run.commit(ToyRecord(**run.header(), lines=2), {"rows.txt": "b\n"})
    assert (store.stage_dir("toy", "one") / "record.json").exists() and record.lines == 2 and _free(lock)


def test_helper_ranks_and_runs_without_a_hold_are_not_turned_away_but_their_commit_is(tmp_path, prompts,
                                                                                      monkeypatch):
    # Every rank of `accelerate launch` runs the cache check (rank 0 alone commits), and concurrent gates wait
    # on the registry lock instead: neither may be refused at the cache check while another holds the folder.
    store = RunStore("r", tmp_path)
    lock = tmp_path / "r" / "toy" / ".one.lock"
    lock.parent.mkdir(parents=True)
    with open(lock, "a") as other:  # another process's hold, by another open file (its pid unknown)
        fcntl.flock(other, fcntl.LOCK_EX)
        for rank in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK"):  # torchrun and accelerate; MPICH; Open MPI
            monkeypatch.setenv(rank, "1")
            helper = StageRun(store, "toy", "one", ToyRecord)
            helper.file(prompts, kind="prompt_set")
            assert helper.cached({"setting": 1}) is None, rank
            monkeypatch.setenv(rank, "0")
        with pytest.raises(InputError, match=r"toy/one: another nift-gate run is building this folder"):
            _run(store, prompts, [])
        gate = StageRun(store, "toy", "one", ToyRecord, force=True, hold_lock=False)
        gate.file(prompts, kind="prompt_set")
        assert gate.cached({"setting": 1}) is None
        with pytest.raises(InputError, match=r"toy/one: another nift-gate run is building this folder"):
            gate.commit(ToyRecord(**gate.header(), lines=2), {"rows.txt": "c\n"})  # refused at once, not waited
    assert not store.stage_dir("toy", "one").exists() and _free(lock)


def test_a_run_stopped_before_its_commit_leaves_no_lock_file_or_folder_behind(tmp_path, prompts):
    # a stage refused at a bad input after its cache check (a corpus line that is not JSON) writes nothing
    store = RunStore("r", tmp_path)
    run = StageRun(store, "toy", "one", ToyRecord)
    run.file(prompts, kind="prompt_set")
    assert run.cached({"setting": 1}) is None and (tmp_path / "r" / "toy" / ".one.lock").is_file()
    run.release()
    assert not store.root.exists()
    work = []
    _run(store, prompts, work)
    assert len(work) == 1 and (tmp_path / "r" / "toy" / ".one.lock").is_file()  # a finished folder keeps it


def test_a_lock_file_removed_between_its_open_and_its_lock_is_locked_again_at_its_path(tmp_path, prompts,
                                                                                        monkeypatch):
    # A holder that ends with no folder removes its lock file; a run that opened that file just before holds a
    # lock on a file no other run opens any more, unless it checks the path and locks again.
    import harness.core.runner as runner

    store = RunStore("r", tmp_path)
    lock = tmp_path / "r" / "toy" / ".one.lock"
    real_flock, raced = runner.fcntl.flock, []

    def flock(fd, operation):
        if operation & fcntl.LOCK_EX and not raced:
            raced.append(fd)
            lock.unlink()  # the releasing holder's unlink, then a third run's new file
            lock.write_text("")
        return real_flock(fd, operation)

    monkeypatch.setattr(runner.fcntl, "flock", flock)
    run = StageRun(store, "toy", "one", ToyRecord)
    run.file(prompts, kind="prompt_set")
    assert run.cached({"setting": 1}) is None and raced
    monkeypatch.setattr(runner.fcntl, "flock", real_flock)
    assert not _free(lock)  # the file at the path is the one held
    run.release()


def test_a_stage_entry_refused_after_its_cache_check_leaves_no_lock_and_no_folder(tmp_path, prompts):
    # the traceback keeps the refused run alive, so only the entry point's end can give its lock up
    store = RunStore("r", tmp_path)

    @stage_entry
    def stage():
        run = StageRun(store, "toy", "one", ToyRecord)
        run.file(prompts, kind="prompt_set")
        assert run.cached({"setting": 1}) is None
        raise InputError("corpus.jsonl:3: not JSON")

    with pytest.raises(InputError) as refused:
        stage()
    assert refused.traceback  # the run's frame is still referenced here
    assert not (tmp_path / "r" / "toy").exists()
    with pytest.raises(InputError):  # and the next run of the folder is not turned away
        stage()


def _functions_making_stage_runs() -> dict[str, list[str]]:
    """``module:function`` -> its decorators, for every function of the stages that makes a StageRun (and
    ``hold_lock=False`` where every run it makes takes no lock before its commit)."""
    import ast

    found = {}
    for path in sorted([*(ROOT / "harness").rglob("*.py"), *(ROOT / "audits").rglob("*.py")]):
        if path == ROOT / "harness" / "core" / "runner.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            runs = [call for call in ast.walk(node)
                    if isinstance(call, ast.Call) and ast.unparse(call.func) == "StageRun"]
            if runs:
                lockless = all(any(k.arg == "hold_lock" and ast.unparse(k.value) == "False" for k in call.keywords)
                               for call in runs)
                found[f"{path.relative_to(ROOT)}:{node.name}"] = [ast.unparse(d) for d in node.decorator_list] + (
                    ["hold_lock=False"] if lockless else [])
    return found


def test_every_stage_function_that_makes_a_run_releases_its_lock_when_it_ends():
    # a stage entry point that holds the lock from its cache check must be a stage_entry (or a registered audit,
    # which register_audit wraps in one); the gate's run takes no lock before its commit (hold_lock=False)
    found = _functions_making_stage_runs()
    assert len(found) >= 9 and "harness/train/train.py:train_checkpoint" in found  # the scan sees the stages
    unreleased = [name for name, marks in found.items()
                  if not {"stage_entry", "hold_lock=False"} & set(marks)
                  and not any(mark.startswith("register_audit(") for mark in marks)]
    assert unreleased == []
    assert found["harness/gate/gate.py:evaluate"] == ["hold_lock=False"]


def test_a_run_in_another_thread_of_the_same_process_is_turned_away(tmp_path, prompts):
    # the takeover that lets a process's next run follow one that raised is for runs one after the other, in one
    # thread: two threads building one folder at once would both commit into it
    import threading

    store = RunStore("r", tmp_path)
    first = StageRun(store, "toy", "one", ToyRecord)
    first.file(prompts, kind="prompt_set")
    assert first.cached({"setting": 1}) is None
    refused = []

    def second():
        run = StageRun(store, "toy", "one", ToyRecord)
        run.file(prompts, kind="prompt_set")
        try:
            run.cached({"setting": 1})
        except InputError as exc:
            refused.append(str(exc))

    thread = threading.Thread(target=second)
    thread.start()
    thread.join()
    assert len(refused) == 1 and "another nift-gate run in this process (thread" in refused[0]
    first.release()
    thread = threading.Thread(target=second)  # once the holder released, another thread builds it
    thread.start()
    thread.join()
    assert len(refused) == 1
