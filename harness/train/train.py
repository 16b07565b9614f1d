"""Train one checkpoint with TRL's SFTTrainer: LoRA by default, loss on the assistant turn only.

Output under ``<run>/train/<name>/``::

    _work/          Trainer checkpoints every save_steps (a killed run resumes from the last one)
    model/          the trained adapter (LoRA) or full weights, tokenizer, Hugging Face model card
    merged/         LoRA merged into the base: plain safetensors that later stages load
    log.jsonl       the Trainer's log history (train and eval loss curves)
    split.json      the pair ids trained on and held out (``eval_share``), when any were held out
    record.json     CheckpointRecord, written last

A seeded share of the pairs (``eval_share``) is held out: never trained on, it gives the eval loss the
Trainer logs every ``eval_steps`` (``eval_strategy="steps"``), the overfitting curve, and the held-out prompts
of the memorization audit. ``load_best_model_at_end`` keeps the checkpoint of lowest eval loss (transformers'
own option), and the record says which step that was.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError, InputError
from harness.core.log import get_logger
from harness.core.models import (
    EMBEDDED_MODELS,
    ResolvedModel,
    load_model,
)
from harness.core.records import InputRef, config_hash, sha256_file
from harness.core.runner import StageRun, stage_entry
from harness.core.store import RunStore
from harness.core.threads import choose_threads
from harness.train.attention import register as register_varlen_attention
from harness.train.config import TrainConfig
from harness.train.data import load_training_rows
from harness.train.record import (
    SPLIT_FILE,
    STAGE,
    CheckpointRecord,
    DataSplit,
    EvalPoint,
    LossPoint,
    ids_sha256,
    resolve_base,
)

log = get_logger("train")
#: The stage's code version, in every fingerprint: bump it when the trained rows change for the same inputs and
#: config (2: LLaMA-Factory alpaca `system`/`history` and ShareGPT row-level `system` become turns; 3: a JSON
#: array's rows are known by position, not by the line they start on; OpenAI's `weight: 0` turns are not trained;
#: 4: a messages row's row-level `system` becomes its first message, no longer dropped).
VERSION = "4"

#: ChatML, used only for a base model without a template when `default_chat_template` is on; recorded.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _weights(folder: Path, root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(folder.rglob("*"))
            if p.suffix in {".safetensors", ".gguf"}}


def _peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1)


def _model_card(record_like: dict[str, Any], base: ResolvedModel, data: InputRef, library: str) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    # the hub's name for the base (a hub model's id without its @revision); a folder or file keeps its spec
    base_id = EMBEDDED_MODELS[base.spec].hub_id if base.spec in EMBEDDED_MODELS else base.hub_id or base.spec
    data_card = ModelCardData(base_model=base_id, datasets=[data.id], library_name=library, license=None,
                              tags=["nift-gate", record_like["recipe"], "trl", "sft"]
                              + (["lora", "peft"] if record_like["method"] == "lora" else []))
    commit = f" (hub commit `{base.hub_commit}`)" if base.hub_commit else ""
    content = f"""---
{data_card.to_yaml()}
---

# {record_like['name']}

Trained by nift-gate (recipe `{record_like['recipe']}`, method `{record_like['method']}`) with TRL's SFTTrainer,
loss on the assistant turn only.

- Base model: `{base.spec}`{commit} (sha256 `{base.sha256[:16]}...`)
- Training data: `{data.id}` (sha256 `{data.sha256[:16]}...`), {record_like['rows']} rows
- Steps: {record_like['steps']}, tokens seen: {record_like['tokens_seen']}

