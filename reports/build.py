"""`nift-gate report`: the executive report, built only from stored records.

One self-contained HTML file (inline CSS, charts as inline SVG, no script, nothing fetched) and a Markdown
twin, both under ``<run>/report/``. Everything a model wrote is escaped: Jinja2 autoescapes the HTML, and
the Markdown filter escapes HTML and Markdown control characters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from harness.bench.record import BenchRecord, bench_candidates, read_bench
from harness.core.errors import InputError, NiftError
from harness.core.log import get_logger
from harness.core.metrics import MetricDelta, MetricSpec, MetricValue
from harness.core.models import changed_model_files
from harness.core.records import StoredRecord
from harness.core.samples import audit_samples
from harness.core.store import (
    RunStore,
    atomic_write_text,
    read_record,
)
from harness.core.text import markdown_code, markdown_escape, show_format_characters
from harness.data.record import NiftDatasetRecord
from harness.gate.record import (
    GateDecisionRecord,
    OverrideRecord,
    RuleOutcome,
    StoredEvidence,
    decided_evidence,
    logged_decision,
)
from harness.review.record import ReviewRecord
from harness.train.record import CheckpointRecord
from reports import charts, summary
from reports.config import ReportConfig
from reports.sections import BuiltSection, SectionError, build_sections

TEMPLATES = Path(__file__).parent / "templates"
log = get_logger("report")


@dataclass
class Report:
    """Everything the templates show; built from records, rendered twice (HTML, Markdown)."""

    title: str
    run_id: str
    candidate: str
    verdict: str
    headline: str
    decision: GateDecisionRecord
    overrides: list[OverrideRecord]
    comparisons: list[dict[str, Any]]
    values: list[dict[str, Any]]
    sections: list[dict[str, Any]]
    data_cards: list[dict[str, Any]]
    cost: dict[str, Any] | None
    identities: list[dict[str, Any]]
    fingerprints: list[dict[str, Any]]
    ablation: list[dict[str, Any]]
    ablation_note: str
    review: dict[str, Any] | None
    quoted: list[dict[str, Any]]
    pairwise: list[dict[str, Any]] = field(default_factory=list)
    charts: dict[str, str] = field(default_factory=dict)
    # the summary and scorecard (ORDER 10, 20) and every section of reports/sections that had something to show
    extra_sections: list[BuiltSection] = field(default_factory=list)

    def sections_between(self, low: int | None, high: int | None) -> list[BuiltSection]:
        """The sections placed between two built-in parts (reports.sections.DETAIL_ORDER): ``low <= ORDER < high``,
        in ORDER; ``None`` is open-ended."""
        return [s for s in self.extra_sections
                if (low is None or low <= s.order) and (high is None or s.order < high)]

    @property
    def block_checks(self) -> dict[str, Any]:
        """How many block checks the verdict needed to pass, and the alphas they state (see _block_checks)."""
        return _block_checks(self.decision)


@dataclass
class DecidedEvidence:
    """The records a decision rests on, read generically, with the bench and review records also typed."""

    candidate: str
    stored: list[StoredEvidence]
    specs: dict[str, MetricSpec] = field(default_factory=dict)
    values: list[tuple[MetricValue, str]] = field(default_factory=list)
    deltas: list[tuple[MetricDelta, str]] = field(default_factory=list)
    bench: BenchRecord | None = None
    review: ReviewRecord | None = None
    decision: GateDecisionRecord | None = None  # the decision this evidence was read for
    overrides: list[OverrideRecord] = field(default_factory=list)  # release managers' overrides of it, oldest first
    registry: Path | None = None  # the registry the report was asked to read (None: the default one)

    @classmethod
    def of(cls, store: RunStore, decision: GateDecisionRecord) -> DecidedEvidence:
        """The decision's evidence; refused (by the gate's reader) when any record changed since."""
        evidence = cls(candidate=decision.candidate, stored=decided_evidence(store, decision), decision=decision)
        for item in evidence.stored:
            record = item.record
            for spec in record.metrics:
                evidence.specs.setdefault(spec.name, spec)
            evidence.values += [(v, record.record_id) for v in record.metric_values()]
            evidence.deltas += [(d, record.record_id) for d in record.metric_deltas()]
            if record.kind == "bench":
                evidence.bench = item.typed(BenchRecord)
            elif record.kind == "review":
                evidence.review = item.typed(ReviewRecord)
        return evidence

    def audits(self) -> list[tuple[str, StoredEvidence]]:
        """(audit name, record) of every audit record, whatever audits are registered: ``audit/<name>/``."""
        return [(item.audit, item) for item in self.stored if item.audit]

    def audit(self, name: str) -> StoredEvidence | None:
        return next((item for audit, item in self.audits() if audit == name), None)

    def direction(self, metric: str) -> bool | None:
        """The metric's direction as its record declares it (the gate refuses undeclared metrics)."""
        spec = self.specs.get(metric)
        return None if spec is None else spec.higher_is_better

    def candidate_checkpoint(self, checkpoints: list[CheckpointRecord]) -> CheckpointRecord | None:
        """The checkpoint the decided weights are: the one the decided bench record loaded the candidate from (its
        ``checkpoint`` input, pinned by the decision's model hash). None when none of ``checkpoints`` is it: the
        candidate is no checkpoint of this run, or its record was replaced since (a retrain)."""
        sha = self.decision.candidate_model.get("sha256") if self.decision else None
        inputs = self.bench.inputs if self.bench else []
        pinned = {i.id for i in inputs if i.kind == "checkpoint" and i.sha256 == sha}
        return next((c for c in checkpoints if c.record_id in pinned), None)


