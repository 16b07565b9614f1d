"""A question row whose id, question or reference could be read more than one way is refused naming its line: read
one way, a question would be keyed by text no one wrote, asked without half of what it says, or graded without
the reference it gives."""

import json

import pytest

from harness.bench.pairwise import load_questions
from harness.core.errors import InputError


def _load(tmp_path, row):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question_id": 80, "turns": ["First."]}) + "\n\n" + json.dumps(row) + "\n")
    return load_questions(path, None)


@pytest.mark.parametrize("field", ["question_id", "id"])
@pytest.mark.parametrize("value, shown", [
    (True, "true"), ([1], r"\[1\]"), ({"a": 1}, r'\{"a": 1\}'), (1.0, r"1\.0"), ("", '""'), ("  ", '"  "'),
])
def test_an_id_that_is_not_a_string_or_a_whole_number_is_refused(tmp_path, field, value, shown):
    # str() made ids "True", "[1]", "{'a': 1}", and 1.0 another question than 1
    with pytest.raises(InputError, match=rf"q\.jsonl:3: field '{field}' must be a non-blank string or a whole "
                                         rf"number, got {shown}$"):
        _load(tmp_path, {field: value, "turns": ["Second."]})


@pytest.mark.parametrize("value, expected", [(81, "81"), ("mt-81", "mt-81"), (None, "3")])
def test_a_string_or_whole_number_id_is_kept(tmp_path, value, expected):
    assert [q.id for q in _load(tmp_path, {"question_id": value, "turns": ["Second."]})] == ["80", expected]


def test_a_question_id_and_an_id_that_differ_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"q\.jsonl:3: fields 'question_id' \('1'\) and 'id' \('other'\) name the "
                                         r"question differently; keep one$"):
        _load(tmp_path, {"question_id": 1, "id": "other", "turns": ["Second."]})
    # the same id twice is one id: nothing is dropped
    assert [q.id for q in _load(tmp_path, {"question_id": 1, "id": "1", "turns": ["Second."]})] == ["80", "1"]


def test_a_row_with_both_an_instruction_and_turns_is_refused(tmp_path):
    # read as AlpacaEval, the turns were dropped and only the instruction asked
    with pytest.raises(InputError, match=r"q\.jsonl:3: fields 'instruction' \(AlpacaEval\) and 'turns' \(MT-Bench\) "
                                         r"both hold the question; keep one$"):
        _load(tmp_path, {"instruction": "i", "turns": ["t"]})


@pytest.mark.parametrize("reference, shown", [(False, "false"), (0, "0"), ({}, r"\{\}"), (7, "7"), ([1], r"\[1\]")])
def test_a_reference_that_is_not_text_is_refused(tmp_path, reference, shown):
    # false, 0 and {} were read as no reference: the judge graded a math question without its answer
    with pytest.raises(InputError, match=rf"q\.jsonl:3: 'reference' must be a list of strings, at most one per turn, "
                                         rf"got {shown}$"):
        _load(tmp_path, {"question_id": 111, "category": "math", "turns": ["Find x."], "reference": reference})


@pytest.mark.parametrize("reference, expected", [(None, []), ("", []), ([], []), ("x = 2", ["x = 2"]),
                                                 (["x = 2"], ["x = 2"])])
def test_a_null_or_text_reference_is_read_as_before(tmp_path, reference, expected):
    row = {"question_id": 111, "category": "math", "turns": ["Find x."], "reference": reference}
    assert _load(tmp_path, row)[1].reference == expected
