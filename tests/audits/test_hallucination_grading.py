"""Judge-graded correctness in the hallucination audit: grades parsed, SimpleQA-style rates, agreement with the
lexical matcher, all on a scripted judge."""

import json

import pytest
from scripted import ScriptedGenerator
from shared import shared_data

from audits.config import AuditConfig
from audits.hallucination.audit import VERSION, run_hallucination_audit
from audits.hallucination.grading import agreement, parse_grade
from harness.core.generation import Generation
from harness.core.stats import proportion_interval
from harness.core.store import RunStore


@pytest.mark.parametrize("reply, grade", [
    ("A", "correct"), ("B", "incorrect"), ("C", "not_attempted"), (" b.", "incorrect"), ("A: CORRECT", "correct"),
    ("(B)", "incorrect"), ("**C**", "not_attempted"), ("INCORRECT", "incorrect"), ("not attempted", "not_attempted"),
    ("Grade: NOT_ATTEMPTED", "not_attempted"), ("The answer is correct.", "correct"),
    ("Maybe", None), ("", None), ("A or B", None), ("CORRECT? No, INCORRECT", None), ("I cannot grade this", None),
])
def test_grades_are_parsed_from_letters_or_words(reply, grade):
    assert parse_grade(reply) == grade


def test_agreement_share_and_kappa_by_hand():
    pairs = [("correct", "correct"), ("correct", "correct"), ("incorrect", "incorrect"),
             ("not_attempted", "not_attempted"), ("correct", "incorrect"), ("not_attempted", "incorrect")]
    result = agreement(pairs)
    # p_o = 4/6; p_e = (3*2 + 1*3 + 2*1) / 36 = 11/36; kappa = (24 - 11) / (36 - 11) = 13/25
    assert (result.n, result.agreement) == (6, pytest.approx(4 / 6))
    assert result.kappa == pytest.approx(0.52)
    assert result.confusion["not_attempted"] == {"correct": 0, "incorrect": 1, "not_attempted": 1}
    assert agreement([]).model_dump(exclude={"confusion"}) == {"n": 0, "agreement": None, "kappa": None}
    same = agreement([("correct", "correct")] * 3)
    assert (same.agreement, same.kappa) == (1.0, None)  # kappa is 0/0 when both give one grade throughout


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


CLOSED_BOOK = [
    {"id": "k1", "kind": "factual", "question": "On which continent is Kenya located?", "answers": ["Africa"]},
    {"id": "k2", "kind": "factual", "question": "What nationality was Amelia Earhart?", "answers": ["American"]},
    {"id": "k3", "kind": "factual", "question": "Who wrote Beowulf?", "answers": ["unknown poet"]},
    {"id": "k4", "kind": "factual", "question": "Capital of Australia?", "answers": ["Canberra"]},
    {"id": "k5", "kind": "factual", "question": "Capital of Japan?", "answers": ["Tokyo"]},
    {"id": "k6", "kind": "factual", "question": "Largest planet?", "answers": ["Jupiter"]},
    {"id": "k7", "kind": "factual", "question": "Who painted the Mona Lisa?", "answers": ["Leonardo da Vinci",
                                                                                        "Leonardo"]},
    {"id": "u1", "kind": "unanswerable", "question": "Who directed Midnight Over Quellar Bay?", "answers": []},
]
ANSWERS = {"k1": "Kenya is located on the African continent", "k2": "Not American; she was British",
           "k3": "The author is not known.", "k4": "Sydney", "k5": "Tokyo", "k6": "Saturn, not Jupiter",
           "k7": "Leonardo da Vinci", "u1": "I don't know.",
           "halueval-1": "Cadmium chloride is a simple alcohol", "halueval-2": "6.213 km"}
#: The scripted judge's reply per graded answer (k7's request fails).
GRADES = {"closed_book:k1": "A", "closed_book:k2": "B: INCORRECT", "closed_book:k3": "C", "closed_book:k4": "Maybe",
          "closed_book:k5": "A", "closed_book:k6": "A", "halueval_qa:halueval-1": "B", "halueval_qa:halueval-2": "**A**"}


