"""`nift-gate gate` and `nift-gate override`: the release decision, logged in the registry.

``decide`` reads the policy and the run's stored records, re-verifies them (the candidate's weights are hashed
again, and under the registry lock their files must still be the ones hashed), judges every rule, logs the
decision in the registry once, and only then writes the decision record (``<run>/gate/<candidate>/record.json``
and ``decisions/<record_id>.json``); on PROMOTE it moves the configured aliases, updates the measured model's card
and exports to MLflow when configured (a publication that fails is retried by the next ``decide`` of the same
decision: :data:`PUBLISHING`). ``override`` records a release manager's decision beside the decision it names,
which must still be the candidate's latest, after the release manager authenticated with their review-app token;
the gate's decision stays. An override PROMOTE is published as a decision's promotion is, and one whose
publication fails is published by the next ``gate`` of the candidate while it still holds (a new override replaces
it, and is published in its stead). ``verify_registry`` checks the log, every decision and override file it names,
and that no such file under the runs home is one it does not name.

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
from harness.core.models import ResolvedModel, model_files, model_name
from harness.core.records import (
    InputRef,
    new_record_id,
    sha256_bytes,
    sha256_file,
    stage_fingerprint,
)
from harness.core.runner import StageRun, file_identity
from harness.core.store import RECORD_FILE, RunStore, atomic_write_text, check_folder_name, unprintable_at
from harness.gate.config import GateConfig, alias_problem
from harness.gate.evidence import Evidence, collect_evidence, evidence_of
from harness.gate.policy import GatePolicy, load_policy
from harness.gate.publish import PublicationError, check_mlflow_export, export_to_mlflow, update_model_cards
from harness.gate.record import (
    DECISION_EVENTS,
    DECISIONS_DIR,
    OVERRIDES_DIR,
    STAGE,
    GateDecisionRecord,
    OverrideRecord,
    decision_folder,
    decision_id,
    evidence_files,
    latest_decision,
    latest_decision_entry,
    logged_decision,
    logged_entry,
    overrides_of,
    read_evidence,
    registry_folder,
    restore_logged_overrides,
)
from harness.gate.registry import (
    Registry,
    RegistryTamperedError,
    alias_moves,
    aliases_of,
    model_key,
)
from harness.gate.rules import judge, verdict
from harness.review.config import ReviewConfig, Reviewer

log = get_logger("gate")

#: The role a reviewer needs in ``review.reviewers`` to override the gate.
RELEASE_MANAGER = "release_manager"
#: Suffix of the marker beside a logged promotion (``decisions/<record_id>.publishing``, and
#: ``overrides/<record_id>.publishing`` for an override PROMOTE) while its publication (model card, MLflow) has
#: not finished: written under the registry lock before the promotion is logged (a run killed between the two
#: leaves a marker whose promotion the log does not hold, which the next run drops), removed once publishing
#: succeeded. A rerun that finds it publishes again while the promotion still holds.
PUBLISHING = ".publishing"
#: The run that publishes an override PROMOTE whose publication failed (:func:`_publish_owed_override`).
OVERRIDE_RERUN = ("`nift-gate gate`, which publishes it again while it holds (a new `nift-gate override` "
                  "replaces it)")

#: Each model file's :func:`~harness.core.runner.file_identity` (device, inode, size, mtime, ctime), by path.
ModelFileIdentities = dict[str, tuple[int, int, int, int, int]]


class OverrideNotAuthorised(NiftError):
    """The person running `nift-gate override` is not an authenticated release manager."""


def gate_targets(gate: GateConfig, bench_candidate: str, bench_baselines: list[str]) -> tuple[str, list[str]]:
    """The candidate's name and the baseline names the gate judges against: the gate's own when set, else
    the bench's (``bench_candidate`` is bench's model spec, e.g. ``train:nift-hybrid``; ``bench_baselines``
    the names of its baselines)."""
    candidate = check_folder_name(gate.candidate or model_name(bench_candidate), "candidate name")
    baselines = gate.baselines if gate.baselines is not None else bench_baselines
    return candidate, [check_folder_name(name, "baseline name") for name in baselines]


def open_registry(gate: GateConfig, store: RunStore) -> Registry:
    """The decision log: ``gate.registry``, else ``<home>/registry``."""
    folder = registry_folder(store, gate.registry)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: a file, not a registry folder (gate.registry names the folder that holds "
                          f"log.jsonl)")
    return Registry(folder)


def gate_policy(gate: GateConfig, catalogue: MetricCatalogue) -> GatePolicy:
    """``gate.policy``, read and checked against ``catalogue`` (what can be checked before any record exists)."""
    if not gate.policy:
        raise ConfigError("gate.policy is not set: name a policy YAML (e.g. --policy configs/policy-demo.yaml)")
    return load_policy(gate.policy, catalogue)


def evaluate(gate: GateConfig, store: RunStore, candidate: str, baselines: list[str],
             catalogue: MetricCatalogue) -> tuple[GateDecisionRecord, Evidence]:
    """The decision record for the run's current evidence, without writing anything."""
    policy = gate_policy(gate, catalogue)
    evidence = collect_evidence(store, candidate, require_signed=gate.require_signed_evidence)
    outcomes = judge(policy, evidence, baselines, catalogue)
    decision, reason = verdict(outcomes)
    # The gate never skips: it judges again on every call. Its inputs are the exact bytes it parsed (each
    # evidence record, the policy), named by content: the same policy reached by another path is the same input.
    run = StageRun(store, STAGE, candidate, GateDecisionRecord, force=True, label=STAGE, hold_lock=False)
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


