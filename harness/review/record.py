"""The review stage's record: what the humans concluded about one candidate, as the gate reads it.

Written to ``<run>/review/record.json`` from the label store (append-only labels; the latest label of each
reviewer on each item counts; where an item was adjudicated, the latest adjudication counts in place of its
reviewers' labels for approval, flags, helpfulness and the pairwise win rate, while agreement is measured on
the reviewers' own labels). Reviewer names never appear here; counts and rates do.

Schema version 2 added the dispute and adjudication counts, the judge-human agreement on the blind pairwise
items (:class:`JudgeAgreement`) and the agreement of each audit's automatic flag with the reviewers'
(:class:`AutomaticFlagAgreement`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from harness.core.metrics import MetricSpec, MetricValue
from harness.core.records import Record
from harness.review.store import LABEL_FLAGS

APPROVAL_RATE = MetricSpec(
    name="review.approval_rate", higher_is_better=True, unit="rate", label="outputs the reviewers approved",
    description="Share of the candidate's labelled items a strict majority of their reviewers accepted, per queue "
                "stratum and weighted over the strata (weights stated in the record).")
AGREEMENT = MetricSpec(
    name="review.agreement", higher_is_better=True, unit="score", label="agreement between reviewers",
    description="Inter-reviewer agreement on accept/reject: Cohen's kappa (two reviewers) or Krippendorff's alpha "
                "(more).")
FLAG_RATES = tuple(MetricSpec(name=f"review.flag_rate.{flag}", higher_is_better=False, unit="rate",
                              label=f"reviewer labels flagging {flag.replace('_', ' ')}",
                              description=f"Share of reviewer labels on the candidate's items flagging "
                                          f"{flag.replace('_', ' ')}.")
                   for flag in LABEL_FLAGS)
PAIRWISE_WIN_RATE = MetricSpec(
    name="review.pairwise_win_rate", higher_is_better=True, unit="rate",
    label="reviewers preferring the candidate's answer (blind, ties as half)",
    description="Blind pairwise: candidate preferred over the baseline, ties as half.")
JUDGE_AGREEMENT = MetricSpec(
    name="review.judge_agreement", higher_is_better=True, unit="rate",
    label="pairwise judge agrees with the reviewers",
    description="Share of reviewers' blind pairwise votes the bench's pairwise judge agrees with on the same question "
                "and pair, a tie counted as a third outcome (MT-Bench's agreement setup with ties; chance about 1/3).")
JUDGE_AGREEMENT_WITHOUT_TIES = MetricSpec(
    name="review.judge_agreement_without_ties", higher_is_better=True, unit="rate",
    label="pairwise judge agrees with the reviewers (ties left out)",
    description="As review.judge_agreement, over the votes where neither the judge nor the reviewer said tie "
                "(MT-Bench's setup without ties; chance 1/2).")
JUDGE_KAPPA = MetricSpec(
    name="review.judge_kappa", higher_is_better=True, unit="score",
    label="pairwise judge agrees with the reviewers (chance-corrected)",
    description="Cohen's kappa of the pairwise judge's verdicts (win, tie, loss) against the reviewers' votes on "
                "the same pairs.")
AUTOMATIC_FLAG_AGREEMENT = tuple(
    MetricSpec(name=f"review.automatic_flag_agreement.{flag}", higher_is_better=True, unit="rate",
               label=f"automatic {flag.replace('_', ' ')} flag agrees with the reviewers",
               description=f"Share of reviewers' labels whose {flag.replace('_', ' ')} flag equals the automatic "
                           f"flag an audit set on the same item (one value per audit and automatic flag, as the "
                           f"attribute '<audit source>:<automatic flag>').")
    for flag in LABEL_FLAGS)


class Agreement(BaseModel):
    statistic: Literal["cohen_kappa", "krippendorff_alpha"]
    value: float | None = Field(description="Chance-corrected agreement; None when no item has two labels, or when "
                                            "every label is the same value (kappa and alpha are 0/0 then).")
    n: int = Field(description="Items with at least two reviewers' labels.")
    observed: float | None = Field(None, description="Raw agreement: the share of pairs of labels on the same item "
                                                     "that agree (1.0 when every reviewer gave every item the same "
                                                     "label); defined whenever n > 0, also where `value` is not.")


class ApprovalStratum(BaseModel):
    """The approval rate of one queue stratum (``flagged``, ``worst:<metric>``, ``random``; as enqueue wrote it)."""

    stratum: str = Field(description="The stratum the items were queued under (an item two strata picked counts "
                                     "under the first).")
    queued: int = Field(description="The candidate's single-output items queued in this stratum.")
    items: int = Field(description="Of those, items with at least one current label: the rate's n.")
    approved: int = Field(description="Items a strict majority of their current labels accept (a split vote is "
                                      "no approval).")
    rate: float = Field(description="approved / items.")
    ci_low: float
    ci_high: float
    interval: str = Field("wilson", description="How ci_low/ci_high were computed.")
    weight: float = Field(description="The stratum's weight in the model-level approval rate.")


class PairwiseOutcome(BaseModel):
    baseline: str
    wins: int
    losses: int
    ties: int
    win_rate: float | None = Field(description="(wins + ties / 2) / judgments.")


class Agreed(BaseModel):
    """A share of agreeing votes, with its interval."""

    agreeing: int
    n: int = Field(description="Votes compared.")
    rate: float | None = Field(description="agreeing / n; None when n = 0.")
    ci_low: float | None = None
    ci_high: float | None = None
    interval: str = Field("wilson", description="How ci_low/ci_high were computed (the votes on one item are "
                                                "counted as independent, as MT-Bench's study counts them).")


class JudgeDisagreement(BaseModel):
    """One blind pair on which the judge and at least one reviewer voted differently (for the candidate)."""

    item_id: int
    question_id: str
    baseline: str
    question: str = Field(description="The question's first turn, cut to 300 characters.")
    judge: Literal["win", "tie", "loss"] = Field(description="The judge's verdict for the candidate (both answer "
                                                             "orders, combined by the bench's verdict rule).")
    reviewers: dict[str, int] = Field(description="The reviewers' votes for the candidate: win / tie / loss -> "
                                                  "count.")


class JudgeAgreement(BaseModel):
    """The bench's pairwise judge against the reviewers on the blind pairs of the bench's pairwise questions.

    As in MT-Bench's human-agreement study (FastChat ``llm_judge/compute_agreement.py``), each reviewer's vote
    is compared with the judge's one verdict on the same question and pair: *with ties*, a tie is a third
    outcome; *without ties*, a comparison where either side says tie is left out."""

    judge: str | None = Field(description="The judge as the bench record names it.")
    verdict_rule: str | None = Field(None, description="How the bench combined the two answer orders into one "
                                                       "verdict ('mt-bench': an inconsistent pair is a tie).")
    items: int = Field(description="Blind pairs with a judge verdict and at least one reviewer vote.")
    with_ties: Agreed
    without_ties: Agreed
    kappa: float | None = Field(description="Cohen's kappa over the votes with ties (win / tie / loss); None when "
                                            "undefined (a single category throughout).")
    unparseable: int = Field(0, description="Reviewed pairs the judge gave no parseable verdict (left out).")
    unmatched: int = Field(0, description="Reviewed pairs of the bench's pairwise questions with no judge verdict "
                                          "on the same answers (e.g. a bench rerun since they were queued; left "
                                          "out).")
    disagreements: list[JudgeDisagreement] = Field(default_factory=list, description="Pairs where the judge and a "
                                                   "reviewer differ, by item id, at most 50.")
    disagreements_total: int = Field(0, description="All such pairs (the list may be cut).")


class AutomaticFlagAgreement(BaseModel):
    """An audit's automatic flag against the reviewers' flag on the same items (each reviewer's current vote)."""

    source: str = Field(description="Where the items came from, e.g. 'audit/toxicity'.")
    automatic_flag: str = Field(description="The flag the audit set (e.g. hallucination, judged_incorrect).")
    flag: str = Field(description="The reviewers' flag it is compared with.")
    items: int = Field(description="Items with the automatic flag and at least one reviewer's label.")
    agreement: Agreed
    kappa: float | None = Field(description="Cohen's kappa (flagged / not flagged); None when undefined.")
    automatic_flagged: int = Field(description="Of the votes, those on items the audit flagged.")
    reviewer_flagged: int = Field(description="Of the votes, those setting the reviewers' flag.")


class ReviewRecord(Record):
    schema_version: int = Field(2, description="Bumped when this record type's fields change meaning (2: "
                                               "adjudicated labels count, judge and automatic-flag agreement).")
    kind: Literal["review"] = "review"
    candidate: str
    required_reviewers: int = Field(description="Labels from distinct reviewers an item needs (quorum per item).")
    items_total: int = Field(description="Items queued for the candidate.")
    items_with_quorum: int = Field(description="Items labelled by at least required_reviewers reviewers.")
    labels: int = Field(description="Current labels counted (superseded corrections excluded).")
    reviewers: int = Field(description="Distinct reviewers who labelled.")
    approval_rate: float | None = Field(description="Model-level approval: the strata's rates weighted as "
                                                    "`approval_weights` states.")
    approval_ci: tuple[float, float] | None = Field(None, description="CI of approval_rate (`approval_interval`).")
    approval_interval: str | None = Field(None, description="How approval_ci was computed: 'mover-wilson' (Wilson "
                                                            "interval per stratum, combined by MOVER).")
    approval_confidence: float | None = Field(None, description="CI level of approval_ci and the strata's CIs.")
    approval_items: int = Field(0, description="Labelled items approval_rate uses (its n).")
    approval_strata: list[ApprovalStratum] = Field(default_factory=list, description="Approval per queue stratum.")
    approval_weights: str | None = Field(None, description="Which weights approval_rate gives the strata, and why.")
    flag_rates: dict[str, float] = Field(default_factory=dict)
    agreement: Agreement | None = Field(None, description="On accept/reject, over all items.")
    agreement_per_flag: dict[str, Agreement] = Field(default_factory=dict)
    pairwise: list[PairwiseOutcome] = Field(default_factory=list)
    helpfulness_mean: float | None = Field(None, description="Mean helpfulness (1 to 5) over the counted labels.")
    pairwise_judgments: int = Field(0, description="Current blind pairwise judgments on the candidate's items.")

    disputed_items: int = Field(0, description="Items (the candidate's own outputs and its blind pairs) whose "
                                               "reviewers' current labels disagree on accept/reject, a flag, or "
                                               "the preference: the items that need adjudication.")
    adjudicated_items: int = Field(0, description="Items counted with their latest adjudicated label in place of "
                                                  "their reviewers' labels.")
    adjudication_pending: int = Field(0, description="Disputed items with no adjudication yet.")
    judge_agreement: JudgeAgreement | None = Field(None, description="The bench's pairwise judge against the "
                                                                     "reviewers; None without a reviewed pair the "
                                                                     "judge also judged.")
    automatic_flag_agreement: list[AutomaticFlagAgreement] = Field(
        default_factory=list, description="Each audit's automatic flag against the reviewers' flag.")

    METRICS = (APPROVAL_RATE, AGREEMENT, *FLAG_RATES, PAIRWISE_WIN_RATE, JUDGE_AGREEMENT,
               JUDGE_AGREEMENT_WITHOUT_TIES, JUDGE_KAPPA, *AUTOMATIC_FLAG_AGREEMENT)

    def compute_values(self) -> list[MetricValue]:
        """Approval (model-level, then per stratum as ``attribute``), agreement, flag rates and win rate per
        baseline, where defined."""
        values = []
        if self.approval_rate is not None:
            low, high = self.approval_ci or (None, None)
            values.append(MetricValue(metric=APPROVAL_RATE.name, model=self.candidate, value=self.approval_rate,
                                      ci_low=low, ci_high=high, n=self.approval_items or self.items_with_quorum,
                                      interval=self.approval_interval))
            values += [MetricValue(metric=APPROVAL_RATE.name, model=self.candidate, value=s.rate, ci_low=s.ci_low,
                                   ci_high=s.ci_high, n=s.items, attribute=s.stratum, interval=s.interval)
                       for s in self.approval_strata]
        if self.agreement is not None and self.agreement.value is not None:
            values.append(MetricValue(metric=AGREEMENT.name, model=self.candidate, value=self.agreement.value,
                                      n=self.agreement.n))
        values += [MetricValue(metric=f"review.flag_rate.{flag}", model=self.candidate, value=rate,
                               n=self.approval_items or self.items_with_quorum)
                   for flag, rate in self.flag_rates.items()]
        values += [MetricValue(metric=PAIRWISE_WIN_RATE.name, model=self.candidate, value=p.win_rate,
                               n=p.wins + p.losses + p.ties, attribute=p.baseline)
                   for p in self.pairwise if p.win_rate is not None]
        judged = self.judge_agreement
        if judged is not None:
            for spec, agreed in ((JUDGE_AGREEMENT, judged.with_ties),
                                 (JUDGE_AGREEMENT_WITHOUT_TIES, judged.without_ties)):
                if agreed.rate is not None:
                    values.append(MetricValue(metric=spec.name, model=self.candidate, value=agreed.rate,
                                              ci_low=agreed.ci_low, ci_high=agreed.ci_high, n=agreed.n,
                                              interval=agreed.interval))
            if judged.kappa is not None:
                values.append(MetricValue(metric=JUDGE_KAPPA.name, model=self.candidate, value=judged.kappa,
                                          n=judged.with_ties.n))
        values += [MetricValue(metric=f"review.automatic_flag_agreement.{a.flag}", model=self.candidate,
                               value=a.agreement.rate, ci_low=a.agreement.ci_low, ci_high=a.agreement.ci_high,
                               n=a.agreement.n, interval=a.agreement.interval,
                               attribute=f"{a.source}:{a.automatic_flag}")
                   for a in self.automatic_flag_agreement if a.agreement.rate is not None]
        return values
