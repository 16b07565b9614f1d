"""Pairwise judged comparison in the style of MT-Bench / AlpacaEval.

Candidate and baseline answer the same questions (one or two turns). A judge sees each question with both
answers twice, once in each order, to cancel position bias. Per question, under MT-Bench's rule (the default,
``verdict_rule="mt-bench"``), the candidate wins only if it wins in both orders; any pair whose verdicts differ
once un-swapped (a win and a tie, or opposite wins) is inconsistent and counts as a tie. The lenient rule
(``"lenient"``) counts a win in one order and a tie in the other as a win. A reply that names neither A, B nor
tie is counted as unparseable and the question leaves the win rate: it is never silently a tie. The share of
questions with the same verdict in both orders is the judge's position consistency.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.core.alpaca import alpaca_user_turn
from harness.core.assets import resolve_asset
from harness.core.errors import InputError
from harness.core.stats import bootstrap_mean_ci, proportion_interval
from harness.core.store import numbered_rows, read_bytes, stated_row_id

#: How a question whose two verdicts disagree once un-swapped is counted (see the module docstring).
VerdictRule = Literal["mt-bench", "lenient"]

JUDGE_TEMPLATE = """You are judging two AI assistants' answers to the same user question.

[Question]
{question}

[Answer A]
{answer_a}

[Answer B]
{answer_b}

