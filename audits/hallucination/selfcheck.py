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


class NliSelfCheck:
    """SelfCheckGPT's NLI variant: each sentence of the answer against each sampled answer; the sentence's
    score is the mean probability of contradiction, normalised over entailment and contradiction only.

    `selfcheckgpt.SelfCheckNLI` calls ``batch_encode_plus``, which transformers 5 removed, so the same
    computation runs here on transformers directly (batched over samples). The model is a local folder of
    an MNLI classifier (SelfCheckGPT uses potsawee/deberta-v3-large-mnli, two labels); labels are found by
    name in its config, else SelfCheckGPT's order (entailment, contradiction).
    """

    def __init__(self, model_path: str, batch_size: int = 32):
        from pathlib import Path

        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from harness.core.errors import ModelLoadError

        if not (Path(model_path) / "config.json").exists():
            raise ModelLoadError(f"{model_path}: not a local NLI model folder (no config.json). Download an MNLI "
                                 "classifier (e.g. potsawee/deberta-v3-large-mnli) where the network works and set "
                                 "audit.hallucination.selfcheck.nli_model to its folder")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForSequenceClassification.from_pretrained(model_path).eval()
        labels = {name.lower(): index for index, name in self.model.config.id2label.items()}
        self.entail = labels.get("entailment", 0)
        self.contradict = labels.get("contradiction", 1)
        self.batch_size = batch_size
        with _offline_spacy():
            import spacy

            self.nlp = spacy.load("en_core_web_sm")
        self.identity = {"method": f"SelfCheckGPT NLI ({Path(model_path).name})", "sentences": spacy_pipeline_name()}

    def sentence_scores(self, sentences: list[str], samples: list[str]) -> list[float]:
        import torch

        pairs = [(s, sample) for s in sentences for sample in samples]
        probabilities = []
        for begin in range(0, len(pairs), self.batch_size):
            batch = pairs[begin:begin + self.batch_size]
            inputs = self.tokenizer([p[0] for p in batch], [p[1] for p in batch], padding=True, truncation=True,
                                    return_tensors="pt")
            with torch.inference_mode():
                logits = self.model(**inputs).logits[:, [self.entail, self.contradict]]
            probabilities += torch.softmax(logits, dim=-1)[:, 1].tolist()
        k = len(samples)
        return [sum(probabilities[i * k:(i + 1) * k]) / k for i in range(len(sentences))]

    def score(self, answer: str, samples: list[str]) -> float | None:
        """Mean over the answer's sentences of P(contradiction); None for an empty answer."""
        sentences = [s.text.strip() for s in self.nlp(answer).sents if s.text.strip()]
        if not sentences or not samples:
            return None
        scores = self.sentence_scores(sentences, samples)
        return sum(scores) / len(scores)
