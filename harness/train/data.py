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

from harness.core.alpaca import alpaca_user_turn
from harness.core.assets import resolve_asset
from harness.core.errors import InputError
from harness.core.records import InputRef, sha256_file
from harness.core.store import RunStore, decode_utf8, numbered_jsonl, numbered_rows, read_bytes
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


def _read_rows(path: Path, data: bytes) -> tuple[list[tuple[int, Any]], bool]:
    """(line number, row) pairs from the bytes of a JSONL file or a JSON array file (or JSON Lines named ``.json``,
    as ``datasets``' ``to_json`` writes them), and whether it was an array; an array item is numbered by the line
    it starts on."""
    if path.suffix.lower() != ".json":  # a .jsonl file holds one object per line, even a first line that is an array
        return list(numbered_jsonl(data, path)), False
    reads = "JSON (an array of rows, or JSON Lines)"
    text = decode_utf8(data, path, reads=reads)
    if text.lstrip().startswith("{"):
        try:  # one object spread over lines is not rows: JSON Lines holds one object per line
            json.loads(text)
        except json.JSONDecodeError:
            pass  # JSON Lines, or not JSON: read below, errors naming the line
        else:
            raise InputError(f"{path}: expected a JSON array of rows or JSON Lines, got one JSON object")
    return numbered_rows(data, path, reads=reads)


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


#: The roles chat templates are written for; another name (a typo such as ``usr``) is refused, not passed on.
ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant"}


def _shown(value: Any) -> str:
    """``value`` as the file wrote it (null, 5, NaN, [...]), cut short."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _string(where: str, container: dict[str, Any], key: str, field: str, required: bool = True) -> str | None:
    """``container[key]``, named ``field`` in errors, which must be a string (``str(None)`` or ``str(5)`` would
    pass an emptiness check, and the chat template fail mid-training); an optional one may be absent or null."""
    value = container.get(key)
    if value is None and not required:
        return None
    if key not in container:
        raise InputError(f"{where}: field {field!r} is missing")
    if not isinstance(value, str):
        raise InputError(f"{where}: field {field!r} must be a string, got {_shown(value)}")
    return value


def _turns(where: str, row: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The row's list of turns ``key`` (messages, conversations), every turn an object."""
    if key not in row:
        raise InputError(f"{where}: field {key!r} is missing")
    if not isinstance(row[key], list):
        raise InputError(f"{where}: field {key!r} must be a list of objects, got {_shown(row[key])}")
    for i, turn in enumerate(row[key]):
        if not isinstance(turn, dict):
            raise InputError(f"{where}: field '{key}[{i}]' must be an object, got {_shown(turn)}")
    return row[key]


