"""The weights a decision names are the weights on disk when it is logged: a model file written after the gate
began hashing it (a training job still writing the checkpoint) makes the gate log nothing and publish nothing,
naming the file."""

import pytest
from gate_records import checkpoint_run, config_for, decide_run, write_policy

from harness.core.errors import InputError
from harness.gate import gate as gate_module
from harness.gate.gate import open_registry

CARD = "---\nlibrary_name: transformers\n---\n\n# cand\n"


@pytest.fixture
def promotable(tmp_path):
    """A run the standard policy promotes, whose records measured its own checkpoint (with a model card)."""
    store, checkpoint = checkpoint_run(tmp_path / "runs")
    (checkpoint / "README.md").write_text(CARD)
    return config_for(tmp_path / "runs", write_policy(tmp_path)), store, checkpoint


def _nothing_logged_or_published(setup, store, checkpoint):
    assert open_registry(setup.gate, store).verify() == []
    assert not (store.root / "gate").exists()
    assert (checkpoint / "README.md").read_text() == CARD


def test_weights_written_while_the_evidence_check_hashed_them_are_refused(promotable, monkeypatch):
    setup, store, checkpoint = promotable
    weights = checkpoint / "model.safetensors"
    check = gate_module.collect_evidence

    def hashed_then_written(*args, **kwargs):
        evidence = check(*args, **kwargs)  # the files hashed to what bench measured ...
        weights.write_bytes(b"written by a training job that was still running\n")  # ... and then changed
        return evidence

    monkeypatch.setattr(gate_module, "collect_evidence", hashed_then_written)
    with pytest.raises(InputError, match=f"^{weights}: the candidate's model files were written after the gate "
                                         f"began hashing them"):
        decide_run(setup, store)
    _nothing_logged_or_published(setup, store, checkpoint)


@pytest.mark.parametrize("written", ["model.safetensors", "chat_template.jinja"])
def test_a_model_file_written_before_the_registry_lock_is_refused_under_it(promotable, monkeypatch, written):
    setup, store, checkpoint = promotable
    opening = gate_module.open_registry

    def written_then_opened(*args, **kwargs):  # after evaluate returned, before the registry lock is taken
        (checkpoint / written).write_text("changed after the gate hashed the model\n")
        return opening(*args, **kwargs)

    monkeypatch.setattr(gate_module, "open_registry", written_then_opened)
    with pytest.raises(InputError, match=f"the evidence changed while the gate decided \\(model file "
                                         f"{checkpoint / written}\\); nothing was logged"):
        decide_run(setup, store)
    _nothing_logged_or_published(setup, store, checkpoint)


def test_untouched_weights_are_promoted(promotable):
    setup, store, checkpoint = promotable
    assert decide_run(setup, store).decision == "PROMOTE"
    assert decide_run(setup, store).decision == "PROMOTE"  # a rerun: the same files, nothing written
