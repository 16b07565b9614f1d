"""`nift-gate gate` and `nift-gate override`: the release decision, logged in the registry.

``decide`` reads the policy and the run's stored records, re-verifies them (the candidate's weights are hashed
again), judges every rule, logs the decision in the registry once, and only then writes the decision record
(``<run>/gate/<candidate>/record.json`` and ``decisions/<record_id>.json``); on PROMOTE it moves the configured
aliases, updates the model card and exports to MLflow when configured. ``override`` records a release
manager's decision beside it, after the release manager authenticated with their review-app token; the
gate's decision stays. ``verify_registry`` checks the log and every decision and override file it names.

The gate takes its own config section plus the candidate and baseline names it judges (the composition
root derives them with :func:`gate_targets`) and the metric catalogue that policies are checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core import records
from harness.core.errors import ConfigError, InputError, NiftError
from harness.core.log import get_logger
from harness.core.metrics import MetricCatalogue
from harness.core.models import model_name
from harness.core.records import (
    InputRef,
    new_record_id,
    sha256_bytes,
    sha256_file,
    stage_fingerprint,
)
from harness.core.runner import StageRun
from harness.core.store import RECORD_FILE, RunStore, atomic_write_text
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
    decision_id,
    latest_decision,
    logged_decision,
    overrides_of,
    registry_folder,
)
from harness.gate.registry import (
    Registry,
    RegistryTamperedError,
    alias_moves,
    model_key,
)
from harness.gate.rules import judge, verdict
from harness.review.config import ReviewConfig, Reviewer

log = get_logger("gate")

#: The role a reviewer needs in ``review.reviewers`` to override the gate.
RELEASE_MANAGER = "release_manager"


class OverrideNotAuthorised(NiftError):
    """The person running `nift-gate override` is not an authenticated release manager."""


def gate_targets(gate: GateConfig, bench_candidate: str, bench_baselines: list[str]) -> tuple[str, list[str]]:
    """The candidate's name and the baseline names the gate judges against: the gate's own when set, else
    the bench's (``bench_candidate`` is bench's model spec, e.g. ``train:nift-hybrid``; ``bench_baselines``
    the names of its baselines)."""
    candidate = gate.candidate or model_name(bench_candidate)
    baselines = gate.baselines if gate.baselines is not None else bench_baselines
    return candidate, list(baselines)


def open_registry(gate: GateConfig, store: RunStore) -> Registry:
    """The decision log: ``gate.registry``, else ``<home>/registry``."""
    return Registry(registry_folder(store, gate.registry))


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
    # evidence record, the policy), named by content: the same policy reached by another path is the same input.
    run = StageRun(store, STAGE, candidate, GateDecisionRecord, force=True, label=STAGE)
    for ref in evidence.refs:
        run.add(InputRef(kind=ref.kind, id=ref.record_id, sha256=ref.sha256))
    run.add(InputRef(kind="policy", id="policy", sha256=policy.sha256))
    settings = {"candidate": candidate, "baselines": list(baselines)}
    run.cached(settings)
    record = GateDecisionRecord(
        record_id="", run_id=store.run_id, created_at=max(r.created_at for r in evidence.refs), inputs=run.inputs,
        config=settings, fingerprint=run.fingerprint,
        # read when deciding, not when the record class was defined: both are part of what the id covers
        versions=records.library_versions(), code_revision=records.code_revision(),
        candidate=candidate, candidate_model=evidence.candidate_model(), baselines=list(baselines),
        policy={"path": policy.source, "sha256": policy.sha256, "description": policy.description,
                "rules": [rule.model_dump() for rule in policy.rules]},
        decision=decision, reason=reason, outcomes=outcomes, evidence=evidence.refs)
    return record.model_copy(update={"record_id": decision_id(record)}), evidence


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


def _logged_text(archive: Path, text: str, entry: dict[str, Any]) -> str:
    """The bytes the registry logged for a decision id: the archived file, checked against the entry, never
    rewritten; a file lost between the append and its write is restored when this run's bytes are the same."""
    logged = entry.get("record_sha256")
    if archive.exists():
        data = archive.read_bytes()
        if sha256_bytes(data) != logged:
            raise InputError(f"{archive}: edited after it was logged: its sha256 differs from the one registry entry "
                             f"seq {entry['seq']} holds; restore the logged file (the registry names its hash)")
        return data.decode("utf-8")
    if sha256_bytes(text.encode()) != logged:
        raise InputError(f"{archive}: decision {entry['record_id']} is logged (registry entry seq {entry['seq']}) but "
                         f"its file is missing, and this run's bytes differ from the logged ones (the policy was "
                         f"named by another path?); restore the file from a backup")
    return text


