"""Overhead of `nift-gate bench` over the plain `lm_eval` CLI, and the cost of a cached rerun.

In one run, as subprocesses with the same thread count:
  1. `lm_eval` CLI on nift_if (limit 16, 64 new tokens, chat template) with the embedded model;
  2. `nift-gate bench` on the same task and model (candidate = the model folder, baseline = the embedded
     name: the same weights, so the baseline comes from the cache and the work equals one lm_eval run);
  3. `nift-gate bench` again in a new run folder: both results come from the cache (a second gate run).

    .venv/bin/python bench/bench_overhead.py [--limit 16] [--max-gen-toks 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.core.lmeval import LmEvalSettings, materialise, use_local_nltk_data
from harness.core.models import embedded_model_dir
from harness.core.threads import choose_threads

BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed:\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--max-gen-toks", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    model = embedded_model_dir("smollm2-135m-instruct")
    threads = choose_threads("generate").threads
    home = Path(tempfile.mkdtemp(prefix="nift-bench-overhead-"))
    use_local_nltk_data()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NIFT_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1"}
    tasks_dir, _ = materialise(LmEvalSettings(tasks=["nift_if"], max_gen_toks=args.max_gen_toks), home / "tasks")

    lm_eval_cmd = [str(BIN / "lm_eval"), "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
                   "--device", "cpu", "--include_path", tasks_dir, "--tasks", "nift_if", "--limit", str(args.limit),
                   "--batch_size", str(args.batch_size), "--apply_chat_template", "--log_samples", "--seed", "1234",
                   "--output_path", str(home / "lm_eval_out")]
    config = home / "bench.yaml"
    config.write_text(f"bench:\n  candidate: {model}\n  baselines: [{{name: shipped, model: smollm2-135m-instruct}}]\n"
                      f"  tasks: [nift_if]\n  limit: {args.limit}\n  max_gen_toks: {args.max_gen_toks}\n"
                      f"  batch_size: {args.batch_size}\n  threads: {threads}\n")
    ours_cmd = [str(BIN / "nift-gate"), "bench", "--config", str(config)]

    cli = timed(lm_eval_cmd, env)
    first = timed(ours_cmd + ["--run", "first"], env)
    cached = timed(ours_cmd + ["--run", "second"], env)

    print(f"\nbench overhead: nift_if, limit {args.limit}, max_gen_toks {args.max_gen_toks}, batch {args.batch_size}, "
          f"chat template, SmolLM2-135M-Instruct fp32 CPU, OMP_NUM_THREADS={threads}; wall time incl. start-up\n")
    print("| run | seconds |\n|---|---:|")
    print(f"| lm_eval CLI | {cli:.1f} |")
    print(f"| nift-gate bench (candidate evaluated, baseline = same weights from cache) | {first:.1f} |")
    print(f"| nift-gate bench again, new run folder (both from cache) | {cached:.1f} |")
    print(f"\nspeed ratio lm_eval CLI time / nift-gate time: {cli / first:.2f}  (target >= 0.95)")
    print(f"cached rerun / first run: {cached / first:.1%}  (target <= 10%)")


if __name__ == "__main__":
    main()
