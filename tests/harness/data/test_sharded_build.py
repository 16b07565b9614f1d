"""Teacher generation shared by two processes (accelerate launch, gloo on CPU): the dataset is the single-process
one, byte for byte, and a rank killed with -9 leaves shards that a rerun resumes from."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

VARIANTS = ("nift", "two")


def _config(tmp_path: Path, tiny_model: Path) -> Path:
    """One one-turn and one two-turn variant: every turn of the second is its own sharded round."""
    path = tmp_path / "sharded.yaml"
    path.write_text(json.dumps({"data": {
        "limit": 16, "shard_size": 2,
        "teacher": {"model": str(tiny_model), "threads": 1, "max_new_tokens": 32, "batch_size": 2},
        "variants": [{"name": "nift"}, {"name": "two", "turns": 2}]}}))
    return path


def _build(config: Path, run: str) -> list[str]:
    return ["-m", "harness.app.cli", "data", "build", "--config", str(config), "--run", run]


def _launch(config: Path, run: str) -> list[str]:
    with socket.socket() as probe:  # a free rendezvous port: other test processes may hold the default one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # On a machine without CUDA the build puts accelerate's state on CPU (gloo), as the train stage does.
    return [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port), *_build(config, run)]


def _rank(launcher: psutil.Process, rank: str) -> psutil.Process | None:
    for child in launcher.children(recursive=True):
        try:
            if child.environ().get("RANK") == rank and "harness.app.cli" in child.cmdline():
                return child
        except psutil.Error:
            continue
    return None


def _run_logged(command: list[str], env: dict[str, str], log: Path, timeout: float = 240) -> tuple[str, str]:
    """Stdout and stderr of a run to the end, kept in files (a hung rank shows there); the process group is
    killed on time-out."""
    err = log.with_suffix(".err")
    with open(log, "wb") as out, open(err, "wb") as errors:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=errors, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stdout, stderr = log.read_text(errors="replace"), err.read_text(errors="replace")
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{stderr[-3000:]}"
    return stdout, stderr


def test_two_ranks_build_the_single_process_dataset_and_resume_a_killed_rank(tiny_model, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "1"}
    home = Path(os.environ["NIFT_HOME"])
    config = _config(tmp_path, tiny_model)

    _run_logged([sys.executable, *_build(config, "single")], env, tmp_path / "single.log")

    # 1. two ranks; rank 1 is killed with -9 once a few shards are on disk, and torchrun stops rank 0
    work = home / "sharded" / "data" / "_work"
    log = tmp_path / "killed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(_launch(config, "sharded"), env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        launcher, victim = psutil.Process(proc.pid), None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            victim = victim or _rank(launcher, "1")
            if victim and len(list(work.rglob("shard-*.json"))) >= 2:
                break
            time.sleep(0.02)
        assert victim is not None, log.read_text()[-3000:]
        victim.send_signal(signal.SIGKILL)
        try:
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0, log.read_text()[-3000:]
    on_disk = len(list(work.rglob("shard-*.json")))
    assert not any((home / "sharded" / "data" / v / "record.json").exists() for v in VARIANTS)

    # 2. the rerun redoes the missing shards only, and rank 0 alone writes (and reports) each variant
    stdout, stderr = _run_logged(_launch(config, "sharded"), env, tmp_path / "rerun.log")
    assert "rank 1/2" in stderr  # rank 1 generated shards of its own
    assert [line.split(":")[0] for line in stdout.splitlines() if line.startswith("data [")] == \
        ["data [nift]", "data [two]"]

    records = {}
    for variant in VARIANTS:
        single_pairs = (home / "single" / "data" / variant / "pairs.jsonl").read_bytes()
        sharded_pairs = (home / "sharded" / "data" / variant / "pairs.jsonl").read_bytes()
        assert sharded_pairs == single_pairs and single_pairs.count(b"\n") == 16
        records[variant] = json.loads((home / "sharded" / "data" / variant / "record.json").read_text())
        assert records[variant]["world_size"] == 2
        assert json.loads((home / "single" / "data" / variant / "record.json").read_text())["world_size"] == 1
    total = sum(r["generation"]["shards"] for r in records.values())
    assert total == 8 + 8 + 8  # nift: 8 shards; two: 8 in each of its 2 rounds
    assert 2 <= on_disk < total, "the kill must land mid-build for this test to mean anything"
    assert sum(r["generation"]["resumed_shards"] for r in records.values()) == on_disk
    assert len(list(work.rglob("shard-*.json"))) == total
