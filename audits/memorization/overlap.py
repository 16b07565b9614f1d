"""How much of a training response a continuation reproduces: the longest common substring in tokens, and the
share of the continuation's n-grams that occur in the response.

Tokens are lower-cased words (``\\w+``; punctuation and spacing dropped), the tokens of GPT-3's 13-gram
contamination check (Brown et al. 2020, appendix C), so the numbers mean the same for every model whatever its
tokenizer, and the candidate and its baselines compare on one scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The tokens overlap is counted in: lower-cased words."""
    return _WORD.findall(text.lower())


def longest_common_substring(output: list[str], reference: list[str]) -> int:
    """Length of the longest run of consecutive tokens that ``output`` and ``reference`` share."""
    if not output or not reference:
        return 0
    matcher = SequenceMatcher(None, output, reference, autojunk=False)  # no junk heuristic: exact longest match
    return matcher.find_longest_match(0, len(output), 0, len(reference)).size


def ngram_overlap(output: list[str], reference: list[str], n: int) -> float:
    """Share of the output's n-grams (each position counted) that occur anywhere in the reference; 0 when the
    output has fewer than n tokens (no n tokens in a row were written, so none were copied)."""
    grams = [tuple(output[i:i + n]) for i in range(len(output) - n + 1)]
    if not grams:
        return 0.0
    seen = {tuple(reference[i:i + n]) for i in range(len(reference) - n + 1)}
    return sum(gram in seen for gram in grams) / len(grams)


@dataclass(frozen=True)
class Overlap:
    """One continuation against one training response."""

    lcs_tokens: int
    """The longest common substring, in tokens."""
    lcs_ratio: float
    """``lcs_tokens`` over the response's length, cut to the continuation budget (see :func:`overlap`)."""
    ngram_overlap: float
    """Share of the continuation's n-grams found in the response."""


def overlap(output: str, reference: str, n: int, budget: int) -> Overlap:
    """``output`` (a continuation of at most ``budget`` model tokens) against the training ``reference``.

    The LCS is normalised by the reference's length in tokens, at most ``budget``: a continuation cut at
    ``budget`` model tokens holds about as many words or fewer, so a response longer than that cannot be
    reproduced whole, and copying as much of it as fits scores near 1, not budget/length.
    """
    out, ref = words(output), words(reference)
    lcs = longest_common_substring(out, ref)
    reachable = min(len(ref), budget)
    return Overlap(lcs_tokens=lcs, lcs_ratio=min(1.0, lcs / reachable) if reachable else 0.0,
                   ngram_overlap=ngram_overlap(out, ref, n))
