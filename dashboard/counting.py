"""What the review record counts, for the app's pages.

The gate judges the review record, which counts only the candidate's items queued from the current evidence
(``harness.review.summary``: the bench record and the audits' records as they are now). The Queue's progress
bars, the Adjudication page's disputed items and the Agreement page count the same items, through
``harness.review.summary.review_progress``, so the app shows the record's figures. Items queued from an earlier
bench or audit record (stale) or for another candidate stay in the queue, marked as counted for nothing.

Where no record can be made yet (the run holds no bench or audit record, or several candidates and no
``review.candidate``), :func:`record_progress` is None and the pages show whole-store figures, saying so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from harness.core.errors import NiftError
from harness.core.log import get_logger
from harness.core.store import RunStore
from harness.review.config import ReviewConfig
from harness.review.store import ReviewStore

if TYPE_CHECKING:
    from harness.review.summary import ReviewProgress

#: Said where a figure is over the whole label store because the record's scope is unknown.
NO_RECORD = ("No review record can be made for this run yet (no bench or audit record to count items against, "
             "or several candidates and no review.candidate): these figures are over the whole label store.")
#: Said beside an item the record does not count. No model name: reviewers are blind to them.
NOT_COUNTED = ("Not counted: this item was queued from an earlier bench or audit record (outputs of other "
               "weights, or of a bench since rerun) or for another candidate. Its label is kept, but the review "
               "record the gate judges counts it for nothing.")
log = get_logger("review.app")


@st.cache_resource(show_spinner=False)
def _scopes(url: str) -> dict:
    """One cache of counted items per label store and process (``review_progress(cache=...)``)."""
    return {}


def record_progress(store: ReviewStore, config: ReviewConfig, run: RunStore,
                    candidate: str | None = None) -> ReviewProgress | None:
    """The review record's counts for ``candidate`` (default: the one the summary resolves), or None where no
    record can be made: no current evidence, no candidate to resolve, or a record that cannot be read (the
    server log says why)."""
    # Imported here: the summary reads bench records, which the sign-in page does not need.
    from harness.review.summary import review_progress

    try:
        progress = review_progress(store, config, run, candidate, cache=_scopes(store.url))
    except (NiftError, OSError) as exc:  # an unreadable record (or one replaced while read): labelling goes on
        log.info("review app: figures over the whole label store: %s", exc)
        return None
    return progress if progress.source_record_ids else None
