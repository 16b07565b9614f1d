"""Rules judged on hand-made records, through the policy loader, the evidence and ``judge``/``verdict`` alone
(nothing is written): the test, alpha and margin of every rule, the inconclusive option, agreement that is
undefined or measured on too few items."""

from __future__ import annotations

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
    write_policy,
)

from audits.registry import AuditedModel
from harness.core.errors import ConfigError
from harness.core.metrics import MetricSpec, MetricValue
from harness.core.records import Record
from harness.gate.evidence import collect_evidence
from harness.gate.policy import load_policy
from harness.gate.rules import judge, needed_items, verdict
from harness.review.record import Agreement, ApprovalStratum, ReviewRecord


class RateAuditRecord(Record):
    """An audit with one lower-is-better rate whose CI method and level the record states."""

    kind: Literal["rate_audit"] = "rate_audit"
    models: list[AuditedModel]
    rate: float
    ci: tuple[float, float]

    METRICS = (MetricSpec(name="rated.bad_rate", higher_is_better=False, unit="rate", description="Bad outputs."),)

    def compute_values(self) -> list[MetricValue]:
        return [MetricValue(metric="rated.bad_rate", model=CANDIDATE, value=self.rate, ci_low=self.ci[0],
                            ci_high=self.ci[1], n=24, interval="wilson")]


def _judge(tmp_path, policy_text: str, *, review=None, rate=(0.25, (0.15, 0.35)), bench=None):
    """Outcomes by rule (and baseline) and the verdict, for a run with the given records."""
    home = tmp_path / "runs"
    store = standard_run(home, review=False)
    bench = bench or bench_record("r1")
    save(store, bench, f"bench/{CANDIDATE}")
    audited = [AuditedModel(name=CANDIDATE, role="candidate", model=m.model)
               for m in bench.models if m.name == CANDIDATE]
    save(store, RateAuditRecord(record_id="rate_audit-1", run_id="r1", created_at="2026-11-30T10:00:00+00:00",
                                fingerprint="z" * 64, config={"confidence": 0.9}, models=audited, rate=rate[0],
                                ci=rate[1]),
         "audit/rated")
    if review is not None:
        save(store, review, "review")
    metrics = catalogue(RateAuditRecord)
    policy = load_policy(write_policy(tmp_path, policy_text), metrics)
    outcomes = judge(policy, collect_evidence(store, CANDIDATE), list(BASELINES), metrics)
    return {(o.rule, o.baseline): o for o in outcomes}, verdict(outcomes)


def _review(**fields):
    """The hand-made review record (30 items, all with a quorum) with fields replaced, its values recomputed."""
    made = review_record("r1").model_dump(exclude={"metrics", "values", "deltas"})
    return ReviewRecord.model_validate({**made, **fields})


QUORUM = "  - {name: reviewed, type: review_quorum, min_items: 20, min_reviewers: 2}\n"


# ---- every rule states its test, alpha and margin ---------------------------------------------------------------

def test_every_rule_type_states_its_test_alpha_and_margin(tmp_path):
    policy = ("rules:\n"
              "  - {name: ni, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 0.1}\n"
              "  - {name: bad-ci, type: ceiling, metric: rated.bad_rate, max: 0.4, judge_on: ci}\n"
              "  - {name: bad-value, type: threshold, metric: rated.bad_rate, value: 0.4}\n"
              + QUORUM +
              "  - {name: approved, type: approval_rate, min: 0.5, judge_on: ci}\n"
              "  - {name: agree, type: min_agreement, min: 0.4}\n")
    review = _review(approval_interval="mover-wilson", approval_confidence=0.95, approval_items=30)
    outcomes, (decision, _) = _judge(tmp_path, policy, review=review)
    fields = {key: (o.status, o.test, o.alpha, o.margin) for key, o in outcomes.items()}
    assert fields == {
        ("ni", "base-a"): ("pass", "paired CI (method not recorded)", 0.025, 0.1),
        ("ni", "base-b"): ("pass", "paired CI (method not recorded)", 0.025, 0.1),
        ("bad-ci", None): ("pass", "wilson", 0.05, None),          # the record's 90% CI: one bound, 5%
        ("bad-value", None): ("pass", "point value", None, None),
        ("reviewed", None): ("pass", "count of items with a quorum", None, None),
        ("approved", None): ("pass", "mover-wilson", 0.025, None),
        ("agree", None): ("pass", "cohen_kappa (point value)", None, None),
    }
    assert outcomes[("bad-ci", None)].confidence == 0.9 and decision == "PROMOTE"


