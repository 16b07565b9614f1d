"""Labelling: one item at a time with keyboard shortcuts, skip-for-later, and corrections.

The queue page is a fragment: submitting or skipping reruns only the labelling panel. Submit and Skip act in
their callbacks, before that run draws anything, so it shows the next item at once; it asks the store for that
item alone (``queue(limit=skipped + 1)``), never for the whole queue. Choices are radios and checkboxes
(clickable, and what ``bench/review_app_load.py`` drives); the shortcut buttons beside them set the same
widgets. A label is acknowledged only after ``add_label`` / ``add_judgment`` has committed it; it records the
sha256 of the guidelines shown and the seconds from the item being shown to the submit.

The progress bars count what the review record counts (``dashboard.counting``); an item it does not count
(stale, or another candidate's) is still served, with a warning that its label counts for nothing.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from dashboard.counting import NO_RECORD, NOT_COUNTED, record_progress
from dashboard.views import FLAG_TITLES, show_guidelines, show_item, show_others
from harness.core.store import RunStore
from harness.review.config import Guidelines, ReviewConfig
from harness.review.store import LABEL_FLAGS, PREFERENCES, ReviewItemView, ReviewStore

if TYPE_CHECKING:
    from harness.review.summary import ReviewProgress

VERDICT_KEYS = {"accept": "Y", "reject": "N"}  # "R" is reserved by Streamlit (rerun)
FLAG_KEYS = {"toxic": "T", "hallucination": "H", "unhelpful_refusal": "U", "off_topic": "O"}
PREFERENCE_KEYS = {"A": "A", "B": "B", "tie": "T"}
PREFERENCE_TITLES = {"A": "A", "B": "B", "tie": "Tie"}
HELPFULNESS_TITLES = {1: "useless", 2: "poor", 3: "usable", 4: "good", 5: "excellent"}  # as the guidelines say
SKIP_KEY, SUBMIT_KEY = "S", "Ctrl+Enter"


def _set(key: str, value) -> None:
    st.session_state[key] = value


def _toggle(key: str) -> None:
    st.session_state[key] = not st.session_state.get(key, False)


def _shortcut_row(name: str, buttons: list[tuple[str, str, str, str, object]]) -> None:
    """Shortcut buttons in a row: (label, shortcut, button key, widget key it sets, value; None toggles)."""
    with st.container(horizontal=True, key=name, gap="small"):
        for label, shortcut, key, target, value in buttons:
            st.button(label, shortcut=shortcut, type="tertiary", key=key, on_click=_toggle if value is None else _set,
                      args=(target,) if value is None else (target, value))


def _choices(item: ReviewItemView) -> None:
    """The label's choices as radios/checkboxes, each group with the shortcut buttons that set it beside it."""
    key = item.id
    if item.kind == "pairwise":
        left, right = st.columns(2, vertical_alignment="bottom")
        left.radio("Which answer is better?", PREFERENCES, index=None, horizontal=True,
                   format_func=PREFERENCE_TITLES.get, key=f"preference_{key}")
        with right:
            _shortcut_row(f"shortcuts_preference_{key}", [
                (f"{PREFERENCE_TITLES[p]} better" if p != "tie" else "Tie", k, f"key_preference_{p}_{key}",
                 f"preference_{key}", p) for p, k in PREFERENCE_KEYS.items()])
        return
    left, right = st.columns(2, vertical_alignment="bottom")
    left.radio("Verdict", list(VERDICT_KEYS), index=None, horizontal=True, key=f"verdict_{key}")
    with right:
        _shortcut_row(f"shortcuts_verdict_{key}", [(v.title(), k, f"key_verdict_{v}_{key}", f"verdict_{key}", v)
                                                    for v, k in VERDICT_KEYS.items()])
    left, right = st.columns(2, vertical_alignment="bottom")
    left.radio("Helpfulness (1 = useless, 5 = excellent)", [1, 2, 3, 4, 5], index=None, horizontal=True,
               key=f"helpfulness_{key}")
    with right:
        _shortcut_row(f"shortcuts_helpfulness_{key}", [
            (HELPFULNESS_TITLES[r], str(r), f"key_helpfulness_{r}_{key}", f"helpfulness_{key}", r)
            for r in range(1, 6)])
    left, right = st.columns(2, vertical_alignment="bottom")
    with left, st.container(horizontal=True, key=f"flags_{key}"):
        for flag in LABEL_FLAGS:
            st.checkbox(FLAG_TITLES[flag], key=f"flag_{flag}_{key}")
    with right:
        _shortcut_row(f"shortcuts_flags_{key}", [(FLAG_TITLES[f], k, f"key_flag_{f}_{key}", f"flag_{f}_{key}", None)
                                                  for f, k in FLAG_KEYS.items()])


