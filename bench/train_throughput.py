"""Training throughput: `nift-gate train` vs a plain TRL script, and padding-free/packing vs padded batches.

All runs in one process, one after another, with the embedded model, LoRA r=8 on q/k/v/o, the same rows,
batch size, max_length, steps and thread count. nift-gate and plain TRL run twice each in ABBA order
after one untimed warm-up run (the first training in a process pays one-off costs), so drift falls on both;
each side is the mean of its two runs. Prints two tables:

1. nift-gate train with its defaults (padding-free batches with per-sequence attention, no gradient
   checkpointing for them on the CPU, no per-token entropy/accuracy) vs a plain TRL SFTTrainer script with
   TRL's defaults (padded, checkpointing on, entropy and token accuracy every step), same NIFT pairs
   (target ratio >= 1.4);
2. padded vs padding-free vs packed batches on ragged data (short instructions mixed with long NIFT
   pairs; target >= 1.3x over padded). Padded and padding-free also run in ABBA order, two runs each.
   Padding-free and packed runs use nift-gate's per-sequence attention (harness/train/attention.py).
   Gradient checkpointing as TRL defaults (on); `--checkpointing off` compares without it.

    .venv/bin/python bench/train_throughput.py [--steps 6] [--batch-size 8] [--checkpointing on|off]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import datasets
import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

from harness.core.models import embedded_model_dir
from harness.core.store import RunStore
from harness.core.threads import choose_threads
from harness.data.build import build_pairs
from harness.data.config import DataConfig
from harness.train.config import TrainConfig
from harness.train.data import load_training_rows
from harness.train.train import train_checkpoint

MAX_LENGTH = 384


def plain_trl(rows: list[dict], steps: int, batch_size: int, out: Path) -> float:
    """What a user would write with TRL alone. Returns tokens/s."""
    folder = embedded_model_dir("smollm2-135m-instruct")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    args = SFTConfig(output_dir=str(out), max_length=MAX_LENGTH, per_device_train_batch_size=batch_size,
                     max_steps=steps, learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to="none",
                     bf16=False, use_cpu=True, completion_only_loss=True, seed=0, data_seed=0)
    trainer = SFTTrainer(model=model, args=args, processing_class=tokenizer,
                         train_dataset=datasets.Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]}
                                                                   for r in rows]),
                         peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                                target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                task_type="CAUSAL_LM"))
    result = trainer.train()
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    return tokens / result.metrics["train_runtime"]


def harness_run(store: RunStore, name: str, data: str, steps: int, batch_size: int, threads: int, **extra) -> float:
    """`nift-gate train` with its defaults except ``extra``; no held-out share, as the plain script has none."""
    config = TrainConfig(name=name, recipe="nift", data=data, max_steps=steps, batch_size=batch_size,
                         max_length=MAX_LENGTH, save_steps=10_000, threads=threads, merge_lora=False, eval_share=0,
                         **extra)
    record = train_checkpoint(config, store, force=True)
    BATCHING[name] = record.batching + (f" ({record.batching_note})" if record.batching_note else "")
    return record.tokens_per_s


BATCHING: dict[str, str] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--checkpointing", choices=["on", "off"], default="on",
                        help="Gradient checkpointing in the batching table (default on, as TRL).")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nift-bench-"))
    store = RunStore("bench", home)
    # NIFT pairs without a teacher (the real second halves): same lengths as the demo's, no generation cost
    build_pairs(DataConfig.model_validate({"variants": [{"name": "raw", "distill": False}]}), store)
    nift_rows = load_training_rows("data:raw", "auto", store).rows
    short_rows = load_training_rows("embedded:sft/instructions.jsonl", "auto", store).rows
    ragged = nift_rows[:60] + short_rows[:100]
    random.Random(0).shuffle(ragged)
    ragged_file = home / "ragged.jsonl"
    ragged_file.write_text("".join(json.dumps({"messages": r["prompt"] + r["completion"]}) + "\n" for r in ragged))

    threads = choose_threads("train")
    steps, batch = args.steps, args.batch_size
    torch.set_num_threads(threads.threads)
    plain_trl(nift_rows, 2, batch, home / "warm-up")
    ours_runs, plain_runs = [], []
    for order in ("ours", "plain", "plain", "ours"):
        if order == "ours":
            ours_runs.append(harness_run(store, "ours", "data:raw", steps, batch, threads.threads))
        else:
            torch.set_num_threads(threads.threads)
            plain_runs.append(plain_trl(nift_rows, steps, batch, home / "plain"))
    ours, plain = sum(ours_runs) / 2, sum(plain_runs) / 2

    checkpointing = {"gradient_checkpointing": args.checkpointing == "on"}
    batching: dict[str, list[float]] = {"padded": [], "padding-free": []}
    for order in ("padded", "padding-free", "padding-free", "padded"):
        batching[order].append(harness_run(store, order, str(ragged_file), steps, batch, threads.threads,
                                           padding_free=order == "padding-free", **checkpointing))
    padded, padding_free = (sum(batching[k]) / 2 for k in ("padded", "padding-free"))
    packed = harness_run(store, "packed", str(ragged_file), steps, batch, threads.threads, packing=True,
                         **checkpointing)

    print(f"\ntraining throughput, SmolLM2-135M-Instruct, LoRA r=8 q/k/v/o, fp32 CPU, {steps} steps x batch {batch}, "
          f"max_length {MAX_LENGTH}, threads={threads.threads} ({threads.how}: {threads.ms_per_matmul} ms/matmul)\n")
    print("| run (NIFT pairs) | tokens/s |\n|---|---:|")
    print(f"| plain TRL SFTTrainer script (runs 2, 3) | {plain:.1f} ({plain_runs[0]:.1f}, {plain_runs[1]:.1f}) |")
    print(f"| nift-gate train, defaults: {BATCHING['ours']} (runs 1, 4) | {ours:.1f} ({ours_runs[0]:.1f}, "
          f"{ours_runs[1]:.1f}) |")
    print(f"\nratio nift-gate / plain TRL: {ours / plain:.3f}  (target >= 1.4)\n")
    print(f"| batching (ragged: 100 short instructions + 60 long NIFT pairs; gradient checkpointing "
          f"{args.checkpointing}) | tokens/s | vs padded |\n|---|---:|---:|")
    print(f"| padded (runs 1, 4) | {padded:.1f} ({batching['padded'][0]:.1f}, {batching['padded'][1]:.1f}) | 1.00x |")
    print(f"| padding-free, position_ids, no pad tokens (runs 2, 3) | {padding_free:.1f} "
          f"({batching['padding-free'][0]:.1f}, {batching['padding-free'][1]:.1f}) | {padding_free / padded:.2f}x |")
    print(f"| packed (TRL bfd, {MAX_LENGTH}-token rows) | {packed:.1f} | {packed / padded:.2f}x |")
    print("\n(target: padding-free or packing >= 1.3x over padded)")


if __name__ == "__main__":
    main()
