"""The Alpaca row format (``instruction``, ``input``, ``output``), which both training data and question files
read: one file must mean the same question whichever stage reads it."""

from __future__ import annotations


def alpaca_user_turn(instruction: str, input_text: str | None) -> str:
    """The user turn of an Alpaca row: its instruction, then its ``input`` (the data the instruction refers to,
    "Side 1 = 4 ...") after a blank line, where the row has a non-empty one."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction
