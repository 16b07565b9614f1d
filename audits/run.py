"""`nift-gate audit`'s entry point: every registered audit that is enabled, on the candidate and its baselines."""

from __future__ import annotations

from typing import Any

from audits.config import AuditConfig
from audits.registry import Audit, AuditRecord, registered_audits
from harness.core.config import ModelRef
from harness.core.errors import ConfigError
from harness.core.log import get_logger
from harness.core.store import RunStore

log = get_logger("audit")


def run_audits(config: AuditConfig, candidate: str, baselines: list[ModelRef], store: RunStore,
               force: bool = False, only: str | None = None, **extras: Any) -> dict[str, AuditRecord]:
    """Run every registered audit whose settings are enabled, in registration order.

    ``extras`` go to the audits whose run functions name them (the hallucination audit's
    ``lm_eval_settings``, for instance). Every audit's settings are checked before the first one starts,
    so a typo in ``audit.extra`` fails in seconds, not after an hour of toxicity sampling. ``only`` names the
    one registered audit to run (if it is enabled). Returns {audit name: record} for the audits that ran.
    """
    audits = registered_audits()
    if unknown := sorted(set(config.extra) - {audit.name for audit in audits}):
        raise ConfigError(f"audit.extra: no audit named {', '.join(unknown)}; registered: "
                          f"{', '.join(a.name for a in audits) or 'none'}")
    if only is not None and only not in {audit.name for audit in audits}:
        raise ConfigError(f"--only: no audit named {only}; registered: {', '.join(a.name for a in audits) or 'none'}")
    wanted = [audit for audit in audits if (only is None or audit.name == only) and audit.enabled(config)]
    accepted = [audit.accepts() for audit in audits]
    taken = set(extras) if None in accepted else set().union(*accepted)
    if unused := sorted(set(extras) - taken):
        raise TypeError(f"run_audits: no registered audit takes {', '.join(unused)}")
    return {audit.name: _run_one(audit, config, candidate, baselines, store, force, extras) for audit in wanted}


def _run_one(audit: Audit, config: AuditConfig, candidate: str, baselines: list[ModelRef], store: RunStore,
             force: bool, extras: dict[str, Any]) -> AuditRecord:
    """Run ``audit`` with the extras its run function names; check it returned the record it registered."""
    accepted = audit.accepts()
    kwargs = extras if accepted is None else {k: v for k, v in extras.items() if k in accepted}
    log.debug(f"{audit.name} (version {audit.version})")
    record = audit.run(config, candidate, baselines, store, force=force, **kwargs)
    if not isinstance(record, audit.record_type) or record.version != audit.version:
        raise TypeError(f"audit {audit.name!r} returned a {type(record).__name__} of version {record.version!r}; "
                        f"it is registered with {audit.record_type.__name__} version {audit.version!r}")
    return record
