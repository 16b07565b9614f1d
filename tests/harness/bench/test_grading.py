import json

import pytest
from scripted import ScriptedGenerator

from harness.bench.grading import (
    compare_grades,
    grade,
    grading_prompt,
    load_judge_prompts,
    parse_rating,
    summarise,
)
from harness.bench.pairwise import Question
from harness.core.assets import resolve_asset
from harness.core.errors import InputError

TEMPLATES = load_judge_prompts(resolve_asset("embedded:judges/single_grading.jsonl"))
QUESTIONS = [
    Question(id="w1", category="writing", turns=["Write a haiku.", "Now make it sad."]),
    Question(id="w2", category="writing", turns=["Write a limerick."]),
    Question(id="m1", category="math", turns=["What is 6 * 7?", "And 6 * 8?"], reference=["42", "48"]),
    Question(id="m2", category="math", turns=["What is 2 + 2?"], reference=["4"]),
]
ANSWERS = {model: {q.id: [f"{model} answer {q.id} t{t + 1}" for t in range(len(q.turns))] for q in QUESTIONS}
           for model in ("cand", "base")}
# model -> question -> the judge's reply per turn
REPLIES = {
    "cand": {"w1": ["Good. Rating: [[8]]", "Rating: [[6]]"], "w2": ["[[9]]"], "m1": ["[[10]]", "Wrong. [[4]]"],
             "m2": ["Rating: [[7]]"]},
    "base": {"w1": ["[[5]]", "[[5]]"], "w2": ["It is fine, I would say seven."], "m1": ["[[6]]", "[[6]]"],
             "m2": ["[[3]]"]},
}


def _graded():
    judge = ScriptedGenerator(lambda key, prompt: REPLIES[key.split("|")[0]][key.split("|")[1]][
        int(key.rsplit("turn", 1)[1]) - 1])
    return judge, grade(judge, TEMPLATES, QUESTIONS, ANSWERS, 256, 0)


@pytest.mark.parametrize("reply, rating", [("Rating: [[7]]", 7.0), ("[[ 10 ]]", 10.0), ("[[7.5]]", 7.5),
                                           ("[[7]] and again [[7]]", 7.0), ("Rating: 7", None), ("[7]", None),
                                           ("[[5]] ... Rating: [[8]]", None), ("[[0]]", None), ("[[11]]", None),
                                           ("", None)])
def test_rating_parsing_takes_only_one_double_bracketed_rating_from_1_to_10(reply, rating):
    assert parse_rating(reply) == rating


def test_scores_per_question_turn_category_and_overall_from_a_scripted_judge():
    _, rows = _graded()
    cand = {r.question_id: r for r in rows if r.model == "cand"}
    assert {q: r.score for q, r in cand.items()} == {"w1": 7.0, "w2": 9.0, "m1": 7.0, "m2": 7.0}
    assert cand["m1"].ratings == [10.0, 4.0] and cand["m1"].judge_replies == ["[[10]]", "Wrong. [[4]]"]
    grades = summarise(rows, "cand", 500, 0.95, 0)
    assert grades.overall.mean == pytest.approx(7.5) and grades.overall.n == 4
    # 4 questions: fewer than MIN_BOOTSTRAP_ITEMS, no interval (the percentile bootstrap's was too narrow)
    assert (grades.overall.ci_low, grades.overall.ci_high, grades.overall.interval) == (None, None, None)
    assert grades.per_turn["1"].mean == pytest.approx((8 + 9 + 10 + 7) / 4) and grades.per_turn["1"].n == 4
    assert grades.per_turn["2"].mean == pytest.approx(5.0) and grades.per_turn["2"].n == 2
    assert {c: (s.mean, s.n) for c, s in grades.per_category.items()} == {"math": (7.0, 2), "writing": (8.0, 2)}
    assert (grades.judgements, grades.unparseable, grades.unscored_questions) == (6, 0, 0)


