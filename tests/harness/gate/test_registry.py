"""The decision log: hash chain and tamper detection, aliases that move only through decisions and overrides,
overrides as their own records, the model card and the MLflow export on promotion."""

import importlib.util
import json

import pytest
from gate_records import (
    CANDIDATE,
    config_for,
    decide_run,
    review_record,
    save,
    standard_run,
    write_policy,
)

from harness.core.errors import ConfigError, InputError
from harness.gate.gate import (
    latest_decision,
    open_registry,
    override,
    overrides_of,
)
from harness.gate.registry import Registry, RegistryTamperedError


def _log(n: int, folder) -> Registry:
    registry = Registry(folder)
    for i in range(n):
        registry.append({"event": "decision", "record_id": f"d{i + 1}", "decision": "PROMOTE", "alias_moves": {}})
    return registry


def _rewrite(registry: Registry, lines: list[bytes]) -> None:
    registry.log.write_bytes(b"".join(line + b"\n" for line in lines))


def test_each_entry_carries_the_hash_of_the_previous_one(tmp_path):
    import hashlib

    registry = _log(3, tmp_path)
    lines = registry.log.read_bytes().splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries[0]["prev_sha256"] == "0" * 64
    assert entries[1]["prev_sha256"] == hashlib.sha256(lines[0]).hexdigest()
    assert entries[2]["prev_sha256"] == hashlib.sha256(lines[1]).hexdigest()
    assert [e["seq"] for e in registry.verify()] == [1, 2, 3]


def test_an_edited_entry_is_named(tmp_path):
    registry = _log(4, tmp_path)
    lines = registry.log.read_bytes().splitlines()
    lines[1] = lines[1].replace(b'"PROMOTE"', b'"REJECT"')
    _rewrite(registry, lines)
    with pytest.raises(RegistryTamperedError, match=r"log.jsonl:2: entry seq 2 was edited"):
        registry.verify()


def test_an_edit_with_a_recomputed_entry_hash_is_caught_by_the_next_entry(tmp_path):
    from harness.core.records import canonical_json
    from harness.gate.registry import _entry_hash

    registry = _log(3, tmp_path)
    lines = registry.log.read_bytes().splitlines()
    entry = json.loads(lines[0])
    entry["decision"] = "REJECT"
    entry["entry_sha256"] = _entry_hash(entry)
    lines[0] = canonical_json(entry).encode()
    _rewrite(registry, lines)
    with pytest.raises(RegistryTamperedError, match=r"log.jsonl:2: entry seq 2 does not follow .* entry seq 1 was "
                                                    r"edited or replaced"):
        registry.verify()


def test_an_edited_last_entry_is_caught_by_the_head(tmp_path):
    from harness.core.records import canonical_json
    from harness.gate.registry import _entry_hash

    registry = _log(3, tmp_path)
    lines = registry.log.read_bytes().splitlines()
    entry = json.loads(lines[2])
    entry["decision"] = "REJECT"
    entry["entry_sha256"] = _entry_hash(entry)
    lines[2] = canonical_json(entry).encode()
    _rewrite(registry, lines)
    with pytest.raises(RegistryTamperedError, match=r"log.jsonl:3: entry seq 3 \(the last\) was edited or replaced"):
        registry.verify()


def test_a_deleted_entry_is_named(tmp_path):
    registry = _log(4, tmp_path)
    lines = registry.log.read_bytes().splitlines()
    _rewrite(registry, lines[:1] + lines[2:])
    with pytest.raises(RegistryTamperedError, match=r"log.jsonl:2: holds entry seq 3 where seq 2 belongs: entry 2 "
                                                    r"deleted"):
        registry.verify()


def test_a_deleted_tail_is_named(tmp_path):
    registry = _log(4, tmp_path)
    _rewrite(registry, registry.log.read_bytes().splitlines()[:2])
    with pytest.raises(RegistryTamperedError, match=r"ends at entry seq 2 .* records 4 entries: entries 3..4 were "
                                                    r"deleted"):
        registry.verify()


