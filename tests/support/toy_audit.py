"""A toy audit defined outside the audits package: registering it is all it takes to appear in the audit
record, the gate's evidence, the review queue and the report."""

from __future__ import annotations

from typing import ClassVar, Literal

import pytest
from pydantic import Field

from audits.config import AuditConfig
from audits.registry import AuditedModel, AuditRecord, register_audit, unregister_audit
from harness.core.config import ModelRef, Section
from harness.core.metrics import MetricSpec, MetricValue
from harness.core.models import model_name
from harness.core.runner import StageRun
from harness.core.samples import AuditSample
from harness.core.store import RunStore
from harness.train.record import resolve_base

TOY_VERSION = "1"
DEFAULT_REPLIES = ["hello there", "go away"]
GREETING_RATE = MetricSpec(name="toy.greeting_rate", higher_is_better=True, description="Replies that greet back.")


class ToyAuditConfig(Section):
    enabled: bool = Field(True, description="Run the toy audit.")
    greeting: str = Field("hello", description="The word a reply must hold to count as a greeting.")


class ToyAuditRecord(AuditRecord):
    kind: Literal["toy_audit"] = "toy_audit"
    rates: dict[str, float] = Field(description="model -> share of replies holding the greeting.")

    METRICS: ClassVar[tuple[MetricSpec, ...]] = (GREETING_RATE,)

    def compute_values(self) -> list[MetricValue]:
        return [MetricValue(metric=GREETING_RATE.name, model=model, value=rate, n=2)
                for model, rate in self.rates.items()]


def run_toy_audit(config: AuditConfig, candidate: str, baselines: list[ModelRef], store: RunStore,
                  force: bool = False, replies: dict[str, list[str]] | None = None) -> ToyAuditRecord:
    """Two scripted replies per model (default: one greeting, one not); a reply greets when it holds the
    configured word."""
    settings = config.section("toy", ToyAuditConfig)
    run = StageRun(store, "audit", "toy", ToyAuditRecord, force=force)
    specs = [(model_name(candidate), "candidate", candidate)] + [(b.name, "baseline", b.model) for b in baselines]
    resolved = {name: run.model(spec, resolve_base) for name, _, spec in specs}
    if (done := run.cached({"version": TOY_VERSION, "toy": settings.model_dump()})) is not None:
        return done
    rows = [AuditSample(audit="toy", suite="greetings", model=name, role=role, item_id=f"q{i}", prompt="Hi!",
                        output=reply, scores={"greets": float(settings.greeting in reply)},
                        flags={"rude": settings.greeting not in reply})
            for name, role, _ in specs for i, reply in enumerate((replies or {}).get(name, DEFAULT_REPLIES))]
    record = ToyAuditRecord(
        **run.header(), version=TOY_VERSION, models=[AuditedModel(name=n, role=r, model=resolved[n])
                                                     for n, r, _ in specs],
        rates={name: sum(r.scores["greets"] for r in rows if r.model == name) / 2 for name, _, _ in specs},
        flagged_samples={name: sum(r.flags["rude"] for r in rows if r.model == name) for name, _, _ in specs},
        files={"samples": "samples.jsonl"})
    return run.commit(record, {"samples.jsonl": (row.model_dump() for row in rows)})


@pytest.fixture
def toy_audit():
    register_audit("toy", version=TOY_VERSION, record_type=ToyAuditRecord, config_type=ToyAuditConfig)(run_toy_audit)
    yield
    unregister_audit("toy")


