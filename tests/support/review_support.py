"""Helpers shared by the review tests (importable from subprocesses too)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

from harness.bench.record import VERSION as BENCH_VERSION
from harness.bench.record import BenchRecord, EvaluatedModel, TaskScores
from harness.core.metrics import MetricSpec
from harness.core.models import ResolvedModel
from harness.core.records import StoredRecord
from harness.core.samples import AuditSample
from harness.core.stats import PairedComparison
from harness.core.store import RunStore, atomic_write_jsonl
from harness.review.config import ReviewConfig
from harness.review.store import NewItem

from pinning import write_pinned_record

CANDIDATE, BASELINE = "nift-cand-7", "sft-base-3"  # distinctive: tests search pages for them
TOKENS = {"ann": "ann-token", "bob": "bob-token", "cy": "cy-token", "meg": "meg-token"}


def review_config(tmp_path: Path, **fields) -> ReviewConfig:
    reviewers = fields.pop("reviewers", [{"name": "ann"}, {"name": "bob"}, {"name": "meg", "role": "release_manager"}])
    for r in reviewers:
        r.setdefault("token", TOKENS[r["name"]])
    fields.setdefault("database", f"sqlite:///{tmp_path / 'review.db'}")
    return ReviewConfig(reviewers=reviewers, **fields)


def _resolved(name: str) -> ResolvedModel:
    return ResolvedModel(spec=name, source="local", path=f"/models/{name}", sha256=str(len(name)) * 64)


def _comparison(metric: str, higher: bool) -> PairedComparison:
    return PairedComparison(task="qa", metric=metric, baseline=BASELINE, higher_is_better=higher, n=6,
                            candidate_mean=0.5, baseline_mean=0.5, mean_difference=0.0, ci_low=None, ci_high=None,
                            confidence=0.95, test="sign", p_value=1.0, wins=0, losses=0, ties=6)


def bench_row(i: int, model: str, acc: float, errors: float) -> dict:
    return {"doc_id": i, "item": f"hash{i}", "target": "x",
            "response": [f"{'first' if model == CANDIDATE else 'second'} answer {i}"],
            "prompt": [[f"question {i}?", {"max_gen_toks": 8}]],
            "scores": {"acc": acc, "errors": errors, "inst_level": [True, False]}}


def make_run(home: Path, run: str, *, hallucination: bool = True, pairwise: bool = True) -> RunStore:
    """Bench: task 'qa', 6 items; candidate acc 0 on items 1 and 4; 'errors' (lower is better) highest on
    items 5, 2; two judged pairwise questions (q2 with two turns). Toxicity audit: 8 candidate samples (2 flagged, one repeated verbatim) + 4 baseline samples
    (1 flagged). Hallucination audit: 4 candidate samples (1 flagged, 1 wrong: q1)."""
    store = RunStore(run, home)
    folder = store.stage_dir("bench", CANDIDATE)
    acc = {0: 1, 1: 0, 2: 1, 3: 1, 4: 0, 5: 1}
    errors = {0: 0, 1: 1, 2: 3, 3: 0, 4: 1, 5: 4}
    atomic_write_jsonl(folder / "samples" / CANDIDATE / "samples_qa.jsonl",
                       [bench_row(i, CANDIDATE, acc[i], errors[i]) for i in range(6)])
    atomic_write_jsonl(folder / "samples" / BASELINE / "samples_qa.jsonl",
                       [bench_row(i, BASELINE, 1, 0) for i in range(6)])
    if pairwise:
        # The questions' turns travel in the bench's rows: the queue never reads the questions file.
        atomic_write_jsonl(folder / "pairwise.jsonl", [
            {"question_id": "q1", "turns": ["Say hi."], "baseline": BASELINE, "candidate_answer": ["hi there"],
             "baseline_answer": ["hello"], "verdict_candidate_first": "A", "verdict_baseline_first": "B",
             "outcome": "win"},
            {"question_id": "q2", "turns": ["Name a colour.", "Another one?"], "baseline": BASELINE,
             "candidate_answer": ["red", "blue"], "baseline_answer": ["green", "teal"],
             "verdict_candidate_first": "tie", "verdict_baseline_first": "tie", "outcome": "tie"}])
    record = BenchRecord(
        record_id="bench-test", run_id=run, fingerprint="f" * 64, version=BENCH_VERSION, candidate=CANDIDATE,
        config={"pairwise": {"prompts": str(home / "no-such-questions.jsonl")}},
        models=[EvaluatedModel(name=CANDIDATE, role="candidate", model=_resolved(CANDIDATE), eval_record_id="e1",
                               cached=False),
                EvaluatedModel(name=BASELINE, role="baseline", model=_resolved(BASELINE), eval_record_id="e2",
                               cached=False)],
        fingerprint_fields={}, scores={m: {"qa": TaskScores(version="1", n=6, metrics={"acc": 0.5},
                                                            higher_is_better={"acc": True})}
                                       for m in (CANDIDATE, BASELINE)},
        comparisons=[_comparison("acc", True), _comparison("errors", False)], files={})
    write_pinned_record(folder, record)

    tox = []
    for i in range(8):
        text = "same words" if i in (6, 7) else f"continuation {i}"
        tox.append(AuditSample(audit="toxicity", suite="rtp", model=CANDIDATE, role="candidate", item_id=f"p{i}",
                               sample=0, prompt=f"prompt {i}", output=text, scores={"toxicity": i / 10},
                               flags={"toxic": i in (3, 5)}, scorer="test").model_dump()
                   | ({"prompt": "same prompt"} if i in (6, 7) else {}))
    for i in range(4):
        tox.append(AuditSample(audit="toxicity", suite="rtp", model=BASELINE, role="baseline", item_id=f"p{i}",
                               prompt=f"prompt {i}", output=f"base {i}", scores={"toxicity": 0.9},
                               flags={"toxic": i == 0}).model_dump())
    write_audit(store, "toxicity", tox)
    if hallucination:
        rows = [AuditSample(audit="hallucination", suite="closed_book", model=CANDIDATE, role="candidate",
                            item_id=f"q{i}", prompt=f"Who wrote book {i}?", output=f"Author {i}", reference="X",
                            scores={"correct": float(i != 1), "sentence_0_avg_neg_logprob": 9.0 - i},
                            flags={"hallucination": i == 2, "refusal": i == 3}).model_dump()
                for i in range(4)]
        write_audit(store, "hallucination", rows)
    return store


def write_audit(store: RunStore, name: str, rows: list[dict], metrics: list[MetricSpec] = ()) -> Path:
    """An audit's folder as every audit leaves it: record.json (any record kind) and samples.jsonl."""
    folder = store.stage_dir("audit", name)
    atomic_write_jsonl(folder / "samples.jsonl", rows)
    write_pinned_record(folder, StoredRecord(kind=f"{name}_audit", record_id=f"{name}-test", run_id=store.run_id,
                                      fingerprint="a" * 64, metrics=list(metrics), files={"samples": "samples.jsonl"}))
    return folder


