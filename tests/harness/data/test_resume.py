"""kill -9 in the middle of a build, rerun, and get exactly the rows of an uninterrupted build."""

import os
import signal
import subprocess
import sys
import time


def _build_cmd(run: str, tiny_model) -> list[str]:
    return [sys.executable, "-m", "harness.app.cli", "data", "build", "--run", run, "--teacher", str(tiny_model),
            "--threads", "1", "--limit", "60", "--set", "data.shard_size=2", "--set", "data.teacher.max_new_tokens=48",
            "--set", "data.teacher.batch_size=2"]


def test_kill_9_mid_build_then_rerun_gives_the_uninterrupted_rows(tiny_model, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    home = tmp_path / "runs"
    work = home / "killed" / "data" / "_work"
    proc = subprocess.Popen(_build_cmd("killed", tiny_model), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(work.rglob("shard-*.json"))) >= 3:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shards_at_kill = len(list(work.rglob("shard-*.json")))
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    assert 3 <= shards_at_kill < 30, "the kill must land mid-build for this test to mean anything"
    assert not (home / "killed" / "data" / "nift" / "record.json").exists()

    resumed = subprocess.run(_build_cmd("killed", tiny_model), env=env, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    clean = subprocess.run(_build_cmd("clean", tiny_model), env=env, capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stderr[-2000:]

    killed_pairs = (home / "killed" / "data" / "nift" / "pairs.jsonl").read_text().splitlines()
    clean_pairs = (home / "clean" / "data" / "nift" / "pairs.jsonl").read_text().splitlines()
    assert len(killed_pairs) == len(clean_pairs) == 60
    assert killed_pairs == clean_pairs  # same rows, same order, none lost or duplicated
    record = (home / "killed" / "data" / "nift" / "record.json").read_text()
    assert f'"resumed_shards": {shards_at_kill}' in record
