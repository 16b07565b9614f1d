"""Each stage called with its own config section: the wiring between the pipeline config and the stages.

A stage takes only its section and explicit arguments; the few values one stage borrows from another's
section (the audits and the gate default to bench's candidate and baselines; TruthfulQA runs with bench's
lm-eval settings; the gate checks its policy against every stage's declared metrics) are passed here, so
`nift-gate <stage>` and `nift-gate run` call the stages the same way.

Before the gate judges, the review record is rebuilt from the label store (:func:`refresh_review`): the
humans' labels are evidence as they are now, not as they were at the last `review summary`.
"""

from __future__ import annotations

from pathlib import Path

from harness.app.catalogue import metric_catalogue
from harness.app.config import PipelineConfig
from harness.core.errors import InputError
from harness.core.store import RECORD_FILE, RunStore


def gate_targets(config: PipelineConfig) -> tuple[str, list[str]]:
    """The candidate and baseline names the gate and the report judge: gate's own, else bench's."""
    from harness.gate.gate import gate_targets as targets

    return targets(config.gate, config.bench.candidate, [b.name for b in config.bench.baselines])


def run_audits(config: PipelineConfig, store: RunStore, force: bool = False, only: str | None = None) -> dict:
    """Every enabled registered audit (or the one named ``only``) on the audit targets (the audit's own, else
    bench's models)."""
    from audits.run import run_audits as run

    candidate, baselines = config.audit_targets()
    return run(config.audit, candidate, baselines, store, force=force, only=only,
               lm_eval_settings=config.bench.lm_eval_settings())


def refresh_review(config: PipelineConfig, store: RunStore, candidate: str) -> None:
    """Rebuild ``<run>/review/record.json`` for ``candidate`` from the label store when the run has one (the
    summary is cached by the store's current labels, so unchanged labels leave the record's bytes, and so the
    decision, as they were; a stored record that holds other figures than the store gives now is replaced, with
    a warning naming it: :func:`harness.review.summary.summarise_review`). A review record with no label store
    behind it cannot be checked, and is refused."""
    from harness.review.store import default_database
    from harness.review.summary import summarise_review

    record = store.root / "review" / RECORD_FILE
    default_store = default_database(store)
    if config.review.database or default_store.exists():
        summarise_review(config.review, store, candidate)
    elif record.exists():
        raise InputError(f"{record}: a review record without its label store (review.database, or "
                         f"{default_store}): the gate judges reviews only as the store holds them now")


def decide(config: PipelineConfig, store: RunStore):
    from harness.gate.gate import decide as gate_decide

    candidate, baselines = gate_targets(config)
    refresh_review(config, store, candidate)
    return gate_decide(config.gate, store, candidate, baselines, metric_catalogue())


def override(config: PipelineConfig, store: RunStore, decision: str, release_manager: str, reason: str,
             aliases: list[str] | None = None, token: str | None = None, *, decision_id: str):
    """`nift-gate override` of decision ``decision_id`` (which must still be the candidate's latest) by
    ``release_manager``, authenticated with ``token`` against the review config."""
    from harness.gate.gate import override as gate_override

    return gate_override(config.gate, store, gate_targets(config)[0], decision, release_manager, reason, aliases,
                         decision_id=decision_id, reviewers=config.review, token=token)


def open_registry(config: PipelineConfig, store: RunStore):
    from harness.gate.gate import open_registry as gate_registry

    return gate_registry(config.gate, store)


def verify_registry(config: PipelineConfig, store: RunStore, expect_head: str | None = None):
    from harness.gate.gate import verify_registry as verify

    return verify(config.gate, store, expect_head)


def write_report(config: PipelineConfig, store: RunStore, out: str | Path | None = None) -> Path:
    return write_report_files(config, store, out)[0]


def write_report_files(config: PipelineConfig, store: RunStore, out: str | Path | None = None) -> tuple[Path, str]:
    """The report's HTML path and its headline as plain text (see reports.build.write_report_files)."""
    from reports.build import write_report_files as report

    return report(config.report, store, gate_targets(config)[0], out, registry=open_registry(config, store).folder)
