"""Each stage called with its own config section: the wiring between the pipeline config and the stages.

A stage takes only its section and explicit arguments; the few values one stage borrows from another's
section (the audits and the gate default to bench's candidate and baselines; TruthfulQA runs with bench's
lm-eval settings; the gate checks its policy against every stage's declared metrics) are passed here, so
`nift-gate <stage>` and `nift-gate run` call the stages the same way.
"""

from __future__ import annotations

from pathlib import Path

from harness.app.catalogue import metric_catalogue
from harness.app.config import PipelineConfig
from harness.core.store import RunStore


def gate_targets(config: PipelineConfig) -> tuple[str, list[str]]:
    """The candidate and baseline names the gate and the report judge: gate's own, else bench's."""
    from harness.gate.gate import gate_targets as targets

    return targets(config.gate, config.bench.candidate, [b.name for b in config.bench.baselines])


def run_audits(config: PipelineConfig, store: RunStore, force: bool = False) -> dict:
    """Every enabled registered audit on the audit targets (the audit's own, else bench's models)."""
    from audits.run import run_audits as run

    candidate, baselines = config.audit_targets()
    return run(config.audit, candidate, baselines, store, force=force,
               lm_eval_settings=config.bench.lm_eval_settings())


def decide(config: PipelineConfig, store: RunStore):
    from harness.gate.gate import decide as gate_decide

    candidate, baselines = gate_targets(config)
    return gate_decide(config.gate, store, candidate, baselines, metric_catalogue())


def override(config: PipelineConfig, store: RunStore, decision: str, release_manager: str, reason: str,
             aliases: list[str] | None = None):
    from harness.gate.gate import override as gate_override

    return gate_override(config.gate, store, gate_targets(config)[0], decision, release_manager, reason, aliases)


def open_registry(config: PipelineConfig, store: RunStore):
    from harness.gate.gate import open_registry as gate_registry

    return gate_registry(config.gate, store)


def write_report(config: PipelineConfig, store: RunStore, out: str | Path | None = None) -> Path:
    from reports.build import write_report as report

    return report(config.report, store, gate_targets(config)[0], out)