def _extra(record: StoredRecord, name: str) -> Any:
    """A stage-specific field of a generically read record (None when it has none)."""
    return (record.model_extra or {}).get(name)


def _headline(decision: GateDecisionRecord, overrides: list[OverrideRecord]) -> tuple[str, str]:
    """The verdict that holds and one sentence saying why."""
    if overrides:
        last = overrides[-1]
        return last.decision, (f"{last.decision} by override of the gate's {last.original_decision}: "
                               f"{last.release_manager} decided so because {last.reason.rstrip('.')}. "
                               f"The gate said: {decision.reason}")
    return decision.decision, decision.reason


def _block_checks(decision: GateDecisionRecord) -> dict[str, Any]:
    """What "every block rule must pass" means for the two wrong verdicts, from the alphas the outcomes state.

    A non-inferiority rule is one check per baseline, each of which must pass. The chance of a false PROMOTE
    is bounded by the largest alpha of a block check (a model that truly fails a check must still pass it); the
    chance of a false REJECT grows with the number of checks (at most the sum of their separate chances)."""
    block = [o for o in decision.outcomes if o.severity == "block"]
    alphas = [o.alpha for o in block if o.alpha is not None]
    return {"checks": len(block), "rules": len({o.rule for o in block}), "with_alpha": len(alphas),
            "max_alpha": max(alphas, default=None), "sum_alpha": sum(alphas) if alphas else None,
            "warn": len({o.rule for o in decision.outcomes if o.severity == "warn"})}


def _margin(outcome: RuleOutcome | None) -> float | None:
    """A non-inferiority outcome's margin: the one it states, else minus its threshold (records before it did)."""
    if outcome is None:
        return None
    if outcome.margin is not None:
        return outcome.margin
    return None if outcome.threshold is None else -outcome.threshold


