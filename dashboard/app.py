"""nift-gate review app (Streamlit): reviewers label sampled outputs; release managers watch agreement and export.

Started by ``nift-gate review serve``, which passes the pipeline config through the environment:
``NIFT_REVIEW_CONFIG`` (YAML path, may be empty), ``NIFT_REVIEW_SET`` (JSON list of ``--set`` assignments)
and ``NIFT_HOME``. The app reads only the run name and the ``review:`` section of that YAML
(``harness.review.config.load_review_section``). All review data is read and written through
``harness.review.store.ReviewStore``; this file only lays it out.

Everything that came from a model or a person (prompts, outputs, references, comments, names) is shown as plain
text (``st.code`` / ``st.text`` / dataframes), never as Markdown or HTML, so an output cannot run a script,
hide content or fake a control. A label is acknowledged only after ``add_label`` has committed it.

Sign-in failures lock the name out for a growing interval (``SignInGuard``, one per store and process, shared
by every session). A visitor sees no error detail: a bad config shows one generic line and the reason goes to
the server log (``review serve`` also sets ``client.showErrorDetails`` to ``none`` for uncaught errors).
"""

from __future__ import annotations

import json
import math
import os
import uuid
from typing import NoReturn

import pandas as pd
import streamlit as st

from harness.core.errors import NiftError
from harness.core.log import get_logger
from harness.core.store import RunStore
from harness.review.config import ReviewConfig, SignInGuard, load_review_section
from harness.review.store import (
    LABEL_FLAGS,
    PREFERENCES,
    ReviewItemView,
    ReviewStore,
    database_url,
)

FLAG_TITLES = {"toxic": "Toxic", "hallucination": "Hallucination", "unhelpful_refusal": "Unhelpful refusal",
               "off_topic": "Off-topic"}
#: All a visitor learns when the app cannot load its config or tokens; the server log says why.
UNAVAILABLE = "The review app is not available: its configuration could not be loaded. The server log says why."
log = get_logger("review.app")


@st.cache_resource(show_spinner=False)
def _open_store(url: str) -> ReviewStore:
    return ReviewStore(url)


@st.cache_resource(show_spinner=False)
def _sign_in_guard(url: str) -> SignInGuard:
    """One guard per label store and process: every browser session's failures count against the same name."""
    return SignInGuard()


def _settings() -> tuple[ReviewConfig, ReviewStore]:
    assignments = json.loads(os.environ.get("NIFT_REVIEW_SET") or "[]")
    run, config = load_review_section(os.environ.get("NIFT_REVIEW_CONFIG") or None, assignments)
    return config, _open_store(database_url(config, RunStore(run)))


def _unavailable(exc: Exception) -> NoReturn:
    """One generic line for the visitor (signed in or not); the reason for whoever runs the server."""
    log.error("review app: %s", exc)
    st.error(UNAVAILABLE)
    st.stop()


def _sign_in(config: ReviewConfig, store: ReviewStore) -> None:
    """Name + token (constant-time compare, throttled per name), or Streamlit's OIDC login matched by e-mail."""
    st.title("nift-gate review")
    if config.oidc:
        if not st.user.is_logged_in:
            st.button("Log in", on_click=st.login, key="oidc_login")
            st.stop()
        reviewer = next((r for r in config.reviewers if r.email and r.email == st.user.get("email")), None)
        if reviewer is None:
            st.error("This login is not a configured reviewer.")
            st.stop()
        st.session_state["reviewer"] = reviewer.name
        st.rerun()
    with st.form("sign_in"):
        name = st.text_input("Name", key="sign_in_name")
        token = st.text_input("Token", type="password", key="sign_in_token")
        submitted = st.form_submit_button("Sign in", key="sign_in_submit")
    if submitted:
        try:  # the tokens are read at every sign-in, so a rotated token takes effect without a restart
            attempt = _sign_in_guard(store.url).sign_in(config, name, token)
        except NiftError as exc:
            _unavailable(exc)
        if attempt.reviewer is not None:
            st.session_state["reviewer"] = name
            st.rerun()
        if attempt.locked_for:
            st.error(f"Too many failed sign-ins under this name: try again in {math.ceil(attempt.locked_for)} s.")
        else:
            st.error("Unknown name or wrong token.")
    st.stop()


