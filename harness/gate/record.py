"""The gate's published output: the decision and override records, and readers of them and of their evidence.

A decision is written to ``<run>/gate/<candidate>/record.json`` (the latest) and archived as
``<run>/gate/<candidate>/decisions/<record_id>.json``; its bytes depend only on its inputs. An override is
its own record under ``<run>/gate/<candidate>/overrides/``; the decision it overrides is never touched. Each
is written only after the registry logged it with the sha256 of its bytes, and :func:`logged_decision` reads
them back refused unless they are still those bytes: an edited decision file is never shown as a verdict.

The evidence of a decision is every stored record the gate may judge for the candidate: the bench record
(``<run>/bench/<candidate>/record.json``), each audit's (``<run>/audit/<name>/record.json``, whatever
audits are registered) and the review's (``<run>/review/record.json``). :func:`decided_evidence` reads them
back for whoever shows or publishes a decision, and refuses when they changed since it was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from harness.core.errors import InputError
from harness.core.records import Record, StoredRecord, canonical_json, sha256_bytes
from harness.core.store import RECORD_FILE, RunStore, atomic_write_text, decode_utf8
from harness.gate.registry import Registry

STAGE = "gate"
DECISIONS_DIR = "decisions"
OVERRIDES_DIR = "overrides"
#: Registry events that log a gate decision (its file is under ``decisions/``): ``decision`` when it is first
#: reached, ``redecision`` when the same decision is reached again after another one of the candidate (it names
#: the first entry in ``redecides_seq`` and moves the aliases again; see :func:`harness.gate.gate.decide`).
DECISION_EVENTS = ("decision", "redecision")

R = TypeVar("R", bound=Record)

Verdict = Literal["PROMOTE", "REJECT", "PENDING_REVIEW"]
RuleStatus = Literal["pass", "fail", "pending", "inconclusive"]


class EvidenceRef(BaseModel):
    """A stored record the gate read, pinned by the hash of its file."""

    kind: str = Field(description="Record kind: bench, review, or an audit's (toxicity_audit, ...).")
    record_id: str
    path: str = Field(description="Path of the record file relative to the run folder.")
    sha256: str = Field(description="sha256 of the record file's bytes when the gate read it.")
    created_at: str = Field(description="The record's own completion time.")


class RuleOutcome(BaseModel):
    """One rule judged on one piece of evidence (a non-inferiority rule yields one outcome per baseline)."""

    rule: str = Field(description="Rule name from the policy.")
    type: str = Field(description="Rule type: threshold, ceiling, floor, non_inferiority, review_quorum, ...")
    severity: Literal["block", "warn"]
    status: RuleStatus = Field(description="pass, fail, pending (waiting for human review), or inconclusive (the "
                                           "CI straddles the bound, with `inconclusive: true`; see needed_items).")
    metric: str | None = Field(None, description="Name of the metric judged.")
    model: str | None = Field(None, description="Model whose value was judged.")
    baseline: str | None = Field(None, description="Baseline of a non-inferiority comparison.")
    attribute: str | None = Field(None, description="Scorer attribute (toxicity).")
    higher_is_better: bool | None = Field(None, description="The metric's direction, as the record that reported "
                                                            "it declares.")
    value: float | None = Field(None, description="The metric value, or the difference candidate - baseline.")
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    n: int | None = Field(None, description="Items behind the value.")
    judged: float | None = Field(None, description="The number compared with the threshold (the value, a CI bound, "
                                                   "or the oriented lower CI bound of a difference).")
    comparison: str | None = Field(None, description="How `judged` was compared, e.g. '>=', '<=', '>'.")
    threshold: float | None = Field(None, description="The bound from the policy (-margin for non-inferiority).")
    records: list[str] = Field(default_factory=list, description="Ids of the records the value came from.")
    test: str | None = Field(None, description="The statistical test or interval behind `judged` (e.g. 'wilson', "
                                               "'newcombe', 'bootstrap-bca', 'point value').")
    alpha: float | None = Field(None, description="The rule's error rate: 1 - confidence of the interval judged "
                                                  "(one-sided where one bound is compared).")
    margin: float | None = Field(None, description="The non-inferiority margin, in the metric's units.")
    needed_items: int | None = Field(None, description="For an inconclusive outcome: further items that would "
                                                       "decide it at the stated power.")
    detail: str = Field(description="One line a person can read.")


class GateDecisionRecord(Record):
    """What the policy concluded from the stored evidence. Same policy and evidence, same bytes."""

    kind: Literal["gate_decision"] = "gate_decision"
    created_at: str = Field(description="The completion time of the newest evidence record: a decision is a "
                                        "function of its evidence, so its bytes carry no wall-clock time. When it "
                                        "was made is in the registry log.")
    candidate: str
    candidate_model: dict[str, Any] = Field(description="The candidate's resolved model (spec, path, sha256).")
    baselines: list[str] = Field(description="Baselines non-inferiority rules without `baseline:` were judged on.")
    policy: dict[str, Any] = Field(description="Policy file path, sha256 and parsed rules.")
    decision: Verdict
    reason: str = Field(description="The verdict and why, in one sentence.")
    outcomes: list[RuleOutcome]
    evidence: list[EvidenceRef]


class OverrideRecord(Record):
    """A release manager's decision that replaces the gate's verdict for one decision; the decision stays."""

    kind: Literal["gate_override"] = "gate_override"
    candidate: str
    decision_record_id: str = Field(description="The gate decision overridden.")
    decision_sha256: str = Field(description="sha256 of that decision's file.")
    original_decision: Verdict
    decision: Literal["PROMOTE", "REJECT"] = Field(description="The decision that now holds.")
    release_manager: str = Field(description="Who decided.")
    reason: str = Field(description="Why (mandatory).")
    aliases: list[str] = Field(default_factory=list, description="Aliases moved to the candidate (PROMOTE) or away "
                                                                 "from it (REJECT).")


# ---- readers -----------------------------------------------------------------------------------------------------

def evidence_files(store: RunStore, candidate: str) -> list[Path]:
    """The record files the gate judges ``candidate`` on, in a fixed order: bench, every audit by name, review.

    The bench record is required. Audit folders of work in progress (``audit/_work``) or of a killed commit
    (``audit/.<name>.<random>.tmp``) are no evidence (:meth:`RunStore.finished`).
    """
    bench = store.root / "bench" / candidate / RECORD_FILE
    if not bench.exists():
        raise InputError(f"{bench}: no bench record for candidate {candidate!r}; run `nift-gate bench` first "
                         f"(or set gate.candidate)")
    audits = [folder / RECORD_FILE for folder in store.finished("audit")]
    review = store.root / "review" / RECORD_FILE
    return [bench, *audits, *([review] if review.exists() else [])]


@dataclass(frozen=True)
class StoredEvidence:
    """One evidence record as read: the record (generically), its file, the exact bytes and their reference."""

    path: Path
    data: bytes
    record: StoredRecord
    ref: EvidenceRef

    @property
    def audit(self) -> str | None:
        """The audit's name for a record under ``audit/<name>/``; None for the bench and review records."""
        parts = Path(self.ref.path).parts
        return parts[1] if len(parts) == 3 and parts[0] == "audit" else None

    def typed(self, cls: type[R]) -> R:
        """The same bytes read as a stage's published record type (e.g. ``ReviewRecord``)."""
        return _parse(self.data, self.path, cls)


