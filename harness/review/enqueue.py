"""Filling the review queue from a run's bench and audit records (`nift-gate review enqueue`).

Stratified, so reviewers see what matters and a fair sample of the rest:

1. **flagged**: every audit sample with a review flag set (``review.flagged``: toxic, hallucination);
2. **worst-k**: per metric, the candidate's k worst items: bench metrics in the direction lm-eval declared
   (``higher_is_better``), audit scores in the direction ``review.audit_scores`` gives them;
3. **random**: k random candidate items per bench task and per audit suite;
4. **pairwise**: k items per baseline where candidate and baseline answered the same prompt (the bench's
   pairwise questions and task items), shown blind as A and B in a seeded random order.

An item's content key hashes what a reviewer would judge (kind, models, prompt, outputs), so the same output
sampled twice, or a second ``enqueue``, never queues it again. Each new item needs ``required_reviewers``
distinct reviewers; assignment fills up every item, least-loaded reviewer first.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.core.errors import InputError
from harness.core.records import config_hash
from harness.core.samples import AuditSample
from harness.core.store import RunStore, read_jsonl, read_record
from harness.review.config import ReviewConfig
from harness.review.store import NewItem, ReviewStore


@dataclass
class EnqueueResult:
    candidate: str
    added: dict[str, int]  # stratum -> items inserted
    skipped_duplicates: int
    assignments: int
    sources: list[str]


def database_url(config: ReviewConfig, store: RunStore) -> str:
    """The configured URL, else SQLite at ``<run>/review/review.db``."""
    if config.database:
        return config.database
    folder = store.root / "review"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'review.db').resolve()}"


def open_store(config: ReviewConfig, store: RunStore) -> ReviewStore:
    return ReviewStore(database_url(config, store))


def content_key(**fields: Any) -> str:
    return config_hash(fields)


# ---- reading the sources ---------------------------------------------------------------------------------
def _record_id(folder: Path) -> str:
    path = folder / "record.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("record_id", str(path))
    except (OSError, json.JSONDecodeError):
        return str(path)


def read_audit_samples(folder: Path) -> list[AuditSample]:
    """One audit's samples.jsonl as AuditSample rows; errors name the file, line and field."""
    path = folder / "samples.jsonl"
    samples = []
    for number, row in enumerate(read_jsonl(path), 1):
        try:
            samples.append(AuditSample.model_validate(row))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "row"
            raise InputError(f"{path}:{number}: field {where}: {err['msg']}") from None
    return samples


def _bench_text(value: Any) -> str | None:
    """lm-eval's ``filtered_resps`` / ``arguments`` down to the text: first element until a string."""
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else None


def _bench_folders(store: RunStore) -> list[Path]:
    root = store.root / "bench"
    return sorted(p for p in root.glob("*") if (p / "record.json").exists()) if root.exists() else []


def resolve_candidate(config: ReviewConfig, store: RunStore) -> str:
    if config.candidate:
        return config.candidate
    bench = _bench_folders(store)
    if len(bench) == 1:
        return bench[0].name
    if len(bench) > 1:
        raise InputError(f"{store.root / 'bench'}: several bench records ({[p.name for p in bench]}); "
                         f"set review.candidate")
    for folder in sorted((store.root / "audit").glob("*")) if (store.root / "audit").exists() else []:
        if (folder / "samples.jsonl").exists():
            names = {s.model for s in read_audit_samples(folder) if s.role == "candidate"}
            if len(names) == 1:
                return names.pop()
    raise InputError(f"{store.root}: no bench record and no audit samples with a candidate; run `nift-gate bench` "
                     f"or `nift-gate audit` first, or set review.candidate")


