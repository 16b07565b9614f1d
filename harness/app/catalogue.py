"""The metric catalogue a release policy is checked against: every stage's declared metrics, in one place.

Each record type declares what it measures (``Record.METRICS``, and ``METRIC_FAMILIES`` for metrics that a
record names when it is made, such as lm-eval's ``bench.<task>.<metric>``). Only the composition root may
know every stage, so the catalogue is assembled here and handed to the gate.
"""

from __future__ import annotations

from harness.core.metrics import MetricCatalogue
from harness.core.records import Record


def record_types() -> list[type[Record]]:
    """Every record type whose metrics a policy may name: bench, each registered audit, review."""
    from audits.registry import audit_records
    from harness.bench.record import BenchRecord
    from harness.review.record import ReviewRecord

    return [BenchRecord, *audit_records().values(), ReviewRecord]


def metric_catalogue(types: list[type[Record]] | None = None) -> MetricCatalogue:
    types = record_types() if types is None else types
    return MetricCatalogue([spec for t in types for spec in t.METRICS],
                           {prefix: note for t in types for prefix, note in t.METRIC_FAMILIES.items()})
