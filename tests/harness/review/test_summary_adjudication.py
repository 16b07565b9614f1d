"""The review record with adjudicated labels, judge-human agreement and automatic-flag agreement."""

from __future__ import annotations

import pytest
from pinning import pin_outputs
from review_support import BASELINE, CANDIDATE

from harness.bench.record import bench_folder
from harness.core.store import atomic_write_jsonl
from harness.review.agreement import ITEM_INTERVAL
from harness.review.store import NewItem, open_store
from harness.review.summary import summarise_review


#: The record ids of the hand-made run's bench and audits (review_support.make_run): items queued from them count.
RECORD_OF = {"bench/qa": "bench-test", "audit/toxicity": "toxicity-test", "audit/hallucination": "hallucination-test"}


def _single(key: str, model: str = CANDIDATE, source: str = "bench/qa", flags: dict | None = None) -> NewItem:
    return NewItem(kind="single", stratum="random", source=source, source_record_id=RECORD_OF[source],
                   source_item_id=key,
                   task="qa", candidate=CANDIDATE, model=model, role="candidate", prompt=f"prompt {key}",
                   output=f"output {key}", flags=flags or {}, content_key=f"s-{key}")


def test_adjudicated_labels_count_for_approval_flags_and_helpfulness_not_for_agreement(run_store, config):
    review = open_store(config, run_store)
    a, b, c = review.add_items([_single("a"), _single("b"), _single("c")])
    review.add_label(a, "ann", "accept", 4)
    review.add_label(a, "bob", "reject", 2)  # disputed: verdict
    review.add_adjudication(a, "meg", reason="the answer is right", verdict="accept", helpfulness=5,
                            flags={"toxic": True})
    review.add_label(b, "ann", "accept", 4)
    review.add_label(b, "bob", "accept", 4)
    review.add_label(c, "ann", "accept", 3, {"toxic": True})
    review.add_label(c, "bob", "accept", 3)  # disputed: toxic, not adjudicated yet
    review.close()
    record = summarise_review(config, run_store)
    assert record.schema_version == 3
    # Item a counts as accepted (its reviewers split, which alone is no approval).
    assert record.approval_rate == pytest.approx(1.0) and record.approval_items == 3
    # Each label on an adjudicated item counts as the adjudicated one: a's two labels are toxic, c's one.
    assert record.flag_rates["toxic"] == pytest.approx(3 / 6)
    assert record.helpfulness_mean == pytest.approx((5 + 5 + 4 + 4 + 3 + 3) / 6)
    # Agreement is the reviewers' own: they disagree on a, so raw agreement is 2/3, not 1.
    assert record.agreement.observed == pytest.approx(2 / 3)
    assert record.agreement_per_flag["toxic"].observed == pytest.approx(2 / 3)
    assert (record.disputed_items, record.adjudicated_items, record.adjudication_pending) == (2, 1, 1)
    assert record.labels == 6


def _pair(key: str, candidate_first: bool, cand: str, base: str, record_id: str = "bench-test") -> NewItem:
    (a, ma), (b, mb) = ((cand, CANDIDATE), (base, BASELINE)) if candidate_first else ((base, BASELINE),
                                                                                     (cand, CANDIDATE))
    return NewItem(kind="pairwise", stratum="pairwise", source="bench/pairwise", source_record_id=record_id,
                   source_item_id=key, task="pairwise", candidate=CANDIDATE, prompt=f"question {key}", output_a=a,
                   output_b=b, model_a=ma, model_b=mb, content_key=f"p-{key}")


def _row(qid: str, outcome: str) -> dict:
    return {"question_id": qid, "turns": [f"Question {qid}?"], "baseline": BASELINE,
            "candidate_answer": [f"cand {qid}"], "baseline_answer": [f"base {qid}"], "verdict_candidate_first": "A",
            "verdict_baseline_first": "B", "outcome": outcome}