def to_messages(row: dict[str, Any], fmt: str, where: str = "training data") -> list[dict[str, str]]:
    """The conversation of a ``fmt`` row as chat messages, each role one of :data:`ROLES` and each content a
    string; a field that is missing or of another type raises InputError naming ``where`` (file:line) and the
    field (``messages[2].content``). An alpaca or sharegpt row's ``system`` (LLaMA-Factory's layouts) is the first
    message, and an alpaca row's ``history`` the turns before its instruction. A messages row's ``system`` is
    its first message too: a row-level system prompt means one thing in every format, not something dropped."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object per row, got {type(row).__name__}")
    if row.get("messages") is not None and row.get("conversations") is not None:
        # which of the two is the row's conversation would be a guess, and the other's turns dropped unseen
        raise InputError(f"{where}: fields 'messages' and 'conversations' both hold a conversation; keep one")
    # LLaMA-Factory's alpaca and sharegpt layouts carry the system prompt in a field of the row
    system = _string(where, row, "system", "system", required=False)
    messages = [{"role": "system", "content": system}] if system else []
    if fmt == "alpaca":
        user = alpaca_user_turn(_string(where, row, "instruction", "instruction"),
                                _string(where, row, "input", "input", required=False))
        answer = _string(where, row, "output", "output")
        return messages + _history(where, row) + [{"role": "user", "content": user},
                                                  {"role": "assistant", "content": answer}]
    if fmt == "messages":
        field, turns = "messages", _conversation(where, row, "messages", "role", "content",
                                                 {role: role for role in ROLES})
    else:
        field, turns = "conversations", _conversation(where, row, "conversations", "from", "value", _SHAREGPT_ROLES)
        # ShareGPT's system prompt opens the conversation (LLaMA-Factory reads it only there): one further on
        # is a second system prompt, which the chat template would get in mid-conversation
        later = next((i for i, turn in enumerate(turns) if i > 0 and turn["role"] == "system"), None)
        if later is not None:
            raise InputError(f"{where}: field 'conversations[{later}].from' is a system turn after the first turn; "
                             "a system prompt can only open the conversation")
    if messages and turns and turns[0]["role"] == "system":
        raise InputError(f"{where}: both a field 'system' and a system turn in '{field}'; keep one")
    return messages + turns


def _history(where: str, row: dict[str, Any]) -> list[dict[str, str]]:
    """LLaMA-Factory's alpaca ``history`` ([[user, assistant], ...], the turns before the instruction) as
    messages."""
    history = row.get("history")
    if history is None:
        return []
    if not isinstance(history, list):
        raise InputError(f"{where}: field 'history' must be a list of [user, assistant] pairs, got {_shown(history)}")
    messages = []
    for i, pair in enumerate(history):
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(text, str) for text in pair):
            raise InputError(f"{where}: field 'history[{i}]' must be a [user, assistant] pair of strings, got "
                             f"{_shown(pair)}")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return messages


def _conversation(where: str, row: dict[str, Any], field: str, speaker_key: str, text_key: str,
                  roles: dict[str, str]) -> list[dict[str, str]]:
    """The turns of ``row[field]`` as chat messages: each turn's ``speaker_key`` one of ``roles`` (mapped to
    its chat role), its ``text_key`` a string (messages: role/content; ShareGPT: from/value)."""
    messages = []
    for i, turn in enumerate(_turns(where, row, field)):
        speaker = _string(where, turn, speaker_key, f"{field}[{i}].{speaker_key}")
        if speaker not in roles:
            raise InputError(f"{where}: field '{field}[{i}].{speaker_key}' must be one of {', '.join(roles)}, "
                             f"got {speaker!r}")
        if field == "messages" and (call := next((k for k in ("tool_calls", "function_call") if turn.get(k)), None)):
            # OpenAI's format: an assistant turn calling a tool has no content; "content is missing" misleads
            raise InputError(f"{where}: field '{field}[{i}]' is a tool call ({call}); training data holds text "
                             "turns only: drop tool-calling conversations or write the call as the turn's text")
        message = {"role": roles[speaker], "content": _string(where, turn, text_key, f"{field}[{i}].{text_key}")}
        if field == "messages" and turn.get("weight") is not None:
            # OpenAI's fine-tuning format: weight 0 on an assistant turn keeps it as context, not trained on
            weight = turn["weight"]
            if message["role"] != "assistant" or type(weight) is not int or weight not in (0, 1):
                raise InputError(f"{where}: field '{field}[{i}].weight' must be 0 or 1 on an assistant turn, got "
                                 f"{_shown(weight)} on a {message['role']} turn")
            message["weight"] = weight
        messages.append(message)
    return messages


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
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a training data file")
    if run is None:
        return path, InputRef(kind=kind, id=name, sha256=sha256_file(path))
    path = run.file(path, kind=kind, id=name)
    return path, run.inputs[-1]


def load_training_rows(spec: str, data_format: str, store: RunStore, run: StageRun | None = None) -> TrainingRows:
    """Read ``spec`` (``data:<variant>`` or a file) into prompt/completion rows; errors name file and line.

    ``run``: the training run whose input the file becomes (hashed by content before it is read)."""
    path, source = open_training_data(spec, store, run)
    numbered, array = _read_rows(path, run.read(path) if run is not None else read_bytes(path, "training data"))
    if not numbered:
        raise InputError(f"{path}: no training rows")
    rows: list[dict[str, Any]] = []
    seen: dict[str, tuple[str, bool]] = {}
    for position, (number, row) in enumerate(numbered, 1):
        # An array's items are known by position: ``json.dump(rows, f)`` and pandas' ``orient="records"`` put
        # them all on line 1, where ids by line would make the whole file one conversation to the split by id.
        where = f"{path}:{number} (item {position})" if array else f"{path}:{number}"
        if position == 1:
            fmt = detect_format(row, where) if data_format == "auto" else data_format
        messages = to_messages(row, fmt, where)
        if not messages or messages[-1]["role"] != "assistant" or not messages[-1]["content"].strip():
            raise InputError(f"{where}: no assistant turn to train on (the last turn must be a non-empty assistant "
                             "message)")
        line = f"{number} (item {position})" if array else f"{number}"
        row_id = _row_id(where, row, f"{path.name}:{position if array else number}", line, seen)
        rows += conversation_rows(row_id, messages, where)
    return TrainingRows(rows=rows, source=source, format=fmt, conversations=len(numbered))


def _row_id(where: str, row: dict[str, Any], default: str, line: str, seen: dict[str, tuple[str, bool]]) -> str:
    """The row's ``id`` as text, else ``default`` (file:line, or file:item of an array); ``line`` says where the
    row is in a later error, ``seen`` (id -> where first, whether it was a default) is updated here.

    An id is a string or a whole number: ``str()`` of anything else (true, [1, 2], 1.0) is text no one wrote.
    Every row of the file is a conversation of its own (a multi-turn NIFT pair too: one row of ``pairs.jsonl``,
    whose ids the data stage keeps unique; only the rows made from it share its id), so an id seen before is
    refused: the split by id would take the two for one conversation, held out or trained on together. Null is
    no id (str(None) would make every such row one conversation "None")."""
    row_id = row.get("id")
    if row_id is not None and (isinstance(row_id, bool) or not isinstance(row_id, str | int)):
        raise InputError(f"{where}: field 'id' must be a string or a whole number, got {_shown(row_id)}")
    generated = row_id is None
    row_id = default if generated else str(row_id)  # 1 and "1" are one id to the split
    if row_id in seen:
        first, first_generated = seen[row_id]
        note = "; a row without an id is known by file and line" if generated or first_generated else ""
        raise InputError(f"{where}: id {row_id!r} is used again (first on line {first}){note}")
    seen[row_id] = (line, generated)
    return row_id


def conversation_rows(row_id: str, messages: list[dict[str, str]], where: str) -> list[dict[str, Any]]:
    """One prompt/completion row per assistant turn of a conversation that ends with an assistant turn, from
    the last turn back: the first row is the whole conversation, the row a conversation made before every
    assistant turn was trained on, and the rows of its earlier turns follow."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant" and m.get("weight", 1)]
    if not turns:
        raise InputError(f"{where}: every assistant turn has weight 0: nothing to train on")
    if not any(m["role"] == "user" for m in messages[:turns[0]]):  # a system prompt alone asks nothing
        raise InputError(f"{where}: no user turn before the first assistant turn")
    for number, m in enumerate((m for m in messages if m["role"] == "user"), 1):
        if not m["content"].strip():  # an Alpaca row with neither instruction nor input asks nothing
            raise InputError(f"{where}: user turn {number} is empty")
    for number, i in enumerate(turns, 1):
        if not messages[i]["content"].strip():
            raise InputError(f"{where}: assistant turn {number} of {len(turns)} is empty")
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]  # a weight is read, not trained on
    return [{"id": row_id, "turn": number, "prompt": messages[:i], "completion": [messages[i]]}
            for number, i in reversed(list(enumerate(turns, 1)))]
