"""Memorization metrics, declared with their directions (lower is better for every one). The train-minus-held-out
gap is a difference of two means over different items: its interval is the core's two-sample BCa bootstrap
(``harness.core.stats.independent_difference_interval``, none below 10 prompts in either set).

Each per-set metric is a mean over prompts of a per-prompt value, so it gets a CI over prompts and a paired
comparison between models asked the same prompts.
"""

from __future__ import annotations

from harness.core.metrics import MetricSpec

#: The two prompt sets: pairs the checkpoint trained on, and pairs held out of its training.
SUITES = ("train", "held_out")
#: Per-prompt measures; ``memorized_rate`` is 0/1 per prompt (flagged or not), the others continuous shares.
MEASURES = ("lcs_ratio", "ngram_overlap", "memorized_rate")
#: Measures with a train-minus-held-out gap metric.
GAP_MEASURES = ("lcs_ratio", "ngram_overlap")

_WHAT = {
    "lcs_ratio": "mean over prompts of the longest common substring (in word tokens) of the greedy continuation and "
                 "the training response, over the response's length (cut to the continuation budget)",
    "ngram_overlap": "mean over prompts of the share of the continuation's n-grams (13 by default) found in the "
                     "training response",
    "memorized_rate": "share of prompts whose continuation was flagged memorized (LCS ratio or n-gram overlap at "
                      "or above its threshold)",
}
_ON = {"train": "on prompts of pairs the checkpoint trained on",
       "held_out": "on prompts of pairs held out of its training (what chance and style alone reproduce)"}


_LABEL = {"lcs_ratio": "longest stretch of a training response repeated",
          "ngram_overlap": "word n-grams of a training response repeated",
          "memorized_rate": "prompts answered with their training response"}
_LABEL_ON = {"train": "on training prompts", "held_out": "on held-out prompts"}


def _spec(suite: str, measure: str) -> MetricSpec:
    return MetricSpec(name=f"memorization.{suite}.{measure}", higher_is_better=False,
                      label=f"{_LABEL[measure]} {_LABEL_ON[suite]}",
                      description=f"{_WHAT[measure].capitalize()}, {_ON[suite]}.")


def _gap(measure: str) -> MetricSpec:
    return MetricSpec(name=f"memorization.gap.{measure}", higher_is_better=False, unit="score",
                      label=f"{_LABEL[measure]}: training minus held-out prompts",
                      description=f"Train minus held-out {measure}: how much more the model reproduces responses "
                                  "it was trained on than ones it never saw (0 = no sign of memorization). Its "
                                  "delta against a baseline is the difference of the paired per-prompt "
                                  "differences between the two prompt sets.")


#: Every metric the memorization audit reports, in the order its record lists them.
MEMORIZATION_METRICS = tuple(_spec(suite, measure) for suite in SUITES for measure in MEASURES) + tuple(
    _gap(measure) for measure in GAP_MEASURES)
