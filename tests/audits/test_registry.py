"""Audits are registered compositions: a toy audit, defined in the tests and nowhere else, is run by run_audits."""

import json

import pytest
from pydantic import ValidationError
from toy_audit import (  # noqa: F401
    GREETING_RATE,
    TOY_VERSION,
    ToyAuditConfig,
    ToyAuditRecord,
    run_toy_audit,
    toy_audit,
)

from audits.config import AuditConfig
from audits.registry import (
    register_audit,
    registered_audits,
    unregister_audit,
)
from audits.run import run_audits
from harness.core.config import ModelRef
from harness.core.errors import ConfigError
from harness.core.records import StoredRecord
from harness.core.samples import AuditSample
from harness.core.store import RunStore, read_jsonl

TOY_ONLY = {"toxicity": {"enabled": False}, "hallucination": {"enabled": False}, "bias": {"enabled": False}}
SHIPPED = ["toxicity", "hallucination", "bias", "memorization"]
REPLIES = {"model": ["hello there", "go away"], "base": ["hello", "hello again"]}


def test_a_registered_toy_audit_is_run_and_writes_its_record_and_samples(toy_audit, tiny_model):
    assert [a.name for a in registered_audits()] == [*SHIPPED, "toy"]
    store = RunStore("r")
    config = AuditConfig(**TOY_ONLY, extra={"toy": {"greeting": "hello"}})
    baselines = [ModelRef(name="base", model=str(tiny_model))]
    records = run_audits(config, str(tiny_model), baselines, store, replies=REPLIES)
    assert set(records) == {"toy"}  # the shipped audits were disabled, the toy one ran
    record = records["toy"]
    assert record.version == TOY_VERSION and record.rates == {"model": 0.5, "base": 1.0}
    assert record.flagged_samples == {"model": 1, "base": 0}
    # the record on disk declares its metric with its direction: a reader needs no toy code to judge it
    stored = StoredRecord.model_validate_json((store.stage_dir("audit", "toy") / "record.json").read_text())
    assert stored.kind == "toy_audit" and stored.version == TOY_VERSION
    assert stored.metrics == [GREETING_RATE] and stored.metric_spec("toy.greeting_rate").higher_is_better
    assert {(v.model, v.value) for v in stored.values} == {("model", 0.5), ("base", 1.0)}
    rows = [AuditSample.model_validate(row) for row in read_jsonl(store.stage_dir("audit", "toy") / "samples.jsonl")]
    assert [(r.model, r.output, r.flags["rude"]) for r in rows] == [
        ("model", "hello there", False), ("model", "go away", True), ("base", "hello", False),
        ("base", "hello again", False)]
    # the audit's own settings come from audit.extra.toy: another greeting is another fingerprint
    again = run_audits(config, str(tiny_model), baselines, store, replies=REPLIES)["toy"]
    assert again.record_id == record.record_id
    other = AuditConfig(**TOY_ONLY, extra={"toy": {"greeting": "again"}})
    changed = run_audits(other, str(tiny_model), baselines, store, replies=REPLIES)["toy"]
    assert changed.record_id != record.record_id and changed.rates == {"model": 0.0, "base": 0.5}
    assert json.loads((store.stage_dir("audit", "toy") / "record.json").read_text())["record_id"] == changed.record_id


def test_only_runs_the_named_audit_and_nothing_else(toy_audit, tiny_model):
    """`nift-gate audit --only toy`: the shipped audits are enabled by default and still do not run."""
    config = AuditConfig(extra={"toy": {"greeting": "hello"}})
    records = run_audits(config, str(tiny_model), [], RunStore("r"), only="toy", replies=REPLIES)
    assert set(records) == {"toy"} and not RunStore("r").stage_dir("audit", "toxicity").exists()


def test_a_disabled_toy_audit_does_not_run(toy_audit, tiny_model):
    config = AuditConfig(**TOY_ONLY, extra={"toy": {"enabled": False}})
    assert run_audits(config, str(tiny_model), [], RunStore("r"), replies=REPLIES) == {}
    assert not RunStore("r").stage_dir("audit", "toy").exists()


def test_audit_settings_are_checked_before_any_audit_runs(toy_audit, tiny_model):
    store = RunStore("r")
    with pytest.raises(ConfigError, match=r"audit\.extra\.toy\.greting: Extra inputs are not permitted"):
        run_audits(AuditConfig(**TOY_ONLY, extra={"toy": {"greting": "hi"}}), str(tiny_model), [], store)
    registered = "registered: toxicity, hallucination, bias, memorization, toy"
    with pytest.raises(ConfigError, match=f"no audit named toxic; {registered}"):
        run_audits(AuditConfig(**TOY_ONLY, extra={"toxic": {}}), str(tiny_model), [], store)
    with pytest.raises(ConfigError, match=f"--only: no audit named toxic; {registered}"):
        run_audits(AuditConfig(**TOY_ONLY), str(tiny_model), [], store, only="toxic")
    with pytest.raises(TypeError, match="no registered audit takes replys"):
        run_audits(AuditConfig(**TOY_ONLY), str(tiny_model), [], store, replys=REPLIES)
    with pytest.raises(ValidationError, match="have sections of their own"):
        AuditConfig(extra={"toxicity": {"enabled": False}})
    assert not (store.root / "audit").exists()


def test_a_record_of_another_version_than_registered_is_refused(tiny_model):
    register_audit("toy", version="2", record_type=ToyAuditRecord, config_type=ToyAuditConfig)(run_toy_audit)
    try:
        with pytest.raises(TypeError, match="version '1'; it is registered with ToyAuditRecord version '2'"):
            run_audits(AuditConfig(**TOY_ONLY), str(tiny_model), [], RunStore("r"), replies=REPLIES)
    finally:
        unregister_audit("toy")


def test_registration_refuses_a_taken_name_and_a_bad_one():
    from audits.config import ToxicityAuditConfig

    with pytest.raises(ValueError, match="already registered by audits.toxicity.audit"):
        register_audit("toxicity", version="9", record_type=ToyAuditRecord,
                       config_type=ToxicityAuditConfig)(run_toy_audit)
    with pytest.raises(ValueError, match="lower-case letters"):
        register_audit("Toy Audit", version="1", record_type=ToyAuditRecord, config_type=ToyAuditConfig)
    with pytest.raises(ValueError, match="AuditConfig field"):
        register_audit("seed", version="1", record_type=ToyAuditRecord, config_type=ToyAuditConfig)
    assert [a.name for a in registered_audits()] == SHIPPED