def decide(gate: GateConfig, store: RunStore, candidate: str, baselines: list[str],
           catalogue: MetricCatalogue) -> GateDecisionRecord:
    """Entry point of `nift-gate gate`: decide, log once, write, and publish a promotion.

    The registry lock is held from "is this decision logged?" to the append, and the decision files are
    written only after the append succeeded: a gate stopped by a tampered registry leaves no decision behind,
    and two gates at once log a decision once."""
    record, evidence = evaluate(gate, store, candidate, baselines, catalogue)
    folder = decision_folder(store, record.candidate)
    archive = folder / DECISIONS_DIR / f"{record.record_id}.json"
    text = record.model_dump_json(indent=2) + "\n"
    registry = open_registry(gate, store)
    with registry.writing() as logbook:
        logged = next((e for e in logbook.entries if e.get("event") == "decision"
                       and e.get("record_id") == record.record_id), None)
        if logged is None:
            target = model_key(store.run_id, record.candidate, record.candidate_model.get("sha256"))
            moves = alias_moves(logbook.aliases(), target, gate.promote_aliases, record.decision == "PROMOTE")
            logbook.append({"event": "decision", **target, "record_id": record.record_id,
                            "record_sha256": sha256_bytes(text.encode()), "decision": record.decision,
                            "policy_sha256": record.policy["sha256"], "reason": record.reason,
                            "alias_moves": moves})
        else:
            text = _logged_text(archive, text, logged)
        if logged is None or not archive.exists():
            atomic_write_text(archive, text)  # what was just logged (a leftover of an unlogged run is replaced)
        atomic_write_text(folder / RECORD_FILE, text)
    if logged is not None:
        log.info("decision %s was logged before (registry entry %s): nothing moves twice", record.record_id,
                 logged["seq"])
        return GateDecisionRecord.model_validate_json(text)
    log.debug("decision %s logged in %s", record.record_id, registry.log)
    if record.decision == "PROMOTE":
        _publish(gate, store, record, evidence, sorted(moves),
                 {"nift_gate.decision": record.decision, "nift_gate.record_id": record.record_id})
    return record


def authenticate_release_manager(reviewers: ReviewConfig, name: str, token: str | None) -> Reviewer:
    """The configured release manager ``name``, when ``token`` is their review-app token; refused otherwise.

    The same people and tokens as the review app (``review.reviewers``, ``review.tokens_file``); with
    ``review.oidc`` the app signs people in through the identity provider, which a command line cannot, so an
    override then needs a token configured for the release manager as well."""
    name = (name or "").strip()
    if reviewers.oidc and name not in reviewers.tokens():
        raise OverrideNotAuthorised(
            f"override by {name!r}: review.oidc signs release managers in through the identity provider, which the "
            f"command line cannot do; give {name!r} a token for the CLI (review.reviewers[].token_env, or an entry "
            f"in review.tokens_file) and pass it in NIFT_TOKEN")
    if not token:
        raise OverrideNotAuthorised(f"override by {name!r}: no token; an override needs the release manager's "
                                    f"review-app token (in NIFT_TOKEN, or the variable --token-env names)")
    reviewer = reviewers.authenticate(name, token)
    if reviewer is None:
        raise OverrideNotAuthorised(f"override refused: unknown name or wrong token for {name!r} (release managers "
                                    f"are review.reviewers with role {RELEASE_MANAGER})")
    if reviewer.role != RELEASE_MANAGER:
        raise OverrideNotAuthorised(f"override refused: {name!r} is a {reviewer.role}, not a release manager "
                                    f"(review.reviewers[].role: {RELEASE_MANAGER})")
    return reviewer


def _check_override(decision: str, release_manager: str, reason: str) -> None:
    if decision not in ("PROMOTE", "REJECT"):
        raise ConfigError(f"override decision must be PROMOTE or REJECT, got {decision!r}")
    if not (reason or "").strip():
        raise ConfigError("an override needs a reason (--reason): it is recorded with the release manager's name")
    if not (release_manager or "").strip():
        raise ConfigError("an override needs the release manager's name (--by)")


