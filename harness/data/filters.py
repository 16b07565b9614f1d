"""Filters on documents (before the teacher, to save its cost) and on pairs (contamination).

Every filter returns what it dropped and why, so the data card can count each one.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.core.assets import resolve_asset
from harness.core.errors import InputError
from harness.core.store import MISSING, numbered_rows, read_bytes, row_field, stated_row_id
from harness.core.toxigen import prompt_text
from harness.data.config import FilterConfig, PromptSetRef
from harness.data.corpus import Document

if TYPE_CHECKING:
    from harness.core.runner import StageRun

# --- duplicates -------------------------------------------------------------------------------------------


def exact_duplicates(documents: list[Document]) -> dict[str, str]:
    """doc_id -> id of the earlier document it repeats (case- and whitespace-insensitive)."""
    seen: dict[str, str] = {}
    dropped = {}
    for doc in documents:
        key = hashlib.sha256(" ".join(doc.text.lower().split()).encode()).hexdigest()
        if key in seen:
            dropped[doc.doc_id] = seen[key]
        else:
            seen[key] = doc.doc_id
    return dropped


def near_duplicates(documents: list[Document], threshold: float, shingle: int = 5,
                    num_perm: int = 256) -> dict[str, str]:
    """doc_id -> id of an earlier near-duplicate, by MinHash LSH (datasketch) over word shingles.

    LSH bands are tuned to favour recall (weights 0.2/0.8): datasketch's balanced default missed a
    one-word edit of a 230-word document at threshold 0.8. Candidates are then confirmed by their
    estimated Jaccard similarity, so recall costs no false drops.
    """
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.2, 0.8))
    signatures: dict[str, MinHash] = {}
    dropped = {}
    for doc in documents:
        words = _words(doc.text)
        grams = {" ".join(words[i:i + shingle]) for i in range(max(1, len(words) - shingle + 1))}
        signature = MinHash(num_perm=num_perm, seed=1)
        signature.update_batch([g.encode() for g in grams])
        matches = sorted(m for m in lsh.query(signature) if signature.jaccard(signatures[m]) >= threshold)
        if matches:
            dropped[doc.doc_id] = matches[0]
        else:
            lsh.insert(doc.doc_id, signature)
            signatures[doc.doc_id] = signature
    return dropped


# --- instruction-likeness ---------------------------------------------------------------------------------

_IMPERATIVES = (
    "write|explain|describe|list|give|tell|create|generate|summarize|summarise|translate|classify|rewrite|"
    "answer|compose|draft|suggest|name|provide|find|calculate|compare|identify|please|imagine|pretend|act")
_LIST_ITEM = re.compile(r"(?:^|\s)(?:\d{1,2}[.)]|[*•]|step\s+\d+\b)\s*", re.IGNORECASE)

INSTRUCTION_RULES: dict[str, Callable[[str], bool]] = {
    # Opens like a request to an assistant: "Write a poem...", "Please explain..."
    "imperative_opening": re.compile(rf"^\s*(?:{_IMPERATIVES})\b", re.IGNORECASE).search,
    # Opens with a question: "How do I...?", "What is...?"
    "question_opening": re.compile(r"^[^.!?\n]{0,200}\?").search,
    # Numbered or bulleted steps: "1. ... 2. ... 3. ..." or "Step 1"
    "step_list": lambda text: len(_LIST_ITEM.findall(text)) >= 3,
    # Question/answer formatting
    "qa_format": re.compile(r"\b(?:Q|Question)\s*:.*?\b(?:A|Answer)\s*:", re.IGNORECASE | re.DOTALL).search,
    # Addressed to an assistant or a reader being instructed
    "assistant_address": re.compile(r"\b(?:as an ai|you are an? (?:assistant|expert)|follow these|"
                                    r"in this tutorial|how to\b)", re.IGNORECASE).search,
}


def instruction_like(text: str) -> list[str]:
    """Names of the instruction-likeness rules the text trips (empty: reads as ordinary prose)."""
    return [name for name, rule in INSTRUCTION_RULES.items() if rule(text)]


def instruction_like_turns(user_turns: Sequence[str]) -> dict[int, list[str]]:
    """For a multi-turn pair: turn number (from 2) -> the rules its user turn trips, for every later user turn
    that reads as an instruction. The first user turn opens its document, which the document filter
    already checked; a later one opens mid-document, where "How ...?" or "Write ..." starts a turn too."""
    return {number: rules for number, text in enumerate(user_turns[1:], 2) if (rules := instruction_like(text))}


# --- contamination ----------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _prompt_texts(where: str, field: str, value: object) -> list[str]:
    """The texts of a prompt set's ``field``: a string, or a list of strings (MT-Bench's ``turns``). Anything else
    is refused: ``str()`` of a list writes its line breaks as a literal backslash-n, and of an object (a
    RealToxicityPrompts ``prompt``) adds its keys and scores, so the n-grams indexed would be in no document."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(text, str) for text in value):
        return value
    kind = ("null" if value is None else "an object" if isinstance(value, dict) else
            "a list that is not all text" if isinstance(value, list) else
            "a boolean" if isinstance(value, bool) else "a number")
    keys = f" (keys: {', '.join(value)})" if isinstance(value, dict) else ""
    raise InputError(f"{where}: field {field!r} is {kind}{keys}, not a string or a list of strings; name the field "
                     "that holds the prompt text (a nested one by its path, e.g. question.stem)")