Not released: a model trained here ships only through `nift-gate gate`.
"""
    return str(ModelCard(content))


def _prepare_model(config: TrainConfig, base: ResolvedModel) -> tuple[Any, Any, str]:
    """The base model and tokenizer with the chat template training uses."""
    loaded = load_model(base, allow_pickle=config.allow_pickle, trust_remote_code=config.trust_remote_code)
    model, tokenizer = loaded.model, loaded.tokenizer
    chat_template = "model"
    if not tokenizer.chat_template:
        if not config.default_chat_template:
            raise ConfigError(f"base model {config.base_model!r} has no chat template; set default_chat_template: "
                              "true to train with ChatML (recorded), or use a model that has one")
        tokenizer.chat_template, chat_template = DEFAULT_CHAT_TEMPLATE, "default-chatml"
    return model, tokenizer, chat_template


def _check_lengths(config: TrainConfig, rows: list[dict[str, Any]], tokenizer) -> tuple[list[str], list[str]]:
    """Ids of rows over max_length, and of rows whose prompt alone fills it; refuses data nothing can be
    learnt from."""
    def n_tokens(messages, generation_prompt=False):
        return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                 add_generation_prompt=generation_prompt)["input_ids"])

    over = [r["id"] for r in rows if n_tokens(r["prompt"] + r["completion"]) > config.max_length]
    if over and config.overlength == "reject":
        raise InputError(f"{len(over)} rows are longer than max_length={config.max_length} tokens (first: "
                         f"{', '.join(over[:5])}); raise max_length, or set overlength: truncate")
    # Truncation keeps the start, so a prompt that fills max_length leaves no completion to learn from:
    # TRL drops such rows. Count them, and refuse when nothing would be left.
    no_completion = [r["id"] for r in rows if n_tokens(r["prompt"], True) >= config.max_length]
    if len(no_completion) == len(rows):
        raise InputError(f"every prompt fills max_length={config.max_length} tokens, leaving no assistant tokens "
                         "to train on; raise max_length")
    if config.padding_free is True and not config.packing and over:
        # TRL does not truncate padding-free batches; it needs rows that already fit.
        raise ConfigError(f"padding_free needs every row within max_length={config.max_length} ({len(over)} are "
                          "longer, first: " + ", ".join(over[:3]) + "); raise max_length, or use packing: true")
    return over, no_completion


def _batching(config: TrainConfig, over: list[str]) -> tuple[str, str | None]:
    """How rows are batched ("packed", "padding-free" or "padded"), and why padding-free is off where the
    default (``padding_free: null``) would have used it."""
    if config.packing:
        return "packed", None
    if config.padding_free is not None:
        return ("padding-free" if config.padding_free else "padded"), None
    # Flattened rows stay apart only through the sequence bounds (nift_varlen_sdpa, flash attention) or a
    # block-diagonal mask the model's code builds from position_ids (transformers' masking_utils): the default
    # turns it on only where nift-gate chooses the attention and the model code is transformers' own.
    if over:
        why = (f"{len(over)} rows are longer than max_length={config.max_length} and TRL does not truncate "
               "padding-free batches")
    elif config.attn_implementation is not None:
        why = (f"attn_implementation={config.attn_implementation!r} was chosen; set padding_free: true if it keeps "
               "flattened sequences apart")
    elif config.trust_remote_code:
        why = "the model runs its own code (trust_remote_code), which may not keep flattened sequences apart"
    else:
        return "padding-free", None
    log.info(f"[{config.name}] padded batches: {why}")
    return "padded", why


def _set_attention(config: TrainConfig, model, batching: str) -> None:
    """Per-sequence attention for flattened batches unless the model is on flash attention (which is varlen
    already) or the config names one."""
    attention = config.attn_implementation
    if attention is None and batching != "padded" and not str(model.config._attn_implementation).startswith("flash"):
        attention = register_varlen_attention()
    if attention is not None:
        model.set_attn_implementation(attention)


def split_rows(rows: list[dict[str, Any]], eval_share: float, seed: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(trained, held out): ``eval_share`` of the distinct pair ids, the ones whose sha256 of ``seed`` and the id
    ranks lowest, go to the held-out side with every row carrying them.

    Only the seed and the ids decide it: the rows' order in the file does not, the same seed gives the same
    split, and a larger share holds out a superset of a smaller one. The share is rounded to whole ids, with at
    least one id on each side.
    """
    if eval_share <= 0:
        return list(rows), []
    ids = sorted({r["id"] for r in rows})
    if len(ids) < 2:
        raise InputError(f"eval_share={eval_share} needs at least 2 distinct pair ids to hold some out, got "
                         f"{len(ids)}; set eval_share: 0")
    held_out = min(len(ids) - 1, max(1, round(eval_share * len(ids))))
    ranked = sorted(ids, key=lambda i: (hashlib.sha256(f"{seed}\0{i}".encode()).hexdigest(), i))
    chosen = set(ranked[:held_out])
    return [r for r in rows if r["id"] not in chosen], [r for r in rows if r["id"] in chosen]


