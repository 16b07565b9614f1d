"""A review item as a conversation: labelled turns (system, user, assistant) and the answers under review.

The label store keeps what the model was given as the enqueue stage found it: structured messages where the
stage had them (``ReviewItemView.messages``: the bench's pairwise questions, every turn with each model's
answer), otherwise one prompt string, which for benchmark items is the text the chat template made
(``<|im_start|>system ...``). :func:`conversation` prefers the messages and otherwise parses the templated text
back into turns, so a reviewer never reads a template's special tokens.

Nothing here renders anything: the app shows every turn's content as plain text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ROLES = ("system", "user", "assistant")
#: The role of prompt text a chat template left outside its turns (shown, never dropped).
OUTSIDE = "text"


@dataclass(frozen=True)
class Turn:
    """One block of the conversation. ``role`` is system, user or assistant (context the model was given), or
    ``answer``: what the reviewer judges, ``content`` for a single output, ``a`` and ``b`` for a blind pair."""

    role: str
    content: str = ""
    a: str | None = None
    b: str | None = None


# ---- chat templates ----------------------------------------------------------------------------------------
# Each: a pattern whose matches are the turns, with groups (role, content), and the role names it uses.
_CHATML = re.compile(r"<\|im_start\|>\s*(\w+)[ \t]*\n?(.*?)(?:<\|im_end\|>|(?=<\|im_start\|>)|\Z)", re.DOTALL)
_LLAMA3 = re.compile(r"<\|start_header_id\|>\s*(\w+)\s*<\|end_header_id\|>\n{0,2}(.*?)"
                     r"(?:<\|eot_id\|>|(?=<\|start_header_id\|>)|\Z)", re.DOTALL)
_GEMMA = re.compile(r"<start_of_turn>\s*(\w+)[ \t]*\n?(.*?)(?:<end_of_turn>|(?=<start_of_turn>)|\Z)", re.DOTALL)
_ZEPHYR = re.compile(r"<\|(system|user|assistant)\|>[ \t]*\n?(.*?)"
                     r"(?:</s>|<\|end\|>|<\|endoftext\|>|(?=<\|(?:system|user|assistant)\|>)|\Z)", re.DOTALL)
_TEMPLATES = ((_CHATML, "<|im_start|>"), (_LLAMA3, "<|start_header_id|>"), (_GEMMA, "<start_of_turn>"),
              (_ZEPHYR, None))
_ROLE_NAMES = {"model": "assistant", "bot": "assistant", "human": "user"}
# Llama 2 / Mistral: [INST] user [/INST] assistant </s>, an optional <<SYS>> block inside the first [INST].
_INST = re.compile(r"\[INST\](.*?)\[/INST\](.*?)(?=\[INST\]|\Z)", re.DOTALL)
_SYS = re.compile(r"<<SYS>>(.*?)<</SYS>>", re.DOTALL)
# Tokens left around the turns: begin/end of text, padding.
_STRAY = re.compile(r"<\|(?:begin_of_text|end_of_text|endoftext|eot_id|im_end|end)\|>|<bos>|<eos>|<s>|</s>")
# The bench's pairwise questions as the queue joined them: "(turn 1) ...\n\n(turn 2) ...".
_TURN_MARK = re.compile(r"(?:\A|\n\n)\(turn (\d+)\) ")


def _clean(text: str) -> str:
    return _STRAY.sub("", text).strip("\n")


def parse_chat_template(text: str) -> list[Turn] | None:
    """The turns of a prompt the chat template made, or None when ``text`` has no template's markers.

    The empty assistant turn a generation prompt ends with is dropped; text outside the turns (a leading
    ``<|begin_of_text|>``, a stray end token) is not a turn."""
    for pattern, marker in _TEMPLATES:
        if marker is not None and marker not in text:
            continue
        turns, end = [], 0
        for match in pattern.finditer(text):
            if (outside := _clean(text[end:match.start()]).strip()):
                turns.append(Turn(OUTSIDE, outside))  # text the template left outside its turns: still shown
            role = match.group(1).lower()
            turns.append(Turn(_ROLE_NAMES.get(role, role), _clean(match.group(2))))
            end = match.end()
        if turns:
            if (outside := _clean(text[end:]).strip()):
                turns.append(Turn(OUTSIDE, outside))
            if turns[-1].role == "assistant" and not turns[-1].content.strip():
                turns.pop()  # the generation prompt: the answer follows
            return turns
    if "[INST]" in text and "[/INST]" in text:
        turns = []
        for user, assistant in _INST.findall(text):
            system = _SYS.search(user)
            if system:
                turns.append(Turn("system", system.group(1).strip()))
                user = user[:system.start()] + user[system.end():]
            turns.append(Turn("user", _clean(user).strip()))
            if _clean(assistant).strip():
                turns.append(Turn("assistant", _clean(assistant).strip()))
        return turns
    return None


def split_turns(text: str) -> list[str] | None:
    """``(turn 1) a\\n\\n(turn 2) b`` -> ["a", "b"], the form the queue joins a multi-turn question's turns in;
    None when ``text`` is not numbered from 1 that way."""
    marks = list(_TURN_MARK.finditer(text))
    if len(marks) < 2 or marks[0].start() != 0 or [int(m.group(1)) for m in marks] != list(range(1, len(marks) + 1)):
        return None
    ends = [m.start() for m in marks[1:]] + [len(text)]
    return [text[m.end():end] for m, end in zip(marks, ends)]


# ---- an item as turns --------------------------------------------------------------------------------------
def _from_messages(messages: list[dict[str, Any]]) -> list[Turn] | None:
    """The stored messages as turns; None when they are not in the shape the enqueue stage writes."""
    turns = []
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role in ROLES and isinstance(message.get("content"), str):
            turns.append(Turn(role, message["content"]))
        elif role == "answer" and isinstance(message.get("content"), str):
            turns.append(Turn("answer", message["content"]))
        elif role == "answer" and isinstance(message.get("a"), str) and isinstance(message.get("b"), str):
            turns.append(Turn("answer", a=message["a"], b=message["b"]))
        else:
            return None
    return turns if any(t.role == "answer" for t in turns) else None


def conversation(item: Any) -> list[Turn]:
    """The item's turns (a ``ReviewItemView`` or anything with its fields): the stored messages where the item
    has them, else its prompt parsed back into turns (a prompt without a template is one user turn), followed by
    the answer(s) under review. A multi-turn pair joined as ``(turn k)`` paragraphs is split back per turn."""
    messages = getattr(item, "messages", None)
    if isinstance(messages, list) and (turns := _from_messages(messages)) is not None:
        return turns
    prompt = item.prompt or ""
    if item.kind == "pairwise":
        asked, a, b = split_turns(prompt), split_turns(item.output_a or ""), split_turns(item.output_b or "")
        if asked and a and b and len(asked) == len(a) == len(b):
            return [turn for user, x, y in zip(asked, a, b) for turn in (Turn("user", user), Turn("answer", a=x, b=y))]
        context = parse_chat_template(prompt) or [Turn("user", prompt)]
        return [*context, Turn("answer", a=item.output_a or "", b=item.output_b or "")]
    context = parse_chat_template(prompt) or [Turn("user", prompt)]
    return [*context, Turn("answer", item.output or "")]
