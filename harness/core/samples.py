"""The row every audit writes to its samples.jsonl, and the reader of every audit's output.

An audit is any folder ``<run>/audit/<name>/`` holding a ``record.json`` and, usually, a ``samples.jsonl``
of :class:`AuditSample` rows. Nothing here names an audit, so one registered later is read the same way as
toxicity and hallucination: the review queue reads every audit's rows through :func:`read_audits`, and a
flag set on a row (toxic, hallucination, refusal) decides whether a human must see the output. Records are
read generically (``StoredRecord``): their common fields and declared metric specs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from harness.core.errors import InputError
from harness.core.metrics import MetricSpec
from harness.core.records import StoredRecord
from harness.core.store import RunStore, parse_jsonl, read_output, read_record


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


AUDIT_STAGE = "audit"
SAMPLES_FILE = "samples.jsonl"


@dataclass(frozen=True)
class AuditSamples:
    """One finished audit: its name (the folder), record and per-sample rows (empty when it wrote none)."""

    name: str
    folder: Path
    record: StoredRecord
    samples: list[AuditSample]

    @property
    def source(self) -> str:
        return f"{AUDIT_STAGE}/{self.name}"

    def score_spec(self, suite: str, score: str) -> MetricSpec | None:
        """The record's declared spec for a per-sample score: ``<audit>.<suite>.<score>``, else
        ``<audit>.<score>`` (e.g. ``hallucination.selfcheck.avg_neg_logprob``); None when it declares neither."""
        return self.record.metric_spec(f"{self.name}.{suite}.{score}") or self.record.metric_spec(
            f"{self.name}.{score}")


def audit_samples(folder: Path, record: StoredRecord) -> list[AuditSample]:
    """An audit's per-sample rows (its ``samples.jsonl``), read as its record pins them: empty when it wrote
    none, refused when the file changed after the record was written; errors name the file, line and field."""
    path = folder / SAMPLES_FILE
    if SAMPLES_FILE not in record.outputs and not path.exists():
        return []
    samples = []
    for number, row in enumerate(parse_jsonl(read_output(folder, record, SAMPLES_FILE), path), 1):
        try:
            samples.append(AuditSample.model_validate(row))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "row"
            raise InputError(f"{path}:{number}: field {where}: {err['msg']}") from None
    return samples


def audit_folders(store: RunStore) -> list[Path]:
    """Finished audits of the run, by name (:meth:`RunStore.finished`)."""
    return store.finished(AUDIT_STAGE)


def read_audits(store: RunStore) -> list[AuditSamples]:
    """Every finished audit of the run with its samples, sorted by name."""
    found = []
    for folder in audit_folders(store):
        record = read_record(folder, StoredRecord)
        found.append(AuditSamples(name=folder.name, folder=folder, record=record,
                                  samples=audit_samples(folder, record)))
    return found