Which answer is more helpful, correct and relevant? Reply with exactly one of: A, B, tie."""

_VERDICT = re.compile(r"\b((?i:tie)|A|B)\b")


def parse_verdict(reply: str) -> str:
    """'A', 'B', 'tie', or 'unparseable' when the reply names none or more than one."""
    found = {m.group(1).lower() if m.group(1).lower() == "tie" else m.group(1) for m in _VERDICT.finditer(reply)}
    return found.pop() if len(found) == 1 else "unparseable"


class Question(BaseModel):
    """One question as nift-gate asks it, from any of the formats :func:`load_questions` reads."""

    id: str = Field(description="The file's question_id (MT-Bench's field), else its id, else the line number "
                                "(for a JSON array, the row's position from 1).")
    turns: list[str] = Field(description="The user turns, in order (AlpacaEval: its instruction, one turn, with "
                                         "a non-empty input after a blank line, as training data reads it).")
    category: str | None = Field(None, description="MT-Bench's category; AlpacaEval's dataset (helpful_base, "
                                                   "koala, oasst, selfinstruct, vicuna).")
    reference: list[str] = Field(default_factory=list, description="MT-Bench's reference answers, one per turn "
                                                                   "(math, reasoning, coding): the judge grades "
                                                                   "against them.")
    reference_output: str | None = Field(None, description="AlpacaEval's output: a reference model's answer, "
                                                           "compared with, not graded against.")
    reference_generator: str | None = Field(None, description="AlpacaEval's generator: the model that wrote "
                                                              "reference_output.")


class PairwiseItem(BaseModel):
    question_id: str
    turns: list[str] = Field(default_factory=list, description="The user turns asked, in order.")
    baseline: str
    candidate_answer: list[str]
    baseline_answer: list[str]
    verdict_candidate_first: str = Field(description="Judge verdict with the candidate as A.")
    verdict_baseline_first: str = Field(description="Judge verdict with the baseline as A.")
    outcome: str = Field(description="'win', 'tie', 'loss' (for the candidate) or 'unparseable'.")
    consistent: bool | None = Field(None, description="Both orders gave the same verdict once un-swapped; None "
                                                      "when a reply was unparseable.")


class PairwiseResult(BaseModel):
    baseline: str
    judge: str
    n: int = Field(description="Questions with a parseable verdict in both orders.")
    wins: int
    ties: int
    losses: int
    unparseable: int
    win_rate: float | None = Field(description="(wins + ties/2) / n.")
    ci_low: float | None
    ci_high: float | None
    verdict_rule: VerdictRule = Field("lenient", description="How inconsistent pairs were counted: 'mt-bench' "
                                                             "(as ties) or 'lenient' (a win and a tie is a win); "
                                                             "records made before the rule was recorded were "
                                                             "lenient.")
    consistent: int = Field(0, description="Of the n questions, those with the same verdict in both orders.")
    position_consistency: float | None = Field(None, description="consistent / n: how often the judge's verdict "
                                                                 "survived swapping the answers' positions.")
    consistency_ci_low: float | None = Field(None, description="Wilson interval of position_consistency.")
    consistency_ci_high: float | None = None


#: The fields of MT-Bench's question file (FastChat ``question.jsonl``) and of AlpacaEval's instruction/output
#: files (``alpaca_eval.json``, a model's ``model_outputs.json``); a row is read by the format whose fields it has.
MT_BENCH_FIELDS = ("question_id", "category", "turns", "reference")
ALPACA_EVAL_FIELDS = ("instruction", "output", "generator", "dataset")


def _question(row: Any, where: str, position: int) -> Question:
    """One row as a Question: nift-gate's own or MT-Bench's format (``turns``) or AlpacaEval's (``instruction``);
    a row of neither names the field it lacks. ``where``: ``file:line`` of the row, for errors."""
    if not isinstance(row, dict):
        raise InputError(f"{where}: a question must be a JSON object")
    if row.get("instruction") is not None and row.get("turns") is not None:
        # read as either format, the other field's question would be dropped unseen
        raise InputError(f"{where}: fields 'instruction' (AlpacaEval) and 'turns' (MT-Bench) both hold the question; "
                         "keep one")
    alpaca = "instruction" in row or ("turns" not in row and any(k in row for k in ALPACA_EVAL_FIELDS))
    if alpaca:
        if "instances" in row:  # its questions are in instances[].input, and each instance is another question
            raise InputError(f"{where}: a self-instruct seed task (field 'instances'), not a question; write one "
                             "instruction/input row per instance")
        instruction = row.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise InputError(f"{where}: AlpacaEval row without 'instruction' (a non-empty string); its fields "
                             f"are {', '.join(ALPACA_EVAL_FIELDS)}")
        for name in (*ALPACA_EVAL_FIELDS[1:], "input"):  # Alpaca's input: the data the instruction refers to
            if row.get(name) is not None and not isinstance(row[name], str):
                raise InputError(f"{where}: AlpacaEval field {name!r} must be a string")
        question_id = stated_row_id(row, where, str(position), what="question")
        return Question(id=question_id, turns=[alpaca_user_turn(instruction, row.get("input"))],
                        category=row.get("dataset"), reference_output=row.get("output"),
                        reference_generator=row.get("generator"))
    if "turns" not in row:
        raise InputError(f"{where}: row has no 'turns' (MT-Bench: {', '.join(MT_BENCH_FIELDS)}) and no "
                         f"'instruction' (AlpacaEval: {', '.join(ALPACA_EVAL_FIELDS)})")
    turns = row["turns"]
    if not isinstance(turns, list) or not 1 <= len(turns) <= 2 or not all(isinstance(t, str) and t.strip() for t in turns):
        raise InputError(f"{where}: 'turns' must be a list of one or two non-empty strings")
    reference = row.get("reference")
    # null is no reference (JSON exporters write null for a missing value), nor is "" (an empty answer to grade
    # against); false, 0 or {} is no reference anyone wrote, and read as none the judge would grade without one
    reference = [] if reference is None or reference == "" else [reference] if isinstance(reference, str) else reference
    if not isinstance(reference, list) or len(reference) > len(turns) or not all(isinstance(r, str) for r in reference):
        raise InputError(f"{where}: 'reference' must be a list of strings, at most one per turn, got "
                         f"{json.dumps(row['reference'])[:60]}")
    category = row.get("category")
    if category is not None and not isinstance(category, str):
        raise InputError(f"{where}: 'category' must be a string")
    return Question(id=stated_row_id(row, where, str(position), what="question"), turns=turns, category=category,
                    reference=reference)


def load_questions(spec: str | Path, limit: int | None, read: Callable[[Path], bytes] | None = None) -> list[Question]:
    """Questions of a file (``embedded:`` names a shipped one), the first ``limit`` of them: JSON Lines or a JSON
    array of rows in nift-gate's format (``id``, ``turns``), MT-Bench's (``question_id``, ``category``, ``turns``,
    optional ``reference``) or AlpacaEval's (``instruction``, ``output``, ``generator``, ``dataset``), as published;
    an Alpaca row's non-empty ``input`` follows its instruction, as in training data (self-instruct seed tasks,
    whose questions are in ``instances``, are refused).
    ``read`` gives the file's bytes (a stage passes ``StageRun.read``: the bytes its fingerprint hashed)."""
    path = resolve_asset(str(spec))
    if not path.exists():
        raise InputError(f"{path}: pairwise questions not found")
    data = read(path) if read is not None else read_bytes(path, "question file")
    rows, array = numbered_rows(data, path)
    questions, seen = [], {}
    for position, (line, row) in enumerate(rows, 1):
        # errors name the row's line in the file, and an array item's position; a row without an id is known by
        # its line (JSON Lines) or its position (a JSON array)
        where = f"{path}:{line} (item {position})" if array else f"{path}:{line}"
        question = _question(row, where, position if array else line)
        if question.id in seen:
            raise InputError(f"{where}: question id {question.id!r} is used again (first on line {seen[question.id]})")
        seen[question.id] = line
        questions.append(question)
    if not questions:  # an empty file, blank lines only or []: a comparison over nothing is no result
        raise InputError(f"{path}: no questions")
    return questions[:limit] if limit else questions


