"""Training rows for TRL: every source becomes conversational prompt/completion pairs.

Prompt/completion data gets TRL's completion-only loss without a `{% generation %}` chat template
(SmolLM2's stock template has none), so the loss falls on the assistant turn only for every model.

A conversation of several assistant turns (a multi-turn NIFT pair, a ShareGPT or messages row) becomes one
row per assistant turn: the prompt is the conversation before that turn, the completion is the turn. So
every assistant turn is trained on, every user turn is masked, and the model sees at each turn the context
it would see at inference. TRL's other way, `assistant_only_loss` on `messages` rows, needs those
`{% generation %}` markers, and TRL 1.x has no training template for SmolLM2's. The cost is the repeated
context: a conversation's earlier turns are encoded once per later turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.assets import resolve_asset
from harness.core.errors import InputError
from harness.core.records import InputRef, sha256_file
from harness.core.store import RunStore, decode_utf8, numbered_jsonl, read_bytes
from harness.data.record import DATA_PREFIX, dataset_pairs

if TYPE_CHECKING:
    from harness.core.runner import StageRun


@dataclass
class TrainingRows:
    #: {"id", "turn", "prompt": [messages], "completion": [assistant message]}; the rows of one conversation
    #: share its id (so a split by id keeps a conversation whole), last turn first; ``turn`` counts from 1.
    rows: list[dict[str, Any]]
    source: InputRef
    format: str
    conversations: int = 0  # source rows; equal to len(rows) when every conversation has one assistant turn


def _read_rows(path: Path, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs from the bytes of a JSONL file or a JSON array file."""
    if path.suffix == ".json":
        try:
            rows = json.loads(decode_utf8(data, path))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(rows, list):
            raise InputError(f"{path}: expected a JSON array of rows")
        return list(enumerate(rows, 1))
    return list(numbered_jsonl(data, path))


def detect_format(row: dict[str, Any], where: str = "training data") -> str:
    """The format of a first row: messages, sharegpt or alpaca. ``where`` (file:line) starts the error."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object per row, got {type(row).__name__}")
    if "messages" in row:
        return "messages"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    raise InputError(f"{where}: cannot tell the data format from fields {sorted(row)}; expected messages, "
                     "conversations, or instruction/input/output (set train[].data_format)")


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}


def to_messages(row: dict[str, Any], fmt: str) -> list[dict[str, str]]:
    if fmt == "messages":
        return [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if fmt == "alpaca":
        user = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
        return [{"role": "user", "content": user}, {"role": "assistant", "content": row.get("output") or ""}]
    return [{"role": _SHAREGPT_ROLES.get(turn.get("from", ""), turn.get("from", "")), "content": turn.get("value", "")}
            for turn in row["conversations"]]


def open_training_data(spec: str, store: RunStore, run: StageRun | None = None) -> tuple[Path, InputRef]:
    """The file ``spec`` names (``data:<variant>``: that dataset's pairs) and its ref, hashed by content; an
    input of ``run`` when one is given."""
    if spec.startswith(DATA_PREFIX):
        record, path = dataset_pairs(store, spec[len(DATA_PREFIX):])
        kind, name = "nift_dataset", record.record_id
    else:
        path, kind, name = resolve_asset(spec), "training_data", spec
    if not path.exists():
        raise InputError(f"{path}: training data not found")
    if run is None:
        return path, InputRef(kind=kind, id=name, sha256=sha256_file(path))
    path = run.file(path, kind=kind, id=name)
    return path, run.inputs[-1]


def load_training_rows(spec: str, data_format: str, store: RunStore, run: StageRun | None = None) -> TrainingRows:
    """Read ``spec`` (``data:<variant>`` or a file) into prompt/completion rows; errors name file and line.

    ``run``: the training run whose input the file becomes (hashed by content before it is read)."""
    path, source = open_training_data(spec, store, run)
    numbered = _read_rows(path, run.read(path) if run is not None else read_bytes(path, "training data"))
    if not numbered:
        raise InputError(f"{path}: no training rows")
    fmt = detect_format(numbered[0][1], f"{path}:{numbered[0][0]}") if data_format == "auto" else data_format
    rows = []
    for number, row in numbered:
        where = f"{path}:{number}"
        try:
            messages = to_messages(row, fmt)
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"{where}: not a {fmt} row ({type(exc).__name__}: {exc})") from None
        if not messages or messages[-1]["role"] != "assistant" or not str(messages[-1]["content"]).strip():
            raise InputError(f"{where}: no assistant turn to train on (the last turn must be a non-empty assistant "
                             "message)")
        if len(messages) < 2:
            raise InputError(f"{where}: no user turn before the assistant turn")
        rows += conversation_rows(str(row.get("id", f"{path.name}:{number}")), messages, where)
    return TrainingRows(rows=rows, source=source, format=fmt, conversations=len(numbered))


def conversation_rows(row_id: str, messages: list[dict[str, str]], where: str) -> list[dict[str, Any]]:
    """One prompt/completion row per assistant turn of a conversation that ends with an assistant turn, from
    the last turn back: the first row is the whole conversation, the row a conversation made before every
    assistant turn was trained on, and the rows of its earlier turns follow."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if turns[0] == 0:
        raise InputError(f"{where}: no user turn before the first assistant turn")
    for number, i in enumerate(turns, 1):
        if not str(messages[i]["content"]).strip():
            raise InputError(f"{where}: assistant turn {number} of {len(turns)} is empty")
    return [{"id": row_id, "turn": number, "prompt": messages[:i], "completion": [messages[i]]}
            for number, i in reversed(list(enumerate(turns, 1)))]