def test_reordered_entries_are_named(tmp_path):
    registry = _log(4, tmp_path)
    lines = registry.log.read_bytes().splitlines()
    lines[1], lines[2] = lines[2], lines[1]
    _rewrite(registry, lines)
    with pytest.raises(RegistryTamperedError, match=r"log.jsonl:2: holds entry seq 3 where seq 2 belongs"):
        registry.verify()


def test_a_tampered_log_is_not_extended(tmp_path):
    registry = _log(2, tmp_path)
    lines = registry.log.read_bytes().splitlines()
    _rewrite(registry, [lines[0].replace(b"d1", b"d9"), lines[1]])
    with pytest.raises(RegistryTamperedError):
        registry.append({"event": "decision", "record_id": "d3", "alias_moves": {}})
    assert len(registry.log.read_bytes().splitlines()) == 2


# ---- decisions, aliases, overrides -------------------------------------------------------------------------------

def _gate(tmp_path, review=True, **gate):
    home = tmp_path / "runs"
    store = standard_run(home, review=review)
    config = config_for(home, write_policy(tmp_path), **gate)
    return decide_run(config, store), store, config


def test_promotion_moves_the_configured_aliases_and_is_logged_once(tmp_path):
    record, store, config = _gate(tmp_path)
    registry = open_registry(config.gate, store)
    assert registry.aliases()["staging"]["candidate"] == CANDIDATE
    assert registry.aliases()["staging"]["record_id"] == record.record_id
    assert "production" not in registry.aliases()
    decide_run(config, store)  # same evidence: nothing new in the log
    entries = registry.verify()
    assert len(entries) == 1 and entries[0]["decision"] == "PROMOTE" and entries[0]["event"] == "decision"


def test_pending_moves_no_alias_and_override_promotes_with_a_reason(tmp_path):
    record, store, config = _gate(tmp_path, review=False)
    assert record.decision == "PENDING_REVIEW"
    registry = open_registry(config.gate, store)
    assert registry.aliases() == {}
    decision_file = store.root / "gate" / CANDIDATE / "record.json"
    before = decision_file.read_bytes()
    done = override(config.gate, store, CANDIDATE, "PROMOTE", "Ada Lovelace", "Reviewed offline in the release meeting",
                    ["production"])
    assert done.original_decision == "PENDING_REVIEW" and done.decision == "PROMOTE"
    assert done.decision_record_id == record.record_id and done.aliases == ["production"]
    assert decision_file.read_bytes() == before  # the gate's decision stays as it was
    assert latest_decision(store, CANDIDATE).decision == "PENDING_REVIEW"
    assert [o.record_id for o in overrides_of(store, record)] == [done.record_id]
    assert registry.aliases()["production"]["record_id"] == done.record_id
    last = registry.verify()[-1]
    assert (last["event"], last["release_manager"], last["reason"]) == \
        ("override", "Ada Lovelace", "Reviewed offline in the release meeting")


def test_override_to_reject_takes_the_aliases_away(tmp_path):
    _, store, config = _gate(tmp_path)
    registry = open_registry(config.gate, store)
    assert "staging" in registry.aliases()
    override(config.gate, store, CANDIDATE, "REJECT", "Grace Hopper", "A customer found a regression the suite misses")
    assert registry.aliases() == {}


@pytest.mark.parametrize("by, reason, message", [
    ("Ada", "", "an override needs a reason"),
    ("Ada", "   ", "an override needs a reason"),
    ("", "because", "release manager's name"),
])
def test_override_without_reason_or_name_is_refused(tmp_path, by, reason, message):
    _, store, config = _gate(tmp_path, review=False)
    with pytest.raises(ConfigError, match=message):
        override(config.gate, store, CANDIDATE, "PROMOTE", by, reason)
    assert not (store.root / "gate" / CANDIDATE / "overrides").exists()
    assert len(open_registry(config.gate, store).verify()) == 1


