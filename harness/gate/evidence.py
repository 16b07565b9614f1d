"""Evidence: the metric values and paired deltas of one run's stored records, with where each came from.

Only stored records are read (bench, the audits, review). Records of another run, or of another candidate
model, are refused: a decision must rest on one run's evidence about one model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from harness.core.errors import InputError
from harness.core.metrics import MetricDelta, MetricValue
from harness.core.records import Record, sha256_bytes
from harness.core.store import RECORD_FILE, RunStore, read_record
from harness.gate.record import EvidenceRef

#: (stage folder under the run, record class as "module:Class", whether a run must have it)
SOURCES = (
    ("bench/{candidate}", "harness.bench.bench:BenchRecord", True),
    ("audit/toxicity", "audits.toxicity.audit:ToxicityAuditRecord", False),
    ("audit/hallucination", "audits.hallucination.audit:HallucinationAuditRecord", False),
    ("review", "harness.review.record:ReviewRecord", False),
)


def _record_class(dotted: str) -> type[Record] | None:
    module, _, name = dotted.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


@dataclass
class Evidence:
    """Everything the gate may judge, each value tagged with the id of the record it came from."""

    run_id: str
    candidate: str
    records: dict[str, Record] = field(default_factory=dict)  # kind -> record
    refs: list[EvidenceRef] = field(default_factory=list)
    values: list[tuple[MetricValue, str]] = field(default_factory=list)
    deltas: list[tuple[MetricDelta, str]] = field(default_factory=list)

    @property
    def review(self):
        return self.records.get("review")

    def available(self) -> list[str]:
        """Metric names any record has, with their attributes, for error messages."""
        names = {v.metric + (f" [{v.attribute}]" if v.attribute and not v.metric.startswith("review.") else "")
                 for v, _ in self.values}
        return sorted(names | {d.metric for d, _ in self.deltas})

    def candidate_model(self) -> dict:
        bench = self.records.get("bench")
        for model in getattr(bench, "models", []):
            if model.role == "candidate":
                return model.model.model_dump()
        return {}


def _model_shas(record: Record) -> dict[str, str]:
    """Model name -> weights hash, for records that list their models (bench, audits)."""
    return {m.name: m.model.sha256 for m in getattr(record, "models", []) or []
            if getattr(getattr(m, "model", None), "sha256", None)}


def collect_evidence(store: RunStore, candidate: str) -> Evidence:
    """Load every stored record the gate can use for ``candidate`` in ``store``'s run."""
    evidence = Evidence(run_id=store.run_id, candidate=candidate)
    for folder, dotted, required in SOURCES:
        path = store.root / folder.format(candidate=candidate) / RECORD_FILE
        if not path.exists():
            if required:
                raise InputError(f"{path}: no bench record for candidate {candidate!r}; run `nift-gate bench` first "
                                 f"(or set gate.candidate)")
            continue
        cls = _record_class(dotted)
        if cls is None:
            raise InputError(f"{path}: a record is stored here but {dotted} cannot be imported to read it")
        data = path.read_bytes()
        record = read_record(path, cls)
        if record.run_id != store.run_id:
            raise InputError(f"{path}: record {record.record_id} belongs to run {record.run_id!r}, not "
                             f"{store.run_id!r}; a decision may not mix records of different runs")
        named = getattr(record, "candidate", None)
        if named is not None and named != candidate:
            raise InputError(f"{path}: record {record.record_id} is about candidate {named!r}, not {candidate!r}")
        evidence.records[record.kind] = record
        evidence.refs.append(EvidenceRef(kind=record.kind, record_id=record.record_id,
                                         path=str(path.relative_to(store.root)), sha256=sha256_bytes(data),
                                         created_at=record.created_at))
        evidence.values += [(v, record.record_id) for v in record.metric_values()]
        if hasattr(record, "metric_deltas"):
            evidence.deltas += [(d, record.record_id) for d in record.metric_deltas()]
    _check_same_candidate_model(evidence, store)
    return evidence


def _check_same_candidate_model(evidence: Evidence, store: RunStore) -> None:
    """The audits must have scored the very weights the benchmarks scored."""
    bench = evidence.records["bench"]
    expected = _model_shas(bench).get(evidence.candidate)
    for kind, record in evidence.records.items():
        got = _model_shas(record).get(evidence.candidate)
        if expected and got and got != expected:
            ref = next(r for r in evidence.refs if r.kind == kind)
            raise InputError(f"{Path(store.root) / ref.path}: record {record.record_id} audited {evidence.candidate} "
                             f"with weights {got[:12]}..., but the bench record {bench.record_id} has "
                             f"{expected[:12]}...; rerun the stage for the current checkpoint")
