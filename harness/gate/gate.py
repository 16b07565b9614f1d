"""`nift-gate gate` and `nift-gate override`: the release decision, logged in the registry.

``decide`` reads the policy and the run's stored records, judges every rule, writes the decision record
(``<run>/gate/<candidate>/record.json`` and ``decisions/<record_id>.json``), appends it to the registry log
once, and on PROMOTE moves the configured aliases, updates the model card and exports to MLflow when
configured. ``override`` records a release manager's decision beside it; the gate's decision stays.

The gate takes its own config section plus the candidate and baseline names it judges (the composition
root derives them with :func:`gate_targets`) and the metric catalogue that policies are checked against.
"""

from __future__ import annotations

from pathlib import Path

from harness.core.errors import ConfigError, InputError
from harness.core.log import get_logger
from harness.core.metrics import MetricCatalogue
from harness.core.models import model_name
from harness.core.records import InputRef, new_record_id, sha256_file, stage_fingerprint
from harness.core.runner import StageRun
from harness.core.store import RunStore, atomic_write_text, write_record
from harness.gate.config import GateConfig
from harness.gate.evidence import Evidence, collect_evidence, evidence_of
from harness.gate.policy import load_policy
from harness.gate.publish import export_to_mlflow, update_model_cards
from harness.gate.record import (
    DECISIONS_DIR,
    OVERRIDES_DIR,
    STAGE,
    GateDecisionRecord,
    OverrideRecord,
    decision_folder,
    latest_decision,
    overrides_of,
)
from harness.gate.registry import Registry, alias_moves, model_key
from harness.gate.rules import judge, verdict

log = get_logger("gate")


def gate_targets(gate: GateConfig, bench_candidate: str, bench_baselines: list[str]) -> tuple[str, list[str]]:
    """The candidate's name and the baseline names the gate judges against: the gate's own when set, else
    the bench's (``bench_candidate`` is bench's model spec, e.g. ``train:nift-hybrid``; ``bench_baselines``
    the names of its baselines)."""
    candidate = gate.candidate or model_name(bench_candidate)
    baselines = gate.baselines if gate.baselines is not None else bench_baselines
    return candidate, list(baselines)


def open_registry(gate: GateConfig, store: RunStore) -> Registry:
    """The decision log: ``gate.registry``, else ``<home>/registry``."""
    return Registry(Path(gate.registry) if gate.registry else store.home / "registry")


def evaluate(gate: GateConfig, store: RunStore, candidate: str, baselines: list[str],
             catalogue: MetricCatalogue) -> tuple[GateDecisionRecord, Evidence]:
    """The decision record for the run's current evidence, without writing anything."""
    if not gate.policy:
        raise ConfigError("gate.policy is not set: name a policy YAML (e.g. --policy configs/policy-demo.yaml)")
    policy = load_policy(gate.policy, catalogue)
    evidence = collect_evidence(store, candidate)
    outcomes = judge(policy, evidence, baselines, catalogue)
    decision, reason = verdict(outcomes)
    # The gate never skips: it judges again on every call. Its inputs are the exact bytes it parsed (each
    # evidence record, the policy), so equal inputs give a byte-identical decision, logged once.
    run = StageRun(store, STAGE, candidate, GateDecisionRecord, force=True, label=STAGE)
    for ref in evidence.refs:
        run.add(InputRef(kind=ref.kind, id=ref.record_id, sha256=ref.sha256))
    run.add(InputRef(kind="policy", id=policy.source, sha256=policy.sha256))
    settings = {"candidate": candidate, "baselines": list(baselines), "policy": policy.source}
    run.cached(settings)
    fingerprint = run.fingerprint
    record = GateDecisionRecord(
        record_id=f"gate_decision-{fingerprint[:16]}", run_id=store.run_id,
        created_at=max(r.created_at for r in evidence.refs), inputs=run.inputs, config=settings,
        fingerprint=fingerprint,
        candidate=candidate, candidate_model=evidence.candidate_model(), baselines=list(baselines),
        policy={"path": policy.source, "sha256": policy.sha256, "description": policy.description,
                "rules": [rule.model_dump() for rule in policy.rules]},
        decision=decision, reason=reason, outcomes=outcomes, evidence=evidence.refs)
    return record, evidence


