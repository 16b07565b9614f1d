import json

import pytest
from scripted import ScriptedGenerator

from harness.bench.pairwise import Question, judge_pair, load_questions
from harness.core.errors import InputError

# (verdict with the candidate as A, verdict with the baseline as A) per question
SCRIPT = {
    "q0": ("A", "B"),        # candidate wins both orders: consistent win
    "q1": ("A", "tie"),      # a win and a tie: inconsistent
    "q2": ("tie", "B"),      # a tie and a win: inconsistent
    "q3": ("A", "A"),        # opposite wins (position decided): inconsistent
    "q4": ("B", "A"),        # baseline wins both: consistent loss
    "q5": ("tie", "tie"),    # consistent tie
    "q6": ("I cannot say", "B"),  # unparseable: out of n and of the consistency share
}


def _judge(rule):
    questions = [Question(id=q, turns=["Say something."]) for q in SCRIPT]
    judge = ScriptedGenerator(lambda key, prompt: SCRIPT[key.split("|")[0]][0 if key.endswith("cand-first") else 1])
    answers = {q.id: ["answer"] for q in questions}
    return judge_pair(judge, questions, answers, answers, "base", "judge", 16, 200, 0.95, 0, rule)


def test_mt_bench_rule_calls_every_inconsistent_pair_a_tie():
    result, items = _judge("mt-bench")
    assert [i.outcome for i in items] == ["win", "tie", "tie", "tie", "loss", "tie", "unparseable"]
    assert (result.wins, result.ties, result.losses, result.unparseable, result.n) == (1, 4, 1, 1, 6)
    assert result.win_rate == pytest.approx(3 / 6) and result.verdict_rule == "mt-bench"
    assert [i.consistent for i in items] == [True, False, False, False, True, True, None]
    assert result.consistent == 3 and result.position_consistency == pytest.approx(0.5)
    assert result.consistency_ci_low < 0.5 < result.consistency_ci_high  # Wilson, 3 of 6


def test_lenient_rule_counts_a_win_and_a_tie_as_a_win():
    result, items = _judge("lenient")
    assert [i.outcome for i in items] == ["win", "win", "win", "tie", "loss", "tie", "unparseable"]
    assert (result.wins, result.ties, result.losses, result.n) == (3, 2, 1, 6)
    assert result.win_rate == pytest.approx(4 / 6)
    assert result.position_consistency == pytest.approx(0.5)  # the judge is as (in)consistent either way


def _write(path, rows):
    path.write_text("".join((json.dumps(r) if r is not None else "") + "\n" for r in rows))
    return path


def test_mt_bench_question_ids_are_used(tmp_path):
    path = _write(tmp_path / "question.jsonl", [
        {"question_id": 81, "category": "writing", "turns": ["Compose a travel blog post.", "Rewrite it."]},
        None,  # a blank line
        {"question_id": 82, "category": "writing", "turns": ["Draft an email."]},
        {"id": "own-1", "turns": ["Say hi."]},
        {"turns": ["No id at all."]},
    ])
    assert [q.id for q in load_questions(path, None)] == ["81", "82", "own-1", "5"]


def test_a_repeated_question_id_is_refused_naming_file_and_lines(tmp_path):
    path = _write(tmp_path / "question.jsonl", [{"question_id": 81, "turns": ["a"]}, None,
                                                {"question_id": 82, "turns": ["b"]}, {"question_id": 81, "turns": ["c"]}])
    with pytest.raises(InputError, match=r"question.jsonl:4: question id '81' is used again \(first on line 1\)$"):
        load_questions(path, None)


MT_BENCH_ROWS = [  # as in FastChat's data/mt_bench/question.jsonl
    {"question_id": 81, "category": "writing", "turns": ["Compose a travel blog post.", "Rewrite it."]},
    {"question_id": 111, "category": "math", "turns": ["Find the area.", "Now the circle."],
     "reference": ["Area is 3", "pi r^2"]},
]
ALPACA_EVAL_ROWS = [  # as in alpaca_eval.json: a JSON array, no ids
    {"dataset": "helpful_base", "instruction": "What are the names of some famous actors?",
     "output": "Some famous actors are...", "generator": "text_davinci_003"},
    {"dataset": "koala", "instruction": "Explain photosynthesis.", "output": "Plants...", "generator": "gpt4"},
]


def test_an_mt_bench_question_file_loads_as_published(tmp_path):
    questions = load_questions(_write(tmp_path / "question.jsonl", MT_BENCH_ROWS), None)
    assert [(q.id, q.category, q.reference) for q in questions] == [("81", "writing", []),
                                                                   ("111", "math", ["Area is 3", "pi r^2"])]
    assert questions[1].turns == ["Find the area.", "Now the circle."]


@pytest.mark.parametrize("layout", ["array", "jsonl"])
def test_an_alpaca_eval_file_loads_as_published(tmp_path, layout):
    path = tmp_path / "alpaca_eval.json"
    path.write_text(json.dumps(ALPACA_EVAL_ROWS, indent=4) if layout == "array"
                    else "".join(json.dumps(r) + "\n" for r in ALPACA_EVAL_ROWS))
    questions = load_questions(path, None)
    assert [q.turns for q in questions] == [["What are the names of some famous actors?"], ["Explain photosynthesis."]]
    assert [(q.id, q.category, q.reference_generator) for q in questions] == [
        ("1", "helpful_base", "text_davinci_003"), ("2", "koala", "gpt4")]
    assert questions[0].reference_output == "Some famous actors are..." and questions[0].reference == []


@pytest.mark.parametrize("row, message", [
    ({"question_id": 90, "category": "writing"}, (r"q.json:3: row has no 'turns' \(MT-Bench: question_id, category, "
                                                  r"turns, reference\) and no 'instruction' \(AlpacaEval")),
    ({"output": "x", "generator": "gpt4", "dataset": "oasst"}, r"q.json:3: AlpacaEval row without 'instruction'"),
    ({"question_id": 90, "turns": ["a"], "reference": ["1", "2"]}, (r"q.json:3: 'reference' must be a list of "
                                                                    r"strings, at most one per turn")),
    ({"text": "neither format"}, r"q.json:3: row has no 'turns'"),
])
def test_a_row_of_neither_format_names_the_missing_field_and_its_line(tmp_path, row, message):
    path = _write(tmp_path / "q.json", [MT_BENCH_ROWS[0], None, row])
    with pytest.raises(InputError, match=message):
        load_questions(path, None)


def test_a_bad_row_in_a_json_array_is_named_by_its_line(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps([ALPACA_EVAL_ROWS[0], {"dataset": "koala"}], indent=2))
    line = path.read_text().splitlines().index("  {", 2) + 1  # the second object's opening brace
    with pytest.raises(InputError, match=rf"q.json:{line} \(item 2\): AlpacaEval row without 'instruction'"):
        load_questions(path, None)
    path.write_text('[{"instruction": "a"},\n {"instruction": "b"\n]')
    with pytest.raises(InputError, match=r"q.json:3 \(item 2\): not valid JSON"):
        load_questions(path, None)


@pytest.mark.parametrize("text", ["", "  \n\n", "[]", " [\n ]\n"])
def test_a_question_file_without_questions_is_refused(tmp_path, text):
    # 0 questions made a pairwise result of n=0: a comparison over nothing
    path = tmp_path / "q.json"
    path.write_text(text)
    with pytest.raises(InputError, match=r"q.json: no questions$"):
        load_questions(path, None)


@pytest.mark.parametrize("text, message", [
    ('[{"instruction": "a"},\n {"instruction": "b"},\n]',
     r"q.json:2: not valid JSON \(a comma before the closing ']'\)"),
    ('[{"instruction": "a"}]\n\n{"instruction": "b"}\n',
     r"q.json:3: not valid JSON \(data after the array's closing ']'\)"),
    ('[{"instruction": "a"}]\n]', r"q.json:2: not valid JSON \(data after the array's closing ']'\)"),
])
def test_a_json_array_that_json_refuses_is_refused_naming_the_line(tmp_path, text, message):
    # the row-by-row reader kept the rows before the stray comma or closing bracket and dropped what followed
    path = tmp_path / "q.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_questions(path, None)
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_a_null_question_id_is_no_id(tmp_path):
    path = _write(tmp_path / "question.jsonl", [{"question_id": None, "id": None, "turns": ["a"]},
                                                {"id": None, "instruction": "b"}])
    assert [q.id for q in load_questions(path, None)] == ["1", "2"]  # not "None" twice
