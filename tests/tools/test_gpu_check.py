"""tools/gpu_check.sh on a machine without a GPU, and the parts of the GPU recipe that can be checked without one:
its configs, the overrides it sets, its record checks, and the early refusals of the paths it drives."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
PATH_TITLES = ("setup: GPU venv", "train: bf16 LoRA", "teacher: vLLM", "bench: lm-eval vLLM", "judge: pairwise")


def _driver():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gpu_check = _driver()


def _run(tmp_path: Path, *args: str, path_prefix: Path | None = None, timeout: float = 60):
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env['PATH']}"
    argv = ["bash", str(SCRIPT), "--home", str(tmp_path / "home"), "--venv", str(tmp_path / "venv"), *args]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, check=False)
    return done, time.monotonic() - start


def _fake_nvidia_smi(folder: Path, body: str) -> Path:
    folder.mkdir()
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return folder


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="nvidia-smi is here: this checks the no-GPU table")
def test_without_a_gpu_every_path_is_skipped_nothing_is_installed_and_the_exit_status_is_3(tmp_path):
    done, _ = _run(tmp_path, "--json", str(tmp_path / "rows.json"))
    assert done.returncode == gpu_check.EXIT_NO_GPU == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "nift-gate GPU check: no CUDA device (nvidia-smi not found)"
    table = [line for line in lines if line.startswith(PATH_TITLES)]
    assert len(table) == 5
    assert all("SKIP" in line and line.endswith("no CUDA device (nvidia-smi not found)") for line in table)
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [(r["path"], r["status"]) for r in rows] == [
        ("setup", "SKIP"), ("train", "SKIP"), ("teacher", "SKIP"), ("lmeval", "SKIP"), ("judge", "SKIP")]
    assert not (tmp_path / "venv").exists() and not (tmp_path / "home").exists()


@pytest.mark.parametrize("body, reason", [
    ("exec sleep 30", "no CUDA device (nvidia-smi did not answer within 1 s)"),
    ("echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\" >&2; exit 9",
     "no CUDA device (nvidia-smi: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.)"),
])
def test_a_hung_or_failing_nvidia_smi_is_no_gpu_said_within_seconds(tmp_path, body, reason):
    bin_dir = _fake_nvidia_smi(tmp_path / "bin", body)
    done, seconds = _run(tmp_path, "--probe-timeout-s", "1", "--format", "markdown", path_prefix=bin_dir)
    assert done.returncode == 3, done.stderr
    assert seconds < 20
    assert done.stdout.splitlines()[0] == f"nift-gate GPU check: {reason}"
    assert f"| train: bf16 LoRA (TRL) | SKIP | - | - | {reason} |" in done.stdout


def test_a_gpu_venv_without_vllm_fails_setup_and_skips_the_rest_with_exit_1(tmp_path):
    # A device is listed, but the venv given (the CPU one: no vllm) cannot run the paths; --no-install: no pip.
    bin_dir = _fake_nvidia_smi(tmp_path / "bin", 'echo "NVIDIA H200, 143771 MiB"')
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", str(SCRIPT), "--home", str(tmp_path / "home"), "--venv", sys.prefix,
                           "--no-install", "--only", "train"], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == gpu_check.EXIT_FAIL == 1, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "nift-gate GPU check: NVIDIA H200, 143771 MiB"
    setup = next(line for line in out if line.startswith("setup:"))
    assert "FAIL" in setup and "No module named 'vllm'" in setup
    train = next(line for line in out if line.startswith("train:"))
    assert "SKIP" in train and train.endswith("needs the setup path, which failed")
    assert not any(line.startswith(("teacher:", "bench:", "judge:")) for line in out)  # --only train
    assert not (Path(sys.prefix) / ".nift-gpu-setup").exists()


def test_a_gpu_venv_whose_torch_sees_no_device_fails_setup_naming_its_versions(tmp_path):
    # nvidia-smi lists a device, vLLM imports (a stand-in module), but the venv's torch is a CPU build.
    bin_dir = _fake_nvidia_smi(tmp_path / "bin", 'echo "NVIDIA H200, 143771 MiB"')
    (tmp_path / "standin").mkdir()
    (tmp_path / "standin" / "vllm.py").write_text("__version__ = '0.33.0'\n")
    (tmp_path / "standin" / "transformers.py").write_text("__version__ = '5.20.2'\n")  # its import costs seconds
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(tmp_path / "standin"))
    done = subprocess.run(["bash", str(SCRIPT), "--home", str(tmp_path / "home"), "--venv", sys.prefix,
                           "--no-install", "--json", str(tmp_path / "rows.json")], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert done.returncode == 1, done.stderr
    setup = json.loads((tmp_path / "rows.json").read_text())["rows"][0]
    import torch

    assert setup["status"] == "FAIL"
    assert setup["note"].startswith(f"torch {torch.__version__} (CUDA None), vllm 0.33.0, transformers 5.20.2: ")
    assert "torch sees no CUDA device" in setup["note"]


def test_bad_arguments_exit_2(tmp_path):
    done, _ = _run(tmp_path, "--only", "nonsense")
    assert done.returncode == 2
    assert "invalid choice: 'nonsense'" in done.stderr


def test_every_config_loads_with_the_overrides_the_script_sets(tmp_path):
    from harness.app.config import load_pipeline_config

    model = str(tmp_path / "models" / "a: model #1")  # the value must survive YAML parsing as one string
    steps = {s.key: s for s in gpu_check.plan(model, "train:gpu-lora", tmp_path / "home")}
    assert list(steps) == list(gpu_check.PATHS)
    configs = {}
    for key, step in steps.items():
        argv = step.argv
        assert argv[argv.index("--home") + 1] == str(tmp_path / "home") and "--force" in argv
        assignments = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        configs[key] = load_pipeline_config(argv[argv.index("--config") + 1], assignments)
    assert all(c.run == gpu_check.RUN for c in configs.values())
    (train,) = configs["train"].train
    assert (train.name, train.bf16, train.method, train.base_model) == (gpu_check.CHECKPOINT, True, "lora", model)
    teacher = configs["teacher"].data.teacher
    assert (teacher.backend, teacher.model) == ("vllm", model)
    lmeval = configs["lmeval"].bench
    assert (lmeval.backend, lmeval.dtype, lmeval.candidate) == ("vllm", "bfloat16", "train:gpu-lora")
    assert [(b.name, b.model) for b in lmeval.baselines] == [("base", model)]
    judge = configs["judge"].bench
    assert judge.pairwise.enabled and judge.mt_bench.enabled
    assert (judge.pairwise.judge.backend, judge.pairwise.judge.model, judge.pairwise.judge.cache) == ("vllm", model,
                                                                                                       False)
    assert judge.grading_judge() == judge.pairwise.judge  # one engine for both judge tasks


def test_the_constraints_pin_the_versions_the_script_names():
    pins = dict(line.split("==") for line in gpu_check.CONSTRAINTS.read_text().splitlines()
                if line and not line.startswith("#"))
    assert pins["vllm"] == gpu_check.VLLM_VERSION and pins["torch"] == gpu_check.TORCH_VERSION


def test_the_model_is_the_one_named_else_a_cached_small_model_else_the_embedded_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("NIFT_GPU_MODEL", raising=False)
    assert gpu_check.find_model(None)[0] == gpu_check.EMBEDDED_MODEL
    repo = tmp_path / "hub" / "models--HuggingFaceTB--SmolLM2-360M-Instruct"
    incomplete = repo / "snapshots" / "aaa"
    incomplete.mkdir(parents=True)
    (incomplete / "config.json").write_text("{}")  # no weights, no tokenizer: not usable
    assert gpu_check.find_model(None)[0] == gpu_check.EMBEDDED_MODEL
    snapshot = repo / "snapshots" / "bbb"
    snapshot.mkdir()
    for name in ("config.json", "tokenizer_config.json", "model.safetensors"):
        (snapshot / name).write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("bbb\n")
    found = "HuggingFaceTB/SmolLM2-360M-Instruct in the Hugging Face cache"
    assert gpu_check.find_model(None) == (str(snapshot), found)
    monkeypatch.setenv("NIFT_GPU_MODEL", "/models/mine")
    assert gpu_check.find_model(None) == ("/models/mine", "$NIFT_GPU_MODEL")
    assert gpu_check.find_model("/models/given") == ("/models/given", "--model")


@pytest.mark.slow
def test_the_paths_commands_run_through_the_real_cli_and_fail_in_one_line_without_vllm(tmp_path, tiny_model):
    # What runs on a GPU machine, run here on the CPU venv: each command is accepted as the script builds it and
    # gets as far as vLLM, whose absence is the one-line reason of its FAIL row.
    rows = gpu_check.run_paths(["teacher", "lmeval"], str(tiny_model), Path(sys.prefix), tmp_path / "home", 300)
    assert [(r.path, r.status) for r in rows] == [("teacher", "FAIL"), ("lmeval", "FAIL")]
    for row, field in zip(rows, ("teacher.backend=vllm", "bench.backend=vllm")):
        assert row.note.startswith(f"exit 2: nift-gate: error: {field} needs vLLM"), row.note
    assert all(Path(r.log).is_file() for r in rows)


def _write_record(home: Path, stage: str, name: str, record: dict) -> None:
    folder = home / gpu_check.RUN / stage / name
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(record))


def test_a_path_that_ran_but_not_on_the_gpu_or_not_through_vllm_is_a_failure(tmp_path):
    train = {"device": "cpu", "config": {"bf16": False}, "steps": 20, "tokens_seen": 9000, "tokens_per_s": 80.0}
    _write_record(tmp_path, "train", gpu_check.CHECKPOINT, train)
    with pytest.raises(gpu_check.CheckFailed, match="trained on 'cpu', not cuda"):
        gpu_check._read_train(tmp_path, 10.0)
    _write_record(tmp_path, "data", "nift", {"teacher": {"backend": "transformers"}, "rows": 48, "failed_rows": 0})
    with pytest.raises(gpu_check.CheckFailed, match="backend 'transformers', not vllm"):
        gpu_check._read_teacher(tmp_path, 10.0)
    judges = [{"task": "pairwise", "backend": "vllm", "judgements": 48, "unparseable": 3,
               "usage": {"calls": 48, "failed": 2, "completion_tokens": 300}}]
    _write_record(tmp_path, "bench", "gpu-lora", {"judges": judges})
    with pytest.raises(gpu_check.CheckFailed, match="no mt_bench judge"):
        gpu_check._read_judge(tmp_path, 10.0, "train:gpu-lora")


def test_a_record_that_shows_the_gpu_path_gives_its_throughput(tmp_path):
    train = {"device": "cuda", "config": {"bf16": True}, "steps": 20, "tokens_seen": 60000, "tokens_per_s": 12345.6,
             "peak_memory_mb": 2100.0, "attention": "sdpa"}
    _write_record(tmp_path, "train", gpu_check.CHECKPOINT, train)
    assert gpu_check._read_train(tmp_path, 30.0) == (
        "12346 tokens/s", "20 steps, 60000 tokens, peak 2100.0 MB, attention sdpa")


def test_a_failed_command_is_summed_up_by_its_error_line():
    log = "$ nift-gate train\nloading...\nerror: bf16 training on CPU is ~20x slower than fp32 here; set bf16: false\n"
    assert gpu_check.failure_line(log) == "error: bf16 training on CPU is ~20x slower than fp32 here; set bf16: false"
    trace = ("(EngineCore pid=7) ERROR 12-02 10:00:01 [core.py:700] EngineCore failed to start.\n"
             "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
             "ValueError: Free memory on device cuda:0 (10.2/139.8 GiB) on startup is less than desired GPU memory "
             "utilization (0.92, 128.6 GiB).\n")
    assert gpu_check.failure_line(trace).startswith("ValueError: Free memory on device cuda:0")


def test_lm_evals_vllm_backend_refuses_a_gguf_file_and_a_missing_vllm_in_one_line(tmp_path):
    from harness.core.errors import ConfigError
    from harness.core.lmeval import LmEvalSettings, load_lm
    from harness.core.models import ResolvedModel

    gguf = ResolvedModel(spec=str(tmp_path / "m.gguf"), source="gguf", path=str(tmp_path), gguf_file="m.gguf",
                         sha256="0" * 64)
    with pytest.raises(ConfigError, match="cannot load the GGUF file m.gguf"):
        load_lm(gguf, LmEvalSettings(backend="vllm"))
    if importlib.util.find_spec("vllm") is None:  # the CPU venv: one line saying what is missing, no traceback
        folder = ResolvedModel(spec=str(tmp_path), source="local", path=str(tmp_path), sha256="0" * 64)
        with pytest.raises(ConfigError, match=r"bench.backend=vllm needs vLLM \(pip install vllm"):
            load_lm(folder, LmEvalSettings(backend="vllm"))


def test_an_lm_evals_vllm_engine_is_shut_down_after_its_model_is_evaluated(tmp_path, monkeypatch):
    # vLLM reserves most of the device per engine: the candidate's must be gone before a baseline's starts.
    from harness.core import lmeval
    from harness.core.models import ResolvedModel

    class EngineCore:
        stopped = 0

        def shutdown(self):
            self.stopped += 1

    class FakeVLLM:  # the shape of lm-eval's VLLM on vLLM 0.33: .model is vllm.LLM
        def __init__(self):
            self.model = type("LLM", (), {})()
            self.model.llm_engine = type("LLMEngine", (), {})()
            self.model.llm_engine.engine_core = EngineCore()

    made, seen_running = [], []

    def load(resolved, settings):
        made.append(FakeVLLM())
        return made[-1]

    def evaluate(lm, settings, manager):
        seen_running.append(lm.model.llm_engine.engine_core.stopped == 0)
        return {}, {}, 1.0

    monkeypatch.setattr(lmeval, "load_lm", load)
    monkeypatch.setattr(lmeval, "run_lm_eval", evaluate)
    resolved = ResolvedModel(spec="m", source="local", path=str(tmp_path), sha256="0" * 64)
    settings = lmeval.LmEvalSettings(backend="vllm", threads=1)
    lmeval.evaluate_model("m", resolved, settings, lambda: None, [], tmp_path / "home", "run-1")
    assert seen_running == [True] and made[0].model.llm_engine.engine_core.stopped == 1
    lmeval.shutdown_engine(object())  # an HFLM or a scripted model: nothing to stop
