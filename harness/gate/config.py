"""Configuration of `nift-gate gate`, `override` and `registry`: which policy, which models, where decisions go."""

from __future__ import annotations

from pydantic import Field

from harness.core.config import Section


class MlflowExportConfig(Section):
    tracking_uri: str | None = Field(None, description="MLflow tracking and registry URI (e.g. file:///srv/mlruns); "
                                                       "None = no export. Needs `pip install mlflow-skinny`.")
    registered_model: str | None = Field(None, description="Registered model name; None = the candidate's name.")


class GateConfig(Section):
    policy: str | None = Field(None, description="Policy YAML (rules and severities); e.g. configs/policy-demo.yaml.")
    candidate: str | None = Field(None, description="Candidate name as the records know it; None = bench.candidate's.")
    baselines: list[str] | None = Field(None, description="Baseline names a non-inferiority rule without `baseline:` "
                                                          "is checked against, and the report compares with; "
                                                          "None = the names under bench.baselines.")
    registry: str | None = Field(None, description="Registry folder (decision log); None = <home>/registry.")
    promote_aliases: list[str] = Field(default_factory=lambda: ["staging"],
                                       description="Aliases a PROMOTE decision moves to the candidate. Others "
                                                   "(e.g. production) move only by `nift-gate override --alias`.")
    update_model_card: bool = Field(True, description="On promotion, write the evaluation results into the "
                                                      "checkpoint's model card (Hugging Face model-index metadata).")
    mlflow: MlflowExportConfig = Field(default_factory=MlflowExportConfig, description="Optional MLflow export.")
