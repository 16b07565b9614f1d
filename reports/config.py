"""Configuration of `nift-gate report`: the title, the cost assumptions and how much model output to quote."""

from __future__ import annotations

from pydantic import Field

from harness.core.config import Section


class HandWrittenCost(Section):
    minutes_per_example: float = Field(8.0, gt=0, description="Minutes a person needs to write one instruction "
                                                                "example (instruction + answer) by hand.")
    hourly_rate_usd: float = Field(40.0, ge=0, description="Loaded hourly cost of that person, USD.")
    review_share: float = Field(0.2, ge=0, description="Extra time for checking hand-written examples, as a share "
                                                       "of writing time.")


class ReportConfig(Section):
    title: str = Field("NIFT release gate report", description="Report title.")
    hand_written: HandWrittenCost = Field(default_factory=HandWrittenCost,
                                          description="Assumptions of the hand-written instruction data estimate.")
    machine_usd_per_hour: float = Field(0.0, ge=0, description="Cost of an hour of the machine that ran a local "
                                                                 "teacher (added to the teacher's token cost).")
    quoted_outputs: int = Field(3, ge=0, description="Model outputs quoted per model in the report (highest "
                                                     "toxicity scores, flagged hallucinations).")
