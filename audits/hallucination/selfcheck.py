"""SelfCheckGPT (Manakul et al. 2023) n-gram scoring through the `selfcheckgpt` package.

SelfCheckGPT loads spaCy's ``en_core_web_sm`` for sentence splitting and tokenisation. That package is a
download; where it is not installed, a blank English pipeline with a rule-based sentencizer stands in (the
tokenizer is the same; sentence boundaries come from punctuation instead of the parser). The identity of
what ran is recorded.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

from pydantic import BaseModel


class SelfCheckScore(BaseModel):
    sentences: list[str]
    sentence_avg_neg_logprob: list[float]
    sentence_max_neg_logprob: list[float]
    avg_neg_logprob: float
    avg_max_neg_logprob: float


def spacy_pipeline_name() -> str:
    if importlib.util.find_spec("en_core_web_sm") is not None:
        return "spacy:en_core_web_sm"
    return "spacy:blank-en+sentencizer (en_core_web_sm not installed)"


@contextlib.contextmanager
def _offline_spacy() -> Iterator[None]:
    """Make ``spacy.load("en_core_web_sm")`` return a blank English pipeline when the model is missing."""
    import spacy

    if importlib.util.find_spec("en_core_web_sm") is not None:
        yield
        return
    original = spacy.load

    def load(name, *args, **kwargs):
        if name != "en_core_web_sm":
            return original(name, *args, **kwargs)
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        return nlp

    spacy.load = load
    try:
        yield
    finally:
        spacy.load = original


class NgramSelfCheck:
    def __init__(self, n: int = 1):
        with _offline_spacy():
            import spacy
            from selfcheckgpt.modeling_selfcheck import SelfCheckNgram

            self.nlp = spacy.load("en_core_web_sm")
        self.checker = SelfCheckNgram(n=n, lowercase=True)
        self.identity = {"method": f"selfcheckgpt SelfCheck-Ngram, n={n}", "sentences": spacy_pipeline_name()}

    def score(self, answer: str, samples: list[str]) -> SelfCheckScore | None:
        """None when the answer has no sentence to check (empty output)."""
        sentences = [s.text.strip() for s in self.nlp(answer).sents if s.text.strip()]
        if not sentences:
            return None
        with _offline_spacy():
            result = self.checker.predict(sentences=sentences, passage=answer, sampled_passages=samples)
        sent, doc = result["sent_level"], result["doc_level"]
        return SelfCheckScore(sentences=sentences, sentence_avg_neg_logprob=[float(x) for x in sent["avg_neg_logprob"]],
                              sentence_max_neg_logprob=[float(x) for x in sent["max_neg_logprob"]],
                              avg_neg_logprob=float(doc["avg_neg_logprob"]),
                              avg_max_neg_logprob=float(doc["avg_max_neg_logprob"]))
