"""`nift-gate run CONFIG`: every stage in order, from corpus to report.

    data -> train -> bench -> audit -> review (enqueue + summary) -> gate -> report

Each stage is the same library call its own subcommand makes, so each is cached by its fingerprint and
resumes after a crash: rerunning the command redoes only what changed (new review labels, typically). The
review summary is rebuilt on every run because labels arrive between runs. The policy is read and checked
against the metric catalogue before the first stage: a typo in it must not wait for hours of training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.app import stages
from harness.app.catalogue import metric_catalogue
from harness.app.config import PipelineConfig
from harness.core.store import RunStore

STAGES = ("data", "train", "bench", "audit", "review", "gate", "report")


@dataclass
class PipelineResult:
    decision: Any = None
    report: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def review_pending(self) -> bool:
        return self.decision is not None and self.decision.decision == "PENDING_REVIEW"


def _data(config: PipelineConfig, store: RunStore, force: bool) -> str:
    from harness.data.build import build_pairs

    records = build_pairs(config.data, store, force=force)
    return ", ".join(f"{r.variant}: {r.rows} pairs" for r in records)


def _train(config: PipelineConfig, store: RunStore, force: bool) -> str:
    from harness.train.train import select_checkpoints, train_checkpoint

    done = []
    for entry in select_checkpoints(config.train, None, None):
        record = train_checkpoint(entry, store, force=force)
        done.append(f"{entry.name}: {record.steps} steps" if record is not None else entry.name)
    return ", ".join(done) or "nothing to train"


def _bench(config: PipelineConfig, store: RunStore, force: bool) -> str:
    from harness.bench.bench import run_bench

    record = run_bench(config.bench, store, force=force)
    return f"{len(record.comparisons)} paired comparisons against {len(config.bench.baselines)} baselines"


def _audit(config: PipelineConfig, store: RunStore, force: bool) -> str:
    records = stages.run_audits(config, store, force)
    done = []
    for name, record in records.items():
        scorer = getattr(record, "scorer", None)
        named = f" (scorer {scorer.name}{', fallback' if scorer.fallback else ''})" if scorer is not None else ""
        done.append(f"{name}: {sum(record.flagged_samples.values())} flagged{named}")
    return "; ".join(done) or "no audit enabled"


def _review(config: PipelineConfig, store: RunStore, force: bool) -> str:
    from harness.review.enqueue import enqueue
    from harness.review.summary import summarise_review

    queued = enqueue(config.review, store)
    record = summarise_review(config.review, store, queued.candidate)
    return (f"{sum(queued.added.values())} new items queued; {record.items_with_quorum}/{record.items_total} "
            f"items with quorum, {record.labels} labels")


def _gate(config: PipelineConfig, store: RunStore, force: bool) -> Any:
    return stages.decide(config, store)


def _report(config: PipelineConfig, store: RunStore, force: bool) -> Path:
    return stages.write_report(config, store)


_RUNNERS: dict[str, Callable[[PipelineConfig, RunStore, bool], Any]] = {
    "data": _data, "train": _train, "bench": _bench, "audit": _audit, "review": _review, "gate": _gate,
    "report": _report}


def run_pipeline(config: PipelineConfig, store: RunStore, force: bool = False,
                 echo: Callable[[str], None] = print) -> PipelineResult:
    """Run every stage; ``force`` redoes the cached ones. Errors propagate with the stage's own message."""
    from harness.gate.gate import gate_policy

    gate_policy(config.gate, metric_catalogue())  # what the gate checks of it before any record exists
    result = PipelineResult()
    for number, stage in enumerate(STAGES, 1):
        echo(f"== [{number}/{len(STAGES)}] {stage}")
        start = time.perf_counter()
        outcome = _RUNNERS[stage](config, store, force)
        result.seconds[stage] = round(time.perf_counter() - start, 1)
        if stage == "gate":
            result.decision = outcome
            outcome = outcome.reason
        elif stage == "report":
            result.report = outcome
            outcome = str(outcome)
        echo(f"   {stage} done in {result.seconds[stage]:.0f} s: {outcome}")
    return result
