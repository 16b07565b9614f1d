"""The train stage's published output: a checkpoint's record, and how other stages name and load it.

Later stages name a checkpoint of their run as ``train:<name>``; :func:`resolve_base` turns that (or any
other model spec) into a content-hashed model and the input reference their records keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from harness.core.errors import InputError
from harness.core.models import CHECKPOINT_PREFIX, ResolvedModel, resolve_model
from harness.core.records import InputRef, Record
from harness.core.store import RECORD_FILE, RunStore, read_record
from harness.core.threads import ThreadChoice

STAGE = "train"


class LossPoint(BaseModel):
    step: int
    epoch: float
    loss: float
    learning_rate: float | None = None


class CheckpointRecord(Record):
    """A trained checkpoint and everything about how it was made."""

    kind: Literal["checkpoint"] = "checkpoint"
    name: str
    recipe: str
    method: str
    base_model: ResolvedModel = Field(description="What was fine-tuned, pinned by content hash.")
    data_format: str
    rows: int = Field(description="Training rows.")
    truncated_rows: int = Field(description="Rows longer than max_length, truncated by the trainer.")
    dropped_rows: int = Field(description="Rows whose prompt alone fills max_length (no assistant token left); "
                                          "TRL drops them.")
    chat_template: str = Field(description="'model' (the base's own) or 'default-chatml' (added by nift-gate).")
    steps: int = Field(description="Optimizer steps completed.")
    epochs: float
    resumed_from_step: int | None = Field(description="Step of the checkpoint this run resumed from, if any.")
    loss_curve: list[LossPoint]
    tokens_seen: int = Field(description="Non-padding tokens fed to the model.")
    wall_seconds: float = Field(description="Training time of the process that finished the run.")
    tokens_per_s: float | None = Field(description="Tokens of this process / its training time.")
    peak_memory_mb: float = Field(description="Peak RSS of the process (CPU) or peak CUDA allocation (GPU).")
    device: str
    attention: str = Field("sdpa", description="The attention implementation training ran with.")
    threads: ThreadChoice
    trainable_parameters: int
    total_parameters: int
    weights: dict[str, str] = Field(description="sha256 of every weight file, by path relative to the folder.")
    model_dir: str = Field(description="Adapter (LoRA) or full weights, relative to the folder.")
    merged_dir: str | None = Field(description="Full merged weights for evaluation, relative to the folder.")

    @property
    def eval_dir(self) -> str:
        """The folder later stages load: merged weights when there are any, else the full model."""
        return self.merged_dir or self.model_dir


def resolve_base(spec: str, store: RunStore, allow_pickle: bool = False) -> tuple[ResolvedModel, InputRef]:
    """A model spec, or ``train:<name>`` for a finished checkpoint of this run (its merged weights)."""
    if spec.startswith(CHECKPOINT_PREFIX):
        name = spec[len(CHECKPOINT_PREFIX):]
        folder = store.stage_dir(STAGE, name)
        if not (folder / RECORD_FILE).exists():
            raise InputError(f"{spec}: no finished checkpoint at {folder}; train it first")
        record = read_record(folder, CheckpointRecord)
        if record.method == "lora" and not record.merged_dir:
            raise InputError(f"{spec}: a LoRA checkpoint without merged weights cannot be a base (set merge_lora)")
        resolved = resolve_model(str(folder / record.eval_dir))
        return resolved, InputRef(kind="checkpoint", id=record.record_id, sha256=resolved.sha256)
    resolved = resolve_model(spec, allow_pickle=allow_pickle)
    return resolved, InputRef(kind="model", id=spec, sha256=resolved.sha256)


def load_checkpoint_record(path: str | Path) -> CheckpointRecord:
    return read_record(path, CheckpointRecord)