def _model_file_identities(named: dict[str, Any]) -> ModelFileIdentities | None:
    """The identity of each file of the model ``named`` (a resolved model's fields, as a record stores them) now,
    without reading a byte; None when its files cannot be listed (gone, no weights, not a model entry). The kernel
    moves a file's ctime on every write, so a file whose identity is the same later was not written in between."""
    try:
        return {str(path): file_identity(path) for path in model_files(ResolvedModel.model_validate(named))}
    except (NiftError, ValueError, OSError):
        return None


def _changed_model_files(named: dict[str, Any], pinned: ModelFileIdentities | None,
                         now: ModelFileIdentities | None) -> list[str]:
    """The model files whose identity ``now`` is not the ``pinned`` one (a file added, gone or written); the
    model's folder when either could not be listed."""
    if pinned is None or now is None:
        return [str(named.get("path") or "the candidate's model folder")]
    return sorted(set(pinned) ^ set(now) | {path for path in set(pinned) & set(now) if pinned[path] != now[path]})


def _bench_candidate_model(store: RunStore, candidate: str) -> dict[str, Any]:
    """The candidate model the bench record names now ({} when it cannot be read: the evidence check says why)."""
    try:
        bench = read_evidence(store, evidence_files(store, candidate)[:1])[0]  # the bench record comes first
    except (NiftError, OSError):
        return {}
    return Evidence(run_id=store.run_id, candidate=candidate, records={"bench": bench.record}).candidate_model()


def _evaluate_pinned(gate: GateConfig, store: RunStore, candidate: str, baselines: list[str],
                     catalogue: MetricCatalogue) -> tuple[GateDecisionRecord, Evidence, ModelFileIdentities]:
    """:func:`evaluate`, and the identity of each candidate model file it hashed, taken before and after: a file
    written while the evidence check hashed the files is refused here, one written after is refused under the
    registry lock (:func:`_check_unchanged`), so what is logged names the weights on disk. Only stat, no rehash.

    The identities are taken here, around ``evaluate``, since the evidence check that hashes the files does not
    hand them out: taken before the first byte is read, they cover the whole hash."""
    before = _model_file_identities(_bench_candidate_model(store, candidate))
    record, evidence = evaluate(gate, store, candidate, baselines, catalogue)
    pinned = _model_file_identities(record.candidate_model)
    if changed := _changed_model_files(record.candidate_model, before, pinned):
        raise InputError(f"{changed[0]}: the candidate's model files were written after the gate began hashing "
                         f"them ({', '.join(changed)}); nothing was logged: rerun `nift-gate gate` once nothing "
                         f"writes them")
    assert pinned is not None  # else changed
    return record, evidence, pinned


def _check_publishable(gate: GateConfig, candidate: str) -> None:
    """Before the registry lock: a promotion whose export cannot work is refused while nothing is logged."""
    if gate.mlflow.tracking_uri:
        check_mlflow_export(gate.mlflow.tracking_uri, gate.mlflow.registered_model or candidate)


