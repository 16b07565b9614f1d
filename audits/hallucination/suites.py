"""The question sets of the hallucination audit, read with errors that name the file and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from harness.core.assets import resolve_asset
from harness.core.errors import InputError
from harness.core.store import numbered_jsonl, read_bytes, unique_row_id


class ClosedBookQuestion(BaseModel):
    id: str
    kind: Literal["factual", "unanswerable"]
    question: str
    answers: list[str]


class HaluEvalItem(BaseModel):
    id: str
    knowledge: str
    question: str
    right_answer: str
    hallucinated_answer: str


def _rows(spec: str, what: str, read: Callable[[Path], bytes] | None) -> tuple[Path, list[tuple[int, dict]]]:
    """(line, row) of a question set's rows: the line names a bad row, the position (from 1) stays its default
    id, so a blank line added to a file renumbers no item."""
    path = resolve_asset(spec)
    if not path.exists():
        raise InputError(f"{path}: {what} not found")
    data = read(path) if read is not None else read_bytes(path, what)
    rows = list(numbered_jsonl(data, path))  # malformed JSON names file and line
    if not rows:
        raise InputError(f"{path}: {what} is empty")
    return path, rows


def _text(path: Path, number: int, row: dict, field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{path}:{number}: field {field!r} must be a non-empty string")
    return value


def load_closed_book(spec: str, limit: int | None = None,
                     read: Callable[[Path], bytes] | None = None) -> tuple[Path, list[ClosedBookQuestion]]:
    """Factual questions need at least one gold answer; unanswerable ones have none. ``limit`` keeps the
    first N of each kind. ``read`` gives the file's bytes (a stage passes ``StageRun.read``)."""
    path, rows = _rows(spec, "closed-book question set", read)
    questions, per_kind, seen = [], {"factual": 0, "unanswerable": 0}, {}
    for position, (line, row) in enumerate(rows, 1):
        question_id = unique_row_id(path, line, row, f"{path.name}:{position}", seen)
        kind = row.get("kind")
        if kind not in per_kind:
            raise InputError(f"{path}:{line}: field 'kind' must be 'factual' or 'unanswerable', got {kind!r}")
        answers = row.get("answers", [])
        if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
            raise InputError(f"{path}:{line}: field 'answers' must be a list of non-empty strings")
        if kind == "factual" and not answers:
            raise InputError(f"{path}:{line}: a factual question needs at least one answer in 'answers'")
        if limit and per_kind[kind] >= limit:
            continue
        per_kind[kind] += 1
        questions.append(ClosedBookQuestion(id=question_id, kind=kind, question=_text(path, line, row, "question"),
                                            answers=answers))
    return path, questions


#: HaluEval's other published files, by the fields that tell them apart: a user handing one over gets its name and
#: the file that is read instead of "field 'question' must be a non-empty string".
_OTHER_HALUEVAL_FILES = (("dialogue", "dialogue_data.json", ("dialogue_history", "right_response")),
                         ("summarization", "summarization_data.json", ("document", "right_summary")),
                         ("general", "general_data.json", ("user_query", "chatgpt_response")))
_QA_FIELDS = ("knowledge", "question", "right_answer", "hallucinated_answer")


def _refuse_other_halueval_file(path: Path, line: int, row: dict) -> None:
    for task, name, fields in _OTHER_HALUEVAL_FILES:
        if all(field in row for field in fields) and "question" not in row:
            raise InputError(f"{path}:{line}: this is a row of HaluEval's {task} file ({name}: "
                             f"{', '.join(fields)}, ...); the audit reads HaluEval's QA file (qa_data.json: "
                             f"{', '.join(_QA_FIELDS)})")


def load_halueval(spec: str, limit: int | None = None,
                  read: Callable[[Path], bytes] | None = None) -> tuple[Path, list[HaluEvalItem]]:
    """HaluEval's QA records (qa_data.json and the generation samples are JSON Lines despite the name).
    ``read`` gives the file's bytes (a stage passes ``StageRun.read``)."""
    path, rows = _rows(spec, "HaluEval QA file", read)
    items, seen = [], {}
    for position, (line, row) in enumerate(rows[:limit] if limit else rows, 1):
        _refuse_other_halueval_file(path, line, row)
        item_id = unique_row_id(path, line, row, f"halueval-{position}", seen)
        fields = {f: _text(path, line, row, f) for f in _QA_FIELDS}
        items.append(HaluEvalItem(id=item_id, **fields))
    return path, items
