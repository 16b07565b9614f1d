"""Judge and people: where the bench's pairwise judge and the audits' automatic flags disagree with the reviewers.

Read from the review record only (``harness.review.record``): the judge-human agreement on the blind pairs both
judged (with ties, without ties, Cohen's kappa, n), the pairs on which they differ, each audit's automatic flag
against the reviewers' flag on the same items, how many items the reviewers disputed and how many were
adjudicated, and the outcome of any ``judge_agreement`` rule of the decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.core.store import RunStore

if TYPE_CHECKING:
    from reports.build import DecidedEvidence

ORDER = 600  # after the review detail and the outputs: how far the automatic raters agree with the people
TITLE = "Judge and people: agreement and disagreements"


def _share(agreed) -> dict[str, Any]:
    return {"rate": agreed.rate, "agreeing": agreed.agreeing, "n": agreed.n, "ci_low": agreed.ci_low,
            "ci_high": agreed.ci_high, "interval": agreed.interval}


def build(evidence: DecidedEvidence, store: RunStore) -> dict[str, Any] | None:
    review = evidence.review
    if review is None:
        return None
    judged = review.judge_agreement
    flags = review.automatic_flag_agreement
    if judged is None and not flags and not review.disputed_items:
        return None
    rules = [{"rule": o.rule, "status": o.status, "severity": o.severity, "detail": o.detail}
             for o in (evidence.decision.outcomes if evidence.decision else []) if o.type == "judge_agreement"]
    judge = None
    if judged is not None:
        judge = {
            "name": judged.judge, "verdict_rule": judged.verdict_rule, "pairs": judged.items,
            "with_ties": _share(judged.with_ties), "without_ties": _share(judged.without_ties),
            "kappa": judged.kappa, "unparseable": judged.unparseable, "unmatched": judged.unmatched,
            "disagreements_total": judged.disagreements_total,
            "rows": [{"question_id": d.question_id, "baseline": d.baseline, "question": d.question,
                      "judge": d.judge,
                      "reviewers": ", ".join(f"{outcome} {count}" for outcome, count in d.reviewers.items())}
                     for d in judged.disagreements]}
    return {
        "judge": judge,
        "flags": [{"source": a.source, "automatic_flag": a.automatic_flag, "flag": a.flag, "n_items": a.items,
                   **_share(a.agreement), "kappa": a.kappa, "automatic_flagged": a.automatic_flagged,
                   "reviewer_flagged": a.reviewer_flagged} for a in flags],
        "disputed": review.disputed_items, "adjudicated": review.adjudicated_items,
        "pending": review.adjudication_pending, "rules": rules,
    }
