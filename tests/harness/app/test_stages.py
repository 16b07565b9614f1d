"""The composition root's gate call: the review record is rebuilt from the label store before the gate judges,
so reviewers who change their minds after `review summary` change the verdict, and unchanged labels change
nothing (no new decision, no new registry entry)."""

import pytest
from gate_records import CANDIDATE, review_record, save, standard_run, write_policy

from harness.app import stages
from harness.app.config import PipelineConfig
from harness.core.errors import InputError
from harness.review.store import NewItem, open_store
from harness.review.summary import summarise_review

POLICY = """\
schema_version: 1
rules:
  - {name: if-non-inferior, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 0.10}
  - {name: reviewed, type: review_quorum, min_items: 4, min_reviewers: 2}
  - {name: approved, type: approval_rate, min: 0.7}
"""


def _config(tmp_path) -> PipelineConfig:
    return PipelineConfig.model_validate({
        "run": "r1",
        "bench": {"candidate": f"train:{CANDIDATE}", "baselines": [{"name": "base-a", "model": "train:base-a"},
                                                                   {"name": "base-b", "model": "train:base-b"}]},
        "gate": {"policy": str(write_policy(tmp_path, POLICY)), "registry": str(tmp_path / "registry")},
        "review": {"required_reviewers": 2, "reviewers": [{"name": "ann", "token": "a"}, {"name": "bob", "token": "b"}]}})


def _label_all(config, store, verdict: str) -> None:
    review = open_store(config.review, store)
    try:
        if not review.counts().get("items"):
            review.add_items([NewItem(kind="single", stratum="random", source="bench/cand", source_record_id="bench-hand-1",
                                      source_item_id=f"i{i}", task="nift_if", candidate=CANDIDATE, prompt=f"prompt {i}",
                                      content_key=f"key-{i}", model=CANDIDATE, role="candidate", output=f"output {i}")
                              for i in range(4)])
        for item_id in range(1, 5):
            for reviewer in ("ann", "bob"):
                review.add_label(item_id, reviewer, verdict, 4)
    finally:
        review.close()


def _reviewed_run(tmp_path):
    config = _config(tmp_path)
    store = standard_run(tmp_path / "runs", review=False)
    _label_all(config, store, "accept")
    summarise_review(config.review, store, CANDIDATE)  # `nift-gate review summary`
    return config, store


def test_labels_reversed_after_the_summary_decide_the_gate(tmp_path):
    config, store = _reviewed_run(tmp_path)
    assert stages.decide(config, store).decision == "PROMOTE"
    _label_all(config, store, "reject")  # every reviewer reverses every label; nobody reruns `review summary`
    record = stages.decide(config, store)
    assert record.decision == "REJECT" and "approved" in record.reason
    approved = next(o for o in record.outcomes if o.rule == "approved")
    assert (approved.status, approved.value) == ("fail", 0.0)
    entries = stages.open_registry(config, store).verify()
    assert [e["decision"] for e in entries] == ["PROMOTE", "REJECT"]
    assert stages.open_registry(config, store).aliases() == {}  # the REJECT took staging back


def test_no_new_label_makes_no_new_decision_and_no_new_registry_entry(tmp_path):
    config, store = _reviewed_run(tmp_path)
    first = stages.decide(config, store)
    review_file = store.root / "review" / "record.json"
    review_bytes = review_file.read_bytes()
    summarise_review(config.review, store, CANDIDATE)  # what `nift-gate run` does before its gate step
    again = stages.decide(config, store)
    assert again.record_id == first.record_id and review_file.read_bytes() == review_bytes
    assert len(stages.open_registry(config, store).verify()) == 1


def test_a_review_record_without_its_label_store_is_refused(tmp_path):
    config = _config(tmp_path)
    store = standard_run(tmp_path / "runs", review=False)
    save(store, review_record("r1"), "review")  # written by hand: no store can back it
    with pytest.raises(InputError, match=r"review/record.json: a review record without its label store"):
        stages.decide(config, store)
    assert not (store.root / "gate").exists()