def _save(store: ReviewStore, item: ReviewItemView, reviewer: str, guidelines_sha256: str, page: str,
          client_key: str) -> None:
    """Submit's callback, run before the next run draws anything: that run shows the next item at once.

    One label per showing of an item: Ctrl+Enter in the comment box both submits the form and presses the
    Submit shortcut, and a click repeated after a lost acknowledgement arrives again: a submit from a showing
    already saved (``client_key``: the showing's, bound when Submit was drawn) saves nothing. The client key
    also makes a retried write return the stored row."""
    key = item.id
    state = st.session_state
    showing = state.get(f"showing_{page}_{key}")
    if showing is None or showing["client_key"] != client_key:
        return  # this showing was saved already
    comment = state.get(f"comment_{key}") or ""
    if item.kind == "pairwise":
        preference = state.get(f"preference_{key}")
        if preference is None:
            state["label_error"] = "Choose A, B or Tie."
            return
    else:
        verdict, helpfulness = state.get(f"verdict_{key}"), state.get(f"helpfulness_{key}")
        if verdict is None or helpfulness is None:
            state["label_error"] = "Choose a verdict and a helpfulness rating."
            return
    lead_time = round(time.monotonic() - showing["at"], 3)
    if item.kind == "pairwise":
        saved = store.add_judgment(item.id, reviewer, preference, comment, client_key=showing["client_key"],
                                   guidelines_sha256=guidelines_sha256, lead_time_s=lead_time)
    else:
        flags = {flag: bool(state.get(f"flag_{flag}_{key}")) for flag in LABEL_FLAGS}
        saved = store.add_label(item.id, reviewer, verdict, helpfulness, flags, comment,
                                client_key=showing["client_key"], guidelines_sha256=guidelines_sha256,
                                lead_time_s=lead_time)
    # add_* returned: the row is committed. Only now is it acknowledged.
    # Kept (not popped) until the next label: a repeated submit's rerun still shows it.
    state[f"ack_{page}"] = {"item_id": item.id, "label_id": saved.id, "kind": item.kind}
    del state[f"showing_{page}_{key}"]


def _submit(store: ReviewStore, item: ReviewItemView, reviewer: str, guidelines_sha256: str, page: str,
            client_key: str) -> None:
    """Comment and Submit (Ctrl+Enter)."""
    with st.form(f"label_{item.id}", clear_on_submit=False, border=False):
        st.text_area("Comment (optional)", key=f"comment_{item.id}", height=80)
        st.form_submit_button("Submit", type="primary", key=f"submit_{item.id}", shortcut=SUBMIT_KEY,
                              on_click=_save, args=(store, item, reviewer, guidelines_sha256, page, client_key))
    if error := st.session_state.pop("label_error", None):
        st.error(error)


def _panel(store: ReviewStore, item: ReviewItemView, reviewer: str, guidelines: Guidelines, page: str,
           skip: bool, counted: bool = True) -> None:
    """The item beside the guidelines, the choices and the submit; ``counted``: whether the review record
    counts it (an item it does not is still labelled, marked as such)."""
    # A showing: when the item was first drawn (for the time per item) and the client key of its label.
    showing = st.session_state.setdefault(f"showing_{page}_{item.id}",
                                          {"at": time.monotonic(), "client_key": uuid.uuid4().hex})
    main, side = st.columns([5, 2])
    with side:
        show_guidelines(guidelines)
    with main:
        if not counted:
            with st.container(key=f"not_counted_{item.id}"):
                st.warning(NOT_COUNTED)
        show_item(item)
        _choices(item)
        if skip:
            st.button("Skip for later", shortcut=SKIP_KEY, key=f"skip_{item.id}", on_click=_skip, args=(item.id,))
        # Submit's callback gets the version drawn now, the one the reviewer read (a file edited before the
        # click shows in the next run, after the label is saved).
        _submit(store, item, reviewer, guidelines.sha256, page, showing["client_key"])


def _skip(item_id: int) -> None:
    skipped = st.session_state.setdefault("skipped", [])
    if item_id not in skipped:
        skipped.append(item_id)


def _unskip() -> None:
    st.session_state["skipped"] = []


