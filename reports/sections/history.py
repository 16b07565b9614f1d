"""History across candidates: every decision and override the registry logged, this candidate against the
earlier ones, trend charts of the gated metrics with their bounds, and who holds ``staging`` and ``production``.

Read through the gate's published history reader (:mod:`harness.gate.history`), which takes each decision's
metrics only from files that still hold the bytes the registry logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.core.store import RunStore
from harness.gate.history import HistoryEntry, read_history
from harness.gate.record import registry_folder
from reports import charts
from reports.summary import amount, metric_name

if TYPE_CHECKING:
    from reports.build import DecidedEvidence

ORDER = 50  # right after the scorecard: an executive comparing recipes reads it on the first page
TITLE = "History: this candidate and the earlier ones"
#: Entries shown in the table and charts, the newest; earlier ones are counted, not shown.
MAX_ENTRIES = 25
#: Aliases always listed, held or not.
ALIASES = ("staging", "production")


def _key(metric: str, attribute: str | None) -> tuple[str, str | None]:
    return metric, attribute


def _who(entry: HistoryEntry) -> str:
    return f"{entry.run_id}/{entry.candidate}"


def _columns(entries: list[HistoryEntry]) -> list[tuple[str, str | None]]:
    columns: list[tuple[str, str | None]] = []
    for entry in entries:
        for m in entry.metrics:
            if _key(m.metric, m.attribute) not in columns:
                columns.append(_key(m.metric, m.attribute))
    return columns


def _unit(evidence: DecidedEvidence, metric: str) -> str:
    spec = evidence.specs.get(metric)
    return spec.unit if spec is not None else "score"


def _panels(decisions: list[HistoryEntry], columns: list[tuple[str, str | None]], evidence: DecidedEvidence,
            current: str) -> list[dict[str, Any]]:
    ticks = [f"#{e.seq} {_who(e)}" for e in decisions]
    panels = []
    for metric, attribute in columns:
        points, bounds, relative = [], [], []
        for x, entry in enumerate(decisions):
            found = entry.metric(metric, attribute)
            if found is None or (attribute is None and found.attribute is not None):
                continue
            points.append({"x": x, "value": found.value, "ci_low": found.ci_low, "ci_high": found.ci_high,
                           "current": entry.decision_record_id == current, "status": found.status})
            if found.threshold is not None:
                bounds.append((x, found.threshold))
            for c in entry.comparisons:
                if c.metric == metric and c.attribute == attribute and c.difference is not None and c.margin:
                    baseline = found.value - c.difference
                    relative.append((x, baseline - c.margin if c.higher_is_better is not False
                                     else baseline + c.margin))
        if len(points) >= 2:
            panels.append({"label": metric_name(evidence.specs, metric, attribute), "unit": _unit(evidence, metric),
                           "ticks": ticks, "points": points, "bounds": bounds, "relative": relative})
    return panels


def _versus(this: HistoryEntry, other: HistoryEntry, why: str, evidence: DecidedEvidence) -> dict[str, str]:
    """This candidate's gated metrics against another logged decision's, in plain words."""
    phrases = []
    for m in this.metrics:
        theirs = other.metric(m.metric, m.attribute)
        if theirs is None:
            continue
        unit = _unit(evidence, m.metric)
        diff = m.value - theirs.value
        moved = "the same" if diff == 0 else (f"{'higher' if diff > 0 else 'lower'}"
                                              + ("" if m.higher_is_better is None else
                                                 f", {'better' if (diff > 0) == m.higher_is_better else 'worse'}"))
        phrases.append(f"{metric_name(evidence.specs, m.metric, m.attribute)}: {amount(m.value, unit)} vs "
                       f"{amount(theirs.value, unit)} ({moved})")
    return {"who": f"{_who(other)} (entry #{other.seq}, {other.verdict})", "why": why,
            "text": "; ".join(phrases) or "no gated metric in common",
            "note": "Values of two separate runs: each has its own CI (in the table); no paired test compares them."}


def build(evidence: DecidedEvidence, store: RunStore) -> dict[str, Any] | None:
    decision = evidence.decision
    if decision is None:
        return None
    history = read_history(registry_folder(store, evidence.registry), home=store.home)
    entries = history.entries
    current = decision.record_id
    shown = entries[-MAX_ENTRIES:]
    columns = _columns(shown)
    this = next((e for e in reversed(entries) if e.decision_record_id == current and e.kind == "decision"), None)
    rows = []
    for e in reversed(shown):  # newest first
        values = []
        for metric, attribute in columns:
            found = e.metric(metric, attribute)
            values.append("" if found is None else amount(found.value, _unit(evidence, metric)))
        rows.append({"seq": e.seq, "when": e.when.replace("+00:00", "Z"), "kind": e.kind, "verdict": e.verdict,
                     "original": e.original_verdict, "who": _who(e), "by": e.by,
                     "aliases": [*(f"+{a}" for a in e.aliases_moved), *(f"-{a}" for a in e.aliases_removed)],
                     "current": e.decision_record_id == current, "cells": values, "note": e.metrics_note or ""})
    holders = []
    for alias in [*ALIASES, *(a for a in history.aliases if a not in ALIASES)]:
        holder = history.aliases.get(alias)
        is_this = holder is not None and holder.run_id == store.run_id and holder.candidate == evidence.candidate \
            and holder.model_sha256 == (decision.candidate_model or {}).get("sha256")
        holders.append({"alias": alias, "holder": None if holder is None else f"{holder.run_id}/{holder.candidate}",
                        "seq": None if holder is None else holder.seq, "is_this": is_this})
    versus = []
    if this is not None:
        decisions = [e for e in entries if e.kind == "decision" and e.seq < this.seq and e.metrics]
        others = [e for e in decisions if _who(e) != _who(this)]
        if others:
            versus.append(_versus(this, others[-1], "the previous candidate", evidence))
        production = history.aliases.get("production")
        if production is not None and f"{production.run_id}/{production.candidate}" != _who(this):
            held = next((e for e in reversed(entries) if e.kind == "decision" and e.metrics
                         and (e.run_id, e.candidate) == (production.run_id, production.candidate)), None)
            if held is not None and (not others or held.seq != others[-1].seq):
                versus.append(_versus(this, held, "the model in production", evidence))
    decisions = [e for e in shown if e.kind == "decision"]
    return {"rows": rows, "columns": [metric_name(evidence.specs, m, a) for m, a in columns],
            "omitted": len(entries) - len(shown), "total": len(entries),
            "candidates": len({_who(e) for e in entries}), "aliases": holders, "versus": versus,
            "chart": charts.trend(_panels(decisions, columns, evidence, current)), "registry": history.registry}