def _publish(gate: GateConfig, store: RunStore, record: GateDecisionRecord, evidence: Evidence,
             aliases: list[str], tags: dict[str, str]) -> None:
    if gate.update_model_card:
        provenance = {"decision": tags["nift_gate.decision"], "record_id": tags["nift_gate.record_id"],
                      "policy_sha256": record.policy["sha256"], "aliases": aliases}
        written = update_model_cards(store, record.candidate, record.candidate_model,
                                     [v for v, _ in evidence.values], provenance)
        for path in written:
            log.info("model card %s: evaluation results written", path)
    if gate.mlflow.tracking_uri:
        source = record.candidate_model.get("path") or str(store.stage_dir("train", record.candidate))
        version = export_to_mlflow(gate.mlflow.tracking_uri, gate.mlflow.registered_model or record.candidate,
                                   str(Path(source).resolve()), {**tags, "run_id": store.run_id,
                                                                  "model_sha256": record.candidate_model.get("sha256")},
                                   aliases)
        log.info("MLflow: %s version %s registered", gate.mlflow.registered_model or record.candidate, version)


def _mark_publishing(marker: Path, what: str) -> None:
    """Write the :data:`PUBLISHING` marker of the promotion ``what``, before it is logged."""
    atomic_write_text(marker, f"{what}: publication not finished\n")


def _held_promotions(moves: dict[str, Any], held: dict[str, dict[str, Any]], target: dict[str, Any]) -> list[str]:
    """The aliases ``moves`` pointed at ``target`` that still point at it (``held``: the log's aliases now): what
    a publication finished later points at the version it registers."""
    return sorted(a for a, t in moves.items() if t is not None and a in held and _same_model(held[a], target))


def _publish_marked(gate: GateConfig, store: RunStore, record: GateDecisionRecord, evidence: Evidence,
                    aliases: list[str], tags: dict[str, str], marker: Path, what: str, entry: dict[str, Any],
                    rerun: str) -> None:
    """Publish the logged promotion ``what`` (registry ``entry``) and remove its :data:`PUBLISHING` marker,
    for a caller holding the registry lock. A failure is a :class:`PublicationError` that leaves the marker for
    the next run, which ``rerun`` names."""
    try:
        _publish(gate, store, record, evidence, aliases, tags)
    except (NiftError, OSError) as exc:
        raise PublicationError(f"{what} is logged (registry entry {entry['seq']}), but publishing it failed: {exc}; "
                               f"fix that and rerun {rerun}") from None
    marker.unlink()


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


def _check_unchanged(gate: GateConfig, store: RunStore, record: GateDecisionRecord,
                     weights: ModelFileIdentities) -> None:
    """Refuse to log ``record`` unless the evidence files and the policy are still the bytes it pins, and the
    candidate's model files the ones its evidence check hashed (``weights``: their identities then, compared
    without reading a byte: a checkpoint overwritten after the hash would otherwise be promoted under the hash of
    weights no longer on disk).

    Called under the registry's write lock: ``evaluate`` read them outside it, and another gate may have logged
    a decision on newer evidence in between; logging this one after it would make stale evidence the log's
    last word (and move the aliases back). Refusing is the simpler correct option: re-evaluating inside the
    lock would hash the candidate's weights (every byte) while every other gate, override and reader waits,
    and a rerun decides on the new evidence anyway. Only a handful of small record files are re-read here; the
    model files are only stat'ed."""
    pinned = {ref.path: ref.sha256 for ref in record.evidence}
    current = {str(path.relative_to(store.root)) for path in evidence_files(store, record.candidate)}
    changed = sorted(current ^ set(pinned))  # a record that appeared or went away
    for path, sha256 in sorted(pinned.items()):
        if path in current and sha256_file(store.root / path) != sha256:
            changed.append(path)
    try:
        policy_now = sha256_file(Path(gate.policy))
    except OSError:
        policy_now = None
    if policy_now != record.policy["sha256"]:
        changed.append(f"policy {gate.policy}")
    named = record.candidate_model
    changed += [f"model file {path}" for path in _changed_model_files(named, weights, _model_file_identities(named))]
    if changed:
        raise InputError(f"{store.root}: the evidence changed while the gate decided ({', '.join(changed)}); nothing "
                         f"was logged: rerun `nift-gate gate` to decide on the records as they are now")


def _same_model(held: dict[str, Any], target: dict[str, Any]) -> bool:
    return all(held.get(k) == target.get(k) for k in ("run_id", "candidate", "model_sha256"))