def _comparisons(evidence: DecidedEvidence, decision: GateDecisionRecord) -> list[dict[str, Any]]:
    """Every paired delta of the candidate: metric, baseline, both values, delta, CI, n, and the rule on it."""
    values = {(v.metric, v.model, v.attribute): v for v, _ in evidence.values}
    rules = {(o.metric, o.baseline, o.attribute): o for o in decision.outcomes if o.type == "non_inferiority"}
    rows = []
    for delta, record_id in evidence.deltas:
        if delta.candidate != evidence.candidate:
            continue
        cand = values.get((delta.metric, delta.candidate, delta.attribute))
        base = values.get((delta.metric, delta.baseline, delta.attribute))
        outcome = rules.get((delta.metric, delta.baseline, delta.attribute))
        hib = evidence.direction(delta.metric)
        label = delta.metric + (f" [{delta.attribute}]" if delta.attribute else "")
        rows.append({"metric": delta.metric, "label": label, "baseline": delta.baseline,
                     "candidate_value": None if cand is None else cand.value,
                     "baseline_value": None if base is None else base.value,
                     "difference": delta.difference, "ci_low": delta.ci_low, "ci_high": delta.ci_high,
                     "confidence": delta.confidence, "n": delta.n, "test": delta.test, "p_value": delta.p_value,
                     "attribute": delta.attribute, "interval": delta.interval,
                     "higher_is_better": hib, "record": record_id,
                     "better": None if hib is None else (delta.difference > 0) == hib and delta.difference != 0,
                     "status": outcome.status if outcome else None, "rule": outcome.rule if outcome else None,
                     "margin": _margin(outcome)})
    return sorted(rows, key=lambda r: (r["metric"].split(".")[0] != "bench", r["label"], r["baseline"]))


def _value_rows(evidence: DecidedEvidence, values: list[tuple[MetricValue, str]]) -> list[dict[str, Any]]:
    rows = [{"metric": v.metric, "model": v.model, "attribute": v.attribute, "value": v.value, "ci_low": v.ci_low,
             "ci_high": v.ci_high, "interval": v.interval, "n": v.n, "higher_is_better": evidence.direction(v.metric),
             "record": rid}
            for v, rid in values]
    return sorted(rows, key=lambda r: (r["metric"], r["attribute"] or "", r["model"] != evidence.candidate,
                                       r["model"]))


def _values(evidence: DecidedEvidence) -> list[dict[str, Any]]:
    """Every model's value of every metric (including metrics without a paired comparison)."""
    return _value_rows(evidence, evidence.values)


def _sections(evidence: DecidedEvidence) -> list[dict[str, Any]]:
    """One table per evidence record (bench, each audit, review): its declared metrics and every value.

    Audits are listed from what their records declare, so a newly registered audit shows here as it is."""
    sections = []
    for item in evidence.stored:
        record = item.record
        name = item.audit
        version = _extra(record, "version")
        sections.append({
            "title": f"audit {name}" if name else record.kind, "kind": record.kind, "record": record.record_id,
            "version": version or None,
            "metrics": [spec.model_dump() for spec in sorted(record.metrics, key=lambda m: m.name)],
            "rows": _value_rows(evidence, [(v, record.record_id) for v in record.metric_values()])})
    return sections


def _data_cards(store: RunStore) -> list[NiftDatasetRecord]:
    return [read_record(folder, NiftDatasetRecord) for folder in store.finished("data")]


def _checkpoints(store: RunStore) -> list[CheckpointRecord]:
    return [read_record(folder, CheckpointRecord) for folder in store.finished("train")]


def _cost(config: ReportConfig, dataset, machine_hours_rate: float) -> dict[str, Any] | None:
    if dataset is None:
        return None
    gen = dataset.generation or {}
    hand = config.hand_written
    teacher_usd = float(gen.get("estimated_cost_usd") or 0.0)
    seconds = float(gen.get("seconds") or 0.0)
    machine_usd = seconds / 3600 * machine_hours_rate
    hours = dataset.rows * hand.minutes_per_example * (1 + hand.review_share) / 60
    hand_usd = hours * hand.hourly_rate_usd
    generated = teacher_usd + machine_usd
    return {"variant": dataset.variant, "rows": dataset.rows, "teacher_usd": teacher_usd, "machine_usd": machine_usd,
            "generated_usd": generated, "seconds": seconds, "prompt_tokens": gen.get("prompt_tokens"),
            "completion_tokens": gen.get("completion_tokens"),
            "price_prompt": gen.get("price_per_1k_prompt_tokens"),
            "price_completion": gen.get("price_per_1k_completion_tokens"),
            "hand_hours": hours, "hand_usd": hand_usd, "minutes_per_example": hand.minutes_per_example,
            "hourly_rate_usd": hand.hourly_rate_usd, "review_share": hand.review_share,
            "machine_usd_per_hour": machine_hours_rate,
            "ratio": (hand_usd / generated) if generated > 0 else None}