# ---- inconclusive -----------------------------------------------------------------------------------------------

def test_needed_items_by_the_formula():
    # n = 79, CI half-width toward the bound 0.14 at 95%, value 0.12 from the bound, power 0.8:
    # sd = sqrt(79) * 0.14 / 1.959964; n_total = ((1.959964 + 0.841621) * sd / 0.12)^2 = 219.70 -> 220, 141 more.
    assert needed_items(79, 0.12, 0.14, 0.95, 0.8) == 141
    assert needed_items(79, -0.12, 0.14, 0.95, 0.8) == 141  # the same evidence the other way decides a fail
    assert needed_items(79, 0.0, 0.14, 0.95, 0.8) is None   # on the bound: no number of items decides it
    assert needed_items(79, 0.12, 0.14, 0.95, 0.3) == 1     # a power below 1/2 needs no more than one


def test_non_inferiority_straddling_the_margin_is_inconclusive_with_the_items_needed(tmp_path):
    # candidate - base-a = 0.02, CI [-0.12, 0.16]: the worst case -0.12 is below -0.10, the best case above it.
    bench = bench_record("r1", deltas={"base-a": (0.02, -0.12, 0.16), "base-b": (0.0, -0.05, 0.05)})
    plain = "rules:\n  - {name: ni, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 0.1}\n"
    outcomes, (decision, _) = _judge(tmp_path / "a", plain, bench=bench)
    assert (outcomes[("ni", "base-a")].status, decision) == ("fail", "REJECT")  # off by default
    asked = plain.replace("margin: 0.1}", "margin: 0.1, inconclusive: true}")
    outcomes, (decision, reason) = _judge(tmp_path / "b", asked, bench=bench)
    ni = outcomes[("ni", "base-a")]
    assert (ni.status, ni.needed_items, ni.judged, ni.margin, ni.alpha) == ("inconclusive", 141, -0.12, 0.1, 0.025)
    assert "about 141 more items would decide it (pass, at the observed value) with power 0.8" in ni.detail
    assert outcomes[("ni", "base-b")].status == "pass"
    # An inconclusive block rule never promotes: the decision is left to people.
    assert decision == "PENDING_REVIEW"
    assert "the evidence does not decide 1 blocking rule: ni vs base-a" in reason


def test_inconclusive_ceiling_uses_the_records_ci_level_and_power(tmp_path):
    # bad rate 0.25, 90% CI [0.15, 0.35], ceiling 0.30: the upper bound fails, the lower passes.
    # sd = sqrt(24) * 0.10 / 1.644854; n_total = ((1.644854 + 0.841621) * sd / 0.05)^2 = 219.37 -> 220: 196 more.
    policy = "rules:\n  - {name: bad, type: ceiling, metric: rated.bad_rate, max: 0.3, inconclusive: true}\n"
    outcomes, (decision, _) = _judge(tmp_path / "a", policy)
    bad = outcomes[("bad", None)]
    assert (bad.status, bad.needed_items, bad.alpha, bad.test, bad.value) == ("inconclusive", 196, 0.05, "wilson", 0.25)
    assert decision == "PENDING_REVIEW"
    # The whole CI under the ceiling passes; the whole CI above it fails, both as before.
    assert _judge(tmp_path / "b", policy, rate=(0.2, (0.1, 0.29)))[0][("bad", None)].status == "pass"
    failing = _judge(tmp_path / "c", policy, rate=(0.4, (0.31, 0.5)))[0][("bad", None)]
    assert (failing.status, failing.needed_items) == ("fail", None)
    # More power asks for more items: ((1.644854 + 1.281552) * sd / 0.05)^2 = 303.87 -> 304: 280 more.
    stronger = policy.replace("inconclusive: true}", "inconclusive: true, power: 0.9}")
    assert _judge(tmp_path / "d", stronger)[0][("bad", None)].needed_items == 280


