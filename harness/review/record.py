"""The review stage's record: what the humans concluded about one candidate, as the gate reads it.

Written to ``<run>/review/record.json`` from the label store (append-only labels; the latest label of each
reviewer on each item counts). Reviewer names never appear here; counts and rates do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from harness.core.metrics import MetricValue, register
from harness.core.records import Record
from harness.review.store import LABEL_FLAGS

register("review.approval_rate", True, "Share of reviewer labels on the candidate's items that accept the output.",
         "review")
register("review.agreement", True, "Inter-reviewer agreement on accept/reject: Cohen's kappa (two reviewers) "
         "or Krippendorff's alpha (more).", "review", "score")
for _flag in LABEL_FLAGS:
    register(f"review.flag_rate.{_flag}", False, f"Share of reviewer labels on the candidate's items flagging "
             f"{_flag.replace('_', ' ')}.", "review")
register("review.pairwise_win_rate", True, "Blind pairwise: candidate preferred over the baseline, ties as half.",
         "review")


class Agreement(BaseModel):
    statistic: Literal["cohen_kappa", "krippendorff_alpha"]
    value: float | None = Field(description="None when too few items have two or more labels.")
    n: int = Field(description="Items with at least two reviewers' labels.")


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
    approval_rate: float | None
    approval_ci: tuple[float, float] | None = Field(None, description="Bootstrap CI over items.")
    flag_rates: dict[str, float] = Field(default_factory=dict)
    agreement: Agreement | None = Field(None, description="On accept/reject, over all items.")
    agreement_per_flag: dict[str, Agreement] = Field(default_factory=dict)
    pairwise: list[PairwiseOutcome] = Field(default_factory=list)
    helpfulness_mean: float | None = Field(None, description="Mean helpfulness (1 to 5) over the counted labels.")
    pairwise_judgments: int = Field(0, description="Current blind pairwise judgments on the candidate's items.")

    def metric_values(self) -> list[MetricValue]:
        values = []
        if self.approval_rate is not None:
            low, high = self.approval_ci or (None, None)
            values.append(MetricValue(metric="review.approval_rate", model=self.candidate, value=self.approval_rate,
                                      ci_low=low, ci_high=high, n=self.items_with_quorum))
        if self.agreement is not None and self.agreement.value is not None:
            values.append(MetricValue(metric="review.agreement", model=self.candidate, value=self.agreement.value,
                                      n=self.agreement.n))
        values += [MetricValue(metric=f"review.flag_rate.{flag}", model=self.candidate, value=rate,
                               n=self.items_with_quorum) for flag, rate in self.flag_rates.items()]
        values += [MetricValue(metric="review.pairwise_win_rate", model=self.candidate, value=p.win_rate,
                               n=p.wins + p.losses + p.ties, attribute=p.baseline)
                   for p in self.pairwise if p.win_rate is not None]
        return values
