"""How the review app shows things: an item as a conversation, the guidelines, other reviewers' labels.

Everything that came from a model or a person (turns, outputs, references, comments, names) is shown as plain
text (``st.code`` / ``st.text`` / dataframes), never as Markdown or HTML, so an output cannot run a script,
hide content or fake a control. The guidelines are the one Markdown on the page, neutralised first
(``dashboard.guidelines.safe_markdown``).
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from dashboard.conversation import OUTSIDE, Turn, conversation
from dashboard.guidelines import safe_markdown
from harness.review.config import Guidelines
from harness.review.store import (
    LABEL_FLAGS,
    ReviewItemView,
    StoredJudgment,
    StoredLabel,
)

FLAG_TITLES = {"toxic": "Toxic", "hallucination": "Hallucination", "unhelpful_refusal": "Unhelpful refusal",
               "off_topic": "Off-topic"}
ROLE_TITLES = {"system": "System", "user": "User", "assistant": "Assistant (earlier turn, context)",
               OUTSIDE: "Prompt text outside the chat turns"}
AVATARS = {"system": ":material/settings:", "user": "user", "assistant": "assistant", OUTSIDE: ":material/notes:"}


def _text(body: str) -> None:
    st.code(body, language=None, wrap_lines=True)


def _turn(turn: Turn) -> None:
    with st.chat_message(turn.role if turn.role in ("user", "assistant") else "ai",
                         avatar=AVATARS.get(turn.role, ":material/notes:")):
        st.caption(ROLE_TITLES.get(turn.role, turn.role.title()))
        _text(turn.content)


def show_item(item: ReviewItemView) -> None:
    """The item as labelled blocks of plain text: the turns the model was given, then the answer(s) under
    review (A and B side by side for a blind pair, per turn), then the reference and the automatic scores as
    context. Model names and the A/B mapping are not in ``ReviewItemView`` at all."""
    st.text(f"Item {item.id} · {item.source} · {item.task} · selected as: {item.stratum}")
    turns = conversation(item)
    answers = sum(t.role == "answer" for t in turns)
    seen = 0
    for turn in turns:
        if turn.role != "answer":
            _turn(turn)
            continue
        seen += 1
        suffix = f" · turn {seen}" if answers > 1 else ""
        if turn.a is None:
            with st.chat_message("assistant"):
                st.caption(f"Output (judge this){suffix}")
                _text(turn.content)
            continue
        left, right = st.columns(2)
        for column, letter, text in ((left, "A", turn.a), (right, "B", turn.b)):
            with column, st.chat_message("assistant", avatar=":material/smart_toy:"):
                st.caption(f"Answer {letter}{suffix}")
                _text(text or "")
    if item.reference:
        st.caption("Reference answer (context)")
        _text(item.reference)
    if item.scores or item.flags:
        st.caption("Automatic scores and flags (context, not a verdict)")
        st.dataframe(pd.DataFrame([{"name": k, "value": str(v)} for k, v in {**item.scores, **item.flags}.items()]),
                     hide_index=True)


_HEADING = re.compile(r"^( {0,3})(#{1,4})(?=[ \t]|$)", re.MULTILINE)


def show_guidelines(guidelines: Guidelines, height: int = 640) -> None:
    """The guidelines beside the item, with the version every label records; headings two levels down, to fit
    a side panel."""
    with st.container(border=True, height=height, key="guidelines"):
        st.caption(f"Guidelines · version {guidelines.sha256[:12]}")
        st.markdown(_HEADING.sub(r"\1##\2", safe_markdown(guidelines.text)), anchors=False)


def label_rows(labels: list[StoredLabel | StoredJudgment], *, when: bool = False) -> pd.DataFrame:
    """Labels as a table, one row per reviewer: verdict, helpfulness and flags, or the blind preference."""
    rows = []
    for label in labels:
        row = {"reviewer": label.reviewer}
        if isinstance(label, StoredJudgment):
            row["preference"] = label.preference
        else:
            row |= {"verdict": label.verdict, "helpfulness": label.helpfulness,
                    **{FLAG_TITLES[f]: label.flags[f] for f in LABEL_FLAGS}}
        row["comment"] = label.comment
        if when:
            row["labelled at"] = label.created_at
        rows.append(row)
    return pd.DataFrame(rows)


def show_others(others: list[StoredLabel | StoredJudgment] | None) -> None:
    """Other reviewers' current labels, once the reviewer has submitted their own (None: not yet, blind)."""
    if others is None:
        return
    if not others:
        st.text("No other reviewer has labelled this item yet.")
        return
    st.caption("Other reviewers' labels")
    st.dataframe(label_rows(others), hide_index=True)
