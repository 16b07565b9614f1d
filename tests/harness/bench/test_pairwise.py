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
