"""Inter-reviewer agreement: Cohen's kappa when exactly two reviewers labelled, Krippendorff's alpha otherwise.

Cohen's kappa compares two fixed raters on the items both labelled (scikit-learn's ``cohen_kappa_score``).
With three or more reviewers, each item labelled by some of them, Krippendorff's alpha (nominal) is the
statistic that handles missing ratings (the ``krippendorff`` package). Either is undefined (None) when no
item has two labels, or when every label is the same value (no variation to agree on); the raw agreement
(``Agreement.observed``, the share of agreeing label pairs within items) is reported either way, so a gate can
tell "all reviewers accepted everything" (raw agreement 1.0) from "nothing to measure yet" (n = 0).

Agreement of an automatic rater with people (the pairwise judge, an audit's flag) compares each reviewer's
vote with the rater's one verdict on the same item, as MT-Bench's human-agreement study does
(:func:`vote_agreement`): the share of agreeing comparisons with a Wilson interval, and Cohen's kappa.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

from harness.core.stats import proportion_interval
from harness.review.record import Agreed, Agreement

Ratings = Mapping[Hashable, Mapping[str, Hashable]]  # item -> reviewer -> value


def agreement(ratings: Ratings) -> Agreement:
    """Agreement over items with two or more reviewers' values."""
    shared = {item: dict(by) for item, by in ratings.items() if len(by) >= 2}
    reviewers = sorted({r for by in shared.values() for r in by})
    result = _cohen(shared, reviewers) if len(reviewers) <= 2 else _krippendorff(shared, reviewers)
    return result.model_copy(update={"observed": observed_agreement(shared)})


def observed_agreement(shared: Ratings) -> float | None:
    """Raw agreement: over items with two or more values, the share of pairs of values on the same item that are
    equal (two reviewers: the share of items they agree on). None when no item has two values."""
    agreeing = pairs = 0
    for by in shared.values():
        values = [str(v) for v in by.values()]
        for i, first in enumerate(values):
            for second in values[i + 1:]:
                pairs += 1
                agreeing += first == second
    return agreeing / pairs if pairs else None


def _cohen(shared: dict, reviewers: list[str]) -> Agreement:
    if len(reviewers) < 2:
        return Agreement(statistic="cohen_kappa", value=None, n=0)
    first, second = reviewers
    pairs = [(by[first], by[second]) for by in shared.values()]
    values = {v for pair in pairs for v in pair}
    if len(values) < 2:
        return Agreement(statistic="cohen_kappa", value=None, n=len(pairs))
    from sklearn.metrics import cohen_kappa_score

    kappa = float(cohen_kappa_score([str(a) for a, _ in pairs], [str(b) for _, b in pairs]))
    return Agreement(statistic="cohen_kappa", value=None if math.isnan(kappa) else kappa, n=len(pairs))


def _krippendorff(shared: dict, reviewers: list[str]) -> Agreement:
    import krippendorff
    import numpy as np

    codes = {v: i for i, v in enumerate(sorted({str(v) for by in shared.values() for v in by.values()}))}
    if len(codes) < 2:
        return Agreement(statistic="krippendorff_alpha", value=None, n=len(shared))
    data = np.full((len(reviewers), len(shared)), np.nan)
    row = {r: i for i, r in enumerate(reviewers)}
    for column, by in enumerate(shared.values()):
        for reviewer, value in by.items():
            data[row[reviewer], column] = codes[str(value)]
    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    return Agreement(statistic="krippendorff_alpha", value=None if math.isnan(alpha) else alpha, n=len(shared))


def label_agreement(current_labels: list[dict]) -> tuple[Agreement, dict[str, Agreement]]:
    """Agreement on accept/reject and on each flag, from the store's current labels (one per item and reviewer)."""
    from harness.review.store import LABEL_FLAGS

    def by_item(field: str) -> dict:
        table: dict = {}
        for label in current_labels:
            table.setdefault(label["item_id"], {})[label["reviewer"]] = label[field]
        return table

    return agreement(by_item("verdict")), {flag: agreement(by_item(flag)) for flag in LABEL_FLAGS}


#: The outcome MT-Bench's study leaves out in its setup "without ties".
TIE = "tie"


def vote_agreement(votes: list[tuple[Hashable, Hashable]], confidence: float, ban: tuple = ()) -> Agreed:
    """The share of (rater, reviewer) vote pairs that agree, with a Wilson interval; a pair where either vote is
    in ``ban`` is left out (``ban=("tie",)`` is MT-Bench's setup without ties, FastChat
    ``compute_agreement.py``)."""
    kept = [(a, b) for a, b in votes if a not in ban and b not in ban]
    agreeing = sum(a == b for a, b in kept)
    low, high = proportion_interval(agreeing, len(kept), confidence, "wilson")
    return Agreed(agreeing=agreeing, n=len(kept), rate=agreeing / len(kept) if kept else None, ci_low=low,
                  ci_high=high, interval="wilson")


def vote_kappa(votes: list[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of a rater's votes against the reviewers' (scikit-learn); None when undefined: no votes, or
    one category throughout (0/0)."""
    if not votes or len({str(v) for pair in votes for v in pair}) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    kappa = float(cohen_kappa_score([str(a) for a, _ in votes], [str(b) for _, b in votes]))
    return None if math.isnan(kappa) else kappa