def _parse(data: bytes, path: Path, cls: type[R]) -> R:
    """The bytes of ``path`` as ``cls``; a byte that is not UTF-8, or the first invalid field, on one line."""
    text = decode_utf8(data, path)
    try:
        return cls.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(the whole file)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(f"{path}: not a valid {cls.__name__}: {where}: {first['msg']}{more}") from None


def read_evidence(store: RunStore, paths: list[Path]) -> list[StoredEvidence]:
    """Each file read once; the reference pins the sha256 of exactly the bytes that were parsed."""
    found = []
    for path in paths:
        data = path.read_bytes()
        record = _parse(data, path, StoredRecord)
        ref = EvidenceRef(kind=record.kind, record_id=record.record_id, path=str(path.relative_to(store.root)),
                          sha256=sha256_bytes(data), created_at=record.created_at)
        found.append(StoredEvidence(path=path, data=data, record=record, ref=ref))
    return found


def decision_folder(store: RunStore, candidate: str) -> Path:
    return store.stage_dir(STAGE, candidate)


def decision_id(record: GateDecisionRecord) -> str:
    """The id of a decision: a hash of everything in its bytes (verdict, outcomes, evidence, versions, code
    revision) but the policy's path, so that a decision other code would make gets another id, and the same
    policy content reached by another path the same one. What the registry logged under an id is never
    rewritten (:func:`harness.gate.gate.decide`), so the path first used stays in its bytes."""
    content = record.model_dump(mode="json", exclude={"record_id"})
    content["policy"] = {k: v for k, v in content["policy"].items() if k != "path"}
    return f"gate_decision-{sha256_bytes(canonical_json(content).encode())[:16]}"


