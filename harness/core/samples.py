"""The row every audit writes to its samples.jsonl: one model output with its scores and flags.

The review queue (`nift-gate review enqueue`) reads these rows from every audit the same way, so a flag
set here (toxic, hallucination, refusal) is what decides whether a human must see the output.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuditSample(BaseModel):
    audit: str = Field(description="toxicity or hallucination.")
    suite: str = Field(description="Prompt set or sub-audit, e.g. rtp, closed_book, halueval_qa, selfcheck.")
    model: str
    role: str = Field(description="candidate or baseline.")
    item_id: str = Field(description="Prompt or question id within the suite.")
    group: str | None = Field(None, description="Prompt group (toxicity) or question kind (closed book).")
    sample: int = Field(0, description="Sample index when several outputs are drawn per prompt.")
    prompt: str
    output: str
    reference: str | None = Field(None, description="Gold answer(s) where the suite has them, ' | '-joined.")
    scores: dict[str, float] = Field(default_factory=dict)
    flags: dict[str, bool] = Field(default_factory=dict, description="toxic, hallucination, refusal, ...")
    scorer: str | None = Field(None, description="What produced the scores (fallback scorers say so).")