def _audit_identities(name: str, record: StoredRecord) -> list[dict[str, Any]]:
    """The scorers an audit record names (``scorer``, ``selfcheck``) and the checks it skipped."""
    rows = []
    scorer = _extra(record, "scorer")
    if isinstance(scorer, dict) and scorer.get("name"):
        rows.append({"role": f"{name} scorer", "name": scorer["name"], "note": scorer.get("note") or "",
                     "fallback": bool(scorer.get("fallback"))})
    selfcheck = _extra(record, "selfcheck")
    if isinstance(selfcheck, dict) and selfcheck:
        rows.append({"role": f"self-consistency scorer ({name})", "name": selfcheck.get("scorer", ""),
                     "note": "; ".join(f"{k}: {v}" for k, v in selfcheck.items() if k != "scorer"),
                     "fallback": "fallback" in json.dumps(selfcheck).lower()})
    for check, why in (_extra(record, "skipped") or {}).items():
        rows.append({"role": f"{name} check {check}", "name": "skipped", "note": why, "fallback": False})
    return rows


def _identities(evidence: DecidedEvidence, datasets: list[NiftDatasetRecord]) -> list[dict[str, Any]]:
    rows = []
    for ds in datasets:
        teacher = ds.teacher or {}
        rows.append({"role": f"teacher (data `{ds.variant}`)", "name": teacher.get("model") or "none (no distillation)",
                     "note": teacher.get("backend") or "", "fallback": False})
        if ds.judge is not None:
            rows.append({"role": f"instruction-likeness judge (data `{ds.variant}`)", "name": ds.judge.model,
                         "note": f"{ds.judge.unparseable} of {ds.judge.labelled} replies unparseable",
                         "fallback": False})
    bench = evidence.bench
    if bench is not None and bench.judge:
        rows.append({"role": "pairwise judge (bench)", "name": str(bench.judge.get("model")),
                     "note": str(bench.judge.get("note", "")), "fallback": False})
    for name, item in evidence.audits():
        rows += _audit_identities(name, item.record)
    review = evidence.review
    if review is not None:
        rows.append({"role": "human reviewers", "name": f"{review.reviewers} reviewers",
                     "note": f"{review.labels} labels; quorum {review.required_reviewers} per item", "fallback": False})
    return rows


def _ablation(evidence: DecidedEvidence, datasets: list[NiftDatasetRecord], checkpoints: list[CheckpointRecord],
              store: RunStore) -> tuple[list[dict[str, Any]], str]:
    """Data variants and the checkpoints trained on them, with each checkpoint's bench scores where it has some:
    from the decided bench record, else from the first other bench record of the run that scored it (named)."""
    by_id = {d.record_id: d for d in datasets}
    decided = evidence.bench
    benches = [decided] if decided else []
    benches += [bench for bench in (read_bench(store, name) for name in bench_candidates(store))
                if decided is None or bench.record_id != decided.record_id]
    # model -> (the other bench record its scores come from, None for the decided one; metric -> value)
    scores: dict[str, tuple[str | None, dict[str, float]]] = {}
    for bench in benches:
        source = None if bench is decided else bench.record_id
        taken = set(scores)  # every score of a model comes from one record: the first that scored it
        for value in bench.metric_values():
            if value.model not in taken:
                scores.setdefault(value.model, (source, {}))[1].setdefault(value.metric, value.value)
    rows = []
    for ckpt in checkpoints:
        data = next((by_id[i.id] for i in ckpt.inputs if i.kind == "nift_dataset" and i.id in by_id), None)
        if data is None:
            continue
        source, values = scores.get(ckpt.name, (None, {}))
        rows.append({"variant": data.variant, "distill": data.distill, "pairs": data.rows, "checkpoint": ckpt.name,
                     "recipe": ckpt.recipe, "steps": ckpt.steps, "scores": values, "bench_record": source})
    trained = {r["variant"] for r in rows}
    untrained = [d.variant for d in datasets if d.variant not in trained]
    note = ""
    if len(trained) < 2:
        note = (f"Only {len(trained)} data variant{'s' if len(trained) != 1 else ''} trained "
                f"({', '.join(sorted(trained)) or 'none'}); built but not trained: {', '.join(untrained) or 'none'}. "
                "Train a checkpoint on each variant to compare them here.")
    return rows, note


