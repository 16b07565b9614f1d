"""Toxicity scorers. detoxify is the scorer of record; alt-profanity-check is an offline fallback that
always says it is one, so a fallback number never passes as detoxify's.

detoxify offline: ``Detoxify(checkpoint=..., huggingface_config_path=...)`` still calls
``from_pretrained(<model_type from the checkpoint>)``, which goes to the hub; the checkpoint's
``model_type`` is rewritten to the local config folder first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from harness.core.errors import ConfigError, ModelLoadError
from harness.core.models import cache_home
from harness.core.records import sha256_file


class ScorerIdentity(BaseModel):
    name: str = Field(description="'detoxify:<variant>' or 'alt-profanity-check'.")
    fallback: bool = Field(description="True when this is not detoxify: reports must say so.")
    attributes: list[str]
    checkpoint_sha256: str | None = None
    version: str | None = Field(None, description="The scorer package's version (detoxify, alt-profanity-check): "
                                                  "its weights ship in the package, so an upgrade is another "
                                                  "scorer; in the audit's fingerprint.")
    note: str = ""


def _package_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class DetoxifyScorer:
    """detoxify, batched, with long texts split into chunks and scored as the maximum over the chunks
    (detoxify itself truncates at the model's length without a word)."""

    def __init__(self, variant: Literal["original", "unbiased", "multilingual"] = "original",
                 checkpoint: str | None = None, config_dir: str | None = None, batch_size: int = 64,
                 allow_pickle: bool = False):
        if checkpoint:  # everything is local: without this, transformers spends ~30 s retrying the hub
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from detoxify import Detoxify

        self.batch_size = batch_size
        sha = None
        try:
            if checkpoint:
                if not config_dir:
                    raise ConfigError("a detoxify checkpoint needs its Hugging Face config and tokenizer folder "
                                      "(huggingface_config_path), e.g. the bert-base-uncased files for 'original'")
                local, sha = self._localise(Path(checkpoint), Path(config_dir), allow_pickle)
                self.model = Detoxify(checkpoint=str(local), huggingface_config_path=str(config_dir))
            else:
                self.model = Detoxify(variant)
        except (ConfigError, ModelLoadError):
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"detoxify '{variant}' could not be loaded ({type(exc).__name__}: {exc}). Offline, download the "
                "checkpoint (.ckpt from github.com/unitaryai/detoxify releases) and its Hugging Face config folder "
                "elsewhere, and pass audit.toxicity.checkpoint and audit.toxicity.config_dir; or use the "
                "labelled fallback scorer (audit.toxicity.scorer: profanity-check).") from exc
        tokenizer = self.model.tokenizer
        self.tokenizer = tokenizer
        self.max_tokens = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512) - 2
        self.identity = ScorerIdentity(name=f"detoxify:{variant if not checkpoint else Path(checkpoint).name}",
                                       fallback=False, attributes=list(self.model.class_names), checkpoint_sha256=sha,
                                       version=_package_version("detoxify"))

    @staticmethod
    def _localise(checkpoint: Path, config_dir: Path, allow_pickle: bool) -> tuple[Path, str]:
        """Copy the checkpoint with ``model_type`` pointing at ``config_dir``, cached by content hash."""
        import torch

        if not checkpoint.exists():
            raise ModelLoadError(f"{checkpoint}: detoxify checkpoint not found")
        if not (config_dir / "config.json").exists():
            raise ModelLoadError(f"{config_dir}: not a Hugging Face config folder (no config.json)")
        sha = sha256_file(checkpoint)
        try:
            loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001  (the unpickler's error types differ across torch versions)
            if not allow_pickle:
                raise ModelLoadError(f"{checkpoint}: not a plain tensors-and-dicts checkpoint ({type(exc).__name__}); "
                                     "loading it would unpickle arbitrary objects. Pass allow_pickle if you "
                                     "trust the file.") from None
            loaded = torch.load(checkpoint, map_location="cpu", weights_only=False)
        try:
            loaded["config"]["arch"]["args"]["model_type"] = str(config_dir.resolve())
            loaded["config"]["dataset"]["args"]["classes"]
            loaded["state_dict"]
        except (KeyError, TypeError):
            raise ModelLoadError(f"{checkpoint}: not in detoxify's format (needs config.arch.args, "
                                 "config.dataset.args.classes and state_dict)") from None
        local = cache_home() / "detoxify" / f"{sha[:16]}-{Path(config_dir).resolve().name}.ckpt"
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_suffix(".tmp")
            torch.save(loaded, tmp)
            os.replace(tmp, local)
        return local, sha

    def _chunks(self, text: str, ids: list[int] | None = None) -> list[str]:
        ids = ids if ids is not None else self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_tokens:
            return [text]
        return [self.tokenizer.decode(ids[i:i + self.max_tokens]) for i in range(0, len(ids), self.max_tokens)]

    def score(self, texts: list[str]) -> dict[str, list[float]]:
        owners, chunks, lengths = [], [], []
        # one batched tokenizer call finds the texts that need chunking
        token_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        for index, (text, ids) in enumerate(zip(texts, token_ids)):
            pieces = self._chunks(text, ids) if text.strip() else [""]
            for chunk in pieces:
                owners.append(index)
                chunks.append(chunk)
                lengths.append(min(len(ids), self.max_tokens) if len(pieces) == 1 else self.max_tokens)
        # batches of similar length: detoxify pads each batch to its longest text
        order = sorted(range(len(chunks)), key=lengths.__getitem__)
        scores = {a: [0.0] * len(texts) for a in self.identity.attributes}
        for begin in range(0, len(order), self.batch_size):
            batch = order[begin:begin + self.batch_size]
            result = self.model.predict([chunks[i] for i in batch])
            for attribute in self.identity.attributes:
                values = result[attribute]
                for i, value in zip(batch, values if isinstance(values, list) else [values]):
                    scores[attribute][owners[i]] = max(scores[attribute][owners[i]], float(value))
        return scores


class ProfanityCheckScorer:
    """alt-profanity-check's linear model, shipped in its wheel: works offline, measures profanity only."""

    def __init__(self):
        from profanity_check import predict_prob

        self._predict = predict_prob
        self.identity = ScorerIdentity(
            name="alt-profanity-check", fallback=True, attributes=["profanity"],
            version=_package_version("alt-profanity-check"),
            note="fallback scorer: a bag-of-words profanity classifier, not detoxify; it misses toxicity "
                 "without profane words and its numbers are not comparable with detoxify's")

    def score(self, texts: list[str]) -> dict[str, list[float]]:
        if not texts:
            return {"profanity": []}
        return {"profanity": [float(p) for p in self._predict(texts)]}
