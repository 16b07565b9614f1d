"""The review stage's entry point for the gate: the label store summarised as a ``ReviewRecord``.

``summarise_review`` reads the current labels (each reviewer's latest label per item; superseded corrections
are kept in the store but not counted) on the candidate's own outputs, and the blind pairwise judgments
de-blinded through the stored A/B mapping, and writes ``<run>/review/record.json``.
"""

from __future__ import annotations

import math

from sqlalchemy import select

from harness.core.records import InputRef, config_hash
from harness.core.runner import StageRun
from harness.core.stats import proportion_interval
from harness.core.store import RunStore
from harness.review.agreement import label_agreement
from harness.review.config import ReviewConfig
from harness.review.enqueue import resolve_candidate
from harness.review.record import ApprovalStratum, PairwiseOutcome, ReviewRecord
from harness.review.store import LABEL_FLAGS, ReviewStore, items, open_store

STAGE = "review"


#: How the model-level approval CI is made: a Wilson interval per stratum, combined by MOVER.
APPROVAL_INTERVAL = "mover-wilson"
APPROVAL_WEIGHTS = (
    "each stratum weighted by its share of the candidate's queued single-output items{note}: the queue does not "
    "record how many outputs each stratum was drawn from, so the rate describes the queue as drawn, in which "
    "flagged and worst-k items are over-represented against the model's outputs (pessimistic where those strata "
    "are approved less); each stratum's own rate is reported beside it")


def approval_by_stratum(per_item: dict[int, tuple[int, int]], strata: dict[int, str], confidence: float
                        ) -> tuple[float, tuple[float, float], int, list[ApprovalStratum], str] | None:
    """The approval rate per queue stratum and weighted over the strata.

    ``per_item``: labelled item id -> (accepting labels, labels); ``strata``: every queued item of the candidate ->
    its stratum. An item counts as approved when a strict majority of its current labels accept it: the item,
    not the label, is the unit, since two reviewers' labels on one output are not independent observations.
    Per stratum h: rate p_h = approved / labelled items, with a Wilson interval (l_h, u_h)
    (:func:`harness.core.stats.proportion_interval`). The model-level rate is p = sum_h w_h p_h with w_h the
    stratum's share of the queued items (over the strata with a labelled item; see ``APPROVAL_WEIGHTS``), and
    its interval is MOVER's (Zou and Donner 2008) for a weighted sum of independent proportions::

        low  = p - sqrt(sum_h w_h^2 (p_h - l_h)^2)
        high = p + sqrt(sum_h w_h^2 (u_h - p_h)^2)

    which is the Wilson interval when there is one stratum and, like it, does not collapse at 0 or 1.
    Returns (rate, (low, high), labelled items, strata, weights statement), or None without labels.
    """
    if not per_item:
        return None
    queued: dict[str, int] = {}
    for stratum in strata.values():
        queued[stratum] = queued.get(stratum, 0) + 1
    counts: dict[str, list[int]] = {}
    for item_id, (accepts, labels) in per_item.items():
        entry = counts.setdefault(strata.get(item_id, "unknown"), [0, 0])
        entry[0] += 2 * accepts > labels
        entry[1] += 1
    total = sum(queued.get(name, n) for name, (_, n) in counts.items())
    rows = []
    for name, (approved, n) in sorted(counts.items()):
        low, high = proportion_interval(approved, n, confidence, "wilson")
        rows.append(ApprovalStratum(stratum=name, queued=queued.get(name, n), items=n, approved=approved,
                                    rate=approved / n, ci_low=low, ci_high=high, interval="wilson",
                                    weight=queued.get(name, n) / total))
    rate = sum(r.weight * r.rate for r in rows)
    low = rate - math.sqrt(sum((r.weight * (r.rate - r.ci_low)) ** 2 for r in rows))
    high = rate + math.sqrt(sum((r.weight * (r.ci_high - r.rate)) ** 2 for r in rows))
    unlabelled = sorted(set(queued) - set(counts))
    note = f" (strata with no label yet carry no weight: {', '.join(unlabelled)})" if unlabelled else ""
    return rate, (max(low, 0.0), min(high, 1.0)), sum(r.items for r in rows), rows, APPROVAL_WEIGHTS.format(
        note=note)