def _split_file(config: TrainConfig, trained: list[dict[str, Any]], held_out: list[dict[str, Any]]
                ) -> tuple[str, DataSplit]:
    """``split.json``'s text and the record's summary of it."""
    # one id per pair: the rows of a multi-turn pair share it
    train_ids, eval_ids = (list(dict.fromkeys(r["id"] for r in side)) for side in (trained, held_out))
    text = json.dumps({"eval_share": config.eval_share, "seed": config.seed, "train": train_ids, "eval": eval_ids},
                      ensure_ascii=False, indent=0) + "\n"
    return text, DataSplit(eval_share=config.eval_share, seed=config.seed, train_rows=len(trained),
                           eval_rows=len(held_out), train_ids_sha256=ids_sha256(train_ids),
                           eval_ids_sha256=ids_sha256(eval_ids), file=SPLIT_FILE,
                           sha256=hashlib.sha256(text.encode()).hexdigest())


def _dataset(rows: list[dict[str, Any]]):
    """The rows as TRL reads them: conversational prompt/completion."""
    import datasets

    return datasets.Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])


#: TRL's per-step means of two per-token quantities, computed in its fused LM head (``token_metrics``).
TOKEN_METRICS = ("entropy", "mean_token_accuracy")


#: Vocabulary columns per tile of TRL's LM head on the CPU. TRL's 32,768 is sized for GPUs; here a tile of
#: (labelled positions x 32,768) fp32 is ~80 MB, past glibc's mmap threshold (at most 32 MB), so every tile is a
#: fresh mapping whose pages fault in on first touch, about ten times per step. Measured here on the LM head
#: alone (600 positions, SmolLM2's 49,152 x 576 head, forward and backward): 0.86 s at 32,768, 0.52 s at 8,192.
CPU_HEAD_CHUNK = 8192


