"""review_progress: the review record's counts, live, for the review app. Each figure must be the record's on the
same store, whatever else the store holds (stale items, baselines' outputs, blind pairs, another candidate)."""

from __future__ import annotations

from pinning import write_pinned_record
from review_support import BASELINE, CANDIDATE
from sqlalchemy import select

from harness.bench.record import bench_folder, read_bench
from harness.core.store import write_record
from harness.review.agreement import label_agreement
from harness.review.enqueue import enqueue
from harness.review.store import NewItem, items, open_store
from harness.review.summary import counted_items, current_evidence, review_progress, summarise_review


def _single(key: str, record_id: str, *, model: str = CANDIDATE, candidate: str = CANDIDATE) -> NewItem:
    return NewItem(kind="single", stratum="random", source="bench/qa", source_record_id=record_id,
                   source_item_id=key, task="qa", candidate=candidate, model=model,
                   role="candidate" if model == candidate else "baseline", prompt=f"prompt {key}",
                   output=f"output {key}", content_key=f"s-{key}")


def _label(review, item_id: int, verdicts: dict[str, str]) -> None:
    for reviewer, verdict in verdicts.items():
        review.add_label(item_id, reviewer, verdict, 4 if verdict == "accept" else 1)


def _mixed_store(config, run_store):
    """The run's queue (enqueue: the candidate's outputs and blind pairs), 3 baseline outputs queued from the
    current bench (counted as context, not in the quorum), 6 stale items of earlier weights, 2 items of another
    candidate, and labels, disputes and an adjudication on each kind."""
    enqueue(config, run_store)
    review = open_store(config, run_store)
    with review.engine.connect() as conn:
        rows = conn.execute(select(items.c.id, items.c.kind, items.c.model).order_by(items.c.id)).all()
    own = [r.id for r in rows if r.kind == "single" and r.model == CANDIDATE]
    pairs = [r.id for r in rows if r.kind == "pairwise"]
    baseline = review.add_items([_single(f"b{i}", "bench-test", model=BASELINE) for i in range(3)])
    stale = review.add_items([_single(f"old{i}", "bench-OLD-weights") for i in range(6)])
    other = review.add_items([_single(f"x{i}", "bench-x", candidate="another-cand") for i in range(2)])
    review.assign(["ann", "bob"], 2)
    for item in own[:3] + stale + other + baseline[:2]:
        _label(review, item, {"ann": "accept", "bob": "accept"})
    _label(review, own[3], {"ann": "accept", "bob": "reject"})  # counted, disputed, then adjudicated
    review.add_adjudication(own[3], "meg", reason="it answers", verdict="accept", helpfulness=4)
    _label(review, own[4], {"ann": "accept", "bob": "reject"})  # counted, disputed, pending
    _label(review, own[5], {"ann": "reject"})  # one reviewer: no quorum
    for item in stale[:3] + other[:1] + baseline[:1]:  # disputes the record does not count
        _label(review, item, {"cy": "reject"})
    review.add_adjudication(stale[0], "meg", reason="stale anyway", verdict="reject", helpfulness=1)
    review.add_judgment(pairs[0], "ann", "A")
    review.add_judgment(pairs[0], "bob", "B")  # a disputed pair, counted
    return review, {"own": own, "baseline": baseline, "pairs": pairs, "stale": stale, "other": other}


def test_review_progress_gives_the_records_counts_on_a_mixed_store(run_store, config):
    review, ids = _mixed_store(config, run_store)
    progress = review_progress(review, config, run_store)
    whole = review.progress(required_reviewers=config.required_reviewers)
    review.close()
    record = summarise_review(config, run_store)
    assert progress.candidate == record.candidate == CANDIDATE
    assert list(progress.source_record_ids) == record.source_record_ids
    assert (progress.items_total, progress.items_with_quorum) == (record.items_total, record.items_with_quorum)
    assert (progress.items_total, progress.items_with_quorum) == (len(ids["own"]), 5)
    assert (len(progress.disputed), len(progress.adjudicated), len(progress.pending)) == (
        record.disputed_items, record.adjudicated_items, record.adjudication_pending) == (3, 1, 2)
    assert len(progress.scope.stale) == record.stale_items == 6
    assert not progress.scope.counted & set(ids["stale"] + ids["other"])
    overall, per_flag = label_agreement(progress.labels)
    assert overall == record.agreement
    assert {f: a for f, a in per_flag.items() if a.n} == record.agreement_per_flag
    # The whole store says otherwise: that is what the app showed before.
    assert (whole.items_total, whole.items_with_quorum) != (record.items_total, record.items_with_quorum)


def test_each_reviewers_labelled_and_assigned_are_over_the_counted_items(run_store, config):
    review, ids = _mixed_store(config, run_store)
    progress = review_progress(review, config, run_store)
    whole = review.progress(required_reviewers=config.required_reviewers)
    review.close()
    counted = len(ids["own"]) + len(ids["baseline"]) + len(ids["pairs"])
    # enqueue and assign gave every item both ann and bob; cy labelled without an assignment
    assert progress.per_reviewer == {"ann": (3 + 3 + 2 + 1, counted), "bob": (3 + 2 + 2 + 1, counted)}
    assert whole.per_reviewer["ann"] == (9 + 6 + 2, counted + 8)  # stale and the other candidate's counted there


def test_review_progress_follows_the_evidence_a_rerun_replaced(run_store, config):
    """Retrained weights: the bench's items go stale for the record and for the progress alike."""
    review, ids = _mixed_store(config, run_store)
    folder = bench_folder(run_store, CANDIDATE)
    for path in (folder / "samples").rglob("*.jsonl"):
        path.write_text(path.read_text().replace("answer", "retrained answer"))
    pairwise = folder / "pairwise.jsonl"
    pairwise.write_text(pairwise.read_text().replace('"hi there"', '"hi again"').replace('"red"', '"pink"'))
    write_pinned_record(folder, read_bench(run_store, CANDIDATE).model_copy(update={"record_id": "bench-retrained"}))
    progress = review_progress(review, config, run_store)
    review.close()
    record = summarise_review(config, run_store)
    assert len(progress.scope.stale) == record.stale_items > 6
    assert (progress.items_total, progress.items_with_quorum, len(progress.disputed), len(progress.pending)) == (
        record.items_total, record.items_with_quorum, record.disputed_items, record.adjudication_pending)
    assert progress.items_total < len(ids["own"])


def _counted_afresh(config, run_store):
    """The counted items computed afresh, as the summary does."""
    review = open_store(config, run_store)
    try:
        return counted_items(review, config, run_store, CANDIDATE, current_evidence(run_store, CANDIDATE))
    finally:
        review.close()


def test_a_cached_scope_serves_only_while_the_items_and_the_evidence_are_the_same(run_store, config):
    review, ids = _mixed_store(config, run_store)
    cache: dict = {}
    first = review_progress(review, config, run_store, cache=cache)
    assert review_progress(review, config, run_store, cache=cache).scope is first.scope  # served from the cache
    [late] = review.add_items([_single("late", "bench-OLD-weights")])  # queued since: read again
    assert late in review_progress(review, config, run_store, cache=cache).scope.stale
    folder = bench_folder(run_store, CANDIDATE)  # a rerun bench: a new record, read again
    write_record(folder, read_bench(run_store, CANDIDATE).model_copy(update={"record_id": "bench-rerun"}))
    rerun = review_progress(review, config, run_store, cache=cache)
    review.close()
    assert rerun.scope.carried_over and rerun.scope == _counted_afresh(config, run_store)