def registry_folder(store: RunStore, configured: str | Path | None = None) -> Path:
    """The decision log: ``configured`` (``gate.registry``), else ``<home>/registry``."""
    return Path(configured) if configured else store.home / "registry"


def logged_entry(entries: list[dict[str, Any]], event: str, record_id: str) -> dict[str, Any] | None:
    """The registry entry that logged the ``event`` (decision or override) ``record_id``."""
    return next((e for e in entries if e.get("event") == event and e.get("record_id") == record_id), None)


def latest_decision_entry(entries: list[dict[str, Any]], run_id: str, candidate: str,
                          events: tuple[str, ...] = DECISION_EVENTS) -> dict[str, Any] | None:
    """The last entry that logged a gate decision (first reached or reached again) for ``run_id``/``candidate``:
    what the log says the candidate's ``record.json`` is. ``events``: the kinds of entry looked at (with
    ``"override"`` too, the entry whose word holds for the candidate now)."""
    return next((e for e in reversed(entries) if e.get("event") in events
                 and e.get("run_id") == run_id and e.get("candidate") == candidate), None)


def check_logged(path: Path, data: bytes, event: str, record_id: str, entries: list[dict[str, Any]],
                 log: Path) -> dict[str, Any]:
    """Refuse the bytes ``data`` of the decision or override file ``path`` unless the registry ``log`` logged
    ``record_id`` with their sha256 (an entry from before hashes were logged for overrides is taken by id);
    return the entry."""
    entry = logged_entry(entries, event, record_id)
    if entry is None:
        raise InputError(f"{path}: {event} {record_id} is not in the registry log {log}: no gate logged it; "
                         f"rerun `nift-gate gate`")
    logged = entry.get("record_sha256", sha256_bytes(data) if event == "override" else None)
    if logged != sha256_bytes(data):
        raise InputError(f"{path}: edited after it was logged: its sha256 {sha256_bytes(data)[:12]}... differs "
                         f"from the {str(logged)[:12]}... that {log} entry seq {entry['seq']} holds for {record_id}")
    return entry


def latest_decision(store: RunStore, candidate: str) -> GateDecisionRecord:
    """The candidate's most recent gate decision, as its file says (:func:`logged_decision` also checks that
    the file is the one the registry logged)."""
    return _parse(*_latest_bytes(store, candidate), GateDecisionRecord)


def _latest_bytes(store: RunStore, candidate: str) -> tuple[bytes, Path]:
    path = decision_folder(store, candidate) / RECORD_FILE
    if not path.exists():
        raise InputError(f"{path}: no gate decision for {candidate!r}; run `nift-gate gate` first")
    return path.read_bytes(), path


def logged_decision(store: RunStore, candidate: str, registry: str | Path | None = None,
                    entries: list[dict[str, Any]] | None = None) -> tuple[GateDecisionRecord, list[OverrideRecord]]:
    """The candidate's latest decision and the overrides of it, each refused unless its file holds exactly the
    bytes the registry (``registry``, default ``<home>/registry``) logged for it, and the decision is the one
    the log logged last for the candidate: what is shown, overridden or published is what was decided last.
    ``entries``: the verified log, for a caller that holds the registry lock."""
    log = Registry(registry_folder(store, registry))
    entries = log.verify() if entries is None else entries
    data, path = _latest_bytes(store, candidate)
    decision = _parse(data, path, GateDecisionRecord)
    check_logged(path, data, "decision", decision.record_id, entries, log.log)
    # its copy in decisions/ is what an override names and the history reads: edited, it is refused here too
    archived = decision_folder(store, candidate) / DECISIONS_DIR / f"{decision.record_id}.json"
    if archived.exists():
        check_logged(archived, archived.read_bytes(), "decision", decision.record_id, entries, log.log)
    # An earlier decision's file copied back over record.json holds logged bytes, yet the log decided since.
    latest = latest_decision_entry(entries, store.run_id, candidate)
    if latest is not None and latest.get("record_id") != decision.record_id:
        raise InputError(f"{path}: decision {decision.record_id} is not the latest for {candidate!r}: {log.log} "
                         f"entry seq {latest['seq']} logged {latest.get('record_id')} ({latest.get('decision')}) "
                         f"after it (the file was put back, or was written before this check existed): rerun "
                         f"`nift-gate gate`")
    overrides = []
    for override, file, raw in _override_files(store, decision, entries):
        check_logged(file, raw, "override", override.record_id, entries, log.log)
        overrides.append(override)
    return decision, overrides


