"""nift-gate review app (Streamlit): reviewers label sampled outputs; release managers watch agreement,
adjudicate disputed items and export.

Started by ``nift-gate review serve``, which passes the pipeline config through the environment:
``NIFT_REVIEW_CONFIG`` (YAML path, may be empty), ``NIFT_REVIEW_SET`` (JSON list of ``--set`` assignments)
and ``NIFT_HOME``. The app reads only the run name and the ``review:`` section of that YAML
(``harness.review.config.load_review_section``). All review data is read and written through
``harness.review.store.ReviewStore``; this package only lays it out:

- ``dashboard.conversation``: an item as turns (stored messages, or the chat template parsed back);
- ``dashboard.guidelines``: the guidelines' Markdown with HTML and script links neutralised;
- ``dashboard.views``: items, guidelines and labels on the page, everything from a model or a person as text;
- ``dashboard.labelling``: the queue (one item at a time, keyboard shortcuts, skip) and corrections;
- ``dashboard.adjudication``: disputed items, for release managers and ``review.adjudicators``;
- ``dashboard.counting``: the items the review record counts, so progress, disputes and agreement are the
  record's figures (``harness.review.summary.review_progress``).

Sign-in failures lock the name out for a growing interval (``SignInGuard``, one per store and process, shared
by every session). A visitor sees no error detail: a bad config shows one generic line and the reason goes to
the server log (``review serve`` also sets ``client.showErrorDetails`` to ``none`` for uncaught errors).
"""

from __future__ import annotations

import json
import math
import os
from typing import NoReturn

import pandas as pd
import streamlit as st

from dashboard.adjudication import adjudication_page
from dashboard.counting import NO_RECORD, record_progress
from dashboard.labelling import corrections_page, queue_page
from harness.core.errors import NiftError
from harness.core.log import get_logger
from harness.core.store import RunStore
from harness.review.config import (
    Guidelines,
    ReviewConfig,
    SignInGuard,
    load_review_section,
)
from harness.review.store import ReviewStore, database_url

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


def _settings() -> tuple[ReviewConfig, ReviewStore, RunStore, Guidelines]:
    """Read at every run: an edited config, tokens file or guidelines file takes effect without a restart."""
    assignments = json.loads(os.environ.get("NIFT_REVIEW_SET") or "[]")
    name, config = load_review_section(os.environ.get("NIFT_REVIEW_CONFIG") or None, assignments)
    run = RunStore(name)
    return config, _open_store(database_url(config, run)), run, config.guidelines_document()


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
        # ignoring case, as the config keeps e-mails unique: identity providers differ on the case they return
        email = str(st.user.get("email") or "").lower()
        reviewer = next((r for r in config.reviewers if r.email and r.email.lower() == email), None)
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


def _agreement_page(store: ReviewStore, config: ReviewConfig, run: RunStore) -> None:
    # Imported on the page that needs them: the summary reads bench records, which the sign-in page does not.
    from harness.review.agreement import label_agreement
    from harness.review.summary import candidate_labels

    candidates = store.candidates()
    if not candidates:
        st.info("Nothing queued yet.")
        return
    candidate = st.selectbox("Candidate", candidates, key="agreement_candidate")
    progress = record_progress(store, config, run, candidate)
    # the labels the review record measures agreement on; where it cannot be made, every label on the outputs
    current = progress.labels if progress is not None else candidate_labels(store, candidate)
    overall, per_flag = label_agreement(current)
    rows = [{"on": "accept/reject", "statistic": overall.statistic, "value": overall.value, "items": overall.n}]
    rows += [{"on": flag, "statistic": a.statistic, "value": a.value, "items": a.n} for flag, a in per_flag.items()]
    st.subheader("Agreement")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="agreement_table")
    st.caption("Cohen's kappa when exactly two reviewers labelled; Krippendorff's alpha (nominal) for more. "
               "Empty when no item has two labels or every label is the same.")
    if progress is None:
        st.caption(NO_RECORD)
    else:
        st.caption(f"Counted as the review record counts it (review.agreement): the candidate's outputs queued "
                   f"from the current evidence ({', '.join(progress.source_record_ids)}); "
                   f"{len(progress.scope.stale)} stale item(s), queued from earlier records, left out.")


def _export_page(store: ReviewStore) -> None:
    from harness.review.export import export_bytes

    fmt = st.radio("Format", ["csv", "parquet"], horizontal=True, key="export_format")
    st.download_button(f"Download labels ({fmt})", data=export_bytes(store, fmt), file_name=f"labels.{fmt}",
                       mime="text/csv" if fmt == "csv" else "application/octet-stream", key="export_download")


def main() -> None:
    st.set_page_config(page_title="nift-gate review", layout="wide")
    try:
        config, store, run, guidelines = _settings()
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
        pages = (["Queue", "Corrections"] + (["Adjudication"] if config.may_adjudicate(reviewer) else [])
                 + (["Agreement", "Export"] if manager else []))
        page = st.radio("Page", pages, key="page")
    {"Queue": lambda: queue_page(store, config, run, reviewer, manager, guidelines),
     "Corrections": lambda: corrections_page(store, config, run, reviewer, guidelines),
     "Adjudication": lambda: adjudication_page(store, config, run, reviewer, guidelines),
     "Agreement": lambda: _agreement_page(store, config, run), "Export": lambda: _export_page(store)}[page]()


main()
