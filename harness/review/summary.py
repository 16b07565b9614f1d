"""The review stage's entry point for the gate: the label store summarised as a ``ReviewRecord``.

``summarise_review`` reads the current labels (each reviewer's latest label per item; superseded corrections
are kept in the store but not counted) on the candidate's own outputs, and the blind pairwise judgments
de-blinded through the stored A/B mapping, and writes ``<run>/review/record.json``.
"""

from __future__ import annotations

import numpy as np

from harness.core.records import InputRef, config_hash
from harness.core.runner import StageRun
from harness.core.store import RunStore
from harness.review.agreement import label_agreement
from harness.review.config import ReviewConfig
from harness.review.enqueue import resolve_candidate
from harness.review.record import PairwiseOutcome, ReviewRecord
from harness.review.store import LABEL_FLAGS, ReviewStore, open_store

STAGE = "review"


def approval_ci(accepts_per_item: list[tuple[int, int]], iterations: int, confidence: float,
                seed: int) -> tuple[float, float] | None:
    """Percentile bootstrap over items of (accepts / labels), items resampled with their labels together."""
    if len(accepts_per_item) < 2:
        return None
    data = np.array(accepts_per_item, dtype=float)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(iterations, len(data)))
    rates = data[picks, 0].sum(axis=1) / data[picks, 1].sum(axis=1)
    tail = (1 - confidence) / 2
    return float(np.quantile(rates, tail)), float(np.quantile(rates, 1 - tail))


def candidate_labels(review: ReviewStore, candidate: str) -> list[dict]:
    """Current labels on the candidate's own outputs: what the record and the app's agreement panel count
    (baselines' samples queued for context are left out)."""
    return [label for label in review.current_labels(candidate) if label["model"] == candidate]


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
        url = review.engine.url.render_as_string(hide_password=True)
    finally:
        review.close()

    per_item: dict[int, list[int]] = {}
    for label in current:
        entry = per_item.setdefault(label["item_id"], [0, 0])
        entry[0] += label["verdict"] == "accept"
        entry[1] += 1
    n = len(current)
    approval = sum(label["verdict"] == "accept" for label in current) / n if n else None
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
        labels=n, reviewers=len({label["reviewer"] for label in current}), approval_rate=approval,
        approval_ci=approval_ci(list(map(tuple, per_item.values())), config.bootstrap_iterations,
                                config.confidence, config.seed) if n else None,
        flag_rates={flag: sum(bool(label[flag]) for label in current) / n for flag in LABEL_FLAGS} if n else {},
        agreement=overall if overall.n else None,
        agreement_per_flag={flag: a for flag, a in per_flag.items() if a.n},
        pairwise=outcomes, helpfulness_mean=sum(label["helpfulness"] for label in current) / n if n else None,
        pairwise_judgments=len(judged))
    return run.commit_in_place(record)  # the folder also holds the label store