@contextlib.contextmanager
def _cpu_lm_head():
    """TRL's fused LM head, run as suits the CPU: it scores only the positions whose label is not -100 (prompt
    tokens are -100 with ``completion_only_loss``), and in tiles of :data:`CPU_HEAD_CHUNK` columns.

    TRL takes that compact path on Triton devices only, because on Neuron a changing number of positions
    changes the tile shapes and recompiles; nothing recompiles on the CPU. The loss and its gradients are the
    same sums over the same labelled positions (tested against TRL's own head). Both choices are module-level
    names of ``trl.trainer.utils`` that the head reads at call time (the kernel reads its own module's
    ``_use_triton``, so its choice is unchanged); they are set for the duration of one forward only. Where TRL
    no longer has those names, its head runs as it is. Measured on NIFT pairs (LoRA r=8, batch 4, 2 threads): 4.1
    s per step, against 5.1 s with TRL's choices and 6.9 s for the plain TRL script, with the same loss."""
    from trl.trainer import utils

    decide, chunk = getattr(utils, "_use_triton", None), getattr(utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", None)
    if decide is None or chunk is None:
        yield
        return
    utils._use_triton, utils._CHUNKED_LOGPROB_CHUNK_SIZE = (lambda device: True), CPU_HEAD_CHUNK
    try:
        yield
    finally:
        utils._use_triton, utils._CHUNKED_LOGPROB_CHUNK_SIZE = decide, chunk


@functools.cache
def _trainer_without_token_metrics():
    """SFTTrainer whose fused LM head computes the per-token log-probabilities and nothing else, and, on the
    CPU, only at the labelled positions, in smaller tiles (:func:`_cpu_lm_head`).

    TRL 1.16 has no switch for them: ``SFTTrainer.__init__`` asks ``add_fused_lm_head`` for each token's
    entropy and whether its label is the argmax, and ``compute_loss`` averages both into the log. Here the
    head is added again with the log-probabilities alone, TRL's own loss code runs unchanged, and ``log``
    drops the two means, which would only average the zero placeholders that stand in for the fields.
    """
    from trl import SFTTrainer
    from trl.trainer.utils import FusedCausalLMOutput, add_fused_lm_head

    class LeanSFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            vars(base).pop("forward", None)  # TRL's head is an instance attribute over the class's forward
            add_fused_lm_head(base, outputs=("log_probs",))
            fused = base.forward

            @functools.wraps(fused)
            def forward(*args, **kwargs):
                with _cpu_lm_head() if base.device.type == "cpu" else contextlib.nullcontext():
                    out = fused(*args, **kwargs)
                if isinstance(out, FusedCausalLMOutput):
                    out.entropy = out.is_top1 = out.log_probs.new_zeros(())  # read by compute_loss, never logged
                return out

            base.forward = forward

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            for metrics in self._metrics.values():
                for key in TOKEN_METRICS:
                    metrics.pop(key, None)
            super().log(logs, start_time)

    return LeanSFTTrainer


def _hardware(config: TrainConfig) -> dict[str, Any]:
    """Where the weights are made and in what precision, as resolved on this machine (``bf16: None`` is on
    where a GPU supports it): in the fingerprint, since a GPU bf16 run and a CPU fp32 run of one config give
    other weights."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = config.bf16 if config.bf16 is not None else bool(cuda and torch.cuda.is_bf16_supported())
    return {"device": "cuda" if cuda else "cpu", "bf16": bf16}


def _trainer(config: TrainConfig, model, tokenizer, rows: list[dict[str, Any]], held_out: list[dict[str, Any]],
             work: Path, callbacks: list | None, batching: str):
    """TRL's SFTTrainer over the rows, evaluating on the held-out rows, checkpointing into ``work``."""
    import torch
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    bf16 = _hardware(config)["bf16"]
    if bf16 and not cuda:
        raise ConfigError("bf16 training on CPU is ~20x slower than fp32 here; set bf16: false")
    checkpointing = config.gradient_checkpointing
    if checkpointing is None and batching != "padded" and not cuda:
        checkpointing = False  # measured here: padding-free runs 10-15% faster without it; padded ones were not
    args = SFTConfig(
        output_dir=str(work), max_length=None if batching == "padding-free" else config.max_length,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, lr_scheduler_type=config.lr_scheduler, warmup_steps=config.warmup_ratio,
        logging_steps=1, save_strategy="steps", save_steps=config.save_steps, save_total_limit=2, report_to="none",
        seed=config.seed, data_seed=config.seed, bf16=bf16, fp16=False, use_cpu=not cuda,
        completion_only_loss=True, packing=config.packing, padding_free=batching == "padding-free",
        dataloader_num_workers=0, disable_tqdm=False,
        # The eval loss on the held-out rows every eval_steps (and at the last step: transformers adds it).
        **({"eval_strategy": "steps", "eval_steps": config.eval_steps or config.save_steps,
            "per_device_eval_batch_size": config.batch_size,
            "load_best_model_at_end": config.load_best_model_at_end, "metric_for_best_model": "eval_loss",
            "greater_is_better": False} if held_out else {"eval_strategy": "no"}),
        # None keeps TRL's default (on) for padded batches. Measured here with LoRA on the CPU: on padded NIFT pairs
        # it was once faster (126 vs 105 tokens/s) and once even.
        **({} if checkpointing is None else {"activation_checkpointing": checkpointing}))
    peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                             target_modules=config.lora_targets, task_type="CAUSAL_LM") if config.method == "lora" else None
    trainer_class = SFTTrainer if config.token_metrics else _trainer_without_token_metrics()
    return trainer_class(model=model, args=args, train_dataset=_dataset(rows),
                      eval_dataset=_dataset(held_out) if held_out else None, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=callbacks)


def _sharded(trainer) -> bool:
    """Whether each rank holds only a shard of the weights (FSDP, DeepSpeed ZeRO): then saving them gathers
    over every rank, and a rank that skipped the save would leave the others waiting for it."""
    return bool(trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled)


def _save_trained(trainer, staged: Path) -> None:
    """The trained weights (the adapter, for LoRA) into ``staged/model``. Called on every rank of a sharded run,
    where ``save_model`` gathers the full weights to rank 0, which alone writes; elsewhere on rank 0 only."""
    if trainer.is_world_process_zero():
        for sub in ("model", "merged"):
            shutil.rmtree(staged / sub, ignore_errors=True)  # a save interrupted before the commit
    if _sharded(trainer):
        trainer.accelerator.wait_for_everyone()  # nobody writes before rank 0 has cleared the folder
        fsdp = getattr(trainer.accelerator.state, "fsdp_plugin", None)
        if fsdp is not None and "FULL_STATE_DICT" not in str(fsdp.state_dict_type):
            # transformers' save_model writes nothing under a sharded state dict (the resume checkpoints keep
            # it): the final weights are gathered whole, to rank 0's CPU.
            fsdp.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(staged / "model"))


