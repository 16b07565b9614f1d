"""The review stage's record: what the humans concluded about one candidate, as the gate reads it.

Written to ``<run>/review/record.json`` from the label store (append-only labels; the latest label of each
reviewer on each item counts). Reviewer names never appear here; counts and rates do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from harness.core.metrics import MetricSpec, MetricValue
from harness.core.records import Record
from harness.review.store import LABEL_FLAGS

APPROVAL_RATE = MetricSpec(
    name="review.approval_rate", higher_is_better=True, unit="rate",
    description="Share of the candidate's labelled items a strict majority of their reviewers accepted, per queue "
                "stratum and weighted over the strata (weights stated in the record).")
AGREEMENT = MetricSpec(
    name="review.agreement", higher_is_better=True, unit="score",
    description="Inter-reviewer agreement on accept/reject: Cohen's kappa (two reviewers) or Krippendorff's alpha "
                "(more).")
FLAG_RATES = tuple(MetricSpec(name=f"review.flag_rate.{flag}", higher_is_better=False, unit="rate",
                              description=f"Share of reviewer labels on the candidate's items flagging "
                                          f"{flag.replace('_', ' ')}.")
                   for flag in LABEL_FLAGS)
PAIRWISE_WIN_RATE = MetricSpec(
    name="review.pairwise_win_rate", higher_is_better=True, unit="rate",
    description="Blind pairwise: candidate preferred over the baseline, ties as half.")


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


class ReviewRecord(Record):
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

    METRICS = (APPROVAL_RATE, AGREEMENT, *FLAG_RATES, PAIRWISE_WIN_RATE)

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
        return values
