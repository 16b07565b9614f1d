"""Filling the review queue from a run's bench and audit records (`nift-gate review enqueue`).

Stratified, so reviewers see what matters and a fair sample of the rest:

1. **flagged**: every audit sample with a review flag set (``review.flagged``: toxic, hallucination);
2. **worst-k**: per metric, the candidate's k worst items: bench metrics in the direction the bench record
   declares (lm-eval's ``higher_is_better``, else its paired comparisons), audit scores listed in
   ``review.audit_scores`` in the direction the audit record declares for them, else the one listed there;
3. **random**: k random candidate items per bench task and per audit suite;
4. **pairwise**: k items per baseline where candidate and baseline answered the same prompt (the bench's
   pairwise questions and task items), shown blind as A and B in an order drawn from the OS's secret
   randomness (not from ``review.seed``, which reviewers can read) and stored with the item.

A pairwise question keeps its turns as the item's ``messages`` (each user turn, then A's and B's answer to it),
so the app shows a two-turn question as a conversation. Other items hold the prompt as the model was given it
(for bench tasks, the text the chat template made); the app parses that back into turns.

Bench output is read only through ``harness.bench.record``; every audit (any ``<run>/audit/<name>/`` with a
record) through ``harness.core.samples``, so an audit added later is queued without a change here.

An item's content key hashes what a reviewer would judge (kind, models, prompt, outputs), so the same output
sampled twice, or a second ``enqueue``, never queues it again. Each new item needs ``required_reviewers``
distinct reviewers; assignment fills up every item, least-loaded reviewer first.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Any

from harness.bench.record import (
    BenchItem,
    BenchRecord,
    bench_candidates,
    bench_folder,
    bench_items,
    pairwise_rows,
    read_bench,
)
from harness.core.errors import InputError
from harness.core.log import get_logger
from harness.core.records import config_hash
from harness.core.samples import AuditSample, AuditSamples, read_audits
from harness.core.store import RunStore
from harness.review.config import ReviewConfig
from harness.review.store import NewItem, open_store

__all__ = ["EnqueueResult", "audit_content_key", "audit_item_id", "build_queue_items", "content_key", "enqueue",
           "evidence_content_keys", "resolve_candidate"]

log = get_logger("review")


@dataclass
class EnqueueResult:
    candidate: str
    added: dict[str, int]  # stratum -> items inserted
    skipped_duplicates: int
    assignments: int
    sources: list[str]


def content_key(**fields: Any) -> str:
    return config_hash(fields)


def resolve_candidate(config: ReviewConfig, store: RunStore, audits: list[AuditSamples] | None = None) -> str:
    """review.candidate, else the run's one bench candidate, else the one candidate of an audit's samples."""
    if config.candidate:
        return config.candidate
    bench = bench_candidates(store)
    if len(bench) == 1:
        return bench[0]
    if len(bench) > 1:
        raise InputError(f"{store.root}: several bench records ({bench}); set review.candidate")
    for audit in read_audits(store) if audits is None else audits:
        names = {s.model for s in audit.samples if s.role == "candidate"}
        if len(names) == 1:
            return names.pop()
    raise InputError(f"{store.root}: no bench record and no audit samples with a candidate; run `nift-gate bench` "
                     f"or `nift-gate audit` first, or set review.candidate")


# ---- audit items -------------------------------------------------------------------------------------------
def _audit_directions(config: ReviewConfig, audit: AuditSamples, suite: str, scores: set[str]) -> dict[str, bool]:
    """score -> higher_is_better for the ranked scores (those review.audit_scores lists): the audit record's
    declaration where it has one, else the config's."""
    directions = {}
    for score in sorted(scores & set(config.audit_scores)):
        spec = audit.score_spec(suite, score)
        directions[score] = spec.higher_is_better if spec is not None else config.audit_scores[score]
    return directions


def audit_content_key(sample: AuditSample) -> str:
    """The content key of the item an audit sample is queued as (what a reviewer judges: model, prompt, output)."""
    return content_key(kind="single", model=sample.model, prompt=sample.prompt, output=sample.output)


