"""Cutting a document into segments at sentence ends: the user turns and the real responses of a pair.

A one-turn pair is the document cut in two (the user turn, then the original continuation). A pair of
``turns`` turns is the document cut into ``2 * turns`` segments: segment ``2k`` is user turn ``k`` and
segment ``2k + 1`` is its real response (what the document says next), so the real responses never repeat
a user turn and the no-distillation conversation is the document itself, in order.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from itertools import pairwise

from harness.data.config import CutConfig

_WORD = re.compile(r"\S+")
# A sentence ends at . ! or ? (optionally followed by closing quotes/brackets) before whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s)")


@dataclass(frozen=True)
class Cut:
    """One cut of the document: where it fell, and where it was aimed."""

    prompt: str
    reference: str
    cut_char: int = 0
    target_ratio: float = 0.0
    actual_ratio: float = 0.0
    snapped_to: str = "word"

    def source(self) -> dict[str, object]:
        """The cut as a pair's ``source`` fields."""
        return {"cut_char": self.cut_char, "target_ratio": self.target_ratio, "actual_ratio": self.actual_ratio,
                "snapped_to": self.snapped_to}


@dataclass(frozen=True)
class Segments:
    """A document cut into ``2 * turns`` segments, in document order."""

    texts: tuple[str, ...]
    cuts: tuple[Cut, ...] = ()  # the boundary before texts[i + 1]; its prompt/reference are the texts either side

    @property
    def turns(self) -> int:
        return len(self.texts) // 2

    @property
    def user_turns(self) -> list[str]:
        """Segments 0, 2, 4, ...: the conversation's user turns."""
        return list(self.texts[0::2])

    @property
    def references(self) -> list[str]:
        """Segments 1, 3, 5, ...: the real response that follows each user turn in the document."""
        return list(self.texts[1::2])


def segment_document(doc_id: str, text: str, config: CutConfig, seed: int, turns: int = 1) -> Segments | None:
    """Cut into ``2 * turns`` segments, each boundary snapped to a sentence end when one is close enough.

    The document is read as ``turns`` equal blocks, each a user turn then its response, cut at ``ratio`` of
    the block; block boundaries fall at k/turns. Every boundary gets a seeded uniform jitter of
    ``jitter / turns`` (of the document) and moves to the nearest sentence start within ``n / (4 * turns)``
    words, else stays on its word. Boundaries are placed left to right, each leaving ``min_part_words``
    for every later segment. The jitter comes from one generator seeded by (seed, doc_id), drawn once per
    boundary in order, so a document's cuts do not depend on the order or the number of other documents,
    and ``turns: 1`` is exactly the one cut of earlier versions. Returns None when the document has fewer
    than ``2 * turns * min_part_words`` words.
    """
    words = [m.span() for m in _WORD.finditer(text)]
    n, parts = len(words), 2 * turns
    if n < parts * config.min_part_words:
        return None
    rng = random.Random(f"{seed}:{doc_id}")
    starts: set[int] = set()
    if config.snap == "sentence":
        # Word indices that start a new sentence (or paragraph).
        starts = {i + 1 for i, (_, end) in enumerate(words[:-1]) if _SENTENCE_END.match(text, end - 1)}
        starts |= {i + 1 for i, (_, end) in enumerate(words[:-1]) if text[end:end + 2] == "\n\n"}
    window = max(3, n // (4 * turns))
    boundaries: list[tuple[int, float, str]] = []  # (word index, target ratio, snapped to)
    previous = 0
    for j in range(1, parts):
        # Odd boundaries end a user turn (at `ratio` of its block), even ones end a block.
        aim = (j // 2 + (config.ratio if j % 2 else 0)) / turns
        target_ratio = min(0.99, max(0.01, aim + rng.uniform(-config.jitter, config.jitter) / turns))
        lo, hi = previous + config.min_part_words, n - (parts - j) * config.min_part_words
        target_word = min(hi, max(lo, round(n * target_ratio)))
        cut_word, snapped = target_word, "word"
        allowed = [i for i in starts if lo <= i <= hi and abs(i - target_word) <= window]
        if allowed:
            cut_word, snapped = min(allowed, key=lambda i: (abs(i - target_word), i)), "sentence"
        boundaries.append((cut_word, target_ratio, snapped))
        previous = cut_word
    chars = [words[w][0] for w, _, _ in boundaries]
    texts = [text[:chars[0]].rstrip()] + [text[a:b].strip() for a, b in pairwise(chars)] \
        + [text[chars[-1]:].strip()]
    cuts = tuple(Cut(prompt=texts[i], reference=texts[i + 1], cut_char=chars[i], target_ratio=round(ratio, 4),
                     actual_ratio=round(w / n, 4), snapped_to=snapped)
                 for i, (w, ratio, snapped) in enumerate(boundaries))
    return Segments(texts=tuple(texts), cuts=cuts)


def cut_document(doc_id: str, text: str, config: CutConfig, seed: int) -> Cut | None:
    """Cut near ``ratio`` (+ seeded jitter), snapped to a sentence end when one is close enough: the
    one-turn case of :func:`segment_document`. Returns None when the document is too short to leave
    ``min_part_words`` on each side."""
    segments = segment_document(doc_id, text, config, seed, turns=1)
    return None if segments is None else segments.cuts[0]
