"""Versioned records: every artifact nift-gate writes is one of these.

A record says what was made, from what (ids and content hashes of its inputs), how (the resolved
config), and with which code (library versions, git revision). Summaries are JSON; per-row data sits
beside the record as JSON Lines. The shape follows inspect_ai's ``EvalLog``/``EvalSpec``: enough to
reproduce the artifact, or to refuse to compare two that were made differently.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.core.metrics import MetricDelta, MetricSpec, MetricValue

#: Libraries whose versions change results; recorded in every record.
TRACKED_LIBRARIES = (
    "nift-gate", "torch", "transformers", "datasets", "accelerate", "peft", "trl",
    "lm-eval", "detoxify", "pandas", "streamlit", "safetensors", "gguf",
)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of one file, streamed so a 500 MB weight file does not sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal bytes, hence equal hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_hash(value: Any) -> str:
    return sha256_bytes(canonical_json(value).encode())


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=1)
def code_revision() -> str:
    """The git commit of the nift-gate source, with ``+dirty`` when the tree has local changes."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_record_id(kind: str) -> str:
    return f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class InputRef(BaseModel):
    """A pointer to something a record was made from, pinned by content hash."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="What the input is: a record kind, 'corpus', 'model', 'prompt_set'.")
    id: str = Field(description="The input's record id, path, or model name.")
    sha256: str = Field(description="Content hash of the input at the time it was used.")


class Record(BaseModel):
    """Fields every stage record carries. Stages subclass it and add their own results."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, description="Bumped when this record type's fields change meaning.")
    kind: str = Field(description="The record type, e.g. 'nift_dataset'.")
    record_id: str = Field(description="Unique id of this record.")
    run_id: str = Field(description="The run folder this record belongs to.")
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"),
                            description="UTC time the record was completed.")
    inputs: list[InputRef] = Field(default_factory=list, description="What this record was made from.")
    config: dict[str, Any] = Field(default_factory=dict, description="The resolved stage config.")
    fingerprint: str = Field(description="Hash of the inputs' hashes and the config: equal fingerprints, "
                                         "equal work. A later run with the same fingerprint is skipped.")
    versions: dict[str, str] = Field(default_factory=library_versions, description="Library versions.")
    code_revision: str = Field(default_factory=code_revision, description="git revision of nift-gate.")
    metrics: list[MetricSpec] = Field(default_factory=list, description="The metrics this record reports, each with "
                                      "its direction, as the stage that made it declares them.")
    values: list[MetricValue] = Field(default_factory=list, description="Each model's value of each metric.")
    deltas: list[MetricDelta] = Field(default_factory=list, description="Candidate minus each baseline on the same "
                                      "items, with a paired CI.")
    outputs: dict[str, str] = Field(default_factory=dict, description="sha256 of every file the stage wrote beside "
                                    "this record, by path relative to its folder (the stage runner fills it): a "
                                    "reader refuses a file that differs, so pinning the record pins them too.")

    #: Metrics every record of this type reports; the policy catalogue is built from these.
    METRICS: ClassVar[tuple[MetricSpec, ...]] = ()
    #: Name prefixes whose metrics a record of this type declares when it is made (``bench.``), with a note.
    METRIC_FAMILIES: ClassVar[dict[str, str]] = {}

    def declared_metrics(self) -> list[MetricSpec]:
        """This record's metric specs; records whose metrics depend on the run override it."""
        return list(self.METRICS)

    def compute_values(self) -> list[MetricValue]:
        """Values from the record's own fields; stage records override it."""
        return []

    def compute_deltas(self) -> list[MetricDelta]:
        return []

    @model_validator(mode="after")
    def _publish_metrics(self) -> Record:
        """A record made by its stage fills metrics, values and deltas from its fields; one read back from
        JSON keeps what it stored (that is what the gate judges)."""
        if not self.metrics:
            self.metrics = self.declared_metrics()
        if not self.values:
            self.values = self.compute_values()
        if not self.deltas:
            self.deltas = self.compute_deltas()
        return self

    def metric_values(self) -> list[MetricValue]:
        return list(self.values)

    def metric_deltas(self) -> list[MetricDelta]:
        return list(self.deltas)

    def metric_spec(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)


class StoredRecord(Record):
    """Any record read back without its stage's class: the common fields, the declared metrics, values
    and deltas, and every other field kept as it is. The gate and the report read evidence this way."""

    model_config = ConfigDict(extra="allow")

    def compute_values(self) -> list[MetricValue]:
        return []


def stage_fingerprint(inputs: list[InputRef], config: dict[str, Any], code: dict[str, Any] | None = None) -> str:
    """Hash of what a stage's output is made from: its inputs, its config and, given ``code``, the versions of
    the code that makes it (:func:`result_code_versions`)."""
    return config_hash({"inputs": [i.model_dump() for i in inputs], "config": config,
                        **({"code": code} if code is not None else {})})


#: Libraries whose upgrade can change a stage's numbers (a new lm-eval task YAML, transformers' generation,
#: scipy's bootstrap): part of every stage's fingerprint, so an upgrade recomputes instead of reusing a record.
#: The ones that only draw (pandas, streamlit) are recorded in ``versions`` but not hashed.
RESULT_LIBRARIES = ("torch", "transformers", "datasets", "accelerate", "peft", "trl", "lm-eval", "detoxify",
                    "safetensors", "gguf", "numpy", "scipy", "scikit-learn", "vllm")


def result_code_versions(stage_version: str) -> dict[str, Any]:
    """What a fingerprint holds of the code: the stage's own version (bumped when its output changes for the
    same inputs and config) and the :data:`RESULT_LIBRARIES` installed."""
    libraries = {name: version for name in RESULT_LIBRARIES
                 if (version := _installed_version(name)) is not None}
    return {"stage": stage_version, "libraries": libraries}


@lru_cache(maxsize=None)
def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
