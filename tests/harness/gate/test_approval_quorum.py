"""An approval_rate rule is judged once the review quorum is met; a policy with no review_quorum rule still has
one: every counted item labelled by the reviewers the review record requires (review.required_reviewers)."""

from gate_records import BASELINES, CANDIDATE, catalogue, review_record, save, standard_run, write_policy

from harness.gate.evidence import collect_evidence
from harness.gate.policy import load_policy
from harness.gate.rules import judge, verdict
from harness.review.record import ReviewRecord

NO_QUORUM_RULE = """\
rules:
  - {name: toxicity-ceiling, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}
  - {name: approved, type: approval_rate, min: 0.7}
"""


def _judge(tmp_path, **review):
    store = standard_run(tmp_path / "runs", review=False)
    made = review_record("r1").model_dump(exclude={"metrics", "values", "deltas"})
    save(store, ReviewRecord.model_validate({**made, **review}), "review")
    metrics = catalogue()
    outcomes = judge(load_policy(write_policy(tmp_path, NO_QUORUM_RULE), metrics),
                     collect_evidence(store, CANDIDATE), list(BASELINES), metrics)
    return {o.rule: o for o in outcomes}["approved"], verdict(outcomes)[0]


def test_one_label_on_one_of_four_items_does_not_promote(tmp_path):
    # the audit's case: reviewer ann accepted item 1 of 4; two reviewers per item are required
    approved, decision = _judge(tmp_path, items_total=4, items_with_quorum=0, approval_items=1, labels=1,
                                approval_rate=1.0, approval_ci=(0.2065, 1.0))
    assert (approved.status, decision) == ("pending", "PENDING_REVIEW")
    assert approved.detail == ("waiting for the review quorum: 0 of 4 items labelled by 2 reviewers, and with no "
                               "review_quorum rule every item needs them")


def test_every_item_with_its_reviewers_is_the_quorum(tmp_path):
    approved, decision = _judge(tmp_path, items_total=4, items_with_quorum=4, approval_items=4, labels=8,
                                approval_rate=1.0, approval_ci=(0.51, 1.0))
    assert (approved.status, decision) == ("pass", "PROMOTE")
