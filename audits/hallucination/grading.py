"""Judge-graded correctness (SimpleQA's grades) and its agreement with the lexical matcher.

With ``audit.hallucination.grading.judge`` set, every factual closed-book answer and every HaluEval QA answer is
graded by the judge as correct, incorrect or not attempted against its gold answers, as SimpleQA's grader does
(Wei et al. 2024). A reply that names no single grade is counted as unparseable and graded nothing: never a
default grade. The lexical matcher grades the same answers on the same three grades
(:func:`lexical_grade`), and :func:`agreement` says how often the two agree (share and Cohen's kappa).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

Grade = Literal["correct", "incorrect", "not_attempted"]
GRADES: tuple[Grade, ...] = ("correct", "incorrect", "not_attempted")
_LETTERS = {"A": "correct", "B": "incorrect", "C": "not_attempted"}
# A grade is a capital letter A/B/C standing alone, or one of the words; "INCORRECT" is tried before "CORRECT".
_GRADE = re.compile(r"\b(?:(?P<letter>[ABC])|(?P<word>(?i:not[ _-]?attempted|incorrect|correct)))\b")


def parse_grade(reply: str) -> Grade | None:
    """The grade a judge's reply names: the letter (A/B/C, alone or as "A: CORRECT", "(B)", "**C**") or the word
    (CORRECT, INCORRECT, NOT_ATTEMPTED, any case); None when it names none or names two different grades."""
    text = reply.strip()
    if text.strip(" .*()[]:").upper() in _LETTERS:  # a lone lower-case letter too
        return _LETTERS[text.strip(" .*()[]:").upper()]
    named = set()
    for match in _GRADE.finditer(text[:300]):
        if match.group("letter"):
            named.add(_LETTERS[match.group("letter")])
        else:
            word = match.group("word").lower().replace(" ", "_").replace("-", "_")
            named.add("not_attempted" if word.startswith("not") else word)
    return named.pop() if len(named) == 1 else None


def lexical_grade(correct: bool, declined: bool) -> Grade:
    """The lexical matcher's answer on the judge's scale: it holds a gold answer (correct), else it declined or is
    empty (not attempted), else incorrect. (HaluEval's "neither" -- an answer holding neither the right nor the
    hallucinated answer -- is incorrect here: attempted and not right.)"""
    return "correct" if correct else "not_attempted" if declined else "incorrect"


class GraderAgreement(BaseModel):
    """How often the lexical matcher and the judge give an answer the same grade."""

    n: int = Field(description="Answers graded by both (the judge's reply parseable).")
    agreement: float | None = Field(description="Share of the n answers with the same grade; None when n = 0.")
    kappa: float | None = Field(description="Cohen's kappa over the three grades (sklearn); None when n = 0 or "
                                            "undefined (both graders gave every answer one and the same grade).")
    confusion: dict[str, dict[str, int]] = Field(description="Lexical grade -> judge grade -> answers.")


def agreement(pairs: list[tuple[Grade, Grade]]) -> GraderAgreement:
    """Agreement of (lexical grade, judge grade) pairs."""
    confusion = {lexical: {judged: 0 for judged in GRADES} for lexical in GRADES}
    for lexical, judged in pairs:
        confusion[lexical][judged] += 1
    if not pairs:
        return GraderAgreement(n=0, agreement=None, kappa=None, confusion=confusion)
    from sklearn.metrics import cohen_kappa_score

    lexical, judged = zip(*pairs)
    # Kappa is 0/0 exactly when both graders gave every answer one and the same grade (chance agreement 1).
    kappa = None if len(set(lexical) | set(judged)) == 1 else float(
        cohen_kappa_score(lexical, judged, labels=list(GRADES)))
    return GraderAgreement(n=len(pairs), agreement=sum(a == b for a, b in pairs) / len(pairs), kappa=kappa,
                           confusion=confusion)