# ---- building items ----------------------------------------------------------------------------------------
def _audit_items(config: ReviewConfig, candidate: str, folder: Path, rng: random.Random) -> list[NewItem]:
    samples = read_audit_samples(folder)
    source, record_id = f"audit/{folder.name}", _record_id(folder)
    scope = [s for s in samples if config.include_baselines or s.role == "candidate" or s.model == candidate]
    mine = [s for s in samples if s.model == candidate]

    def item(sample: AuditSample, stratum: str) -> NewItem:
        return NewItem(kind="single", stratum=stratum, source=source, source_record_id=record_id,
                       source_item_id=f"{sample.suite}/{sample.item_id}#{sample.sample}", task=sample.suite,
                       candidate=candidate, model=sample.model, role=sample.role, prompt=sample.prompt,
                       output=sample.output, reference=sample.reference, scores=sample.scores, flags=sample.flags,
                       required_reviewers=config.required_reviewers,
                       content_key=content_key(kind="single", model=sample.model, prompt=sample.prompt,
                                               output=sample.output))

    queued = [item(s, "flagged") for s in scope if any(s.flags.get(f) for f in config.flagged)]
    for suite in sorted({s.suite for s in mine}):
        rows = [s for s in mine if s.suite == suite]
        for score in sorted({k for s in rows for k in s.scores} & set(config.audit_scores)):
            sign = 1 if config.audit_scores[score] else -1  # worst first: lowest if higher is better
            ranked = sorted((s for s in rows if score in s.scores),
                            key=lambda s: (sign * s.scores[score], s.item_id, s.sample))
            queued += [item(s, f"worst:{score}") for s in ranked[:config.worst_k]]
        queued += [item(s, "random") for s in rng.sample(rows, min(config.random_per_task, len(rows)))]
    return queued


def _bench_items(config: ReviewConfig, candidate: str, folder: Path, rng: random.Random) -> list[NewItem]:
    from harness.bench.record import BenchRecord
    from harness.bench.config import BenchConfig
    from harness.bench.pairwise import load_questions

    record = read_record(folder, BenchRecord)
    samples_dir = folder / "samples"

    def rows_of(model: str, task: str) -> dict[str, dict[str, Any]]:
        path = samples_dir / model / f"samples_{task}.jsonl"
        if not path.exists():
            return {}
        rows = {}
        for number, row in enumerate(read_jsonl(path), 1):
            if not isinstance(row, dict) or "item" not in row:
                raise InputError(f"{path}:{number}: field item: missing")
            if _bench_text(row.get("prompt")) is not None and _bench_text(row.get("response")) is not None:
                rows[str(row["item"])] = row
        return rows

    def single(row: dict[str, Any], task: str, stratum: str) -> NewItem:
        prompt, output = _bench_text(row["prompt"]), _bench_text(row["response"])
        scores = {k: float(v) for k, v in (row.get("scores") or {}).items() if isinstance(v, bool | int | float)}
        return NewItem(kind="single", stratum=stratum, source=f"bench/{task}", source_record_id=record.record_id,
                       source_item_id=str(row["item"]), task=task, candidate=candidate, model=record.candidate,
                       role="candidate", prompt=prompt, output=output, scores=scores,
                       required_reviewers=config.required_reviewers,
                       content_key=content_key(kind="single", model=record.candidate, prompt=prompt, output=output))

    tasks = sorted({c.task for c in record.comparisons} | {t for s in record.scores.values() for t in s})
    direction = {(c.task, c.metric): c.higher_is_better for c in record.comparisons}
    queued: list[NewItem] = []
    for task in tasks:
        mine = rows_of(record.candidate, task)
        for (t, metric), higher in sorted(direction.items()):
            if t != task:
                continue
            scored = [r for r in mine.values() if isinstance((r.get("scores") or {}).get(metric), bool | int | float)]
            ranked = sorted(scored, key=lambda r: (float(r["scores"][metric]) * (1 if higher else -1), r["item"]))
            queued += [single(r, task, f"worst:{metric}") for r in ranked[:config.worst_k]]
        pool = sorted(mine)
        queued += [single(mine[i], task, "random") for i in rng.sample(pool, min(config.random_per_task, len(pool)))]

    # Blind pairwise: prompts both models answered. Which one is A is drawn per item from (seed, content key).
    def pair(prompt: str, cand: str, base: str, baseline: str, source: str, item_id: str, task: str) -> NewItem:
        key = content_key(kind="pairwise", candidate=record.candidate, baseline=baseline, prompt=prompt,
                          candidate_output=cand, baseline_output=base)
        candidate_first = random.Random(f"{config.seed}:{key}").random() < 0.5
        a, b = ((cand, record.candidate), (base, baseline)) if candidate_first else ((base, baseline),
                                                                                     (cand, record.candidate))
        return NewItem(kind="pairwise", stratum="pairwise", source=source, source_record_id=record.record_id,
                       source_item_id=item_id, task=task, candidate=candidate, prompt=prompt, output_a=a[0],
                       output_b=b[0], model_a=a[1], model_b=b[1], required_reviewers=config.required_reviewers,
                       content_key=key)

    questions = {}
    pairwise_rows = read_jsonl(folder / "pairwise.jsonl") if (folder / "pairwise.jsonl").exists() else []
    if pairwise_rows:
        spec = BenchConfig.model_validate(record.config).pairwise.prompts
        questions = {q.id: q.turns for q in load_questions(spec, None)}
    for baseline in [m.name for m in record.models if m.role == "baseline"]:
        pool = []
        for number, row in enumerate(pairwise_rows, 1):
            if row.get("baseline") != baseline:
                continue
            turns = questions.get(str(row.get("question_id")))
            if turns is None:
                raise InputError(f"{folder / 'pairwise.jsonl'}:{number}: field question_id: "
                                 f"{row.get('question_id')!r} is not in the pairwise questions")
            def joined(parts: list[str]) -> str:
                return parts[0] if len(parts) == 1 else "\n\n".join(f"(turn {i + 1}) {p}" for i, p in enumerate(parts))
            pool.append(pair(joined(turns), joined(row["candidate_answer"]), joined(row["baseline_answer"]), baseline,
                             "bench/pairwise", str(row["question_id"]), "pairwise"))
        for task in tasks:
            mine, theirs = rows_of(record.candidate, task), rows_of(baseline, task)
            for item_id in sorted(set(mine) & set(theirs)):
                pool.append(pair(_bench_text(mine[item_id]["prompt"]), _bench_text(mine[item_id]["response"]),
                                 _bench_text(theirs[item_id]["response"]), baseline, f"bench/{task}", item_id, task))
        queued += rng.sample(pool, min(config.pairwise_per_baseline, len(pool)))
    return queued


