"""Metric types: what a record measures, its values and its paired deltas.

There is no global registry. Each record type declares the metrics it reports (``Record.METRICS``, or
per record where they depend on the run, as lm-eval tasks do) and writes them into its JSON with their
direction, so the gate can judge any record without importing the stage that made it. Policy validation
uses a :class:`MetricCatalogue` built from the stages' declarations by the composition root.

Names are dotted: ``<family>.<...>.<metric>``, e.g. ``toxicity.expected_max_toxicity``,
``hallucination.closed_book.hallucination_rate``, ``bench.nift_if.prompt_level_strict_acc``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from harness.core.errors import ConfigError


class MetricSpec(BaseModel):
    """One metric and which way is better; records carry these in their JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Dotted name, e.g. toxicity.expected_max_toxicity.")
    higher_is_better: bool = Field(description="The direction every rule and delta is oriented by.")
    description: str = Field("", description="What it measures, for the policy reference and the report.")
    unit: str = Field("rate", description="rate (0..1), score, or count.")
    label: str = Field("", description="Plain-language name for readers who do not know the metric names, e.g. "
                                       "'follows formatting instructions'; empty: the report shows the "
                                       "description, then the name.")
    bounds: tuple[float, float] | None = Field(
        None, description="(lowest, highest) value a score can take, where it has such bounds (a mean of "
                          "probabilities: 0, 1); a rate is 0..1 without it.")

    @property
    def display_name(self) -> str:
        """What a reader is shown: the label, else the description, else the dotted name."""
        return self.label or self.description or self.name

    @property
    def value_range(self) -> tuple[float, float]:
        """(lowest, highest) value the metric can take: 0..1 for a rate; a score's declared :attr:`bounds`, else
        unbounded (a scale only the stage knows). The gate refuses a stored value outside it and a block rule
        every value in it meets."""
        if self.unit == "rate":
            return 0.0, 1.0
        return self.bounds if self.bounds is not None else (-math.inf, math.inf)


class MetricCatalogue:
    """The metrics a policy may name: exact specs declared by the stages' record types, and families
    (name prefixes such as ``bench.``) whose members a record declares when it is made."""

    def __init__(self, specs: Iterable[MetricSpec] = (), families: dict[str, str] | None = None):
        self.specs: dict[str, MetricSpec] = {}
        self.families = dict(families or {})
        for spec in specs:
            self.add(spec)

    def add(self, spec: MetricSpec) -> None:
        """Declaring one name twice with opposite directions is a bug in a stage, caught here."""
        known = self.specs.get(spec.name)
        if known is not None and known.higher_is_better != spec.higher_is_better:
            raise ValueError(f"metric {spec.name!r} declared twice with opposite directions")
        self.specs.setdefault(spec.name, spec)

    def family(self, name: str) -> str | None:
        return next((prefix for prefix in self.families if name.startswith(prefix)), None)

    def check(self, name: str) -> None:
        """Raise ConfigError for a name no stage declares (listing the known ones)."""
        if name not in self.specs and self.family(name) is None:
            known = sorted(self.specs) + [f"{prefix}* ({text})" for prefix, text in sorted(self.families.items())]
            raise ConfigError(f"unknown metric {name!r}; known metrics: {', '.join(known) or 'none'}")

    def get(self, name: str) -> MetricSpec | None:
        return self.specs.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self.specs or self.family(name) is not None


class MetricValue(BaseModel):
    """One model's value of one registered metric, as a record reports it."""

    metric: str = Field(description="Metric name (a MetricSpec of the same record).")
    model: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = Field(description="Items (prompts, questions, reviewed items) behind the value.")
    attribute: str | None = Field(None, description="Scorer attribute for toxicity metrics.")
    interval: str | None = Field(None, description="How ci_low/ci_high were computed: 'wilson' or "
                                                   "'clopper-pearson' for proportions, 'bootstrap-bca' for "
                                                   "continuous means ('bootstrap-percentile' where a record "
                                                   "resamples otherwise), 'constant-bounded' for values that all "
                                                   "agree on a bounded scale; None when there is no interval.")


class MetricDelta(BaseModel):
    """Candidate minus one baseline on the same items, with a paired CI."""

    metric: str = Field(description="Metric name (a MetricSpec of the same record).")
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
    interval: str | None = Field(None, description="How ci_low/ci_high were computed: 'newcombe' for paired "
                                                   "proportions, 'bootstrap-bca' for continuous metrics "
                                                   "('bootstrap-percentile' where a record resamples otherwise), "
                                                   "'constant-bounded' for differences that all agree on a "
                                                   "bounded scale; None when there is no interval.")


def delta_from_comparison(metric: str, candidate: str, comparison, attribute: str | None = None) -> MetricDelta:
    """A ``harness.core.stats.PairedComparison`` as a registry-named delta."""
    return MetricDelta(metric=metric, candidate=candidate, baseline=comparison.baseline,
                       difference=comparison.mean_difference, ci_low=comparison.ci_low, ci_high=comparison.ci_high,
                       confidence=comparison.confidence, n=comparison.n, test=comparison.test,
                       p_value=comparison.p_value, attribute=attribute, interval=comparison.interval)
