"""The registry's last word is the verdict: evidence that changed while the gate decided is never logged, a
decision reached again moves the aliases again, the override logged last holds, and `registry verify` names
decision files that no entry logs."""

import json
import shutil
from datetime import UTC, datetime

import pytest
from gate_records import (
    CANDIDATE,
    bench_record,
    config_for,
    decide_run,
    override_as,
    save,
    standard_run,
    toxicity_record,
    write_policy,
)

from harness.app.cli import VerdictExit, main
from harness.core import records
from harness.core.errors import InputError
from harness.core.records import sha256_bytes, sha256_file
from harness.gate import gate as gate_module
from harness.gate.ci import logged_verdict
from harness.gate.gate import open_registry, verify_registry
from harness.gate.history import read_history
from harness.gate.registry import RegistryTamperedError

EXITS = {v.name: int(v) for v in VerdictExit}
TOXIC = {"cand": 0.5, "base-a": 0.12, "base-b": 0.15}  # the toxicity ceiling (0.2) fails: REJECT
FAILING_NI = {"base-a": (0.02, -0.04, 0.08), "base-b": (-0.05, -0.12, 0.02)}  # non-inferiority fails: REJECT


def _folder(store):
    return store.root / "gate" / CANDIDATE


def _setup(tmp_path, **run):
    home = tmp_path / "runs"
    store = standard_run(home, **run)
    return config_for(home, write_policy(tmp_path)), store


def _entries(setup, store):
    return open_registry(setup.gate, store).verify()


def _aliases(setup, store):
    return {alias: t["record_id"] for alias, t in open_registry(setup.gate, store).aliases().items()}


def _between_evaluate_and_the_append(monkeypatch, meanwhile):
    """Run ``meanwhile`` once, after the next gate has evaluated and before it takes the registry lock."""
    real = gate_module.evaluate
    done = []

    def evaluate_then_meanwhile(*args, **kwargs):
        result = real(*args, **kwargs)
        if not done:
            done.append(True)
            meanwhile()
        return result

    monkeypatch.setattr(gate_module, "evaluate", evaluate_then_meanwhile)


def _cli(home, policy, *rest):
    return [*rest, "--home", str(home), "--run", "r1", "--set", f"bench.candidate=train:{CANDIDATE}",
            "--set", "bench.baselines=[{name: base-a, model: train:base-a}, {name: base-b, model: train:base-b}]",
            "--set", f"gate.policy={policy}", "--set", f"gate.registry={home / 'registry'}"]


# ---- 1. evidence that changed while the gate decided ---------------------------------------------------------------

def test_a_gate_that_read_evidence_rerun_meanwhile_logs_nothing_after_the_newer_decision(tmp_path, monkeypatch):
    setup, store = _setup(tmp_path)

    def audit_rerun_and_gate_b():
        save(store, toxicity_record("r1", emt=TOXIC), "audit/toxicity")
        assert decide_run(setup, store).decision == "REJECT"

    _between_evaluate_and_the_append(monkeypatch, audit_rerun_and_gate_b)
    with pytest.raises(InputError, match=r"the evidence changed while the gate decided \(audit/toxicity/record.json\); "
                                         r"nothing was logged: rerun `nift-gate gate`"):
        decide_run(setup, store)  # gate A read the passing evidence: its PROMOTE is stale
    entries = _entries(setup, store)
    assert [e["decision"] for e in entries] == ["REJECT"] and _aliases(setup, store) == {}
    assert sha256_file(_folder(store) / "record.json") == entries[0]["record_sha256"]
    verify_registry(setup.gate, store)


@pytest.mark.parametrize("change", ["policy", "new audit", "review gone"])
def test_a_policy_edited_or_a_record_added_or_removed_meanwhile_is_refused(tmp_path, monkeypatch, change):
    setup, store = _setup(tmp_path)
    policy = tmp_path / "policy.yaml"
    meanwhile = {"policy": lambda: policy.write_text(policy.read_text().replace("max: 0.2", "max: 0.05")),
                 "new audit": lambda: save(store, toxicity_record("r1"), "audit/toxicity_v2"),
                 "review gone": lambda: (store.root / "review" / "record.json").unlink()}[change]
    _between_evaluate_and_the_append(monkeypatch, meanwhile)
    with pytest.raises(InputError, match="the evidence changed while the gate decided"):
        decide_run(setup, store)
    assert _entries(setup, store) == [] and not _folder(store).exists()


