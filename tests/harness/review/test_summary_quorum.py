"""The review record's quorum is counted at the number of reviewers the record states: an item queued when one
reviewer sufficed has no quorum of three because the config asks for three now, and the gate's quorum rule
passes only on items that many distinct reviewers labelled."""

from __future__ import annotations

from gate_records import catalogue, write_policy
from review_support import CANDIDATE, review_config, single_item

from harness.gate.evidence import Evidence
from harness.gate.policy import load_policy
from harness.gate.rules import judge
from harness.review.store import open_store
from harness.review.summary import SUMMARY_VERSION, review_progress, summarise_review


def _queue(config, run_store, required_reviewers: int, reviewers: dict[str, int]) -> None:
    """Four items queued needing ``required_reviewers``; ``reviewers``: name -> how many of them (the first ones)
    that reviewer accepted."""
    review = open_store(config, run_store)
    ids = review.add_items([single_item(str(i), required_reviewers=required_reviewers) for i in range(4)])
    for name, labelled in reviewers.items():
        for item_id in ids[:labelled]:
            review.add_label(item_id, name, "accept", 4)
    review.close()


def test_items_queued_for_one_reviewer_have_no_quorum_of_three_from_one(run_store, tmp_path):
    """The probe's case: queued with required_reviewers 1, one reviewer labels every item, summarised with 3. The
    record used to say 'required 3, every item with a quorum, 1 reviewer'."""
    _queue(review_config(tmp_path), run_store, 1, {"ann": 4})
    three = review_config(tmp_path, required_reviewers=3)
    record = summarise_review(three, run_store)
    assert (record.required_reviewers, record.items_total, record.items_with_quorum, record.reviewers) == (3, 4, 0, 1)
    assert record.config["summary_version"] == SUMMARY_VERSION >= 4  # 4: quorum at the required number
    # The app's progress counts as the record does.
    review = open_store(three, run_store)
    assert review_progress(review, three, run_store).items_with_quorum == 0
    review.close()
    # The gate's quorum rule on that record waits instead of passing "4 of 4 items labelled by at least 3".
    rules = "rules:\n  - {name: reviewed, type: review_quorum, min_share: 1.0, min_reviewers: 3}\n"
    policy = load_policy(write_policy(tmp_path, rules), catalogue())
    (outcome,) = judge(policy, Evidence(run_id="r1", candidate=CANDIDATE, review=record), [], catalogue())
    assert (outcome.status, outcome.detail) == ("pending", "0 of 4 items labelled by at least 3 reviewers; 4 needed")


def test_an_item_counts_once_as_many_distinct_reviewers_as_the_record_requires_labelled_it(run_store, tmp_path):
    """ann and bob label items 0-2, cy items 0 and 1: with 3 required, items 0 and 1 have a quorum."""
    reviewers = [{"name": "ann"}, {"name": "bob"}, {"name": "cy"}]
    _queue(review_config(tmp_path, reviewers=reviewers), run_store, 1, {"ann": 3, "bob": 3, "cy": 2})
    three = review_config(tmp_path, reviewers=[{"name": n} for n in ("ann", "bob", "cy")], required_reviewers=3)
    record = summarise_review(three, run_store)
    assert (record.required_reviewers, record.items_with_quorum) == (3, 2)


def test_an_item_queued_for_more_reviewers_than_the_config_asks_keeps_its_larger_number(run_store, tmp_path):
    """Queued needing 3, summarised with 2: two reviewers' labels are not the item's quorum (the larger number
    counts, so the record's 'at least 2' is still true)."""
    _queue(review_config(tmp_path), run_store, 3, {"ann": 4, "bob": 4})
    record = summarise_review(review_config(tmp_path, required_reviewers=2), run_store)
    assert (record.required_reviewers, record.items_with_quorum) == (2, 0)