def test_an_inconclusive_warn_rule_is_reported_and_does_not_hold_the_verdict(tmp_path):
    policy = ("rules:\n  - {name: bad, type: ceiling, metric: rated.bad_rate, max: 0.3, inconclusive: true, "
              "severity: warn}\n  - {name: ok, type: ceiling, metric: rated.bad_rate, max: 0.5}\n")
    outcomes, (decision, reason) = _judge(tmp_path, policy)
    assert outcomes[("bad", None)].status == "inconclusive"
    assert decision == "PROMOTE" and "1 warning: bad" in reason


def test_inconclusive_approval_rate(tmp_path):
    policy = "rules:\n" + QUORUM + "  - {name: approved, type: approval_rate, min: 0.7, inconclusive: true}\n"
    review = _review(approval_rate=0.75, approval_ci=(0.6, 0.86), approval_interval="mover-wilson",
                     approval_confidence=0.95, approval_items=30)
    outcomes, (decision, _) = _judge(tmp_path, policy, review=review)
    approved = outcomes[("approved", None)]
    # sd = sqrt(30) * 0.15 / 1.959964; ((1.959964 + 0.841621) * sd / 0.05)^2 = 551.6 -> 552: 522 more items.
    assert (approved.status, approved.needed_items, decision) == ("inconclusive", 522, "PENDING_REVIEW")


@pytest.mark.parametrize("field", ["power: 1.0", "power: 0"])
def test_an_impossible_power_is_refused(tmp_path, field):
    policy = f"rules:\n  - {{name: bad, type: ceiling, metric: rated.bad_rate, max: 0.3, inconclusive: true, {field}}}\n"
    with pytest.raises(ConfigError, match=r"policy.yaml:2: rule 'bad': power is a probability in \(0, 1\)"):
        _judge(tmp_path, policy)


# ---- agreement --------------------------------------------------------------------------------------------------

AGREE = "rules:\n" + QUORUM + "  - {name: agree, type: min_agreement, min: 0.4}\n"


def test_undefined_agreement_with_perfect_raw_agreement_passes_and_says_why(tmp_path):
    """Every reviewer accepted every item: kappa is 0/0. Perfect raw agreement passes (it used to wait forever
    'for more items with two reviewers')."""
    review = _review(agreement=Agreement(statistic="cohen_kappa", value=None, n=30, observed=1.0))
    outcomes, (decision, _) = _judge(tmp_path, AGREE, review=review)
    agree = outcomes[("agree", None)]
    assert (agree.status, agree.value, agree.judged, agree.n, agree.test) == (
        "pass", None, 1.0, 30, "raw agreement (cohen_kappa undefined)")
    assert "cohen_kappa is undefined (0/0)" in agree.detail and "raw agreement 1 is perfect agreement" in agree.detail
    assert decision == "PROMOTE"


def test_agreement_waits_for_min_items_doubly_labelled(tmp_path):
    review = _review(agreement=Agreement(statistic="cohen_kappa", value=0.8, n=12, observed=0.9))
    outcomes, (decision, _) = _judge(tmp_path / "a", AGREE, review=review)
    agree = outcomes[("agree", None)]
    assert (agree.status, agree.n, decision) == ("pending", 12, "PENDING_REVIEW")
    assert agree.detail == ("agreement is judged on at least 20 items labelled by two or more reviewers; 12 so far, "
                            "8 more needed")
    lower = AGREE.replace("min: 0.4}", "min: 0.4, min_items: 12}")
    outcomes, (decision, _) = _judge(tmp_path / "b", lower, review=review)
    assert (outcomes[("agree", None)].status, outcomes[("agree", None)].value, decision) == ("pass", 0.8, "PROMOTE")


def test_agreement_min_items_beyond_the_queue_or_below_two_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"rule 'agree': judges agreement on at least 31 doubly labelled items, "
                                          r"but only 30 items are queued"):
        _judge(tmp_path / "a", AGREE.replace("min: 0.4}", "min: 0.4, min_items: 31}"), review=_review())
    with pytest.raises(ConfigError, match=r"rule 'agree': min_items: agreement needs at least 2"):
        _judge(tmp_path / "b", AGREE.replace("min: 0.4}", "min: 0.4, min_items: 1}"), review=_review())


