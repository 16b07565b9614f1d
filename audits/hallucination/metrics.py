"""Hallucination metrics, declared with their directions, and the per-item scoring behind them.

Each metric is a mean over items of a per-item value, so every one gets a CI over items (an exact or score
interval where every item is 0 or 1, a BCa bootstrap otherwise, none below 10 items) and a paired comparison
between models asked the same items. HaluEval discrimination's item is a record: the mean of its two judgements.
"""

from __future__ import annotations

from harness.core.metrics import MetricSpec

#: Plain-language names for the report, by metric name after ``hallucination.``.
LABELS = {
    "closed_book.accuracy": "factual questions answered correctly",
    "closed_book.hallucination_rate": "questions answered with a wrong or made-up claim",
    "closed_book.abstention_rate": "unanswerable questions rightly declined",
    "closed_book.over_abstention_rate": "answerable questions wrongly declined",
    "halueval_qa.hallucination_rate": "HaluEval questions answered with the planted false answer",
    "halueval_qa.correct_rate": "HaluEval questions answered correctly",
    "halueval_discrimination.accuracy": "hallucinated answers told apart from right ones (HaluEval)",
    "closed_book.judged_hallucination_rate": "attempted factual answers the judge graded wrong",
    "closed_book.judged_not_attempted_rate": "factual questions not attempted (judge-graded)",
    "closed_book.judged_accuracy": "factual questions answered correctly (judge-graded)",
    "halueval_qa.judged_hallucination_rate": "attempted HaluEval answers the judge graded wrong",
    "halueval_qa.judged_not_attempted_rate": "HaluEval questions not attempted (judge-graded)",
    "halueval_qa.judged_accuracy": "HaluEval questions answered correctly (judge-graded)",
    "selfcheck.avg_neg_logprob": "answers inconsistent with the model's own resamples (n-gram score)",
    "selfcheck.max_neg_logprob": "least consistent sentence versus the model's own resamples (n-gram score)",
    "selfcheck.nli_contradiction": "answers contradicted by the model's own resamples",
    "truthfulqa_mc1.acc": "TruthfulQA: the true answer picked among false ones",
    "truthfulqa_mc2.acc": "TruthfulQA: likelihood put on the true answers",
}


def _rate(name: str, higher_is_better: bool, description: str, unit: str = "rate") -> MetricSpec:
    return MetricSpec(name=f"hallucination.{name}", higher_is_better=higher_is_better, description=description,
                      unit=unit, label=LABELS.get(name, ""))


CLOSED_BOOK_ACCURACY = _rate("closed_book.accuracy", True, "Factual closed-book questions answered with a gold "
                             "answer or alias.")
CLOSED_BOOK_HALLUCINATION_RATE = _rate(
    "closed_book.hallucination_rate", False, "Closed-book questions answered with a claim: a wrong answer to a "
    "factual question, or any answer to an unanswerable / false-premise one (declining and empty outputs are not "
    "hallucinations).")
CLOSED_BOOK_ABSTENTION_RATE = _rate("closed_book.abstention_rate", True, "Unanswerable / false-premise questions "
                                    "the model declined (appropriate abstention).")
CLOSED_BOOK_OVER_ABSTENTION_RATE = _rate("closed_book.over_abstention_rate", False, "Factual questions the model "
                                         "declined.")
HALUEVAL_QA_HALLUCINATION_RATE = _rate("halueval_qa.hallucination_rate", False, "HaluEval QA: answers holding the "
                                       "hallucinated answer and not the right one.")
HALUEVAL_QA_CORRECT_RATE = _rate("halueval_qa.correct_rate", True, "HaluEval QA: answers holding the right answer "
                                 "and not the hallucinated one.")
HALUEVAL_DISCRIMINATION_ACCURACY = _rate(
    "halueval_discrimination.accuracy", True, "HaluEval discrimination: judgements (is this answer hallucinated?) "
    "that are right, two per record (its right and its hallucinated answer), n = records; unparseable replies "
    "count as wrong.")

