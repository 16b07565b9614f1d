"""The data stage's published output: one NIFT dataset variant's record, its pairs, and how to find them.

Training names a dataset of its run as ``data:<variant>``; :func:`dataset_pairs` is the one way another
stage reaches a variant's ``pairs.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.core.errors import InputError
from harness.core.records import Record
from harness.core.store import RECORD_FILE, RunStore, read_record

STAGE = "data"
#: How training names a dataset variant of its own run: ``data:<variant>``.
DATA_PREFIX = "data:"
PAIRS_FILE = "pairs.jsonl"


class NiftPair(BaseModel):
    """One row of ``pairs.jsonl``: a chat pair plus where it came from."""

    id: str = Field(description="'<variant>:<source doc id>'.")
    variant: str
    messages: list[dict[str, str]] = Field(description="[{role: user, content}, {role: assistant, content}], "
                                                       "repeated once per turn.")
    reference: str = Field(description="The document's real response to the first user turn (the no-distillation "
                                       "response); for a one-turn pair, the document's real second part.")
    references: list[str] | None = Field(
        None, exclude_if=lambda refs: refs is None,
        description="Multi-turn pairs only: the real response to every user turn, in order (references[0] is "
                    "`reference`). With the user turns in `messages`, every segment of the document is kept.")
    source: dict[str, Any] = Field(description="doc_id, corpus, cut_char, target_ratio, actual_ratio, snapped_to "
                                               "(of the first cut); multi-turn pairs add turns and cuts (every cut).")
    teacher: dict[str, Any] | None = Field(description="Teacher identity; None when distill is off.")
    generation: dict[str, Any] | None = Field(description="Settings, seed and token counts of the continuation "
                                                          "(summed over turns; multi-turn pairs add turns, one "
                                                          "entry per turn).")

    @property
    def turns(self) -> int:
        """User/assistant turns in this pair."""
        return sum(1 for m in self.messages if m["role"] == "assistant")

    @property
    def user_turns(self) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == "user"]


class JudgeSummary(BaseModel):
    model: str
    labelled: int
    instruction_like: int
    prose: int
    unparseable: int
    share_instruction_like: float | None = Field(description="instruction_like / (instruction_like + prose).")


class NiftDatasetRecord(Record):
    """Summary of one built NIFT dataset variant."""

    kind: Literal["nift_dataset"] = "nift_dataset"
    variant: str
    distill: bool
    turns: int = Field(1, exclude_if=lambda turns: turns == 1,
                       description="User/assistant turns per pair (absent: 1, the form records had before turns).")
    rows: int = Field(description="Pairs written.")
    failed_rows: int = Field(description="Teacher failures recorded in failed.jsonl (policy 'record').")
    counts: dict[str, int] = Field(description="Documents or pairs at each step, and dropped by each filter.")
    instruction_rules: dict[str, int] = Field(description="Documents dropped per instruction-likeness rule.")
    judge: JudgeSummary | None = None
    contamination: dict[str, dict[str, int]] = Field(description="Per prompt set: prompts, too_short, hits.")
    teacher: dict[str, Any] | None
    generation: dict[str, Any] = Field(description="Tokens, seconds, tokens/s, shards, estimated cost.")
    lengths: dict[str, dict[str, float]] = Field(description="Word-count statistics of user and assistant turns.")
    files: dict[str, str] = Field(description="Artifacts in this folder, by role.")
    unread_files: list[str] = Field(default_factory=list, description="Files in the corpus folder that were not "
                                    "read because their type is no corpus format, by path under the folder.")


def load_dataset_record(path: str | Path) -> NiftDatasetRecord:
    return read_record(path, NiftDatasetRecord)


def dataset_pairs(store: RunStore, variant: str) -> tuple[NiftDatasetRecord, Path]:
    """A finished variant's record and the path of its ``pairs.jsonl``."""
    folder = store.stage_dir(STAGE, variant)
    if not (folder / RECORD_FILE).exists():
        raise InputError(f"{DATA_PREFIX}{variant}: no finished NIFT dataset at {folder}; "
                         "run `nift-gate data build` first")
    return load_dataset_record(folder), folder / PAIRS_FILE
