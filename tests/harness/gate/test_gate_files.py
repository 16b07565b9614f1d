"""The decision files and the registry agree: a decision is written only after it is logged, an edited one is
caught by whoever reads it (report, override, registry verify), and a logged decision is never rewritten."""

import shutil

import pytest
from gate_records import (
    CANDIDATE,
    POLICY,
    config_for,
    decide_run,
    override_as,
    save,
    standard_run,
    toxicity_record,
    toxicity_samples,
    write_policy,
)

from harness.core import records
from harness.core.errors import InputError
from harness.core.records import sha256_file
from harness.gate.gate import open_registry, verify_registry
from harness.gate.registry import RegistryTamperedError
from reports.build import write_report

STRICT = POLICY.replace("max: 0.2", "max: 0.05")  # the toxicity ceiling fails: REJECT


def _rejected(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    setup = config_for(home, write_policy(tmp_path, STRICT))
    record = decide_run(setup, store)
    assert record.decision == "REJECT"
    return setup, store, record


def _folder(store):
    return store.root / "gate" / CANDIDATE


def test_an_edited_reject_is_caught_by_report_override_and_registry_verify(tmp_path):
    setup, store, _ = _rejected(tmp_path)
    latest = _folder(store) / "record.json"
    latest.write_text(latest.read_text().replace('"decision": "REJECT"', '"decision": "PROMOTE"'))
    edited = r"gate/cand/record.json: edited after it was logged: its sha256 .* differs from the .* that .*log.jsonl " \
             r"entry seq 1 holds for gate_decision-"
    with pytest.raises(InputError, match=edited):
        write_report(setup.report, store, CANDIDATE)
    assert not (store.root / "report").exists()
    with pytest.raises(InputError, match=edited):
        override_as(setup, store, "PROMOTE", "Ada Lovelace", "it says PROMOTE now", ["production"])
    assert len(open_registry(setup.gate, store).verify()) == 1 and open_registry(setup.gate, store).aliases() == {}
    with pytest.raises(RegistryTamperedError, match=r"gate/cand/record.json: not the decision .*log.jsonl:1 logged "
                                                    r"last for r1/cand: edited"):
        verify_registry(setup.gate, store)


def test_an_edited_archive_or_override_file_is_caught_by_registry_verify_and_report(tmp_path):
    setup, store, record = _rejected(tmp_path)
    assert verify_registry(setup.gate, store).files == 2  # the archived decision and the latest
    done = override_as(setup, store, "PROMOTE", "Ada Lovelace", "the ceiling is being revised", ["production"])
    assert verify_registry(setup.gate, store).files == 3
    override_file = _folder(store) / "overrides" / f"{done.record_id}.json"
    override_file.write_text(override_file.read_text().replace("being revised", "revised"))
    with pytest.raises(RegistryTamperedError, match=rf"overrides/{done.record_id}.json: edited after it was logged: "
                                                    r"its sha256 differs from the one .*log.jsonl:2 holds"):
        verify_registry(setup.gate, store)
    with pytest.raises(InputError, match=rf"overrides/{done.record_id}.json: edited after it was logged"):
        write_report(setup.report, store, CANDIDATE)
    override_file.unlink()
    archive = _folder(store) / "decisions" / f"{record.record_id}.json"
    archive.write_bytes(archive.read_bytes().replace(b"REJECT", b"PROMOTE"))
    with pytest.raises(RegistryTamperedError, match=rf"decisions/{record.record_id}.json: edited after it was logged"):
        verify_registry(setup.gate, store)


def test_a_gate_stopped_by_a_tampered_registry_writes_no_decision(tmp_path):
    setup, store, _ = _rejected(tmp_path)
    before = {p.name: p.read_bytes() for p in _folder(store).rglob("*.json")}
    log = open_registry(setup.gate, store).log
    log.write_text(log.read_text().replace('"REJECT"', '"PROMOTE"'))  # someone edits the log
    save(store, toxicity_record("r1", emt={"cand": 0.01, "base-a": 0.12, "base-b": 0.15}), "audit/toxicity")
    with pytest.raises(RegistryTamperedError, match=r"log.jsonl:1: entry seq 1 was edited"):
        decide_run(setup, store)  # new evidence, a new decision: refused before anything is written
    assert {p.name: p.read_bytes() for p in _folder(store).rglob("*.json")} == before
    with pytest.raises(RegistryTamperedError):
        write_report(setup.report, store, CANDIDATE)


def test_a_decision_made_by_other_code_gets_a_new_id_and_the_logged_one_stays(tmp_path, monkeypatch):
    setup, store, first = _rejected(tmp_path)
    archive = _folder(store) / "decisions" / f"{first.record_id}.json"
    logged = archive.read_bytes()
    monkeypatch.setattr(records, "code_revision", lambda: "0123abcd+dirty")
    second = decide_run(setup, store)
    assert second.code_revision == "0123abcd+dirty" and second.record_id != first.record_id
    assert archive.read_bytes() == logged  # never rewritten
    monkeypatch.setattr(records, "library_versions", lambda: {**first.versions, "lm-eval": "9.9"})
    third = decide_run(setup, store)
    assert len({first.record_id, second.record_id, third.record_id}) == 3
    entries = open_registry(setup.gate, store).verify()
    assert [e["record_id"] for e in entries] == [first.record_id, second.record_id, third.record_id]
    assert verify_registry(setup.gate, store).files == 4


def test_the_same_policy_content_reached_by_another_path_is_the_same_decision(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    policy = write_policy(tmp_path)
    first = decide_run(config_for(home, policy), store)
    latest = (_folder(store) / "record.json").read_bytes()
    (tmp_path / "elsewhere").mkdir()
    copy = shutil.copy(policy, tmp_path / "elsewhere" / "release-policy.yaml")
    for path in (copy, tmp_path / "elsewhere" / ".." / "policy.yaml"):
        again = decide_run(config_for(home, path), store)
        assert again.record_id == first.record_id and again.policy["path"] == str(policy)
    assert (_folder(store) / "record.json").read_bytes() == latest
    assert len(open_registry(config_for(home, policy).gate, store).verify()) == 1


def test_a_decision_file_lost_after_its_append_is_restored_by_the_next_gate(tmp_path):
    setup, store, record = _rejected(tmp_path)
    archive = _folder(store) / "decisions" / f"{record.record_id}.json"
    logged = archive.read_bytes()
    archive.unlink()  # as if the gate was killed between the append and the write
    (_folder(store) / "record.json").unlink()
    with pytest.raises(RegistryTamperedError, match=rf"decisions/{record.record_id}.json: missing, though "
                                                    r".*log.jsonl:1 logged it"):
        verify_registry(setup.gate, store)
    assert decide_run(setup, store).record_id == record.record_id
    assert archive.read_bytes() == logged and sha256_file(_folder(store) / "record.json") == sha256_file(archive)
    assert verify_registry(setup.gate, store).entries == 1


def test_a_decision_the_registry_never_logged_is_not_reported(tmp_path):
    setup, store, _ = _rejected(tmp_path)
    shutil.rmtree(tmp_path / "runs" / "registry")
    with pytest.raises(InputError, match=r"gate/cand/record.json: decision gate_decision-\w+ is not in the registry "
                                         r"log"):
        write_report(setup.report, store, CANDIDATE)


def test_an_earlier_logged_decision_put_back_is_refused_by_report_override_and_registry_verify(tmp_path):
    # PROMOTE under a lenient policy, then REJECT under a strict one, then the PROMOTE's archived file copied
    # back over record.json: bytes the registry logged, but not what it decided last
    home = tmp_path / "runs"
    store = standard_run(home)
    promoted = decide_run(config_for(home, write_policy(tmp_path, POLICY, "lenient.yaml")), store)
    setup = config_for(home, write_policy(tmp_path, STRICT, "strict.yaml"))
    assert (promoted.decision, decide_run(setup, store).decision) == ("PROMOTE", "REJECT")
    shutil.copy(_folder(store) / "decisions" / f"{promoted.record_id}.json", _folder(store) / "record.json")
    put_back = rf"gate/cand/record.json: decision {promoted.record_id} is not the latest for 'cand': .*log.jsonl " \
               rf"entry seq 2 logged gate_decision-.* \(REJECT\) after it"
    with pytest.raises(InputError, match=put_back):
        write_report(setup.report, store, CANDIDATE)
    with pytest.raises(InputError, match=put_back):
        override_as(setup, store, "PROMOTE", "Ada Lovelace", "it says PROMOTE", ["production"])
    with pytest.raises(RegistryTamperedError, match=r"gate/cand/record.json: not the decision .*log.jsonl:2 logged "
                                                    r"last for r1/cand: edited, or an earlier decision put back"):
        verify_registry(setup.gate, store)
    # the gate itself writes the latest decision back, and everything reads again
    assert decide_run(setup, store).decision == "REJECT"
    verify_registry(setup.gate, store)
    assert write_report(setup.report, store, CANDIDATE).exists()


def test_evidence_moved_to_another_folder_after_the_decision_is_refused_by_the_report(tmp_path):
    # the same bytes under another name: the set of hashes is unchanged, but audit/zz is not the toxicity audit
    setup, store, _ = _rejected(tmp_path)
    (store.root / "audit" / "toxicity").rename(store.root / "audit" / "zz-renamed")
    with pytest.raises(InputError, match=r"gate/cand/record.json: the records changed since the gate decided"):
        write_report(setup.report, store, CANDIDATE)


def test_outputs_edited_after_the_decision_are_refused_by_the_report(tmp_path):
    # the records and the decision untouched, only the per-item outputs beside a record rewritten: the report
    # would quote a harmless answer for the toxic one and compute its profile from rows no decision rests on
    home = tmp_path / "runs"
    store = standard_run(home)
    toxicity_samples(store, {CANDIDATE: [("a toxic answer", 0.97), ("fine", 0.01)]})
    setup = config_for(home, write_policy(tmp_path, STRICT))
    decide_run(setup, store)
    assert write_report(setup.report, store, CANDIDATE).exists()
    samples = store.root / "audit" / "toxicity" / "samples.jsonl"
    samples.write_text(samples.read_text().replace("a toxic answer", "a kind answer").replace("0.97", "0.02"))
    with pytest.raises(InputError, match=r"audit/toxicity/samples.jsonl: changed after .*audit/toxicity/record.json "
                                         r"was written"):
        write_report(setup.report, store, CANDIDATE)


def test_the_temp_folder_of_a_killed_commit_is_no_evidence_and_no_report_section(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    # a commit killed before its rename leaves .<name>.<random>.tmp/ with a record.json inside
    shutil.copytree(store.root / "audit" / "toxicity", store.root / "audit" / ".toxicity.k1ll3d.tmp")
    shutil.copytree(store.root / "bench" / CANDIDATE, store.root / "bench" / f".{CANDIDATE}.k1ll3d.tmp")
    setup = config_for(home, write_policy(tmp_path, STRICT))
    record = decide_run(setup, store)
    assert sorted(e.path for e in record.evidence) == ["audit/toxicity/record.json", "bench/cand/record.json",
                                                        "review/record.json"]
    assert "k1ll3d" not in write_report(setup.report, store, CANDIDATE).with_suffix(".md").read_text()


def test_an_override_stopped_after_its_log_entry_is_written_back_by_the_next_gate(tmp_path, monkeypatch):
    # logged (production moved to the candidate) but no file: the gate and the report showed the REJECT while the
    # aliases followed the override; now every reader refuses, and the next gate writes the file from the log
    import harness.gate.gate as gate_module

    setup, store, _ = _rejected(tmp_path)
    written = gate_module.atomic_write_text

    def killed(path, text):
        if path.parent.name == "overrides" and path.suffix == ".json":
            raise KeyboardInterrupt  # the process dies between the append and the file
        return written(path, text)

    monkeypatch.setattr(gate_module, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        override_as(setup, store, "PROMOTE", "Ada Lovelace", "ship it", ["production"])
    monkeypatch.setattr(gate_module, "atomic_write_text", written)
    assert open_registry(setup.gate, store).aliases()["production"]["candidate"] == CANDIDATE
    missing = r"overrides/gate_override-.*\.json: override logged as registry entry seq 2, but its file is missing .*" \
              r"`nift-gate gate` writes it back from the log"
    with pytest.raises(InputError, match=missing):
        write_report(setup.report, store, CANDIDATE)
    with pytest.raises(RegistryTamperedError, match=r"overrides/gate_override-.*\.json: missing"):
        verify_registry(setup.gate, store)
    decide_run(setup, store)  # the CI rerun
    verify_registry(setup.gate, store)
    md = write_report(setup.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert "ship it" in md and "Ada Lovelace" in md
