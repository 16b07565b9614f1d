"""Multi-turn training rows: one prompt/completion row per assistant turn, and TRL's labels on exactly the
assistant turns."""

import json

import pytest
from transformers import TrainerCallback

from harness.core.errors import InputError
from harness.core.store import RunStore
from harness.train.config import TrainConfig
from harness.train.data import load_training_rows
from harness.train.train import train_checkpoint

CONVERSATIONS = [
    [("The harbour was quiet before dawn.", "Gulls circled the empty quay."),
     ("A ferry horn sounded twice.", "The first passengers came down the hill.")],
    [("Snow fell on the mountain pass.", "The road crews waited in the valley."),
     ("By noon the plough came through.", "Cars crept north in a long line."),
     ("Evening brought clear skies.", "The village lights came on one by one.")],
    [("Rain had swollen the river.", "The old bridge held."),
     ("Volunteers stacked sandbags.", "Nobody slept much that night.")],
]


def _messages(turns):
    return [m for user, reply in turns for m in ({"role": "user", "content": user},
                                                  {"role": "assistant", "content": reply})]


def _file(tmp_path, rows):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_conversation_becomes_one_row_per_assistant_turn_with_the_conversation_so_far(tmp_path):
    rows = [{"id": f"c{i}", "messages": _messages(turns)} for i, turns in enumerate(CONVERSATIONS)]
    rows.append({"id": "single", "messages": _messages([("One turn only.", "Trained as before.")])})
    training = load_training_rows(str(_file(tmp_path, rows)), "auto", RunStore("r"))
    assert training.conversations == 4 and len(training.rows) == 2 + 3 + 2 + 1
    by_id = {}
    for row in training.rows:
        by_id.setdefault(row["id"], []).append(row)
    for i, turns in enumerate(CONVERSATIONS):
        rows_of = by_id[f"c{i}"]
        # the whole conversation first (the row it made before every turn was trained), then earlier turns
        assert [r["turn"] for r in rows_of] == list(range(len(turns), 0, -1))
        messages = _messages(turns)
        for row in rows_of:
            k = row["turn"]
            assert row["prompt"] == messages[:2 * k - 1]
            assert row["completion"] == [{"role": "assistant", "content": turns[k - 1][1]}]
    assert by_id["single"] == [{"id": "single", "turn": 1, "prompt": rows[-1]["messages"][:1],
                                "completion": rows[-1]["messages"][1:]}]


def test_an_empty_earlier_assistant_turn_is_refused_naming_the_line(tmp_path):
    messages = _messages(CONVERSATIONS[0])
    messages[1]["content"] = " "
    path = _file(tmp_path, [{"messages": _messages(CONVERSATIONS[1])}, {"messages": messages}])
    with pytest.raises(InputError, match=r"pairs.jsonl:2: assistant turn 1 of 2 is empty"):
        load_training_rows(str(path), "auto", RunStore("r"))


class _Labels(TrainerCallback):
    """Keeps the tokenized training rows TRL built (input ids and labels) when training starts."""

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.rows = [(row["input_ids"], row["labels"]) for row in train_dataloader.dataset]


