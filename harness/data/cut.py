"""Cutting a document into the user turn (first part) and the original continuation (second part)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from harness.data.config import CutConfig

_WORD = re.compile(r"\S+")
# A sentence ends at . ! or ? (optionally followed by closing quotes/brackets) before whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?=\s)")


@dataclass(frozen=True)
class Cut:
    prompt: str
    reference: str
    cut_char: int = 0
    target_ratio: float = 0.0
    actual_ratio: float = 0.0
    snapped_to: str = "word"


def cut_document(doc_id: str, text: str, config: CutConfig, seed: int) -> Cut | None:
    """Cut near ``ratio`` (+ seeded jitter), snapped to a sentence end when one is close enough.

    Returns None when the document is too short to leave ``min_part_words`` on each side. The jitter is
    drawn from a generator seeded by (seed, doc_id), so a document's cut does not depend on the order or
    the number of other documents.
    """
    words = [m.span() for m in _WORD.finditer(text)]
    n = len(words)
    lo, hi = config.min_part_words, n - config.min_part_words
    if hi < lo:
        return None
    rng = random.Random(f"{seed}:{doc_id}")
    target_ratio = min(0.99, max(0.01, config.ratio + rng.uniform(-config.jitter, config.jitter)))
    target_word = min(hi, max(lo, round(n * target_ratio)))
    cut_word, snapped = target_word, "word"
    if config.snap == "sentence":
        # Word indices that start a new sentence, within the allowed range; pick the closest to the target.
        starts = {i + 1 for i, (_, end) in enumerate(words[:-1]) if _SENTENCE_END.match(text, end - 1)}
        starts |= {i + 1 for i, (_, end) in enumerate(words[:-1]) if text[end:end + 2] == "\n\n"}
        window = max(3, n // 4)
        allowed = [i for i in starts if lo <= i <= hi and abs(i - target_word) <= window]
        if allowed:
            cut_word, snapped = min(allowed, key=lambda i: (abs(i - target_word), i)), "sentence"
    cut_char = words[cut_word][0]
    return Cut(prompt=text[:cut_char].rstrip(), reference=text[cut_char:].strip(), cut_char=cut_char,
               target_ratio=round(target_ratio, 4), actual_ratio=round(cut_word / n, 4), snapped_to=snapped)
