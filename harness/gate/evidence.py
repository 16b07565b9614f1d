"""Evidence: the metric values and paired deltas of one run's stored records, with where each came from.

Only stored records are read, each generically (``harness.core.records.StoredRecord``): the candidate's
bench record, every audit's record and the review's. A record brings its metric specs, so the gate judges
a newly registered audit without knowing its stage, and takes every direction from what the record
declares. Records of another run, or of another candidate model, are refused: a decision must rest on
one run's evidence about one model. That model is found from this run, never from where a record says it lies: a
``train:<name>`` candidate is this run's checkpoint ``<run>/train/<name>/`` (its merged weights), and every record
that names the candidate must name that folder (records copied from another run name the other run's); a run that
trained its own checkpoint of the candidate's name is judged on it, and another run's checkpoint in its own run.
And that model must still be the one on disk: its files are hashed again, every byte, whenever evidence is
collected, and refused when they are not the weights the records measured (a checkpoint overwritten after the
bench ran).

Nothing a record stores is taken on trust. Where a record sits says what it may report: the bench record only
``bench.*`` metrics, ``audit/<name>/`` only ``<name>.*``, the review record only ``review.*`` (a note in another
folder cannot speak for the reviewers). Every record but the review's names the candidate, with the hash of its
weights, in its ``models``. Every stored value and delta must be a finite number inside its own CI (and a rate
inside 0..1), and a record whose stage class can recompute its values from its own fields (bench, a registered
audit, review) must store exactly what they give: an edited ``values`` list is refused, not judged. Each
direction must be the one its stage states in code, lm-eval's where lm-eval knows it
(:mod:`harness.gate.directions`), and the same everywhere the record states it. A record made by an older version
of its stage (a registered audit's ``version``, the bench's) is refused: rerun the stage.

Whoever can write the runs home can still edit a record so that it agrees with itself; a signature tells such an
edit apart (:mod:`harness.core.signing`). With the key in ``NIFT_RECORD_KEY`` every signature beside a record is
checked against the very bytes read here, first, and a record it does not vouch for is refused; with
``gate.require_signed_evidence`` a record without one is refused too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError, InputError, NiftError
from harness.core.metrics import MetricDelta, MetricSpec, MetricValue
from harness.core.models import CHECKPOINT_PREFIX, PICKLE_SUFFIXES, changed_model_files
from harness.core.records import Record, StoredRecord
from harness.core.signing import KEY_VARIABLE, record_key, signature_problem
from harness.core.store import RECORD_FILE, RunStore, read_record
from harness.gate.directions import check_bench_directions
from harness.gate.record import (
    GateDecisionRecord,
    StoredEvidence,
    decided_evidence,
    evidence_files,
    read_evidence,
)
from harness.review.record import ReviewRecord
from harness.train.record import CheckpointRecord

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
    #: The candidate's model file or folder as this run has it (:func:`_this_runs_candidate`): what is hashed.
    location: Path | None = None

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


def _family(item: StoredEvidence) -> str:
    """The one metric family (name prefix, without its dot) the record's place gives it: ``bench`` for
    ``bench/<candidate>/``, ``review`` for ``review/``, ``<name>`` for ``audit/<name>/``."""
    return item.audit or Path(item.ref.path).parts[0]


def _check_place(item: StoredEvidence) -> None:
    """The record is the kind its folder holds, and reports only its own family's metrics: no record speaks for
    another stage (an audit declaring ``review.approval_rate`` would stand in for the reviewers)."""
    record = item.record
    family = _family(item)
    if item.audit is None and record.kind != family:
        raise InputError(f"{item.path}: record {record.record_id} is a {record.kind!r} record where the {family} "
                         f"record belongs")
    if item.audit is not None and record.kind in ("bench", "review"):
        raise InputError(f"{item.path}: a {record.kind!r} record under audit/{item.audit}/; the run's {record.kind} "
                         f"record is read from its own folder only")
    names = ({spec.name for spec in record.metrics} | {v.metric for v in record.values}
             | {d.metric for d in record.deltas})
    outside = sorted(name for name in names if not name.startswith(family + "."))
    if outside:
        raise InputError(f"{item.path}: record {record.record_id} declares {', '.join(outside)}, outside its own "
                         f"family {family}.*; a record reports only its stage's metrics (bench.* the bench record, "
                         f"review.* the review record, <name>.* the record under audit/<name>/)")


def _current_version(item: StoredEvidence) -> tuple[str, str] | None:
    """(the stage, its version now) of the code that makes the record in the item's place; None where none is known:
    an unregistered audit, and the review (whose summary version the review rules judge)."""
    family = _family(item)
    if family == "review":
        return None
    if family == "bench":
        from harness.bench.record import VERSION

        return "bench", VERSION
    from audits.registry import get_audit

    audit = get_audit(family)
    return (f"{family} audit", audit.version) if audit is not None else None


def _check_version(item: StoredEvidence) -> None:
    """The record was made by the current version of its stage: a version is bumped when prompts or scoring
    change (the bias audit's |s| interval was [0, 0] before version 3), so an older record's numbers are not the
    ones the stage gives now."""
    current = _current_version(item)
    if current is None:
        return
    stage, version = current
    stored = (item.record.model_extra or {}).get("version")
    if stored != version:
        made = (f"version {stored!r} of the {stage}" if stored not in (None, "")
                else f"a {stage} that recorded no version")
        raise InputError(f"{item.path}: record {item.record.record_id} was made by {made}, not by the current version "
                         f"{version!r}, whose prompts or scoring differ; rerun the stage "
                         f"(`nift-gate {'bench' if stage == 'bench' else 'audit'}`) and gate again")


def _check_names_candidate(item: StoredEvidence, candidate: str) -> None:
    """Every record but the review's (which names the candidate in its ``candidate`` field) lists the candidate
    in its ``models`` with the hash of the weights it measured; without it no weights check could apply."""
    if _family(item) == "review":
        return
    record = item.record
    listed = any(m.get("name") == candidate and m.get("role") == "candidate" and isinstance(m.get("model"), dict)
                 and m["model"].get("sha256") for m in _models(record))
    if not listed:
        raise InputError(f"{item.path}: record {record.record_id} lists no candidate model {candidate!r} with the "
                         f"sha256 of its weights in `models`; the gate judges only records that say which weights "
                         f"they measured")


#: Slack, relative to the numbers compared (at least absolute), for a stored number against the bound it must
#: respect or the number the record's own fields give: JSON keeps a float exactly, so more than rounding is an edit.
TOLERANCE = 1e-9


def _slack(*numbers: float) -> float:
    return TOLERANCE * max(1.0, *(abs(x) for x in numbers))


def _not_finite(numbers: dict[str, float | None]) -> str | None:
    bad = [f"{name} {x}" for name, x in numbers.items() if x is not None and not math.isfinite(x)]
    return f"{', '.join(bad)}: not a finite number" if bad else None


def _interval_problem(x: float, low: float | None, high: float | None, what: str) -> str | None:
    """Why the CI [low, high] is no CI of ``x`` (named ``what``), or None."""
    if low is not None and high is not None and low > high + _slack(low, high):
        return f"ci_low {low} > ci_high {high}"
    if low is not None and low > x + _slack(low, x):
        return f"ci_low {low} > {what} {x}: the CI does not contain the {what}"
    if high is not None and high < x - _slack(high, x):
        return f"ci_high {high} < {what} {x}: the CI does not contain the {what}"
    return None


def _value_problem(value: MetricValue, spec: MetricSpec) -> str | None:
    problem = _not_finite({"value": value.value, "ci_low": value.ci_low, "ci_high": value.ci_high})
    if problem is None and value.n < 0:
        problem = f"n {value.n} is negative"
    problem = problem or _interval_problem(value.value, value.ci_low, value.ci_high, "value")
    low, high = spec.value_range
    if problem is None and not low - _slack(low) <= value.value <= high + _slack(high):
        problem = f"value {value.value} is outside {low:g}..{high:g}, the range of a {spec.unit}"
    return problem


def _delta_problem(delta: MetricDelta, spec: MetricSpec) -> str | None:
    problem = _not_finite({"difference": delta.difference, "ci_low": delta.ci_low, "ci_high": delta.ci_high,
                           "confidence": delta.confidence})
    if problem is None and not 0 < delta.confidence < 1:
        problem = f"confidence {delta.confidence} is not a level in (0, 1)"
    if problem is None and delta.n < 0:
        problem = f"n {delta.n} is negative"
    problem = problem or _interval_problem(delta.difference, delta.ci_low, delta.ci_high, "difference")
    low, high = spec.value_range
    if problem is None and abs(delta.difference) > (high - low) + _slack(high - low):
        problem = (f"difference {delta.difference} is outside {low - high:g}..{high - low:g}, the range of a "
                   f"difference of two {spec.unit}s")
    return problem


def _value_label(value: MetricValue) -> str:
    return f"{value.metric}{f' [{value.attribute}]' if value.attribute else ''} of {value.model}"


def _delta_label(delta: MetricDelta) -> str:
    return (f"{delta.metric}{f' [{delta.attribute}]' if delta.attribute else ''} of {delta.candidate} - "
            f"{delta.baseline}")


def _check_numbers(item: StoredEvidence, specs: dict[str, MetricSpec]) -> None:
    """Every stored value and delta is a number a stage could have written: finite, inside its own CI, a rate
    inside 0..1 (a delta of rates inside -1..1)."""
    checks = [(_value_label(v), _value_problem(v, specs[v.metric])) for v in item.record.values]
    checks += [(_delta_label(d), _delta_problem(d, specs[d.metric])) for d in item.record.deltas]
    for label, problem in checks:
        if problem:
            raise InputError(f"{item.path}: record {item.record.record_id}: {label}: {problem}; no stage writes "
                             f"this: the record was edited or is corrupt, rerun the stage")


def _stage_type(item: StoredEvidence) -> type[Record] | None:
    """The stage's record class for the record's place, where one is known: bench, review, or the audit
    registered under the folder's name (an unregistered audit is judged as stored)."""
    family = _family(item)
    if family == "bench":
        from harness.bench.record import BenchRecord

        return BenchRecord
    if family == "review":
        return ReviewRecord
    from audits.registry import audit_records

    return audit_records().get(family)


def _same(stored: dict[str, Any], computed: dict[str, Any]) -> bool:
    def close(a: Any, b: Any) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
        return a == b

    return stored.keys() == computed.keys() and all(close(stored[k], computed[k]) for k in stored)


def _key(item: MetricValue | MetricDelta) -> tuple:
    """What one stored value or delta is of: metric, model (or candidate and baseline), attribute."""
    if isinstance(item, MetricDelta):
        return item.metric, item.candidate, item.baseline, item.attribute
    return item.metric, item.model, None, item.attribute


def _shown(item: MetricValue | MetricDelta) -> str:
    number = item.difference if isinstance(item, MetricDelta) else item.value
    return f"{number}" + ("" if item.ci_low is None and item.ci_high is None else f" [{item.ci_low}, {item.ci_high}]")


def _compare(item: StoredEvidence, what: str, stored: list, computed: list, label) -> None:
    """Refuse the stored ``what`` (values or deltas) unless they are ``computed``, item for item in any order."""
    mine: dict[tuple, list] = {}
    theirs: dict[tuple, list] = {}
    for found, items in ((mine, stored), (theirs, computed)):
        for x in items:
            found.setdefault(_key(x), []).append(x)
    for key in sorted(mine.keys() | theirs.keys(), key=str):
        got, want = mine.get(key, []), theirs.get(key, [])
        if len(got) == len(want) and all(_same(a.model_dump(), b.model_dump()) for a, b in zip(got, want, strict=True)):
            continue
        if not want:
            why = f"stored as {_shown(got[0])}, which the record's own fields do not give"
        elif not got:
            why = f"missing, though the record's own fields give {_shown(want[0])}"
        else:
            pair = next(((a, b) for a, b in zip(got, want, strict=False) if not _same(a.model_dump(), b.model_dump())),
                        (got[0], want[0]))
            why = f"stored as {_shown(pair[0])}, but the record's own fields give {_shown(pair[1])}"
            if len(got) != len(want):
                why = f"stored {len(got)} times, but the record's own fields give it {len(want)} times"
        raise InputError(f"{item.path}: record {item.record.record_id}: {label((got or want)[0])} in `{what}` is "
                         f"{why}; the stored {what} were edited: rerun the stage")


def _check_recomputed(item: StoredEvidence) -> None:
    """A record whose stage class recomputes its values (and deltas) from its own fields stores exactly those,
    and declares its metrics in the directions and units the class does: the gate judges the stored lists, so
    an edit to them alone would decide."""
    cls = _stage_type(item)
    if cls is None:
        return
    typed = item.typed(cls)
    if _family(item) == "bench":  # its lm-eval directions are fields of the record: checked against lm-eval's
        check_bench_directions(item.path, typed)
    declared = {s.name: (s.higher_is_better, s.unit) for s in typed.declared_metrics()}
    stored = {s.name: (s.higher_is_better, s.unit) for s in item.record.metrics}
    changed = sorted(name for name in stored.keys() | declared.keys() if stored.get(name) != declared.get(name))
    if changed:
        raise InputError(f"{item.path}: record {item.record.record_id}: its `metrics` declare "
                         f"{', '.join(changed)} otherwise than a {cls.__name__} does (direction, unit, or whether "
                         f"it is reported); the record was edited: rerun the stage")
    if type(typed).compute_values is not Record.compute_values:
        _compare(item, "values", item.record.values, typed.compute_values(), _value_label)
    if type(typed).compute_deltas is not Record.compute_deltas:
        _compare(item, "deltas", item.record.deltas, typed.compute_deltas(), _delta_label)


def _add(evidence: Evidence, item: StoredEvidence) -> None:
    record = item.record
    if record.kind in evidence.records:
        other = next(e for e in evidence.stored if e.record.kind == record.kind)
        raise InputError(f"{item.path}: a second {record.kind!r} record beside {other.path}; one run holds one "
                         f"record of each kind")
    declared = _declared(item)
    _check_numbers(item, declared)
    _check_recomputed(item)
    for name, spec in declared.items():
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


def _check_review_counts_this_evidence(evidence: Evidence) -> None:
    """The review's labels judged outputs of this evidence: every record the review counted items from is one
    of the gate's evidence records, and the weights it names are the bench record's. A review summarised
    against earlier records (a rerun bench, other weights) would lend its approval to outputs nobody labelled."""
    review = evidence.review
    if review is None:
        return
    item = next(e for e in evidence.stored if e.record.kind == "review")
    expected = _model_shas(evidence.records["bench"]).get(evidence.candidate)
    if review.candidate_model_sha256 and expected and review.candidate_model_sha256 != expected:
        raise InputError(f"{item.path}: the review counted labels on outputs of weights "
                         f"{review.candidate_model_sha256[:12]}..., but the bench record measured {expected[:12]}...; "
                         f"rebuild it with `nift-gate review summary`")
    known = {e.record.record_id for e in evidence.stored}
    if unknown := sorted(set(review.source_record_ids) - known):
        raise InputError(f"{item.path}: the review counted items of record(s) {', '.join(unknown)}, which are not "
                         f"among this gate's evidence; rebuild it with `nift-gate review summary`")


#: The folders of a checkpoint the train stage writes weights to (``CheckpointRecord.merged_dir``, ``model_dir``),
#: the merged one first: where a checkpoint without a finished record may hold the candidate.
CHECKPOINT_DIRS = ("merged", "model")
WEIGHT_SUFFIXES = (".safetensors", ".gguf", *PICKLE_SUFFIXES)


def _located(model: dict[str, Any]) -> Path:
    """The file (a GGUF) or folder a resolved model entry names."""
    path = Path(str(model.get("path") or ""))
    return path / str(model["gguf_file"]) if model.get("gguf_file") else path


def _this_runs_candidate(store: RunStore, evidence: Evidence, bench: StoredEvidence) -> Path:
    """The file or folder of the model gated as the candidate in this run, found from the run and the spec, not
    from the path a record gives: a ``train:<name>`` spec is this run's ``train/<name>/`` (the folder its
    checkpoint record loads, else its merged weights, as ``harness.train.record.resolve_base``); a run that
    trained its own checkpoint of the candidate's name (weights under ``train/<name>/``) is judged on that
    checkpoint only; a local folder or GGUF file is the spec's path, never another run's checkpoint; a hub or
    embedded model is the cache folder the records name (its hash pins it)."""
    named = evidence.candidate_model()
    spec = str(named.get("spec") or "")
    where = f"{bench.path}: record {bench.record.record_id}"
    location = _located(named)
    if spec.startswith(CHECKPOINT_PREFIX):
        folder = store.stage_dir("train", spec[len(CHECKPOINT_PREFIX):])
        if (folder / RECORD_FILE).exists():
            return folder / read_record(folder, CheckpointRecord).eval_dir
        # no finished record (a checkpoint made by hand): one of the folders training writes weights to
        inside = [folder / sub for sub in CHECKPOINT_DIRS if _same_place(folder / sub, location)]
        return inside[0] if inside else folder / CHECKPOINT_DIRS[0]
    own = store.stage_dir("train", evidence.candidate)
    if _holds_checkpoint(own) and not location.resolve().is_relative_to(own.resolve()):
        raise InputError(f"{where} measured {spec!r} as candidate {evidence.candidate!r}, but this run trained its "
                         f"own {evidence.candidate!r} ({own}); the gate judges the run's own checkpoint: bench and "
                         f"audit it as {CHECKPOINT_PREFIX}{evidence.candidate}")
    trained = _trained_in(store, location)
    if trained is not None and trained != store.run_id:
        raise InputError(f"{where} measured {location}, a checkpoint of run {trained!r}, as the candidate of run "
                         f"{store.run_id!r}; gate a checkpoint in the run that trained it (`--run {trained}`)")
    if named.get("source") in ("local", "gguf") and not _same_place(Path(spec).expanduser(), location):
        raise InputError(f"{where} names {location} as the candidate's files, but its spec {spec!r} names "
                         f"another place; the record was edited: rerun bench")
    return location


def _holds_checkpoint(folder: Path) -> bool:
    """``folder`` (``<run>/train/<name>``) holds weights this run trained (a model card alone, or a record whose
    weights are gone, is no model to promote)."""
    return folder.is_dir() and any(p.suffix in WEIGHT_SUFFIXES for p in folder.rglob("*") if p.is_file())


def _trained_in(store: RunStore, location: Path) -> str | None:
    """The run whose ``train/`` folder holds ``location``, if any."""
    try:
        parts = location.resolve().relative_to(store.home.resolve()).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 2 and parts[1] == "train" else None


def _same_place(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _check_this_runs_candidate(store: RunStore, evidence: Evidence) -> None:
    """Every record that names the candidate names its files where this run has them
    (:func:`_this_runs_candidate`): records copied from another run, with only their ``run_id`` changed, name
    the other run's checkpoint, and the weights check would otherwise hash that one. With
    :func:`_check_same_candidate_model` and the weights check, every record measured this run's candidate."""
    bench = next(e for e in evidence.stored if e.record.kind == "bench")
    location = _this_runs_candidate(store, evidence, bench)
    for item in evidence.stored:
        for model in _models(item.record):
            named = model.get("model")
            if model.get("name") != evidence.candidate or not isinstance(named, dict):
                continue
            if not _same_place(_located(named), location):
                raise InputError(f"{item.path}: record {item.record.record_id} measured the candidate "
                                 f"{evidence.candidate!r} at {_located(named)}, but this run's candidate "
                                 f"({named.get('spec')}) is {location}; records copied from another run (or made "
                                 f"for another model) are not evidence here: rerun the stage in this run")
    evidence.location = location


def _check_weights_unchanged(evidence: Evidence) -> None:
    """The candidate's model files on disk now (weights, config, tokenizer, chat template), where this run has
    them (:attr:`Evidence.location`), hashed without the hash cache, are the ones the bench record (and so, by
    :func:`_check_same_candidate_model`, every audit) names. A hub model's are the files of its snapshot folder
    in the Hugging Face cache."""
    bench = next(e for e in evidence.stored if e.record.kind == "bench")
    named = evidence.candidate_model()
    if evidence.location is not None:  # the files this run has, not those the record points at
        location = evidence.location
        named.update({"path": str(location.parent), "gguf_file": location.name} if named.get("gguf_file")
                     else {"path": str(location)})
    try:
        changed = changed_model_files(named)
    except (NiftError, ValueError, OSError) as exc:
        raise InputError(f"{bench.path}: cannot check the candidate's weights against the records: {exc}; the "
                         f"gate decides only on weights it can hash") from None
    if changed is not None:
        resolved, now = changed
        raise InputError(f"{resolved.path}: the candidate's model files (weights, config, tokenizer, chat template) "
                         f"changed after they were measured: they hash to {now[:12]}..., the bench record "
                         f"{bench.record.record_id} measured {resolved.sha256[:12]}...; rerun bench and the audits on "
                         f"this model (or restore the measured files)")


def _check_signed(stored: list[StoredEvidence], required: bool) -> None:
    """Every record's signature vouches for the bytes read (:attr:`StoredEvidence.data`), under the key in
    ``NIFT_RECORD_KEY``: first, so that an edited record is refused as edited, whatever else it got wrong. An
    unsigned record passes unless signatures are ``required``; without a key nothing can be checked, which
    ``required`` refuses."""
    key = record_key()
    if key is None:
        if required:
            raise ConfigError(f"gate.require_signed_evidence is set, but {KEY_VARIABLE} holds no key: the gate "
                              f"cannot check the records' signatures; set it (the CI secret the stages signed with)")
        return
    for item in stored:
        if problem := signature_problem(item.data, item.path.parent, key, required=required):
            raise InputError(f"{item.path}: record {item.record.record_id} {problem}; the gate judges only records "
                             f"a stage signed with the current key: rerun the stage with {KEY_VARIABLE} set")


def _evidence(store: RunStore, candidate: str, stored: list[StoredEvidence], require_signed: bool) -> Evidence:
    _check_signed(stored, require_signed)
    evidence = Evidence(run_id=store.run_id, candidate=candidate)
    for item in stored:
        _check_belongs(item, store, candidate)
        _check_place(item)
        _check_version(item)
        _check_names_candidate(item, candidate)
        _add(evidence, item)
    _check_same_candidate_model(evidence)
    _check_this_runs_candidate(store, evidence)
    _check_review_counts_this_evidence(evidence)
    _check_weights_unchanged(evidence)
    return evidence


def collect_evidence(store: RunStore, candidate: str, *, require_signed: bool = False) -> Evidence:
    """Load every stored record the gate can use for ``candidate`` in ``store``'s run. ``require_signed``
    (``gate.require_signed_evidence``): refuse a record without a valid signature (:func:`_check_signed`)."""
    return _evidence(store, candidate, read_evidence(store, evidence_files(store, candidate)), require_signed)


def evidence_of(store: RunStore, decision: GateDecisionRecord, *, require_signed: bool = False) -> Evidence:
    """The evidence ``decision`` was made on, refused when any of its records changed since."""
    return _evidence(store, decision.candidate, decided_evidence(store, decision), require_signed)