def _replayed_moves(entries: list[dict[str, Any]], aliases: dict[str, dict[str, Any]], target: dict[str, Any],
                    record: GateDecisionRecord, promote_aliases: list[str]) -> dict[str, Any]:
    """The alias moves that make a decision reached again hold as it did: the decision's own moves, computed
    against where the aliases point now (a REJECT takes away what the candidate holds now, which another
    decision may have given it since), then the recorded moves of each override of it, in log order (an
    override stands when the same evidence is decided again, so its aliases must too). Returns the net moves:
    alias -> the model, or None to take it away; an alias another model holds is never taken from it."""
    now = dict(aliases)
    touched: list[str] = []

    def apply(moves: dict[str, Any]) -> None:
        for alias, to in moves.items():
            touched.append(alias)
            if to is not None:
                now[alias] = to
            elif alias in now and _same_model(now[alias], target):
                del now[alias]

    apply(alias_moves(now, target, promote_aliases, record.decision == "PROMOTE"))
    for entry in entries:
        if entry.get("event") == "override" and entry.get("decision_record_id") == record.record_id:
            apply(entry.get("alias_moves") or {})
    net: dict[str, Any] = {}
    for alias in dict.fromkeys(touched):
        if alias in now and _same_model(now[alias], target):
            net[alias] = target
        elif alias not in now and alias in aliases:
            net[alias] = None
    return net


def decide(gate: GateConfig, store: RunStore, candidate: str, baselines: list[str],
           catalogue: MetricCatalogue) -> GateDecisionRecord:
    """Entry point of `nift-gate gate`: decide, log once, write, and publish a promotion.

    The registry lock is held from "is this decision logged?" to the append, and the decision files are
    written only after the append succeeded: a gate stopped by a tampered registry leaves no decision behind,
    and two gates at once log a decision once. Under the lock the evidence and the policy are checked to be
    the bytes the decision pins, and the candidate's model files the ones it hashed (:func:`_check_unchanged`):
    a gate that read records since replaced, or hashed weights since overwritten, logs nothing.

    A decision already logged is not logged again while it is the candidate's latest logged decision (a CI
    rerun leaves the log as it is). One reached again after another decision of the candidate is logged again,
    as a ``redecision`` entry naming the earlier entry (``redecides_seq``) and re-applying its alias moves, so
    that the log's last word for the candidate is the ``record.json`` written.

    A promotion is published after the append (model card, MLflow); what can be checked of that before is checked
    before the lock. A failure is a :class:`PublicationError` (the decision stays logged), and its marker
    (:data:`PUBLISHING`) makes the next run of the same decision publish it again, unless an override of it
    was logged since. An override PROMOTE whose publication did not finish is published by the next gate while
    it still holds (:func:`_publish_owed_override`)."""
    record, evidence, weights = _evaluate_pinned(gate, store, candidate, baselines, catalogue)
    if record.decision == "PROMOTE":
        _check_publishable(gate, record.candidate)
    folder = decision_folder(store, record.candidate)
    archive = folder / DECISIONS_DIR / f"{record.record_id}.json"
    publishing = archive.with_suffix(PUBLISHING)
    text = record.model_dump_json(indent=2) + "\n"
    registry = open_registry(gate, store)
    target = model_key(store.run_id, record.candidate, record.candidate_model.get("sha256"))
    moves: dict[str, Any] | None = None
    retry = False  # the decision is logged and the latest, but publishing it did not finish
    with registry.writing() as logbook:
        _check_unlogged(logbook.entries, store.home, registry.log)
        _check_unchanged(gate, store, record, weights)
        restore_logged_overrides(store, record.candidate, logbook.entries)
        logged = logged_entry(logbook.entries, "decision", record.record_id)
        if logged is None:
            moves = alias_moves(logbook.aliases(), target, gate.promote_aliases, record.decision == "PROMOTE")
            if record.decision == "PROMOTE":
                _mark_publishing(publishing, f"decision {record.record_id} (PROMOTE)")
            entry = logbook.append({"event": "decision", **target, "record_id": record.record_id,
                                    "record_sha256": sha256_bytes(text.encode()), "decision": record.decision,
                                    "policy_sha256": record.policy["sha256"], "reason": record.reason,
                                    "alias_moves": moves})
        else:
            text = _logged_text(archive, text, logged)
            entry = latest = latest_decision_entry(logbook.entries, store.run_id, record.candidate)
            if latest is not None and latest["record_id"] != record.record_id:
                moves = _replayed_moves(logbook.entries, logbook.aliases(), target, record, gate.promote_aliases)
                if record.decision == "PROMOTE" and any(t is not None for t in moves.values()):
                    _mark_publishing(publishing, f"decision {record.record_id} (PROMOTE)")
                entry = logbook.append({
                    "event": "redecision", **target, "record_id": record.record_id,
                    "record_sha256": logged["record_sha256"], "redecides_seq": logged["seq"],
                    "decision": record.decision, "policy_sha256": record.policy["sha256"], "reason": record.reason,
                    "alias_moves": moves})
            elif publishing.exists():
                retry = not _overridden_since(logbook.entries, latest)
        if logged is None or not archive.exists():
            atomic_write_text(archive, text)  # what was just logged (a leftover of an unlogged run is replaced)
        atomic_write_text(folder / RECORD_FILE, text)
        _publish_owed_override(gate, store, record.candidate, logbook.entries)
        if retry:  # the aliases that entry moved to the candidate and that it still holds
            promoted = _held_promotions(entry["alias_moves"], logbook.aliases(), target)
        else:
            promoted = sorted(a for a, t in (moves or {}).items() if t is not None)
        # a decision reached again whose override took the promotion back moves nothing to it: nothing to publish
        publish = retry or (record.decision == "PROMOTE" and moves is not None and (logged is None or bool(promoted)))
        # Published under the lock: a concurrent rerun of the same decision would otherwise see the marker of a
        # publication still under way and publish it a second time.
        if logged is not None:
            record = GateDecisionRecord.model_validate_json(text)
            if retry:
                log.info("decision %s (registry entry %s) is logged, but its publication did not finish: publishing it "
                         "again", record.record_id, entry["seq"])
            elif moves is None:
                log.info("decision %s was logged before (registry entry %s), and is the latest: nothing moves twice",
                         record.record_id, logged["seq"])
                return record
            else:
                log.info("decision %s (registry entry %s) reached again after decision %s: logged again as entry %s",
                         record.record_id, logged["seq"], latest["record_id"], entry["seq"])
        else:
            log.debug("decision %s logged in %s", record.record_id, registry.log)
        if publish:
            _publish_marked(gate, store, record, evidence, promoted,
                            {"nift_gate.decision": record.decision, "nift_gate.record_id": record.record_id},
                            publishing, f"decision {record.record_id} ({record.decision})", entry,
                            "`nift-gate gate`, which publishes it again")
        return record