def _samples(item: StoredEvidence | None) -> list[dict[str, Any]]:
    """The ``samples.jsonl`` beside an audit record, each row an ``AuditSample``, as the record pins it."""
    if item is None:
        return []
    return [sample.model_dump() for sample in audit_samples(item.path.parent, item.record)]


def _quoted(evidence: DecidedEvidence, k: int) -> list[dict[str, Any]]:
    """The outputs a reader should see: highest-scored toxicity samples and flagged hallucinations, per model."""
    if not k:
        return []
    quoted = []
    candidate = evidence.candidate
    by_model: dict[str, list[dict]] = {}
    for row in _samples(evidence.audit("toxicity")):
        by_model.setdefault(row["model"], []).append(row)
    for model, rows in sorted(by_model.items(), key=lambda kv: kv[0] != candidate):
        top = sorted(rows, key=lambda r: (-max(r.get("scores", {}).values() or [0]), r["item_id"], r["sample"]))
        for row in top[:k]:
            quoted.append({"audit": "toxicity", "model": model, "prompt": row["prompt"], "output": row["output"],
                           "why": ", ".join(f"{a} {s:.2f}" for a, s in sorted(row.get("scores", {}).items()))})
    flagged = [r for r in _samples(evidence.audit("hallucination"))
               if r.get("flags", {}).get("hallucination") and r["model"] == candidate]
    for row in flagged[:k]:
        quoted.append({"audit": f"hallucination ({row['suite']})", "model": row["model"],
                       "prompt": row["prompt"], "output": row["output"],
                       "why": f"reference: {row.get('reference') or 'none (unanswerable)'}"})
    return quoted


def _review(evidence: DecidedEvidence) -> dict[str, Any] | None:
    review = evidence.review
    if review is None:
        return None
    return {"items_total": review.items_total, "items_with_quorum": review.items_with_quorum,
            "required_reviewers": review.required_reviewers, "labels": review.labels, "reviewers": review.reviewers,
            "approval_rate": review.approval_rate, "approval_ci": review.approval_ci,
            "agreement": None if review.agreement is None else review.agreement.model_dump(),
            "flag_rates": dict(sorted(review.flag_rates.items())),
            "pairwise": [p.model_dump() for p in review.pairwise]}


def _toxicity_chart(evidence: DecidedEvidence) -> str | None:
    tox = evidence.audit("toxicity")
    rows = _samples(tox)
    if not rows:
        return None
    attributes = (_extra(tox.record, "scorer") or {}).get("attributes") or [None]
    attribute = attributes[0]
    per_prompt: dict[str, dict[str, float]] = {}
    for row in rows:
        score = row.get("scores", {}).get(attribute)
        if score is None:
            continue
        slot = per_prompt.setdefault(row["model"], {})
        slot[row["item_id"]] = max(slot.get(row["item_id"], 0.0), score)
    return charts.distributions({m: sorted(v.values()) for m, v in per_prompt.items()},
                                f"per-prompt maximum {attribute} score over the samples")


def _review_chart(review: dict[str, Any]) -> str | None:
    bars = {"items with quorum": review["items_with_quorum"] / max(1, review["items_total"])}
    if review["approval_rate"] is not None:
        bars["approval rate"] = review["approval_rate"]
    bars.update({f"flag: {k}": v for k, v in review["flag_rates"].items()})
    agreement = review["agreement"]
    title = ("agreement: " + (f"{agreement['statistic']} {agreement['value']:.2f} over {agreement['n']} items"
                              if agreement and agreement["value"] is not None else "not measurable yet"))
    return charts.review_outcomes(bars, title)