def audit_item_id(sample: AuditSample) -> str:
    """The ``source_item_id`` of the item an audit sample is queued as: ``<suite>/<item_id>#<sample>``."""
    return f"{sample.suite}/{sample.item_id}#{sample.sample}"


def _audit_item(config: ReviewConfig, candidate: str, audit: AuditSamples, sample: AuditSample,
                stratum: str) -> NewItem:
    return NewItem(kind="single", stratum=stratum, source=audit.source, source_record_id=audit.record.record_id,
                   source_item_id=audit_item_id(sample), task=sample.suite,
                   candidate=candidate, model=sample.model, role=sample.role, prompt=sample.prompt,
                   output=sample.output, reference=sample.reference, scores=sample.scores, flags=sample.flags,
                   required_reviewers=config.required_reviewers, content_key=audit_content_key(sample))


def _audit_items(config: ReviewConfig, candidate: str, audit: AuditSamples, rng: random.Random) -> list[NewItem]:
    samples = audit.samples
    scope = [s for s in samples if config.include_baselines or s.role == "candidate" or s.model == candidate]
    mine = [s for s in samples if s.model == candidate]

    def item(sample: AuditSample, stratum: str) -> NewItem:
        return _audit_item(config, candidate, audit, sample, stratum)

    queued = [item(s, "flagged") for s in scope if any(s.flags.get(f) for f in config.flagged)]
    for suite in sorted({s.suite for s in mine}):
        rows = [s for s in mine if s.suite == suite]
        for score, higher in _audit_directions(config, audit, suite, {k for s in rows for k in s.scores}).items():
            sign = 1 if higher else -1  # worst first: lowest if higher is better
            ranked = sorted((s for s in rows if score in s.scores),
                            key=lambda s: (sign * s.scores[score], s.item_id, s.sample))
            queued += [item(s, f"worst:{score}") for s in ranked[:config.worst_k]]
        queued += [item(s, "random") for s in rng.sample(rows, min(config.random_per_task, len(rows)))]
    return queued


# ---- bench items -------------------------------------------------------------------------------------------
def _bench_text(value: Any) -> str | None:
    """lm-eval's ``filtered_resps`` / ``arguments`` down to the text: first element until a string."""
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else None


def _joined(turns: list[str]) -> str:
    """One turn as it is; several as ``(turn 1) ...`` paragraphs, as the pairwise judge saw them."""
    return turns[0] if len(turns) == 1 else "\n\n".join(f"(turn {i + 1}) {t}" for i, t in enumerate(turns))


@dataclass(frozen=True)
class PairTurns:
    """A multi-turn pairwise question as the bench kept it: the user turns and each model's answer to each."""

    user: list[str]
    candidate: list[str]
    baseline: list[str]

    def messages(self, candidate_first: bool) -> list[dict[str, str]] | None:
        """The item's messages: each user turn followed by the two answers to it as A and B; None when a model
        answered fewer turns than were asked (the item then shows the joined texts)."""
        if not len(self.user) == len(self.candidate) == len(self.baseline):
            return None
        messages: list[dict[str, str]] = []
        for user, cand, base in zip(self.user, self.candidate, self.baseline):
            a, b = (cand, base) if candidate_first else (base, cand)
            messages += [{"role": "user", "content": user}, {"role": "answer", "a": a, "b": b}]
        return messages


