"""BBQ items (Parrish et al. 2022) read as nyu-mll/BBQ publishes them: one JSON object a line, with

    example_id, question_index, question_polarity (neg | nonneg), context_condition (ambig | disambig), category,
    answer_info {ans0, ans1, ans2: [answer words, group]}, additional_metadata {stereotyped_groups, ...},
    context, question, ans0, ans1, ans2, label

Scoring is lm-eval's own BBQ task (``audits.bias.task``), so an item must also be one that task can score: a
category among BBQ's eleven, and exactly one answer that is BBQ's "unknown" option (its group ``unknown``),
worded as one of the unknown answers BBQ uses. In an ambiguous context that unknown answer is the gold one (the
context does not say who). A row that breaks any of this is refused with its file, line and field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.core.errors import InputError
from harness.core.store import numbered_jsonl

#: BBQ's categories, as its files and lm-eval's task spell them (lm-eval's scoring knows these and no others).
CATEGORIES = ("Age", "Disability_status", "Gender_identity", "Nationality", "Physical_appearance", "Race_ethnicity",
              "Race_x_gender", "Race_x_SES", "Religion", "SES", "Sexual_orientation")
#: BBQ's wordings of the unknown answer (lm-eval's ``UNKNOWN_RESPONSES``, from HELM, from BBQ's templates).
UNKNOWN_ANSWERS = ("Unknown", "Cannot answer", "Can't be determined", "Cannot be determined", "Can't answer",
                   "Not known", "Not enough info", "Not enough information", "Not answerable", "Undetermined")
REQUIRED = ("example_id", "question_index", "question_polarity", "context_condition", "category", "answer_info",
            "additional_metadata", "context", "question", "ans0", "ans1", "ans2", "label")
ANSWERS = ("ans0", "ans1", "ans2")


class BbqItem(BaseModel):
    """One BBQ item, with the fields lm-eval's task reads."""

    id: str = Field(description="<category>-<example_id>: BBQ numbers examples per category file.")
    example_id: int | str
    question_index: str
    question_polarity: Literal["neg", "nonneg"]
    context_condition: Literal["ambig", "disambig"]
    category: str
    answer_info: dict[str, list[str]] = Field(description="ans0..ans2 -> [answer words, group]; group 'unknown' "
                                                          "marks the unknown answer.")
    stereotyped_groups: list[str] = Field(description="additional_metadata.stereotyped_groups: the groups the "
                                                      "question's stereotype is about.")
    context: str
    question: str
    answers: list[str] = Field(description="ans0, ans1, ans2.")
    label: int = Field(description="Index of the gold answer.")
    source: str = Field(description="file:line the item was read from.")

    @property
    def unknown(self) -> int:
        """Index of the unknown answer."""
        return next(i for i, key in enumerate(ANSWERS) if self.answer_info[key][-1].lower() == "unknown")

    def task_row(self) -> dict[str, Any]:
        """The item as lm-eval's BBQ task reads it (BBQ's own field names)."""
        return {"item_id": self.id, "example_id": self.example_id, "question_index": self.question_index,
                "question_polarity": self.question_polarity, "context_condition": self.context_condition,
                "category": self.category, "answer_info": self.answer_info,
                "additional_metadata": {"stereotyped_groups": self.stereotyped_groups},
                "context": self.context, "question": self.question,
                **dict(zip(ANSWERS, self.answers)), "label": self.label}


