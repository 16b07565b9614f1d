"""The review stage's record: what the humans concluded about one candidate, as the gate reads it.

Written to ``<run>/review/record.json`` from the label store (append-only labels; the latest label of each
reviewer on each item counts; where an item was adjudicated, the latest adjudication counts in place of its
reviewers' labels for approval, flags, helpfulness and the pairwise win rate, while agreement is measured on
the reviewers' own labels). Reviewer names never appear here; counts and rates do.

Schema version 2 added the dispute and adjudication counts, the judge-human agreement on the blind pairwise
items (:class:`JudgeAgreement`) and the agreement of each audit's automatic flag with the reviewers'
(:class:`AutomaticFlagAgreement`).

Schema version 3 counts only the items of the current evidence (queued from the candidate's bench record or an
audit's record as they are now, or holding an output one of them holds), names those records and the candidate's
weights hash so the gate can check them against its own evidence, counts the labelled items left out as stale,
and measures judge-human and automatic-flag agreement over items (the reviewers' majority), not votes.
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
    description="Share of blind pairs on which the bench's pairwise judge agrees with the reviewers' majority vote "
                "on the same question and answers, a tie counted as a third outcome (MT-Bench's agreement setup "
                "with ties, taken per pair; chance about 1/3); pairs whose reviewers split are left out.")
JUDGE_AGREEMENT_WITHOUT_TIES = MetricSpec(
    name="review.judge_agreement_without_ties", higher_is_better=True, unit="rate",
    label="pairwise judge agrees with the reviewers (ties left out)",
    description="As review.judge_agreement, leaving out pairs the judge called a tie and the reviewers' tie votes "
                "(MT-Bench's setup without ties, taken per pair; chance 1/2).")
JUDGE_KAPPA = MetricSpec(
    name="review.judge_kappa", higher_is_better=True, unit="score",
    label="pairwise judge agrees with the reviewers (chance-corrected)",
    description="Cohen's kappa of the pairwise judge's verdicts (win, tie, loss) against the reviewers' majority "
                "vote on the same pairs.")
AUTOMATIC_FLAG_AGREEMENT = tuple(
    MetricSpec(name=f"review.automatic_flag_agreement.{flag}", higher_is_better=True, unit="rate",
               label=f"automatic {flag.replace('_', ' ')} flag agrees with the reviewers",
               description=f"Share of labelled items whose reviewers' majority {flag.replace('_', ' ')} flag "
                           f"equals the automatic flag an audit set on the item (one value per audit and automatic "
                           f"flag, as the attribute '<audit source>:<automatic flag>').")
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
    """A share of items on which an automatic rater agrees with the reviewers, with its interval.

    The unit is the item: on each, the rater's verdict is compared with the value a strict majority of the
    reviewers' votes chose (``harness.review.agreement.item_agreement``); the votes on one item are not
    independent observations, so they are not counted one by one."""

    agreeing: int = Field(description="Items on which the rater's verdict equals the reviewers' majority vote.")
    n: int = Field(description="Items compared: those with a rater verdict and a strict majority among the "
                               "reviewers' votes.")
    rate: float | None = Field(description="agreeing / n; None when n = 0.")
    ci_low: float | None = None
    ci_high: float | None = None
    interval: str = Field("wilson", description="How ci_low/ci_high were computed: 'wilson over items (reviewers' "
                                                "strict majority)', a Wilson interval with the n items as the "
                                                "sample.")
    split: int = Field(0, description="Items left out because the reviewers' votes had no strict majority (one "
                                      "win and one loss, say); with no majority there is no human verdict to agree "
                                      "with.")


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

    MT-Bench's human-agreement setups (FastChat ``llm_judge/compute_agreement.py``), taken per pair: the judge's
    one verdict on the question and pair is compared with the reviewers' majority vote on it (a pair whose
    reviewers split is left out and counted). *With ties*, a tie is a third outcome; *without ties*, a pair the
    judge called a tie is left out and the reviewers' tie votes are dropped before the majority is taken."""

    judge: str | None = Field(description="The judge as the bench record names it.")
    verdict_rule: str | None = Field(None, description="How the bench combined the two answer orders into one "
                                                       "verdict ('mt-bench': an inconsistent pair is a tie).")
    items: int = Field(description="Blind pairs with a judge verdict and at least one reviewer vote (with_ties.n "
                                   "plus with_ties.split).")
    with_ties: Agreed
    without_ties: Agreed
    kappa: float | None = Field(description="Cohen's kappa over the pairs with ties (judge vs the reviewers' "
                                            "majority; win / tie / loss); None when undefined (a single category "
                                            "throughout).")
    unparseable: int = Field(0, description="Reviewed pairs the judge gave no parseable verdict (left out).")
    unmatched: int = Field(0, description="Reviewed pairs of the bench's pairwise questions with no judge verdict "
                                          "on the same answers (e.g. a bench rerun since they were queued; left "
                                          "out).")
    disagreements: list[JudgeDisagreement] = Field(default_factory=list, description="Pairs where the judge and a "
                                                   "reviewer differ, by item id, at most 50.")
    disagreements_total: int = Field(0, description="All such pairs (the list may be cut).")