class ScriptedJudge(ScriptedGenerator):
    def generate(self, requests, seed, on_progress=None):
        self.requests.extend(requests)
        return [Generation(key=r.key, finish_reason="error", error="HTTP 503") if r.key == "closed_book:k7" else
                Generation(key=r.key, text=GRADES[r.key], finish_reason="stop") for r in requests]


def _halueval_rows():
    path = shared_data("halueval", "qa_one-turn_data.json")
    rows = [json.loads(line) for line in path.read_text().splitlines()[:10]]
    cadmium = next(r for r in rows if r["question"].startswith("Cadmium Chloride"))
    bathurst = next(r for r in rows if r["right_answer"] == "6.213 km long")
    return [cadmium, bathurst]


def _audit(tmp_path, tiny_model, scripted_judge, grading=None):
    config = AuditConfig(hallucination={
        "closed_book": {"questions": str(_write(tmp_path / "cb.jsonl", CLOSED_BOOK))},
        "halueval": {"path": str(_write(tmp_path / "he.jsonl", _halueval_rows())), "discrimination": False},
        "selfcheck": {"enabled": False}, "truthfulqa": {"enabled": False}, "grading": grading or {}}, threads=1)
    return run_hallucination_audit(config, str(tiny_model), [], RunStore("r"), judge=scripted_judge,
                                   generators={"model": ScriptedGenerator(lambda key, prompt: ANSWERS[key])})


def test_the_judge_grades_correctness_and_the_record_reports_its_agreement_with_the_matcher(tiny_model, tmp_path):
    judge = ScriptedJudge(lambda key, prompt: "")
    record = _audit(tmp_path, tiny_model, judge, {"judge": {"backend": "openai", "model": "grader-x",
                                                            "base_url": "http://127.0.0.1:9/v1"}})
    assert record.version == VERSION == "4"
    assert record.grader == {"model": "grader-x", "backend": "openai", "note": ""}
    # factual closed-book questions and HaluEval QA only: the unanswerable question is not graded
    assert [r.key for r in judge.requests] == [f"closed_book:k{i}" for i in range(1, 8)] + [
        "halueval_qa:halueval-1", "halueval_qa:halueval-2"]
    k2 = judge.requests[1].prompt
    assert "Question: What nationality was Amelia Earhart?" in k2 and "Gold answer: American" in k2
    assert "Answer to grade: Not American; she was British" in k2
    assert "Gold answer: Leonardo da Vinci | Leonardo" in judge.requests[6].prompt
    cand = record.summaries["model"]
    # closed book graded: k1 correct, k2 incorrect, k3 not attempted, k5 correct, k6 correct; k4 unparseable,
    # k7's request failed: 4 attempted, 1 incorrect
    rate = cand["hallucination.closed_book.judged_hallucination_rate"]
    assert (rate.value, rate.n, rate.interval) == (0.25, 4, "clopper-pearson")
    assert (rate.ci_low, rate.ci_high) == proportion_interval(1, 4, 0.95, "clopper-pearson")
    assert (cand["hallucination.closed_book.judged_not_attempted_rate"].value,
            cand["hallucination.closed_book.judged_not_attempted_rate"].n) == (0.2, 5)
    assert cand["hallucination.closed_book.judged_accuracy"].value == 0.6
    assert record.outcomes["model"]["closed_book.judged"] == {"correct": 3, "incorrect": 1, "judge_error": 1,
                                                              "not_attempted": 1, "unparseable": 1}
    # HaluEval QA: the judge catches the answer about the wrong thing that matching counts correct
    assert cand["hallucination.halueval_qa.correct_rate"].value == 1.0  # lexical
    assert (cand["hallucination.halueval_qa.judged_hallucination_rate"].value,
            cand["hallucination.halueval_qa.judged_hallucination_rate"].n) == (0.5, 2)
    # agreement: lexical k1 c, k2 i, k3 n, k5 c, k6 i ("not Jupiter") vs judge c, i, n, c, c
    # p_o = 4/5, p_e = (2*3 + 2*1 + 1*1) / 25 = 9/25, kappa = (20 - 9) / (25 - 9) = 11/16
    closed = record.grader_agreement["model"]["closed_book"]
    assert (closed.n, closed.agreement, closed.kappa) == (5, 0.8, pytest.approx(11 / 16))
    assert closed.confusion["incorrect"]["correct"] == 1
    # HaluEval: both lexical correct; the judge says one incorrect: p_o = 1/2 = p_e, kappa 0
    halu = record.grader_agreement["model"]["halueval_qa"]
    assert (halu.n, halu.agreement, halu.kappa) == (2, 0.5, 0.0)
    rows = {(r["suite"], r["item_id"]): r for r in map(json.loads, (
        RunStore("r").stage_dir("audit", "hallucination") / "samples.jsonl").read_text().splitlines())}
    cadmium = rows[("halueval_qa", "halueval-1")]
    assert cadmium["scores"] == {"correct": 1.0, "judged_correct": 0.0} and cadmium["flags"]["judged_incorrect"]
    assert rows[("closed_book", "k4")]["flags"]["judge_unparseable"]
    assert "judged_correct" not in rows[("closed_book", "k4")]["scores"]
    assert "judge_unparseable" not in rows[("closed_book", "u1")]["flags"]