def test_judge_agreement_with_and_without_ties_and_kappa(run_store, config):
    """Judge: q1 win, q2 win, q3 tie, q4 loss, q5 unparseable; q6 (queued from an earlier bench record) holds
    answers the judge did not judge. Reviewers' votes for the candidate: q1 win, win; q2 loss, tie; q3 tie, win;
    q4 loss; q5 win; q6 win. Per pair, the reviewers' majority: q1 win, q2 and q3 split (left out), q4 loss.
    With ties: 2 pairs compared, both agree. Without ties (the judge's tie q3 left out, tie votes dropped): q1 win,
    q2 loss (bob's tie dropped), q4 loss: 2 of 3 agree. Kappa over q1, q4: 1."""
    atomic_write_jsonl(bench_folder(run_store, CANDIDATE) / "pairwise.jsonl",
                       [_row("q1", "win"), _row("q2", "win"), _row("q3", "tie"), _row("q4", "loss"),
                        _row("q5", "unparseable"), _row("q6", "win")])
    pin_outputs(bench_folder(run_store, CANDIDATE))
    review = open_store(config, run_store)
    first = {"q1": True, "q2": False, "q3": True, "q4": False, "q5": True, "q6": False}
    ids = dict(zip(first, review.add_items(
        [_pair(q, first[q], f"cand {q}", "another baseline answer", "bench-old") if q == "q6"
         else _pair(q, first[q], f"cand {q}", f"base {q}") for q in first])))

    def vote(q: str, reviewer: str, outcome: str) -> None:
        cand, base = ("A", "B") if first[q] else ("B", "A")
        review.add_judgment(ids[q], reviewer, {"win": cand, "loss": base, "tie": "tie"}[outcome])

    for q, reviewer, outcome in [("q1", "ann", "win"), ("q1", "bob", "win"), ("q2", "ann", "loss"),
                                 ("q2", "bob", "tie"), ("q3", "ann", "tie"), ("q3", "bob", "win"),
                                 ("q4", "ann", "loss"), ("q5", "ann", "win"), ("q6", "ann", "win")]:
        vote(q, reviewer, outcome)
    # An adjudication changes the win rate, never the judge's agreement with the reviewers' own votes.
    review.add_adjudication(ids["q2"], "meg", reason="the candidate's answer is wrong",
                            preference="B" if first["q2"] else "A")
    review.close()
    record = summarise_review(config, run_store)
    judged = record.judge_agreement
    assert (judged.items, judged.unparseable, judged.unmatched) == (4, 1, 1)
    assert (judged.with_ties.agreeing, judged.with_ties.n, judged.with_ties.split) == (2, 2, 2)
    assert (judged.without_ties.agreeing, judged.without_ties.n, judged.without_ties.split) == (2, 3, 0)
    assert judged.kappa == pytest.approx(1.0)
    assert judged.with_ties.ci_low < 1.0 and judged.with_ties.interval == ITEM_INTERVAL
    assert [(d.question_id, d.judge, d.reviewers) for d in judged.disagreements] == [
        ("q2", "win", {"tie": 1, "loss": 1}), ("q3", "tie", {"win": 1, "tie": 1})]
    assert judged.disagreements[0].question == "Question q2?"
    assert judged.disagreements_total == 2
    values = {v.metric: v for v in record.metric_values() if v.metric.startswith("review.judge")}
    assert values["review.judge_agreement"].value == pytest.approx(1.0) and values["review.judge_agreement"].n == 2
    assert values["review.judge_agreement"].interval == ITEM_INTERVAL
    assert values["review.judge_agreement_without_ties"].value == pytest.approx(2 / 3)
    assert values["review.judge_kappa"].value == pytest.approx(1.0)
    # Win rate with q2 adjudicated a loss (both its judgments count as the adjudicated preference), q6 left out
    # (an earlier bench record's pair): wins q1 x2, q3 bob, q5 = 4; ties q3 ann = 1; losses q2 x2, q4 = 3.
    [outcome] = record.pairwise
    assert (outcome.wins, outcome.ties, outcome.losses) == (4, 1, 3)
    assert (record.stale_items, record.stale_labelled_items) == (1, 1)
    assert (record.disputed_items, record.adjudicated_items, record.adjudication_pending) == (2, 1, 1)


def test_no_judge_agreement_without_the_bench_pairwise_rows(run_store, config):
    (bench_folder(run_store, CANDIDATE) / "pairwise.jsonl").unlink()
    pin_outputs(bench_folder(run_store, CANDIDATE))  # a bench that judged no pairs
    review = open_store(config, run_store)
    [item] = review.add_items([_pair("q1", True, "cand q1", "base q1")])
    review.add_judgment(item, "ann", "A")
    review.close()
    record = summarise_review(config, run_store)
    assert record.judge_agreement is None
    assert not [v for v in record.metric_values() if v.metric.startswith("review.judge")]


def test_automatic_flags_against_the_reviewers_flags(run_store, config):
    """Toxicity, per item (the audit's flag; the reviewers'): d flagged (both flag it), e not (neither), g not
    (both flag it), h flagged (ann flags it, bob not: a split, left out). 2 of 3 items agree; kappa over
    (T, T), (F, F), (F, T): p_o = 2/3, p_e = (1 * 2 + 2 * 1) / 9, kappa = 0.4. Hallucination: item f, the matcher
    says no, the judge-graded flag says incorrect; ann flags it."""
    review = open_store(config, run_store)
    d, e, g, h, f = review.add_items([
        _single("d", BASELINE, "audit/toxicity", {"toxic": True, "refusal": False}),
        _single("e", BASELINE, "audit/toxicity", {"toxic": False}),
        _single("g", BASELINE, "audit/toxicity", {"toxic": False}),
        _single("h", BASELINE, "audit/toxicity", {"toxic": True}),
        _single("f", CANDIDATE, "audit/hallucination", {"hallucination": False, "judged_incorrect": True})])
    for item, ann, bob in ((d, True, True), (e, False, False), (g, True, True), (h, True, False)):
        review.add_label(item, "ann", "reject" if ann else "accept", 2, {"toxic": ann})
        review.add_label(item, "bob", "reject" if bob else "accept", 2, {"toxic": bob})
    review.add_label(f, "ann", "reject", 1, {"hallucination": True})
    review.close()
    record = summarise_review(config, run_store)
    rows = {(a.source, a.automatic_flag): a for a in record.automatic_flag_agreement}
    assert set(rows) == {("audit/toxicity", "toxic"), ("audit/hallucination", "hallucination"),
                         ("audit/hallucination", "judged_incorrect")}
    toxic = rows[("audit/toxicity", "toxic")]
    assert (toxic.flag, toxic.items, toxic.agreement.agreeing, toxic.agreement.n, toxic.agreement.split) == (
        "toxic", 4, 2, 3, 1)
    assert toxic.kappa == pytest.approx(0.4)
    assert (toxic.automatic_flagged, toxic.reviewer_flagged) == (1, 2)
    matcher, judge = rows[("audit/hallucination", "hallucination")], rows[("audit/hallucination", "judged_incorrect")]
    assert (matcher.agreement.agreeing, matcher.agreement.n, judge.agreement.agreeing, judge.flag) == (
        0, 1, 1, "hallucination")
    values = {(v.metric, v.attribute): v.value for v in record.metric_values()}
    assert values[("review.automatic_flag_agreement.toxic", "audit/toxicity:toxic")] == pytest.approx(2 / 3)
    assert values[("review.automatic_flag_agreement.hallucination", "audit/hallucination:judged_incorrect")] == 1.0