def _publish(gate: GateConfig, store: RunStore, record: GateDecisionRecord, evidence: Evidence,
             aliases: list[str], tags: dict[str, str]) -> None:
    if gate.update_model_card:
        written = update_model_cards(store, record.candidate, [v for v, _ in evidence.values],
                                     {"decision": tags["nift_gate.decision"], "record_id": tags["nift_gate.record_id"],
                                      "policy_sha256": record.policy["sha256"], "aliases": aliases})
        for path in written:
            log.info("model card %s: evaluation results written", path)
    if gate.mlflow.tracking_uri:
        source = record.candidate_model.get("path") or str(store.stage_dir("train", record.candidate))
        version = export_to_mlflow(gate.mlflow.tracking_uri, gate.mlflow.registered_model or record.candidate,
                                   str(Path(source).resolve()), {**tags, "run_id": store.run_id,
                                                                  "model_sha256": record.candidate_model.get("sha256")},
                                   aliases)
        log.info("MLflow: %s version %s registered", gate.mlflow.registered_model or record.candidate, version)


def decide(gate: GateConfig, store: RunStore, candidate: str, baselines: list[str],
           catalogue: MetricCatalogue) -> GateDecisionRecord:
    """Entry point of `nift-gate gate`: decide, write, log once, and publish a promotion."""
    record, evidence = evaluate(gate, store, candidate, baselines, catalogue)
    out_dir = decision_folder(store, record.candidate)
    text = record.model_dump_json(indent=2) + "\n"
    archived = atomic_write_text(out_dir / DECISIONS_DIR / f"{record.record_id}.json", text)
    write_record(out_dir, record)
    registry = open_registry(gate, store)
    if registry.find(record.record_id) is not None:
        log.info("decision %s was logged before: nothing moves twice", record.record_id)
        return record
    target = model_key(store.run_id, record.candidate, record.candidate_model.get("sha256"))
    moves = alias_moves(registry, target, gate.promote_aliases, record.decision == "PROMOTE")
    registry.append({"event": "decision", **target, "record_id": record.record_id,
                     "record_sha256": sha256_file(archived), "decision": record.decision,
                     "policy_sha256": record.policy["sha256"], "reason": record.reason, "alias_moves": moves})
    log.debug("decision %s logged in %s", record.record_id, registry.log)
    if record.decision == "PROMOTE":
        _publish(gate, store, record, evidence, sorted(moves),
                 {"nift_gate.decision": record.decision, "nift_gate.record_id": record.record_id})
    return record


def _check_override(decision: str, release_manager: str, reason: str) -> None:
    if decision not in ("PROMOTE", "REJECT"):
        raise ConfigError(f"override decision must be PROMOTE or REJECT, got {decision!r}")
    if not (reason or "").strip():
        raise ConfigError("an override needs a reason (--reason): it is recorded with the release manager's name")
    if not (release_manager or "").strip():
        raise ConfigError("an override needs the release manager's name (--by)")


def override(gate: GateConfig, store: RunStore, candidate: str, decision: str, release_manager: str, reason: str,
             aliases: list[str] | None = None) -> OverrideRecord:
    """Entry point of `nift-gate override`: a release manager's PROMOTE or REJECT, with a mandatory reason."""
    _check_override(decision, release_manager, reason)
    original = latest_decision(store, candidate)
    archived = decision_folder(store, candidate) / DECISIONS_DIR / f"{original.record_id}.json"
    registry = open_registry(gate, store)
    if registry.find(original.record_id) is None:
        raise InputError(f"{registry.log}: decision {original.record_id} is not in the registry log; rerun "
                         f"`nift-gate gate` before overriding it")
    target = model_key(store.run_id, candidate, original.candidate_model.get("sha256"))
    promote = decision == "PROMOTE"
    evidence = evidence_of(store, original) if promote else None  # published with the promotion
    chosen = aliases if aliases else (gate.promote_aliases if promote else None)
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
    atomic_write_text(decision_folder(store, candidate) / OVERRIDES_DIR / f"{record.record_id}.json",
                      record.model_dump_json(indent=2) + "\n")
    registry.append({"event": "override", **target, "record_id": record.record_id,
                     "decision_record_id": original.record_id, "decision": decision,
                     "original_decision": original.decision, "release_manager": record.release_manager,
                     "reason": record.reason, "alias_moves": moves})
    if promote:
        _publish(gate, store, original, evidence, sorted(moves),
                 {"nift_gate.decision": f"PROMOTE (override of {original.decision})",
                  "nift_gate.record_id": record.record_id, "nift_gate.release_manager": record.release_manager})
    return record


#: The decision readers live in the published ``harness.gate.record``; named here too for the CLI's callers.
__all__ = ["STAGE", "decide", "evaluate", "gate_targets", "latest_decision", "open_registry", "override",
           "overrides_of"]
