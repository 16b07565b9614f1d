"""The review record counts only labels on the current evidence's outputs, and measures the judge over pairs.

Labels given on the outputs of other weights (items queued from an earlier bench or audit record) must not
approve the current checkpoint; several reviewers' votes on one pair must not count as independent evidence
that the pairwise judge agrees with people.
"""

from __future__ import annotations

import pytest
from pinning import pin_outputs, write_pinned_record
from review_support import BASELINE, CANDIDATE, pair_item, single_item, write_audit
from sqlalchemy import select

from harness.bench.record import bench_folder, read_bench
from harness.core.records import StoredRecord
from harness.core.stats import proportion_interval
from harness.core.store import atomic_write_jsonl, write_record
from harness.review.agreement import ITEM_INTERVAL, SPLIT, item_agreement, majority
from harness.review.enqueue import enqueue
from harness.review.store import items, open_store
from harness.review.summary import summarise_review

CURRENT_RECORDS = ["bench-test", "hallucination-test", "toxicity-test"]  # review_support.make_run's


def _accept_by_both(review, ids) -> None:
    for item in ids:
        for reviewer in ("ann", "bob"):
            review.add_label(item, reviewer, "accept", 4)


def _candidate_sha(store) -> str:
    return next(m.model.sha256 for m in read_bench(store, CANDIDATE).models if m.role == "candidate")


def test_labels_on_an_earlier_records_outputs_count_for_neither_approval_nor_quorum(run_store, config):
    """30 outputs of weights since retrained (queued from 'bench-OLD-weights'), each accepted by both reviewers,
    and one output of the current bench, rejected: only the current one counts, and the record says how many
    labelled items it left out, which records it counted against and the weights they name."""
    review = open_store(config, run_store)
    old = review.add_items([single_item(f"old{i}", "bench-OLD-weights") for i in range(30)])
    [mine] = review.add_items([single_item("now", "bench-test")])
    _accept_by_both(review, old)
    review.add_label(mine, "ann", "reject", 1)
    review.add_label(mine, "bob", "reject", 1)
    review.close()
    record = summarise_review(config, run_store)
    assert (record.items_total, record.items_with_quorum, record.labels) == (1, 1, 2)
    assert (record.approval_rate, record.approval_items) == (0.0, 1)
    assert (record.stale_items, record.stale_labelled_items, record.carried_over_items) == (30, 30, 0)
    assert record.source_record_ids == CURRENT_RECORDS
    assert record.candidate_model_sha256 == _candidate_sha(run_store)
    assert {(i.kind, i.id) for i in record.inputs} >= {("bench", "bench-test"), ("toxicity_audit", "toxicity-test")}
    # The labels are kept (append-only); they just do not count for this checkpoint.
    review = open_store(config, run_store)
    assert review.counts()["labels"] == 62
    review.close()


def test_only_stale_labels_leave_the_review_without_approval(run_store, config):
    review = open_store(config, run_store)
    _accept_by_both(review, review.add_items([single_item(f"old{i}", "bench-OLD-weights") for i in range(5)]))
    review.close()
    record = summarise_review(config, run_store)
    assert (record.items_total, record.items_with_quorum, record.labels, record.approval_rate) == (0, 0, 0, None)
    assert record.stale_labelled_items == 5
    assert not [v for v in record.metric_values() if v.metric == "review.approval_rate"]


def test_a_rerun_bench_that_holds_the_same_outputs_keeps_their_labels_and_new_outputs_drop_them(run_store, config):
    """enqueue never queues an output twice, so after a bench rerun with the same outputs the items keep the first
    record's id: they still count (carried over). Once the bench holds other outputs (retrained weights), the
    bench's items are stale; the audits' items still count."""
    enqueue(config, run_store)
    review = open_store(config, run_store)
    with review.engine.connect() as conn:
        bench_items = set(conn.execute(select(items.c.id).where(items.c.source_record_id == "bench-test")).scalars())
        own_bench = set(conn.execute(select(items.c.id).where(
            items.c.source_record_id == "bench-test", items.c.model == CANDIDATE, items.c.kind == "single")).scalars())
    for entry in review.queue("ann", 1000):
        if entry.kind == "single":
            _accept_by_both(review, [entry.item_id])
        else:
            for reviewer in ("ann", "bob"):
                review.add_judgment(entry.item_id, reviewer, "A")
    review.close()
    first = summarise_review(config, run_store)
    assert (first.stale_items, first.carried_over_items) == (0, 0)

    folder = bench_folder(run_store, CANDIDATE)
    bench = read_bench(run_store, CANDIDATE)
    write_record(folder, bench.model_copy(update={"record_id": "bench-rerun"}))
    rerun = summarise_review(config, run_store)
    assert rerun.source_record_ids == ["bench-rerun", "hallucination-test", "toxicity-test"]
    assert (rerun.stale_items, rerun.carried_over_items) == (0, len(bench_items))
    assert (rerun.items_total, rerun.items_with_quorum, rerun.labels, rerun.approval_rate) == (
        first.items_total, first.items_with_quorum, first.labels, first.approval_rate)
    assert sum(p.wins for p in rerun.pairwise) == sum(p.wins for p in first.pairwise) > 0

    # Retrained: every output of the bench is another text now.
    for model in (CANDIDATE, BASELINE):
        path = folder / "samples" / model / "samples_qa.jsonl"
        path.write_text(path.read_text().replace("answer", "retrained answer"))
    pairwise = folder / "pairwise.jsonl"
    pairwise.write_text(pairwise.read_text().replace('"hi there"', '"hi again"').replace('"red"', '"pink"'))
    write_pinned_record(folder, bench.model_copy(update={"record_id": "bench-retrained"}))
    retrained = summarise_review(config, run_store)
    assert retrained.stale_items == retrained.stale_labelled_items == len(bench_items)
    assert retrained.carried_over_items == 0
    assert retrained.items_total == first.items_total - len(own_bench) > 0  # the audits' items still count
    assert retrained.pairwise == []  # every blind pair came from the bench


