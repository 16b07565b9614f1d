"""Audits as registered compositions: what an audit is, what its record carries, and the registry.

An audit is prompts + generation + scoring + metrics under a version string (as inspect_ai composes a
``Task`` from dataset, solver and scorer). One module defines its config section, its record type (which
declares its metrics, ``Record.METRICS``) and its run function, and registers them::

    @register_audit("toy", version="1", record_type=ToyAuditRecord, config_type=ToyAuditConfig)
    def run_toy_audit(config: AuditConfig, candidate: str, baselines: list[ModelRef], store: RunStore,
                      force: bool = False) -> ToyAuditRecord:
        settings = config.section("toy", ToyAuditConfig)   # audit.extra.toy in the YAML
        ...                                                # StageRun(store, "audit", "toy", ...), samples.jsonl

`audits.run.run_audits` runs every registered audit whose settings are enabled, into ``<run>/audit/<name>/``:
``record.json`` (an :class:`AuditRecord`) and ``samples.jsonl`` (``harness.core.samples.AuditSample`` rows,
which the review queue reads). Importing the ``audits`` package registers the shipped audits.

Bump an audit's ``version`` whenever its prompts or its scoring change: the version is in the record and in
its fingerprint, so a record made by another version is recomputed, never reused.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, Field

from audits.config import AuditConfig
from harness.core.config import Section
from harness.core.models import ResolvedModel
from harness.core.records import Record
from harness.core.runner import stage_entry

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class AuditedModel(BaseModel):
    """One model an audit asked, under the name its rows and tables use."""

    name: str
    role: str = Field(description="candidate or baseline.")
    model: ResolvedModel = Field(description="The model, pinned by the content hash of its weights.")


class AuditRecord(Record):
    """Fields every audit's record carries beside its own results."""

    version: str = Field("", description="Version of the audit that made this record: changes when its prompts "
                                         "or scoring change.")
    models: list[AuditedModel] = Field(description="Candidate first, then the baselines.")
    flagged_samples: dict[str, int] = Field(description="Outputs flagged for review (toxic, hallucination), "
                                                        "per model.")
    files: dict[str, str] = Field(description="Artifacts beside the record, e.g. samples: samples.jsonl.")


#: ``run(config, candidate, baselines, store, force=False, **extras) -> AuditRecord``
AuditRun = Callable[..., AuditRecord]


@dataclass(frozen=True)
class Audit:
    """One registered audit."""

    name: str
    """Folder (``<run>/audit/<name>/``), config key and the ``audit`` field of its sample rows."""
    version: str
    """Changes whenever the audit's prompts or scoring change."""
    record_type: type[AuditRecord]
    """The record it writes; its ``METRICS`` declare what it measures and which way is better."""
    config_type: type[Section]
    """Its settings: ``AuditConfig.<name>`` for the shipped audits, ``AuditConfig.extra[<name>]`` otherwise."""
    run: AuditRun
    """``run(config, candidate, baselines, store, force=False, **extras)``; extras it names are passed on."""
    description: str = ""

    def settings(self, config: AuditConfig) -> Section:
        return config.section(self.name, self.config_type)

    def enabled(self, config: AuditConfig) -> bool:
        return bool(getattr(self.settings(config), "enabled", True))

    def accepts(self) -> set[str] | None:
        """Keyword arguments ``run`` takes beyond the common ones (None: any, it has ``**kwargs``)."""
        parameters = inspect.signature(self.run).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return None
        return {p.name for p in parameters} - {"config", "candidate", "baselines", "store", "force"}


_AUDITS: dict[str, Audit] = {}


def register_audit(name: str, *, version: str, record_type: type[AuditRecord], config_type: type[Section],
                   description: str = "") -> Callable[[AuditRun], AuditRun]:
    """Decorator registering ``run`` as audit ``name``; audits run in the order they were registered.

    Registering a name twice with another run function is an error (re-importing the same module is not).
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"audit name {name!r}: lower-case letters, digits and _ only, starting with a letter")
    field = AuditConfig.model_fields.get(name)
    if field is not None and field.annotation is not config_type:
        raise ValueError(f"audit name {name!r} is an AuditConfig field that is not a {config_type.__name__}")
    if not issubclass(record_type, AuditRecord):
        raise TypeError(f"audit {name!r}: {record_type.__name__} is not an AuditRecord")

    def register(run: AuditRun) -> AuditRun:
        known = _AUDITS.get(name)
        if known is not None and (known.run.__module__, known.run.__qualname__) != (run.__module__,
                                                                                      run.__qualname__):
            raise ValueError(f"audit {name!r} is already registered by {known.run.__module__}")
        # run as a stage entry point, so that an audit refused after its cache check leaves no lock behind
        _AUDITS[name] = Audit(name=name, version=version, record_type=record_type, config_type=config_type,
                              run=stage_entry(run), description=description or (inspect.getdoc(run) or "").split("\n")[0])
        return run

    return register


def unregister_audit(name: str) -> None:
    """Remove audit ``name`` (tests that register their own)."""
    _AUDITS.pop(name, None)


def registered_audits() -> list[Audit]:
    """Every registered audit, in registration order (the shipped ones first)."""
    return list(_AUDITS.values())


def get_audit(name: str) -> Audit | None:
    return _AUDITS.get(name)


def audit_records() -> dict[str, type[AuditRecord]]:
    """Audit name -> record type: where the evidence and the metric catalogue come from."""
    return {audit.name: audit.record_type for audit in _AUDITS.values()}