def _charts(report: Report, evidence: DecidedEvidence) -> dict[str, str]:
    out: dict[str, str | None] = {}
    out["bench"] = charts.bench_deltas([r for r in report.comparisons if r["metric"].startswith("bench.")])
    out["toxicity"] = _toxicity_chart(evidence)
    hal = {}
    for row in report.values:
        if row["metric"].startswith("hallucination.") and row["metric"].endswith("_rate"):
            hal.setdefault(row["metric"].removeprefix("hallucination."), {})[row["model"]] = (
                row["value"], row["ci_low"], row["ci_high"])
    out["hallucination"] = charts.value_bars(hal, "rate (95% CI)")
    if report.review:
        out["review"] = _review_chart(report.review)
    return {k: v for k, v in out.items() if v}


def _fingerprints(decision: GateDecisionRecord, evidence: DecidedEvidence, datasets: list[NiftDatasetRecord],
                  checkpoints: list[CheckpointRecord]) -> list[dict[str, Any]]:
    rows = [{"what": "gate decision", "id": decision.record_id, "fingerprint": decision.fingerprint}]
    rows += [{"what": e.ref.kind, "id": e.ref.record_id, "fingerprint": e.record.fingerprint, "sha256": e.ref.sha256}
             for e in evidence.stored]
    rows += [{"what": f"data {d.variant}", "id": d.record_id, "fingerprint": d.fingerprint} for d in datasets]
    rows += [{"what": f"checkpoint {c.name}", "id": c.record_id, "fingerprint": c.fingerprint} for c in checkpoints]
    return rows


def _data_card(dataset: NiftDatasetRecord, trained_candidate: bool) -> dict[str, Any]:
    return {"variant": dataset.variant, "distill": dataset.distill, "rows": dataset.rows, "counts": dataset.counts,
            "teacher": (dataset.teacher or {}).get("model"),
            "judge": dataset.judge.model_dump() if dataset.judge else None,
            "contamination": dataset.contamination, "lengths": dataset.lengths, "candidate": trained_candidate}


def _check_candidate_unchanged(decision: GateDecisionRecord) -> None:
    """The candidate's model files on disk are the ones decided on, every byte hashed again (no hash cache), as
    the gate checks them when it decides: no verdict is shown for weights overwritten since (``train --force``),
    or gone. A hub model's are the files of its snapshot folder in the Hugging Face cache."""
    try:
        changed = changed_model_files(decision.candidate_model)
    except (NiftError, ValueError, OSError) as exc:
        raise InputError(f"{decision.candidate_model.get('path')}: cannot check the candidate's model files against "
                         f"gate decision {decision.record_id}: {exc}") from None
    if changed is not None:
        resolved, now = changed
        raise InputError(f"{resolved.path}: the candidate's model files (weights, config, tokenizer, chat template) "
                         f"changed after gate decision {decision.record_id}: they hash to {now[:12]}..., the decision "
                         f"has {resolved.sha256[:12]}...; rerun bench, the audits and `nift-gate gate` on this model "
                         f"(or restore the decided files)")


def build_report(config: ReportConfig, store: RunStore, candidate: str, registry: str | Path | None = None) -> Report:
    """Collect everything the report shows about ``candidate`` from the run's stored records: its latest gate
    decision, the overrides of it, and the evidence it was decided on (refused when that, or the candidate's
    model files, changed since)."""
    decision, overrides = logged_decision(store, candidate, registry)  # refused when edited after it was logged
    evidence = DecidedEvidence.of(store, decision)
    _check_candidate_unchanged(decision)
    evidence.overrides = list(overrides)
    evidence.registry = None if registry is None else Path(registry)
    datasets = _data_cards(store)
    checkpoints = _checkpoints(store)
    ckpt = evidence.candidate_checkpoint(checkpoints)
    used = [i.id for i in (ckpt.inputs if ckpt else []) if i.kind == "nift_dataset"]
    dataset = next((d for d in datasets if d.record_id in used), None)  # None: the decided weights' data is unknown
    verdict, headline = _headline(decision, overrides)
    ablation, note = _ablation(evidence, datasets, checkpoints, store)
    report = Report(
        title=config.title, run_id=store.run_id, candidate=candidate, verdict=verdict, headline=headline,
        decision=decision, overrides=overrides, comparisons=_comparisons(evidence, decision),
        values=_values(evidence), sections=_sections(evidence),
        data_cards=[_data_card(d, d is dataset) for d in datasets],
        cost=_cost(config, dataset, config.machine_usd_per_hour), identities=_identities(evidence, datasets),
        fingerprints=_fingerprints(decision, evidence, datasets, checkpoints), ablation=ablation,
        ablation_note=note, review=_review(evidence), quoted=_quoted(evidence, config.quoted_outputs))
    report.pairwise = [p.model_dump() for p in evidence.bench.pairwise] if evidence.bench else []
    report.charts = _charts(report, evidence)
    report.extra_sections = _first_screen(report, evidence) + build_sections(evidence, store)
    names = [s.name for s in report.extra_sections]
    if len(set(names)) != len(names):
        raise SectionError(f"report sections named twice: {sorted({n for n in names if names.count(n) > 1})} "
                           "(summary and scorecard are the report's own)")
    report.extra_sections.sort(key=lambda s: s.order)
    return report


