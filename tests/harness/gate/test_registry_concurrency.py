"""The registry under concurrent processes: one lock from the check to the append, readers never see half an
append. Real processes (forked), started together at a barrier so that they contend."""

import multiprocessing
from pathlib import Path

import pytest
from gate_records import CANDIDATE, config_for, decide_run, standard_run, write_policy

from harness.core.records import sha256_file
from harness.core.store import RunStore
from harness.gate import registry as registry_module
from harness.gate.gate import open_registry
from harness.gate.registry import Registry, RegistryTamperedError

FORK = multiprocessing.get_context("fork")
DECISIONS = [f"d{i}" for i in range(6)]


def _decide(home, policy, barrier, results):
    barrier.wait()
    try:
        decide_run(config_for(home, policy), RunStore("r1", home))
        results.put("ok")
    except Exception as exc:  # noqa: BLE001  (any failure is reported to the parent, which asserts on it)
        results.put(repr(exc))


def _append_each_once(folder, order, barrier, results):
    """Log every decision of ``order`` unless it is logged: the check and the append under one lock."""
    barrier.wait()
    try:
        registry = Registry(folder)
        for record_id in order:
            with registry.writing() as log:
                if log.find(record_id) is None:
                    log.append({"event": "decision", "record_id": record_id, "decision": "PROMOTE",
                                "alias_moves": {}})
        results.put("ok")
    except Exception as exc:  # noqa: BLE001  (as above)
        results.put(repr(exc))


def _verify_while_appending(folder, barrier, done, results):
    barrier.wait()
    try:
        checks = 0
        while not done.is_set() or checks == 0:
            Registry(folder).verify()
            checks += 1
        results.put("ok")
    except RegistryTamperedError as exc:  # a false alarm: the log is only being appended to
        results.put(repr(exc))


def _run(processes):
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0


def test_eight_concurrent_gates_log_one_decision_once(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    policy = write_policy(tmp_path)
    barrier, results = FORK.Barrier(8), FORK.Queue()
    _run([FORK.Process(target=_decide, args=(home, policy, barrier, results)) for _ in range(8)])
    assert sorted(results.get(timeout=5) for _ in range(8)) == ["ok"] * 8
    entries = open_registry(config_for(home, policy).gate, store).verify()
    assert len(entries) == 1 and entries[0]["decision"] == "PROMOTE"
    assert sha256_file(store.root / "gate" / CANDIDATE / "record.json") == entries[0]["record_sha256"]


def test_concurrent_appends_of_the_same_and_different_decisions_log_each_once_and_verify(tmp_path):
    folder = tmp_path / "registry"
    appenders = 6
    barrier, results, done = FORK.Barrier(appenders + 2), FORK.Queue(), FORK.Event()
    writers = [FORK.Process(target=_append_each_once,
                            args=(folder, DECISIONS[i % 3:] + DECISIONS[:i % 3], barrier, results))
               for i in range(appenders)]
    readers = [FORK.Process(target=_verify_while_appending, args=(folder, barrier, done, results)) for _ in range(2)]
    for process in writers + readers:
        process.start()
    for process in writers:
        process.join(timeout=60)
    done.set()
    for process in readers:
        process.join(timeout=60)
    assert sorted(results.get(timeout=5) for _ in range(appenders + 2)) == ["ok"] * (appenders + 2)
    entries = Registry(folder).verify()
    assert sorted(e["record_id"] for e in entries) == DECISIONS  # each distinct decision exactly once
    assert [e["seq"] for e in entries] == list(range(1, len(DECISIONS) + 1))


def test_a_reader_that_found_no_registry_reads_nothing_though_a_writer_starts_one_right_after(tmp_path, monkeypatch):
    """The interleaving that failed once in CI: a reader finds no folder (so there is no lock to take), then,
    before it reads, a writer creates the registry, logs one entry and is between the log line and the head
    update of a second. The reader must report the empty registry it found, not a tampered one."""
    folder = tmp_path / "registry"
    real_is_dir = Path.is_dir

    def is_dir_then_a_writer_starts(path):
        found = real_is_dir(path)
        if path == folder:
            monkeypatch.setattr(Path, "is_dir", real_is_dir)
            writer = Registry(folder)
            writer.append({"event": "decision", "record_id": "d1", "decision": "PROMOTE", "alias_moves": {}})
            with monkeypatch.context() as halfway:
                halfway.setattr(registry_module, "atomic_write_json", lambda *args, **kwargs: None)
                writer.append({"event": "decision", "record_id": "d2", "decision": "PROMOTE", "alias_moves": {}})
        return found

    monkeypatch.setattr(Path, "is_dir", is_dir_then_a_writer_starts)
    assert Registry(folder).verify() == []
    # the folder now holds the writer's half-done append, which a reader arriving now sees only after the head
    with pytest.raises(RegistryTamperedError, match="entry 2 not counted"):
        Registry(folder).verify()  # (here the writer never finishes, so a later reader flags it)