def _show_item(item: ReviewItemView) -> None:
    """The item as plain text. Model names and the A/B mapping are not in ``ReviewItemView`` at all."""
    st.text(f"Item {item.id} · {item.source} · {item.task} · selected as: {item.stratum}")
    st.caption("Prompt")
    st.code(item.prompt, language=None, wrap_lines=True)
    if item.kind == "pairwise":
        left, right = st.columns(2)
        with left:
            st.caption("Answer A")
            st.code(item.output_a or "", language=None, wrap_lines=True)
        with right:
            st.caption("Answer B")
            st.code(item.output_b or "", language=None, wrap_lines=True)
        return
    st.caption("Output")
    st.code(item.output or "", language=None, wrap_lines=True)
    if item.reference:
        st.caption("Reference")
        st.code(item.reference, language=None, wrap_lines=True)
    if item.scores or item.flags:
        st.caption("Automatic scores and flags (context, not a verdict)")
        st.dataframe(pd.DataFrame([{"name": k, "value": v} for k, v in {**item.scores, **item.flags}.items()]),
                     hide_index=True)


def _label_form(store: ReviewStore, item: ReviewItemView, reviewer: str) -> None:
    """Accept/reject, helpfulness, flags and comment; Tab moves between fields, Ctrl+Enter submits."""
    key = f"{item.id}"
    with st.form(f"label_{key}", clear_on_submit=False):
        if item.kind == "pairwise":
            preference = st.radio("Which answer is better?", PREFERENCES, index=None, horizontal=True,
                                  format_func=lambda p: {"A": "A", "B": "B", "tie": "Tie"}[p], key=f"preference_{key}")
        else:
            verdict = st.radio("Verdict", ["accept", "reject"], index=None, horizontal=True, key=f"verdict_{key}")
            helpfulness = st.radio("Helpfulness (1 = useless, 5 = excellent)", [1, 2, 3, 4, 5], index=None,
                                   horizontal=True, key=f"helpfulness_{key}")
            columns = st.columns(len(LABEL_FLAGS))
            flags = {flag: columns[i].checkbox(FLAG_TITLES[flag], key=f"flag_{flag}_{key}")
                     for i, flag in enumerate(LABEL_FLAGS)}
        comment = st.text_area("Comment (optional)", key=f"comment_{key}")
        submitted = st.form_submit_button("Submit (Ctrl+Enter)", type="primary", key=f"submit_{key}",
                                          shortcut="Ctrl+Enter")
    if not submitted:
        return
    # One client key per item and session: a resubmit after a lost acknowledgement returns the stored row.
    client_key = st.session_state.setdefault(f"client_key_{key}_{st.session_state.get('corrections', 0)}",
                                             uuid.uuid4().hex)
    if item.kind == "pairwise":
        if preference is None:
            st.error("Choose A, B or Tie.")
            return
        saved = store.add_judgment(item.id, reviewer, preference, comment, client_key=client_key)
    else:
        if verdict is None or helpfulness is None:
            st.error("Choose a verdict and a helpfulness rating.")
            return
        saved = store.add_label(item.id, reviewer, verdict, helpfulness, flags, comment, client_key=client_key)
    # add_* returned: the row is committed. Only now is it acknowledged.
    st.session_state["ack"] = {"item_id": item.id, "label_id": saved.id, "kind": item.kind}
    st.session_state["corrections"] = st.session_state.get("corrections", 0) + 1
    st.rerun()


def _others(store: ReviewStore, item_id: int, reviewer: str) -> None:
    others = store.others_labels(item_id, reviewer)
    if others is None:
        return  # not submitted yet: blind
    if not others:
        st.text("No other reviewer has labelled this item yet.")
        return
    rows = [{"reviewer": o.reviewer, **({"preference": o.preference} if hasattr(o, "preference") else
                                        {"verdict": o.verdict, "helpfulness": o.helpfulness,
                                         **{f: o.flags[f] for f in LABEL_FLAGS}}), "comment": o.comment}
            for o in others]
    st.caption("Other reviewers' labels")
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def _progress(store: ReviewStore, reviewer: str, manager: bool) -> None:
    progress = store.progress()
    done, assigned = progress.per_reviewer.get(reviewer, (0, 0))
    st.progress(done / assigned if assigned else 1.0, text=f"Your queue: {done} of {assigned} labelled")
    total = progress.items_total
    st.progress(progress.items_with_quorum / total if total else 1.0,
                text=f"All reviewers: {progress.items_with_quorum} of {total} items have their quorum")
    if manager:
        st.dataframe(pd.DataFrame([{"reviewer": r, "labelled": d, "assigned": n}
                                   for r, (d, n) in progress.per_reviewer.items()]), hide_index=True)


