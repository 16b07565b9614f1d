"""Evidence: the metric values and paired deltas of one run's stored records, with where each came from.

Only stored records are read, each generically (``harness.core.records.StoredRecord``): the candidate's
bench record, every audit's record and the review's. A record brings its metric specs, so the gate judges
a newly registered audit without knowing its stage, and takes every direction from what the record
declares. Records of another run, or of another candidate model, are refused: a decision must rest on
one run's evidence about one model. And that model must still be the one on disk: the candidate's weights are
hashed again, every byte, whenever evidence is collected, and refused when they are not the weights the
records measured (a checkpoint overwritten after the bench ran).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import InputError, NiftError
from harness.core.metrics import MetricDelta, MetricSpec, MetricValue
from harness.core.models import ResolvedModel, current_model_sha256
from harness.core.records import StoredRecord
from harness.core.store import RunStore
from harness.gate.record import (
    GateDecisionRecord,
    StoredEvidence,
    decided_evidence,
    evidence_files,
    read_evidence,
)
from harness.review.record import ReviewRecord

#: Metrics of the review record: absent until humans have labelled, which makes a rule on them pending.
REVIEW_PREFIX = "review."


@dataclass
class Evidence:
    """Everything the gate may judge, each value tagged with the id of the record it came from."""

    run_id: str
    candidate: str
    stored: list[StoredEvidence] = field(default_factory=list)
    records: dict[str, StoredRecord] = field(default_factory=dict)  # kind -> record
    specs: dict[str, MetricSpec] = field(default_factory=dict)  # metric name -> the spec its record declares
    values: list[tuple[MetricValue, str]] = field(default_factory=list)
    deltas: list[tuple[MetricDelta, str]] = field(default_factory=list)
    review: ReviewRecord | None = None

    @property
    def refs(self):
        return [e.ref for e in self.stored]

    def spec(self, metric: str) -> MetricSpec | None:
        """The metric's spec as the record that reported it declares it (its direction, unit)."""
        return self.specs.get(metric)

    def available(self) -> list[str]:
        """Metric names any record has, with their attributes, for error messages."""
        names = {v.metric + (f" [{v.attribute}]" if v.attribute and not v.metric.startswith(REVIEW_PREFIX) else "")
                 for v, _ in self.values}
        return sorted(names | {d.metric for d, _ in self.deltas})

    def candidate_model(self) -> dict[str, Any]:
        """The candidate's resolved model (spec, path, sha256) as the bench record lists it."""
        for model in _models(self.records.get("bench")):
            if model.get("role") == "candidate":
                return dict(model.get("model") or {})
        return {}


def _models(record: StoredRecord | None) -> list[dict[str, Any]]:
    """The ``models`` list of a record that has one (bench, audits): name, role and resolved model each."""
    models = (record.model_extra or {}).get("models") if record is not None else None
    return [m for m in models or [] if isinstance(m, dict)]


def _model_shas(record: StoredRecord) -> dict[str, str]:
    """Model name -> weights hash, for records that list their models."""
    return {m["name"]: m["model"]["sha256"] for m in _models(record)
            if m.get("name") and isinstance(m.get("model"), dict) and m["model"].get("sha256")}


def _declared(item: StoredEvidence) -> dict[str, MetricSpec]:
    """The record's metric specs; a value or delta of a metric it does not declare has no direction to judge by."""
    specs = {spec.name: spec for spec in item.record.metrics}
    reported = {v.metric for v in item.record.values} | {d.metric for d in item.record.deltas}
    undeclared = sorted(reported - set(specs))
    if undeclared:
        raise InputError(f"{item.path}: record {item.record.record_id} reports {', '.join(undeclared)} but does "
                         f"not declare {'it' if len(undeclared) == 1 else 'them'} in its metrics (with a direction); "
                         f"declared: {', '.join(sorted(specs)) or 'none'}")
    return specs


def _check_belongs(item: StoredEvidence, store: RunStore, candidate: str) -> None:
    record = item.record
    if record.run_id != store.run_id:
        raise InputError(f"{item.path}: record {record.record_id} belongs to run {record.run_id!r}, not "
                         f"{store.run_id!r}; a decision may not mix records of different runs")
    named = (record.model_extra or {}).get("candidate")
    if named is not None and named != candidate:
        raise InputError(f"{item.path}: record {record.record_id} is about candidate {named!r}, not {candidate!r}")


