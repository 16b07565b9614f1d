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


@pytest.fixture
def launcher(monkeypatch):
    """Stands in for accelerate's launcher: the arguments it was given, in place of the processes it would start."""
    import accelerate.commands.launch

    started = []
    monkeypatch.setattr(accelerate.commands.launch, "launch_command", started.append)
    return started


@pytest.fixture
def train_config(tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("train:\n  - {name: cand, recipe: nift, data: pairs.jsonl}\n")
    return config


def launch_errors(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return err.splitlines()


@pytest.mark.parametrize("text, problem", [
    (b"- a\n", "got list"), (b"a\n", "got str"), (b"", "got nothing"),
    (b"distributed_type: [\n", "not valid YAML"), (b"distributed_type: \xff\n", "not UTF-8"),
    (b"distributed_type: MULTI_GPU\nnum_processes: 2\nnum_gpuz: 2\n", "unknown keys (['num_gpuz'])"),
    (b"distributed_type: NOT_A_TYPE\nnum_processes: 2\n", "'NOT_A_TYPE' is not a valid DistributedType"),
], ids=["list", "scalar", "empty", "not-yaml", "not-utf8", "unknown-key", "unknown-type"])
def test_an_accelerate_config_accelerate_cannot_read_is_one_line_before_any_process(
        launcher, train_config, tmp_path, capsys, text, problem):
    accelerate_config = tmp_path / "accelerate.yaml"
    accelerate_config.write_bytes(text)
    assert main(["launch", str(accelerate_config), "train", "--config", str(train_config)]) == 2
    [line] = launch_errors(capsys)
    assert line.startswith(f"nift-gate: error: {accelerate_config}") and problem in line, line
    assert not launcher


@pytest.mark.parametrize("name, problem", [("missing.yaml", "not found"), (".", "is a folder"),
                                           ("list.json", "got list"), ("broken.json", "not valid JSON")])
def test_a_missing_folder_or_json_accelerate_config_is_one_line(launcher, train_config, tmp_path, capsys, name,
                                                               problem):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    assert main(["launch", str(tmp_path / name), "train", "--config", str(train_config)]) == 2
    [line] = launch_errors(capsys)
    assert problem in line and str(tmp_path) in line, line
    assert not launcher


@pytest.mark.parametrize("flags, problem", [
    (["--num-processes", "-1"], "--num-processes -1"), (["--num-processes", "0"], "--num-processes 0"),
    (["--main-process-port", "99999"], "--main-process-port 99999"),
    (["--main-process-port", "-1"], "--main-process-port -1"),
])
def test_a_process_count_or_port_that_cannot_be_is_refused_naming_the_flag(launcher, train_config, capsys, flags,
                                                                          problem):
    assert main(["launch", *flags, str(CPU_DDP), "train", "--config", str(train_config)]) == 2
    [line] = launch_errors(capsys)
    assert line.startswith(f"nift-gate: error: {problem}:"), line
    assert not launcher


@pytest.mark.parametrize("settings, problem", [
    ("num_processes: 0", "num_processes 0"), ("num_processes: -3", "num_processes -3"),
    ("num_processes: two", "num_processes 'two'"), ("num_processes: -1", "give --num-processes"),
    ("num_processes: 2\nmain_process_port: 99999", "main_process_port 99999"),
    ("num_processes: 2\nmain_process_port: '29500'", "main_process_port '29500'"),
    ("num_processes: 2\nnum_machines: 2\nmain_process_port: 0", "one machine only"),
], ids=["processes-0", "processes-negative", "processes-text", "processes-unset", "port-too-big", "port-text",
        "port-0-on-2-machines"])
def test_a_process_count_or_port_that_cannot_be_is_refused_naming_the_configs_field(
        launcher, train_config, tmp_path, capsys, settings, problem):
    accelerate_config = tmp_path / "accelerate.yaml"
    accelerate_config.write_text(f"distributed_type: MULTI_GPU\nuse_cpu: true\n{settings}\n")
    assert main(["launch", str(accelerate_config), "train", "--config", str(train_config)]) == 2
    [line] = launch_errors(capsys)
    assert line.startswith(f"nift-gate: error: {accelerate_config}:") and problem in line, line
    assert not launcher


def test_the_flags_reach_the_launcher_and_port_0_asks_for_a_free_one(launcher, train_config):
    assert main(["launch", "--num-processes", "3", "--main-process-port", "0", str(CPU_DDP), "train",
                 "--config", str(train_config)]) == 0
    [args] = launcher
    assert (args.num_processes, args.main_process_port) == (3, 0)
    assert args.training_script_args == ["train", "--config", str(train_config)]


def test_a_config_with_no_train_entries_stops_before_any_process_starts(launcher, tmp_path, capsys):
    config = tmp_path / "cfg.yaml"
    config.write_text("run: nothing-to-train\n")
    assert main(["launch", str(CPU_DDP), "train", "--config", str(config)]) == 2
    assert launch_errors(capsys) == ["nift-gate: error: no `train:` entries in the config; see configs/demo.yaml"]
    assert not launcher


def test_an_unknown_checkpoint_name_stops_before_any_process_starts(launcher, train_config, capsys):
    assert main(["launch", str(CPU_DDP), "train", "--config", str(train_config), "--name", "nope"]) == 2
    [line] = launch_errors(capsys)
    assert "unknown checkpoint(s) ['nope']" in line
    assert not launcher