def _queue_page(store: ReviewStore, config: ReviewConfig, reviewer: str, manager: bool) -> None:
    _progress(store, reviewer, manager)
    ack = st.session_state.pop("ack", None)
    if ack:
        st.success(f"Saved: label {ack['label_id']} on item {ack['item_id']}.")
        _others(store, ack["item_id"], reviewer)
    queue = store.queue(reviewer, limit=config.page_size)
    if not queue:
        st.info("Your queue is empty.")
        return
    st.subheader("Next in your queue")
    st.dataframe(pd.DataFrame([{"item": q.item_id, "kind": q.kind, "source": q.source, "task": q.task,
                                "selected as": q.stratum} for q in queue]), hide_index=True, height=180)
    choice = st.selectbox("Item", [q.item_id for q in queue], key="queue_choice")
    item = store.item(choice)
    _show_item(item)
    _label_form(store, item, reviewer)


def _corrections_page(store: ReviewStore, reviewer: str) -> None:
    history = store.my_history(reviewer)
    if not history:
        st.info("You have not labelled anything yet.")
        return
    choice = st.selectbox("Item you labelled (most recent first)", history, key="correction_choice")
    item = store.item(choice)
    _show_item(item)
    mine = store.my_label(item.id, reviewer)
    st.caption("Your current label (a new submission supersedes it; the old one is kept)")
    st.dataframe(pd.DataFrame([{k: v for k, v in mine.__dict__.items() if k not in ("item_id", "reviewer")}]),
                 hide_index=True)
    _others(store, item.id, reviewer)
    ack = st.session_state.pop("ack", None)
    if ack:
        st.success(f"Saved: label {ack['label_id']} on item {ack['item_id']}.")
    _label_form(store, item, reviewer)


def _agreement_page(store: ReviewStore) -> None:
    # Imported on the page that needs them: the summary reads bench records, which the sign-in page does not.
    from harness.review.agreement import label_agreement
    from harness.review.summary import candidate_labels

    candidates = store.candidates()
    if not candidates:
        st.info("Nothing queued yet.")
        return
    candidate = st.selectbox("Candidate", candidates, key="agreement_candidate")
    current = candidate_labels(store, candidate)  # the same labels the review record counts
    overall, per_flag = label_agreement(current)
    rows = [{"on": "accept/reject", "statistic": overall.statistic, "value": overall.value, "items": overall.n}]
    rows += [{"on": flag, "statistic": a.statistic, "value": a.value, "items": a.n} for flag, a in per_flag.items()]
    st.subheader("Agreement")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="agreement_table")
    st.caption("Cohen's kappa when exactly two reviewers labelled; Krippendorff's alpha (nominal) for more. "
               "Empty when no item has two labels or every label is the same.")


def _export_page(store: ReviewStore) -> None:
    from harness.review.export import export_bytes

    fmt = st.radio("Format", ["csv", "parquet"], horizontal=True, key="export_format")
    st.download_button(f"Download labels ({fmt})", data=export_bytes(store, fmt), file_name=f"labels.{fmt}",
                       mime="text/csv" if fmt == "csv" else "application/octet-stream", key="export_download")


def main() -> None:
    st.set_page_config(page_title="nift-gate review", layout="wide")
    try:
        config, store = _settings()
    except NiftError as exc:  # a path or a field name is no business of a visitor's
        _unavailable(exc)
    reviewer = st.session_state.get("reviewer")
    if reviewer is None or config.reviewer(reviewer) is None:
        _sign_in(config, store)
        return
    manager = config.reviewer(reviewer).role == "release_manager"
    with st.sidebar:
        st.text(f"Signed in: {reviewer} ({config.reviewer(reviewer).role.replace('_', ' ')})")
        if st.button("Sign out", key="sign_out"):
            st.session_state.clear()
            if config.oidc:  # else the identity cookie signs the next run straight back in
                st.logout()
            st.rerun()
        pages = ["Queue", "Corrections"] + (["Agreement", "Export"] if manager else [])
        page = st.radio("Page", pages, key="page")
    {"Queue": lambda: _queue_page(store, config, reviewer, manager),
     "Corrections": lambda: _corrections_page(store, reviewer),
     "Agreement": lambda: _agreement_page(store), "Export": lambda: _export_page(store)}[page]()


main()