@dataclass
class ContaminationHit:
    prompt_set: str
    prompt_id: str
    ngram: str


@dataclass
class ContaminationIndex:
    """n-grams of every configured evaluation/audit prompt, to find pairs that overlap them."""

    n: int
    grams: dict[tuple[str, ...], list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    prompts: dict[str, int] = field(default_factory=dict)
    too_short: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, sets: list[PromptSetRef], n: int, run: StageRun | None = None) -> ContaminationIndex:
        """The index of ``sets``; each prompt set is an input of ``run`` (hashed by content) when one is given.
        A set is JSON Lines or a JSON array; a prompt is known by the id its suite's reader gives it (a repeated one
        is refused: two prompts' hits would be reported as one) and indexed as the evaluated model reads it."""
        index = cls(n=n)
        for prompt_set in sets:
            path = resolve_asset(prompt_set.path)
            if not path.exists():
                raise InputError(f"{path}: contamination prompt set {prompt_set.name!r} not found")
            if run is not None:  # the rows come from the bytes that were hashed, not from a second read
                path = run.file(prompt_set.path, kind="prompt_set")
                data = run.read(path)
            else:
                data = read_bytes(path, "contamination prompt set")
            # JSON Lines or a JSON array: AlpacaEval's alpaca_eval.json and TruthfulQA's mc_task.json are arrays,
            # and bench and the audits read them as published
            rows, array = numbered_rows(data, path)
            index.prompts[prompt_set.name] = len(rows)
            index.too_short[prompt_set.name] = 0
            seen: dict[str, str] = {}  # prompt id -> where it was first
            # an error names the row's line, and an array item's position; a row without an id is known by its
            # position, blank lines not counted
            for position, (line, row) in enumerate(rows, 1):
                where = f"{path}:{line} (item {position})" if array else f"{path}:{line}"
                if not isinstance(row, dict):
                    raise InputError(f"{where}: a prompt must be a JSON object, got {type(row).__name__}")
                if (value := row_field(row, prompt_set.field)) is MISSING:
                    raise InputError(f"{where}: no field {prompt_set.field!r} "
                                     f"(fields: {', '.join(row)}; a nested one is named by its path, e.g. "
                                     f"question.stem)")
                # ToxiGen's backslash-n read as the toxicity audit reads it: left literal, it would be a word "n" in
                # every n-gram across two statements, and a document quoting the prompt would match few of them
                texts = [prompt_text(text) for text in _prompt_texts(where, prompt_set.field, value)]
                if all(len(_words(text)) < n for text in texts):
                    index.too_short[prompt_set.name] += 1  # cannot be checked by n-grams; counted in the card
                # the id the suite's own reader keys its results by, so a hit names the item a user sees in bench
                # and audit results: MT-Bench's question_id, nift-gate's id, IFEval's key, else the position
                prompt_id = stated_row_id(row, where, str(position), ("question_id", "id", "key"), what="prompt")
                if prompt_id in seen:  # its hits would be reported as the other prompt's
                    raise InputError(f"{where}: prompt id {prompt_id!r} is used again (first on {seen[prompt_id]})")
                seen[prompt_id] = f"line {line} (item {position})" if array else f"line {line}"
                for text in texts:  # each turn on its own: an n-gram across two turns is in no document
                    words = _words(text)
                    for i in range(len(words) - n + 1):
                        index.grams[tuple(words[i:i + n])].append((prompt_set.name, prompt_id))
        return index

    def hits(self, text: str) -> list[ContaminationHit]:
        words = _words(text)
        found: dict[tuple[str, str], ContaminationHit] = {}
        for i in range(len(words) - self.n + 1):
            for prompt_set, prompt_id in self.grams.get(tuple(words[i:i + self.n]), ()):
                found.setdefault((prompt_set, prompt_id),
                                 ContaminationHit(prompt_set, prompt_id, " ".join(words[i:i + self.n])))
        return list(found.values())


# --- document filters, in order ---------------------------------------------------------------------------


@dataclass
class FilterOutcome:
    kept: list[Document]
    dropped: dict[str, dict[str, str]]  # filter name -> {doc_id: detail}


def filter_documents(documents: list[Document], config: FilterConfig, min_words: int,
                     max_words: int) -> FilterOutcome:
    dropped: dict[str, dict[str, str]] = {"too_short": {}, "too_long": {}, "exact_duplicate": {},
                                           "near_duplicate": {}, "instruction_like": {}}
    kept = []
    for doc in documents:
        count = len(doc.text.split())
        if count < min_words:
            dropped["too_short"][doc.doc_id] = f"{count} words"
        elif count > max_words:
            dropped["too_long"][doc.doc_id] = f"{count} words"
        else:
            kept.append(doc)
    if config.exact_dedup:
        dropped["exact_duplicate"] = exact_duplicates(kept)
        kept = [d for d in kept if d.doc_id not in dropped["exact_duplicate"]]
    if config.near_dedup:
        dropped["near_duplicate"] = near_duplicates(kept, config.near_dup_threshold)
        kept = [d for d in kept if d.doc_id not in dropped["near_duplicate"]]
    if config.instruction_rules:
        for doc in kept:
            if rules := instruction_like(doc.text):
                dropped["instruction_like"][doc.doc_id] = ",".join(rules)
        kept = [d for d in kept if d.doc_id not in dropped["instruction_like"]]
    return FilterOutcome(kept=kept, dropped=dropped)