def _parse(row: Any, where: str) -> BbqItem:
    if not isinstance(row, dict):
        raise InputError(f"{where}: not a JSON object")
    for field in REQUIRED:
        if field not in row:
            raise InputError(f"{where}: missing field {field!r}")

    def text(field: str) -> str:
        if not isinstance(row[field], str) or not row[field].strip():
            raise InputError(f"{where}: field {field!r} must be a non-empty string")
        return row[field]

    for field, allowed in (("question_polarity", ("neg", "nonneg")), ("context_condition", ("ambig", "disambig")),
                           ("category", CATEGORIES)):
        if row[field] not in allowed:
            raise InputError(f"{where}: field {field!r} is {row[field]!r}; expected one of {', '.join(allowed)}")
    info = row["answer_info"]
    if not isinstance(info, dict) or any(not isinstance(info.get(k), list) or not info[k]
                                         or not all(isinstance(w, str) for w in info[k]) for k in ANSWERS):
        raise InputError(f"{where}: field 'answer_info' must map ans0, ans1 and ans2 to [answer words, group]")
    meta = row["additional_metadata"]
    groups = meta.get("stereotyped_groups") if isinstance(meta, dict) else None
    if not isinstance(groups, list) or not groups or not all(isinstance(g, str) for g in groups):
        raise InputError(f"{where}: missing field 'additional_metadata.stereotyped_groups' (a list of groups)")
    label = row["label"]
    if isinstance(label, bool) or label not in (0, 1, 2):
        raise InputError(f"{where}: field 'label' must be 0, 1 or 2")
    if not isinstance(row["example_id"], int | str) or isinstance(row["example_id"], bool):
        raise InputError(f"{where}: field 'example_id' must be a number or a string")
    answers = [text(k) for k in ANSWERS]
    unknown = [i for i, k in enumerate(ANSWERS) if info[k][-1].lower() == "unknown"]
    if len(unknown) != 1:
        raise InputError(f"{where}: field 'answer_info' must mark exactly one answer's group 'unknown' "
                         f"(found {len(unknown)})")
    if worded := [ANSWERS[i] for i in range(3) if i != unknown[0] and answers[i] in UNKNOWN_ANSWERS]:
        raise InputError(f"{where}: field {worded[0]!r} is worded as an unknown answer but its group is not "
                         "'unknown' (answer_info)")
    if answers[unknown[0]] not in UNKNOWN_ANSWERS:
        raise InputError(f"{where}: field {ANSWERS[unknown[0]]!r} is the unknown answer but reads "
                         f"{answers[unknown[0]]!r}; BBQ's wordings: {', '.join(UNKNOWN_ANSWERS)}")
    if row["context_condition"] == "ambig" and label != unknown[0]:
        raise InputError(f"{where}: field 'label' is {label}, but in an ambiguous context the gold answer is the "
                         f"unknown one ({ANSWERS[unknown[0]]})")
    return BbqItem(id=f"{row['category']}-{row['example_id']}", example_id=row["example_id"],
                   question_index=str(row["question_index"]), question_polarity=row["question_polarity"],
                   context_condition=row["context_condition"], category=row["category"],
                   answer_info={k: list(info[k]) for k in ANSWERS}, stereotyped_groups=list(groups),
                   context=text("context"), question=text("question"), answers=answers, label=label, source=where)


def load_bbq(paths: list[Path], limit_per_category: int | None = None,
             read: Callable[[Path], bytes] = Path.read_bytes) -> list[BbqItem]:
    """Every item of ``paths`` in order; with a limit, the first N items of each category. ``read`` gives a
    file's bytes (a stage passes ``StageRun.read``: the bytes its fingerprint hashed). Errors name the file,
    line and field; an item id seen twice, or a set without both context conditions, is refused."""
    items: list[BbqItem] = []
    seen: dict[str, str] = {}
    per_category: dict[str, int] = {}
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: BBQ file not found")
        if path.is_dir():
            raise InputError(f"{path}: is a folder, not a BBQ file (name its JSON Lines files, e.g. Age.jsonl)")
        # numbered_jsonl names a gzip or Parquet file as one, and refuses a key given twice in one row (json.loads
        # would keep the last "label" without a word)
        for number, row in numbered_jsonl(read(path), path):
            where = f"{path}:{number}"
            item = _parse(row, where)
            if item.id in seen:
                raise InputError(f"{where}: example_id {item.example_id!r} of {item.category} is also at "
                                 f"{seen[item.id]}")
            seen[item.id] = where
            if limit_per_category is not None and per_category.get(item.category, 0) >= limit_per_category:
                continue
            per_category[item.category] = per_category.get(item.category, 0) + 1
            items.append(item)
    if not items:
        raise InputError(f"{', '.join(map(str, paths)) or 'audit.bias.paths'}: no BBQ items")
    conditions = {item.context_condition for item in items}
    if conditions != {"ambig", "disambig"}:
        raise InputError(f"{', '.join(map(str, paths))}: only {conditions.pop()} contexts; BBQ's bias scores need "
                         "ambiguous and disambiguated items (raise limit_per_category)")
    return items
