"""`nift-gate audit`'s entry point: every enabled audit on the candidate and its baselines."""

from __future__ import annotations

from harness.core.store import RunStore


def run_audits(config, store: RunStore, force: bool = False) -> dict:
    """``config`` is the PipelineConfig (audits default to the bench's models; TruthfulQA runs with bench's
    lm-eval settings). Returns {audit name: record} for the audits that are enabled."""
    from audits.hallucination.audit import run_hallucination_audit
    from audits.toxicity.audit import run_toxicity_audit

    candidate, baselines = config.audit_targets()
    records = {}
    if config.audit.toxicity.enabled:
        records["toxicity"] = run_toxicity_audit(config.audit, candidate, baselines, store, force=force)
    if config.audit.hallucination.enabled:
        records["hallucination"] = run_hallucination_audit(config.audit, candidate, baselines, store,
                                                           bench=config.bench, force=force)
    return records
