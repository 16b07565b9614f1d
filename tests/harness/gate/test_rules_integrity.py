"""Rules that must not be decided by what cannot change a measurement: the order a record stores its values in, a
point value where the policy asked for the whole CI, a baseline's number in a block rule, and a bound on a metric
whose range its record leaves undeclared."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from gate_records import (
    BASELINES,
    CANDIDATE,
    bench_record,
    catalogue,
    review_record,
    save,
    standard_run,
    toxicity_record,
    write_policy,
)

from audits.bias.metrics import BIAS_METRICS
from audits.registry import AuditedModel
from harness.bench.record import BenchRecord, mt_bench_spec
from harness.core.errors import ConfigError
from harness.core.metrics import MetricCatalogue, MetricDelta, MetricSpec, MetricValue
from harness.core.records import Record
from harness.gate.evidence import collect_evidence
from harness.gate.policy import load_policy
from harness.gate.rules import judge, verdict

NI = "  - {name: ni, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 0.1}\n"


def _decide(tmp_path, store, policy_text: str, *extra: type[Record]):
    """Outcomes by (rule, baseline) and the verdict for the records in ``store``."""
    metrics = catalogue(*extra)
    policy = load_policy(write_policy(tmp_path, policy_text), metrics)
    outcomes = judge(policy, collect_evidence(store, CANDIDATE), list(BASELINES), metrics)
    return {(o.rule, o.baseline): o for o in outcomes}, verdict(outcomes)


def _reorder_stored(store, folder: str, field: str, first: str) -> None:
    """Put the record's stored ``field`` (values or deltas) of attribute ``first`` first; no number changes."""
    path = store.root / folder / "record.json"
    data = json.loads(path.read_text())
    data[field].sort(key=lambda item: item.get("attribute") != first)
    path.write_text(json.dumps(data, indent=2) + "\n")


# ---- the default attribute is the scorer's primary one, not the first stored ----------------------------------

def test_reordering_stored_toxicity_values_does_not_change_the_attribute_judged(tmp_path):
    # expected max toxicity 0.30 on `toxicity` (the scorer's first attribute), 0.15 on `insult`; ceiling 0.2.
    store = standard_run(tmp_path / "runs", review=False)
    save(store, toxicity_record("r1", emt={"cand": 0.30, "base-a": 0.12, "base-b": 0.15}), "audit/toxicity")
    policy = "rules:\n" + NI + "  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}\n"
    outcomes, (decision, _) = _decide(tmp_path, store, policy)
    assert (outcomes[("tox", None)].attribute, outcomes[("tox", None)].status, decision) == ("toxicity", "fail",
                                                                                             "REJECT")
    _reorder_stored(store, "audit/toxicity", "values", "insult")  # the evidence check accepts any order
    outcomes, (decision, _) = _decide(tmp_path, store, policy)
    tox = outcomes[("tox", None)]
    assert (tox.attribute, tox.value, tox.status, decision) == ("toxicity", 0.30, "fail", "REJECT")


def test_the_default_attribute_follows_the_scorers_declared_order(tmp_path):
    # The scorer's own order decides: a scorer listing insult first is judged on insult (0.30 here).
    store = standard_run(tmp_path / "runs", review=False)
    save(store, toxicity_record("r1", emt={"cand": 0.30, "base-a": 0.12, "base-b": 0.15},
                                attributes=("insult", "toxicity")), "audit/toxicity")
    policy = "rules:\n" + NI + "  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2}\n"
    tox = _decide(tmp_path, store, policy)[0][("tox", None)]
    assert (tox.attribute, tox.value) == ("insult", 0.30)


def test_reordering_stored_deltas_does_not_change_the_attribute_a_non_inferiority_rule_judges(tmp_path):
    store = standard_run(tmp_path / "runs", review=False)
    made = toxicity_record("r1")  # deltas on `toxicity`: -0.02 [-0.05, 0.01] and -0.05 [-0.08, -0.01]
    insult = [MetricDelta(metric="toxicity.expected_max_toxicity", candidate=CANDIDATE, baseline=b, difference=0.2,
                          ci_low=0.15, ci_high=0.25, confidence=0.95, n=24, attribute="insult") for b in BASELINES]
    save(store, made.model_copy(update={"deltas": insult + made.deltas}), "audit/toxicity")
    policy = "rules:\n  - {name: tox-ni, type: non_inferiority, metric: toxicity.expected_max_toxicity, margin: 0.05}\n"
    outcomes, (decision, _) = _decide(tmp_path, store, policy)
    assert {o.attribute for o in outcomes.values()} == {"toxicity"} and decision == "PROMOTE"


class PerBaselineRecord(Record):
    """An audit with one value per baseline (the attribute) and no scorer whose first attribute would lead."""

    kind: Literal["per_baseline_audit"] = "per_baseline_audit"
    models: list[AuditedModel]
    rates: dict[str, float]

    METRICS = (MetricSpec(name="paired.agreement", higher_is_better=True, unit="rate", description="Agreement."),)

    def compute_values(self) -> list[MetricValue]:
        return [MetricValue(metric="paired.agreement", model=CANDIDATE, value=v, ci_low=v - 0.1, ci_high=v + 0.1,
                            n=20, attribute=b, interval="wilson") for b, v in self.rates.items()]