def test_trl_labels_every_assistant_turn_and_masks_every_user_turn(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    rows = [{"id": f"c{i}", "messages": _messages(turns)} for i, turns in enumerate(CONVERSATIONS)]
    config = TrainConfig(name="turns", recipe="nift", base_model=str(tiny_model), data=str(_file(tmp_path, rows)),
                         threads=1, max_steps=1, batch_size=2, save_steps=1, max_length=256, eval_share=0.0)
    labels = _Labels()
    record = train_checkpoint(config, RunStore("r"), callbacks=[labels])
    assert record.rows == 7
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    labelled = []
    for input_ids, row_labels in labels.rows:
        trained = [t for t, label in zip(input_ids, row_labels) if label != -100]
        assert trained == [label for label in row_labels if label != -100]  # labels are the tokens themselves
        text, masked = tokenizer.decode(trained), tokenizer.decode([t for t, label in zip(input_ids, row_labels)
                                                                     if label == -100])
        # exactly one assistant turn and its end-of-turn token are trained on in each row ...
        assert text.endswith("<|im_end|>\n") and text.count("<|im_end|>") == 1
        labelled.append(text.removesuffix("<|im_end|>\n"))
        # ... and no user turn ever is
        for turns in CONVERSATIONS:
            for user, _ in turns:
                assert user not in text
        assert masked.count("<|im_start|>user") >= 1
    # every assistant turn of every conversation carries labels, once
    assert sorted(labelled) == sorted(reply for turns in CONVERSATIONS for _, reply in turns)


def test_a_multi_turn_nift_dataset_trains_on_every_turn(corpus_file):
    from harness.data.build import build_pairs
    from harness.data.config import DataConfig

    store = RunStore("r")
    config = DataConfig.model_validate({"corpus": {"path": str(corpus_file)}, "filters": {"contamination": []},
                                        "variants": [{"name": "raw2", "turns": 2, "distill": False}]})
    record = build_pairs(config, store)[0]
    training = load_training_rows("data:raw2", "auto", store)
    assert training.conversations == record.rows and len(training.rows) == 2 * record.rows
    pairs = [json.loads(line) for line in (store.stage_dir("data", "raw2") / "pairs.jsonl").open()]
    for pair, (last, first) in zip(pairs, zip(training.rows[0::2], training.rows[1::2])):
        assert last["id"] == first["id"] == pair["id"] and (last["turn"], first["turn"]) == (2, 1)
        assert [first["completion"][0]["content"], last["completion"][0]["content"]] == pair["references"]
        assert last["prompt"] == pair["messages"][:3] and first["prompt"] == pair["messages"][:1]


@pytest.mark.parametrize("row, message", [
    # each of these was taken for text (str(None) is "None") and failed in the chat template mid-training
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]},
     r"field 'messages\[1\].content' must be a string, got null"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": {"text": "x"}}]},
     r"field 'messages\[1\].content' must be a string, got \{\"text\": \"x\"\}"),
    ({"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "x"}]},
     r"field 'messages\[0\].content' must be a string, got 42"),
    ({"messages": [{"role": "usr", "content": "hi"}, {"role": "assistant", "content": "x"}]},
     r"field 'messages\[0\].role' must be one of system, user, assistant, got 'usr'"),
    ({"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]},
     r"field 'messages\[0\].role' is missing"),
    ({"messages": ["hi", {"role": "assistant", "content": "x"}]}, r"field 'messages\[0\]' must be an object"),
    ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "x"}]},
     r"no user turn before the first assistant turn"),
    ({"instruction": "a", "output": 5}, r"field 'output' must be a string, got 5"),
    ({"instruction": "a", "output": float("nan")}, r"field 'output' must be a string, got NaN"),
    ({"instruction": "a", "output": ["x", "y"]}, r"field 'output' must be a string, got \[\"x\", \"y\"\]"),
    ({"instruction": "a", "input": 3, "output": "b"}, r"field 'input' must be a string, got 3"),
    ({"conversations": [{"from": "human", "value": None}, {"from": "gpt", "value": "b"}]},
     r"field 'conversations\[0\].value' must be a string, got null"),
    ({"conversations": [{"from": "Human", "value": "a"}, {"from": "gpt", "value": "b"}]},
     r"field 'conversations\[0\].from' must be one of human, user, gpt, .*, got 'Human'"),
])
def test_a_training_row_of_the_wrong_types_is_refused_naming_line_and_field(tmp_path, row, message):
    first = {"messages": _messages(CONVERSATIONS[0])} if "messages" in row else (
        {"instruction": "Say hi", "output": "hi"} if "instruction" in row
        else {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]})
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(first) + "\n\n" + json.dumps(row) + "\n")  # the bad row is on line 3
    with pytest.raises(InputError, match=rf"pairs.jsonl:3: {message}"):
        load_training_rows(str(path), "auto", RunStore("r"))


def test_a_system_turn_before_the_user_turn_is_trained_on(tmp_path):
    messages = [{"role": "system", "content": "Be brief."}] + _messages(CONVERSATIONS[0][:1])
    training = load_training_rows(str(_file(tmp_path, [{"id": None, "messages": messages}])), "auto", RunStore("r"))
    assert training.rows == [{"id": "pairs.jsonl:1", "turn": 1, "prompt": messages[:2], "completion": messages[2:]}]
