"""What every stage's config section shares: strict fields, unique names, a named model.

Each stage owns one config module built from :class:`Section`; the pipeline config aggregate (the
composition root) puts them side by side. Unknown keys are errors, so a typo in a YAML file is reported
with its field path instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """Base of every config section: unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")


class ModelRef(Section):
    """A model compared against the candidate, under the name the tables and the report use."""

    name: str = Field(description="Name in the tables and the report, e.g. 'smollm2-shipped'.")
    model: str = Field(description="train:<checkpoint> of this run, an embedded name, a folder, .gguf or hub id.")


def require_unique(names: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the repeated entries when ``names`` holds one twice (pydantic validators
    turn it into a field error)."""
    names = list(names)
    if repeated := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{what} must be unique; repeated: {repeated}")
