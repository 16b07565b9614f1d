"""The train stage's published output: a checkpoint's record, and how other stages name and load it.

Later stages name a checkpoint of their run as ``train:<name>``; :func:`resolve_base` turns that (or any
other model spec) into a content-hashed model and the input reference their records keep. An audit that must
tell the pairs a checkpoint trained on from the ones held out of it reads ``split.json`` beside the record
(:func:`split_file`, :func:`parse_split`; pinned by the record's ``split.sha256``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.core.errors import InputError
from harness.core.models import CHECKPOINT_PREFIX, ResolvedModel, resolve_model
from harness.core.records import InputRef, Record, sha256_bytes
from harness.core.store import RECORD_FILE, RunStore, read_record
from harness.core.threads import ThreadChoice

STAGE = "train"
#: Beside the record: the pair ids trained on and held out, ``{"train": [...], "eval": [...]}``.
SPLIT_FILE = "split.json"


class LossPoint(BaseModel):
    """The training loss logged at one optimizer step."""

    step: int
    epoch: float
    loss: float
    learning_rate: float | None = None


class EvalPoint(BaseModel):
    """The loss on the held-out pairs at one step (the Trainer's ``eval_loss``; assistant tokens only)."""

    step: int
    epoch: float
    loss: float = Field(description="Mean loss per assistant token over the held-out pairs.")


class DataSplit(BaseModel):
    """Which pairs trained the checkpoint and which were held out; the ids are in ``file``."""

    eval_share: float = Field(description="The configured share held out.")
    seed: int = Field(description="The seed the pair ids were hashed with.")
    train_rows: int = Field(description="Rows trained on (a multi-turn pair gives one row per assistant turn).")
    eval_rows: int = Field(description="Rows held out (never trained on).")
    train_ids_sha256: str = Field(description="sha256 of the sorted, newline-joined ids trained on.")
    eval_ids_sha256: str = Field(description="sha256 of the sorted, newline-joined held-out ids.")
    file: str = Field(SPLIT_FILE, description="The ids themselves, beside the record.")
    sha256: str = Field(description="sha256 of that file's bytes: a reader refuses a file that differs.")


def ids_sha256(ids: list[str]) -> str:
    """Content hash of a set of pair ids, whatever their order."""
    return sha256_bytes("\n".join(sorted(set(ids))).encode())


class CheckpointRecord(Record):
    """A trained checkpoint and everything about how it was made."""

    kind: Literal["checkpoint"] = "checkpoint"
    name: str
    recipe: str
    method: str
    base_model: ResolvedModel = Field(description="What was fine-tuned, pinned by content hash.")
    data_format: str
    rows: int = Field(description="Rows trained on (the held-out ones are counted in eval_rows).")
    truncated_rows: int = Field(description="Rows (trained on or held out) longer than max_length, "
                                            "truncated by the trainer.")
    dropped_rows: int = Field(description="Rows whose prompt alone fills max_length (no assistant token left); "
                                          "TRL drops them.")
    chat_template: str = Field(description="'model' (the base's own) or 'default-chatml' (added by nift-gate).")
    steps: int = Field(description="Optimizer steps completed.")
    epochs: float
    resumed_from_step: int | None = Field(description="Step of the checkpoint this run resumed from, if any.")
    loss_curve: list[LossPoint]
    eval_curve: list[EvalPoint] = Field(default_factory=list, description="Loss on the held-out pairs every "
                                                                         "eval_steps and at the last step; empty "
                                                                         "with eval_share 0.")
    eval_rows: int = Field(0, description="Rows held out of training for the eval loss (not in `rows`).")
    split: DataSplit | None = Field(None, description="The held-out split; None when nothing was held out.")
    kept_step: int | None = Field(None, description="The step whose weights were saved: the last, or with "
                                                    "load_best_model_at_end the evaluated step of lowest eval loss.")
    kept_by: Literal["last", "lowest_eval_loss"] = Field("last", description="Why kept_step was kept.")
    tokens_seen: int = Field(description="Non-padding tokens fed to the model.")
    wall_seconds: float = Field(description="Training time of the process that finished the run.")
    tokens_per_s: float | None = Field(description="Tokens of all ranks in this process's run / its training "
                                                   "time.")
    peak_memory_mb: float = Field(description="Peak RSS of the process (CPU) or peak CUDA allocation (GPU).")
    device: str
    attention: str = Field("sdpa", description="The attention implementation training ran with.")
    batching: Literal["padded", "padding-free", "packed"] = Field(
        "padded", description="How rows were batched: padded to the longest of the batch, flattened into one row "
                              "without padding, or packed into max_length sequences.")
    batching_note: str | None = Field(None, description="Why padding-free batching was off where the default "
                                                        "(padding_free: null) would have used it; None otherwise.")
    world_size: int = Field(1, ge=1, description="Training processes (accelerate launch / torchrun ranks); the "
                                                 "global batch is world_size x batch_size x grad_accum. Rank 0 "
                                                 "wrote every artifact.")
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

    @property
    def training_data(self) -> str:
        """The training data spec as configured: ``data:<variant>`` or a file."""
        return str(self.config.get("data", ""))

    @property
    def kept_eval_loss(self) -> float | None:
        """The held-out loss of the weights that were kept, where that step was evaluated."""
        return next((p.loss for p in self.eval_curve if p.step == self.kept_step), None)


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


def split_file(folder: Path, record: CheckpointRecord) -> Path:
    """Where the ids ``record`` trained on and held out are; refused when it held out nothing."""
    if record.split is None:
        raise InputError(f"{folder / RECORD_FILE}: checkpoint {record.name!r} held out no pairs (eval_share 0)")
    return folder / record.split.file


def parse_split(data: bytes, path: Path, record: CheckpointRecord) -> dict[str, list[str]]:
    """``split.json``'s bytes (read by the caller, who hashes them as an input) as {"train": ids, "eval": ids};
    refused when they are not the bytes ``record`` pins, or malformed. Errors name the file."""
    import json

    if record.split is None or sha256_bytes(data) != record.split.sha256:
        raise InputError(f"{path}: not the split {record.name!r} was trained with (its sha256 is not the record's)")
    try:
        split: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(split, dict) or not all(isinstance(split.get(k), list) for k in ("train", "eval")):
        raise InputError(f"{path}: expected {{\"train\": [ids], \"eval\": [ids]}}")
    return {"train": [str(i) for i in split["train"]], "eval": [str(i) for i in split["eval"]]}