def answer(model, questions: list[Question], max_new_tokens: int, seed: int) -> dict[str, list[str]]:
    """Each question answered turn by turn; the second turn sees the first answer."""
    from harness.core.generation import GenerationRequest

    history: dict[str, list[dict[str, str]]] = {q.id: [] for q in questions}
    answers: dict[str, list[str]] = {q.id: [] for q in questions}
    for turn in range(2):
        asked = [q for q in questions if len(q.turns) > turn]
        if not asked:
            break
        requests = [GenerationRequest(key=q.id, prompt=q.turns[turn], max_new_tokens=max_new_tokens,
                                      history=history[q.id]) for q in asked]
        for q, generation in zip(asked, model.generate(requests, seed=seed)):
            answers[q.id].append(generation.text)
            history[q.id] = history[q.id] + [{"role": "user", "content": q.turns[turn]},
                                             {"role": "assistant", "content": generation.text}]
    return answers


def _render(question: Question, answer_a: list[str], answer_b: list[str]) -> str:
    def conversation(answers: list[str]) -> str:
        if len(question.turns) == 1:
            return answers[0]
        return "\n\n".join(f"(turn {i + 1}) {a}" for i, a in enumerate(answers))

    asked = question.turns[0] if len(question.turns) == 1 else "\n\n".join(
        f"(turn {i + 1}) {t}" for i, t in enumerate(question.turns))
    return JUDGE_TEMPLATE.format(question=asked, answer_a=conversation(answer_a), answer_b=conversation(answer_b))


def _outcome(first: str, second: str, rule: VerdictRule = "mt-bench") -> tuple[str, bool | None]:
    """first: candidate as A; second: baseline as A. Returns the candidate's outcome and whether the two
    verdicts agree once un-swapped (None when one is unparseable)."""
    if "unparseable" in (first, second):
        return "unparseable", None
    as_candidate = {"A": 1, "tie": 0, "B": -1}[first], {"B": 1, "tie": 0, "A": -1}[second]
    consistent = as_candidate[0] == as_candidate[1]
    if rule == "mt-bench" and not consistent:
        return "tie", False  # FastChat's "inconsistent": position decided the verdict, so neither answer won
    score = sum(as_candidate)
    return ("win" if score > 0 else "loss" if score < 0 else "tie"), consistent


def judge_pair(judge, questions: list[Question], candidate: dict[str, list[str]], baseline: dict[str, list[str]],
               baseline_name: str, judge_name: str, max_new_tokens: int, iterations: int, confidence: float,
               seed: int, rule: VerdictRule = "mt-bench") -> tuple[PairwiseResult, list[PairwiseItem]]:
    """Judge every question in both orders; the result counts outcomes under ``rule`` and the judge's
    position consistency over the questions with two parseable verdicts."""
    from harness.core.generation import GenerationRequest

    requests = []
    for q in questions:
        requests.append(GenerationRequest(key=f"{q.id}|cand-first", prompt=_render(q, candidate[q.id], baseline[q.id]),
                                          max_new_tokens=max_new_tokens))
        requests.append(GenerationRequest(key=f"{q.id}|base-first", prompt=_render(q, baseline[q.id], candidate[q.id]),
                                          max_new_tokens=max_new_tokens))
    replies = {g.key: g.text for g in judge.generate(requests, seed=seed)}
    items = []
    for q in questions:
        first, second = parse_verdict(replies[f"{q.id}|cand-first"]), parse_verdict(replies[f"{q.id}|base-first"])
        outcome, consistent = _outcome(first, second, rule)
        items.append(PairwiseItem(question_id=q.id, turns=list(q.turns), baseline=baseline_name,
                                  candidate_answer=candidate[q.id], baseline_answer=baseline[q.id],
                                  verdict_candidate_first=first, verdict_baseline_first=second,
                                  outcome=outcome, consistent=consistent))
    counts = {k: sum(1 for i in items if i.outcome == k) for k in ("win", "tie", "loss", "unparseable")}
    scores = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[i.outcome] for i in items if i.outcome != "unparseable"]
    low, high, _ = bootstrap_mean_ci(scores, iterations, confidence, seed)  # the record names it BCa
    consistent = sum(1 for i in items if i.consistent)
    agree_low, agree_high = proportion_interval(consistent, len(scores), confidence)
    result = PairwiseResult(baseline=baseline_name, judge=judge_name, n=len(scores), wins=counts["win"],
                            ties=counts["tie"], losses=counts["loss"], unparseable=counts["unparseable"],
                            win_rate=sum(scores) / len(scores) if scores else None, ci_low=low, ci_high=high,
                            verdict_rule=rule, consistent=consistent,
                            position_consistency=consistent / len(scores) if scores else None,
                            consistency_ci_low=agree_low, consistency_ci_high=agree_high)
    return result, items


def item_rows(items: list[PairwiseItem]) -> list[dict[str, Any]]:
    return [i.model_dump() for i in items]
