"""Every figure of one summary comes from one state of the label store: a label or judgment committed while the
summary reads is counted in none of its figures, and in every one of the next summary's."""

from __future__ import annotations

import pytest
from review_support import CANDIDATE
from sqlalchemy import select

from harness.review.enqueue import enqueue
from harness.review.store import NewItem, ReviewStore, items, open_store
from harness.review.summary import review_progress, summarise_review


def _labelled_queue(config, run_store) -> tuple[int, int]:
    """The run's queue with one own output labelled by ann and bob, one by ann only (no quorum yet) and one blind
    pair judged by ann; returns (the output ann alone labelled, the pair)."""
    enqueue(config, run_store)
    review = open_store(config, run_store)
    with review.engine.connect() as conn:
        rows = conn.execute(select(items.c.id, items.c.kind, items.c.model).order_by(items.c.id)).all()
    own = [r.id for r in rows if r.kind == "single" and r.model == CANDIDATE]
    [pair, *_] = [r.id for r in rows if r.kind == "pairwise"]
    review.assign(["ann", "bob"], 2)
    review.add_label(own[0], "ann", "accept", 4)
    review.add_label(own[0], "bob", "accept", 4)
    review.add_label(own[1], "ann", "accept", 4)
    review.add_judgment(pair, "ann", "A")
    review.close()
    return own[1], pair


def _bob_submits_between_reads(monkeypatch, url: str, item: int, pair: int) -> list[str]:
    """Once the first read of current labels has returned, bob's label on ``item`` and judgment on ``pair`` are
    committed by another connection (another store, as the review app's would be), before the summary's next
    read. Returns the list that records the kinds read in order."""
    read = ReviewStore.current_labels
    order: list[str] = []

    def current_labels(self, candidate=None, kind="single"):
        found = read(self, candidate, kind)
        order.append(kind)
        if len(order) == 1:
            other = ReviewStore(url, apply_migrations=False)
            try:
                other.add_label(item, "bob", "accept", 5)
                other.add_judgment(pair, "bob", "A")
            finally:
                other.close()
        return found

    monkeypatch.setattr(ReviewStore, "current_labels", current_labels)
    return order


def _store_state(record) -> str:
    return next(ref.sha256 for ref in record.inputs if ref.kind == "review_store")


def test_a_label_arriving_mid_summary_is_in_no_figure_until_the_next_summary(run_store, config, monkeypatch):
    item, pair = _labelled_queue(config, run_store)
    before = summarise_review(config, run_store)
    assert (before.labels, before.items_with_quorum, before.pairwise_judgments) == (3, 1, 1)
    order = _bob_submits_between_reads(monkeypatch, config.database, item, pair)
    during = summarise_review(config, run_store)
    assert order[:2] == ["single", "pairwise"]  # the judgment was committed between the two reads
    assert (during.labels, during.items_with_quorum, during.pairwise_judgments, during.reviewers) == (
        before.labels, before.items_with_quorum, before.pairwise_judgments, before.reviewers)
    assert during.pairwise == before.pairwise
    assert _store_state(during) == _store_state(before)
    monkeypatch.undo()
    after = summarise_review(config, run_store)
    assert (after.labels, after.items_with_quorum, after.pairwise_judgments) == (4, 2, 2)
    assert _store_state(after) != _store_state(before)


def test_the_apps_progress_is_counted_on_one_state_of_the_store_too(run_store, config, monkeypatch):
    item, pair = _labelled_queue(config, run_store)
    review = open_store(config, run_store)
    try:
        before = review_progress(review, config, run_store)
        _bob_submits_between_reads(monkeypatch, config.database, item, pair)
        during = review_progress(review, config, run_store)
        monkeypatch.undo()
        after = review_progress(review, config, run_store)
    finally:
        review.close()
    assert (during.per_reviewer, during.items_with_quorum) == (before.per_reviewer, before.items_with_quorum)
    done, assigned = before.per_reviewer["bob"]
    assert after.per_reviewer["bob"] == (done + 2, assigned)
    assert after.items_with_quorum == before.items_with_quorum + 1


@pytest.fixture(params=["sqlite", "postgresql"])
def review(request, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    store = ReviewStore(url)
    store.add_items([NewItem(kind="single", stratum="random", source="bench/qa", source_record_id="rec",
                             source_item_id=key, task="qa", candidate="cand", model="cand", prompt=f"prompt {key}",
                             output=f"output {key}", content_key=key) for key in "ab"])
    store.add_label(1, "ann", "accept", 4)
    store.add_label(2, "ann", "reject", 1)
    yield store
    store.close()


def test_every_read_in_a_snapshot_sees_the_store_as_at_its_first(review):
    other = ReviewStore(review.url, apply_migrations=False)
    try:
        with review.snapshot():
            assert len(review.current_labels("cand")) == 2
            other.add_label(1, "bob", "accept", 4)  # committed by another connection meanwhile
            other.add_label(2, "bob", "accept", 4)  # item 2 is now disputed
            assert len(review.current_labels("cand")) == 2
            assert review.progress("cand", required_reviewers=2).items_with_quorum == 0
            assert review.disputed_items("cand") == []
        assert len(review.current_labels("cand")) == 4
        assert review.progress("cand", required_reviewers=2).items_with_quorum == 2
        assert [d.item_id for d in review.disputed_items("cand")] == [2]
    finally:
        other.close()