def _add(evidence: Evidence, item: StoredEvidence) -> None:
    record = item.record
    if record.kind in evidence.records:
        other = next(e for e in evidence.stored if e.record.kind == record.kind)
        raise InputError(f"{item.path}: a second {record.kind!r} record beside {other.path}; one run holds one "
                         f"record of each kind")
    for name, spec in _declared(item).items():
        known = evidence.specs.get(name)
        if known is not None and known.higher_is_better != spec.higher_is_better:
            raise InputError(f"{item.path}: declares {name} {'higher' if spec.higher_is_better else 'lower'}-is-"
                             f"better, but another record of this run declares the opposite")
        evidence.specs.setdefault(name, spec)
    evidence.stored.append(item)
    evidence.records[record.kind] = record
    evidence.values += [(v, record.record_id) for v in record.metric_values()]
    evidence.deltas += [(d, record.record_id) for d in record.metric_deltas()]
    if record.kind == "review":
        evidence.review = item.typed(ReviewRecord)


#: Input kinds that pin a model's weights in a record's fingerprint (``harness.train.record.resolve_base``).
MODEL_INPUTS = ("checkpoint", "model")


def _check_same_candidate_model(evidence: Evidence) -> None:
    """The audits must have scored the very weights the benchmarks scored, and each record's fingerprint must
    cover the weights it says it measured (a record whose model list was edited names weights its inputs do not)."""
    bench = evidence.records["bench"]
    expected = _model_shas(bench).get(evidence.candidate)
    for item in evidence.stored:
        got = _model_shas(item.record).get(evidence.candidate)
        if expected and got and got != expected:
            raise InputError(f"{item.path}: record {item.record.record_id} audited {evidence.candidate} with weights "
                             f"{got[:12]}..., but the bench record {bench.record_id} has {expected[:12]}...; rerun "
                             f"the stage for the current checkpoint")
        pinned = {i.sha256 for i in item.record.inputs if i.kind in MODEL_INPUTS}
        if got and pinned and got not in pinned:
            raise InputError(f"{item.path}: record {item.record.record_id} names weights {got[:12]}... for "
                             f"{evidence.candidate}, but its inputs (and so its fingerprint) pin no such model; the "
                             f"record was edited: rerun the stage")


def _check_weights_unchanged(evidence: Evidence) -> None:
    """The candidate's model files on disk now (weights, config, tokenizer, chat template), hashed without the
    hash cache, are the ones the bench record (and so, by :func:`_check_same_candidate_model`, every audit)
    names. A hub model has no local bytes to hash."""
    named = evidence.candidate_model()
    if not named.get("sha256"):
        return
    bench = next(e for e in evidence.stored if e.record.kind == "bench")
    try:
        resolved = ResolvedModel.model_validate(named)
        now = current_model_sha256(resolved)
    except (NiftError, ValueError, OSError) as exc:
        raise InputError(f"{bench.path}: cannot check the candidate's weights against the records: {exc}; the "
                         f"gate decides only on weights it can hash") from None
    if now is not None and now != resolved.sha256:
        raise InputError(f"{resolved.path}: the candidate's model files (weights, config, tokenizer, chat template) "
                         f"changed after they were measured: they hash to {now[:12]}..., the bench record "
                         f"{bench.record.record_id} measured {resolved.sha256[:12]}...; rerun bench and the audits on "
                         f"this model (or restore the measured files)")


def _evidence(store: RunStore, candidate: str, stored: list[StoredEvidence]) -> Evidence:
    evidence = Evidence(run_id=store.run_id, candidate=candidate)
    for item in stored:
        _check_belongs(item, store, candidate)
        _add(evidence, item)
    _check_same_candidate_model(evidence)
    _check_weights_unchanged(evidence)
    return evidence


def collect_evidence(store: RunStore, candidate: str) -> Evidence:
    """Load every stored record the gate can use for ``candidate`` in ``store``'s run."""
    return _evidence(store, candidate, read_evidence(store, evidence_files(store, candidate)))


def evidence_of(store: RunStore, decision: GateDecisionRecord) -> Evidence:
    """The evidence ``decision`` was made on, refused when any of its records changed since."""
    return _evidence(store, decision.candidate, decided_evidence(store, decision))
