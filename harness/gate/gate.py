"""`nift-gate gate` and `nift-gate override`: the release decision, logged in the registry.

``decide`` reads the policy and the run's stored records, judges every rule, writes the decision record
(``<run>/gate/<candidate>/record.json`` and ``decisions/<record_id>.json``), appends it to the registry log
once, and on PROMOTE moves the configured aliases, updates the model card and exports to MLflow when
configured. ``override`` records a release manager's decision beside it; the gate's decision stays.
"""

from __future__ import annotations

from pathlib import Path

from harness.app.config import PipelineConfig
from harness.core.errors import ConfigError, InputError
from harness.core.records import InputRef, new_record_id, sha256_file, stage_fingerprint
from harness.core.store import (
    RECORD_FILE,
    RunStore,
    atomic_write_text,
    read_record,
    write_record,
)
from harness.gate.evidence import Evidence, collect_evidence
from harness.gate.policy import load_policy
from harness.gate.publish import export_to_mlflow, update_model_cards
from harness.gate.record import GateDecisionRecord, OverrideRecord
from harness.gate.registry import Registry, alias_moves, model_key
from harness.gate.rules import judge, verdict

STAGE = "gate"


def gate_targets(config: PipelineConfig) -> tuple[str, list[str]]:
    """The candidate's name and the baseline names the gate judges against."""
    from harness.core.models import model_name

    candidate = config.gate.candidate or model_name(config.bench.candidate)
    baselines = config.gate.baselines if config.gate.baselines is not None else [b.name for b in config.bench.baselines]
    return candidate, list(baselines)


def open_registry(config: PipelineConfig, store: RunStore) -> Registry:
    return Registry(Path(config.gate.registry) if config.gate.registry else store.home / "registry")


def evaluate(config: PipelineConfig, store: RunStore) -> tuple[GateDecisionRecord, Evidence]:
    """The decision record for the run's current evidence, without writing anything."""
    if not config.gate.policy:
        raise ConfigError("gate.policy is not set: name a policy YAML (e.g. --policy configs/policy-demo.yaml)")
    policy = load_policy(config.gate.policy)
    candidate, baselines = gate_targets(config)
    evidence = collect_evidence(store, candidate)
    outcomes = judge(policy, evidence, baselines)
    decision, reason = verdict(outcomes)
    inputs = [InputRef(kind=r.kind, id=r.record_id, sha256=r.sha256) for r in evidence.refs]
    inputs.append(InputRef(kind="policy", id=policy.source, sha256=policy.sha256))
    settings = {"candidate": candidate, "baselines": baselines, "policy": policy.source}
    fingerprint = stage_fingerprint(inputs, settings)
    record = GateDecisionRecord(
        record_id=f"gate_decision-{fingerprint[:16]}", run_id=store.run_id,
        created_at=max(r.created_at for r in evidence.refs), inputs=inputs, config=settings, fingerprint=fingerprint,
        candidate=candidate, candidate_model=evidence.candidate_model(), baselines=baselines,
        policy={"path": policy.source, "sha256": policy.sha256, "description": policy.description,
                "rules": [rule.model_dump() for rule in policy.rules]},
        decision=decision, reason=reason, outcomes=outcomes, evidence=evidence.refs)
    return record, evidence


def _publish(config: PipelineConfig, store: RunStore, record: GateDecisionRecord, evidence: Evidence,
             aliases: list[str], tags: dict[str, str]) -> None:
    if config.gate.update_model_card:
        update_model_cards(store, record.candidate, [v for v, _ in evidence.values],
                           {"decision": tags["nift_gate.decision"], "record_id": tags["nift_gate.record_id"],
                            "policy_sha256": record.policy["sha256"], "aliases": aliases})
    if config.gate.mlflow.tracking_uri:
        source = record.candidate_model.get("path") or str(store.stage_dir("train", record.candidate))
        export_to_mlflow(config.gate.mlflow.tracking_uri, config.gate.mlflow.registered_model or record.candidate,
                         str(Path(source).resolve()), {**tags, "run_id": store.run_id,
                                                        "model_sha256": record.candidate_model.get("sha256")},
                         aliases)


def decide(config: PipelineConfig, store: RunStore) -> GateDecisionRecord:
    """Entry point of `nift-gate gate`: decide, write, log once, and publish a promotion."""
    record, evidence = evaluate(config, store)
    out_dir = store.stage_dir(STAGE, record.candidate)
    text = record.model_dump_json(indent=2) + "\n"
    archived = atomic_write_text(out_dir / "decisions" / f"{record.record_id}.json", text)
    write_record(out_dir, record)
    registry = open_registry(config, store)
    if registry.find(record.record_id) is not None:
        return record  # the same evidence was decided and logged before: nothing moves twice
    target = model_key(store.run_id, record.candidate, record.candidate_model.get("sha256"))
    moves = alias_moves(registry, target, config.gate.promote_aliases, record.decision == "PROMOTE")
    registry.append({"event": "decision", **target, "record_id": record.record_id,
                     "record_sha256": sha256_file(archived), "decision": record.decision,
                     "policy_sha256": record.policy["sha256"], "reason": record.reason, "alias_moves": moves})
    if record.decision == "PROMOTE":
        _publish(config, store, record, evidence, sorted(moves),
                 {"nift_gate.decision": record.decision, "nift_gate.record_id": record.record_id})
    return record


