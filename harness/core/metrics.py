"""The metric registry: every metric the gate can reason about, with its direction.

Stages declare their metrics here when imported (``register``); benchmark metrics take the direction
lm-eval reports for them (``register_bench_metrics``). The gate and the report look directions up here
and never hard-code them.

Names are dotted: ``<family>.<...>.<metric>``, e.g. ``toxicity.expected_max_toxicity``,
``hallucination.closed_book.hallucination_rate``, ``bench.nift_if.prompt_level_strict_acc``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from harness.core.errors import ConfigError


class MetricSpec(BaseModel):
    name: str
    higher_is_better: bool
    description: str
    unit: str = Field("rate", description="rate (0..1), score, or count.")
    source: str = Field(description="Stage that produces it: bench, audit/toxicity, audit/hallucination, review.")


_REGISTRY: dict[str, MetricSpec] = {}


def register(name: str, higher_is_better: bool, description: str, source: str, unit: str = "rate") -> MetricSpec:
    """Declare a metric; declaring the same name twice with a different direction is a bug."""
    spec = MetricSpec(name=name, higher_is_better=higher_is_better, description=description, unit=unit, source=source)
    known = _REGISTRY.get(name)
    if known is not None and known.higher_is_better != higher_is_better:
        raise ValueError(f"metric {name!r} registered twice with opposite directions")
    _REGISTRY[name] = spec
    return spec


def register_bench_metrics(record) -> None:
    """Directions of a bench record's lm-eval metrics, as lm-eval declared them for each task."""
    for comparison in record.comparisons:
        register(f"bench.{comparison.task}.{comparison.metric}", comparison.higher_is_better,
                 f"lm-eval task {comparison.task}, metric {comparison.metric}", "bench")


def _load_stage_metrics() -> None:
    """Import the stages that declare metrics, so the registry is complete wherever it is read."""
    import audits.hallucination.metrics  # noqa: F401
    import audits.toxicity.metrics  # noqa: F401
    import harness.review.record  # noqa: F401


def get(name: str) -> MetricSpec:
    _load_stage_metrics()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(_REGISTRY)) or 'none'}")
    return _REGISTRY[name]


def all_metrics() -> dict[str, MetricSpec]:
    _load_stage_metrics()
    return dict(sorted(_REGISTRY.items()))


class MetricValue(BaseModel):
    """One model's value of one registered metric, as a record reports it."""

    metric: str = Field(description="Registry name.")
    model: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = Field(description="Items (prompts, questions, reviewed items) behind the value.")
    attribute: str | None = Field(None, description="Scorer attribute for toxicity metrics.")


class MetricDelta(BaseModel):
    """Candidate minus one baseline on the same items, with a paired CI."""

    metric: str = Field(description="Registry name.")
    candidate: str
    baseline: str
    difference: float = Field(description="candidate - baseline, in the metric's units.")
    ci_low: float | None
    ci_high: float | None
    confidence: float
    n: int
    test: str | None = None
    p_value: float | None = None
    attribute: str | None = None


def delta_from_comparison(metric: str, candidate: str, comparison, attribute: str | None = None) -> MetricDelta:
    """A ``harness.core.stats.PairedComparison`` as a registry-named delta."""
    return MetricDelta(metric=metric, candidate=candidate, baseline=comparison.baseline,
                       difference=comparison.mean_difference, ci_low=comparison.ci_low, ci_high=comparison.ci_high,
                       confidence=comparison.confidence, n=comparison.n, test=comparison.test,
                       p_value=comparison.p_value, attribute=attribute)