def test_the_command_line_exits_2_on_one_line_when_the_evidence_changed_meanwhile(tmp_path, monkeypatch, capsys):
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    policy = write_policy(tmp_path)
    bench = store.root / "bench" / CANDIDATE / "record.json"
    _between_evaluate_and_the_append(monkeypatch, lambda: save(store, bench_record("r1", deltas=FAILING_NI),
                                                               f"bench/{CANDIDATE}"))
    assert main(_cli(home, policy, "gate")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nift-gate: error: ")
    assert f"the evidence changed while the gate decided (bench/{CANDIDATE}/record.json)" in err
    assert not (home / "registry" / "log.jsonl").exists() or not (home / "registry" / "log.jsonl").read_text()
    assert bench.exists()
    assert main(_cli(home, policy, "gate")) == VerdictExit.REJECT  # the rerun decides on the records as they are


# ---- 2. a decision reached again ---------------------------------------------------------------------------------

def _reject_promote_reject(tmp_path):
    """REJECT (failing bench), PROMOTE (fixed bench: moves staging), then the failing bench restored."""
    setup, store = _setup(tmp_path, deltas=FAILING_NI)
    bench = store.root / "bench" / CANDIDATE / "record.json"
    failing = bench.read_bytes()
    first = decide_run(setup, store)
    save(store, bench_record("r1"), f"bench/{CANDIDATE}")
    second = decide_run(setup, store)
    assert (first.decision, second.decision) == ("REJECT", "PROMOTE")
    assert _aliases(setup, store) == {"staging": second.record_id}
    bench.write_bytes(failing)
    return setup, store, first, second


def test_a_decision_reached_again_is_logged_again_and_takes_the_aliases_back(tmp_path):
    setup, store, first, second = _reject_promote_reject(tmp_path)
    third = decide_run(setup, store)
    assert third.record_id == first.record_id and third.decision == "REJECT"
    entries = _entries(setup, store)
    assert [(e["event"], e["decision"]) for e in entries] == [
        ("decision", "REJECT"), ("decision", "PROMOTE"), ("redecision", "REJECT")]
    assert entries[2]["record_id"] == first.record_id and entries[2]["redecides_seq"] == 1
    assert entries[2]["alias_moves"] == {"staging": None}
    assert _aliases(setup, store) == {}  # the log's last word for the candidate is the REJECT in record.json
    latest = (_folder(store) / "record.json").read_bytes()
    assert sha256_bytes(latest) == entries[0]["record_sha256"] == entries[2]["record_sha256"]
    assert logged_verdict(store, third, setup.gate.registry, EXITS).exit_code == VerdictExit.REJECT
    assert verify_registry(setup.gate, store).entries == 3  # registry verify accepts the entry
    history = read_history(open_registry(setup.gate, store), store.home)
    assert [(h.kind, h.verdict, h.aliases_removed) for h in history.entries][2] == ("redecision", "REJECT", ["staging"])
    assert history.entries[2].decision_record_id == first.record_id and history.entries[2].metrics


def test_a_promotion_reached_again_moves_staging_back_and_a_rerun_logs_nothing(tmp_path):
    setup, store, first, second = _reject_promote_reject(tmp_path)
    decide_run(setup, store)
    save(store, bench_record("r1"), f"bench/{CANDIDATE}")  # fixed again: the PROMOTE is reached again
    again = decide_run(setup, store)
    assert again.record_id == second.record_id
    assert _aliases(setup, store) == {"staging": second.record_id}
    assert _entries(setup, store)[-1]["event"] == "redecision" and _entries(setup, store)[-1]["redecides_seq"] == 2
    decide_run(setup, store)  # a CI rerun on the same evidence: the latest decision already, nothing is logged
    decide_run(setup, store)
    assert len(_entries(setup, store)) == 4
    assert verify_registry(setup.gate, store).entries == 4


def test_an_override_of_a_decision_reached_again_still_holds_and_keeps_its_aliases(tmp_path):
    setup, store = _setup(tmp_path, deltas=FAILING_NI)
    bench = store.root / "bench" / CANDIDATE / "record.json"
    failing = bench.read_bytes()
    first = decide_run(setup, store)
    override_as(setup, store, "PROMOTE", "Ada Lovelace", "the margin is being revised", ["production"])
    save(store, bench_record("r1"), f"bench/{CANDIDATE}")
    decide_run(setup, store)  # PROMOTE: staging
    bench.write_bytes(failing)
    again = decide_run(setup, store)
    assert again.record_id == first.record_id
    assert logged_verdict(store, again, setup.gate.registry, EXITS).verdict == "PROMOTE"  # Ada's override stands
    assert sorted(_aliases(setup, store)) == ["production"]  # the REJECT takes staging, the override production
    assert _entries(setup, store)[-1]["alias_moves"] == {
        "staging": None, "production": {"run_id": "r1", "candidate": CANDIDATE,
                                        "model_sha256": first.candidate_model["sha256"]}}


# ---- 3. overrides in the order the registry logged them ------------------------------------------------------------

class _OneSecond(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 12, 2, 9, 0, 0, tzinfo=tz or UTC)


def test_of_two_overrides_in_the_same_second_the_one_logged_last_holds(tmp_path, monkeypatch):
    setup, store = _setup(tmp_path, review={"approval_rate": 0.5, "approval_ci": (0.35, 0.65)})
    decision = decide_run(setup, store)
    assert decision.decision == "REJECT"
    monkeypatch.setattr(records, "datetime", _OneSecond)  # both overrides get the same created_at
    ids = iter(["gate_override-20261202T090000-ffffffff", "gate_override-20261202T090000-00000000"])
    monkeypatch.setattr(gate_module, "new_record_id", lambda kind: next(ids))  # the later one sorts first by id
    earlier = override_as(setup, store, "PROMOTE", "Ada Lovelace", "ship it")
    later = override_as(setup, store, "REJECT", "Grace Hopper", "no: found a regression")
    assert earlier.created_at == later.created_at
    assert [e["record_id"] for e in _entries(setup, store)][1:] == [earlier.record_id, later.record_id]
    result = logged_verdict(store, decision, setup.gate.registry, EXITS)
    assert (result.verdict, result.exit_code) == ("REJECT", VerdictExit.REJECT)
    assert [o.record_id for o in result.overrides] == [earlier.record_id, later.record_id]
    assert _aliases(setup, store) == {}
    assert [o.record_id for o in gate_module.overrides_of(store, decision)] == [earlier.record_id, later.record_id]


# ---- 4. `registry verify` and files no entry logs ------------------------------------------------------------------

def _promote_then_reject(tmp_path):
    setup, store = _setup(tmp_path)
    promoted = decide_run(setup, store)
    save(store, toxicity_record("r1", emt=TOXIC), "audit/toxicity")
    rejected = decide_run(setup, store)
    assert (promoted.decision, rejected.decision) == ("PROMOTE", "REJECT")
    return setup, store, promoted, rejected


def test_verify_names_the_decision_file_of_an_entry_dropped_from_the_log(tmp_path, capsys):
    setup, store, promoted, rejected = _promote_then_reject(tmp_path)
    registry = store.home / "registry"
    first = (registry / "log.jsonl").read_bytes().split(b"\n")[0]
    (registry / "log.jsonl").write_bytes(first + b"\n")  # the REJECT dropped, the head recomputed
    (registry / "head.json").write_text(json.dumps({"entries": 1, "last_sha256": sha256_bytes(first)}))
    shutil.copy(_folder(store) / "decisions" / f"{promoted.record_id}.json", _folder(store) / "record.json")
    with pytest.raises(RegistryTamperedError, match=rf"decisions/{rejected.record_id}.json: a decision file that no "
                                                    r"registry entry logs \(none of the 1 entries of .*log.jsonl logs "
                                                    r"it\)"):
        verify_registry(setup.gate, store)
    assert main(_cli(store.home, setup.gate.policy, "registry", "verify")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{rejected.record_id}.json: a decision file that no registry entry logs" in err


def test_verify_fails_on_a_deleted_registry_while_decision_files_exist(tmp_path):
    setup, store, _, _ = _promote_then_reject(tmp_path)
    shutil.rmtree(store.home / "registry")
    with pytest.raises(RegistryTamperedError, match=r"decisions/gate_decision-\w+.json: a decision file that no "
                                                    r"registry entry logs \(.*log.jsonl is missing\)"):
        verify_registry(setup.gate, store)
    shutil.rmtree(_folder(store) / "decisions")  # only the latest record.json left
    with pytest.raises(RegistryTamperedError, match=r"gate/cand/record.json: a decision of r1/cand, but .*log.jsonl "
                                                    r"logs no decision of it \(0 entries\)"):
        verify_registry(setup.gate, store)


def test_verify_names_an_override_file_whose_entry_was_dropped(tmp_path):
    setup, store = _setup(tmp_path, review=False)
    decide_run(setup, store)
    done = override_as(setup, store, "PROMOTE", "Ada Lovelace", "release meeting", ["production"])
    assert verify_registry(setup.gate, store).files == 3
    registry = store.home / "registry"
    first = (registry / "log.jsonl").read_bytes().split(b"\n")[0]
    (registry / "log.jsonl").write_bytes(first + b"\n")
    (registry / "head.json").write_text(json.dumps({"entries": 1, "last_sha256": sha256_bytes(first)}))
    with pytest.raises(RegistryTamperedError, match=rf"overrides/{done.record_id}.json: an override file that no "
                                                    r"registry entry logs"):
        verify_registry(setup.gate, store)