def test_a_metric_with_a_value_per_attribute_and_no_scorer_must_name_one(tmp_path):
    store = standard_run(tmp_path / "runs", review=False)
    audited = [AuditedModel(name=CANDIDATE, role="candidate", model=m.model)
               for m in bench_record("r1").models if m.name == CANDIDATE]
    save(store, PerBaselineRecord(record_id="per_baseline_audit-1", run_id="r1", created_at="2026-11-30T10:00:00+00:00",
                                  fingerprint="p" * 64, models=audited, rates={"base-a": 0.9, "base-b": 0.3}),
         "audit/paired")
    floor = "  - {name: agree, type: floor, metric: paired.agreement, min: 0.5}\n"
    with pytest.raises(ConfigError, match=r"rule 'agree': paired.agreement has a value per attribute \(base-a, "
                                          r"base-b\) .*name one with `attribute:`"):
        _decide(tmp_path, store, "rules:\n" + NI + floor, PerBaselineRecord)
    named = floor.replace("min: 0.5}", "min: 0.5, attribute: base-b}")
    outcomes, _ = _decide(tmp_path, store, "rules:\n" + NI + named, PerBaselineRecord)
    assert (outcomes[("agree", None)].attribute, outcomes[("agree", None)].status) == ("base-b", "fail")


# ---- inconclusive: true never passes on a value without a CI -------------------------------------------------

class NoCiRecord(Record):
    """An audit of 8 items whose lower-is-better rate has no CI (a bootstrap below 10 items gives none)."""

    kind: Literal["no_ci_audit"] = "no_ci_audit"
    models: list[AuditedModel]
    rate: float

    METRICS = (MetricSpec(name="few.bad_rate", higher_is_better=False, unit="rate", description="Bad outputs."),)

    def compute_values(self) -> list[MetricValue]:
        return [MetricValue(metric="few.bad_rate", model=CANDIDATE, value=self.rate, n=8)]


@pytest.mark.parametrize(("mode", "status", "decision"), [
    ("", "pass", "PROMOTE"),                                   # the point value, as asked
    (", judge_on: ci", "fail", "REJECT"),                      # no CI to judge
    (", inconclusive: true", "inconclusive", "PENDING_REVIEW"),  # no CI on the passing side: not a pass
])
def test_a_ceiling_on_a_value_without_a_ci(tmp_path, mode, status, decision):
    store = standard_run(tmp_path / "runs", review=False)
    audited = [AuditedModel(name=CANDIDATE, role="candidate", model=m.model)
               for m in bench_record("r1").models if m.name == CANDIDATE]
    save(store, NoCiRecord(record_id="no_ci_audit-1", run_id="r1", created_at="2026-11-30T10:00:00+00:00",
                           fingerprint="n" * 64, models=audited, rate=0.1), "audit/few")
    policy = "rules:\n" + NI + f"  - {{name: bad, type: ceiling, metric: few.bad_rate, max: 0.2{mode}}}\n"
    outcomes, (got, reason) = _decide(tmp_path, store, policy, NoCiRecord)
    bad = outcomes[("bad", None)]
    assert (bad.status, got) == (status, decision)
    if status == "inconclusive":
        assert bad.needed_items is None and bad.test == "no CI"
        assert "no CI (n=8): with `inconclusive: true` only a CI wholly on one side" in bad.detail
        assert "the evidence does not decide 1 blocking rule: bad" in reason


def test_an_inconclusive_approval_rate_without_a_ci_is_inconclusive(tmp_path):
    store = standard_run(tmp_path / "runs", review=False)
    save(store, review_record("r1", approval_rate=0.9, approval_ci=None), "review")
    policy = ("rules:\n" + NI + "  - {name: reviewed, type: review_quorum, min_items: 20, min_reviewers: 2}\n"
              "  - {name: approved, type: approval_rate, min: 0.6, inconclusive: true}\n")
    outcomes, (decision, _) = _decide(tmp_path, store, policy)
    assert (outcomes[("approved", None)].status, decision) == ("inconclusive", "PENDING_REVIEW")


# ---- a block rule judges the candidate ---------------------------------------------------------------------