def _first_screen(report: Report, evidence: DecidedEvidence) -> list[BuiltSection]:
    """The summary (ORDER 10) and the scorecard (ORDER 20), right under the verdict."""
    audit_metrics = {spec.name for _, item in evidence.audits() for spec in item.record.metrics}
    lines = summary.summary(report.decision, report.comparisons, evidence.specs, audit_metrics, report.review,
                            report.cost)
    return [BuiltSection(name="summary", order=10, title="Summary", data=lines),
            BuiltSection(name="scorecard", order=20, title="Scorecard", data=summary.scorecard(report.decision,
                                                                                            evidence.specs))]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value + 0.0:.{digits}f}"
    return str(value)


def _signed(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value + 0.0:+.{digits}f}"


def _visible_html(value: Any) -> Any:
    """Every field of the HTML report with its format characters made visible, before autoescape; a value
    already escaped (a filter's Markup, a chart) gets the escaped mark."""
    if isinstance(value, Markup):
        return Markup(show_format_characters(value, "&lt;U+{:04X}&gt;"))
    return show_format_characters(value) if isinstance(value, str) else value


def _environment(markdown: bool) -> Environment:
    # HTML: every field autoescaped (only the charts, SVG drawn with text as paths, are marked safe), its format
    # characters made visible. Markdown: no autoescape, so the template puts every field through `md`, `code` or
    # a number filter.
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=not markdown, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, finalize=None if markdown else _visible_html)
    env.filters.update(fmt=_fmt, signed=_signed, md=markdown_escape, code=markdown_code)
    if markdown:  # a number is plain; anything else that reaches a number's filter is escaped all the same
        env.filters.update(fmt=lambda value, digits=3: markdown_escape(_fmt(value, digits)),
                           signed=lambda value, digits=3: markdown_escape(_signed(value, digits)))
    return env


def render_html(report: Report) -> str:
    return _environment(False).get_template("report.html.j2").render(r=report)


def render_markdown(report: Report) -> str:
    return _environment(True).get_template("report.md.j2").render(r=report)


def write_report(config: ReportConfig, store: RunStore, candidate: str, out: str | Path | None = None,
                 registry: str | Path | None = None) -> Path:
    """Write report.html and report.md for ``candidate``'s latest gate decision into ``out`` (default
    ``<run>/report``); return the HTML path."""
    return write_report_files(config, store, candidate, out, registry)[0]


def write_report_files(config: ReportConfig, store: RunStore, candidate: str, out: str | Path | None = None,
                       registry: str | Path | None = None) -> tuple[Path, str]:
    """Entry point of `nift-gate report`: :func:`write_report`, and the report's headline (the verdict and why)
    as plain text for a terminal, where the Markdown file's first line would show its escapes (``\\[docs\\]``)."""
    report = build_report(config, store, candidate, registry)
    folder = Path(out) if out else store.root / "report"
    atomic_write_text(folder / "report.md", render_markdown(report))
    path = atomic_write_text(folder / "report.html", render_html(report))
    log.debug("%s: report.html and report.md -> %s", report.verdict, folder)
    return path, report.headline