def overrides_of(store: RunStore, decision: GateDecisionRecord,
                 registry: str | Path | None = None) -> list[OverrideRecord]:
    """Overrides of one decision in the order the registry (``registry``, default ``<home>/registry``) logged
    them, the one that holds last."""
    entries = Registry(registry_folder(store, registry)).verify()
    return [override for override, _, _ in _override_files(store, decision, entries)]


def _override_files(store: RunStore, decision: GateDecisionRecord, entries: list[dict[str, Any]]
                    ) -> list[tuple[OverrideRecord, Path, bytes]]:
    """Overrides of one decision with their files and the bytes parsed, in the order the log ``entries``
    logged them (files no entry logs last, by name: :func:`logged_decision` refuses them).

    The log's order, never a timestamp or an id: ``created_at`` has a resolution of one second and record ids
    end in random hex, so two overrides in the same second would be ordered by chance, and the earlier could
    hold while the aliases follow the later."""
    folder = decision_folder(store, decision.candidate) / OVERRIDES_DIR
    seqs = {e.get("record_id"): e["seq"] for e in entries if e.get("event") == "override"}
    found = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        data = path.read_bytes()
        override = _parse(data, path, OverrideRecord)
        if override.decision_record_id == decision.record_id:
            found.append((override, path, data))
    present = {override.record_id for override, _, _ in found}
    for entry in _override_entries(entries, store.run_id, decision.candidate):
        if entry.get("decision_record_id") == decision.record_id and entry.get("record_id") not in present:
            # logged, so its alias moves hold, yet no reader would see it: the verdict shown would not be the one
            # the aliases follow
            then = ("`nift-gate gate` writes it back from the log" if "record_text" in entry
                    else "restore it from a backup")
            raise InputError(f"{folder / (str(entry.get('record_id')) + '.json')}: override logged as registry entry "
                             f"seq {entry['seq']}, but its file is missing (an override stopped between its log "
                             f"entry and its file, or the file was deleted): {then}")
    unlogged = len(entries) + 1
    return sorted(found, key=lambda o: seqs.get(o[0].record_id, unlogged))  # stable: unlogged ones stay by name


def _override_entries(entries: list[dict[str, Any]], run_id: str, candidate: str) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("event") == "override" and e.get("run_id") == run_id
            and e.get("candidate") == candidate]


def restore_logged_overrides(store: RunStore, candidate: str, entries: list[dict[str, Any]]) -> list[Path]:
    """Write back each override file of ``candidate`` that the log ``entries`` hold the text of
    (``record_text``, with its sha256) but its folder lacks: an override stopped between its log entry and its
    file. For a caller holding the registry lock; returns the files written."""
    restored = []
    for entry in _override_entries(entries, store.run_id, candidate):
        text = entry.get("record_text")
        path = decision_folder(store, candidate) / OVERRIDES_DIR / f"{entry.get('record_id')}.json"
        if isinstance(text, str) and not path.exists() and sha256_bytes(text.encode()) == entry.get("record_sha256"):
            atomic_write_text(path, text)
            restored.append(path)
    return restored


def decided_evidence(store: RunStore, decision: GateDecisionRecord) -> list[StoredEvidence]:
    """The stored evidence of ``decision``, refused when any of its records changed, appeared or went away
    since it was made: what is shown or published must rest on the evidence that was decided on."""
    evidence = read_evidence(store, evidence_files(store, decision.candidate))
    # which file holds which bytes, not only the bytes: a record moved to another folder is another audit
    if sorted((e.ref.path, e.ref.sha256) for e in evidence) != sorted((r.path, r.sha256) for r in decision.evidence):
        raise InputError(f"{decision_folder(store, decision.candidate) / RECORD_FILE}: the records changed since "
                         f"the gate decided ({decision.record_id}); rerun `nift-gate gate` so what is shown or "
                         f"published rests on the evidence that was decided on")
    return evidence
