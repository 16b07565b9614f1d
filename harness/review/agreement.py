"""Inter-reviewer agreement: Cohen's kappa when exactly two reviewers labelled, Krippendorff's alpha otherwise.

Cohen's kappa compares two fixed raters on the items both labelled (scikit-learn's ``cohen_kappa_score``).
With three or more reviewers, each item labelled by some of them, Krippendorff's alpha (nominal) is the
statistic that handles missing ratings (the ``krippendorff`` package). Either is undefined (None) when no
item has two labels, or when every label is the same value (no variation to agree on); the raw agreement
(``Agreement.observed``, the share of agreeing label pairs within items) is reported either way, so a gate can
tell "all reviewers accepted everything" (raw agreement 1.0) from "nothing to measure yet" (n = 0).

Agreement of an automatic rater with people (the pairwise judge, an audit's flag) is measured over items
(:func:`item_agreement`): on each item the rater's one verdict is compared with the reviewers' verdict, the
value a strict majority of their votes chose (:func:`majority`); an item whose votes have no strict majority
(a split, e.g. one win and one loss) is left out and counted. The share of agreeing items has a Wilson
interval, and Cohen's kappa is over the same items. Items, not votes, are the unit: reviewers of one item
judge the same answers and tend to vote alike, so counting each vote as an independent observation (as
MT-Bench's study does) makes the interval too narrow for a rule judged on it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence

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


#: The reviewers' verdict on an item whose votes have no strict majority.
SPLIT = "split"
#: How :func:`item_agreement` makes its interval (``Agreed.interval``).
ITEM_INTERVAL = "wilson over items (reviewers' strict majority)"


def majority(votes: Sequence[Hashable], ban: tuple = ()) -> Hashable | None:
    """The reviewers' verdict on one item: the value a strict majority of their votes not in ``ban`` chose;
    :data:`SPLIT` when none has one (one win and one loss, or three different votes); None when no vote is left."""
    kept = [v for v in votes if v not in ban]
    if not kept:
        return None
    value, count = Counter(kept).most_common(1)[0]
    return value if 2 * count > len(kept) else SPLIT


def item_agreement(judged: Sequence[tuple[Hashable, Sequence[Hashable]]], confidence: float,
                   ban: tuple = ()) -> Agreed:
    """The share of items on which a rater's verdict equals the reviewers' (:func:`majority`), with a Wilson
    interval over those items. ``judged``: per item, (the rater's verdict, the reviewers' votes). ``ban``: an
    item the rater gave a banned verdict is left out, and so is every banned vote (``ban=("tie",)`` is
    MT-Bench's setup without ties, FastChat ``compute_agreement.py``, taken per item); an item whose remaining
    votes split is left out and counted in ``split``."""
    agreeing = n = split = 0
    for rater, votes in judged:
        if rater in ban:
            continue
        verdict = majority(votes, ban)
        if verdict is None:
            continue
        if verdict == SPLIT:
            split += 1
            continue
        n += 1
        agreeing += verdict == rater
    low, high = proportion_interval(agreeing, n, confidence, "wilson")
    return Agreed(agreeing=agreeing, n=n, rate=agreeing / n if n else None, ci_low=low, ci_high=high,
                  interval=ITEM_INTERVAL, split=split)


def item_kappa(judged: Sequence[tuple[Hashable, Sequence[Hashable]]]) -> float | None:
    """Cohen's kappa of a rater's verdicts against the reviewers' (:func:`majority`) over the items that have
    one (scikit-learn); None when undefined: no such item, or one category throughout (0/0)."""
    pairs = [(rater, verdict) for rater, votes in judged
             if (verdict := majority(votes)) is not None and verdict != SPLIT]
    if not pairs or len({str(v) for pair in pairs for v in pair}) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    kappa = float(cohen_kappa_score([str(a) for a, _ in pairs], [str(b) for _, b in pairs]))
    return None if math.isnan(kappa) else kappa
