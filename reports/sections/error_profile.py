"""The error profile: which kinds of instruction, hallucination outcome and reviewer flag the candidate does better
or worse on than each baseline (computed in :mod:`reports.profile`).

Read through published readers only: the bench's per-instruction results
(:func:`harness.bench.record.instruction_results`), the hallucination audit's ``samples.jsonl`` named by its
decided record (``AuditSample`` rows), and the decided review record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.bench.record import BenchRecord, instruction_results
from harness.core.samples import audit_samples
from harness.core.store import RunStore
from reports import charts, profile
from reports.sections import DETAIL_ORDER

if TYPE_CHECKING:
    from reports.build import DecidedEvidence

ORDER = DETAIL_ORDER["review"] + 10  # after the human review, before the outputs worth reading
TITLE = "Error profile: where the candidate's mistakes changed"
#: Instruction types whose largest losses get example outputs (and the hallucination kind), and how many each.
EXAMPLE_KINDS = 3
EXAMPLES_PER_KIND = 2
#: IFEval's check the profile uses (IFEval's headline numbers are the strict ones).
CHECK = "strict"
NOISE_NOTE = ("Each difference is the candidate's rate minus the baseline's on the same items, in percentage points, "
              "with its 95% paired CI (Newcombe); rates have Wilson intervals. Within noise: the CI contains 0.")


def _instructions(bench: BenchRecord, store: RunStore) -> tuple[dict[str, list], list[str], list[str]]:
    """Model -> every checked instruction of the bench's IFEval-style tasks; the tasks used; and the tasks that
    check instructions whose documents are not stored with the bench (their types cannot be named)."""
    per_model: dict[str, list] = {m.name: [] for m in bench.models}
    used, missing = [], []
    for task in sorted(bench.scores.get(bench.candidate, {})):
        found = {m.name: instruction_results(store, bench.candidate, m.name, task) for m in bench.models}
        if any(results is None for results in found.values()):
            missing.append(task)
        elif found[bench.candidate]:
            used.append(task)
            for model, results in found.items():
                per_model[model] += results or []
    return per_model, used, missing


def _chart(changes: list[profile.Change]) -> str | None:
    """The family changes as the report's paired-difference chart draws them (red: worse beyond noise)."""
    rows = [{"label": c.label, "baseline": c.baseline, "difference": c.difference, "ci_low": c.ci_low,
             "ci_high": c.ci_high, "status": "fail" if c.verdict == "worse" else None, "margin": None,
             "higher_is_better": True} for c in changes]
    return charts.bench_deltas(rows)


def _instruction_part(bench: BenchRecord | None, store: RunStore,
                      confidence: float) -> tuple[dict[str, Any] | None, list[profile.Change]]:
    if bench is None:
        return None, []
    per_model, used, missing = _instructions(bench, store)
    note = (f"Task{'s' if len(missing) > 1 else ''} {', '.join(missing)} check{'' if len(missing) > 1 else 's'} "
            "instructions, but the bench does not store their documents (lm-eval's hub dataset, or a task data copy "
            "since replaced), so their instruction types cannot be named; left out.") if missing else ""
    if not used:
        return ({"tasks": [], "note": note or "No IFEval-style task in the bench: no instruction types to compare.",
                 "families": [], "types": [], "types_unchanged": 0, "rates": [], "models": [], "chart": None,
                 "examples": []}, [])
    baselines = [m.name for m in bench.models if m.role == "baseline"]
    families = profile.instruction_changes(per_model, bench.candidate, baselines, profile.FAMILY, CHECK, confidence)
    types = profile.instruction_changes(per_model, bench.candidate, baselines, profile.TYPE, CHECK, confidence)
    rates = profile.instruction_rates(per_model, profile.TYPE, CHECK, confidence)
    models = [bench.candidate, *baselines]
    rate_rows = [{"key": key, "label": profile.instruction_label(key, profile.TYPE),
                  "cells": [rates[m][key].text() if key in rates.get(m, {}) else "n/a" for m in models]}
                 for key in rates.get(bench.candidate, {})]
    examples = []
    for change in profile.largest_regressions(types, profile.TYPE, EXAMPLE_KINDS):
        examples += profile.instruction_examples(per_model, change, bench.candidate, EXAMPLES_PER_KIND, CHECK)
    # a type on which the two models followed exactly the same share is left out of the type table (it is in
    # the pass rates below): 25 types against each baseline would bury the few that moved
    part = {"tasks": used, "note": note, "check": CHECK, "models": models, "families": [c.row() for c in families],
            "types": [c.row() for c in types if c.difference != 0],
            "types_unchanged": sum(c.difference == 0 for c in types), "rates": rate_rows, "chart": _chart(families),
            "examples": examples}
    return part, [*families, *types]


def _hallucination_part(evidence: DecidedEvidence, confidence: float) -> tuple[dict[str, Any] | None,
                                                                              list[profile.Change]]:
    item = evidence.audit("hallucination")
    if item is None:
        return None, []
    samples = profile.answers(audit_samples(item.path.parent, item.record))
    if not samples:
        return {"note": "The hallucination audit wrote no answers to questions (closed book, HaluEval QA).",
                "models": [], "kinds": [], "changes": [], "examples": []}, []
    roles = {s.model: s.role for s in samples}
    candidate = evidence.candidate if evidence.candidate in roles else next(
        (m for m, r in roles.items() if r == "candidate"), evidence.candidate)
    baselines = [m for m, r in roles.items() if r == "baseline"]
    models = [candidate, *baselines]
    rates = profile.outcome_rates(samples, models, confidence)
    kinds = [{"key": key, "label": kind.label, "over": kind.unit,
              "cells": [rates[m][key].text() for m in models]} for key, kind in profile.OUTCOME_KINDS.items()]
    changes = profile.hallucination_changes(samples, candidate, baselines, confidence)
    examples = []
    mistakes = [c for c in changes if c.key in profile.MISTAKE_KINDS]
    for change in profile.largest_regressions(mistakes, profile.HALLUCINATION, 1):
        examples += profile.hallucination_examples(samples, change, candidate, EXAMPLES_PER_KIND)
    return {"note": "", "models": models, "kinds": kinds, "changes": [c.row() for c in changes],
            "examples": examples}, changes


def _review_part(evidence: DecidedEvidence, confidence: float) -> dict[str, Any] | None:
    review = evidence.review
    if review is None:
        return None
    agreement = [{"source": a.source, "automatic": a.automatic_flag, "flag": a.flag.replace("_", " "),
                  "rate": profile.wilson(a.agreement.agreeing, a.agreement.n, confidence).text(),
                  "kappa": a.kappa} for a in review.automatic_flag_agreement]
    return {"labels": review.labels, "candidate": review.candidate,
            "flags": profile.review_flags(review.flag_rates, review.labels, confidence), "agreement": agreement}


def build(evidence: DecidedEvidence, store: RunStore) -> dict[str, Any] | None:
    confidence = float((evidence.bench.config if evidence.bench else {}).get("confidence", profile.CONFIDENCE))
    instructions, instruction_changes = _instruction_part(evidence.bench, store, confidence)
    hallucination, hallucination_changes = _hallucination_part(evidence, confidence)
    review = _review_part(evidence, confidence)
    if instructions is None and hallucination is None and review is None:
        return None
    changes = [*instruction_changes, *hallucination_changes]
    return {"candidate": evidence.candidate, "instructions": instructions, "hallucination": hallucination,
            "review": review, "headline_sentences": profile.headline_sentences(changes),
            "note": NOISE_NOTE}
