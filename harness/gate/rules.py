"""Judging a policy's rules on the evidence: pure functions, no files written.

Every direction comes from the metric spec the record holding the values declares (``Evidence.spec``);
only a metric no record has yet (a review metric before any review) takes the catalogue's declaration, and
its rule is pending. A block rule that fails rejects;
a block rule waiting for human review (quorum not met, no review yet) or inconclusive (its CI straddles the
bound, with ``inconclusive: true``) makes the decision PENDING_REVIEW; otherwise the candidate is promoted. Warn
rules are reported and never change the verdict. Every outcome states its test (the interval or statistic
behind the number judged), its alpha (one-sided, where a CI bound is judged) and its margin. With
``inconclusive: true`` a value without a CI is inconclusive, never a pass on its point value.

A metric rule without ``attribute:`` judges the first attribute the record's scorer declares
(``scorer.attributes``), never the first value stored: the evidence check accepts a record's values in any order.

A block ``judge_agreement`` rule that has not passed holds back every rule on a judge-based metric (the prefixes
it ``applies_to``): such a rule's outcome becomes pending (too few pairs labelled yet) or inconclusive (the judge
agrees with the reviewers less than required), whatever the judge's numbers say, with the reason in its detail.
"""

from __future__ import annotations

import math
from fractions import Fraction

from scipy.stats import norm

from harness.core.errors import ConfigError
from harness.core.metrics import MetricCatalogue, MetricDelta, MetricSpec, MetricValue
from harness.gate.evidence import REVIEW_PREFIX, Evidence
from harness.gate.policy import (
    ApprovalRateRule,
    CeilingRule,
    FloorRule,
    GatePolicy,
    JudgeAgreementRule,
    MinAgreementRule,
    NonInferiorityRule,
    ReviewQuorumRule,
    ThresholdRule,
)
from harness.gate.record import RuleOutcome, Verdict


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x + 0.0:.4g}"  # + 0.0: no "-0"