def override(gate: GateConfig, store: RunStore, candidate: str, decision: str, release_manager: str, reason: str,
             aliases: list[str] | None = None, *, reviewers: ReviewConfig, token: str | None) -> OverrideRecord:
    """Entry point of `nift-gate override`: a release manager's PROMOTE or REJECT, with a mandatory reason.

    ``release_manager`` must be one of ``reviewers`` with role ``release_manager``, and ``token`` their token.
    The decision overridden must be the file the registry logged; the override is logged, then written."""
    _check_override(decision, release_manager, reason)
    manager = authenticate_release_manager(reviewers, release_manager, token).name
    registry = open_registry(gate, store)
    with registry.writing() as logbook:
        original, _ = logged_decision(store, candidate, registry.folder, entries=logbook.entries)
        archived = decision_folder(store, candidate) / DECISIONS_DIR / f"{original.record_id}.json"
        target = model_key(store.run_id, candidate, original.candidate_model.get("sha256"))
        promote = decision == "PROMOTE"
        evidence = evidence_of(store, original) if promote else None  # published with the promotion
        chosen = aliases if aliases else (gate.promote_aliases if promote else None)
        moves = alias_moves(logbook.aliases(), target, chosen or [], promote)
        if not promote and aliases:
            moves = {alias: None for alias in aliases if alias in moves}
        decision_ref = InputRef(kind="gate_decision", id=original.record_id, sha256=sha256_file(archived))
        settings = {"decision": decision, "release_manager": manager, "reason": reason.strip(),
                    "aliases": sorted(moves)}
        record = OverrideRecord(
            record_id=new_record_id("gate_override"), run_id=store.run_id, inputs=[decision_ref], config=settings,
            fingerprint=stage_fingerprint([decision_ref], settings), candidate=candidate,
            decision_record_id=original.record_id, decision_sha256=decision_ref.sha256,
            original_decision=original.decision, decision=decision, release_manager=manager,
            reason=reason.strip(), aliases=sorted(moves))
        text = record.model_dump_json(indent=2) + "\n"
        logbook.append({"event": "override", **target, "record_id": record.record_id,
                        "record_sha256": sha256_bytes(text.encode()), "decision_record_id": original.record_id,
                        "decision": decision, "original_decision": original.decision,
                        "release_manager": record.release_manager, "reason": record.reason, "alias_moves": moves})
        atomic_write_text(decision_folder(store, candidate) / OVERRIDES_DIR / f"{record.record_id}.json", text)
    if promote:
        _publish(gate, store, original, evidence, sorted(moves),
                 {"nift_gate.decision": f"PROMOTE (override of {original.decision})",
                  "nift_gate.record_id": record.record_id, "nift_gate.release_manager": record.release_manager})
    return record


@dataclass(frozen=True)
class RegistryCheck:
    """What `nift-gate registry verify` checked."""

    entries: int
    head_sha256: str = ""
    files: int = 0  # decision and override files compared with the hash their entry logged
    elsewhere: int = 0  # entries of runs that are not under this runs home (their files were not checked)
    anchored_seq: int | None = None  # the entry --expect-head names


def _check_files(entries: list[dict[str, Any]], home: Path, log_path: Path) -> tuple[int, int]:
    """Every decision and override file the log names (under ``home``) holds the logged bytes, and each
    candidate's latest ``record.json`` is one of its logged decisions. Returns (files checked, entries of runs
    not under ``home``)."""
    checked = elsewhere = 0
    latest: dict[tuple[str, str], set[str]] = {}
    for entry in entries:
        logged = entry.get("record_sha256")
        run, candidate = entry.get("run_id"), entry.get("candidate")
        if not logged or not isinstance(run, str) or not isinstance(candidate, str):
            continue  # an override logged before hashes were, or an entry that names no run
        if not (home / run).is_dir():
            elsewhere += 1
            continue
        store = RunStore(run, home)
        sub = DECISIONS_DIR if entry["event"] == "decision" else OVERRIDES_DIR
        path = decision_folder(store, candidate) / sub / f"{entry['record_id']}.json"
        where = f"{log_path}:{entry['seq']}"
        if not path.exists():
            raise RegistryTamperedError(f"{path}: missing, though {where} logged it: the file was deleted (or a "
                                        f"gate was killed before writing it: rerun `nift-gate gate`)")
        if sha256_file(path) != logged:
            raise RegistryTamperedError(f"{path}: edited after it was logged: its sha256 differs from the one {where} "
                                        f"holds")
        checked += 1
        if entry["event"] == "decision":
            latest.setdefault((run, candidate), set()).add(logged)
    for (run, candidate), hashes in sorted(latest.items()):
        path = decision_folder(RunStore(run, home), candidate) / RECORD_FILE
        if path.exists():
            if sha256_file(path) not in hashes:
                raise RegistryTamperedError(f"{path}: edited after it was logged: it is none of the decisions "
                                            f"{log_path} logged for {run}/{candidate}")
            checked += 1
    return checked, elsewhere


def verify_registry(gate: GateConfig, store: RunStore, expect_head: str | None = None) -> RegistryCheck:
    """`nift-gate registry verify`: the chain and the head, every decision and override file the log names
    under this runs home (and each candidate's latest decision) byte for byte, and, given ``expect_head``, that
    the log still holds the entry whose hash was anchored elsewhere."""
    registry = open_registry(gate, store)
    with registry.reading() as entries:
        files, elsewhere = _check_files(entries, store.home, registry.log)
    head = registry.head_sha256()
    anchored = registry.anchor(expect_head)[1] if expect_head else None
    return RegistryCheck(entries=len(entries), head_sha256=head, files=files, elsewhere=elsewhere,
                         anchored_seq=anchored)


#: The decision readers live in the published ``harness.gate.record``; named here too for the CLI's callers.
__all__ = ["STAGE", "authenticate_release_manager", "decide", "evaluate", "gate_targets", "latest_decision",
           "logged_decision", "open_registry", "override", "overrides_of", "verify_registry"]
