"""A promotion writes the model card of the model the evidence measured (the folder whose files the gate hashed)
and no other: not a card of this run's own checkpoint when the records measured a model elsewhere (another run's
checkpoint, a folder outside the run), not the LoRA adapter's beside the merged weights bench measured."""

import logging

import pytest
from gate_records import CANDIDATE, checkpoint_run, config_for, decide_run, write_policy

from harness.core.store import RunStore
from harness.gate.publish import update_model_cards

CARD = "---\nlibrary_name: transformers\n---\n\n# cand\n"
PROVENANCE = {"decision": "PROMOTE", "record_id": "gate_decision-0123456789abcdef", "policy_sha256": "p" * 64,
              "aliases": ["staging"]}


@pytest.mark.parametrize("elsewhere", ["another run's checkpoint", "a folder outside the run"])
def test_a_model_measured_outside_the_run_gets_no_card_and_the_runs_own_none(tmp_path, caplog, elsewhere):
    """Published as the gate publishes (the evidence check refuses most such records before: this is what
    publishing itself guarantees)."""
    home = tmp_path / "runs"
    _, measured = checkpoint_run(home, "r0") if elsewhere.startswith("another") else (None, tmp_path / "models")
    measured.mkdir(exist_ok=True)
    (measured / "README.md").write_text(CARD)
    store = RunStore("r1", home)
    own = store.stage_dir("train", CANDIDATE) / "merged"  # this run's checkpoint: never measured
    own.mkdir(parents=True)
    (own / "README.md").write_text(CARD)
    with caplog.at_level(logging.WARNING, logger="nift_gate"):
        written = update_model_cards(store, CANDIDATE, {"path": str(measured)}, [], PROVENANCE)
    assert written == []
    assert (own / "README.md").read_text() == CARD  # never says it was promoted
    assert (measured / "README.md").read_text() == CARD  # no checkpoint of this run: not this decision's to write
    assert f"model card not written: the model the evidence measured ({measured}) is not a checkpoint folder of " \
           f"run r1" in caplog.text
    assert update_model_cards(store, CANDIDATE, {"path": str(own)}, [], PROVENANCE) == [own / "README.md"]


def test_only_the_measured_merged_weights_card_is_written_not_the_adapters(tmp_path):
    home = tmp_path / "runs"
    store, merged = checkpoint_run(home, folder="merged")  # a LoRA run: bench measured the merged weights
    adapter = store.stage_dir("train", CANDIDATE) / "model"
    adapter.mkdir()
    (adapter / "README.md").write_text(CARD)
    (merged / "README.md").write_text(CARD)
    record = decide_run(config_for(home, write_policy(tmp_path)), store)
    assert record.decision == "PROMOTE"
    assert "nift-gate-promoted" in (merged / "README.md").read_text()
    assert record.record_id in (merged / "README.md").read_text()
    assert (adapter / "README.md").read_text() == CARD