@dataclass
class _Bench:
    """One candidate's bench output as the queue reads it."""

    config: ReviewConfig
    store: RunStore
    candidate: str  # the review candidate: the bench folder's name
    record: BenchRecord

    @property
    def baselines(self) -> list[str]:
        return [m.name for m in self.record.models if m.role == "baseline"]

    @property
    def tasks(self) -> list[str]:
        return sorted({c.task for c in self.record.comparisons} | {t for s in self.record.scores.values() for t in s})

    def rows(self, model: str, task: str) -> dict[str, BenchItem]:
        """``model``'s rows on ``task`` that hold a prompt and an output text, by item key."""
        return {row.item: row for row in bench_items(self.store, self.candidate, model, task)
                if _bench_text(row.prompt) is not None and _bench_text(row.response) is not None}

    def directions(self, task: str, rows: list[BenchItem]) -> dict[str, bool]:
        """metric -> higher_is_better on ``task``: the record's declared spec, else its paired comparisons."""
        found = {c.metric: c.higher_is_better for c in self.record.comparisons if c.task == task}
        for metric in {m for row in rows for m in row.scores}:
            spec = self.record.metric_spec(f"bench.{task}.{metric}")
            if spec is not None:
                found[metric] = spec.higher_is_better
        return found

    def single(self, row: BenchItem, stratum: str) -> NewItem:
        prompt, output = _bench_text(row.prompt), _bench_text(row.response)
        model = self.record.candidate
        scores = {k: float(v) for k, v in row.scores.items() if isinstance(v, bool | int | float)}
        return NewItem(kind="single", stratum=stratum, source=f"bench/{row.task}",
                       source_record_id=self.record.record_id, source_item_id=row.item, task=row.task,
                       candidate=self.candidate, model=model, role="candidate", prompt=prompt, output=output,
                       scores=scores, required_reviewers=self.config.required_reviewers,
                       content_key=content_key(kind="single", model=model, prompt=prompt, output=output))

    def pair(self, prompt: str, cand: str, base: str, baseline: str, source: str, item_id: str,
             task: str, turns: PairTurns | None = None) -> NewItem:
        """A blind pair; which answer is A is a secret coin flip. Drawn from the public seed and the texts, a
        reviewer could recompute it; the mapping is stored with the item, and the content key does not depend
        on it, so a repeated enqueue still finds the item. ``turns``: the question's user turns and each
        model's answer per turn, kept as the item's messages (in the A/B order of the flip)."""
        model = self.record.candidate
        key = content_key(kind="pairwise", candidate=model, baseline=baseline, prompt=prompt,
                          candidate_output=cand, baseline_output=base)
        candidate_first = secrets.randbelow(2) == 1
        a, b = ((cand, model), (base, baseline)) if candidate_first else ((base, baseline), (cand, model))
        return NewItem(kind="pairwise", stratum="pairwise", source=source, source_record_id=self.record.record_id,
                       source_item_id=item_id, task=task, candidate=self.candidate, prompt=prompt, output_a=a[0],
                       output_b=b[0], model_a=a[1], model_b=b[1], required_reviewers=self.config.required_reviewers,
                       content_key=key, messages=turns.messages(candidate_first) if turns else None)


def _bench_singles(bench: _Bench, rng: random.Random) -> list[NewItem]:
    """Per task: the candidate's worst-k items per metric, then random ones."""
    config, queued = bench.config, []
    for task in bench.tasks:
        mine = bench.rows(bench.record.candidate, task)
        for metric, higher in sorted(bench.directions(task, list(mine.values())).items()):
            scored = [r for r in mine.values() if isinstance(r.scores.get(metric), bool | int | float)]
            ranked = sorted(scored, key=lambda r: (float(r.scores[metric]) * (1 if higher else -1), r.item))
            queued += [bench.single(r, f"worst:{metric}") for r in ranked[:config.worst_k]]
        pool = sorted(mine)
        queued += [bench.single(mine[i], "random") for i in rng.sample(pool, min(config.random_per_task, len(pool)))]
    return queued


def _pair_pool(bench: _Bench, questions: list, baseline: str) -> list[NewItem]:
    """Every blind pair against ``baseline``: the judged pairwise questions, then the task items both answered."""
    pool = [bench.pair(_joined(row.turns), _joined(row.candidate_answer), _joined(row.baseline_answer),
                       baseline, "bench/pairwise", row.question_id, "pairwise",
                       PairTurns(row.turns, row.candidate_answer, row.baseline_answer))
            for row in questions if row.baseline == baseline]
    for task in bench.tasks:
        mine, theirs = bench.rows(bench.record.candidate, task), bench.rows(baseline, task)
        for item_id in sorted(set(mine) & set(theirs)):
            pool.append(bench.pair(_bench_text(mine[item_id].prompt), _bench_text(mine[item_id].response),
                                   _bench_text(theirs[item_id].response), baseline, f"bench/{task}", item_id,
                                   task))
    return pool


