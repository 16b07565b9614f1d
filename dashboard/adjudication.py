"""Adjudication: release managers (and ``review.adjudicators``) settle items whose reviewers disagree.

Lists the disputed items (``ReviewStore.disputed_items``: current labels that disagree on the verdict or on a
flag, or on the preference of a blind pair), shows every label with its author, and records the adjudicated
label with a required reason as a new append-only row (``add_adjudication``); a second one supersedes the first.
The review record counts the adjudicated label where there is one. Pairs stay blind here too: A and B only.
An adjudicator who labelled the item themselves does not decide it.

An adjudication names the labels it was decided on: those drawn in the run before the click on Record (the run
that handles the form draws the labels as they are now). Where a reviewer labelled the item meanwhile, the store
refuses it (``LabelsChanged``) and the page says who, with the new labels shown and the adjudicator's choices
kept; so it does where another adjudicator decided the item meanwhile (the adjudication shown is named too,
``replacing``); where the item left the list meanwhile (its labels agree now, or another adjudicator decided it), the page
says so. Nothing is saved in either case.

The items listed, and the count waiting, are the disputes the review record counts (``dashboard.counting``);
the others (stale items, baselines' outputs, other candidates') are counted apart and listed on request, marked.
"""

from __future__ import annotations

import uuid

import pandas as pd
import streamlit as st

from dashboard.counting import NO_RECORD, record_progress
from dashboard.views import FLAG_TITLES, label_rows, show_guidelines, show_item
from harness.core.errors import InputError
from harness.core.store import RunStore
from harness.review.config import Guidelines, ReviewConfig
from harness.review.store import (
    LABEL_FLAGS,
    PREFERENCES,
    DisputedItem,
    LabelsChanged,
    ReviewStore,
    StoredAdjudication,
)

DISAGREEMENT_TITLES = {"verdict": "verdict", "preference": "preference", **FLAG_TITLES}
NOT_COUNTED_DISPUTE = ("Not counted: the review record does not count this dispute (the item was queued from an "
                       "earlier bench or audit record, is a baseline's output, or another candidate's). An "
                       "adjudication is kept, but changes nothing the gate judges.")


def _adjudication_row(adjudication: StoredAdjudication) -> dict:
    row = {"adjudicated by": adjudication.author, "reason": adjudication.reason}
    if adjudication.preference is not None:
        row["preference"] = adjudication.preference
    else:
        row |= {"verdict": adjudication.verdict, "helpfulness": adjudication.helpfulness,
                **{FLAG_TITLES[f]: adjudication.flags.get(f, False) for f in LABEL_FLAGS}}
    return row | {"at": adjudication.created_at}


def _form(store: ReviewStore, disputed: DisputedItem, author: str, guidelines_sha256: str,
          shown: dict | None) -> None:
    """The adjudication form; ``shown``: what the run before the click drew of the item, the ids of its labels
    and of its latest adjudication (None: no showing of this item is known, so nothing is saved)."""
    key = disputed.item_id
    with st.form(f"adjudicate_{key}"):
        if disputed.kind == "pairwise":
            preference = st.radio("Adjudicated preference", PREFERENCES, index=None, horizontal=True,
                                  format_func={"A": "A", "B": "B", "tie": "Tie"}.get, key=f"adj_preference_{key}")
        else:
            verdict = st.radio("Adjudicated verdict", ["accept", "reject"], index=None, horizontal=True,
                               key=f"adj_verdict_{key}")
            helpfulness = st.radio("Helpfulness", [1, 2, 3, 4, 5], index=None, horizontal=True,
                                   key=f"adj_helpfulness_{key}")
            columns = st.columns(len(LABEL_FLAGS))
            flags = {flag: columns[i].checkbox(FLAG_TITLES[flag], key=f"adj_flag_{flag}_{key}")
                     for i, flag in enumerate(LABEL_FLAGS)}
        reason = st.text_area("Reason (required: why this label, against which reviewer's reading)",
                              key=f"adj_reason_{key}")
        submitted = st.form_submit_button("Record adjudication", type="primary", key=f"adj_record_{key}")
    if not submitted:
        return
    if not reason.strip():
        st.error("Give a reason: an adjudication without one is refused.")
        return
    state = st.session_state
    client_key = state.setdefault(f"adj_client_key_{key}_{state.get('adjudications', 0)}", uuid.uuid4().hex)
    if disputed.kind == "pairwise":
        if preference is None:
            st.error("Choose A, B or Tie.")
            return
        decision = {"preference": preference}
    else:
        if verdict is None or helpfulness is None:
            st.error("Choose a verdict and a helpfulness rating.")
            return
        decision = {"verdict": verdict, "helpfulness": helpfulness, "flags": flags}
    if shown is None:
        st.error("Review the labels above, then record the adjudication again. Nothing was saved.")
        return
    try:
        saved = store.add_adjudication(key, author, reason=reason, guidelines_sha256=guidelines_sha256,
                                       client_key=client_key, decided_on=shown["labels"],
                                       replacing=shown["adjudication"], **decision)
    except LabelsChanged as exc:  # the labels shown now are the new ones; the choices stay in the form
        if exc.adjudicator is not None and not exc.reviewers:
            st.error(f"{exc.adjudicator} adjudicated this item while you were deciding; their adjudication is now "
                     f"shown. Nothing was saved: record yours again to supersede it.")
            return
        who = ", ".join(exc.reviewers) or "A reviewer"
        st.error(f"{who} labelled this item while you were deciding; review the labels again. Nothing was saved: "
                 f"record the adjudication again to decide on the labels now shown.")
        return
    except InputError as exc:  # e.g. the adjudicator labelled the item meanwhile
        st.error(f"Nothing was saved: {exc}")
        return
    state["adjudications"] = state.get("adjudications", 0) + 1
    state["adj_ack"] = {"item_id": key, "id": saved.id}
    st.rerun()


