"""The review stage's entry point for the gate: the label store summarised as a ``ReviewRecord``.

``summarise_review`` reads the current labels (each reviewer's latest label per item; superseded corrections
are kept in the store but not counted) on the candidate's own outputs, and the blind pairwise judgments
de-blinded through the stored A/B mapping, and writes ``<run>/review/record.json``.

Only the current evidence's items count (:func:`current_evidence`, :func:`counted_items`): those queued from the
candidate's bench record or an audit's record as they are now, or holding an output one of them holds. An item
queued from an earlier record (the outputs of weights since retrained, or of a bench since rerun) is stale: its
labels stay in the append-only store but count for no rate and no quorum, and the record says how many such
items were left out, which records it counted against and the candidate weights they name.

An item has a quorum when its current labels come from as many distinct reviewers as the record states it
requires: the configured ``required_reviewers``, or the number the item was queued with where that is larger
(an item queued for one reviewer does not have the quorum of three because the config says three now).

Where an item was adjudicated, its latest adjudication stands in for each of its reviewers' labels in the
approval, flag rates, helpfulness and win rate (:func:`adjudicated`), unless a label or judgment of the item
was written after it (:meth:`harness.review.store.ReviewStore.stale_adjudications`): a stale adjudication
decided on labels that have since changed, so the item is counted by its current labels again and, if
they disagree, waits for a new adjudication. Agreement between reviewers is measured on their own labels.
The judge-human agreement compares the reviewers' majority vote on each blind pair of the bench's pairwise
questions with the bench judge's verdict on the same question and answers, read through
``harness.bench.record`` (:func:`judge_agreement`); each audit's automatic flags are compared with the
reviewers' majority flag on the same items (:func:`automatic_flag_agreement`). Both are measured over items, not
votes (``harness.review.agreement.item_agreement``).

Every figure of one summary (and of one :func:`review_progress`) is read in one read transaction of the label
store (:meth:`harness.review.store.ReviewStore.snapshot`): a label arriving while it reads is counted in none of
its figures, and in all of the next one's.

A stored record whose fingerprint matches the store's state is reused only when it holds what the summary made
now gives (:func:`stored_differences`; the record id, the time and the writing code's versions aside): the
record is cheap to make again, and a fingerprint says what a record was made from, not that its figures were
left as made. One that differs (approval edited by hand, ``values`` recomputed to match) is replaced through the
stage runner with a warning naming the file, so the gate judges the labels as the store holds them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from harness.bench.record import bench_folder, pairwise_rows, read_bench
from harness.core.records import InputRef, StoredRecord, config_hash
from harness.core.runner import StageRun, stage_entry
from harness.core.samples import AUDIT_STAGE, audit_folders, audit_samples, read_audits
from harness.core.stats import proportion_interval
from harness.core.log import get_logger
from harness.core.store import RECORD_FILE, RunStore, read_bytes, read_record
from harness.review.agreement import TIE, item_agreement, item_kappa, label_agreement, majority
from harness.review.config import ReviewConfig
from harness.review.enqueue import audit_content_key, audit_item_id, evidence_content_keys, resolve_candidate
from harness.review.record import (
    ApprovalStratum,
    AutomaticFlagAgreement,
    JudgeAgreement,
    JudgeDisagreement,
    PairwiseOutcome,
    ReviewRecord,
)
from harness.review.store import (
    LABEL_FLAGS,
    ReviewStore,
    StoredAdjudication,
    assignments,
    disagreements,
    items,
    open_store,
    reviewers_needed,
)

STAGE = "review"
#: In the stage config the fingerprint covers: a record summarised by an older version is made again.
#: 2: adjudicated labels count; judge-human and automatic-flag agreement. 3: only the current evidence's items
#: count; agreement over items. 4: an item's quorum is counted at the larger of the configured and its queued
#: number of reviewers (was its queued number alone); an adjudication a later label made stale decides nothing.
#: 5: an item carried over from an earlier audit record is compared with the current audit's flags, not that
#: record's.
SUMMARY_VERSION = 5
#: The item source of the blind pairs drawn from the bench's judged pairwise questions (enqueue's).
BENCH_PAIRWISE_SOURCE = "bench/pairwise"
#: An audit's automatic flag -> the reviewers' flag it predicts (same-named flags compare as themselves).
AUTOMATIC_FLAG_AS = {"judged_incorrect": "hallucination"}
#: Disagreements between judge and people listed in the record (all are counted).
DISAGREEMENTS_LISTED = 50
#: Fields of a review record that say when, by which process and with which code it was written, not what the
#: label store gives: two summaries of the same store differ in them and nothing else. (The library versions and
#: the code revision are not in the fingerprint unless they change results: a record written before a streamlit
#: upgrade, or a commit that did not change the summary, still holds the same figures.)
PER_WRITE_FIELDS = ("record_id", "created_at", "versions", "code_revision")

log = get_logger(STAGE)


def stored_differences(stored: bytes, record: ReviewRecord) -> list[str]:
    """The top-level fields in which a stored review record (its file's bytes) differs from ``record``, the one
    made now from the label store, leaving out :data:`PER_WRITE_FIELDS`; empty when it holds the same summary.

    Compared as the JSON the file holds, not as a parsed record: parsing fills a record's empty ``values`` from
    its fields, while the gate reads the file as it is. Exact: the summary is computed the same way from the same
    labels, so any difference (a last digit included) is not this store's summary."""
    try:
        held = json.loads(stored)
    except ValueError:
        return ["(not JSON)"]
    if not isinstance(held, dict):
        return ["(not a JSON object)"]
    made = json.loads(record.model_dump_json())
    return sorted(key for key in held.keys() | made.keys()
                  if key not in PER_WRITE_FIELDS and held.get(key, ...) != made.get(key, ...))


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


@dataclass(frozen=True)
class CurrentEvidence:
    """The records a summary counts items against: the candidate's bench record and each audit's, as they are
    now (what the gate judges beside the review record)."""

    records: dict[str, tuple[str, Path]]  # record id -> (record kind, its file)
    model_sha256: str | None  # the candidate's weights hash the records name


def _candidate_sha(models: Any, candidate: str, by_role: bool) -> str | None:
    """The candidate's weights hash in a record's ``models`` list (bench: the entry with role candidate; an
    audit: the entry named as the candidate, as the gate reads it)."""
    for model in models if isinstance(models, list) else []:
        entry = model if isinstance(model, dict) else model.model_dump()
        if (entry.get("role") == "candidate") if by_role else (entry.get("name") == candidate):
            resolved = entry.get("model")
            return resolved.get("sha256") if isinstance(resolved, dict) else None
    return None


def current_evidence(store: RunStore, candidate: str) -> CurrentEvidence:
    """The candidate's bench record and every audit's record, with the candidate weights they name. An audit
    whose candidate weights differ from the bench's measured another checkpoint: its items do not count."""
    records: dict[str, tuple[str, Path]] = {}
    bench = read_bench(store, candidate)
    expected = None
    if bench is not None:
        records[bench.record_id] = (bench.kind, bench_folder(store, candidate) / RECORD_FILE)
        expected = _candidate_sha(bench.models, candidate, by_role=True)
    for folder in audit_folders(store):
        record = read_record(folder, StoredRecord)
        sha = _candidate_sha((record.model_extra or {}).get("models"), candidate, by_role=False)
        if expected and sha and sha != expected:
            continue
        expected = expected or sha
        records[record.record_id] = (record.kind, folder / RECORD_FILE)
    return CurrentEvidence(records=records, model_sha256=expected)


@dataclass(frozen=True)
class CountedItems:
    """Which of the candidate's queued items a summary counts."""

    counted: set[int]
    stale: set[int]  # queued from another record, output not in the current evidence
    carried_over: set[int]  # queued from another record, output in the current evidence


def counted_items(review: ReviewStore, config: ReviewConfig, store: RunStore, candidate: str,
                  evidence: CurrentEvidence) -> CountedItems:
    """The candidate's queued items split into counted and stale: an item counts when it was queued from a
    current record, or when a current record holds its exact output (its content key; enqueue never queues a
    second item with the same key, so an output a rerun reproduced keeps its first record's id)."""
    query = select(items.c.id, items.c.source_record_id, items.c.content_key).where(items.c.candidate == candidate)
    with review.reading() as conn:
        rows = conn.execute(query).all()
    current = {row.id for row in rows if row.source_record_id in evidence.records}
    others = [row for row in rows if row.source_record_id not in evidence.records]
    keys: set[str] = set()
    if others:  # only then read every output of the current records
        audits = [a for a in read_audits(store) if a.record.record_id in evidence.records]
        keys = evidence_content_keys(config, store, candidate, audits)
    carried = {row.id for row in others if row.content_key in keys}
    return CountedItems(counted=current | carried, stale={row.id for row in others} - carried,
                        carried_over=carried)


def candidate_labels(review: ReviewStore, candidate: str) -> list[dict]:
    """Current labels on the candidate's own outputs, every item (baselines' samples queued for context are left
    out): what the app's Agreement page counts where no review record can be made yet. The record counts only
    those on the current evidence's items (:func:`counted_items`, :func:`review_progress`)."""
    return [label for label in review.current_labels(candidate) if label["model"] == candidate]


def candidate_strata(review: ReviewStore, candidate: str) -> dict[int, str]:
    """Every one of the candidate's own single-output items (the quorum's scope) -> the stratum it was queued
    under."""
    return {item_id: stratum for item_id, (stratum, _) in _own_items(review, candidate).items()}


def _own_items(review: ReviewStore, candidate: str) -> dict[int, tuple[str, int | None]]:
    """The candidate's own single-output items -> (stratum, reviewers it needs)."""
    query = select(items.c.id, items.c.stratum, items.c.required_reviewers).where(
        items.c.candidate == candidate, items.c.model == candidate, items.c.kind == "single")
    with review.reading() as conn:
        return {row.id: (row.stratum, row.required_reviewers) for row in conn.execute(query)}


def adjudicated(current: list[dict], decided: dict[int, StoredAdjudication]) -> list[dict]:
    """The current labels (or judgments) with each adjudicated item's fields replaced by its latest
    adjudication's: every label on the item then counts as the adjudicated one, so an item keeps its weight in a
    per-label rate."""
    out = []
    for label in current:
        decision = decided.get(label["item_id"])
        if decision is None:
            out.append(label)
        elif decision.preference is not None:
            out.append({**label, "preference": decision.preference})
        else:
            out.append({**label, "verdict": decision.verdict, "helpfulness": decision.helpfulness,
                        **decision.flags})
    return out


def disputed(current: list[dict], kind: str) -> set[int]:
    """Items whose current labels (or judgments) disagree (:func:`harness.review.store.disagreements`)."""
    by_item: dict[int, list[dict]] = {}
    for label in current:
        by_item.setdefault(label["item_id"], []).append(label)
    return {item_id for item_id, labels in by_item.items() if disagreements(kind, labels)}


def pairwise_outcomes(review: ReviewStore, candidate: str,
                      judged: list[dict] | None = None) -> list[PairwiseOutcome]:
    """Per baseline: judgments preferring the candidate (wins), the baseline (losses), or neither (ties).
    ``judged``: the judgments to count (default: the store's current ones)."""
    counts: dict[str, list[int]] = {}
    for j in review.current_labels(candidate, kind="pairwise") if judged is None else judged:
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


def _joined(turns: list[str]) -> str:
    """The answer text of a pair as the queue stores it: one turn as it is, several as ``(turn 1) ...``."""
    return turns[0] if len(turns) == 1 else "\n\n".join(f"(turn {i + 1}) {t}" for i, t in enumerate(turns))


def _vote(preference: str, item: Any, model: str) -> str:
    """A blind preference (A, B, tie) as the candidate's outcome: win, loss or tie."""
    preferred = {"A": item.model_a, "B": item.model_b}.get(preference)
    return TIE if preferred is None else "win" if preferred == model else "loss"


def judge_agreement(review: ReviewStore, store: RunStore, candidate: str, judged: list[dict],
                    confidence: float) -> tuple[JudgeAgreement | None, str | None]:
    """The bench's pairwise judge against the reviewers' current votes on the same blind pairs, and a hash of
    the judge verdicts read (the record's input). A reviewed pair counts when the bench judged the same
    question, baseline and answers (texts equal, or the pair was queued from this very bench record)."""
    bench = read_bench(store, candidate)
    rows = pairwise_rows(store, candidate)
    if bench is None or not rows:
        return None, None
    verdicts = {(row.question_id, row.baseline): row for row in rows}
    digest = config_hash(sorted((row.question_id, row.baseline, row.outcome) for row in rows))
    ids = sorted({j["item_id"] for j in judged if j["source"] == BENCH_PAIRWISE_SOURCE})
    with review.reading() as conn:
        pairs = {row.id: row for start in range(0, len(ids), 500) for row in conn.execute(
            select(items.c.id, items.c.source_item_id, items.c.source_record_id, items.c.prompt, items.c.output_a,
                   items.c.output_b, items.c.model_a, items.c.model_b).where(items.c.id.in_(ids[start:start + 500])))}
    model = bench.candidate
    votes: dict[int, list[str]] = {}
    for j in judged:
        if j["item_id"] in pairs:
            votes.setdefault(j["item_id"], []).append(_vote(j["preference"], pairs[j["item_id"]], model))
    compared: list[tuple[str, list[str]]] = []  # per pair: the judge's verdict, the reviewers' votes
    listed: list[JudgeDisagreement] = []
    unparseable = unmatched = matched = differ = 0
    for item_id in sorted(votes):
        pair = pairs[item_id]
        baseline = pair.model_b if pair.model_a == model else pair.model_a
        row = verdicts.get((pair.source_item_id, baseline))
        mine, theirs = (pair.output_a, pair.output_b) if pair.model_a == model else (pair.output_b, pair.output_a)
        if row is None or (pair.source_record_id != bench.record_id and (
                mine, theirs) != (_joined(row.candidate_answer), _joined(row.baseline_answer))):
            unmatched += 1
            continue
        if row.outcome not in ("win", "tie", "loss"):
            unparseable += 1
            continue
        matched += 1
        compared.append((row.outcome, votes[item_id]))
        if any(vote != row.outcome for vote in votes[item_id]):
            differ += 1
            if len(listed) < DISAGREEMENTS_LISTED:
                listed.append(JudgeDisagreement(
                    item_id=item_id, question_id=row.question_id, baseline=baseline,
                    question=(row.turns[0] if row.turns else pair.prompt)[:300], judge=row.outcome,
                    reviewers={o: votes[item_id].count(o) for o in ("win", TIE, "loss") if o in votes[item_id]}))
    if not matched and not unparseable and not unmatched:
        return None, digest
    judges = sorted({p.judge for p in bench.pairwise})
    rules = sorted({p.verdict_rule for p in bench.pairwise})
    name = ", ".join(judges) if judges else (bench.judge or {}).get("name") if isinstance(bench.judge, dict) else None
    return JudgeAgreement(
        judge=name or None, verdict_rule=", ".join(rules) or None, items=matched,
        with_ties=item_agreement(compared, confidence), without_ties=item_agreement(compared, confidence, (TIE,)),
        kappa=item_kappa(compared), unparseable=unparseable, unmatched=unmatched, disagreements=listed,
        disagreements_total=differ), digest


def _current_audit_flags(store: RunStore, evidence: CurrentEvidence, wanted: set[tuple[str, str]]
                         ) -> dict[tuple[str, str], list[tuple[str, dict[str, bool]]]]:
    """(audit source, content key) -> (queued item id, flags) of every sample with that output in the current
    evidence's audit records, for the ``wanted`` pairs; read through ``harness.core.samples``, only the audits
    named there."""
    sources = {source for source, _ in wanted}
    found: dict[tuple[str, str], list[tuple[str, dict[str, bool]]]] = {}
    for folder in audit_folders(store):
        record = read_record(folder, StoredRecord)
        source = f"{AUDIT_STAGE}/{folder.name}"  # AuditSamples.source
        if record.record_id not in evidence.records or source not in sources:
            continue
        for sample in audit_samples(folder, record):
            if (key := (source, audit_content_key(sample))) in wanted:
                found.setdefault(key, []).append((audit_item_id(sample), sample.flags))
    return found


def _flags_now(source_item_id: str, samples: list[tuple[str, dict[str, bool]]]) -> dict[str, bool]:
    """An item's automatic flags as the current audit sets them on its output (``samples``: the audit's samples
    with the item's content key): the sample's with the item's id where there is one, else each flag all of
    them set alike; a flag they set differently, or any flag where no sample holds the output, is left out."""
    chosen = [flags for item_id, flags in samples if item_id == source_item_id] or [flags for _, flags in samples]
    settled = {}
    for name in {name for flags in chosen for name in flags}:
        values = {flags.get(name) for flags in chosen}
        if len(values) == 1:
            settled[name] = values.pop()
    return settled


def automatic_flag_agreement(review: ReviewStore, store: RunStore, evidence: CurrentEvidence, current: list[dict],
                             confidence: float) -> list[AutomaticFlagAgreement]:
    """Per audit source and automatic flag: on each item, the flag the audit set against the reviewers' majority
    of their current flags (a reviewers' flag of the same name, or as ``AUTOMATIC_FLAG_AS`` maps it), over items
    (an item whose reviewers split is left out). Every model's queued audit items count: the question is how
    well the audit's flag matches people, whoever wrote the output.

    The audit's flag is the current audit record's (``evidence``). An item queued from it holds its flags. An
    item queued from an earlier record, counted because the current evidence holds its output
    (:func:`counted_items`), holds the earlier record's flags, which a rerun audit (another scorer, another
    judge) may no longer set: its flags are read from the current audit's samples with its content key
    (:func:`_flags_now`); where the item's audit no longer holds the output, the item is left out."""
    ids = sorted({label["item_id"] for label in current if str(label["source"]).startswith("audit/")})
    with review.reading() as conn:
        rows = [row for start in range(0, len(ids), 500) for row in conn.execute(
            select(items.c.id, items.c.source, items.c.source_record_id, items.c.source_item_id,
                   items.c.content_key, items.c.flags_json).where(items.c.id.in_(ids[start:start + 500])))]
    carried = {(row.source, row.content_key) for row in rows if row.source_record_id not in evidence.records}
    now = _current_audit_flags(store, evidence, carried) if carried else {}
    automatic = {row.id: (row.source, json.loads(row.flags_json) if row.source_record_id in evidence.records
                          else _flags_now(row.source_item_id, now.get((row.source, row.content_key), [])))
                 for row in rows}
    # (source, automatic flag, reviewers' flag) -> item -> (the audit's flag, the reviewers' flags)
    votes: dict[tuple[str, str, str], dict[int, tuple[bool, list[bool]]]] = {}
    for label in current:
        source, flags = automatic.get(label["item_id"], (None, {}))
        for name, value in flags.items():
            flag = AUTOMATIC_FLAG_AS.get(name, name)
            if flag in LABEL_FLAGS and isinstance(value, bool):
                entry = votes.setdefault((source, name, flag), {}).setdefault(label["item_id"], (value, []))
                entry[1].append(bool(label[flag]))
    found = []
    for (source, name, flag), by_item in sorted(votes.items()):
        judged = list(by_item.values())
        decided = [(audit, verdict) for audit, flags in judged if (verdict := majority(flags)) in (True, False)]
        found.append(AutomaticFlagAgreement(
            source=source, automatic_flag=name, flag=flag, items=len(by_item),
            agreement=item_agreement(judged, confidence), kappa=item_kappa(judged),
            automatic_flagged=sum(audit for audit, _ in decided), reviewer_flagged=sum(v for _, v in decided)))
    return found


@dataclass(frozen=True)
class _Tally:
    """The counted items' labels and their counts, as the review record and the app's progress both take them."""

    all_labels: list[dict]  # every current label of the candidate's items, counted or not
    all_judged: list[dict]  # every current blind-pair judgment, counted or not
    original: list[dict]  # the reviewers' current labels on the candidate's own counted outputs
    judged: list[dict]  # the judgments of counted pairs
    decided: dict[int, StoredAdjudication]  # the latest adjudication of each counted item, where it stands
    stale_adjudications: set[int]  # counted items whose latest adjudication a later label made stale
    own: dict[int, tuple[str, int | None]]  # the candidate's own counted single-output items -> (stratum, need)
    #: own items with at least their required number of distinct reviewers, by the label store's rule
    #: (:func:`harness.review.store.reviewers_needed`), so the app's whole-store quorum is counted alike
    with_quorum: int
    disputed: set[int]  # counted items whose current labels (or judgments) disagree
    adjudicated: set[int]  # disputed or not, counted items that were adjudicated and have labels


def _tally(review: ReviewStore, candidate: str, scope: CountedItems, required: int) -> _Tally:
    """``required``: the configured reviewers per item (the record's ``required_reviewers``)."""
    all_labels = review.current_labels(candidate)
    all_judged = review.current_labels(candidate, kind="pairwise")
    original = [label for label in all_labels if label["item_id"] in scope.counted and label["model"] == candidate]
    judged = [j for j in all_judged if j["item_id"] in scope.counted]
    stale = review.stale_adjudications(candidate) & scope.counted
    decided = {i: a for i, a in review.adjudications(candidate).items() if i in scope.counted and i not in stale}
    own = {i: entry for i, entry in _own_items(review, candidate).items() if i in scope.counted}
    reviewers_of: dict[int, int] = {}  # one current label per reviewer and item: distinct reviewers per item
    for label in original:
        reviewers_of[label["item_id"]] = reviewers_of.get(label["item_id"], 0) + 1
    in_scope = {label["item_id"] for label in original} | {j["item_id"] for j in judged}
    return _Tally(all_labels=all_labels, all_judged=all_judged, original=original, judged=judged, decided=decided,
                  stale_adjudications=stale & in_scope, own=own,
                  with_quorum=sum(reviewers_of.get(i, 0) >= reviewers_needed(need, required) for i, (_, need) in own.items()),
                  disputed=disputed(original, "single") | disputed(judged, "pairwise"),
                  adjudicated=set(decided) & in_scope)


@dataclass(frozen=True)
class ReviewProgress:
    """The review record's counts, live from the label store (:func:`review_progress`): what the review app
    shows, so that its figures are the ones the gate judges."""

    candidate: str
    source_record_ids: tuple[str, ...]  # the records the items are counted against (the record's)
    scope: CountedItems  # the candidate's queued items, counted and stale (:func:`counted_items`)
    items_total: int  # the record's items_total: the candidate's own single-output items that count
    items_with_quorum: int  # the record's items_with_quorum
    #: reviewer -> (labelled, assigned) over the counted items (every reviewer with an assignment in the store)
    per_reviewer: dict[str, tuple[int, int]]
    disputed: frozenset[int]  # the record's disputed_items, as ids
    adjudicated: frozenset[int]  # the record's adjudicated_items, as ids
    labels: list[dict]  # the reviewers' current labels the record's agreement is measured on
    #: labelled items whose latest adjudication a later label made stale (it decides nothing; not in adjudicated)
    stale_adjudications: frozenset[int] = frozenset()

    @property
    def pending(self) -> frozenset[int]:
        """The record's adjudication_pending, as ids: disputed items not adjudicated yet."""
        return self.disputed - self.adjudicated


#: How many scopes a caller's cache (``review_progress(cache=...)``) keeps: one per candidate and evidence.
SCOPES_CACHED = 16


def review_progress(review: ReviewStore, config: ReviewConfig, store: RunStore, candidate: str | None = None, *,
                    cache: dict | None = None) -> ReviewProgress:
    """How far the review of ``candidate`` (default: :func:`resolve_candidate`'s) is, counted as
    :func:`summarise_review` counts it, from the same readers (:func:`current_evidence`, :func:`counted_items`,
    :func:`disputed`): quorum (at the record's number, :func:`reviewers_needed`) over the candidate's own counted
    single-output items, disputes and standing adjudications over the counted items, each reviewer's labelled
    and assigned items over the counted ones. Nothing is written, so the review app can show the record's
    figures as labels arrive.

    ``cache``: a dict the caller keeps (the review app: one per process) for the counted items, the slow part
    (with stale items it reads every output of the current records); an entry serves while the candidate, the
    config, the queued items (append-only, so their number) and the evidence records (ids, files' size and
    mtime) are the same."""
    candidate = candidate or resolve_candidate(config, store)
    evidence = current_evidence(store, candidate)
    key = None
    with review.snapshot():  # every figure from one state of the store, as the record's
        if cache is not None:
            with review.reading() as conn:
                queued = conn.execute(select(func.count()).select_from(items)
                                      .where(items.c.candidate == candidate)).scalar()
            files = sorted((record_id, kind, str(path), path.stat().st_size, path.stat().st_mtime_ns)
                           for record_id, (kind, path) in evidence.records.items())
            key = config_hash([review.url, candidate, config.public_dump(), queued, files, evidence.model_sha256])
        scope = cache.get(key) if cache is not None else None
        if scope is None:
            scope = counted_items(review, config, store, candidate, evidence)
            if cache is not None:
                if len(cache) >= SCOPES_CACHED:
                    cache.clear()
                cache[key] = scope
        tally = _tally(review, candidate, scope, config.required_reviewers)
        with review.reading() as conn:
            assigned = conn.execute(select(assignments.c.item_id, assignments.c.reviewer)).all()
    # An assigned item is done once its reviewer labelled it (the store's queue rule), a baseline's output too.
    done = {(label["item_id"], label["reviewer"]) for label in tally.all_labels} | {
        (j["item_id"], j["reviewer"]) for j in tally.judged}
    per_reviewer: dict[str, list[int]] = {}
    for item_id, reviewer in assigned:
        entry = per_reviewer.setdefault(reviewer, [0, 0])
        if item_id in scope.counted:
            entry[0] += (item_id, reviewer) in done
            entry[1] += 1
    return ReviewProgress(
        candidate=candidate, source_record_ids=tuple(sorted(evidence.records)), scope=scope,
        items_total=len(tally.own), items_with_quorum=tally.with_quorum,
        per_reviewer={r: (d, n) for r, (d, n) in sorted(per_reviewer.items())},
        disputed=frozenset(tally.disputed), adjudicated=frozenset(tally.adjudicated), labels=tally.original,
        stale_adjudications=frozenset(tally.stale_adjudications))


@stage_entry
def summarise_review(config: ReviewConfig, store: RunStore, candidate: str | None = None) -> ReviewRecord:
    """Summarise the label store for one candidate and write ``<run>/review/record.json``. A run with no label
    store (nothing queued, or a mistyped run name) is refused: summarising would create an empty one.

    The stored record is kept, bytes and id, when its fingerprint matches and it holds the same summary as the
    one made now; one that holds other figures is replaced, with a warning naming the file."""
    candidate = candidate or resolve_candidate(config, store)
    evidence = current_evidence(store, candidate)
    review = open_store(config, store, create=False)
    try:
        # One read transaction: a label arriving meanwhile is in none of the record's figures (nor its input
        # hash) rather than in one and not another; the next summary counts it in all.
        with review.snapshot():
            scope = counted_items(review, config, store, candidate, evidence)
            tally = _tally(review, candidate, scope, config.required_reviewers)
            all_labels, all_judged, original, judged = (tally.all_labels, tally.all_judged, tally.original,
                                                        tally.judged)
            every_label = [label for label in all_labels if label["item_id"] in scope.counted]
            current = adjudicated(original, tally.decided)
            outcomes = pairwise_outcomes(review, candidate, adjudicated(judged, tally.decided))
            strata = {i: stratum for i, (stratum, _) in tally.own.items()}
            # The judge is matched with the reviewers on the same question and answers, whichever record queued
            # the pair (judge_agreement's own test), so it reads every judgment.
            judge, judge_input = judge_agreement(review, store, candidate, all_judged, config.confidence)
            flag_agreement = automatic_flag_agreement(review, store, evidence, every_label, config.confidence)
        url = review.engine.url.render_as_string(hide_password=True)
    finally:
        review.close()
    own_items, with_quorum = len(tally.own), tally.with_quorum
    labelled = {label["item_id"] for label in all_labels} | {j["item_id"] for j in all_judged}
    needed, used = tally.disputed, tally.adjudicated
    per_item: dict[int, tuple[int, int]] = {}
    for label in current:
        accepts, labels = per_item.get(label["item_id"], (0, 0))
        per_item[label["item_id"]] = (accepts + (label["verdict"] == "accept"), labels + 1)
    n = len(current)
    approval = approval_by_stratum(per_item, strata, config.confidence)
    rate, ci, approval_items, approval_strata, weights = approval or (None, None, 0, [], None)
    overall, per_flag = label_agreement(original)  # the reviewers' own labels, not the adjudications
    # The label store is the input: which labels and judgments are current, and how many of the candidate's
    # items exist and have a quorum (items are append-only, so counts name the set).
    state = config_hash({"labels": sorted(label["id"] for label in all_labels),
                         "judgments": sorted(j["id"] for j in all_judged), "items": own_items, "quorum": with_quorum,
                         "counted": sorted(scope.counted), "stale": sorted(scope.stale),
                         "adjudications": sorted(a.id for a in tally.decided.values())})
    run = StageRun(store, STAGE, "", ReviewRecord, label=STAGE)
    run.add(InputRef(kind="review_store", id=url, sha256=state))
    for record_id, (kind, path) in sorted(evidence.records.items()):  # the records the items are counted against
        run.file(path, kind, record_id)
    if judge_input is not None:  # the judge's verdicts the agreement was measured against
        run.add(InputRef(kind="bench_pairwise", id=candidate, sha256=judge_input))
    stage_config = {**config.public_dump(), "summary_version": SUMMARY_VERSION}
    # A record whose fingerprint matches is not taken on its word: it is checked against the one made here.
    done = run.cached({**stage_config, "candidate": candidate})
    record = ReviewRecord(
        **run.header(), candidate=candidate, source_record_ids=sorted(evidence.records),
        candidate_model_sha256=evidence.model_sha256, stale_items=len(scope.stale),
        stale_labelled_items=len(scope.stale & labelled), carried_over_items=len(scope.carried_over),
        required_reviewers=config.required_reviewers, items_total=own_items, items_with_quorum=with_quorum,
        labels=n, reviewers=len({label["reviewer"] for label in current}), approval_rate=rate, approval_ci=ci,
        approval_interval=APPROVAL_INTERVAL if approval else None,
        approval_confidence=config.confidence if approval else None, approval_items=approval_items,
        approval_strata=approval_strata, approval_weights=weights,
        flag_rates={flag: sum(bool(label[flag]) for label in current) / n for flag in LABEL_FLAGS} if n else {},
        agreement=overall if overall.n else None,
        agreement_per_flag={flag: a for flag, a in per_flag.items() if a.n},
        pairwise=outcomes, helpfulness_mean=sum(label["helpfulness"] for label in current) / n if n else None,
        pairwise_judgments=len(judged), disputed_items=len(needed), adjudicated_items=len(used),
        adjudication_pending=len(needed - used), stale_adjudications=len(tally.stale_adjudications),
        judge_agreement=judge, automatic_flag_agreement=flag_agreement)
    if done is not None:
        path = run.folder / RECORD_FILE
        if not (changed := stored_differences(read_bytes(path, "review record"), record)):
            return done  # the same labels on the same items: the same record, so the gate's evidence is unchanged
        log.warning(f"{path}: does not hold what the label store gives now, though its fingerprint matches "
                    f"(differs in {', '.join(changed)}: edited by hand, or written by other code); replaced by the "
                    f"record made from the store, which is what the gate judges")
    return run.commit_in_place(record)  # the folder also holds the label store