def _progress(store: ReviewStore, reviewer: str, manager: bool, counted: ReviewProgress | None,
              config: ReviewConfig) -> None:
    """The reviewer's and everyone's progress over the items the review record counts (``counted``), with the
    rest of the label store beside it; over the whole store, said so, where no record can be made. Both quorums
    are at the record's number (``required_reviewers``, the config's; an item queued for more needs more). The
    release manager's table marks reviewers no longer configured: their open items go to the others at the next
    enqueue, so their "assigned" is no work still theirs."""
    required_reviewers = config.required_reviewers
    whole = store.progress(required_reviewers=required_reviewers)
    pace = whole.lead_time_s.get(reviewer)
    per_reviewer = counted.per_reviewer if counted is not None else whole.per_reviewer
    done, assigned = per_reviewer.get(reviewer, (0, 0))
    st.progress(done / assigned if assigned else 1.0,
                text=f"Your queue: {done} of {assigned} labelled"
                     + (f" · {pace:.0f} s per item (median)" if pace is not None else ""))
    if counted is None:
        st.progress(whole.items_with_quorum / whole.items_total if whole.items_total else 1.0,
                    text=f"All reviewers: {whole.items_with_quorum} of {whole.items_total} items have their "
                         f"quorum (whole label store)")
        st.caption(NO_RECORD)
    else:
        all_done, all_assigned = whole.per_reviewer.get(reviewer, (0, 0))
        if all_assigned > assigned:
            st.caption(f"Besides these, {all_assigned - assigned} item(s) in your queue are not counted by the "
                       f"review record (stale, or another candidate's); you labelled {all_done - done} of them.")
        total = counted.items_total
        st.progress(counted.items_with_quorum / total if total else 1.0,
                    text=f"All reviewers: {counted.items_with_quorum} of {total} items have their quorum "
                         f"(the candidate's outputs the review record counts)")
        st.caption(f"Whole label store (stale items, baselines' outputs, blind pairs and other candidates' "
                   f"included): {whole.items_with_quorum} of {whole.items_total} items have their quorum.")
    if manager:
        rows = []
        for r, (d, n) in whole.per_reviewer.items():
            row = {"reviewer": r, "labelled": d, "assigned": n}
            if counted is not None:
                mine, theirs = counted.per_reviewer.get(r, (0, 0))
                row = {"reviewer": r, "labelled": mine, "assigned": theirs, "not counted: labelled": d - mine,
                       "not counted: assigned": n - theirs}
            rows.append(row | {"s per item (median)": whole.lead_time_s.get(r),
                               "configured": r in {person.name for person in config.reviewers}})
        st.dataframe(pd.DataFrame(rows), hide_index=True)


def _acknowledge(store: ReviewStore, reviewer: str) -> None:
    """The label saved last, and now that it is in, the other reviewers' labels on that item."""
    ack = st.session_state.get("ack_queue")
    if ack:
        st.success(f"Saved: label {ack['label_id']} on item {ack['item_id']}.")
        show_others(store.others_labels(ack["item_id"], reviewer))


@st.fragment
def queue_page(store: ReviewStore, config: ReviewConfig, run: RunStore, reviewer: str, manager: bool,
               guidelines: Guidelines) -> None:
    """The next item of the reviewer's queue; submitting or skipping reruns this fragment only."""
    counted = record_progress(store, config, run)
    _progress(store, reviewer, manager, counted, config)
    _acknowledge(store, reviewer)
    skipped = st.session_state.setdefault("skipped", [])
    entry = next((q for q in store.queue(reviewer, limit=len(skipped) + 1) if q.item_id not in skipped), None)
    if entry is None:
        left = [q.item_id for q in store.queue(reviewer, limit=len(skipped))]
        with st.container(key="queue_empty" if not left else "queue_skipped_only"):
            if left:
                st.info(f"Only the {len(left)} item(s) you skipped are left.")
                st.button("Back to the skipped items", key="unskip", on_click=_unskip)
            else:
                st.info("Your queue is empty.")
        return
    if skipped:
        st.caption(f"{len(skipped)} item(s) skipped for later")
    _panel(store, store.item(entry.item_id), reviewer, guidelines, "queue", skip=True,
           counted=counted is None or entry.item_id in counted.scope.counted)


def corrections_page(store: ReviewStore, config: ReviewConfig, run: RunStore, reviewer: str,
                     guidelines: Guidelines) -> None:
    history = store.my_history(reviewer)
    if not history:
        st.info("You have not labelled anything yet.")
        return
    choice = st.selectbox("Item you labelled (most recent first)", history, key="correction_choice")
    ack = st.session_state.get("ack_corrections")
    if ack and ack["item_id"] == choice:
        st.success(f"Saved: label {ack['label_id']} on item {ack['item_id']}.")
    item = store.item(choice)
    mine = store.my_label(item.id, reviewer)
    st.caption("Your current label (a new submission supersedes it; the old one is kept)")
    st.dataframe(pd.DataFrame([{k: v for k, v in mine.__dict__.items()
                                if k not in ("item_id", "reviewer", "guidelines_sha256")}]), hide_index=True)
    show_others(store.others_labels(item.id, reviewer))
    counted = record_progress(store, config, run)
    _panel(store, item, reviewer, guidelines, "corrections", skip=False,
           counted=counted is None or item.id in counted.scope.counted)
