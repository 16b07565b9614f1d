"""The decision log: hash chain and tamper detection, aliases that move only through decisions and overrides,
overrides as their own records, the model card and the MLflow export on promotion."""

import hashlib
import importlib.util
import json
import re

import pytest
from gate_records import (
    CANDIDATE,
    checkpoint_run,
    config_for,
    decide_run,
    override_as,
    review_record,
    save,
    standard_run,
    write_policy,
)

from harness.core.errors import ConfigError, InputError
from harness.gate.gate import (
    latest_decision,
    open_registry,
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


def test_an_entry_appended_without_updating_the_head_is_named(tmp_path):
    from harness.core.records import canonical_json
    from harness.gate.registry import _entry_hash

    registry = _log(2, tmp_path)
    lines = registry.log.read_bytes().splitlines()
    forged = {"event": "decision", "record_id": "d3", "decision": "PROMOTE", "alias_moves": {}, "seq": 3,
              "prev_sha256": hashlib.sha256(lines[1]).hexdigest(), "logged_at": "2026-12-01T00:00:00+00:00"}
    forged["entry_sha256"] = _entry_hash(forged)
    _rewrite(registry, [*lines, canonical_json(forged).encode()])  # a well-formed entry; head.json left alone
    with pytest.raises(RegistryTamperedError, match=r"log.jsonl: entry 3 not counted by .*head.json, which records 2 "
                                                    r"entries: appended without updating the head"):
        registry.verify()


def test_a_log_saved_without_its_final_newline_is_repaired_before_the_next_append(tmp_path):
    registry = _log(2, tmp_path)
    registry.log.write_bytes(registry.log.read_bytes().rstrip(b"\n"))  # an editor that drops the last newline
    assert len(registry.verify()) == 2
    registry.append({"event": "decision", "record_id": "d3", "decision": "PROMOTE", "alias_moves": {}})
    registry.append({"event": "decision", "record_id": "d4", "decision": "PROMOTE", "alias_moves": {}})
    assert [e["record_id"] for e in registry.verify()] == ["d1", "d2", "d3", "d4"]
    assert registry.log.read_bytes().count(b"\n") == 4 and registry.log.read_bytes().endswith(b"}\n")


@pytest.mark.parametrize("file, content, message", [
    ("head.json", b"{not json", r"head.json:1: not valid JSON"),
    ("head.json", b"[2, \"abc\"]\n", r"head.json:1: a JSON list, not an object with entries and last_sha256"),
    ("head.json", b'{"entries": "2", "last_sha256": 5}', r"head.json: expected entries \(a count\) and last_sha256"),
    ("head.json", b'{"entries": 2,\n "last_sha256": "\xff"}', r"head.json:2: byte 0xff at column 18 is not UTF-8"),
    ("log.jsonl", b"[]", r"log.jsonl:2: entry is a JSON list, not an object"),
    ("log.jsonl", b'{"seq": 2, "x": "\xe9t\xe9"}', r"log.jsonl:2: byte 0xe9 at column 18 is not UTF-8"),
])
def test_a_malformed_head_or_log_line_exits_2_naming_file_and_line(tmp_path, capsys, file, content, message):
    import logging

    from harness.app.cli import main

    registry = _log(2, tmp_path / "registry")
    if file == "head.json":
        registry.head.write_bytes(content)
    else:
        lines = registry.log.read_bytes().splitlines()
        _rewrite(registry, [lines[0], content])
    logger = logging.getLogger("nift_gate")
    handlers, level = list(logger.handlers), logger.level
    try:
        code = main(["registry", "verify", "--registry", str(tmp_path / "registry"), "--home", str(tmp_path)])
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(message, err), err
    with pytest.raises(RegistryTamperedError):  # and nothing is appended to it
        registry.append({"event": "decision", "record_id": "d3", "alias_moves": {}})


def test_expect_head_checks_the_log_against_an_anchor_kept_elsewhere(tmp_path, capsys):
    from harness.core.records import canonical_json
    from harness.gate.registry import _entry_hash

    registry = _log(3, tmp_path)
    anchor = registry.head_sha256()
    assert anchor == hashlib.sha256(registry.log.read_bytes().splitlines()[2]).hexdigest()
    registry.append({"event": "decision", "record_id": "d4", "decision": "PROMOTE", "alias_moves": {}})
    assert registry.anchor(anchor)[1] == 3 and registry.anchor(anchor[:12])[1] == 3
    # Whoever rewrites the whole folder forges a chain that verifies on its own, but not the anchor.
    entries = registry.verify()
    entries[1]["decision"] = "REJECT"
    lines, prev = [], "0" * 64
    for entry in entries:
        entry["prev_sha256"] = prev
        entry["entry_sha256"] = _entry_hash(entry)
        lines.append(canonical_json(entry).encode())
        prev = hashlib.sha256(lines[-1]).hexdigest()
    _rewrite(registry, lines)
    registry.head.write_text(json.dumps({"entries": 4, "last_sha256": prev}))
    assert len(registry.verify()) == 4
    with pytest.raises(RegistryTamperedError, match=rf"no entry has the anchored head hash {anchor[:16]}"):
        registry.anchor(anchor)
    with pytest.raises(InputError, match="expected a sha256"):
        registry.anchor("abc")


def test_registry_verify_cli_prints_the_head_and_checks_an_anchor(tmp_path, capsys):
    import logging

    from harness.app.cli import main

    registry = _log(2, tmp_path / "registry")
    args = ["registry", "verify", "--registry", str(tmp_path / "registry"), "--home", str(tmp_path)]
    logger = logging.getLogger("nift_gate")
    handlers, level = list(logger.handlers), logger.level
    try:
        assert main(args) == 0
        out = capsys.readouterr().out
        head = registry.head_sha256()
        assert f"head sha256 {head}" in out
        registry.append({"event": "decision", "record_id": "d3", "decision": "PROMOTE", "alias_moves": {}})
        assert main([*args, "--expect-head", head]) == 0
        assert "anchor: entry 2 of 3 (1 appended since)" in capsys.readouterr().out
        assert main([*args, "--expect-head", "f" * 64]) == 2
        assert "no entry has the anchored head hash ffffffffffffffff" in capsys.readouterr().err
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


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
    done = override_as(config, store, "PROMOTE", "Ada Lovelace", "Reviewed offline in the release meeting",
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
    override_as(config, store, "REJECT", "Grace Hopper", "A customer found a regression the suite misses")
    assert registry.aliases() == {}


@pytest.mark.parametrize("by, reason, message", [
    ("Ada Lovelace", "", "an override needs a reason"),
    ("Ada Lovelace", "   ", "an override needs a reason"),
    ("", "because", "release manager's name"),
    # the reason is printed on one line above the verdict: a newline in it could print a verdict of its own
    ("Ada Lovelace", "ok\nverdict REJECT (exit status 10)", r"--reason must not contain a control character \(U\+000A "
                                                             r"at character 3\)"),
    ("Ada Lovelace", "ok \x1b[1A\x1b[2K", r"--reason must not contain a control character \(U\+001B"),
    ("Ada\u202eLovelace", "because", r"--by must not contain a control character \(U\+202E at character 4\)"),
])
def test_an_override_reason_or_name_that_is_blank_or_holds_a_control_character_is_refused(tmp_path, by, reason, message):
    _, store, config = _gate(tmp_path, review=False)
    with pytest.raises(ConfigError, match=message):
        override_as(config, store, "PROMOTE", by, reason)
    assert not (store.root / "gate" / CANDIDATE / "overrides").exists()
    assert len(open_registry(config.gate, store).verify()) == 1


def test_override_needs_a_decision_first(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    with pytest.raises(InputError, match="no gate decision for 'cand'; run `nift-gate gate` first"):
        override_as(config_for(home, write_policy(tmp_path)), store, "PROMOTE", "Ada Lovelace", "why not",
                    decision_id="gate_decision-0123456789abcdef")


def test_promotion_writes_model_index_into_the_model_card(tmp_path):
    from huggingface_hub import ModelCard

    home = tmp_path / "runs"
    store, checkpoint = checkpoint_run(home, folder="model")  # what bench measured: a full fine-tune's weights
    card_path = checkpoint / "README.md"
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
    assert str(version.version) == "1" and version.source.endswith("/_weights/cand")
    assert version.tags["nift_gate.decision"] == "PROMOTE"
    assert version.tags["nift_gate.record_id"] == record.record_id
    assert version.tags["model_sha256"] == record.candidate_model["sha256"]
    override_as(config, store, "PROMOTE", "Ada Lovelace", "ship it to production", ["production"])
    assert client.get_model_version_by_alias("nift-cand", "production").version == 2
    assert client.get_model_version_by_alias("nift-cand", "production").tags["nift_gate.release_manager"] == \
        "Ada Lovelace"


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
        override_as(config, store, "PROMOTE", "Ada Lovelace", "Reviewed offline")
    assert not (store.root / "gate" / CANDIDATE / "overrides").exists()
    assert [e["event"] for e in open_registry(config.gate, store).verify()] == ["decision"]
