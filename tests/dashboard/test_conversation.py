"""A review item as a conversation: chat templates parsed back into turns, stored messages preferred."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dashboard.conversation import (
    OUTSIDE,
    Turn,
    conversation,
    parse_chat_template,
    split_turns,
)

SMOLLM2 = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
           "<|im_start|>user\nWrite a short thank-you note.\nAnswer in fewer than 60 words.<|im_end|>\n"
           "<|im_start|>assistant\n")  # as lm-eval logs a chat-templated prompt of the embedded model


@pytest.mark.parametrize(("prompt", "turns"), [
    (SMOLLM2, [("system", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
               ("user", "Write a short thank-you note.\nAnswer in fewer than 60 words.")]),
    # few-shot: the example answers are assistant turns, kept as context
    (("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n"
      "<|im_start|>assistant\n"), [("user", "2+2?"), ("assistant", "4"), ("user", "3+3?")]),
    (("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
      "<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
     [("system", "Be brief."), ("user", "Hi")]),
    (("<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>user\n"
      "Bye<end_of_turn>\n<start_of_turn>model\n"), [("user", "Hi"), ("assistant", "Hello"), ("user", "Bye")]),
    ("<|system|>\nSys</s>\n<|user|>\nHi</s>\n<|assistant|>\n", [("system", "Sys"), ("user", "Hi")]),
    ("<s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Again [/INST]",
     [("system", "sys"), ("user", "Hi"), ("assistant", "Hello"), ("user", "Again")]),
    # text a template left outside its turns is shown, not dropped
    ("Answer the questions.\n<|im_start|>user\nQ<|im_end|>\n", [(OUTSIDE, "Answer the questions."), ("user", "Q")]),
])
def test_templated_prompts_are_parsed_back_into_turns(prompt, turns):
    parsed = parse_chat_template(prompt)
    assert [(t.role, t.content) for t in parsed] == turns
    assert not any(token in t.content for t in parsed for token in ("<|", "|>", "<s>", "</s>", "[INST]", "<bos>"))


def test_a_prompt_without_a_template_is_not_parsed():
    assert parse_chat_template("Continue the story: the <b>cat</b> sat") is None


def test_joined_turns_are_split_only_when_numbered_from_one():
    assert split_turns("(turn 1) Name a colour.\n\n(turn 2) Another one?") == ["Name a colour.", "Another one?"]
    assert split_turns("(turn 1) only one") is None
    assert split_turns("(turn 2) a\n\n(turn 1) b") is None
    assert split_turns("prefix (turn 1) a\n\n(turn 2) b") is None


def _item(**fields):
    base = {"kind": "single", "prompt": "", "output": None, "output_a": None, "output_b": None, "messages": None}
    return SimpleNamespace(**(base | fields))


def test_an_item_is_its_prompt_turns_then_the_answer_under_review():
    assert conversation(_item(prompt=SMOLLM2, output="Thanks!"))[1:] == [
        Turn("user", "Write a short thank-you note.\nAnswer in fewer than 60 words."), Turn("answer", "Thanks!")]
    assert conversation(_item(prompt="plain", output="out")) == [Turn("user", "plain"), Turn("answer", "out")]


def test_stored_messages_win_and_a_malformed_list_falls_back_to_the_prompt():
    messages = [{"role": "user", "content": "Q1"}, {"role": "answer", "a": "x", "b": "y"},
                {"role": "user", "content": "Q2"}, {"role": "answer", "a": "z", "b": "w"}]
    pair = _item(kind="pairwise", prompt="joined", output_a="A", output_b="B", messages=messages)
    assert conversation(pair) == [Turn("user", "Q1"), Turn("answer", a="x", b="y"), Turn("user", "Q2"),
                                  Turn("answer", a="z", b="w")]
    broken = _item(kind="pairwise", prompt="joined", output_a="A", output_b="B",
                   messages=[{"role": "user", "content": 3}])
    assert conversation(broken) == [Turn("user", "joined"), Turn("answer", a="A", b="B")]


def test_a_joined_two_turn_pair_is_split_per_turn():
    pair = _item(kind="pairwise", prompt="(turn 1) Q1\n\n(turn 2) Q2", output_a="(turn 1) a1\n\n(turn 2) a2",
                 output_b="(turn 1) b1\n\n(turn 2) b2")
    assert conversation(pair) == [Turn("user", "Q1"), Turn("answer", a="a1", b="b1"), Turn("user", "Q2"),
                                  Turn("answer", a="a2", b="b2")]
    uneven = _item(kind="pairwise", prompt="(turn 1) Q1\n\n(turn 2) Q2", output_a="(turn 1) a1\n\n(turn 2) a2",
                   output_b="just one answer")
    assert conversation(uneven)[-1] == Turn("answer", a="(turn 1) a1\n\n(turn 2) a2", b="just one answer")