def test_a_block_rule_on_a_baselines_value_is_refused_naming_its_line(tmp_path):
    metrics = catalogue()
    baseline_rule = "  - {name: tox, type: ceiling, metric: toxicity.expected_max_toxicity, max: 0.2, model: base-a}\n"
    with pytest.raises(ConfigError, match=r"policy.yaml:2: rule 'tox': a block rule judges the candidate, but "
                                          r"`model: base-a` .*make the rule `severity: warn`"):
        load_policy(write_policy(tmp_path, "rules:\n" + baseline_rule), metrics)
    with pytest.raises(ConfigError, match=r"policy.yaml:3: rule 'tox'"):  # beside a candidate block rule too
        load_policy(write_policy(tmp_path, "rules:\n" + NI + baseline_rule), metrics)
    # As a warn rule it is reported on the baseline's value and does not decide.
    store = standard_run(tmp_path / "runs", review=False)
    save(store, toxicity_record("r1", emt={"cand": 0.10, "base-a": 0.25, "base-b": 0.15}), "audit/toxicity")
    outcomes, (decision, reason) = _decide(tmp_path, store, "rules:\n" + NI
                                           + baseline_rule.replace("model: base-a}", "model: base-a, severity: warn}"))
    assert (outcomes[("tox", None)].model, outcomes[("tox", None)].status) == ("base-a", "fail")
    assert decision == "PROMOTE" and "1 warning: tox" in reason


# ---- declared ranges: a block rule every value meets is refused ---------------------------------------------

def _bench_with_successes(counted: dict[str, int] | None):
    """An arc_easy accuracy over 79 items (candidate 0.4, baselines 0.9); ``counted``: model -> items scoring 1,
    as the bench counts them for a 0/1-per-item metric (None: none counted, as for a metric that is not)."""
    means = {"cand": 32 / 79, "base-a": 71 / 79, "base-b": 71 / 79}
    made = bench_record("r1", task="arc_easy", metric="acc", means=means,
                        deltas={"base-a": (-0.5, -0.6, -0.4), "base-b": (-0.5, -0.6, -0.4)}
                        ).model_dump(exclude={"metrics", "values", "deltas"})
    for model, hits in (counted or {}).items():
        made["scores"][model]["arc_easy"]["successes"] = {"acc": hits}
    return BenchRecord.model_validate(made)


def test_an_accuracy_the_bench_counts_is_a_rate_and_a_floor_of_0_on_it_is_refused(tmp_path):
    counted = _bench_with_successes({"cand": 32, "base-a": 71, "base-b": 71})
    spec = next(s for s in counted.declared_metrics() if s.name == "bench.arc_easy.acc")
    assert (spec.unit, spec.value_range) == ("rate", (0.0, 1.0))
    store = standard_run(tmp_path / "runs", review=False)
    save(store, counted, f"bench/{CANDIDATE}")
    policy = ("rules:\n  - {name: acc-floor, type: floor, metric: bench.arc_easy.acc, min: 0}\n"
              "  - {name: not-worse, type: non_inferiority, metric: bench.arc_easy.acc, margin: 0.1, severity: warn}\n")
    with pytest.raises(ConfigError, match=r"rule 'acc-floor': a block rule that cannot fail: bench.arc_easy.acc is "
                                          r"a rate \(0..1\), so every value is at least min 0"):
        _decide(tmp_path, store, policy)
    # A bound inside the range judges: the candidate's 0.405 is under a floor of 0.5.
    outcomes, (decision, _) = _decide(tmp_path, store, policy.replace("min: 0}", "min: 0.5}"))
    assert (outcomes[("acc-floor", None)].status, decision) == ("fail", "REJECT")


def test_a_metric_not_every_model_counts_successes_of_stays_a_score():
    # One model's results without counts (a metric not 0/1 per item there) leave the scale unknown.
    partly = _bench_with_successes({"cand": 32, "base-a": 71})
    assert next(s for s in partly.declared_metrics() if s.name == "bench.arc_easy.acc").unit == "score"
    assert next(s for s in _bench_with_successes(None).declared_metrics()
                if s.name == "bench.arc_easy.acc").value_range == (float("-inf"), float("inf"))


@pytest.mark.parametrize(("specs", "rule", "why"), [
    (BIAS_METRICS, "{name: b, type: ceiling, metric: bias.abs_bias_score_ambig, max: 1}",
     r"bias.abs_bias_score_ambig is a score \(0..1\), so every value is at most max 1"),
    (BIAS_METRICS, "{name: b, type: ceiling, metric: bias.gender_identity.abs_bias_score_disambig, max: 1.5}",
     r"bias.gender_identity.abs_bias_score_disambig is a score \(0..1\); the bound 1.5 is impossible"),
    ((mt_bench_spec("score"),), "{name: b, type: floor, metric: bench.mt_bench.score, min: 1}",
     r"bench.mt_bench.score is a score \(1..10\), so every value is at least min 1"),
    ((mt_bench_spec("writing"),), "{name: b, type: floor, metric: bench.mt_bench.writing, min: 11}",
     r"bench.mt_bench.writing is a score \(1..10\); the bound 11.0 is impossible"),
])
def test_bias_and_mt_bench_scores_declare_their_range(tmp_path, specs, rule, why):
    metrics = MetricCatalogue(specs)
    with pytest.raises(ConfigError, match=r"policy.yaml:2: rule 'b': .*" + why):
        load_policy(write_policy(tmp_path, f"rules:\n  - {rule}\n"), metrics)
    # the signed bias score is not a gate metric (it has no better direction); |s| bounds are declared per category
    assert all(s.value_range == (0.0, 1.0) for s in BIAS_METRICS)
