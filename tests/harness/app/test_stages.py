"""The composition root's gate call: the review record is rebuilt from the label store before the gate judges,
so reviewers who change their minds after `review summary` change the verdict, and unchanged labels change
nothing (no new decision, no new registry entry)."""

import pytest
from gate_records import (
    CANDIDATE,
    REVIEWED_POLICY,
    label_queued_outputs,
    review_record,
    reviewed_run_config,
    save,
    standard_run,
    write_policy,
)

from harness.app import stages
from harness.app.config import PipelineConfig
from harness.core.errors import InputError
from harness.review.summary import summarise_review

def _config(tmp_path) -> PipelineConfig:
    return PipelineConfig.model_validate(reviewed_run_config(write_policy(tmp_path, REVIEWED_POLICY),
                                                             registry=str(tmp_path / "registry")))


def _label_all(config, store, verdict: str) -> None:
    label_queued_outputs(config.review, store, verdict)  # the items are queued once: a second add is a duplicate


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
