"""An adjudication decides the labels it was given on: a label written on the item after it makes it stale, and
the item is judged by its current labels again (waiting for a new adjudication if they still disagree)."""

from __future__ import annotations

import threading

import pytest
from review_support import CANDIDATE, pair_item, single_item

import harness.review.store as store_module
from harness.review.store import open_store
from harness.review.summary import review_progress, summarise_review


def _adjudicated_then_relabelled(config, run_store):
    """ann and bob reject items x and y; ann accepts x (a dispute), meg adjudicates x 'accept', then ann rejects
    x again: both current labels on x are reject."""
    review = open_store(config, run_store)
    x, y = review.add_items([single_item("x"), single_item("y")])
    for item_id in (x, y):
        review.add_label(item_id, "ann", "reject", 2)
        review.add_label(item_id, "bob", "reject", 2)
    review.add_label(x, "ann", "accept", 4)
    review.add_adjudication(x, "meg", reason="ann is right", verdict="accept", helpfulness=4)
    return review, x


def test_a_label_written_after_the_adjudication_makes_it_stale(run_store, config):
    review, x = _adjudicated_then_relabelled(config, run_store)
    assert review.stale_adjudications(CANDIDATE) == set()
    review.add_label(x, "ann", "reject", 2)
    assert review.stale_adjudications(CANDIDATE) == {x}
    review.close()
    record = summarise_review(config, run_store)
    # Every reviewer now rejects x: the old 'accept' adjudication no longer approves it.
    assert (record.approval_rate, sum(s.approved for s in record.approval_strata)) == (0.0, 0)
    assert (record.disputed_items, record.adjudicated_items, record.adjudication_pending) == (0, 0, 0)
    assert record.stale_adjudications == 1
    assert record.helpfulness_mean == pytest.approx(2.0)


def test_an_item_disputed_again_after_its_adjudication_waits_for_a_new_one(run_store, config):
    review, x = _adjudicated_then_relabelled(config, run_store)
    review.add_label(x, "bob", "accept", 5)  # bob now accepts, ann still accepts: the labels changed after meg
    review.add_label(x, "ann", "reject", 2)  # disputed again, on labels meg never saw
    (pending,) = review.disputed_items(CANDIDATE, pending_only=True)
    assert (pending.item_id, pending.adjudication, pending.stale_adjudication.author) == (x, None, "meg")
    progress = review_progress(review, config, run_store)
    assert (progress.pending, progress.stale_adjudications) == ({x}, {x})
    review.close()
    record = summarise_review(config, run_store)
    assert (record.disputed_items, record.adjudicated_items, record.adjudication_pending) == (1, 0, 1)
    assert record.approval_rate == 0.0  # a split vote is no approval; the stale 'accept' does not count
    review = open_store(config, run_store)
    review.add_adjudication(x, "meg", reason="bob is right now", verdict="accept", helpfulness=5)
    assert review.disputed_items(CANDIDATE, pending_only=True) == []
    review.close()
    record = summarise_review(config, run_store)
    assert (record.disputed_items, record.adjudicated_items, record.adjudication_pending) == (1, 1, 0)
    assert record.stale_adjudications == 0  # the new adjudication is later than every label
    assert sum(s.approved for s in record.approval_strata) == 1


def test_a_clock_stepped_back_still_stamps_the_later_label_after_the_adjudication(run_store, config, monkeypatch):
    """The order of an item's rows is the order they were written, whatever the wall clock says."""
    review, x = _adjudicated_then_relabelled(config, run_store)
    monkeypatch.setattr(store_module, "_now", lambda: "2020-01-01T00:00:00.000000+00:00")
    label = review.add_label(x, "ann", "reject", 2)
    assert label.created_at > review.adjudication(x).created_at
    assert review.stale_adjudications() == {x}
    review.close()


def test_a_pairwise_judgment_after_the_adjudication_makes_it_stale(run_store, config):
    review = open_store(config, run_store)
    (pair,) = review.add_items([pair_item("q")])
    review.add_judgment(pair, "ann", "A")
    review.add_judgment(pair, "bob", "B")
    review.add_adjudication(pair, "meg", reason="A answers it", preference="A")
    assert summarise_review(config, run_store).pairwise[0].wins == 2  # both judgments count as A
    review.add_judgment(pair, "ann", "B")  # ann changes her mind: both prefer the baseline now
    assert review.stale_adjudications(CANDIDATE) == {pair}
    review.close()
    record = summarise_review(config, run_store)
    assert (record.pairwise[0].wins, record.pairwise[0].losses, record.adjudicated_items) == (0, 2, 0)


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_database")
    store = store_module.ReviewStore(url)
    yield store
    store.close()


def test_the_adjudication_queue_lists_an_item_whose_adjudication_went_stale(bare_store):
    x, y = bare_store.add_items([single_item("x"), single_item("y")])
    for item_id in (x, y):
        bare_store.add_label(item_id, "ann", "accept", 4)
        bare_store.add_label(item_id, "bob", "reject", 2)
        bare_store.add_adjudication(item_id, "meg", reason="ann is right", verdict="accept", helpfulness=4)
    assert bare_store.disputed_items(pending_only=True) == []
    bare_store.add_label(y, "bob", "reject", 1, comment="still wrong")  # a correction after meg decided y
    assert bare_store.stale_adjudications() == {y}
    assert bare_store.stale_adjudications("another candidate") == set()
    (pending,) = bare_store.disputed_items(pending_only=True)
    assert (pending.item_id, pending.adjudication, pending.stale_adjudication.reason) == (y, None, "ann is right")
    decided = {d.item_id: d.adjudication for d in bare_store.disputed_items()}
    assert decided[x].author == "meg" and decided[y] is None


def test_two_writes_to_one_item_in_one_instant_are_stamped_in_the_order_they_commit(bare_store, monkeypatch):
    """ann's label is stamped but not committed when bob's write to the same item starts, both in the same
    microsecond. bob's write waits for ann's (PostgreSQL: the item's row lock; SQLite: the writer queue) and is
    stamped after it: read without the wait, both would carry one stamp and their order would be a coin toss."""
    (x,) = bare_store.add_items([single_item("x")])
    monkeypatch.setattr(store_module, "_now", lambda: "2030-01-01T00:00:00.000000+00:00")
    stamp, stamped, release = store_module.ReviewStore._written_at, threading.Event(), threading.Event()

    def held_after_stamping(conn, item_id):
        at = stamp(conn, item_id)
        if threading.current_thread().name == "ann":
            stamped.set()
            assert release.wait(30)
        return at

    monkeypatch.setattr(store_module.ReviewStore, "_written_at", staticmethod(held_after_stamping))
    written = {}
    ann = threading.Thread(name="ann", target=lambda: written.update(ann=bare_store.add_label(x, "ann", "accept", 4)))
    bob = threading.Thread(name="bob", target=lambda: written.update(bob=bare_store.add_label(x, "bob", "reject", 2)))
    ann.start()
    assert stamped.wait(30)
    bob.start()
    bob.join(1.0)
    assert "bob" not in written  # waiting for ann's transaction
    release.set()
    ann.join(30)
    bob.join(30)
    assert written["bob"].created_at > written["ann"].created_at == "2030-01-01T00:00:00.000000+00:00"