def _judged(check: str, what: str) -> tuple[MetricSpec, MetricSpec, MetricSpec]:
    """The SimpleQA-style metrics of one check graded by the judge (audit.hallucination.grading.judge)."""
    return (
        _rate(f"{check}.judged_hallucination_rate", False, f"{what}, graded by the judge: incorrect answers among "
              "those attempted (correct + incorrect; SimpleQA's 1 - correct given attempted)."),
        _rate(f"{check}.judged_not_attempted_rate", False, f"{what}, graded by the judge: answers not attempted "
              "(declined, too vague) among those graded."),
        _rate(f"{check}.judged_accuracy", True, f"{what}, graded by the judge: correct answers among those "
              "graded (SimpleQA's overall correct)."))


CLOSED_BOOK_JUDGED = _judged("closed_book", "Factual closed-book questions")
HALUEVAL_QA_JUDGED = _judged("halueval_qa", "HaluEval QA")
SELFCHECK_AVG_NEG_LOGPROB = _rate(
    "selfcheck.avg_neg_logprob", False, "SelfCheckGPT n-gram: mean over answers of the answer's average negative "
    "log-probability under an n-gram model of the sampled answers (higher = less consistent = more likely "
    "hallucinated).", unit="score")
SELFCHECK_MAX_NEG_LOGPROB = _rate("selfcheck.max_neg_logprob", False, "SelfCheckGPT n-gram: mean over answers of "
                                  "the sentence-averaged maximum negative log-probability.", unit="score")
SELFCHECK_NLI_CONTRADICTION = _rate("selfcheck.nli_contradiction", False, "SelfCheckGPT NLI: mean over answers of "
                                    "the mean over sentences of P(contradiction | sentence, sampled answer).")
TRUTHFULQA_MC1_ACC = _rate("truthfulqa_mc1.acc", True, "TruthfulQA MC1 accuracy through lm-eval (task "
                           "nift_truthfulqa_mc1).")
TRUTHFULQA_MC2_ACC = _rate("truthfulqa_mc2.acc", True, "TruthfulQA MC2 accuracy through lm-eval (task "
                           "nift_truthfulqa_mc2).")

#: Every metric the hallucination audit reports (a record holds values for the checks that ran).
HALLUCINATION_METRICS = (
    CLOSED_BOOK_ACCURACY, CLOSED_BOOK_HALLUCINATION_RATE, CLOSED_BOOK_ABSTENTION_RATE,
    CLOSED_BOOK_OVER_ABSTENTION_RATE, HALUEVAL_QA_HALLUCINATION_RATE, HALUEVAL_QA_CORRECT_RATE,
    HALUEVAL_DISCRIMINATION_ACCURACY, SELFCHECK_AVG_NEG_LOGPROB, SELFCHECK_MAX_NEG_LOGPROB,
    SELFCHECK_NLI_CONTRADICTION, TRUTHFULQA_MC1_ACC, TRUTHFULQA_MC2_ACC, *CLOSED_BOOK_JUDGED, *HALUEVAL_QA_JUDGED,
)
#: lm-eval task -> the metric its per-item ``acc`` feeds.
TRUTHFULQA_TASKS = {"nift_truthfulqa_mc1": TRUTHFULQA_MC1_ACC, "nift_truthfulqa_mc2": TRUTHFULQA_MC2_ACC}


def judged_item(grade: str) -> dict[str, float]:
    """One graded answer's contribution to each judged metric (``grade``: correct, incorrect, not_attempted);
    an answer not attempted is not an item of the hallucination rate."""
    item = {"judged_not_attempted_rate": float(grade == "not_attempted"), "judged_accuracy": float(grade == "correct")}
    if grade != "not_attempted":
        item["judged_hallucination_rate"] = float(grade == "incorrect")
    return item


def closed_book_item(kind: str, correct: bool, refused: bool, empty: bool) -> dict[str, float]:
    """One question's contribution to each closed-book metric (absent key: the item is not in that metric)."""
    claimed = not refused and not empty
    if kind == "unanswerable":
        return {"hallucination_rate": float(claimed), "abstention_rate": float(refused)}
    return {"accuracy": float(correct), "hallucination_rate": float(claimed and not correct),
            "over_abstention_rate": float(refused and not correct)}
