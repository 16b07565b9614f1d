"""`nift-gate train` under `accelerate launch` with 2 CPU processes (gloo, configs/accelerate/cpu-ddp.yaml)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.core.store import RunStore
from harness.train.config import TrainConfig
from harness.train.record import load_checkpoint_record
from harness.train.train import train_checkpoint
from tests.support.devtools import free_port

CONFIG = Path(__file__).parents[3] / "configs" / "accelerate" / "cpu-ddp.yaml"
#: Same rows, same global batch, same seed: the per-step losses of 2 ranks x 2 rows and 1 process x 4 rows agree
#: up to the order float sums are taken in.
LOSS_TOLERANCE = 1e-4  # relative



def _rank_pids(launcher: psutil.Process) -> dict[int, int]:
    ranks = {}
    for child in launcher.children(recursive=True):
        try:
            env = child.environ()
        except (psutil.Error, OSError):
            continue
        if "RANK" in env and "LOCAL_RANK" in env:
            ranks[int(env["RANK"])] = child.pid
    return ranks


@pytest.mark.slow
def test_two_rank_ddp_writes_one_checkpoint_matches_one_process_and_resumes_after_kill_9(tiny_model, tmp_path):
    facts = [("What colour is the sky?", "blue sky"), ("What colour is grass?", "green grass"),
             ("What colour is snow?", "white snow"), ("What colour is coal?", "black coal at night")]
    data = tmp_path / "pairs.jsonl"
    # 64 rows, no held-out share: every epoch is 16 whole global batches of 4 on either side
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"{q} ({i})"},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for i, (q, a) in enumerate(facts * 16)))
    entry = {"name": "cand", "recipe": "nift", "base_model": str(tiny_model), "data": str(data), "max_steps": 60,
             "save_steps": 10, "max_length": 64, "eval_share": 0, "lora_dropout": 0.0, "learning_rate": 1e-2}
    config = tmp_path / "cfg.yaml"
    config.write_text("run: ddp\ntrain:\n  - " + json.dumps({**entry, "batch_size": 2}) + "\n")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG),
           "--main_process_port", str(free_port()), "-m", "harness.app.cli", "train", "--config", str(config)]
    folder = tmp_path / "runs" / "ddp" / "train" / "cand"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    # kill -9 rank 1 once the first checkpoint is on disk: the launcher stops rank 0, nothing is committed
    launcher = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)
    try:
        deadline, killed = time.monotonic() + 120, None
        while time.monotonic() < deadline and launcher.poll() is None and killed is None:
            if any((p / "trainer_state.json").exists() for p in (folder / "_work").glob("checkpoint-*")):
                ranks = _rank_pids(psutil.Process(launcher.pid))
                assert set(ranks) == {0, 1}, ranks
                os.kill(ranks[1], signal.SIGKILL)
                killed = ranks
            time.sleep(0.02)
        assert killed, "no checkpoint appeared, or the run ended first: " + launcher.stderr.read().decode()[-2000:]
        launcher.wait(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode != 0
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert not (folder / "record.json").exists()

    # the same command resumes from the last checkpoint and finishes; rank 0 alone writes the artifacts
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output[-3000:]
    assert output.count("resuming from") == 2  # both ranks resumed from the same checkpoint
    assert output.count("rank 1 of 2: trained; rank 0 writes the checkpoint") == 1
    assert output.count("train [cand]: 60 steps") == 1
    record = load_checkpoint_record(folder)
    assert record.world_size == 2 and record.steps == 60 and record.resumed_from_step >= 10
    assert sorted(p.name for p in folder.iterdir()) == ["log.jsonl", "merged", "model", "record.json"]

    # one process with the same global batch (4) draws the same rows each step: the same loss curve
    single = train_checkpoint(TrainConfig(**{**entry, "batch_size": 4, "threads": 1}), RunStore("single"))
    assert single.world_size == 1
    ddp_losses, single_losses = ([p.loss for p in r.loss_curve] for r in (record, single))
    assert [p.step for p in record.loss_curve] == list(range(1, 61))
    assert ddp_losses[0] != ddp_losses[-1]
    assert ddp_losses == pytest.approx(single_losses, rel=LOSS_TOLERANCE)
