"""Question files in the Alpaca layouts as published: an instruction's ``input`` is part of the question, as it is of
the same row read as training data; Stanford's self-instruct seed tasks are no question file."""

import json

import pytest
from shared import shared_data

from harness.bench.pairwise import load_questions
from harness.core.errors import InputError
from harness.core.store import RunStore
from harness.train.data import load_training_rows


def test_an_alpaca_input_is_asked_with_its_instruction_as_training_data_reads_it(tmp_path):
    path = shared_data("sft", "llamafactory_alpaca_en_demo.json")
    rows = json.loads(path.read_text())
    questions = load_questions(str(path), None)
    assert rows[5]["input"] == "Side 1 = 4\nSide 2 = 6\nSide 3 = 8"
    assert questions[5].turns == [f"{rows[5]['instruction']}\n\n{rows[5]['input']}"]
    assert questions[0].turns == [rows[0]["instruction"]]  # no input: the instruction alone
    training = load_training_rows(str(path), "auto", RunStore("r", tmp_path))
    assert [q.turns[0] for q in questions] == [row["prompt"][-1]["content"] for row in training.rows]


def test_a_null_or_empty_input_leaves_the_instruction_alone(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"instruction": "Name a colour.", "input": None}) + "\n"
                    + json.dumps({"instruction": "Name a fruit.", "input": ""}) + "\n")
    assert [q.turns for q in load_questions(str(path), None)] == [["Name a colour."], ["Name a fruit."]]


def test_an_input_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"instruction": "Add these.", "input": [1, 2]}) + "\n")
    with pytest.raises(InputError, match=r"q\.jsonl:1: AlpacaEval field 'input' must be a string"):
        load_questions(str(path), None)


def test_stanford_seed_tasks_are_refused_with_a_hint():
    path = shared_data("sft", "stanford_alpaca_seed_tasks.jsonl")
    with pytest.raises(InputError) as caught:
        load_questions(str(path), None)
    message = str(caught.value)
    assert message.startswith(f"{path}:1: ") and "instances" in message and "\n" not in message
