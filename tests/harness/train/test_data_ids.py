"""What a training row is known by and what it says: the id the split by id keys on (a string or a whole number,
one per conversation), and the system prompt and conversation a row holds, none of them dropped unseen."""

import json

import pytest

from harness.core.errors import InputError
from harness.core.store import RunStore
from harness.train.data import load_training_rows
from harness.train.train import split_rows

TURNS = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]


def _load(tmp_path, rows, name="f.jsonl"):
    path = tmp_path / name
    path.write_text(json.dumps(rows) if name.endswith(".json") else "".join(json.dumps(r) + "\n" for r in rows))
    return load_training_rows(str(path), "auto", RunStore("r", tmp_path / "runs"))


@pytest.mark.parametrize("row_id, shown", [(True, "true"), ([1, 2], r"\[1, 2\]"), (1.0, r"1\.0"),
                                           ({"n": 1}, r"\{\"n\": 1\}")])
def test_an_id_that_is_not_a_string_or_a_whole_number_is_refused_naming_the_line(tmp_path, row_id, shown):
    # str() made these "True", "[1, 2]", "1.0": ids no one wrote, which the split and split.json then used
    with pytest.raises(InputError, match=rf"f\.jsonl:2: field 'id' must be a string or a whole number, got {shown}"):
        _load(tmp_path, [{"id": "a", "messages": TURNS}, {"id": row_id, "messages": TURNS}])


def test_string_and_whole_number_ids_are_kept_as_text(tmp_path):
    rows = _load(tmp_path, [{"id": "a", "messages": TURNS}, {"id": 7, "messages": TURNS}, {"messages": TURNS}]).rows
    assert [row["id"] for row in rows] == ["a", "7", "f.jsonl:3"]


@pytest.mark.parametrize("first, second, message", [
    ({"id": "x"}, {"id": "x"}, r"f\.jsonl:2: id 'x' is used again \(first on line 1\)$"),
    ({"id": 1}, {"id": "1"}, r"f\.jsonl:2: id '1' is used again \(first on line 1\)$"),
    # an explicit id equal to the one a row without an id gets from its line
    ({"id": "f.jsonl:2"}, {}, r"f\.jsonl:2: id 'f\.jsonl:2' is used again \(first on line 1\); a row without an "
                              r"id is known by file and line"),
    ({}, {"id": "f.jsonl:1"}, r"f\.jsonl:2: id 'f\.jsonl:1' is used again \(first on line 1\); a row without"),
])
def test_two_conversations_of_one_id_are_refused_naming_both_lines(tmp_path, first, second, message):
    with pytest.raises(InputError, match=message):
        _load(tmp_path, [{**first, "messages": TURNS}, {**second, "messages": [*TURNS[:1], {**TURNS[1],
                                                                                          "content": "Red."}]}])


def test_two_items_of_one_id_in_a_json_array_are_named_by_item(tmp_path):
    # json.dump(rows, f) writes the whole array on line 1: "first on line 1" alone would not say which item
    rows = [{"id": "x", "messages": TURNS}, {"id": "y", "messages": TURNS}, {"id": "x", "messages": TURNS}]
    with pytest.raises(InputError, match=r"f\.json:1 \(item 3\): id 'x' is used again \(first on line 1 \(item 1\)\)"):
        _load(tmp_path, rows, name="f.json")


def test_the_rows_of_one_multi_turn_conversation_still_share_its_id_and_split_together(tmp_path):
    """One row per assistant turn, all of one id: the split keeps a conversation whole, so that is no repeat."""
    long = [*TURNS, {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Green."}]
    rows = _load(tmp_path, [{"id": "c", "messages": long}, {"id": "d", "messages": TURNS}]).rows
    assert [(row["id"], row["turn"]) for row in rows] == [("c", 2), ("c", 1), ("d", 1)]
    trained, held_out = split_rows(rows, 0.5, seed=0)
    assert {len(trained), len(held_out)} == {1, 2} and len({row["id"] for row in held_out}) == 1


def test_a_messages_row_level_system_is_its_first_message(tmp_path):
    # it was dropped: the row trained without the system prompt Alpaca and ShareGPT rows get from the same field
    rows = _load(tmp_path, [{"system": "Answer in French.", "messages": TURNS}]).rows
    assert rows == [{"id": "f.jsonl:1", "turn": 1, "completion": TURNS[1:],
                     "prompt": [{"role": "system", "content": "Answer in French."}, TURNS[0]]}]
    assert _load(tmp_path, [{"system": "", "messages": TURNS}]).rows[0]["prompt"] == TURNS[:1]  # empty: none


@pytest.mark.parametrize("row, message", [
    ({"system": "Answer in French.", "messages": [{"role": "system", "content": "Answer in German."}, *TURNS]},
     r"both a field 'system' and a system turn in 'messages'; keep one"),
    ({"system": 5, "messages": TURNS}, r"field 'system' must be a string, got 5"),
    ({"messages": TURNS, "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]},
     r"fields 'messages' and 'conversations' both hold a conversation; keep one"),
])
def test_a_messages_row_with_a_second_system_prompt_or_conversation_is_refused(tmp_path, row, message):
    with pytest.raises(InputError, match=rf"f\.jsonl:2: {message}"):
        _load(tmp_path, [{"messages": TURNS}, row])


def test_a_row_with_both_conversations_is_refused_as_its_first_row_too(tmp_path):
    row = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}], "messages": TURNS}
    with pytest.raises(InputError, match=r"f\.jsonl:1: fields 'messages' and 'conversations' both hold"):
        _load(tmp_path, [row])
    # null is no conversation (pandas writes it for a column another row fills)
    assert _load(tmp_path, [{**row, "conversations": None}]).rows[0]["completion"] == TURNS[1:]


SHAREGPT = [{"from": "human", "value": "u"}, {"from": "gpt", "value": "a"}]


@pytest.mark.parametrize("row, message", [
    # gave the prompt [system sys, user u, system s2]: a second system prompt in mid-conversation
    ({"system": "sys", "conversations": [SHAREGPT[0], {"from": "system", "value": "s2"}, SHAREGPT[1]]},
     r"field 'conversations\[1\]\.from' is a system turn after the first turn"),
    ({"conversations": [SHAREGPT[0], {"from": "system", "value": "s2"}, SHAREGPT[1]]},
     r"field 'conversations\[1\]\.from' is a system turn after the first turn"),
    ({"conversations": [{"from": "system", "value": "s1"}, {"from": "system", "value": "s2"}, *SHAREGPT]},
     r"field 'conversations\[1\]\.from' is a system turn after the first turn"),
])
def test_a_sharegpt_system_turn_anywhere_but_first_is_refused(tmp_path, row, message):
    with pytest.raises(InputError, match=rf"f\.jsonl:2: {message}"):
        _load(tmp_path, [{"conversations": SHAREGPT}, row])
    opening = {"conversations": [{"from": "system", "value": "s1"}, *SHAREGPT]}
    assert _load(tmp_path, [opening]).rows[0]["prompt"] == [{"role": "system", "content": "s1"},
                                                            {"role": "user", "content": "u"}]