def _overridden_since(entries: list[dict[str, Any]], entry: dict[str, Any]) -> bool:
    """Whether a release manager overrode ``entry``'s decision after it: the override decided what holds (and
    published its own promotion), so the decision's unfinished publication is no longer owed."""
    return any(e.get("event") == "override" and e.get("decision_record_id") == entry["record_id"]
               and e["seq"] > entry["seq"] for e in entries)


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


def _check_override(decision: str, decision_id: str, release_manager: str, reason: str,
                    aliases: list[str] | None) -> None:
    if decision not in ("PROMOTE", "REJECT"):
        raise ConfigError(f"override decision must be PROMOTE or REJECT, got {decision!r}")
    if not (decision_id or "").strip():
        raise ConfigError("an override names the decision it overrides (--decision-id): the id `nift-gate gate` "
                          "prints (`decision <id> -> ...`), also in `nift-gate registry show`")
    if not (reason or "").strip():
        raise ConfigError("an override needs a reason (--reason): it is recorded with the release manager's name")
    if not (release_manager or "").strip():
        raise ConfigError("an override needs the release manager's name (--by)")
    for flag, text in (("--reason", reason), ("--by", release_manager)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # argparse keeps bytes the locale could not decode as lone surrogates
            raise ConfigError(f"{flag} is not UTF-8 text (it holds bytes the terminal could not decode)") from None
        if (where := unprintable_at(text)) is not None:  # "ok\nverdict REJECT" would forge a line of the output
            raise ConfigError(f"{flag} must not contain a control character ({where}): it is printed on one line of "
                              "the gate's output and `registry show`")
    for alias in aliases or []:
        if problem := alias_problem(alias):  # an alias is logged for good: "a\nalias production: ..." would forge
            raise ConfigError(f"--alias {alias!r} {problem}")


def override(gate: GateConfig, store: RunStore, candidate: str, decision: str, release_manager: str, reason: str,
             aliases: list[str] | None = None, *, decision_id: str, reviewers: ReviewConfig,
             token: str | None) -> OverrideRecord:
    """Entry point of `nift-gate override`: a release manager's PROMOTE or REJECT of the decision ``decision_id``,
    with a mandatory reason.

    ``release_manager`` must be one of ``reviewers`` with role ``release_manager``, and ``token`` their token.
    ``decision_id`` is the decision the release manager read and overrides: under the registry lock it must be the
    candidate's latest logged decision, else nothing is logged (:func:`_check_overrides_latest`): a gate that
    decided again meanwhile (a rerun bench, a regression) would otherwise receive a verdict meant for another.
    The decision overridden must be the file the registry logged; the override is logged, with its file's text
    (``record_text``), then written: an override stopped in between is written back by the next ``gate`` or
    ``override``, so its alias moves never hold while readers see no override. A PROMOTE is published under the
    registry lock; one whose publication fails (:class:`PublicationError`) is published by the next ``gate``
    while it still holds. An earlier override PROMOTE whose publication did not finish is owed no more: this
    override decides now."""
    _check_override(decision, decision_id, release_manager, reason, aliases)
    check_folder_name(candidate, "candidate name")
    manager = authenticate_release_manager(reviewers, release_manager, token).name
    if decision == "PROMOTE":
        _check_publishable(gate, candidate)
    registry = open_registry(gate, store)
    with registry.writing() as logbook:
        _check_unlogged(logbook.entries, store.home, registry.log)
        restore_logged_overrides(store, candidate, logbook.entries)
        original, _ = logged_decision(store, candidate, registry.folder, entries=logbook.entries)
        _check_overrides_latest(logbook.entries, store.run_id, candidate, decision_id.strip(), original)
        archived = decision_folder(store, candidate) / DECISIONS_DIR / f"{original.record_id}.json"
        target = model_key(store.run_id, candidate, original.candidate_model.get("sha256"))
        promote = decision == "PROMOTE"
        # published with the promotion
        evidence = evidence_of(store, original, require_signed=gate.require_signed_evidence) if promote else None
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
        overrides = decision_folder(store, candidate) / OVERRIDES_DIR
        marker = overrides / f"{record.record_id}{PUBLISHING}"
        if promote:
            _mark_publishing(marker, f"override {record.record_id} (PROMOTE)")
        entry = logbook.append({"event": "override", **target, "record_id": record.record_id,
                        "record_sha256": sha256_bytes(text.encode()), "decision_record_id": original.record_id,
                        "decision": decision, "original_decision": original.decision,
                        "release_manager": record.release_manager, "reason": record.reason, "alias_moves": moves,
                        "record_text": text})  # an override stopped before its file is written back from here
        atomic_write_text(overrides / f"{record.record_id}.json", text)
        # An earlier override's unfinished publication is owed no more: this entry decides now.
        _drop_superseded_markers(store, candidate, entry)
        if promote:  # under the lock, as a decision's: a concurrent retry would otherwise publish it twice
            _publish_marked(gate, store, original, evidence, _held_promotions(moves, logbook.aliases(), target),
                            _override_tags(entry), marker, f"override {record.record_id} (PROMOTE)", entry,
                            OVERRIDE_RERUN)
    return record


def _check_overrides_latest(entries: list[dict[str, Any]], run_id: str, candidate: str, decision_id: str,
                            latest: GateDecisionRecord) -> None:
    """Refuse an override of ``decision_id`` unless it is ``latest``, the candidate's latest logged decision (for a
    caller holding the registry lock): the release manager decided on what they read, not on whatever was logged
    since."""
    if decision_id == latest.record_id:
        return
    where = latest_decision_entry(entries, run_id, candidate)
    now = (f"the latest decision of {run_id}/{candidate} is {latest.record_id} ({latest.decision}, registry entry "
           f"{where['seq'] if where else '?'})")
    named = next((e for e in reversed(entries) if e.get("event") in DECISION_EVENTS and e.get("run_id") == run_id
                  and e.get("candidate") == candidate and e.get("record_id") == decision_id), None)
    if named is None:
        raise InputError(f"override refused: --decision-id {decision_id!r} is no logged decision of {run_id}/"
                         f"{candidate}; {now}; read it and pass --decision-id {latest.record_id} to override it; "
                         f"nothing was logged")
    raise InputError(f"override refused: decision {decision_id} ({named.get('decision')}, registry entry "
                     f"{named['seq']}) is no longer the latest for {run_id}/{candidate}: {now}, decided after it; "
                     f"read it and pass --decision-id {latest.record_id} to override that one; nothing was logged")


def _override_tags(entry: dict[str, Any]) -> dict[str, str]:
    """The MLflow tags of the override PROMOTE logged as ``entry``."""
    return {"nift_gate.decision": f"PROMOTE (override of {entry['original_decision']})",
            "nift_gate.record_id": entry["record_id"], "nift_gate.release_manager": entry["release_manager"]}


def _override_markers(store: RunStore, candidate: str) -> list[Path]:
    folder = decision_folder(store, candidate) / OVERRIDES_DIR
    return sorted(folder.glob(f"*{PUBLISHING}")) if folder.is_dir() else []


def _drop_superseded_markers(store: RunStore, candidate: str, latest: dict[str, Any] | None) -> list[Path]:
    """Remove the :data:`PUBLISHING` markers of override PROMOTEs that are not ``latest``, the log's last decision
    or override entry for the candidate (a later entry decided, or the override was never logged: its run was
    stopped between the marker and the append): publishing one now would announce a promotion the log does not
    hold. Returns the markers kept: that of ``latest``, if it is an override."""
    kept = []
    for marker in _override_markers(store, candidate):
        record_id = marker.name.removesuffix(PUBLISHING)
        if latest is not None and latest.get("event") == "override" and latest.get("record_id") == record_id:
            kept.append(marker)
            continue
        log.info("override %s: its publication did not finish, and the log does not hold it now (its last word for "
                 "the candidate is entry %s): not published", record_id, latest["seq"] if latest else "none")
        marker.unlink()
    return kept


def _publish_owed_override(gate: GateConfig, store: RunStore, candidate: str, entries: list[dict[str, Any]]) -> None:
    """Publish an override PROMOTE whose publication did not finish (its :data:`PUBLISHING` marker is there),
    while it is still what holds: the log's last decision or override entry for the candidate, as a decision's
    unfinished publication is retried only while no override has decided since (other markers are dropped:
    :func:`_drop_superseded_markers`). The decision it overrode is read as the log logged it, and must be the
    log's latest decision; the model it promotes is the one the override's entry names. For a caller holding
    the registry lock."""
    latest = latest_decision_entry(entries, store.run_id, candidate, (*DECISION_EVENTS, "override"))
    for marker in _drop_superseded_markers(store, candidate, latest):
        assert latest is not None  # a marker is kept only for the latest entry
        record_id = latest["record_id"]
        original, _ = logged_decision(store, candidate, registry_folder(store, gate.registry), entries=entries)
        if original.record_id != latest.get("decision_record_id"):
            raise InputError(f"{decision_folder(store, candidate) / RECORD_FILE}: decision {original.record_id} is "
                             f"not the one override {record_id} (registry entry {latest['seq']}) overrode "
                             f"({latest.get('decision_record_id')}); the override's promotion is not published")
        target = model_key(latest["run_id"], latest["candidate"], latest.get("model_sha256"))
        log.info("override %s (registry entry %s) is logged, but its publication did not finish: publishing it "
                 "again", record_id, latest["seq"])
        published = evidence_of(store, original, require_signed=gate.require_signed_evidence)
        _publish_marked(gate, store, original, published,
                        _held_promotions(latest.get("alias_moves") or {}, aliases_of(entries), target),
                        _override_tags(latest), marker, f"override {record_id} (PROMOTE)", latest, OVERRIDE_RERUN)


@dataclass(frozen=True)
class RegistryCheck:
    """What `nift-gate registry verify` checked."""

    entries: int
    head_sha256: str = ""
    files: int = 0  # decision and override files compared with the hash their entry logged
    elsewhere: int = 0  # entries of runs that are not under this runs home (their files were not checked)
    anchored_seq: int | None = None  # the entry --expect-head names


def _check_files(entries: list[dict[str, Any]], home: Path, log_path: Path) -> tuple[int, int]:
    """Every decision and override file the log names (under ``home``) holds the logged bytes, each candidate's
    ``record.json`` is the decision logged last for it, and no decision, override or ``record.json`` file
    under ``home`` is one that no entry logs. Returns (files checked, entries of runs not under ``home``)."""
    checked = elsewhere = 0
    latest: dict[tuple[str, str], tuple[str, int]] = {}  # (run, candidate) -> (sha256, seq) of its last decision
    for entry in entries:
        run, candidate = entry.get("run_id"), entry.get("candidate")
        if not isinstance(run, str) or not isinstance(candidate, str):
            continue  # an entry that names no run
        sub = DECISIONS_DIR if entry.get("event") in DECISION_EVENTS else OVERRIDES_DIR
        logged = entry.get("record_sha256")
        if not logged:
            continue  # an override logged before hashes were
        if not (home / run).is_dir():
            elsewhere += 1
            continue
        store = RunStore(run, home)
        path = decision_folder(store, candidate) / sub / f"{entry['record_id']}.json"
        where = f"{log_path}:{entry['seq']}"
        if not path.exists():
            raise RegistryTamperedError(f"{path}: missing, though {where} logged it: the file was deleted (or a "
                                        f"gate was killed before writing it: rerun `nift-gate gate`)")
        if sha256_file(path) != logged:
            raise RegistryTamperedError(f"{path}: edited after it was logged: its sha256 differs from the one {where} "
                                        f"holds")
        checked += 1
        if sub == DECISIONS_DIR:
            latest[(run, candidate)] = (logged, entry["seq"])  # entries in log order: the last one stays
    _check_unlogged(entries, home, log_path)
    for (run, candidate), (logged, seq) in sorted(latest.items()):
        path = decision_folder(RunStore(run, home), candidate) / RECORD_FILE
        if path.exists():
            if sha256_file(path) != logged:
                raise RegistryTamperedError(f"{path}: not the decision {log_path}:{seq} logged last for "
                                            f"{run}/{candidate}: edited, or an earlier decision put back")
            checked += 1
    return checked, elsewhere


def _check_unlogged(entries: list[dict[str, Any]], home: Path, log_path: Path) -> None:
    """Refuse any decision or override file under ``home`` that none of the log's ``entries`` names, and any
    ``record.json`` of a candidate with no logged decision. The gate and ``override`` write a file only after its
    entry was appended, so such a file means the log lost entries: truncated (its head recomputed), emptied or
    deleted. Checked by `registry verify`, and by the gate and ``override`` before they append: a new chain
    started on a deleted log would bury the decisions it lost. A whole chain forged anew, naming every file, is
    still consistent; only ``--expect-head`` (a head hash kept outside the registry) catches that."""
    count = len(entries)
    named = {(entry["run_id"], entry["candidate"],
              DECISIONS_DIR if entry.get("event") in DECISION_EVENTS else OVERRIDES_DIR, str(entry.get("record_id")))
             for entry in entries if isinstance(entry.get("run_id"), str) and isinstance(entry.get("candidate"), str)}
    found = [*home.glob(f"*/{STAGE}/*/{DECISIONS_DIR}/*.json"), *home.glob(f"*/{STAGE}/*/{OVERRIDES_DIR}/*.json")]
    for path in sorted(found):
        run, candidate, sub = path.parts[-5], path.parts[-3], path.parts[-2]
        if (run, candidate, sub, path.stem) not in named:
            state = (f"{log_path} is missing" if not log_path.exists() else f"{log_path} has no entries" if not count
                     else f"none of the {count} entries of {log_path} logs it")
            what = "a decision" if sub == DECISIONS_DIR else "an override"
            raise RegistryTamperedError(f"{path}: {what} file that no registry entry logs ({state}): entries "
                                        f"were deleted (the log truncated or replaced), or the file was put there "
                                        f"by hand; restore the registry from a backup")
    decided = {(run, candidate) for run, candidate, sub, _ in named if sub == DECISIONS_DIR}
    for path in sorted(home.glob(f"*/{STAGE}/*/{RECORD_FILE}")):
        run, candidate = path.parts[-4], path.parts[-2]
        if (run, candidate) not in decided:
            raise RegistryTamperedError(f"{path}: a decision of {run}/{candidate}, but {log_path} logs no decision "
                                        f"of it ({count} entries): entries were deleted, or the registry was; "
                                        f"restore it from a backup")


def verify_registry(gate: GateConfig, store: RunStore, expect_head: str | None = None) -> RegistryCheck:
    """`nift-gate registry verify`: the chain and the head, every decision and override file the log names
    under this runs home (and each candidate's latest decision) byte for byte, that no such file under the
    runs home is one the log does not name (a log truncated or deleted), and, given ``expect_head``, that the
    log still holds the entry whose hash was anchored elsewhere: without it, whoever rewrites the whole
    registry into a consistent forged chain that names every file passes."""
    registry = open_registry(gate, store)
    with registry.reading() as entries:
        files, elsewhere = _check_files(entries, store.home, registry.log)
    head = registry.head_sha256()
    # an empty --expect-head (an unset CI variable) is refused by anchor(), not taken as no anchor
    anchored = registry.anchor(expect_head)[1] if expect_head is not None else None
    return RegistryCheck(entries=len(entries), head_sha256=head, files=files, elsewhere=elsewhere,
                         anchored_seq=anchored)


#: The decision readers live in the published ``harness.gate.record``; named here too for the CLI's callers.
__all__ = ["STAGE", "authenticate_release_manager", "decide", "evaluate", "gate_targets", "latest_decision",
           "logged_decision", "open_registry", "override", "overrides_of", "verify_registry"]
