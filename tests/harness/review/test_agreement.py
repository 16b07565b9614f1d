"""Agreement numbers against values computed by hand."""

from __future__ import annotations

import pytest

from harness.review.agreement import agreement


def test_cohen_kappa_two_reviewers_by_hand():
    # 10 items. Agreement on 7: p_o = 0.7. ann says yes 7 times, bob 6 times:
    # p_e = 0.7 * 0.6 + 0.3 * 0.4 = 0.54; kappa = (0.7 - 0.54) / (1 - 0.54) = 0.16 / 0.46 = 8/23.
    ann = "y y n y n y y n y y".split()
    bob = "y n n y n y y y y n".split()
    result = agreement({i: {"ann": a, "bob": b} for i, (a, b) in enumerate(zip(ann, bob))})
    assert result.statistic == "cohen_kappa"
    assert result.n == 10
    assert result.value == pytest.approx(8 / 23)
    assert result.observed == pytest.approx(0.7)


def test_cohen_kappa_uses_only_items_both_labelled():
    ratings = {1: {"ann": "y", "bob": "y"}, 2: {"ann": "n", "bob": "n"}, 3: {"ann": "y"}, 4: {"bob": "n"}}
    result = agreement(ratings)
    assert (result.statistic, result.n, result.value) == ("cohen_kappa", 2, pytest.approx(1.0))


def test_krippendorff_alpha_three_reviewers_with_missing_values_by_hand():
    # Units: (1,1,1), (1,2,-), (2,2,2), (1,-,2). Coincidences (each pair in a unit of m values weighs 1/(m-1)):
    # o11 = 3, o22 = 3, o12 = o21 = 1 + 1 = 2; n1 = n2 = 5, n = 10.
    # D_o = (o12 + o21) / n = 0.4; D_e = (n1 n2 + n2 n1) / (n (n - 1)) = 50 / 90; alpha = 1 - 0.4 * 90 / 50 = 0.28.
    ratings = {1: {"a": 1, "b": 1, "c": 1}, 2: {"a": 1, "b": 2}, 3: {"a": 2, "b": 2, "c": 2}, 4: {"a": 1, "c": 2}}
    result = agreement(ratings)
    assert result.statistic == "krippendorff_alpha"
    assert result.n == 4
    assert result.value == pytest.approx(0.28)
    # Raw agreement: label pairs within items, 3 + 0 + 3 + 0 agreeing of 3 + 1 + 3 + 1.
    assert result.observed == pytest.approx(6 / 8)


@pytest.mark.parametrize("ratings", [
    {},                                                   # nothing labelled
    {1: {"ann": "y"}, 2: {"bob": "n"}},                   # no item with two labels
    {1: {"ann": "y", "bob": "y"}, 2: {"ann": "y", "bob": "y"}},  # no variation: kappa is 0/0
    {1: {"a": "y", "b": "y", "c": "y"}},                  # the same for alpha
])
def test_undefined_agreement_is_none_not_a_number(ratings):
    assert agreement(ratings).value is None


@pytest.mark.parametrize("ratings, n", [
    ({1: {"ann": "accept", "bob": "accept"}, 2: {"ann": "accept", "bob": "accept"}, 3: {"ann": "accept"}}, 2),
    ({1: {"a": "accept", "b": "accept", "c": "accept"}, 2: {"a": "accept", "c": "accept"}}, 2),
])
def test_everyone_accepting_everything_is_undefined_kappa_with_perfect_raw_agreement(ratings, n):
    """kappa/alpha is 0/0 here, but the record says the reviewers agreed on every item, so the gate can tell
    this from 'nothing measured yet'."""
    result = agreement(ratings)
    assert (result.value, result.n, result.observed) == (None, n, 1.0)


def test_raw_agreement_is_none_without_a_doubly_labelled_item():
    assert agreement({1: {"ann": "y"}, 2: {"bob": "n"}}).observed is None
