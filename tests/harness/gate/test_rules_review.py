"""Review rules claim only what the review record bears out: the quorum rule does not pass on a quorum count the
record's own figures (or the summary version that made it) cannot support, and the judge-agreement rule counts
the pairs its statistic was computed on, not every reviewed pair."""

from __future__ import annotations

from gate_records import BASELINES, CANDIDATE, catalogue, review_record, save, standard_run, write_policy

from harness.core.stats import proportion_interval
from harness.gate.evidence import collect_evidence
from harness.gate.policy import load_policy
from harness.gate.rules import judge
from harness.review.record import Agreed, JudgeAgreement, ReviewRecord

QUORUM = "rules:\n  - {name: reviewed, type: review_quorum, min_share: 1.0, min_reviewers: 3}\n"


def _judge(tmp_path, policy: str, **review):
    """The outcomes by rule on the hand-made review record (30 items, all with a quorum) with fields replaced."""
    store = standard_run(tmp_path / "runs", review=False)
    made = review_record("r1").model_dump(exclude={"metrics", "values", "deltas"})
    save(store, ReviewRecord.model_validate({**made, **review}), "review")
    metrics = catalogue()
    outcomes = judge(load_policy(write_policy(tmp_path, policy), metrics), collect_evidence(store, CANDIDATE),
                     list(BASELINES), metrics)
    return {o.rule: o for o in outcomes}


def test_a_quorum_the_records_own_labels_and_reviewers_cannot_hold_does_not_pass(tmp_path):
    """The probe's record: 3 reviewers required, 17 of 17 items with the quorum, 17 labels from one reviewer."""
    reviewed = _judge(tmp_path, QUORUM, required_reviewers=3, items_total=17, items_with_quorum=17, labels=17,
                      reviewers=1)["reviewed"]
    assert reviewed.status == "pending"
    assert reviewed.detail == ("the review record review-hand-30 counts 17 items labelled by at least 3 distinct "
                               "reviewers, but holds 17 labels from 1 reviewer; its quorum is not counted: rerun "
                               "`nift-gate review summary`")
    # The same with enough reviewers but too few labels for that many items.
    few = _judge(tmp_path / "few", QUORUM, required_reviewers=3, items_total=17, items_with_quorum=17, labels=40,
                 reviewers=3)["reviewed"]
    assert few.status == "pending" and "holds 40 labels from 3 reviewers" in few.detail


def test_a_quorum_counted_by_a_summary_before_version_4_is_not_taken(tmp_path):
    """Summary version 3 counted each item at the reviewers it was queued for, which may be fewer than the
    record's required_reviewers: its count is not evidence of the stated quorum."""
    old = _judge(tmp_path / "old", QUORUM, required_reviewers=3, labels=90, config={"summary_version": 3})
    assert old["reviewed"].status == "pending"
    assert "summarised by summary version 3, which counted each item's quorum at the reviewers it was queued for" \
        in old["reviewed"].detail
    new = _judge(tmp_path / "new", QUORUM, required_reviewers=3, labels=90, config={"summary_version": 4})
    assert (new["reviewed"].status, new["reviewed"].detail) == (
        "pass", "30 of 30 items labelled by at least 3 reviewers; 30 needed")


def test_without_a_quorum_rule_an_unfounded_quorum_holds_approval_back(tmp_path):
    """With no review_quorum rule, approval waits for every item's quorum: a count the record cannot hold is none."""
    policy = "rules:\n  - {name: approved, type: approval_rate, min: 0.7}\n"
    approved = _judge(tmp_path, policy, required_reviewers=3, labels=30, reviewers=1)["approved"]
    assert approved.status == "pending"
    assert approved.detail == ("waiting for the review quorum: the review record review-hand-30 counts 30 items "
                               "labelled by at least 3 distinct reviewers, but holds 30 labels from 1 reviewer, so "
                               "its quorum is not counted (rerun `nift-gate review summary`)")
    assert _judge(tmp_path / "sound", policy, required_reviewers=3, labels=90)["approved"].status == "pass"


JUDGED = "rules:\n  - {name: judge-checked, type: judge_agreement, min: 0.6, min_items: 25, statistic: %s}\n"


def _agreement():
    """30 reviewed pairs: 20 with a reviewers' majority (15 agree with the judge), 12 without ties (10 agree)."""
    def share(agreeing, n, split):
        low, high = proportion_interval(agreeing, n, 0.95, "wilson")
        return Agreed(agreeing=agreeing, n=n, rate=agreeing / n, ci_low=low, ci_high=high, split=split)
    return JudgeAgreement(judge="tiny-judge", items=30, with_ties=share(15, 20, 10), without_ties=share(10, 12, 6),
                          kappa=0.4)


def test_judge_agreement_min_items_counts_the_pairs_the_statistic_was_computed_on(tmp_path):
    """With min_items 25 the rule used to pass on the 12 pairs left without ties, since 30 pairs were reviewed."""
    checked = _judge(tmp_path / "a", JUDGED % "without_ties", judge_agreement=_agreement())["judge-checked"]
    assert (checked.status, checked.n) == ("pending", 12)
    assert checked.detail == ("judge-human agreement is judged on at least 25 blind pairs with a judge verdict and a "
                              "reviewers' majority; 12 so far (18 of the 30 reviewed pairs left out: the reviewers "
                              "split, or the judge called a tie), 13 more needed")
    for statistic in ("with_ties", "kappa"):  # both on the 20 pairs with a majority
        checked = _judge(tmp_path / statistic, JUDGED % statistic, judge_agreement=_agreement())["judge-checked"]
        assert (checked.status, checked.n) == ("pending", 20) and "20 so far" in checked.detail


def test_judge_agreement_detail_counts_pairs_not_votes(tmp_path):
    policy = (JUDGED % "with_ties").replace("min_items: 25", "min_items: 20")
    checked = _judge(tmp_path, policy, judge_agreement=_agreement())["judge-checked"]
    assert (checked.status, checked.n) == ("pass", 20)
    assert checked.detail == ("judge (tiny-judge) vs reviewers, agreement with ties 0.75 [0.5313, 0.8881] over 20 of "
                              "30 reviewed pairs (those with a reviewers' majority): 0.75 >= 0.6")
    assert "votes" not in checked.detail
