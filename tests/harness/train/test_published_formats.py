"""Training data in the layouts LLaMA-Factory and others publish: Alpaca's ``system`` and ``history``, ShareGPT's
row-level ``system``, and the binary files (Parquet, gzip) a user may point ``train[].data`` at."""

import gzip
import json
import re

import pytest

from harness.core.errors import InputError
from harness.core.store import RunStore
from harness.train.data import load_training_rows

ALPACA = {"instruction": "Describe a process of making crepes.", "input": "", "output": "Mix flour, eggs and milk."}


def _rows(tmp_path, rows, name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps(rows))
    return load_training_rows(str(path), "auto", RunStore("r", tmp_path / "runs"))


def test_alpaca_system_and_history_come_before_the_instruction(tmp_path):
    row = {**ALPACA, "system": "Answer only in French.", "history": [["What is 2+2?", "4"], ["And 3+3?", "6"]]}
    rows = _rows(tmp_path, [row]).rows
    assert rows[0]["prompt"] == [{"role": "system", "content": "Answer only in French."},
                                 {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"},
                                 {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6"},
                                 {"role": "user", "content": ALPACA["instruction"]}]
    assert rows[0]["completion"] == [{"role": "assistant", "content": ALPACA["output"]}]
    assert len(rows) == 3  # every assistant turn is trained on, as in any other conversation


def test_an_empty_alpaca_system_and_history_add_nothing(tmp_path):
    rows = _rows(tmp_path, [{**ALPACA, "system": "", "history": []}]).rows
    assert rows[0]["prompt"] == [{"role": "user", "content": ALPACA["instruction"]}]


@pytest.mark.parametrize("history, field", [("What is 2+2?", "history"), ([["What is 2+2?"]], "history[0]"),
                                            ([["What is 2+2?", 4]], "history[0]")])
def test_a_malformed_alpaca_history_is_refused(tmp_path, history, field):
    with pytest.raises(InputError, match=rf"data\.json:1 \(item 1\): field '{re.escape(field)}' must be"):
        _rows(tmp_path, [{**ALPACA, "history": history}])


def test_a_sharegpt_row_level_system_is_the_first_message(tmp_path):
    row = {"system": "You are a pirate.", "conversations": [{"from": "human", "value": "Hello?"},
                                                           {"from": "gpt", "value": "Arr."}]}
    assert _rows(tmp_path, [row]).rows[0]["prompt"] == [{"role": "system", "content": "You are a pirate."},
                                                        {"role": "user", "content": "Hello?"}]


def test_a_sharegpt_system_field_beside_a_system_turn_is_refused(tmp_path):
    row = {"system": "You are a pirate.", "conversations": [{"from": "system", "value": "You are a parrot."},
                                                           {"from": "human", "value": "Hello?"},
                                                           {"from": "gpt", "value": "Arr."}]}
    with pytest.raises(InputError, match=r"data\.json:1 \(item 1\): .*'system'.*system turn"):
        _rows(tmp_path, [row])


def test_json_lines_named_json_are_read_as_json_lines(tmp_path):
    """What ``datasets.Dataset.to_json("x.json")`` writes by default."""
    path = tmp_path / "lines.json"
    path.write_text(json.dumps(ALPACA) + "\n" + json.dumps({**ALPACA, "instruction": "Describe tea."}) + "\n")
    rows = load_training_rows(str(path), "auto", RunStore("r", tmp_path / "runs")).rows
    assert [r["prompt"][0]["content"] for r in rows] == [ALPACA["instruction"], "Describe tea."]


def _parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([ALPACA]), path)  # as an HF export of an Alpaca set


@pytest.mark.parametrize("name, write, kind", [
    ("data.jsonl.gz", lambda path: path.write_bytes(gzip.compress(json.dumps(ALPACA).encode() + b"\n")), "gzip"),
    ("data.parquet", _parquet, "Parquet"),
])
def test_a_binary_file_is_named_as_what_it_is(tmp_path, name, write, kind):
    path = tmp_path / name
    write(path)
    with pytest.raises(InputError) as caught:
        load_training_rows(str(path), "auto", RunStore("r", tmp_path / "runs"))
    assert str(caught.value).startswith(f"{path}: this is a {kind} file, not JSON Lines")
    assert "UTF-8" not in str(caught.value)


def test_an_error_in_a_json_array_names_the_line_its_item_starts_on(tmp_path):
    # Alpaca's alpaca_data.json is an indented array: "data.json:3" used to mean the third item, wherever it was
    path = tmp_path / "data.json"
    path.write_text(json.dumps([ALPACA, ALPACA, {"instruction": "Describe tea.", "input": ""}], indent=4))
    third = path.read_text().split("\n").index("    {", 8) + 1  # the line the third object opens on
    assert third > 3
    with pytest.raises(InputError, match=rf"data\.json:{third} \(item 3\): field 'output' is missing"):
        load_training_rows(str(path), "auto", RunStore("r", tmp_path / "runs"))
    path.write_text('[\n  {"instruction": "a", "output": "b",\n   "output": "c"}\n]')
    with pytest.raises(InputError, match=r"data\.json:2 \(item 1\): key 'output' is repeated in one object"):
        load_training_rows(str(path), "auto", RunStore("r", tmp_path / "runs"))


def test_one_json_object_over_several_lines_is_not_taken_for_rows(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(ALPACA, indent=2))
    with pytest.raises(InputError, match=r"data\.json: expected a JSON array of rows or JSON Lines, got one JSON "
                                         r"object"):
        load_training_rows(str(path), "auto", RunStore("r", tmp_path / "runs"))


def test_a_one_line_json_array_is_known_by_item_position_not_by_its_line(tmp_path):
    """``json.dump(rows, f)`` and pandas' ``to_json(orient="records")`` write the whole array on line 1: rows known
    by line would all be one conversation to the split by id."""
    rows = [{**ALPACA, "output": f"answer {i}"} for i in range(4)]
    loaded = _rows(tmp_path, rows, name="DATA.JSON").rows  # the suffix in any case
    assert [row["id"] for row in loaded] == [f"DATA.JSON:{i}" for i in range(1, 5)]
    with pytest.raises(InputError, match=r"data\.json:1 \(item 3\): field 'output' must be a string"):
        _rows(tmp_path, [*rows[:2], {**ALPACA, "output": 5}])


def test_an_openai_turn_of_weight_0_is_context_and_not_trained_on(tmp_path):
    row = {"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1", "weight": 0},
                        {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2", "weight": 1}]}
    loaded = _rows(tmp_path, [row]).rows
    assert [r["completion"][0]["content"] for r in loaded] == ["A2"]
    assert loaded[0]["prompt"][1] == {"role": "assistant", "content": "A1"}  # the weight is read, not passed on
    for bad, message in [({"role": "user", "content": "Q1", "weight": 0}, r"messages\[0\]\.weight' must be 0 or 1"),
                         ({"role": "assistant", "content": "A1", "weight": 0.5}, r"got 0\.5")]:
        with pytest.raises(InputError, match=message):
            _rows(tmp_path, [{"messages": [bad if i == int(bad["role"] == "assistant") else turn
                                           for i, turn in enumerate(row["messages"])]}])
    unweighted = [{**turn, "weight": 0} if turn["role"] == "assistant" else turn for turn in row["messages"]]
    with pytest.raises(InputError, match="every assistant turn has weight 0"):
        _rows(tmp_path, [{"messages": unweighted}])


def test_an_openai_tool_call_turn_is_named_as_one(tmp_path):
    # the assistant turn of a tool call has content null: "field 'messages[1].content' is missing" sent users
    # looking for a lost answer
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    with pytest.raises(InputError, match=r"data\.json:1 \(item 1\): field 'messages\[1\]' is a tool call "
                                         r"\(tool_calls\); training data holds text turns only"):
        _rows(tmp_path, [{"messages": [{"role": "user", "content": "Q"}, call]}])


def test_an_alpaca_row_that_asks_nothing_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"data\.json:1 \(item 2\): user turn 1 is empty"):
        _rows(tmp_path, [ALPACA, {**ALPACA, "instruction": " ", "input": ""}])
