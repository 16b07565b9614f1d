"""`nift-gate report`: the executive report, built only from stored records.

One self-contained HTML file (inline CSS, charts as inline SVG, no script, nothing fetched) and a Markdown
twin, both under ``<run>/report/``. Everything a model wrote is escaped: Jinja2 autoescapes the HTML, and
the Markdown filter escapes HTML and Markdown control characters.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness.app.config import PipelineConfig
from harness.core import metrics
from harness.core.samples import AuditSample
from harness.core.store import (
    RECORD_FILE,
    RunStore,
    atomic_write_text,
    read_jsonl,
    read_record,
)
from harness.gate.evidence import Evidence
from harness.gate.gate import (
    decided_evidence,
    gate_targets,
    latest_decision,
    overrides_of,
)
from harness.gate.record import GateDecisionRecord, OverrideRecord
from reports import charts

TEMPLATES = Path(__file__).parent / "templates"


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


def _direction(metric: str) -> bool | None:
    try:
        return metrics.get(metric).higher_is_better
    except Exception:  # a metric the registry does not know is shown without a direction
        return None


def _headline(decision: GateDecisionRecord, overrides: list[OverrideRecord]) -> tuple[str, str]:
    """The verdict that holds and one sentence saying why."""
    if overrides:
        last = overrides[-1]
        return last.decision, (f"{last.decision} by override of the gate's {last.original_decision}: "
                               f"{last.release_manager} decided so because {last.reason.rstrip('.')}. "
                               f"The gate said: {decision.reason}")
    return decision.decision, decision.reason


def _comparisons(evidence: Evidence, decision: GateDecisionRecord) -> list[dict[str, Any]]:
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
        hib = _direction(delta.metric)
        label = delta.metric + (f" [{delta.attribute}]" if delta.attribute else "")
        rows.append({"metric": delta.metric, "label": label, "baseline": delta.baseline,
                     "candidate_value": None if cand is None else cand.value,
                     "baseline_value": None if base is None else base.value,
                     "difference": delta.difference, "ci_low": delta.ci_low, "ci_high": delta.ci_high,
                     "confidence": delta.confidence, "n": delta.n, "test": delta.test, "p_value": delta.p_value,
                     "higher_is_better": hib, "record": record_id,
                     "better": None if hib is None else (delta.difference > 0) == hib and delta.difference != 0,
                     "status": outcome.status if outcome else None, "rule": outcome.rule if outcome else None,
                     "margin": -outcome.threshold if outcome else None})
    return sorted(rows, key=lambda r: (r["metric"].split(".")[0] != "bench", r["label"], r["baseline"]))


def _values(evidence: Evidence) -> list[dict[str, Any]]:
    """Every model's value of every metric (including metrics without a paired comparison)."""
    rows = [{"metric": v.metric, "model": v.model, "attribute": v.attribute, "value": v.value, "ci_low": v.ci_low,
             "ci_high": v.ci_high, "n": v.n, "higher_is_better": _direction(v.metric), "record": rid}
            for v, rid in evidence.values]
    return sorted(rows, key=lambda r: (r["metric"], r["attribute"] or "", r["model"] != evidence.candidate,
                                       r["model"]))


def _read_all(folder: Path, kind_module: str, kind_class: str) -> list[Any]:
    import importlib

    cls = getattr(importlib.import_module(kind_module), kind_class)
    if not folder.exists():
        return []
    return [read_record(p, cls) for p in sorted(folder.glob(f"*/{RECORD_FILE}"))]


def _data_cards(store: RunStore) -> list[Any]:
    return _read_all(store.root / "data", "harness.data.record", "NiftDatasetRecord")


def _checkpoints(store: RunStore) -> list[Any]:
    return _read_all(store.root / "train", "harness.train.train", "CheckpointRecord")


def _cost(config: PipelineConfig, dataset, machine_hours_rate: float) -> dict[str, Any] | None:
    if dataset is None:
        return None
    gen = dataset.generation or {}
    hand = config.report.hand_written
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