def test_override_needs_a_decision_first(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    with pytest.raises(InputError, match="no gate decision for 'cand'; run `nift-gate gate` first"):
        override(config_for(home, write_policy(tmp_path)).gate, store, CANDIDATE, "PROMOTE", "Ada",
                 "why not")


def test_promotion_writes_model_index_into_the_model_card(tmp_path):
    from huggingface_hub import ModelCard

    home = tmp_path / "runs"
    store = standard_run(home)
    card_path = store.root / "train" / CANDIDATE / "model" / "README.md"
    card_path.parent.mkdir(parents=True)
    card_path.write_text("---\nlibrary_name: peft\ntags:\n- nift-gate\n---\n\n# cand\n\n"
                         "Not released: a model trained here ships only through `nift-gate gate`.\n")
    record = decide_run(config_for(home, write_policy(tmp_path)), store)
    card = ModelCard.load(card_path)
    results = {(r.dataset_type, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("nift_if", "bench.nift_if.prompt_level_strict_acc")] == pytest.approx(0.40)
    assert results[("toxicity", "toxicity.expected_max_toxicity.toxicity")] == pytest.approx(0.10)
    assert card.data.to_dict()["model-index"][0]["name"] == CANDIDATE
    assert "nift-gate-promoted" in card.data.tags and "nift-gate" in card.data.tags
    assert card.data.nift_gate["record_id"] == record.record_id
    assert f"Promoted by nift-gate (PROMOTE, {record.record_id})" in card.text


def test_a_pending_decision_leaves_the_model_card_alone(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    card_path = store.root / "train" / CANDIDATE / "model" / "README.md"
    card_path.parent.mkdir(parents=True)
    card_path.write_text("---\nlibrary_name: peft\n---\n\n# cand\n")
    decide_run(config_for(home, write_policy(tmp_path)), store)
    assert card_path.read_text() == "---\nlibrary_name: peft\n---\n\n# cand\n"


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                    reason="mlflow is not installed (pip install mlflow-skinny, or `make setup` with the dev extra)")
def test_mlflow_export_registers_a_version_with_alias_and_tags(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    # MLflow 3 keeps the file store in maintenance mode behind this switch; it is the store that needs no server.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    record, store, config = _gate(tmp_path, **{"mlflow.tracking_uri": uri, "mlflow.registered_model": "nift-cand"})
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("nift-cand", "staging")
    assert str(version.version) == "1" and version.source.endswith("/models/cand")
    assert version.tags["nift_gate.decision"] == "PROMOTE"
    assert version.tags["nift_gate.record_id"] == record.record_id
    assert version.tags["model_sha256"] == "c" * 64
    override(config.gate, store, CANDIDATE, "PROMOTE", "Ada", "ship it to production", ["production"])
    assert client.get_model_version_by_alias("nift-cand", "production").version == 2
    assert client.get_model_version_by_alias("nift-cand", "production").tags["nift_gate.release_manager"] == "Ada"


def test_review_evidence_arriving_later_promotes_and_logs_both_decisions(tmp_path):
    record, store, config = _gate(tmp_path, review=False)
    save(store, review_record("r1"), "review")
    promoted = decide_run(config, store)
    entries = open_registry(config.gate, store).verify()
    assert [e["decision"] for e in entries] == ["PENDING_REVIEW", "PROMOTE"]
    assert [e["record_id"] for e in entries] == [record.record_id, promoted.record_id]


def test_an_override_never_publishes_evidence_the_decision_did_not_see(tmp_path):
    _, store, config = _gate(tmp_path, review=False)
    bench = store.root / "bench" / CANDIDATE / "record.json"
    bench.write_bytes(bench.read_bytes() + b"\n")  # a record changed after the gate decided
    with pytest.raises(InputError, match="the records changed since the gate decided"):
        override(config.gate, store, CANDIDATE, "PROMOTE", "Ada Lovelace", "Reviewed offline")
    assert not (store.root / "gate" / CANDIDATE / "overrides").exists()
    assert [e["event"] for e in open_registry(config.gate, store).verify()] == ["decision"]
