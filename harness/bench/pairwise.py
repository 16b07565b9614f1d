"""Pairwise judged comparison in the style of MT-Bench / AlpacaEval.

Candidate and baseline answer the same questions (one or two turns). A judge sees each question with both
answers twice, once in each order, to cancel position bias. Per question: the candidate wins if it wins both
orders or wins one and ties the other; a split verdict is a tie. A reply that names neither A, B nor tie is
counted as unparseable and the question leaves the win rate: it is never silently a tie.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from harness.core.assets import resolve_asset
from harness.core.errors import InputError
from harness.core.stats import bootstrap_mean_ci
from harness.core.store import read_jsonl

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
    id: str
    turns: list[str]


class PairwiseItem(BaseModel):
    question_id: str
    turns: list[str] = Field(default_factory=list, description="The user turns asked, in order.")
    baseline: str
    candidate_answer: list[str]
    baseline_answer: list[str]
    verdict_candidate_first: str = Field(description="Judge verdict with the candidate as A.")
    verdict_baseline_first: str = Field(description="Judge verdict with the baseline as A.")
    outcome: str = Field(description="'win', 'tie', 'loss' (for the candidate) or 'unparseable'.")


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


def load_questions(spec: str | Path, limit: int | None) -> list[Question]:
    """Questions of a JSONL file (``embedded:`` names a shipped one), the first ``limit`` of them."""
    path = resolve_asset(str(spec))
    if not path.exists():
        raise InputError(f"{path}: pairwise questions not found")
    questions = []
    for number, row in enumerate(read_jsonl(path), 1):
        turns = row.get("turns")
        if not isinstance(turns, list) or not 1 <= len(turns) <= 2 or not all(isinstance(t, str) and t.strip() for t in turns):
            raise InputError(f"{path}:{number}: 'turns' must be a list of one or two non-empty strings")
        questions.append(Question(id=str(row.get("id", number)), turns=turns))
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


def _outcome(first: str, second: str) -> str:
    """first: candidate as A; second: baseline as A. Returns the candidate's outcome."""
    if "unparseable" in (first, second):
        return "unparseable"
    score = {"A": 1, "tie": 0, "B": -1}[first] + {"B": 1, "tie": 0, "A": -1}[second]
    return "win" if score > 0 else "loss" if score < 0 else "tie"


def judge_pair(judge, questions: list[Question], candidate: dict[str, list[str]], baseline: dict[str, list[str]],
               baseline_name: str, judge_name: str, max_new_tokens: int, iterations: int, confidence: float,
               seed: int) -> tuple[PairwiseResult, list[PairwiseItem]]:
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
        items.append(PairwiseItem(question_id=q.id, turns=list(q.turns), baseline=baseline_name,
                                  candidate_answer=candidate[q.id], baseline_answer=baseline[q.id],
                                  verdict_candidate_first=first, verdict_baseline_first=second,
                                  outcome=_outcome(first, second)))
    counts = {k: sum(1 for i in items if i.outcome == k) for k in ("win", "tie", "loss", "unparseable")}
    scores = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[i.outcome] for i in items if i.outcome != "unparseable"]
    low, high = bootstrap_mean_ci(scores, iterations, confidence, seed)
    result = PairwiseResult(baseline=baseline_name, judge=judge_name, n=len(scores), wins=counts["win"],
                            ties=counts["tie"], losses=counts["loss"], unparseable=counts["unparseable"],
                            win_rate=sum(scores) / len(scores) if scores else None, ci_low=low, ci_high=high)
    return result, items


def item_rows(items: list[PairwiseItem]) -> list[dict[str, Any]]:
    return [i.model_dump() for i in items]