def _left_the_list(store: ReviewStore, shown: dict) -> str:
    """Why the item whose Record was clicked is no longer listed (nothing was saved)."""
    item_id = shown["item_id"]
    since = sorted({label.reviewer for label in store.item_labels(item_id) if label.id not in shown["labels"]})
    if since:
        return (f"{', '.join(since)} labelled item {item_id} while you were deciding, and it is no longer disputed; "
                f"nothing was saved.")
    if (decided := store.adjudication(item_id)) is not None:
        return (f"{decided.author} adjudicated item {item_id} while you were deciding; nothing was saved. Turn on "
                f"'Also show items already adjudicated' to review it (a new adjudication supersedes theirs).")
    return f"Item {item_id} is no longer listed; nothing was saved."


def adjudication_page(store: ReviewStore, config: ReviewConfig, run: RunStore, author: str,
                      guidelines: Guidelines) -> None:
    # The item and labels the run before this one drew: what a click on Record (handled in this run) decided on.
    shown = st.session_state.get("adj_showing")
    ack = st.session_state.pop("adj_ack", None)
    if ack:
        st.success(f"Saved: adjudication {ack['id']} on item {ack['item_id']}.")
    include_done = st.toggle("Also show items already adjudicated", key="adjudication_all")
    progress = record_progress(store, config, run)
    every = store.disputed_items(pending_only=not include_done)
    # The record counts disputes on the candidate's outputs and blind pairs of the current evidence only.
    counted = every if progress is None else [d for d in every if d.item_id in progress.disputed]
    others = [] if progress is None else [d for d in every if d.item_id not in progress.disputed]
    include_others = bool(others) and st.toggle(
        "Also show disputed items the review record does not count", key="adjudication_uncounted")
    disputed = counted + others if include_others else counted
    disputed.sort(key=lambda d: d.item_id)
    pending = sum(d.adjudication is None for d in counted)
    if shown is not None and st.session_state.get(f"adj_record_{shown['item_id']}") \
            and shown["item_id"] not in {d.item_id for d in disputed}:
        with st.container(key="adjudication_not_saved"):
            st.warning(_left_the_list(store, shown))
    if progress is None:
        st.caption(NO_RECORD)
    if not disputed:
        with st.container(key="adjudication_empty"):
            st.info("No disputed items wait for adjudication." if not include_done else "No item is disputed.")
    else:
        st.text(f"{pending} disputed item(s) wait for adjudication"
                + (f", {len(counted) - pending} adjudicated" if include_done else ""))
    if others:
        st.caption(f"Besides these, {len(others)} disputed item(s) the review record does not count (stale: "
                   f"queued from an earlier bench or audit record; baselines' outputs; another candidate's)"
                   + (": listed below, marked counted False." if include_others else "."))
    if not disputed:
        return
    st.dataframe(pd.DataFrame([{"item": d.item_id, "kind": d.kind, "source": d.source, "task": d.task,
                                "disagree on": ", ".join(DISAGREEMENT_TITLES.get(x, x) for x in d.disagreements),
                                "labels": len(d.labels), "adjudicated": d.adjudication is not None}
                               | ({"counted": d.item_id in progress.disputed} if progress is not None else {})
                               for d in disputed]), hide_index=True, height=min(38 + 35 * len(disputed), 250),
                 key="disputed_table")
    by_id = {d.item_id: d for d in disputed}
    choice = st.selectbox("Disputed item", list(by_id), key="adjudication_choice")
    current = by_id[choice]
    # The form is handled in the run after the click: the version the adjudicator read is the one drawn before.
    shown_sha256 = st.session_state.get("adj_guidelines_shown", guidelines.sha256)
    main, side = st.columns([5, 2])
    with side:
        show_guidelines(guidelines)
        st.session_state["adj_guidelines_shown"] = guidelines.sha256
    with main:
        if progress is not None and choice not in progress.disputed:
            with st.container(key=f"not_counted_{choice}"):
                st.warning(NOT_COUNTED_DISPUTE)
        show_item(store.item(choice))
        st.caption("Disagree on: " + ", ".join(DISAGREEMENT_TITLES.get(x, x) for x in current.disagreements))
        st.caption("Every reviewer's current label")
        st.dataframe(label_rows(list(current.labels), when=True), hide_index=True, key="disputed_labels")
        latest = current.adjudication or current.stale_adjudication
        st.session_state["adj_showing"] = {"item_id": choice,
                                           "labels": tuple(sorted(label.id for label in current.labels)),
                                           "adjudication": latest.id if latest else None}
        if current.adjudication is not None:
            st.caption("Current adjudication (a new one supersedes it; the old one is kept)")
            st.dataframe(pd.DataFrame([_adjudication_row(current.adjudication)]), hide_index=True,
                         key="current_adjudication")
        if author in {label.reviewer for label in current.labels}:
            st.warning("You labelled this item yourself: another adjudicator decides it.")
            return
        _form(store, current, author, shown_sha256, shown if shown is not None and shown["item_id"] == choice else None)