def test_approval_rule_judges_the_model_level_rate_not_a_stratum(tmp_path):
    strata = [ApprovalStratum(stratum="flagged", queued=10, items=10, approved=2, rate=0.2, ci_low=0.06,
                              ci_high=0.51, weight=1 / 3),
              ApprovalStratum(stratum="random", queued=20, items=20, approved=20, rate=1.0, ci_low=0.84,
                              ci_high=1.0, weight=2 / 3)]
    review = _review(approval_rate=0.2 / 3 + 2 / 3, approval_ci=(0.6, 0.84), approval_strata=strata,
                     approval_items=30)
    policy = ("rules:\n" + QUORUM + "  - {name: approved, type: approval_rate, min: 0.7}\n"
              "  - {name: flagged-ok, type: floor, metric: review.approval_rate, attribute: flagged, min: 0.5}\n")
    outcomes, (decision, _) = _judge(tmp_path, policy, review=review)
    approved = outcomes[("approved", None)]
    assert (approved.status, approved.value, approved.n) == ("pass", pytest.approx(0.2 / 3 + 2 / 3), 30)
    assert "flagged 2/10 (weight 0.3333); random 20/20 (weight 0.6667)" in approved.detail
    flagged = outcomes[("flagged-ok", None)]
    assert (flagged.status, flagged.value, flagged.n, decision) == ("fail", 0.2, 10, "REJECT")


# ---- judge_agreement: the judge checked against the reviewers before judge-based rules count ---------------------

def _judged_bench():
    """The hand-made bench with the pairwise judge's position consistency 0.9 per baseline (a judge-based metric)."""
    from harness.bench.pairwise import PairwiseResult
    from harness.bench.record import BenchRecord

    made = bench_record("r1").model_dump(exclude={"metrics", "values", "deltas"})
    made["pairwise"] = [PairwiseResult(baseline=b, judge="tiny-judge", n=10, wins=4, ties=2, losses=4, unparseable=0,
                                       win_rate=0.5, ci_low=0.3, ci_high=0.7, consistent=9, position_consistency=0.9,
                                       consistency_ci_low=0.6, consistency_ci_high=0.98).model_dump()
                        for b in BASELINES]
    return BenchRecord.model_validate(made)


def _judge_agreement(items: int, agreeing: int, compared: int, kappa: float | None = 0.4):
    """``items`` reviewed pairs, of which ``compared`` have a reviewers' majority (the rest split)."""
    from harness.core.stats import proportion_interval
    from harness.review.record import Agreed, JudgeAgreement

    assert compared <= items  # a statistic is computed on some of the reviewed pairs, never more
    low, high = proportion_interval(agreeing, compared, 0.95, "wilson")
    share = Agreed(agreeing=agreeing, n=compared, rate=agreeing / compared, ci_low=low, ci_high=high,
                   split=items - compared)
    return JudgeAgreement(judge="tiny-judge", items=items, with_ties=share, without_ties=share, kappa=kappa)


JUDGED = ("rules:\n"
          "  - {name: judge-checked, type: judge_agreement, min: 0.6, min_items: 20}\n"
          "  - {name: consistent-judge, type: floor, metric: bench.pairwise.position_consistency, min: 0.8, "
          "attribute: base-a}\n"
          "  - {name: ni, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 0.1}\n")


def test_judge_based_rules_count_once_the_judge_agrees_with_the_reviewers(tmp_path):
    review = _review(judge_agreement=_judge_agreement(items=50, agreeing=40, compared=50))
    outcomes, (decision, _) = _judge(tmp_path, JUDGED, review=review, bench=_judged_bench())
    checked = outcomes[("judge-checked", None)]
    assert (checked.status, checked.metric, checked.value, checked.n) == ("pass", "review.judge_agreement", 0.8, 50)
    assert ("agreement with ties 0.8 [0.6696, 0.8876] over 50 of 50 reviewed pairs (those with a reviewers' "
            "majority): 0.8 >= 0.6") in checked.detail
    assert outcomes[("consistent-judge", None)].status == "pass" and decision == "PROMOTE"


def test_a_judge_the_reviewers_disagree_with_holds_judge_based_rules_inconclusive(tmp_path):
    review = _review(judge_agreement=_judge_agreement(items=50, agreeing=20, compared=50))
    outcomes, (decision, reason) = _judge(tmp_path, JUDGED, review=review, bench=_judged_bench())
    checked, held = outcomes[("judge-checked", None)], outcomes[("consistent-judge", None)]
    assert checked.status == "inconclusive" and "0.4 < 0.6" in checked.detail
    assert held.status == "inconclusive" and held.value == 0.9  # its own number is kept, but it does not count
    assert "not counted: a judge-based metric, and the judge is not checked" in held.detail
    assert outcomes[("ni", "base-a")].status == "pass"  # not judge-based: unaffected
    assert decision == "PENDING_REVIEW" and "judge-checked" in reason