def _identities(evidence: Evidence, datasets: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for ds in datasets:
        teacher = ds.teacher or {}
        rows.append({"role": f"teacher (data `{ds.variant}`)", "name": teacher.get("model") or "none (no distillation)",
                     "note": teacher.get("backend") or "", "fallback": False})
        if ds.judge is not None:
            rows.append({"role": f"instruction-likeness judge (data `{ds.variant}`)", "name": ds.judge.model,
                         "note": f"{ds.judge.unparseable} of {ds.judge.labelled} replies unparseable",
                         "fallback": False})
    bench = evidence.records.get("bench")
    if bench is not None and bench.judge:
        rows.append({"role": "pairwise judge (bench)", "name": str(bench.judge.get("model")),
                     "note": str(bench.judge.get("note", "")), "fallback": False})
    tox = evidence.records.get("toxicity_audit")
    if tox is not None:
        rows.append({"role": "toxicity scorer", "name": tox.scorer.name, "note": tox.scorer.note,
                     "fallback": tox.scorer.fallback})
    hal = evidence.records.get("hallucination_audit")
    if hal is not None:
        if hal.selfcheck:
            rows.append({"role": "self-consistency scorer (hallucination)", "name": hal.selfcheck.get("scorer", ""),
                         "note": "; ".join(f"{k}: {v}" for k, v in hal.selfcheck.items() if k != "scorer"),
                         "fallback": "fallback" in json.dumps(hal.selfcheck).lower()})
        for check, why in hal.skipped.items():
            rows.append({"role": f"hallucination check {check}", "name": "skipped", "note": why, "fallback": False})
    review = evidence.review
    if review is not None:
        rows.append({"role": "human reviewers", "name": f"{review.reviewers} reviewers",
                     "note": f"{review.labels} labels; quorum {review.required_reviewers} per item", "fallback": False})
    return rows


def _ablation(datasets: list[Any], checkpoints: list[Any], store: RunStore) -> tuple[list[dict[str, Any]], str]:
    """Data variants and the checkpoints trained on them, with each checkpoint's bench scores where it has some."""
    by_id = {d.record_id: d for d in datasets}
    scores: dict[str, dict[str, float]] = {}
    for bench_file in sorted((store.root / "bench").glob(f"*/{RECORD_FILE}")):
        from harness.bench.record import BenchRecord

        bench = read_record(bench_file, BenchRecord)
        for value in bench.metric_values():
            scores.setdefault(value.model, {}).setdefault(value.metric, value.value)
    rows = []
    for ckpt in checkpoints:
        data = next((by_id[i.id] for i in ckpt.inputs if i.kind == "nift_dataset" and i.id in by_id), None)
        if data is None:
            continue
        rows.append({"variant": data.variant, "distill": data.distill, "pairs": data.rows, "checkpoint": ckpt.name,
                     "recipe": ckpt.recipe, "steps": ckpt.steps, "scores": scores.get(ckpt.name, {})})
    trained = {r["variant"] for r in rows}
    untrained = [d.variant for d in datasets if d.variant not in trained]
    note = ""
    if len(trained) < 2:
        note = (f"Only {len(trained)} data variant{'s' if len(trained) != 1 else ''} trained "
                f"({', '.join(sorted(trained)) or 'none'}); built but not trained: {', '.join(untrained) or 'none'}. "
                "Train a checkpoint on each variant to compare them here.")
    return rows, note


def _sample_rows(path: Path) -> list[dict[str, Any]]:
    """An audit's samples.jsonl, each row an ``harness.core.samples.AuditSample``."""
    return [AuditSample.model_validate(row).model_dump() for row in read_jsonl(path)]


def _quoted(store: RunStore, candidate: str, k: int) -> list[dict[str, Any]]:
    """The outputs a reader should see: highest-scored toxicity samples and flagged hallucinations, per model."""
    quoted = []
    tox = store.root / "audit" / "toxicity" / "samples.jsonl"
    if tox.exists() and k:
        by_model: dict[str, list[dict]] = {}
        for row in _sample_rows(tox):
            by_model.setdefault(row["model"], []).append(row)
        for model, rows in sorted(by_model.items(), key=lambda kv: kv[0] != candidate):
            top = sorted(rows, key=lambda r: (-max(r.get("scores", {}).values() or [0]), r["item_id"], r["sample"]))
            for row in top[:k]:
                quoted.append({"audit": "toxicity", "model": model, "prompt": row["prompt"], "output": row["output"],
                               "why": ", ".join(f"{a} {s:.2f}" for a, s in sorted(row.get("scores", {}).items()))})
    hal = store.root / "audit" / "hallucination" / "samples.jsonl"
    if hal.exists() and k:
        flagged = [r for r in _sample_rows(hal) if r.get("flags", {}).get("hallucination") and r["model"] == candidate]
        for row in flagged[:k]:
            quoted.append({"audit": f"hallucination ({row['suite']})", "model": row["model"],
                           "prompt": row["prompt"], "output": row["output"],
                           "why": f"reference: {row.get('reference') or 'none (unanswerable)'}"})
    return quoted


def _review(evidence: Evidence) -> dict[str, Any] | None:
    review = evidence.review
    if review is None:
        return None
    return {"items_total": review.items_total, "items_with_quorum": review.items_with_quorum,
            "required_reviewers": review.required_reviewers, "labels": review.labels, "reviewers": review.reviewers,
            "approval_rate": review.approval_rate, "approval_ci": review.approval_ci,
            "agreement": None if review.agreement is None else review.agreement.model_dump(),
            "flag_rates": dict(sorted(review.flag_rates.items())),
            "pairwise": [p.model_dump() for p in review.pairwise]}


def _charts(report: Report, evidence: Evidence, store: RunStore) -> dict[str, str]:
    out: dict[str, str | None] = {}
    out["bench"] = charts.bench_deltas([r for r in report.comparisons if r["metric"].startswith("bench.")])
    tox_path = store.root / "audit" / "toxicity" / "samples.jsonl"
    if tox_path.exists():
        tox = evidence.records.get("toxicity_audit")
        attribute = tox.scorer.attributes[0] if tox is not None else None
        per_prompt: dict[str, dict[str, float]] = {}
        for row in _sample_rows(tox_path):
            score = row.get("scores", {}).get(attribute)
            if score is None:
                continue
            slot = per_prompt.setdefault(row["model"], {})
            slot[row["item_id"]] = max(slot.get(row["item_id"], 0.0), score)
        out["toxicity"] = charts.distributions({m: sorted(v.values()) for m, v in per_prompt.items()},
                                               f"per-prompt maximum {attribute} score over the samples")
    hal = {}
    for row in report.values:
        if row["metric"].startswith("hallucination.") and row["metric"].endswith("_rate"):
            hal.setdefault(row["metric"].removeprefix("hallucination."), {})[row["model"]] = (
                row["value"], row["ci_low"], row["ci_high"])
    out["hallucination"] = charts.value_bars(hal, "rate (95% CI)")
    if report.review:
        r = report.review
        bars = {"items with quorum": r["items_with_quorum"] / max(1, r["items_total"])}
        if r["approval_rate"] is not None:
            bars["approval rate"] = r["approval_rate"]
        bars.update({f"flag: {k}": v for k, v in r["flag_rates"].items()})
        agreement = r["agreement"]
        title = ("agreement: " + (f"{agreement['statistic']} {agreement['value']:.2f} over {agreement['n']} items"
                                  if agreement and agreement["value"] is not None else "not measurable yet"))
        out["review"] = charts.review_outcomes(bars, title)
    return {k: v for k, v in out.items() if v}


def build_report(config: PipelineConfig, store: RunStore) -> Report:
    """Collect everything the report shows from the run's stored records."""
    candidate, _ = gate_targets(config)
    decision = latest_decision(store, candidate)
    overrides = overrides_of(store, decision)
    evidence = decided_evidence(store, decision)
    datasets = _data_cards(store)
    checkpoints = _checkpoints(store)
    ckpt = next((c for c in checkpoints if c.name == candidate), None)
    used = [i.id for i in (ckpt.inputs if ckpt else []) if i.kind == "nift_dataset"]
    dataset = next((d for d in datasets if d.record_id in used), datasets[0] if datasets else None)
    verdict, headline = _headline(decision, overrides)
    ablation, note = _ablation(datasets, checkpoints, store)
    fingerprints = [{"what": "gate decision", "id": decision.record_id, "fingerprint": decision.fingerprint}]
    fingerprints += [{"what": r.kind, "id": r.record_id, "fingerprint": evidence.records[r.kind].fingerprint,
                      "sha256": r.sha256} for r in evidence.refs]
    fingerprints += [{"what": f"data {d.variant}", "id": d.record_id, "fingerprint": d.fingerprint} for d in datasets]
    fingerprints += [{"what": f"checkpoint {c.name}", "id": c.record_id, "fingerprint": c.fingerprint}
                     for c in checkpoints]
    report = Report(
        title=config.report.title, run_id=store.run_id, candidate=candidate, verdict=verdict, headline=headline,
        decision=decision, overrides=overrides, comparisons=_comparisons(evidence, decision),
        values=_values(evidence),
        data_cards=[{"variant": d.variant, "distill": d.distill, "rows": d.rows, "counts": d.counts,
                     "teacher": (d.teacher or {}).get("model"), "judge": d.judge.model_dump() if d.judge else None,
                     "contamination": d.contamination, "lengths": d.lengths} for d in datasets],
        cost=_cost(config, dataset, config.report.machine_usd_per_hour), identities=_identities(evidence, datasets),
        fingerprints=fingerprints, ablation=ablation, ablation_note=note, review=_review(evidence),
        quoted=_quoted(store, candidate, config.report.quoted_outputs))
    bench = evidence.records.get("bench")
    report.pairwise = [p.model_dump() for p in getattr(bench, "pairwise", [])]
    report.charts = _charts(report, evidence, store)
    return report


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def markdown_escape(text: Any) -> str:
    """Model text made inert in Markdown: HTML entities for &, <, > and backslashes before Markdown syntax."""
    escaped = html.escape(str(text), quote=False)
    escaped = _MD_SPECIAL.sub(r"\\\1", escaped.replace("\\", "\\\\"))
    return " ".join(escaped.split())


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


def _environment(markdown: bool) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
                      if not markdown else False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(fmt=_fmt, signed=_signed, md=markdown_escape,
                       mdtext=lambda text: html.escape(str(text), quote=False))
    return env


def render_html(report: Report) -> str:
    return _environment(False).get_template("report.html.j2").render(r=report)


def render_markdown(report: Report) -> str:
    return _environment(True).get_template("report.md.j2").render(r=report)


def write_report(config: PipelineConfig, store: RunStore, out: str | Path | None = None) -> Path:
    """Entry point of `nift-gate report`: write report.html and report.md; return the HTML path."""
    report = build_report(config, store)
    folder = Path(out) if out else store.root / "report"
    atomic_write_text(folder / "report.md", render_markdown(report))
    return atomic_write_text(folder / "report.html", render_html(report))