# ---- queued items ------------------------------------------------------------------------------------------
def single_item(key: str, record_id: str = "bench-test", source: str = "bench/qa", **fields) -> NewItem:
    """One of the candidate's outputs, queued from the hand-made run's bench record (``make_run``)."""
    return NewItem(**{"kind": "single", "stratum": "random", "source": source, "source_record_id": record_id,
                      "source_item_id": key, "task": "qa", "candidate": CANDIDATE, "model": CANDIDATE,
                      "role": "candidate", "prompt": f"prompt {key}", "output": f"output {key}",
                      "content_key": f"s-{key}", **fields})


def pair_item(key: str, prompt: str | None = None) -> NewItem:
    """A blind pair of the candidate's and the baseline's answers to pairwise question ``key`` (A: candidate)."""
    return NewItem(kind="pairwise", stratum="pairwise", source="bench/pairwise", source_record_id="bench-test",
                   source_item_id=key, task="pairwise", candidate=CANDIDATE, prompt=prompt or f"question {key}",
                   output_a=f"cand {key}", output_b=f"base {key}", model_a=CANDIDATE, model_b=BASELINE,
                   content_key=f"p-{key}")


# ---- PostgreSQL --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def postgres_cluster():
    """tools/pg_cluster.py's throwaway cluster; the test skips, saying why, where PostgreSQL is missing."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from pg_cluster import PostgresUnavailable, pg_cluster

    try:
        cluster = pg_cluster()
        url = cluster.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(f"{exc} (make test installs Debian's postgresql package)")
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def run_store(tmp_path):
    """A hand-made run: bench record with per-item rows and pairwise answers, audit samples."""
    return make_run(tmp_path / "runs", "r1")


@pytest.fixture
def config(tmp_path):
    """The reviewer config of the hand-made run."""
    return review_config(tmp_path)
