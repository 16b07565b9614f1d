"""Configuration of `nift-gate train`: one entry per checkpoint to train (a NIFT candidate, SFT baselines)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from harness.core.config import Section
from harness.core.store import folder_name_problem


class TrainConfig(Section):
    name: str = Field(description="Checkpoint name: its folder under train/ and its id in later stages.")
    recipe: Literal["nift", "sft", "hybrid"] = Field(
        description="nift: a base model on NIFT pairs. sft: the baseline, the same base on instruction data. "
                    "hybrid: NIFT pairs on top of an already SFT'd model.")
    base_model: str = Field("smollm2-135m-instruct", description="Model to fine-tune: embedded name, folder, .gguf, "
                                                                 "hub id, or train:<name> for an earlier checkpoint.")
    data: str = Field(description="Training data: data:<variant> (a NIFT dataset of this run), or a JSONL/JSON file "
                                  "of NIFT pairs, messages, Alpaca or ShareGPT rows ('embedded:' for shipped files).")
    data_format: Literal["auto", "messages", "alpaca", "sharegpt"] = Field(
        "auto", description="Row format of a data file; auto = detected from the first row's fields.")
    method: Literal["lora", "full"] = Field("lora", description="LoRA adapters (the paper) or full fine-tuning.")
    lora_r: int = Field(8, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                    description="Module names that get adapters.")
    merge_lora: bool = Field(True, description="Also save the adapters merged into the base (what later stages load).")
    max_length: int = Field(512, ge=16, description="Longest training sequence in tokens (chat template included).")
    overlength: Literal["truncate", "reject"] = Field(
        "truncate", description="Rows longer than max_length: truncated and counted, or the run is refused.")
    epochs: float = Field(1.0, gt=0, description="Passes over the data (ignored when max_steps > 0).")
    max_steps: int = Field(-1, description="Optimizer steps; -1 = as many as `epochs` needs.")
    learning_rate: float = Field(2e-4, gt=0, description="Peak learning rate (2e-4 suits LoRA; use ~2e-5 for full).")
    batch_size: int = Field(4, ge=1, description="Sequences per device per step.")
    grad_accum: int = Field(1, ge=1, description="Gradient accumulation steps.")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="Share of steps spent warming up the learning rate.")
    lr_scheduler: str = Field("linear", description="transformers scheduler name.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds data order, LoRA init, dropout and the held-out split.")
    save_steps: int = Field(10, ge=1, description="Checkpoint every N steps (what a killed run resumes from).")
    eval_share: float = Field(0.1, ge=0, lt=1, description="Share of the pairs held out of training (never trained "
                                                           "on) to log an eval loss on, chosen by hashing each "
                                                           "pair id with `seed` (the file's order does not "
                                                           "matter); 0 = train on every pair, no eval loss. The "
                                                           "held-out ids are kept in split.json beside the record.")
    eval_steps: int | None = Field(None, ge=1, description="Log the eval loss every N steps (and at the last); "
                                                          "None = every save_steps.")
    load_best_model_at_end: bool = Field(False, description="Keep the weights of the checkpoint with the lowest "
                                                            "eval loss instead of the last (recorded as kept_step); "
                                                            "needs eval_share > 0 and eval_steps = save_steps, so "
                                                            "every evaluated step is a saved one.")
    padding_free: bool | None = Field(None, description="Flatten each batch without padding (position_ids and "
                                                         "sequence bounds carry the boundaries); 1.4-1.5x faster on "
                                                         "ragged data here, identical loss. None = on, except where "
                                                         "it cannot be trusted or done: rows over max_length (TRL "
                                                         "does not truncate such batches), an attention chosen in "
                                                         "attn_implementation, or remote model code; the record's "
                                                         "batching_note says why it was off.")
    packing: bool = Field(False, description="Pack several rows per sequence of max_length (TRL best-fit decreasing).")
    attn_implementation: str | None = Field(None, description="transformers attention for training; None = "
                                                                "nift_varlen_sdpa (per-sequence causal SDPA, see "
                                                                "harness/train/attention.py) with padding_free or "
                                                                "packing unless the model uses flash attention, "
                                                                "else the model's own.")
    bf16: bool | None = Field(None, description="bf16 mixed precision; None = on where a GPU supports it (never on "
                                                "CPU, where it is ~20x slower).")
    gradient_checkpointing: bool | None = Field(None, description="Recompute activations instead of keeping them; "
                                                                 "None = TRL's default (on), except padding-free or "
                                                                 "packed batches on the CPU, which were 10-15% faster "
                                                                 "without it (on padded batches it was as fast or "
                                                                 "faster with it).")
    token_metrics: bool = Field(False, description="Also compute and log TRL's per-token entropy and "
                                                   "mean_token_accuracy at every step (log.jsonl); off, the LM head "
                                                   "computes the log-probabilities the loss needs and nothing else.")
    threads: int | None = Field(None, ge=1, description="CPU threads; default: chosen by measurement.")
    default_chat_template: bool = Field(False, description="A base model without a chat template gets ChatML "
                                                           "(recorded); otherwise such a model is refused.")
    allow_pickle: bool = Field(False, description="Allow pickle (*.bin) weights for the base model.")
    trust_remote_code: bool = Field(False, description="Run model code shipped with the base model.")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if problem := folder_name_problem(self.name):
            raise ValueError(f"train name {self.name!r} {problem}")
        if self.load_best_model_at_end and self.eval_share == 0:
            raise ValueError("load_best_model_at_end needs held-out pairs to judge by: set eval_share > 0")
        if self.load_best_model_at_end and self.eval_steps not in (None, self.save_steps):
            # transformers picks the best among *saved* steps: an evaluated step that was not saved can be the
            # lowest and still not be kept, so every evaluation must also be a checkpoint.
            raise ValueError(f"load_best_model_at_end needs eval_steps = save_steps ({self.save_steps}), not "
                             f"{self.eval_steps}: only a saved step can be kept")
        return self