def test_an_audit_of_other_weights_is_no_current_evidence(run_store, config):
    """An audit whose record names other candidate weights than the bench's measured another checkpoint."""
    folder = write_audit(run_store, "toxicity", [])
    write_pinned_record(folder, StoredRecord(kind="toxicity_audit", record_id="toxicity-old", run_id=run_store.run_id,
                                      fingerprint="a" * 64, models=[{"name": CANDIDATE, "role": "candidate",
                                                                     "model": {"sha256": "0" * 64}}]))
    review = open_store(config, run_store)
    _accept_by_both(review, review.add_items([single_item("t", "toxicity-old", "audit/toxicity")]))
    review.close()
    record = summarise_review(config, run_store)
    assert record.source_record_ids == ["bench-test", "hallucination-test"]
    assert (record.items_total, record.stale_labelled_items) == (0, 1)


# ---- judge-human agreement over pairs, not votes ------------------------------------------------------------
def _row(qid: str, outcome: str) -> dict:
    return {"question_id": qid, "turns": [f"Question {qid}?"], "baseline": BASELINE,
            "candidate_answer": [f"cand {qid}"], "baseline_answer": [f"base {qid}"], "verdict_candidate_first": "A",
            "verdict_baseline_first": "B", "outcome": outcome}


def test_judge_agreement_counts_pairs_not_each_reviewers_vote(run_store, config):
    """20 pairs the judge calls wins; three reviewers vote alike on each, agreeing with it on 15. By votes that is
    45 of 60 with a Wilson lower bound of 0.628 (a `judge_agreement min=0.6 judge_on=ci` rule would pass); the
    pairs are the sample: 15 of 20, lower bound 0.531."""
    questions = [f"q{i}" for i in range(20)]
    atomic_write_jsonl(bench_folder(run_store, CANDIDATE) / "pairwise.jsonl", [_row(q, "win") for q in questions])
    pin_outputs(bench_folder(run_store, CANDIDATE))
    review = open_store(config, run_store)
    for i, item in enumerate(review.add_items([pair_item(q, f"Question {q}?") for q in questions])):
        for reviewer in ("ann", "bob", "cy"):
            review.add_judgment(item, reviewer, "A" if i < 15 else "B")
    review.close()
    judged = summarise_review(config, run_store).judge_agreement
    low, high = proportion_interval(15, 20, 0.95, "wilson")
    assert (judged.items, judged.with_ties.agreeing, judged.with_ties.n, judged.with_ties.split) == (20, 15, 20, 0)
    assert (judged.with_ties.ci_low, judged.with_ties.ci_high) == pytest.approx((low, high))
    assert judged.with_ties.ci_low < 0.6 and judged.with_ties.interval == ITEM_INTERVAL
    assert (judged.without_ties.agreeing, judged.without_ties.n) == (15, 20)


def test_item_agreement_takes_the_reviewers_strict_majority_and_leaves_splits_out():
    assert majority(["win", "win", "loss"]) == "win"
    assert majority(["win", "loss"]) == SPLIT and majority(["win", "tie", "loss"]) == SPLIT
    assert majority(["tie", "tie", "win"], ban=("tie",)) == "win" and majority(["tie"], ban=("tie",)) is None
    judged = [("win", ["win", "win", "loss"]), ("win", ["loss", "win"]), ("loss", ["win"]), ("tie", ["tie", "win"]),
              ("win", ["tie", "tie", "win"])]
    with_ties = item_agreement(judged, 0.95)
    assert (with_ties.agreeing, with_ties.n, with_ties.split) == (1, 3, 2)
    # Without ties: the judge's tie is left out, tie votes are dropped (the last pair is then a win).
    without = item_agreement(judged, 0.95, ("tie",))
    assert (without.agreeing, without.n, without.split) == (2, 3, 1)