def _ci(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f" [{_fmt(low)}, {_fmt(high)}]"


#: ``RuleOutcome.test`` of a rule judged on its point value alone (no interval, no error rate).
POINT_VALUE = "point value"
#: ``RuleOutcome.test`` of a rule that asked for a CI where the value has none (it fails or is inconclusive).
NO_CI = "no CI"


def _ci_test(value: MetricValue) -> str:
    """``RuleOutcome.test`` of a rule judged on the value's CI: its method, or that it has none."""
    if value.ci_low is None or value.ci_high is None:
        return NO_CI
    return value.interval or "CI (method not recorded)"


def _one_sided_alpha(confidence: float | None) -> float | None:
    """The error rate of judging one bound of a two-sided CI at ``confidence``."""
    return None if confidence is None else round((1 - confidence) / 2, 12)


def _record_confidence(evidence: Evidence, record_id: str) -> float | None:
    """The CI level the record states in its resolved config (``confidence``); None where it states none."""
    for item in evidence.stored:
        if item.record.record_id == record_id:
            level = item.record.config.get("confidence")
            return float(level) if isinstance(level, int | float) and not isinstance(level, bool) else None
    return None


def needed_items(n: int, distance: float, half_width: float, confidence: float, power: float) -> int | None:
    """Further items that would decide an inconclusive rule at ``power``: the non-inferiority sample size from
    the observed variance.

    ``distance`` is how far the observed value lies from the bound, in the direction judged (for
    non-inferiority: observed oriented difference + margin); ``half_width`` the distance from the value to the
    CI bound facing the bound. With alpha = (1 - confidence) / 2 (one bound of the two-sided CI is judged),
    the per-item standard deviation is recovered from the recorded CI, sd = sqrt(n) * half_width / z_{1-alpha},
    and the items that would put the CI wholly on the observed side of the bound with probability ``power`` are

        n_total = ((z_{1-alpha} + z_{power}) * sd / |distance|)^2

    (``scipy.stats.norm`` quantiles; Chow, Shao and Wang, *Sample Size Calculations in Clinical Research*,
    section 3.2). Returns ceil(n_total) - n, at least 1; None when the value sits on the bound (no number of
    items decides it at the observed effect) or there is no spread to scale by.
    """
    if distance == 0 or half_width <= 0 or n < 1:
        return None
    z_alpha = float(norm.ppf(1 - (1 - confidence) / 2))
    sd = math.sqrt(n) * half_width / z_alpha
    total = ((z_alpha + float(norm.ppf(power))) * sd / abs(distance)) ** 2
    return max(math.ceil(total - 1e-9) - n, 1)


def _passes(x: float, bound: float, upper: bool, strict: bool) -> bool:
    if upper:
        return x < bound if strict else x <= bound
    return x > bound if strict else x >= bound


def _inconclusive(rule, value: float, low: float | None, high: float | None, bound: float, upper: bool,
                  strict: bool, n: int, confidence: float | None) -> tuple[str, int | None, str] | None:
    """With ``inconclusive: true``, the outcome of a CI that straddles the bound, or of a value with no CI at all:
    ('inconclusive', further items needed, what the detail adds); None when the rule does not ask or the CI lies
    wholly on one side. A point value alone is no evidence that the whole CI is on the passing side, which is
    what the option promises before a pass."""
    if not getattr(rule, "inconclusive", False):
        return None
    if low is None or high is None:
        return "inconclusive", None, (f"; no CI (n={n}): with `inconclusive: true` only a CI wholly on one side of "
                                      f"the bound decides, so the point value alone is inconclusive")
    pessimistic, optimistic = (high, low) if upper else (low, high)
    if _passes(pessimistic, bound, upper, strict) or not _passes(optimistic, bound, upper, strict):
        return None  # the whole CI lies on one side: the evidence decides
    if confidence is None:
        return "inconclusive", None, ("; the CI straddles the bound: inconclusive (the record states no CI level, "
                                      "so the items needed are not estimated)")
    facing = pessimistic if _passes(value, bound, upper, strict) else optimistic
    needed = needed_items(n, value - bound, abs(value - facing), confidence, rule.power)
    way = "pass" if _passes(value, bound, upper, strict) else "fail"
    more = (f"about {needed} more items would decide it ({way}, at the observed value) with power "
            f"{rule.power:g} at one-sided alpha {_one_sided_alpha(confidence):g}" if needed is not None else
            "the value sits on the bound: no number of items decides it at the observed effect")
    return "inconclusive", needed, f"; the CI straddles the bound: inconclusive, {more}"


def _pick_values(policy: GatePolicy, rule, evidence: Evidence, model: str) -> list[tuple[MetricValue, str]]:
    matching = [(v, rid) for v, rid in evidence.values if v.metric == rule.metric]
    if not matching and not any(d.metric == rule.metric for d, _ in evidence.deltas):
        if rule.metric.startswith(REVIEW_PREFIX):
            return []  # no review yet: pending, not an error
        raise ConfigError(f"{policy.where(rule)}: no record has metric {rule.metric!r}; available: "
                          f"{', '.join(evidence.available()) or 'none'}")
    for_model = [(v, rid) for v, rid in matching if v.model == model]
    if not for_model and matching:
        raise ConfigError(f"{policy.where(rule)}: metric {rule.metric!r} has no value for model {model!r}; models "
                          f"with it: {', '.join(sorted({v.model for v, _ in matching}))}")
    if rule.attribute is not None:
        chosen = [(v, rid) for v, rid in for_model if v.attribute == rule.attribute]
        if not chosen:
            raise ConfigError(f"{policy.where(rule)}: metric {rule.metric!r} has no attribute {rule.attribute!r}; "
                              f"attributes: {', '.join(sorted({str(v.attribute) for v, _ in for_model}))}")
        return chosen
    if rule.metric.startswith(REVIEW_PREFIX):
        overall = [(v, rid) for v, rid in for_model if v.attribute is None]
        return overall or for_model  # review: the model-level value, not its strata
    attribute = _default_attribute(policy, rule, evidence, for_model)
    return [(v, rid) for v, rid in for_model if v.attribute == attribute]


def _scorer_attributes(evidence: Evidence, record_id: str) -> list[str]:
    """The attributes the record's scorer declares (``scorer.attributes``, as a toxicity audit stores its scorer's
    identity), in the scorer's own order; empty where the record names no scorer."""
    for item in evidence.stored:
        if item.record.record_id == record_id:
            scorer = (item.record.model_extra or {}).get("scorer")
            attributes = scorer.get("attributes") if isinstance(scorer, dict) else None
            return [a for a in attributes if isinstance(a, str)] if isinstance(attributes, list) else []
    return []


def _default_attribute(policy: GatePolicy, rule, evidence: Evidence,
                       items: list[tuple[MetricValue | MetricDelta, str]]) -> str | None:
    """The attribute a metric rule without ``attribute:`` judges, whatever order the record stores its values in
    (the evidence check accepts them in any order): None where the metric has a value without one (the model's
    own); else the scorer's primary attribute, the first of the ``scorer.attributes`` its record declares
    (detoxify's ``toxicity``, the fallback's ``profanity``); else the metric's only attribute. A metric with a
    value per attribute and no declared scorer (a pairwise judge's per-baseline values) is refused: the rule
    must name one."""
    attributes = {x.attribute for x, _ in items}
    if not attributes or None in attributes:
        return None
    primaries = {next(iter(_scorer_attributes(evidence, rid)), None) for _, rid in items}
    primary = primaries.pop() if len(primaries) == 1 else None
    if primary is not None:
        if primary not in attributes:
            raise ConfigError(f"{policy.where(rule)}: {rule.metric} has no value for {primary!r}, the first attribute "
                              f"its record's scorer declares; attributes: {', '.join(sorted(attributes))}; name one "
                              f"with `attribute:`")
        return primary
    if len(attributes) == 1:
        return attributes.pop()
    raise ConfigError(f"{policy.where(rule)}: {rule.metric} has a value per attribute "
                      f"({', '.join(sorted(attributes))}) and its record declares no scorer whose first attribute "
                      f"would be the default; name one with `attribute:`")


def _spec(policy: GatePolicy, rule, evidence: Evidence, catalogue: MetricCatalogue, metric: str | None = None
          ) -> MetricSpec:
    """The direction and unit of the rule's metric: as the evidence declares it, or, for a metric no record
    has yet, as the catalogue does."""
    name = metric or rule.metric
    spec = evidence.spec(name) or catalogue.get(name)
    if spec is None:
        raise ConfigError(f"{policy.where(rule)}: no record declares metric {name!r}, so its direction is unknown; "
                          f"declared: {', '.join(sorted(evidence.specs)) or 'none'}")
    return spec


def _bound(policy: GatePolicy, rule, hib: bool) -> tuple[float, bool]:
    """(bound, whether it is an upper bound) of a threshold, ceiling or floor rule on a metric of direction ``hib``."""
    if isinstance(rule, CeilingRule):
        if hib:
            raise ConfigError(f"{policy.where(rule)}: a ceiling on {rule.metric}, which is higher-is-better as its "
                              f"record declares; use `floor` or `threshold`")
        return rule.max, True
    if isinstance(rule, FloorRule):
        if not hib:
            raise ConfigError(f"{policy.where(rule)}: a floor on {rule.metric}, which is lower-is-better as its "
                              f"record declares; use `ceiling` or `threshold`")
        return rule.min, False
    return rule.value, not hib


def _judge_bound(policy: GatePolicy, rule, evidence: Evidence, catalogue: MetricCatalogue) -> RuleOutcome:
    """threshold, ceiling and floor rules: one value against one bound."""
    model = rule.model or evidence.candidate
    picked = _pick_values(policy, rule, evidence, model)
    spec = _spec(policy, rule, evidence, catalogue)
    hib = spec.higher_is_better
    bound, upper = _bound(policy, rule, hib)
    policy.check_bound(rule, spec)  # again with the record's spec: a bench.* metric's range is declared only there
    on_ci = rule.judge_on == "ci" or rule.inconclusive
    base = {"rule": rule.name, "type": rule.type, "severity": rule.severity, "metric": rule.metric, "model": model,
            "attribute": rule.attribute, "higher_is_better": hib, "threshold": bound,
            "comparison": "<=" if upper else ">=", "test": None if on_ci else POINT_VALUE}
    if not picked:
        return RuleOutcome(**base, status="pending", detail=f"{rule.metric}: no human review yet")
    if len(picked) > 1:
        raise ConfigError(f"{policy.where(rule)}: {rule.metric} has {len(picked)} values for {model} "
                          f"(attributes {[v.attribute for v, _ in picked]}); name one with `attribute:`")
    value, record_id = picked[0]
    judged = value.value if rule.judge_on == "value" else (value.ci_high if upper else value.ci_low)
    where = f"{'upper' if upper else 'lower'} CI bound " if rule.judge_on == "ci" else ""
    confidence = _record_confidence(evidence, record_id) if on_ci else None
    base.update(attribute=value.attribute, value=value.value, ci_low=value.ci_low, ci_high=value.ci_high, n=value.n,
                judged=judged, records=[record_id], confidence=confidence, alpha=_one_sided_alpha(confidence))
    if on_ci:
        base["test"] = _ci_test(value)
    label = f"{rule.metric}{f' [{value.attribute}]' if value.attribute else ''} of {model}"
    if judged is None:
        return RuleOutcome(**base, status="fail", detail=f"{label}: no CI to judge (n={value.n})")
    ok = judged <= bound if upper else judged >= bound
    detail = (f"{label} {_fmt(value.value)}{_ci(value.ci_low, value.ci_high)}, n={value.n}: "
              f"{where}{_fmt(judged)} {'<=' if upper else '>='} {_fmt(bound)} {'holds' if ok else 'does not hold'}")
    undecided = _inconclusive(rule, value.value, value.ci_low, value.ci_high, bound, upper, False, value.n,
                              confidence)
    if undecided is not None:
        status, needed, note = undecided
        return RuleOutcome(**base, status=status, needed_items=needed, detail=detail + note)
    return RuleOutcome(**base, status="pass" if ok else "fail", detail=detail)


def _judge_non_inferiority(policy: GatePolicy, rule: NonInferiorityRule, evidence: Evidence,
                           catalogue: MetricCatalogue, baselines: list[str]) -> list[RuleOutcome]:
    deltas = [(d, rid) for d, rid in evidence.deltas if d.metric == rule.metric]
    if not deltas:
        raise ConfigError(f"{policy.where(rule)}: no record has a paired comparison for {rule.metric!r}; metrics "
                          f"with comparisons: {', '.join(sorted({d.metric for d, _ in evidence.deltas})) or 'none'}; "
                          f"all metrics: {', '.join(evidence.available()) or 'none'}")
    spec = _spec(policy, rule, evidence, catalogue)
    policy.check_bound(rule, spec)
    model = rule.model or evidence.candidate
    targets = [rule.baseline] if rule.baseline else baselines
    if not targets:
        raise ConfigError(f"{policy.where(rule)}: no baseline named and gate.baselines is empty")
    attribute = rule.attribute
    if attribute is None:
        attribute = _default_attribute(policy, rule, evidence, [(d, rid) for d, rid in deltas if d.candidate == model])
    outcomes = []
    for baseline in targets:
        found = [(d, rid) for d, rid in deltas
                 if d.candidate == model and d.baseline == baseline and d.attribute == attribute]
        if not found:
            raise ConfigError(f"{policy.where(rule)}: no comparison of {model} with baseline {baseline!r} on "
                              f"{rule.metric}{f' [{attribute}]' if attribute else ''}; baselines compared: "
                              f"{', '.join(sorted({d.baseline for d, _ in deltas})) or 'none'}")
        delta, record_id = found[0]
        outcomes.append(_non_inferiority_outcome(rule, spec.higher_is_better, delta, record_id))
    return outcomes


def _non_inferiority_outcome(rule: NonInferiorityRule, hib: bool, delta: MetricDelta, record_id: str) -> RuleOutcome:
    # Orient so that higher is better: for a lower-is-better metric the worst case of (c - b) is its upper bound.
    oriented_low = oriented_high = None
    if delta.ci_low is not None and delta.ci_high is not None:
        oriented_low, oriented_high = (delta.ci_low, delta.ci_high) if hib else (-delta.ci_high, -delta.ci_low)
    base = {"rule": rule.name, "type": rule.type, "severity": rule.severity, "metric": rule.metric,
            "model": delta.candidate, "baseline": delta.baseline, "attribute": delta.attribute,
            "higher_is_better": hib, "value": delta.difference, "ci_low": delta.ci_low, "ci_high": delta.ci_high,
            "confidence": delta.confidence, "n": delta.n, "judged": oriented_low, "comparison": ">",
            "threshold": -rule.margin, "records": [record_id], "margin": rule.margin,
            "test": delta.interval or "paired CI (method not recorded)", "alpha": _one_sided_alpha(delta.confidence)}
    label = (f"{rule.metric}{f' [{delta.attribute}]' if delta.attribute else ''}: {delta.candidate} - "
             f"{delta.baseline} = {_fmt(delta.difference)}{_ci(delta.ci_low, delta.ci_high)} "
             f"({delta.confidence:.0%} paired CI, n={delta.n}, {'higher' if hib else 'lower'} is better)")
    if oriented_low is None:
        return RuleOutcome(**base, status="fail", detail=f"{label}: no CI (n={delta.n}), non-inferiority not shown")
    ok = oriented_low > -rule.margin
    detail = f"{label}; worst case {_fmt(oriented_low)} {'>' if ok else '<='} -margin {_fmt(-rule.margin)}"
    oriented = delta.difference if hib else -delta.difference
    undecided = _inconclusive(rule, oriented, oriented_low, oriented_high, -rule.margin, False, True, delta.n,
                              delta.confidence)
    if undecided is not None:
        status, needed, note = undecided
        return RuleOutcome(**base, status=status, needed_items=needed, detail=detail + note)
    return RuleOutcome(**base, status="pass" if ok else "fail", detail=detail)


def _review_value(evidence: Evidence, metric: str) -> tuple[MetricValue, str] | None:
    """The candidate's stored model-level value of one review metric (not a stratum's), with the record's id:
    from the review record alone, since no other record speaks for the reviewers."""
    review = evidence.review
    if review is None:
        return None
    return next(((v, rid) for v, rid in evidence.values if rid == review.record_id
                 and v.metric == metric and v.model == evidence.candidate and v.attribute is None), None)


#: The first review summary version (``harness.review.summary.SUMMARY_VERSION``, in the record's config) whose
#: items_with_quorum counts every item at the record's required_reviewers or more; earlier ones counted an item
#: at the number it was queued with, which may be fewer than the record states.
QUORUM_AT_REQUIRED_SINCE = 4


def _quorum_unfounded(review) -> str | None:
    """Why the review record's items_with_quorum cannot be taken at its word, or None: made by a summary that
    counted quorum at each item's queued number, or more items with the quorum than the record's own label and
    reviewer counts allow (each such item holds one current label from each of required_reviewers distinct
    reviewers)."""
    version = review.config.get("summary_version")
    if isinstance(version, int) and not isinstance(version, bool) and version < QUORUM_AT_REQUIRED_SINCE:
        return (f"the review record {review.record_id} was summarised by summary version {version}, which counted "
                f"each item's quorum at the reviewers it was queued for, not at the record's "
                f"{review.required_reviewers}")
    if review.items_with_quorum and (review.reviewers < review.required_reviewers
                                     or review.labels < review.items_with_quorum * review.required_reviewers):
        return (f"the review record {review.record_id} counts {review.items_with_quorum} items labelled by at least "
                f"{review.required_reviewers} distinct reviewers, but holds {review.labels} labels from "
                f"{review.reviewers} reviewer{'' if review.reviewers == 1 else 's'}")
    return None


def _judge_quorum(policy: GatePolicy, rule: ReviewQuorumRule, evidence: Evidence, base: dict) -> RuleOutcome:
    """At least ``min_items`` (or ``min_share``) of the counted items labelled by ``min_reviewers`` distinct
    reviewers: the record's items_with_quorum, counted at its required_reviewers, which must be at least
    ``min_reviewers`` (a record counting fewer is refused). A record whose count is unfounded
    (:func:`_quorum_unfounded`) is pending until it is summarised again."""
    review = evidence.review
    if review.required_reviewers < rule.min_reviewers:
        raise ConfigError(f"{policy.where(rule)}: needs {rule.min_reviewers} reviewers per item, but the review "
                          f"record {review.record_id} counts an item as reviewed at {review.required_reviewers}; "
                          f"set the review stage's required reviewers to at least {rule.min_reviewers}")
    # Exact arithmetic: in floating point 0.28 * 25 is 7.000000000000001, which would ask for 8 of 25 items.
    needed = rule.min_items if rule.min_items is not None else \
        math.ceil(Fraction(str(rule.min_share)) * review.items_total)
    if review.items_total == 0 and review.stale_items:
        raise ConfigError(f"{policy.where(rule)}: none of the {review.stale_items} queued items is an output of the "
                          f"current evidence (they were queued from earlier records; record {review.record_id}); run "
                          f"`nift-gate review enqueue` for this checkpoint, then label")
    if review.items_total == 0 or needed > review.items_total:
        raise ConfigError(f"{policy.where(rule)}: needs {needed} items with a quorum, but only "
                          f"{review.items_total} items are queued (record {review.record_id}); the rule can never "
                          f"pass")
    base.update(test="count of items with a quorum")
    if (unfounded := _quorum_unfounded(review)) is not None:
        return RuleOutcome(**base, status="pending", comparison=">=", threshold=float(needed), n=review.items_total,
                           detail=f"{unfounded}; its quorum is not counted: rerun `nift-gate review summary`")
    ok = review.items_with_quorum >= needed
    return RuleOutcome(**base, status="pass" if ok else "pending", value=float(review.items_with_quorum),
                       judged=float(review.items_with_quorum), comparison=">=", threshold=float(needed),
                       n=review.items_total,
                       detail=f"{review.items_with_quorum} of {review.items_total} items labelled by at least "
                              f"{review.required_reviewers} reviewers; {needed} needed")


def _review_minimum(policy: GatePolicy, rule, evidence: Evidence, catalogue: MetricCatalogue, metric: str) -> bool:
    """An approval or agreement rule is a minimum: its metric must be higher-is-better as the review declares it."""
    hib = _spec(policy, rule, evidence, catalogue, metric).higher_is_better
    if not hib:
        raise ConfigError(f"{policy.where(rule)}: a minimum on {metric}, which is lower-is-better as the review "
                          f"record declares; use a `ceiling` rule on it")
    return hib


def _judge_approval(policy: GatePolicy, rule: ApprovalRateRule, evidence: Evidence, catalogue: MetricCatalogue,
                    base: dict) -> RuleOutcome:
    metric = "review.approval_rate"
    found = _review_value(evidence, metric)
    if found is None:
        return RuleOutcome(**base, status="pending", detail="no approval rate yet")
    hib = _review_minimum(policy, rule, evidence, catalogue, metric)
    value, record_id = found
    review = evidence.review
    judged = value.value if rule.judge_on == "value" else value.ci_low
    on_ci = rule.judge_on == "ci" or rule.inconclusive
    confidence = (review.approval_confidence or _record_confidence(evidence, record_id)) if on_ci else None
    base.update(metric=metric, higher_is_better=hib, value=value.value, ci_low=value.ci_low, ci_high=value.ci_high,
                n=value.n, judged=judged, comparison=">=", threshold=rule.min, records=[record_id],
                confidence=confidence, alpha=_one_sided_alpha(confidence),
                test=_ci_test(value) if on_ci else POINT_VALUE)
    if judged is None:
        return RuleOutcome(**base, status="fail", detail="approval rate has no CI to judge")
    ok = judged >= rule.min
    strata = "; ".join(f"{s.stratum} {s.approved}/{s.items} (weight {_fmt(s.weight)})" for s in review.approval_strata)
    detail = (f"approval rate {_fmt(value.value)}{_ci(value.ci_low, value.ci_high)} over {value.n} items"
              f"{f' ({strata})' if strata else ''}: {_fmt(judged)} {'>=' if ok else '<'} {_fmt(rule.min)}")
    undecided = _inconclusive(rule, value.value, value.ci_low, value.ci_high, rule.min, False, False, value.n,
                              confidence)
    if undecided is not None:
        status, needed, note = undecided
        return RuleOutcome(**base, status=status, needed_items=needed, detail=detail + note)
    return RuleOutcome(**base, status="pass" if ok else "fail", detail=detail)


def _judge_agreement(policy: GatePolicy, rule: MinAgreementRule, evidence: Evidence, catalogue: MetricCatalogue,
                     base: dict) -> RuleOutcome:
    """kappa/alpha >= min, once ``min_items`` items have two or more labels. Where kappa/alpha is undefined
    because every reviewer gave every such item the same label (0/0: nothing varies, so there is no chance
    agreement to correct for), the raw agreement is perfect and the rule passes, saying so."""
    metric = "review.agreement"
    hib = _review_minimum(policy, rule, evidence, catalogue, metric)
    review = evidence.review
    found = review.agreement
    n = found.n if found else 0
    statistic = found.statistic if found else "agreement"
    base.update(metric=metric, higher_is_better=hib, n=n, comparison=">=", threshold=rule.min,
                test=f"{statistic} ({POINT_VALUE})")
    if found is None or n < rule.min_items:
        return RuleOutcome(**base, status="pending",
                           detail=f"agreement is judged on at least {rule.min_items} items labelled by two or more "
                                  f"reviewers; {n} so far, {rule.min_items - n} more needed")
    if found.value is not None:
        ok = found.value >= rule.min
        return RuleOutcome(**base, status="pass" if ok else "fail", value=found.value, judged=found.value,
                           detail=f"{statistic} {_fmt(found.value)} over {n} items: {'>=' if ok else '<'} "
                                  f"{_fmt(rule.min)}")
    if found.observed is None:  # a record from before raw agreement was stored
        return RuleOutcome(**base, status="pending",
                           detail=f"{statistic} is undefined over {n} items and the review record has no raw "
                                  f"agreement; rerun `nift-gate review summary`")
    ok = found.observed == 1.0
    base.update(test=f"raw agreement ({statistic} undefined)", judged=found.observed)
    if ok:
        return RuleOutcome(**base, status="pass",
                           detail=f"{statistic} is undefined (0/0): every reviewer gave each of the {n} doubly "
                                  f"labelled items the same label as every other, and all labels are the same "
                                  f"value, so there is no chance agreement to correct for; raw agreement 1 is "
                                  f"perfect agreement and passes")
    return RuleOutcome(**base, status="fail",
                       detail=f"{statistic} is undefined over {n} items and raw agreement is "
                              f"{_fmt(found.observed)} < 1")


def _judge_review(policy: GatePolicy, rule, evidence: Evidence, catalogue: MetricCatalogue,
                  quorum_met: bool) -> RuleOutcome:
    """review_quorum, approval_rate and min_agreement rules, on the review record."""
    review = evidence.review
    base = {"rule": rule.name, "type": rule.type, "severity": rule.severity, "model": evidence.candidate,
            "records": [review.record_id] if review else []}
    if review is None:
        return RuleOutcome(**base, status="pending", detail="no review record yet: run the review stage")
    if isinstance(rule, ReviewQuorumRule):
        return _judge_quorum(policy, rule, evidence, base)
    if isinstance(rule, MinAgreementRule) and rule.min_items > review.items_total:
        raise ConfigError(f"{policy.where(rule)}: judges agreement on at least {rule.min_items} doubly labelled "
                          f"items, but only {review.items_total} items are queued (record {review.record_id}); "
                          f"the rule can never be judged: lower min_items or queue more items")
    if not quorum_met:
        every = "" if any(isinstance(r, ReviewQuorumRule) for r in policy.rules) else (
            f": {review.items_with_quorum} of {review.items_total} items labelled by {review.required_reviewers} "
            f"reviewers, and with no review_quorum rule every item needs them")
        if every and (unfounded := _quorum_unfounded(review)) is not None:
            every = f": {unfounded}, so its quorum is not counted (rerun `nift-gate review summary`)"
        return RuleOutcome(**base, status="pending", detail="waiting for the review quorum" + every)
    if isinstance(rule, ApprovalRateRule):
        return _judge_approval(policy, rule, evidence, catalogue, base)
    return _judge_agreement(policy, rule, evidence, catalogue, base)


def _left_out(statistic: str) -> str:
    """Which reviewed pairs a judge-human statistic leaves out."""
    return ("the reviewers split, or the judge called a tie" if statistic == "without_ties"
            else "the reviewers split")


def _judge_judge_agreement(policy: GatePolicy, rule: JudgeAgreementRule, evidence: Evidence,
                           catalogue: MetricCatalogue) -> RuleOutcome:
    """The review record's judge-human agreement (``rule.statistic``) >= min over at least ``min_items`` blind
    pairs it was computed on (those with a judge verdict and a reviewers' majority; without ties, also not a judge
    tie): pass; fewer pairs (or no review): pending; below min: inconclusive, since a judge the reviewers do not
    bear out decides nothing either way."""
    metric = rule.metric
    review = evidence.review
    base = {"rule": rule.name, "type": rule.type, "severity": rule.severity, "model": evidence.candidate,
            "metric": metric, "comparison": ">=", "threshold": rule.min,
            "records": [review.record_id] if review else []}
    if review is None:
        return RuleOutcome(**base, status="pending", detail="no review record yet: the judge is not checked against "
                                                            "the reviewers")
    hib = _review_minimum(policy, rule, evidence, catalogue, metric)
    found = review.judge_agreement
    items = found.items if found else 0
    base.update(higher_is_better=hib)
    if found is None:
        value, low, high, n, interval = None, None, None, 0, None
    elif rule.statistic == "kappa":
        value, low, high, n, interval = found.kappa, None, None, found.with_ties.n, None
    else:
        agreed = found.with_ties if rule.statistic == "with_ties" else found.without_ties
        value, low, high, n, interval = agreed.rate, agreed.ci_low, agreed.ci_high, agreed.n, agreed.interval
    # min_items counts the pairs the statistic is computed on (a reviewers' majority; without ties, also no judge
    # tie), not every reviewed pair: a split pair is no evidence either way.
    if n < rule.min_items:
        left = f" ({items - n} of the {items} reviewed pairs left out: {_left_out(rule.statistic)})" \
            if items > n else ""
        return RuleOutcome(**base, status="pending", n=n,
                           detail=f"judge-human agreement is judged on at least {rule.min_items} blind pairs with a "
                                  f"judge verdict and a reviewers' majority; {n} so far{left}, {rule.min_items - n} "
                                  f"more needed")
    on_ci = rule.judge_on == "ci"
    confidence = (_record_confidence(evidence, review.record_id) or review.approval_confidence) if on_ci else None
    judged = low if on_ci else value
    name = {"with_ties": "agreement with ties", "without_ties": "agreement without ties",
            "kappa": "Cohen's kappa"}[rule.statistic]
    base.update(value=value, ci_low=low, ci_high=high, n=n, judged=judged, confidence=confidence,
                alpha=_one_sided_alpha(confidence), test=f"{name} ({interval if on_ci else POINT_VALUE})")
    if judged is None:
        return RuleOutcome(**base, status="pending",
                           detail=f"judge-human {name} is undefined over {n} pairs (of {items} reviewed: a single "
                                  f"outcome throughout, or every vote a tie); the judge is not yet checked")
    ok = judged >= rule.min
    detail = (f"judge ({found.judge or 'unnamed'}) vs reviewers, {name} {_fmt(value)}{_ci(low, high)} over "
              f"{n} of {items} reviewed pairs (those with a reviewers' majority"
              f"{' and no judge tie' if rule.statistic == 'without_ties' else ''}): "
              f"{'lower CI bound ' if on_ci else ''}{_fmt(judged)} {'>=' if ok else '<'} {_fmt(rule.min)}")
    if ok:
        return RuleOutcome(**base, status="pass", detail=detail)
    return RuleOutcome(**base, status="inconclusive",
                       detail=detail + "; the judge agrees with the reviewers too little for its numbers to decide")


def _hold_judge_based(outcome: RuleOutcome, holds: list[tuple[JudgeAgreementRule, RuleOutcome]]) -> RuleOutcome:
    """``outcome`` pending or inconclusive when its metric is judge-based and a block judge_agreement rule
    covering it has not passed (pending wins: more labels may still settle it)."""
    metric = outcome.metric or ""
    blocking = [o for rule, o in holds if any(metric.startswith(p) for p in rule.applies_to)]
    if not blocking or outcome.rule in {o.rule for o in blocking}:
        return outcome
    status = "pending" if any(o.status == "pending" for o in blocking) else "inconclusive"
    why = "; ".join(f"{o.rule}: {o.detail}" for o in blocking)
    return outcome.model_copy(update={"status": status, "needed_items": None,
                                      "detail": f"{outcome.detail}; not counted: a judge-based metric, and the "
                                                f"judge is not checked against the reviewers ({why})"})


def judge(policy: GatePolicy, evidence: Evidence, baselines: list[str], catalogue: MetricCatalogue
          ) -> list[RuleOutcome]:
    """Every rule's outcome, in policy order. ``catalogue`` gives the direction of a metric no record has yet."""
    quorum_rules = [r for r in policy.rules if isinstance(r, ReviewQuorumRule)]
    outcomes: list[RuleOutcome] = []
    for rule in quorum_rules:
        outcomes.append(_judge_review(policy, rule, evidence, catalogue, False))
    review = evidence.review
    # what approval and agreement wait for: every quorum rule passed; without one, every counted item has the
    # labels the review record requires (one label on one item of many is no approval rate to promote on)
    quorum_met = review is not None and (all(o.status == "pass" for o in outcomes) if quorum_rules
                                         else review.items_with_quorum >= review.items_total
                                         and _quorum_unfounded(review) is None)
    by_name = {o.rule: o for o in outcomes}
    ordered: list[RuleOutcome] = []
    for rule in policy.rules:
        if isinstance(rule, ReviewQuorumRule):
            ordered.append(by_name[rule.name])
        elif isinstance(rule, (ApprovalRateRule, MinAgreementRule)):
            ordered.append(_judge_review(policy, rule, evidence, catalogue, quorum_met))
        elif isinstance(rule, NonInferiorityRule):
            ordered += _judge_non_inferiority(policy, rule, evidence, catalogue, baselines)
        elif isinstance(rule, JudgeAgreementRule):
            ordered.append(_judge_judge_agreement(policy, rule, evidence, catalogue))
        elif isinstance(rule, (ThresholdRule, CeilingRule, FloorRule)):
            outcome = _judge_bound(policy, rule, evidence, catalogue)
            if outcome.status in ("pass", "inconclusive") and rule.metric.startswith(REVIEW_PREFIX) and not quorum_met:
                outcome = outcome.model_copy(update={"status": "pending", "needed_items": None,
                                                     "detail": outcome.detail + "; waiting for the review quorum"})
            ordered.append(outcome)
    judge_rules = {r.name: r for r in policy.rules if isinstance(r, JudgeAgreementRule) and r.severity == "block"}
    holds = [(judge_rules[o.rule], o) for o in ordered if o.rule in judge_rules and o.status != "pass"]
    return [_hold_judge_based(o, holds) for o in ordered] if holds else ordered


def verdict(outcomes: list[RuleOutcome]) -> tuple[Verdict, str]:
    """The decision and one sentence saying why: a failed block rule rejects; a block rule pending (waiting for
    human review) or inconclusive (its CI straddles the bound) leaves the decision to people, PENDING_REVIEW,
    never PROMOTE; otherwise every block rule passed and the candidate is promoted."""
    blocking = [o for o in outcomes if o.severity == "block"]
    failed = [o for o in blocking if o.status == "fail"]
    pending = [o for o in blocking if o.status == "pending"]
    inconclusive = [o for o in blocking if o.status == "inconclusive"]
    warned = [o for o in outcomes if o.severity == "warn" and o.status in ("fail", "inconclusive")]
    warn_note = f" ({len(warned)} warning{'s' if len(warned) != 1 else ''}: {', '.join(o.rule for o in warned)})" \
        if warned else ""

    def named(items: list[RuleOutcome]) -> str:
        return "; ".join(f"{o.rule}{f' vs {o.baseline}' if o.baseline else ''} ({o.detail})" for o in items)

    if failed:
        return "REJECT", f"REJECT: {len(failed)} blocking rule{'s' if len(failed) > 1 else ''} failed: {named(failed)}."
    if pending or inconclusive:
        waits = [f"human review is not complete: {named(pending)}"] if pending else []
        if inconclusive:
            waits.append(f"the evidence does not decide {len(inconclusive)} blocking rule"
                         f"{'s' if len(inconclusive) > 1 else ''}: {named(inconclusive)}")
        return "PENDING_REVIEW", (f"PENDING_REVIEW: every other blocking rule passed, but {'; and '.join(waits)}"
                                  f"{warn_note}.")
    return "PROMOTE", f"PROMOTE: all {len(blocking)} blocking checks passed{warn_note}."