def build_queue_items(config: ReviewConfig, store: RunStore, candidate: str) -> tuple[list[NewItem], list[str]]:
    """Every item the strata select, before duplicates are dropped; and the source folders read."""
    rng = random.Random(config.seed)
    queued, sources = [], []
    bench = store.stage_dir("bench", candidate)
    if (bench / "record.json").exists():
        queued += _bench_items(config, candidate, bench, rng)
        sources.append(str(bench))
    audit_root = store.root / "audit"
    for folder in sorted(audit_root.glob("*")) if audit_root.exists() else []:
        if (folder / "samples.jsonl").exists():
            queued += _audit_items(config, candidate, folder, rng)
            sources.append(str(folder))
    if not sources:
        raise InputError(f"{store.root}: nothing to review: no bench/{candidate}/record.json and no "
                         f"audit/*/samples.jsonl")
    return queued, sources


def enqueue(config: ReviewConfig, store: RunStore) -> EnqueueResult:
    """Queue the run's items for review and assign reviewers; rerunning adds only what is new."""
    candidate = resolve_candidate(config, store)
    queued, sources = build_queue_items(config, store, candidate)
    review = open_store(config, store)
    try:
        ids = review.add_items(queued)  # an item selected by two strata counts under the first
        added: dict[str, int] = {}
        for stratum in review.strata_of(ids).values():
            added[stratum] = added.get(stratum, 0) + 1
        reviewers = [r.name for r in config.reviewers if r.role == "reviewer"]
        assigned = review.assign(reviewers, config.required_reviewers)
        return EnqueueResult(candidate=candidate, added=added, skipped_duplicates=len(queued) - len(ids),
                             assignments=assigned, sources=sources)
    finally:
        review.close()
