"""IFEval rows lm-eval would score without a word but not as written (no instructions at all, an argument it
misreads), and task data paths that are not a file, are refused when the tasks are written: a one-line InputError
naming the file and line, or saying what the path is."""

import json
import re

import pytest

from harness.core.errors import InputError
from harness.core.lmeval import LmEvalSettings, materialise

GOOD_ROW = {"key": 1000, "prompt": "Write a poem without commas.", "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}]}


def _refused(settings: LmEvalSettings, folder, match: str) -> str:
    with pytest.raises(InputError, match=match) as caught:
        materialise(settings, folder)
    assert "\n" not in str(caught.value)
    assert not folder.exists()  # checked before anything is written
    return str(caught.value)


def _ifeval(tmp_path, second: dict):
    path = tmp_path / "input_data.jsonl"
    path.write_text(json.dumps(GOOD_ROW) + "\n" + json.dumps({**GOOD_ROW, "key": 1001, **second}) + "\n")
    return LmEvalSettings(tasks=["nift_ifeval_local"], ifeval_path=str(path)), path


def test_a_row_without_instructions_is_refused(tmp_path):
    # lm-eval scores a row with no instructions as followed: a strict pass for any answer, even an empty one
    settings, path = _ifeval(tmp_path, {"instruction_id_list": [], "kwargs": []})
    _refused(settings, tmp_path / "tasks", rf"^{re.escape(str(path))}:2: field instruction_id_list is empty")


WORDS = "length_constraints:number_words"


@pytest.mark.parametrize("instruction, kwargs, message", [
    # lm-eval iterates a string as a list: "abc" asked for the keywords a, b and c
    ("keywords:existence", {"keywords": "abc"},
     r"kwargs\[0\]\.keywords of 'keywords:existence' must be a non-empty list of non-empty strings, got \"abc\"$"),
    ("keywords:forbidden_words", {"forbidden_words": ["ok", ""]},  # "" is found in every answer
     r"kwargs\[0\]\.forbidden_words of .* must be a non-empty list of non-empty strings, got \[\"ok\", \"\"\]$"),
    (WORDS, {"num_words": True, "relation": "at least"},  # counted as 1
     rf"kwargs\[0\]\.num_words of '{WORDS}' must be a whole number of at least 1, got true$"),
    (WORDS, {"num_words": 2.5, "relation": "at least"},
     r"kwargs\[0\]\.num_words of .* must be a whole number of at least 1, got 2\.5$"),
    (WORDS, {"num_words": -5, "relation": "at least"},  # every answer has at least -5 words
     r"kwargs\[0\]\.num_words of .* must be a whole number of at least 1, got -5$"),
    (WORDS, {"num_words": 0, "relation": "at least"},  # dropped by lm-eval, which draws a count of its own
     r"kwargs\[0\]\.num_words of .* got 0 \(lm-eval drops an empty value and draws one at random; null asks for "
     r"that\)$"),
    (WORDS, {"num_words": 300, "relation": ""},
     r"kwargs\[0\]\.relation of .* must be a non-empty string, got \"\" \(lm-eval drops"),
    ("keywords:frequency", {"keyword": " ", "frequency": 2, "relation": "at least"},  # "" matches everywhere
     r"kwargs\[0\]\.keyword of 'keywords:frequency' must be a non-empty string, got \" \"$"),
])
def test_an_argument_lm_eval_would_misread_is_refused(tmp_path, instruction, kwargs, message):
    settings, path = _ifeval(tmp_path, {"instruction_id_list": [instruction], "kwargs": [kwargs]})
    _refused(settings, tmp_path / "tasks", rf"^{re.escape(str(path))}:2: field {message}")


@pytest.mark.parametrize("instruction, kwargs", [
    (WORDS, {"num_words": 300, "relation": "at least"}),
    (WORDS, {"num_words": 300, "relation": None}),  # null: lm-eval draws the relation (seeded per item)
    ("keywords:existence", {"keywords": ["cat", "dog"]}),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem without commas."}),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 3, "let_relation": "at least"}),
])
def test_arguments_as_lm_eval_uses_them_are_accepted(tmp_path, instruction, kwargs):
    settings, _ = _ifeval(tmp_path, {"instruction_id_list": [instruction], "kwargs": [kwargs]})
    materialise(settings, tmp_path / "tasks")


def _path_of_kind(tmp_path, kind: str):
    if kind == "folder":
        path = tmp_path / "data"
        path.mkdir()
    elif kind == "broken link":
        path = tmp_path / "data.json"
        path.symlink_to(tmp_path / "moved.json")
    else:  # two links naming each other
        path, other = tmp_path / "data.json", tmp_path / "other.json"
        path.symlink_to(other)
        other.symlink_to(path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("folder", "is a folder, not a {what}"),
    ("broken link", r"is a broken link \(to .*moved\.json, which is not there\), not a {what}"),
    ("loop", r"is a broken link \(links that lead round in a loop\), not a {what}"),
])
@pytest.mark.parametrize("task, field, what", [
    ("nift_truthfulqa_mc1", "truthfulqa_path", "TruthfulQA file"),
    ("nift_ifeval_local", "ifeval_path", "data file of task nift_ifeval_local"),
])
def test_a_data_path_that_is_no_file_says_what_it_is(tmp_path, kind, message, task, field, what):
    # all three were "TruthfulQA file not found" (or "data for task ... not found"), which sends a user looking
    # for a file that is there
    path = _path_of_kind(tmp_path, kind)
    settings = LmEvalSettings(tasks=[task], **{field: str(path)})
    _refused(settings, tmp_path / "tasks", rf"^{re.escape(str(path))}: {message.format(what=what)}$")


def test_a_missing_data_file_is_still_not_found(tmp_path):
    path = tmp_path / "absent.json"
    _refused(LmEvalSettings(tasks=["nift_truthfulqa_mc1"], truthfulqa_path=str(path)), tmp_path / "tasks",
             rf"^{re.escape(str(path))}: TruthfulQA file not found$")