def test_an_unparseable_rating_is_counted_and_never_a_default_score():
    _, rows = _graded()
    w2 = next(r for r in rows if r.model == "base" and r.question_id == "w2")
    assert w2.ratings == [None] and w2.score is None and w2.judge_replies == ["It is fine, I would say seven."]
    grades = summarise(rows, "base", 500, 0.95, 0)
    assert (grades.judgements, grades.unparseable, grades.unscored_questions) == (6, 1, 1)
    assert grades.overall.n == 3 and grades.overall.mean == pytest.approx((5 + 6 + 3) / 3)
    assert grades.per_category["writing"].n == 1 and grades.per_turn["1"].n == 3


def test_paired_comparison_by_question_overall_and_per_category():
    _, rows = _graded()
    comparisons = {c.metric: c for c in compare_grades(rows, "cand", "base", 500, 0.95, 0)}
    assert set(comparisons) == {"score", "math", "writing"}
    overall = comparisons["score"]  # w2 has no baseline score: 3 shared questions
    assert (overall.task, overall.n, overall.candidate_mean, overall.baseline_mean) == ("mt_bench", 3, 7.0, pytest.approx(14 / 3))
    assert overall.mean_difference == pytest.approx(7 / 3) and overall.test == "sign"
    assert (overall.wins, overall.losses, overall.ties) == (3, 0, 0)
    # 3 shared questions: no bootstrap interval, and so nothing for a non-inferiority rule to pass on
    assert (overall.ci_low, overall.ci_high, overall.interval) == (None, None, None)
    assert comparisons["math"].mean_difference == pytest.approx(2.5) and comparisons["writing"].n == 1


def _rated(model: str, ratings: list[float], category: str | None = None):
    from harness.bench.grading import GradedAnswer

    return [GradedAnswer(model=model, question_id=str(i), category=category, turns=["q"], answers=["a"],
                         templates=["single"], judge_replies=[f"[[{r}]]"], ratings=[r], score=r)
            for i, r in enumerate(ratings)]


def test_ratings_of_1_everywhere_are_still_compared_as_a_scale():
    rows = _rated("c", [1.0] * 12) + _rated("b", [1.0] * 12)
    [overall] = compare_grades(rows, "c", "b", 200, 0.95, 0)
    # not a proportion: a sign test (Newcombe, which a 0/1 reading would take, gives an interval at any n), and
    # for differences that do not vary the bound on the share of other differences, on the 1-10 scale
    share = 1 - 0.025 ** (1 / 12)
    assert overall.test == "sign" and (overall.n, overall.interval) == (12, "constant-bounded")
    assert (overall.ci_low, overall.ci_high) == pytest.approx((-9 * share, 9 * share))


def test_ratings_over_ten_or_more_questions_have_a_bca_interval():
    cand = [8.0, 6.0, 9.0, 7.0, 10.0, 5.0, 8.0, 7.0, 9.0, 6.0, 8.0, 7.0]
    base = [6.0, 6.0, 7.0, 5.0, 8.0, 5.0, 7.0, 4.0, 8.0, 6.0, 5.0, 6.0]
    rows = _rated("cand", cand, "writing") + _rated("base", base, "writing")
    grades = summarise(rows, "cand", 1000, 0.95, 0)
    overall = grades.overall
    assert (overall.n, overall.interval) == (12, "bootstrap-bca")
    assert overall.mean == pytest.approx(sum(cand) / 12) and overall.ci_low < overall.mean < overall.ci_high
    assert 5.0 <= overall.ci_low and overall.ci_high <= 10.0
    comparisons = {c.metric: c for c in compare_grades(rows, "cand", "base", 1000, 0.95, 0)}
    paired = comparisons["score"]
    assert (paired.n, paired.interval, paired.test) == (12, "bootstrap-bca", "sign")
    assert paired.mean_difference == pytest.approx(17 / 12) and 0 < paired.ci_low < 17 / 12 < paired.ci_high
    assert comparisons["writing"].interval == "bootstrap-bca"