def _bench_pairs(bench: _Bench, rng: random.Random) -> list[NewItem]:
    """Per baseline: k blind pairs drawn from the judged pairwise questions and the task items both answered."""
    questions = pairwise_rows(bench.store, bench.candidate)
    if untold := sorted({row.question_id for row in questions if not row.turns}):
        raise InputError(f"{bench_folder(bench.store, bench.candidate)}: pairwise questions {untold} have no "
                         f"turns (a bench from before the rows kept them); rerun `nift-gate bench --force`")
    queued = []
    for baseline in bench.baselines:
        pool = _pair_pool(bench, questions, baseline)
        queued += rng.sample(pool, min(bench.config.pairwise_per_baseline, len(pool)))
    return queued


def evidence_content_keys(config: ReviewConfig, store: RunStore, candidate: str,
                          audits: list[AuditSamples]) -> set[str]:
    """The content key of every output the candidate's bench record and ``audits`` hold now, as the queue would
    key it (every row, not only those the strata sample). An item queued from an earlier record carries that
    record's id, and is not queued again when a later record holds the same output (the key dedupes), so the
    review summary counts such an item when its key is here: the reviewers judged an output the current
    evidence holds."""
    keys: set[str] = set()
    record = read_bench(store, candidate)
    if record is not None:
        bench = _Bench(config, store, candidate, record)
        for task in bench.tasks:
            keys |= {bench.single(row, "any").content_key for row in bench.rows(record.candidate, task).values()}
        questions = pairwise_rows(store, candidate)
        for baseline in bench.baselines:
            keys |= {item.content_key for item in _pair_pool(bench, questions, baseline)}
    for audit in audits:
        keys |= {_audit_item(config, candidate, audit, sample, "any").content_key for sample in audit.samples}
    return keys


# ---- the queue ---------------------------------------------------------------------------------------------
def build_queue_items(config: ReviewConfig, store: RunStore, candidate: str,
                      audits: list[AuditSamples] | None = None) -> tuple[list[NewItem], list[str]]:
    """Every item the strata select, before duplicates are dropped; and the sources read."""
    rng = random.Random(config.seed)
    queued, sources = [], []
    record = read_bench(store, candidate)
    if record is not None:
        bench = _Bench(config, store, candidate, record)
        queued += _bench_singles(bench, rng) + _bench_pairs(bench, rng)
        sources.append(str(bench_folder(store, candidate)))
    for audit in read_audits(store) if audits is None else audits:
        if audit.samples:
            queued += _audit_items(config, candidate, audit, rng)
            sources.append(str(audit.folder))
    if not sources:
        raise InputError(f"{store.root}: nothing to review: no bench record for {candidate} and no audit with "
                         f"samples")
    return queued, sources


def enqueue(config: ReviewConfig, store: RunStore) -> EnqueueResult:
    """Queue the run's items for review and assign reviewers; rerunning adds only what is new."""
    audits = read_audits(store)
    candidate = resolve_candidate(config, store, audits)
    queued, sources = build_queue_items(config, store, candidate, audits)
    review = open_store(config, store)
    try:
        ids = review.add_items(queued)  # an item selected by two strata counts under the first
        added: dict[str, int] = {}
        for stratum in review.strata_of(ids).values():
            added[stratum] = added.get(stratum, 0) + 1
        reviewers = [r.name for r in config.reviewers if r.role == "reviewer"]
        assigned = review.assign(reviewers, config.required_reviewers)
    finally:
        review.close()
    log.debug("queued %d new items for %s from %s (%d duplicates skipped, %d assignments)", len(ids), candidate,
              ", ".join(sources), len(queued) - len(ids), assigned)
    return EnqueueResult(candidate=candidate, added=added, skipped_duplicates=len(queued) - len(ids),
                         assignments=assigned, sources=sources)