def test_judge_based_rules_wait_while_too_few_pairs_are_labelled(tmp_path):
    review = _review(judge_agreement=_judge_agreement(items=12, agreeing=12, compared=12))
    outcomes, (decision, _) = _judge(tmp_path, JUDGED, review=review, bench=_judged_bench())
    checked, held = outcomes[("judge-checked", None)], outcomes[("consistent-judge", None)]
    assert checked.status == "pending" and "12 so far, 8 more needed" in checked.detail
    assert held.status == "pending" and decision == "PENDING_REVIEW"
    # No review record at all: the same.
    outcomes, (decision, _) = _judge(tmp_path / "none", JUDGED, bench=_judged_bench())
    assert outcomes[("consistent-judge", None)].status == "pending" and decision == "PENDING_REVIEW"


def test_a_failing_judge_based_rule_is_not_a_rejection_until_the_judge_is_checked(tmp_path):
    policy = JUDGED.replace("min: 0.8, attribute", "min: 0.95, attribute")
    review = _review(judge_agreement=_judge_agreement(items=12, agreeing=12, compared=12))
    outcomes, (decision, _) = _judge(tmp_path / "a", policy, review=review, bench=_judged_bench())
    assert outcomes[("consistent-judge", None)].status == "pending" and decision == "PENDING_REVIEW"
    review = _review(judge_agreement=_judge_agreement(items=50, agreeing=40, compared=50))
    outcomes, (decision, _) = _judge(tmp_path / "b", policy, review=review, bench=_judged_bench())
    assert outcomes[("consistent-judge", None)].status == "fail" and decision == "REJECT"


def test_judge_agreement_on_kappa_or_the_lower_ci_bound_and_a_warn_rule_holds_nothing(tmp_path):
    review = _review(judge_agreement=_judge_agreement(items=50, agreeing=35, compared=50, kappa=0.3))
    on_ci = JUDGED.replace("min_items: 20}", "min_items: 20, judge_on: ci}")  # 0.7, Wilson low 0.5625 < 0.6
    outcomes, (decision, _) = _judge(tmp_path / "a", on_ci, review=review, bench=_judged_bench())
    checked = outcomes[("judge-checked", None)]
    assert (checked.status, checked.test) == ("inconclusive", "agreement with ties (wilson)")
    assert checked.judged == pytest.approx(0.5625, abs=1e-3) and decision == "PENDING_REVIEW"
    kappa = JUDGED.replace("min: 0.6, min_items: 20}", "min: 0.25, min_items: 20, statistic: kappa}")
    outcomes, (decision, _) = _judge(tmp_path / "b", kappa, review=review, bench=_judged_bench())
    assert (outcomes[("judge-checked", None)].status, outcomes[("judge-checked", None)].metric) == (
        "pass", "review.judge_kappa")
    assert decision == "PROMOTE"
    warn = JUDGED.replace("min_items: 20}", "min_items: 20, severity: warn}")
    outcomes, (decision, _) = _judge(tmp_path / "c", warn, review=_review(
        judge_agreement=_judge_agreement(items=50, agreeing=20, compared=50)), bench=_judged_bench())
    assert outcomes[("consistent-judge", None)].status == "pass" and decision == "PROMOTE"


@pytest.mark.parametrize("rule, message", [
    ("{name: j, type: judge_agreement, min: 1.5}", "with_ties lies in 0..1; min 1.5 is impossible"),
    ("{name: j, type: judge_agreement, min: -0.5, statistic: kappa, judge_on: ci}", "kappa has no CI"),
    ("{name: j, type: judge_agreement, min: 0.5, min_items: 0}", "min_items must be at least 1"),
    ("{name: j, type: judge_agreement, min: 0.5, applies_to: []}", "applies_to: name at least one"),
])
def test_an_impossible_judge_agreement_rule_is_refused(tmp_path, rule, message):
    with pytest.raises(ConfigError, match=message):
        load_policy(write_policy(tmp_path, f"rules:\n  - {rule}\n" + QUORUM), catalogue())