def candidate_labels(review: ReviewStore, candidate: str) -> list[dict]:
    """Current labels on the candidate's own outputs: what the record and the app's agreement panel count
    (baselines' samples queued for context are left out)."""
    return [label for label in review.current_labels(candidate) if label["model"] == candidate]


def candidate_strata(review: ReviewStore, candidate: str) -> dict[int, str]:
    """Every one of the candidate's own single-output items (the quorum's scope) -> the stratum it was queued
    under."""
    query = select(items.c.id, items.c.stratum).where(items.c.candidate == candidate, items.c.model == candidate,
                                                      items.c.kind == "single")
    with review.engine.connect() as conn:
        return dict(conn.execute(query).all())


def pairwise_outcomes(review: ReviewStore, candidate: str) -> list[PairwiseOutcome]:
    """Per baseline: judgments preferring the candidate (wins), the baseline (losses), or neither (ties)."""
    counts: dict[str, list[int]] = {}
    for j in review.current_labels(candidate, kind="pairwise"):
        preferred = {"A": j["model_a"], "B": j["model_b"]}.get(j["preference"])
        baseline = j["model_b"] if j["model_a"] == candidate else j["model_a"]
        counts.setdefault(baseline, [0, 0, 0])
        if preferred is None:
            counts[baseline][2] += 1
        elif preferred == baseline:
            counts[baseline][1] += 1
        else:
            counts[baseline][0] += 1
    return [PairwiseOutcome(baseline=b, wins=w, losses=lo, ties=t,
                            win_rate=(w + t / 2) / (w + lo + t) if w + lo + t else None)
            for b, (w, lo, t) in sorted(counts.items())]


def summarise_review(config: ReviewConfig, store: RunStore, candidate: str | None = None) -> ReviewRecord:
    """Summarise the label store for one candidate and write ``<run>/review/record.json``."""
    candidate = candidate or resolve_candidate(config, store)
    review = open_store(config, store)
    try:
        current = candidate_labels(review, candidate)
        judged = review.current_labels(candidate, kind="pairwise")
        outcomes = pairwise_outcomes(review, candidate)
        own_items, with_quorum = review.quorum_counts(candidate)
        strata = candidate_strata(review, candidate)
        url = review.engine.url.render_as_string(hide_password=True)
    finally:
        review.close()

    per_item: dict[int, tuple[int, int]] = {}
    for label in current:
        accepts, labels = per_item.get(label["item_id"], (0, 0))
        per_item[label["item_id"]] = (accepts + (label["verdict"] == "accept"), labels + 1)
    n = len(current)
    approval = approval_by_stratum(per_item, strata, config.confidence)
    rate, ci, approval_items, approval_strata, weights = approval or (None, None, 0, [], None)
    overall, per_flag = label_agreement(current)
    # The label store is the input: which labels and judgments are current, and how many of the candidate's
    # items exist and have a quorum (items are append-only, so counts name the set).
    state = config_hash({"labels": sorted(label["id"] for label in current),
                         "judgments": sorted(j["id"] for j in judged), "items": own_items, "quorum": with_quorum})
    run = StageRun(store, STAGE, "", ReviewRecord, label=STAGE)
    run.add(InputRef(kind="review_store", id=url, sha256=state))
    stage_config = config.public_dump()
    if (done := run.cached({**stage_config, "candidate": candidate})) is not None:
        return done  # the same labels on the same items: the same record, so the gate's evidence is unchanged
    record = ReviewRecord(
        **run.header(), candidate=candidate,
        required_reviewers=config.required_reviewers, items_total=own_items, items_with_quorum=with_quorum,
        labels=n, reviewers=len({label["reviewer"] for label in current}), approval_rate=rate, approval_ci=ci,
        approval_interval=APPROVAL_INTERVAL if approval else None,
        approval_confidence=config.confidence if approval else None, approval_items=approval_items,
        approval_strata=approval_strata, approval_weights=weights,
        flag_rates={flag: sum(bool(label[flag]) for label in current) / n for flag in LABEL_FLAGS} if n else {},
        agreement=overall if overall.n else None,
        agreement_per_flag={flag: a for flag, a in per_flag.items() if a.n},
        pairwise=outcomes, helpfulness_mean=sum(label["helpfulness"] for label in current) / n if n else None,
        pairwise_judgments=len(judged))
    return run.commit_in_place(record)  # the folder also holds the label store
