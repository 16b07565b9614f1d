"""`nift-gate launch`: a stage on several processes, exiting with the failed rank's status, not the launcher's 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.app import launch as launch_module
from harness.app.cli import main
from tests.support.devtools import free_port

CPU_DDP = Path(__file__).parents[3] / "configs" / "accelerate" / "cpu-ddp.yaml"


@pytest.fixture
def no_launcher(monkeypatch):
    """Fails the test if a process would be launched."""
    def refuse(*args, **kwargs):
        raise AssertionError("a launch started")

    monkeypatch.setattr(launch_module, "launch", refuse)


def test_a_bad_config_stops_before_any_process_starts(no_launcher, tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text("train:\n  - {name: cand, recipe: nift, data: pairs.jsonl}\n")
    assert main(["launch", str(CPU_DDP), "train", "--config", str(config), "--set", "train.0.max_stepz=3"]) == 2
    assert "max_stepz" in capsys.readouterr().err


def test_only_the_commands_that_shard_are_launched(no_launcher, capsys):
    assert main(["launch", str(CPU_DDP), "gate"]) == 2
    assert "give one of: train, data build, bench" in capsys.readouterr().err
    assert main(["launch", str(CPU_DDP)]) == 2


def test_a_signal_reads_as_a_shell_reports_it():
    assert launch_module.exit_status(-9) == 137
    assert launch_module.exit_status(2) == 2


@pytest.mark.slow
def test_bad_input_on_the_ranks_exits_2_with_one_line_not_the_launchers_1(tiny_model, tmp_path):
    missing = tmp_path / "no-such-pairs.jsonl"
    config = tmp_path / "cfg.yaml"
    config.write_text("run: launched\ntrain:\n  - " + json.dumps(
        {"name": "cand", "recipe": "nift", "base_model": str(tiny_model), "data": str(missing)}) + "\n")
    done = subprocess.run([sys.executable, "-m", "harness.app.cli", "launch", "--main-process-port", str(free_port()),
                           str(CPU_DDP), "train", "--config", str(config), "--home", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("nift-gate: error:")]
    assert errors and str(missing) in errors[0], done.stderr[-3000:]
    assert not (tmp_path / "runs" / "launched" / "train" / "cand" / "record.json").exists()