class AutomaticFlagAgreement(BaseModel):
    """An audit's automatic flag against the reviewers' flag on the same items (the majority of the reviewers'
    current flags on each item)."""

    source: str = Field(description="Where the items came from, e.g. 'audit/toxicity'.")
    automatic_flag: str = Field(description="The flag the audit set (e.g. hallucination, judged_incorrect).")
    flag: str = Field(description="The reviewers' flag it is compared with.")
    items: int = Field(description="Items with the automatic flag and at least one reviewer's label.")
    agreement: Agreed
    kappa: float | None = Field(description="Cohen's kappa (flagged / not flagged); None when undefined.")
    automatic_flagged: int = Field(description="Of the items compared (agreement.n), those the audit flagged.")
    reviewer_flagged: int = Field(description="Of the items compared, those a strict majority of their reviewers "
                                              "flagged.")


class ReviewRecord(Record):
    schema_version: int = Field(3, description="Bumped when this record type's fields change meaning (2: "
                                               "adjudicated labels count, judge and automatic-flag agreement; 3: "
                                               "only the current evidence's items count, agreement over items).")
    kind: Literal["review"] = "review"
    candidate: str
    source_record_ids: list[str] = Field(default_factory=list, description=(
        "The records the counted items belong to: the candidate's bench record and each audit's record as they "
        "are when summarised (an audit whose candidate weights are not candidate_model_sha256 is left out), "
        "sorted. An item counts when it was queued from one of them, or when one of them holds its exact output "
        "(an earlier queue's item with the same content is never queued again). The gate should find each id "
        "among its own evidence records."))
    candidate_model_sha256: str | None = Field(None, description=(
        "The candidate's weights hash as those records name it (the bench record's, else an audit's): the "
        "checkpoint whose outputs the counted labels judged. None when no record names one. The gate should "
        "find it equal to its evidence's candidate hash."))
    stale_items: int = Field(0, description=(
        "The candidate's queued items (its outputs, the baselines' for context, blind pairs) left out of every "
        "count: queued from another record (earlier weights, or an earlier bench or audit run) and holding no "
        "output the current records hold. Their labels stay in the store; they do not count for this checkpoint."))
    stale_labelled_items: int = Field(0, description="Of stale_items, those with at least one current label or "
                                                     "judgment (labels left out as stale).")
    carried_over_items: int = Field(0, description=(
        "Counted items queued from another record whose exact output (content key) a current record holds."))
    required_reviewers: int = Field(description="Labels from distinct reviewers an item needs (quorum per item).")
    items_total: int = Field(description="The candidate's own single-output items queued from the current "
                                         "evidence (source_record_ids): the quorum's scope.")
    items_with_quorum: int = Field(description="Of those, items labelled by at least their required number of "
                                               "distinct reviewers.")
    labels: int = Field(description="Current labels counted on those items (superseded corrections and stale "
                                    "items excluded).")
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
    pairwise_judgments: int = Field(0, description="Current blind pairwise judgments on the candidate's counted "
                                                   "(not stale) pairs.")

    disputed_items: int = Field(0, description="Items (the candidate's own outputs and its blind pairs) whose "
                                               "reviewers' current labels disagree on accept/reject, a flag, or "
                                               "the preference: the items that need adjudication.")
    adjudicated_items: int = Field(0, description="Items counted with their latest adjudicated label in place of "
                                                  "their reviewers' labels.")
    adjudication_pending: int = Field(0, description="Disputed items with no adjudication yet.")
    stale_adjudications: int = Field(0, description="Items whose latest adjudication a label or judgment written "
                                                    "after it made stale: it decides nothing, and the item is "
                                                    "counted by its current labels (disputed again: pending).")
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