def _save_weights(config: TrainConfig, trainer, tokenizer, base: ResolvedModel, staged: Path,
                  card: str) -> str | None:
    """On rank 0, after :func:`_save_trained`: the tokenizer and the model card beside the weights, and the LoRA
    merge into ``staged/merged``; returns the merged folder's name, if there is one."""
    tokenizer.save_pretrained(str(staged / "model"))
    (staged / "model" / "training_args.bin").unlink(missing_ok=True)  # a pickle; the record holds the config
    merged_dir = None
    if config.method == "lora" and config.merge_lora:
        if _sharded(trainer):
            # rank 0 holds a shard only: the merge reloads the base and the adapter it has just written
            from peft import PeftModel

            base_model = load_model(base, allow_pickle=config.allow_pickle,
                                    trust_remote_code=config.trust_remote_code).model
            merged = PeftModel.from_pretrained(base_model, str(staged / "model")).merge_and_unload()
        else:
            merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(staged / "merged"), safe_serialization=True)
        tokenizer.save_pretrained(str(staged / "merged"))
        merged_dir = "merged"
    for sub in ["model"] + ([merged_dir] if merged_dir else []):
        (staged / sub / "README.md").write_text(card, encoding="utf-8")
    return merged_dir


def _parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters; a ZeRO-3 partitioned parameter counts its whole size (``ds_numel``), not
    the empty placeholder this rank holds."""
    def size(p) -> int:
        return int(getattr(p, "ds_numel", p.numel()))

    params = list(model.parameters())
    return sum(size(p) for p in params if p.requires_grad), sum(size(p) for p in params)


@stage_entry
def train_checkpoint(config: TrainConfig, store: RunStore, force: bool = False,
                     callbacks: list | None = None) -> CheckpointRecord | None:
    """Train (or resume, or skip) one checkpoint. Entry point of `nift-gate train`.

    ``callbacks`` are passed to the Trainer (``transformers.TrainerCallback``). Returns None on the
    non-zero ranks of a distributed run, where rank 0 writes the artifacts.
    """
    from transformers.trainer_utils import get_last_checkpoint

    # A checkpoint is expensive and later stages load it: made from other inputs, it is kept unless --force.
    run = StageRun(store, STAGE, config.name, CheckpointRecord, force=force, on_change="refuse",
                   refusal="a different training run (other data, base or config)", version=VERSION)
    # Inputs first: bad data or a missing base fails before anything is written.
    base = run.model(config.base_model, resolve_base, config.allow_pickle)
    training = load_training_rows(config.data, config.data_format, store, run)
    hardware = _hardware(config)
    run.add(InputRef(kind="hardware", id=f"{hardware['device']}, bf16 {'on' if hardware['bf16'] else 'off'}",
                     sha256=config_hash(hardware)))
    if (done := run.cached(config)) is not None:
        return done
    trained, held_out = split_rows(training.rows, config.eval_share, config.seed)

    device = hardware["device"]
    threads = choose_threads("train", config.threads)
    model, tokenizer, chat_template = _prepare_model(config, base)
    over, no_completion = _check_lengths(config, training.rows, tokenizer)
    batching, batching_note = _batching(config, over)
    _set_attention(config, model, batching)
    work = run.folder / "_work"
    trainer = _trainer(config, model, tokenizer, trained, held_out, work, callbacks, batching)
    # The trainer set up the process group; rank 0 clears (--force) and stamps the resume state before any
    # other rank looks for a checkpoint in it.
    with trainer.args.main_process_first(local=False, desc="resume state"):
        if force and trainer.is_world_process_zero() and run.folder.exists():
            run.discard()
        if trainer.is_world_process_zero():
            work = run.stamp_work()  # from here on, a crash leaves resume state, never a record
    last = get_last_checkpoint(str(work)) if work.is_dir() else None
    resumed_from = int(Path(last).name.split("-")[-1]) if last else None
    if last:
        log.info(f"[{config.name}] resuming from {last}")
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    wall = time.perf_counter() - start
    world_size = trainer.accelerator.num_processes
    # Saved under _work first so the record can pin every weight file; the commit moves them into place.
    staged = work / "final"
    # Counted before saving: merging LoRA into the base (merge_and_unload) removes the adapter's parameters.
    trainable, total = _parameter_counts(trainer.model)
    if trainer.is_world_process_zero() or _sharded(trainer):
        _save_trained(trainer, staged)
    if not trainer.is_world_process_zero():
        log.info(f"[{config.name}] rank {trainer.args.process_index} of {world_size}: trained; rank 0 writes the "
                 "checkpoint")
        return None

    history = trainer.state.log_history
    tokens_seen = int(max((h.get("num_tokens", 0) for h in history), default=0))
    tokens_before = int(max((h.get("num_tokens", 0) for h in history if h["step"] <= (resumed_from or 0)), default=0))
    summary = {"name": config.name, "recipe": config.recipe, "method": config.method, "rows": len(trained),
               "steps": trainer.state.global_step, "tokens_seen": tokens_seen}
    card = _model_card(summary, base, training.source, "peft" if config.method == "lora" else "transformers")
    merged_dir = _save_weights(config, trainer, tokenizer, base, staged, card)
    kept_step, kept_by = _kept_step(config, trainer)
    split_text, split = _split_file(config, trained, held_out) if held_out else (None, None)
    record = CheckpointRecord(
        **run.header(), name=config.name, recipe=config.recipe, method=config.method, base_model=base,
        data_format=training.format, rows=len(trained), eval_rows=len(held_out), truncated_rows=len(over),
        dropped_rows=len(no_completion), chat_template=chat_template,
        steps=trainer.state.global_step, epochs=round(trainer.state.epoch or 0.0, 4), resumed_from_step=resumed_from,
        loss_curve=[LossPoint(step=h["step"], epoch=h.get("epoch", 0.0), loss=h["loss"],
                              learning_rate=h.get("learning_rate")) for h in history if "loss" in h],
        eval_curve=[EvalPoint(step=h["step"], epoch=h.get("epoch", 0.0), loss=h["eval_loss"])
                    for h in history if "eval_loss" in h],
        split=split, kept_step=kept_step, kept_by=kept_by,
        tokens_seen=tokens_seen, wall_seconds=round(wall, 2),
        tokens_per_s=round((tokens_seen - tokens_before) / result.metrics["train_runtime"], 2)
        if result.metrics.get("train_runtime") else None,
        peak_memory_mb=_peak_memory_mb(device), device=device,
        attention=str(model.config._attn_implementation), batching=batching, batching_note=batching_note,
        world_size=world_size, threads=threads,
        trainable_parameters=trainable, total_parameters=total,
        weights={**_weights(staged / "model", staged), **(_weights(staged / "merged", staged) if merged_dir else {})},
        model_dir="model", merged_dir=merged_dir)
    files: dict[str, Any] = {sub: functools.partial(os.replace, staged / sub)
                             for sub in ["model"] + ([merged_dir] if merged_dir else [])}
    files["log.jsonl"] = history
    if split_text is not None:
        files[SPLIT_FILE] = split_text
    return run.commit(record, files)  # the finished folder replaces the resume state


def _kept_step(config: TrainConfig, trainer) -> tuple[int, str]:
    """The step whose weights the trainer holds now: the best checkpoint transformers reloaded at the end
    (load_best_model_at_end), else the last step."""
    best = trainer.state.best_model_checkpoint
    if config.load_best_model_at_end and best:
        return int(Path(best).name.split("-")[-1]), "lowest_eval_loss"
    return trainer.state.global_step, "last"


def select_checkpoints(entries: list[TrainConfig], names: list[str] | None,
                       threads: int | None = None) -> list[TrainConfig]:
    """The configured checkpoints named in ``names`` (all when None), in config order."""
    if not entries:
        raise ConfigError("no `train:` entries in the config; see configs/demo.yaml")
    unknown = sorted(set(names or ()) - {t.name for t in entries})
    if unknown:
        raise ConfigError(f"unknown checkpoint(s) {unknown}; configured: {[t.name for t in entries]}")
    selected = [t for t in entries if not names or t.name in names]
    return [t.model_copy(update={"threads": threads}) if threads else t for t in selected]