def decided_evidence(store: RunStore, decision: GateDecisionRecord) -> Evidence:
    """The stored evidence of ``decision``, refused when any of its records changed since it was made."""
    evidence = collect_evidence(store, decision.candidate)
    if sorted(r.sha256 for r in evidence.refs) != sorted(r.sha256 for r in decision.evidence):
        raise InputError(f"{store.stage_dir(STAGE, decision.candidate) / RECORD_FILE}: the records changed since "
                         f"the gate decided ({decision.record_id}); rerun `nift-gate gate` so what is shown or "
                         f"published rests on the evidence that was decided on")
    return evidence


def latest_decision(store: RunStore, candidate: str) -> GateDecisionRecord:
    path = store.stage_dir(STAGE, candidate)
    if not (path / "record.json").exists():
        raise InputError(f"{path / 'record.json'}: no gate decision for {candidate!r}; run `nift-gate gate` first")
    return read_record(path, GateDecisionRecord)


def overrides_of(store: RunStore, decision: GateDecisionRecord) -> list[OverrideRecord]:
    """Overrides of one decision, oldest first."""
    folder = store.stage_dir(STAGE, decision.candidate) / "overrides"
    found = [read_record(p, OverrideRecord) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
    return sorted((o for o in found if o.decision_record_id == decision.record_id),
                  key=lambda o: (o.created_at, o.record_id))


def override(config: PipelineConfig, store: RunStore, decision: str, release_manager: str, reason: str,
             aliases: list[str] | None = None) -> OverrideRecord:
    """Entry point of `nift-gate override`: a release manager's PROMOTE or REJECT, with a mandatory reason."""
    if decision not in ("PROMOTE", "REJECT"):
        raise ConfigError(f"override decision must be PROMOTE or REJECT, got {decision!r}")
    if not (reason or "").strip():
        raise ConfigError("an override needs a reason (--reason): it is recorded with the release manager's name")
    if not (release_manager or "").strip():
        raise ConfigError("an override needs the release manager's name (--by)")
    candidate, _ = gate_targets(config)
    original = latest_decision(store, candidate)
    archived = store.stage_dir(STAGE, candidate) / "decisions" / f"{original.record_id}.json"
    registry = open_registry(config, store)
    if registry.find(original.record_id) is None:
        raise InputError(f"{registry.log}: decision {original.record_id} is not in the registry log; rerun "
                         f"`nift-gate gate` before overriding it")
    target = model_key(store.run_id, candidate, original.candidate_model.get("sha256"))
    promote = decision == "PROMOTE"
    evidence = decided_evidence(store, original) if promote else None  # published with the promotion
    chosen = aliases if aliases else (config.gate.promote_aliases if promote else None)
    moves = alias_moves(registry, target, chosen or [], promote)
    if not promote and aliases:
        moves = {alias: None for alias in aliases if alias in moves}
    decision_ref = InputRef(kind="gate_decision", id=original.record_id, sha256=sha256_file(archived))
    settings = {"decision": decision, "release_manager": release_manager.strip(), "reason": reason.strip(),
                "aliases": sorted(moves)}
    record = OverrideRecord(
        record_id=new_record_id("gate_override"), run_id=store.run_id, inputs=[decision_ref], config=settings,
        fingerprint=stage_fingerprint([decision_ref], settings), candidate=candidate,
        decision_record_id=original.record_id, decision_sha256=decision_ref.sha256,
        original_decision=original.decision, decision=decision, release_manager=release_manager.strip(),
        reason=reason.strip(), aliases=sorted(moves))
    atomic_write_text(store.stage_dir(STAGE, candidate) / "overrides" / f"{record.record_id}.json",
                      record.model_dump_json(indent=2) + "\n")
    registry.append({"event": "override", **target, "record_id": record.record_id,
                     "decision_record_id": original.record_id, "decision": decision,
                     "original_decision": original.decision, "release_manager": record.release_manager,
                     "reason": record.reason, "alias_moves": moves})
    if promote:
        _publish(config, store, original, evidence, sorted(moves),
                 {"nift_gate.decision": f"PROMOTE (override of {original.decision})",
                  "nift_gate.record_id": record.record_id, "nift_gate.release_manager": record.release_manager})
    return record
