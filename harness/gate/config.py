"""Configuration of `nift-gate gate`, `override` and `registry`: which policy, which models, where decisions go."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from harness.core.config import Section
from harness.core.store import folder_name_problem

#: An alias as the registry, MLflow and a reader of `registry show` take it: a word, no spaces or punctuation that
#: could read as another alias or another line.
ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def alias_problem(alias: object) -> str | None:
    """Why ``alias`` cannot name a registry alias, None if it can."""
    if isinstance(alias, str) and ALIAS.fullmatch(alias):
        return None
    return "must be a letter or digit, then up to 63 letters, digits, '_' or '-' (e.g. production)"


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
    require_signed_evidence: bool = Field(
        False, description="Judge only evidence records (bench, audits, review) signed by the stage runner with the "
                           "key in NIFT_RECORD_KEY (a CI secret, at least 32 bytes): a record without record.sig, "
                           "signed with another key, or edited after it was signed is refused. Off: signatures that "
                           "are present are still checked whenever the key is set; unsigned records are judged.")

    @field_validator("candidate")
    @classmethod
    def _candidate_folder(cls, candidate: str | None) -> str | None:
        if candidate is not None and (problem := folder_name_problem(candidate)):
            raise ValueError(f"candidate name {candidate!r} {problem}")
        return candidate

    @field_validator("registry")
    @classmethod
    def _registry_named(cls, registry: str | None) -> str | None:
        if registry is not None and not registry.strip():  # Path("") is the working directory
            raise ValueError("gate.registry is empty; name the registry folder, or leave it unset for <home>/registry")
        return registry

    @field_validator("promote_aliases")
    @classmethod
    def _aliases(cls, aliases: list[str]) -> list[str]:
        for alias in aliases:
            if problem := alias_problem(alias):
                raise ValueError(f"alias {alias!r} {problem}")
        return aliases
