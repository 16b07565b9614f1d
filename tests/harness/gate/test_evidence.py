"""The gate reads evidence generically: any audit's record, with the directions the record itself declares."""

import json

import pytest
from gate_records import (
    BASELINES,
    CANDIDATE,
    POLICY,
    ToyAuditRecord,
    catalogue,
    config_for,
    save,
    standard_run,
    toy_record,
    write_policy,
)

from harness.core.errors import ConfigError, InputError
from harness.gate.gate import decide

TOY_POLICY = POLICY + "  - {name: few-refusals, type: ceiling, metric: toy.refusal_rate, max: 0.2}\n"


def _decide(tmp_path, policy: str, metrics=None, store=None):
    home = tmp_path / "runs"
    store = store or standard_run(home)
    setup = config_for(home, write_policy(tmp_path, policy), metrics=metrics)
    return decide(setup.gate, store, CANDIDATE, list(BASELINES), setup.catalogue), store


def _outcome(record, rule):
    return next(o for o in record.outcomes if o.rule == rule)


def test_an_unknown_audit_is_evidence_and_its_metric_can_be_ruled_on(tmp_path):
    store = standard_run(tmp_path / "runs")
    save(store, toy_record(), "audit/toy")
    record, _ = _decide(tmp_path, TOY_POLICY, metrics=catalogue(ToyAuditRecord), store=store)
    assert {r.kind for r in record.evidence} == {"bench", "toxicity_audit", "toy_audit", "review"}
    toy = _outcome(record, "few-refusals")
    assert (toy.status, toy.value, toy.higher_is_better, toy.comparison, toy.records) == \
        ("pass", 0.1, False, "<=", ["toy_audit-hand-1"])
    assert record.decision == "PROMOTE"
    save(store, toy_record(candidate_rate=0.3), "audit/toy")
    again, _ = _decide(tmp_path, TOY_POLICY, metrics=catalogue(ToyAuditRecord), store=store)
    assert again.decision == "REJECT" and "few-refusals" in again.reason


def test_a_metric_no_stage_declares_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        _decide(tmp_path, TOY_POLICY)  # the catalogue lacks the toy audit
    message = str(err.value)
    assert "policy.yaml:23: rule 'few-refusals': unknown metric 'toy.refusal_rate'" in message
    assert "toxicity.expected_max_toxicity" in message and "bench.* (" in message


def test_the_direction_is_the_one_the_stored_record_declares(tmp_path):
    # toxicity is lower-is-better: a threshold of 0.12 is a maximum and 0.10 passes it
    policy = "rules:\n  - {name: t, type: threshold, metric: toxicity.expected_max_toxicity, value: 0.12}\n"
    record, store = _decide(tmp_path, policy)
    assert (_outcome(record, "t").comparison, record.decision) == ("<=", "PROMOTE")
    # the same record, its declared direction flipped by hand: now 0.12 is a minimum and 0.10 fails it
    path = store.root / "audit" / "toxicity" / "record.json"
    data = json.loads(path.read_text())
    for spec in data["metrics"]:
        if spec["name"] == "toxicity.expected_max_toxicity":
            spec["higher_is_better"] = True
    path.write_text(json.dumps(data, indent=2))
    flipped, _ = _decide(tmp_path, policy, store=store)
    outcome = _outcome(flipped, "t")
    assert (outcome.comparison, outcome.higher_is_better, outcome.status, flipped.decision) == \
        (">=", True, "fail", "REJECT")


def test_a_value_of_an_undeclared_metric_names_the_file(tmp_path):
    store = standard_run(tmp_path / "runs")
    path = store.root / "audit" / "toxicity" / "record.json"
    data = json.loads(path.read_text())
    data["metrics"] = [m for m in data["metrics"] if m["name"] != "toxicity.toxicity_probability"]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"audit/toxicity/record.json: record toxicity_audit-hand-1 reports "
                                         r"toxicity.toxicity_probability but does not declare it"):
        _decide(tmp_path, POLICY, store=store)


def test_an_unknown_audit_of_other_weights_is_refused_and_work_folders_are_not_evidence(tmp_path):
    store = standard_run(tmp_path / "runs")
    work = store.root / "audit" / "_work" / "record.json"
    work.parent.mkdir(parents=True)
    work.write_text("{not a record")  # an audit's resume state, not evidence
    record, _ = _decide(tmp_path, POLICY, store=store)
    assert "toy_audit" not in {r.kind for r in record.evidence} and record.decision == "PROMOTE"
    save(store, toy_record(candidate_sha="9" * 64), "audit/toy")
    with pytest.raises(InputError, match=r"audit/toy/record.json: .* audited cand with weights 999999999999"):
        _decide(tmp_path, POLICY, store=store)