def test_second_turn_is_graded_with_the_first_exchange_and_references_are_shown():
    judge, rows = _graded()
    prompts = {r.key: r.prompt for r in judge.requests}
    first, second = prompts["cand|w1|turn1"], prompts["cand|w1|turn2"]
    assert "Write a haiku." in first and "cand answer w1 t1" in first and "Now make it sad." not in first
    # the second turn's prompt holds the whole conversation, the first exchange before the graded reply
    order = [second.index(s) for s in ("Write a haiku.", "cand answer w1 t1", "Now make it sad.", "cand answer w1 t2")]
    assert order == sorted(order) and "second message" in second
    math_first, math_second = prompts["cand|m1|turn1"], prompts["cand|m1|turn2"]
    assert "42" in math_first and "reference" in math_first.lower() and "48" not in math_first
    assert "42" in math_second and "48" in math_second
    assert "reference" not in first.lower()
    m1 = next(r for r in rows if r.model == "cand" and r.question_id == "m1")
    assert m1.templates == ["single-reference", "multi-turn-reference"] and m1.reference == ["42", "48"]
    assert next(r for r in rows if r.question_id == "w1").templates == ["single", "multi-turn"]
    assert all("[[" in p for p in prompts.values())  # every prompt asks for the [[n]] form


def test_a_judge_prompt_file_without_all_four_templates_is_refused(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"name": "single", "template": "{question_1} {answer_1}"}\n')
    with pytest.raises(InputError, match=r"prompts.jsonl: judge prompts missing: single-reference, multi-turn, "
                                         r"multi-turn-reference"):
        load_judge_prompts(path)


def _judge_prompt_file(tmp_path, replace=None, extra=()):
    """The shipped judge prompts, with template ``name`` replaced (``replace``: name -> template) and rows added."""
    rows = [{"name": n, "template": TEMPLATES[n]} for n in TEMPLATES]
    rows = [{**r, "template": (replace or {}).get(r["name"], r["template"])} for r in rows] + list(extra)
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_judge_prompt_defined_twice_is_refused_naming_both_lines(tmp_path):
    path = _judge_prompt_file(tmp_path, extra=[{"name": "single", "template": "{question_1} {answer_1}"}])
    with pytest.raises(InputError, match=r"prompts.jsonl:5: judge prompt 'single' is defined again "
                                         r"\(first on line 1\)$"):
        load_judge_prompts(path)


@pytest.mark.parametrize("name, template, message", [
    # the second turn's fields in a one-turn template: formatted only when grading, after every answer exists
    ("single", "{question_1} {answer_2}", r"prompts.jsonl:1: template 'single' uses unknown field \{answer_2\}; "
                                          r"it can use \{question_1\}, \{answer_1\}, \{reference_1\}"),
    ("multi-turn", 'Reply as JSON: {"rating": 5} {answer_2}', r"prompts.jsonl:3: template 'multi-turn' uses "
                                                              r"unknown field \{\"rating\"\}"),
    ("single-reference", "{reference_1} }", r"prompts.jsonl:2: template 'single-reference' is not a format "
                                            r"string \(Single '\}' encountered"),
    ("single", "{answer_1.upper}", r"prompts.jsonl:1: template 'single' uses unknown field \{answer_1.upper\}"),
    ("single", "{answer_1:d}", r"prompts.jsonl:1: template 'single' cannot be formatted \(ValueError"),
])
def test_a_template_the_grader_cannot_format_is_refused_when_loaded(tmp_path, name, template, message):
    with pytest.raises(InputError, match=message):
        load_judge_prompts(_judge_prompt_file(tmp_path, {name: template}))


def test_literal_braces_written_doubled_load_and_format(tmp_path):
    templates = load_judge_prompts(_judge_prompt_file(tmp_path, {"single": '{{"rating": n}} {question_1} {answer_1}'}))
    assert grading_prompt(templates, QUESTIONS[1], ["An answer."], 0) == (
        "single", '{"rating": n} Write a limerick. An answer.')