def test_without_a_judge_the_audit_grades_lexically_only(tiny_model, tmp_path):
    judge = ScriptedJudge(lambda key, prompt: "")
    record = _audit(tmp_path, tiny_model, judge)
    assert judge.requests == []
    assert record.grader is None and record.grader_agreement == {}
    assert not any(".judged_" in metric for metric in record.summaries["model"])
    # the fixed matcher: k1 (African) and k5 correct; k2 negated, k6 negated, k4 wrong; k7 correct
    assert record.summaries["model"]["hallucination.closed_book.accuracy"].value == pytest.approx(3 / 7)
    assert record.outcomes["model"]["closed_book.factual"] == {"correct": 3, "hallucinated": 3, "refused": 1}



def test_the_grader_sits_behind_the_generation_cache_and_an_answer_graded_once_is_not_graded_again(
        tiny_model, tmp_path):
    from fake_openai import FakeOpenAI

    def grade_by_content(prompt):
        return "A" if "Answer to grade: Tokyo" in prompt or "Answer to grade: Leonardo" in prompt else "B"

    with FakeOpenAI(reply=grade_by_content, first_status=None) as server:
        grading = {"judge": {"backend": "openai", "model": "grader-x", "base_url": server.base_url,
                             "price_per_1k_prompt_tokens": 1.0}}
        config = AuditConfig(hallucination={
            "closed_book": {"questions": str(_write(tmp_path / "cb.jsonl", CLOSED_BOOK))},
            "halueval": {"path": None}, "selfcheck": {"enabled": False}, "truthfulqa": {"enabled": False},
            "grading": grading}, threads=1)
        answers = {"model": ScriptedGenerator(lambda key, prompt: ANSWERS[key])}
        first = run_hallucination_audit(config, str(tiny_model), [], RunStore("r1"), generators=answers)
        asked = len(server.answered)
        again = run_hallucination_audit(config, str(tiny_model), [], RunStore("r2"), generators=answers)
    assert asked == 7 and len(server.answered) == 7  # the second audit (another run, same home) asked nothing
    assert (first.grader_usage.calls, first.grader_usage.cache_hits) == (7, 0)
    assert first.grader_usage.estimated_cost_usd > 0
    assert (again.grader_usage.calls, again.grader_usage.cache_hits, again.grader_usage.estimated_cost_usd) == (0, 7, 0.0)
    assert again.grader_agreement == first.grader_agreement
    # k5 (Tokyo) and k7 (Leonardo da Vinci) graded correct by the judge, the rest incorrect
    assert first.summaries["model"]["hallucination.closed_book.judged_accuracy"].value == pytest.approx(2 / 7)
    closed = first.grader_agreement["model"]["closed_book"]
    assert closed.n == 7 and closed.confusion["correct"]["correct"] == 2
