"""The gate's records: the decision (a pure function of policy and evidence) and a release manager's override.

A decision is written to ``<run>/gate/<candidate>/record.json`` (the latest) and archived as
``<run>/gate/<candidate>/decisions/<record_id>.json``; its bytes depend only on its inputs. An override is
its own record under ``<run>/gate/<candidate>/overrides/``; the decision it overrides is never touched.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.core.records import Record

Verdict = Literal["PROMOTE", "REJECT", "PENDING_REVIEW"]
RuleStatus = Literal["pass", "fail", "pending"]


class EvidenceRef(BaseModel):
    """A stored record the gate read, pinned by the hash of its file."""

    kind: str = Field(description="Record kind: bench, toxicity_audit, hallucination_audit, review.")
    record_id: str
    path: str = Field(description="Path of the record file relative to the run folder.")
    sha256: str = Field(description="sha256 of the record file's bytes when the gate read it.")
    created_at: str = Field(description="The record's own completion time.")


class RuleOutcome(BaseModel):
    """One rule judged on one piece of evidence (a non-inferiority rule yields one outcome per baseline)."""

    rule: str = Field(description="Rule name from the policy.")
    type: str = Field(description="Rule type: threshold, ceiling, floor, non_inferiority, review_quorum, ...")
    severity: Literal["block", "warn"]
    status: RuleStatus = Field(description="pass, fail, or pending (waiting for human review).")
    metric: str | None = Field(None, description="Registry name of the metric judged.")
    model: str | None = Field(None, description="Model whose value was judged.")
    baseline: str | None = Field(None, description="Baseline of a non-inferiority comparison.")
    attribute: str | None = Field(None, description="Scorer attribute (toxicity).")
    higher_is_better: bool | None = Field(None, description="The metric's direction, from the metric registry.")
    value: float | None = Field(None, description="The metric value, or the difference candidate - baseline.")
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    n: int | None = Field(None, description="Items behind the value.")
    judged: float | None = Field(None, description="The number compared with the threshold (the value, a CI bound, "
                                                   "or the oriented lower CI bound of a difference).")
    comparison: str | None = Field(None, description="How `judged` was compared, e.g. '>=', '<=', '>'.")
    threshold: float | None = Field(None, description="The bound from the policy (-margin for non-inferiority).")
    records: list[str] = Field(default_factory=list, description="Ids of the records the value came from.")
    detail: str = Field(description="One line a person can read.")


class GateDecisionRecord(Record):
    """What the policy concluded from the stored evidence. Same policy and evidence, same bytes."""

    kind: Literal["gate_decision"] = "gate_decision"
    created_at: str = Field(description="The completion time of the newest evidence record: a decision is a "
                                        "function of its evidence, so its bytes carry no wall-clock time. When it "
                                        "was made is in the registry log.")
    candidate: str
    candidate_model: dict[str, Any] = Field(description="The candidate's resolved model (spec, path, sha256).")
    baselines: list[str] = Field(description="Baselines non-inferiority rules without `baseline:` were judged on.")
    policy: dict[str, Any] = Field(description="Policy file path, sha256 and parsed rules.")
    decision: Verdict
    reason: str = Field(description="The verdict and why, in one sentence.")
    outcomes: list[RuleOutcome]
    evidence: list[EvidenceRef]


class OverrideRecord(Record):
    """A release manager's decision that replaces the gate's verdict for one decision; the decision stays."""

    kind: Literal["gate_override"] = "gate_override"
    candidate: str
    decision_record_id: str = Field(description="The gate decision overridden.")
    decision_sha256: str = Field(description="sha256 of that decision's file.")
    original_decision: Verdict
    decision: Literal["PROMOTE", "REJECT"] = Field(description="The decision that now holds.")
    release_manager: str = Field(description="Who decided.")
    reason: str = Field(description="Why (mandatory).")
    aliases: list[str] = Field(default_factory=list, description="Aliases moved to the candidate (PROMOTE) or away "
                                                                 "from it (REJECT).")
