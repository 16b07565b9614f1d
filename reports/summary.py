"""The report's first screen: the plain-language summary and the scorecard, from the decision and its evidence.

Both are built as plain text (the templates escape it) for a reader who knows none of the metric names:
metrics are named by their declared ``label`` (else the description, else the name), rates are shown as
percentages and their differences as percentage points, and a difference whose paired CI contains 0 is called
"within noise" instead of a gain or a loss.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harness.core.metrics import MetricSpec
from harness.gate.record import GateDecisionRecord, RuleOutcome

#: Rule types that judge human review rather than a metric.
REVIEW_RULES = {"review_quorum": "outputs labelled by enough reviewers",
                "approval_rate": "outputs the reviewers approved",
                "min_agreement": "agreement between reviewers"}
#: Worst first: a rule's status is the worst of its outcomes (one per baseline for non-inferiority).
_SEVERITY_OF_STATUS = ("fail", "inconclusive", "pending", "pass")
_NOT_PASSED = {"fail": "failed", "inconclusive": "inconclusive", "pending": "pending"}
_BOUND = {">=": "at least", "<=": "at most", ">": "above", "<": "below"}


def metric_name(specs: dict[str, MetricSpec], metric: str | None, attribute: str | None = None) -> str:
    """What a reader is shown for a metric: its label, else its description (up to its first clause), else its
    dotted name, with the scorer attribute where the name does not already say it."""
    if metric is None:
        return ""
    spec = specs.get(metric)
    name = metric if spec is None else spec.label or _first_clause(spec.description) or metric
    if attribute and attribute not in name:
        name += f" ({attribute} scorer)" if metric.startswith("toxicity.") else f" ({attribute})"
    return name


def _first_clause(description: str) -> str:
    """A description shortened to a name (records written before labels existed): up to its first colon,
    parenthesis or full stop."""
    cut = min([i for i in (description.find(": "), description.find(" ("), description.find(". ")) if i > 0]
              + [len(description)])
    return description[:cut].rstrip(" .")


def _unit(specs: dict[str, MetricSpec], metric: str | None) -> str:
    spec = specs.get(metric or "")
    return spec.unit if spec is not None else "score"


def _trim(number: float, digits: int) -> str:
    text = f"{number:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def amount(value: float | None, unit: str) -> str:
    """A value in its unit, in words a reader knows: a rate as a percentage, a count as a whole number."""
    if value is None:
        return "n/a"
    if unit == "rate":
        return f"{_trim(value * 100, 1)}%"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.2f}"


def difference(value: float, unit: str) -> str:
    """The size of a difference without its sign: percentage points for a rate."""
    if unit == "rate":
        points = _trim(abs(value) * 100, 1)
        return f"{points} point{'' if points == '1' else 's'}"
    return amount(abs(value), unit)


def _signed_difference(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    sign = "+" if value > 0 else "-" if value < 0 else ""
    return sign + (f"{_trim(abs(value) * 100, 1)}" if unit == "rate" else amount(abs(value), unit))


def _within_noise(row: dict[str, Any]) -> bool | None:
    if row.get("ci_low") is None or row.get("ci_high") is None:
        return None
    return row["ci_low"] <= 0 <= row["ci_high"]


def _comparison_phrase(row: dict[str, Any], specs: dict[str, MetricSpec]) -> tuple[str, str]:
    """(class, phrase) of one paired comparison: class is worse, better, noise or unknown."""
    unit = _unit(specs, row["metric"])
    name = metric_name(specs, row["metric"], row.get("attribute"))
    diff = row["difference"]
    moved = "the same" if diff == 0 else f"{difference(diff, unit)} {'higher' if diff > 0 else 'lower'}"
    phrase = f"{name}: {amount(row['candidate_value'], unit)} vs {amount(row['baseline_value'], unit)}, {moved}"
    noise = _within_noise(row)
    if noise is None or row.get("higher_is_better") is None:
        return "unknown", phrase
    if noise or diff == 0:
        return "noise", phrase
    return ("better" if (diff > 0) == row["higher_is_better"] else "worse"), phrase


def _baseline_line(baseline: str, rows: list[dict[str, Any]], specs: dict[str, MetricSpec]) -> dict[str, str]:
    groups: dict[str, list[str]] = {"worse": [], "better": [], "noise": [], "unknown": []}
    for row in rows:
        kind, phrase = _comparison_phrase(row, specs)
        groups[kind].append(phrase)
    words = {"worse": "worse, beyond noise, on", "better": "better, beyond noise, on", "noise": "within noise on",
             "unknown": "no confidence interval for"}
    parts = [f"{words[kind][:1].upper()}{words[kind][1:]} {'; '.join(phrases)}"
             for kind, phrases in groups.items() if phrases]
    verdict = ("regressed" if groups["worse"] else "improved" if groups["better"] else "no clear difference")
    return {"lead": f"Against {baseline}", "status": verdict, "text": (". ".join(parts) or "nothing compared") + "."}


def _rule_groups(outcomes: Iterable[RuleOutcome]) -> list[list[RuleOutcome]]:
    """Outcomes grouped by rule, in policy order."""
    groups: dict[str, list[RuleOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault(outcome.rule, []).append(outcome)
    return list(groups.values())


def rule_status(outcomes: list[RuleOutcome]) -> str:
    """pass, fail, pending, inconclusive, or warn: a warn rule that failed or was inconclusive (it never changes
    the verdict)."""
    worst = min((o.status for o in outcomes), key=_SEVERITY_OF_STATUS.index)
    if outcomes[0].severity == "warn" and worst in ("fail", "inconclusive"):
        return "warn"
    return worst


def _value_phrase(outcome: RuleOutcome, specs: dict[str, MetricSpec]) -> str:
    unit = _unit(specs, outcome.metric)
    text = amount(outcome.value, unit)
    if outcome.judged is not None and outcome.value is not None and outcome.judged != outcome.value:
        text += f" (95% bound {amount(outcome.judged, unit)})"
    bound = _BOUND.get(outcome.comparison or "", outcome.comparison or "")
    if outcome.threshold is not None:
        text += f" (limit: {bound} {amount(outcome.threshold, unit)})"
    return text


def _safety_phrase(group: list[RuleOutcome], specs: dict[str, MetricSpec]) -> str:
    name = metric_name(specs, group[0].metric, group[0].attribute)
    if group[0].baseline is None:
        return f"{name} {_value_phrase(group[0], specs)}"
    return f"{name} {_result(group, specs)}"


def _safety_line(decision: GateDecisionRecord, audit_metrics: set[str], specs: dict[str, MetricSpec]) -> dict[str, str]:
    rules = [g for g in _rule_groups(decision.outcomes) if g[0].metric in audit_metrics]
    if not rules:
        return {"lead": "Safety", "status": "not gated",
                "text": "no rule of this policy judges a safety audit (toxicity, hallucination)."}
    statuses = [rule_status(g) for g in rules]
    passed = statuses.count("pass")
    status = next((s for s in ("fail", "inconclusive", "pending", "warn") if s in statuses), "pass")
    if passed == len(rules):
        levels = [_safety_phrase(g, specs) for g in rules if g[0].baseline is None and g[0].value is not None]
        head = "The safety check passes" if len(rules) == 1 else f"All {len(rules)} safety checks pass"
        text = head + (f": {'; '.join(levels)}." if levels else ".")
    else:
        words = {"fail": "Fails", "inconclusive": "Inconclusive", "pending": "Waiting", "warn": "Warning"}
        problems = [f"{words[s]}: {_safety_phrase(g, specs)}"
                    for g, s in zip(rules, statuses, strict=True) if s != "pass"]
        text = f"{passed} of {len(rules)} safety checks pass. " + ". ".join(problems) + "."
    return {"lead": "Safety", "status": status, "text": text}


def _review_line(decision: GateDecisionRecord, review: dict[str, Any] | None) -> dict[str, str]:
    """Complete or not, by the block rules alone (they decide the verdict); a warn rule that is not passed yet is
    named as a warning."""
    rules = [g for g in _rule_groups(decision.outcomes) if g[0].type in REVIEW_RULES]
    if review is not None:
        facts = (f"{review['items_with_quorum']} of {review['items_total']} items labelled by at least "
                 f"{review['required_reviewers']} reviewers")
        if review.get("approval_rate") is not None:
            facts += f"; {amount(review['approval_rate'], 'rate')} approved"
    else:
        facts = "no labels summarised yet (the review stage has not run)"
    if not rules:
        return {"lead": "Human review", "status": "not gated", "text": f"no rule of this policy needs it; {facts}."}
    blocking = [(g, rule_status(g)) for g in rules if g[0].severity == "block"]
    statuses = {s for _, s in blocking}
    status = next((s for s in ("fail", "pending", "inconclusive") if s in statuses), "pass")
    word = ({"pass": "complete and passed", "fail": "failed", "pending": "not complete",
             "inconclusive": "inconclusive"}[status] if blocking else "no blocking rule of this policy needs it")
    open_rules = [f"{REVIEW_RULES[g[0].type]}: {g[0].detail}" for g, s in blocking if s != "pass"]
    warned = [g[0] for g in rules if g[0].severity == "warn" and g[0].status != "pass"]
    warnings = "".join(f" Warning: {REVIEW_RULES[o.type]} {_NOT_PASSED[o.status]}: {o.detail}." for o in warned)
    return {"lead": "Human review", "status": "warn" if warned and status == "pass" else status,
            "text": f"{word}: {facts}." + (f" Open: {'; '.join(open_rules)}." if open_rules else "") + warnings}


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.4f}"
    if value < 100:
        return f"${value:,.2f}"
    return f"${value:,.0f}"


def _cost_line(cost: dict[str, Any] | None) -> dict[str, str]:
    if cost is None:
        return {"lead": "Data cost", "status": "unknown",
                "text": "unknown: no dataset record of this run is known to have trained the decided weights."}
    hand = (f"writing {cost['rows']:,} instruction examples by hand would take about {_trim(cost['hand_hours'], 1)} "
            f"hours, about {_usd(cost['hand_usd'])}")
    made = f"the {cost['rows']:,} training pairs were generated for {_usd(cost['generated_usd'])}"
    if cost.get("ratio"):
        text = f"{made}; {hand}, {cost['ratio']:,.0f} times as much."
    else:
        text = f"{made} (nothing measurable under the configured prices); {hand}."
    return {"lead": "Data cost", "status": "info", "text": text}


def summary(decision: GateDecisionRecord, comparisons: list[dict[str, Any]], specs: dict[str, MetricSpec],
            audit_metrics: set[str], review: dict[str, Any] | None, cost: dict[str, Any] | None) -> dict[str, Any]:
    """The lines under the verdict: one per baseline (what improved, what regressed: the gated metrics and any
    other that moved beyond noise), then safety, human review and the data cost."""
    baselines = list(dict.fromkeys([*decision.baselines, *(r["baseline"] for r in comparisons)]))
    lines = []
    for baseline in baselines:
        rows = [r for r in comparisons if r["baseline"] == baseline]
        # the gated metrics, and any other metric that moved beyond noise (a gain or loss worth a line)
        shown = [r for r in rows if r.get("rule") or _within_noise(r) is False]
        if rows:
            lines.append(_baseline_line(baseline, shown or rows, specs))
    lines += [_safety_line(decision, audit_metrics, specs), _review_line(decision, review), _cost_line(cost)]
    for line in lines:
        line["text"] = line["text"][:1].upper() + line["text"][1:]
    return {"lines": lines, "note": "Within noise: the 95% confidence interval of the difference contains 0, so "
                                    "the data cannot tell the two models apart on it."}


def _review_requirement(rule: dict[str, Any]) -> str | None:
    """What a review rule of the policy asks, from the rule as the decision recorded it."""
    kind = rule.get("type")
    if kind == "review_quorum":
        how_many = (f"{rule['min_items']:,} items" if rule.get("min_items") is not None
                    else f"{amount(rule.get('min_share') or 0, 'rate')} of the queued items")
        return f"at least {how_many} labelled by {rule.get('min_reviewers')} reviewers each"
    if kind == "approval_rate" and rule.get("min") is not None:
        bound = " (judged on the 95% bound)" if rule.get("judge_on") == "ci" else ""
        return f"at least {amount(rule['min'], 'rate')} approved{bound}"
    if kind == "min_agreement" and rule.get("min") is not None:
        once = f", judged once {rule['min_items']} items have two labels" if rule.get("min_items") else ""
        return f"at least {rule['min']:.2f} (kappa or alpha){once}"
    return None


def _requirement(outcomes: list[RuleOutcome], specs: dict[str, MetricSpec], policy_rule: dict[str, Any]) -> str:
    first = outcomes[0]
    unit = _unit(specs, first.metric)
    if first.type in REVIEW_RULES and (text := _review_requirement(policy_rule)):
        return text
    if first.type == "non_inferiority":
        margin = first.margin if first.margin is not None else (
            None if first.threshold is None else -first.threshold)
        baselines = ", ".join(o.baseline for o in outcomes if o.baseline)
        size = "any amount" if margin is None else difference(margin, unit)
        return f"not worse than {baselines} by more than {size} (95% paired CI)"
    if first.threshold is None:
        return REVIEW_RULES.get(first.type, first.type)
    bound = _BOUND.get(first.comparison or "", first.comparison or "")
    if first.type == "review_quorum":
        return f"{bound} {first.threshold:,.0f} items labelled by enough reviewers"
    if first.type == "min_agreement":
        return f"{bound} {first.threshold:.2f} (kappa or alpha)"
    return f"{bound} {amount(first.threshold, unit)}" + (
        " (judged on the 95% bound)" if first.judged is not None and first.judged != first.value else "")


def _result(outcomes: list[RuleOutcome], specs: dict[str, MetricSpec]) -> str:
    first = outcomes[0]
    unit = _unit(specs, first.metric)
    if first.type == "non_inferiority":
        parts = []
        for o in outcomes:
            ci = "" if o.ci_low is None else (f" [{_signed_difference(o.ci_low, unit)}, "
                                              f"{_signed_difference(o.ci_high, unit)}]")
            sign = "" if o.value is None else "+" if o.value > 0 else "-" if o.value < 0 else ""
            size = "n/a" if o.value is None else difference(o.value, unit)
            parts.append(f"vs {o.baseline}: {sign}{size}{ci}")
        return "; ".join(parts)
    if first.type == "min_agreement" and first.value is not None:
        return f"{first.value:.2f}"
    if first.metric is None:
        return first.detail
    return amount(first.value, unit) + (f" (95% bound {amount(first.judged, unit)})"
                                        if first.judged is not None and first.judged != first.value else "")


def scorecard(decision: GateDecisionRecord, specs: dict[str, MetricSpec]) -> dict[str, Any]:
    """One row per policy rule (a gated concern): traffic-light status, what it is about in plain words, the
    candidate's result and what the policy requires."""
    rules = {r.get("name"): r for r in (decision.policy or {}).get("rules", []) if isinstance(r, dict)}
    rows = []
    for outcomes in _rule_groups(decision.outcomes):
        first = outcomes[0]
        concern = (metric_name(specs, first.metric, first.attribute) if first.metric
                   else REVIEW_RULES.get(first.type, first.rule))
        if concern != first.metric:  # a label or description reads as a phrase; a dotted name stays as it is
            concern = concern[:1].upper() + concern[1:]
        rows.append({"status": rule_status(outcomes), "concern": concern,
                     "metric": first.metric, "rule": first.rule, "severity": first.severity,
                     "result": _result(outcomes, specs),
                     "requirement": _requirement(outcomes, specs, rules.get(first.rule, {}))})
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "inconclusive", "pending", "warn")}
    return {"rows": rows, "counts": {k: v for k, v in counts.items() if v}}
