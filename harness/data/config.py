"""Configuration of the NIFT pair builder (`nift-gate data build`).

Every field is documented; ``nift-gate data build --help`` and the README are generated from the same
descriptions. Precedence: CLI flags > the ``data:`` section of the YAML config > these defaults. The
resolved config of each variant is written into that variant's record.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from harness.core.config import Section, require_unique
from harness.core.generation import GeneratorConfig
from harness.core.store import folder_name_problem


class CorpusConfig(Section):
    path: str | None = Field(None, description="Local corpus: a .jsonl/.json/.parquet/.txt file or a folder of them, "
                                              "each also compressed as .gz/.bz2/.xz (C4's *.json.gz shards). "
                                              "Default: the embedded corpus shipped with nift-gate.")
    hub_dataset: str | None = Field(None, description="A Hugging Face dataset id, read by streaming (needs network).")
    hub_config: str | None = Field(None, description="Config (subset) name of the hub dataset.")
    split: str = Field("train", description="Split to read.")
    format: Literal["auto", "json", "parquet", "text"] = Field("auto", description="File format; auto = by suffix.")
    text_field: str = Field("text", description="Field holding the document text (JSON/Parquet/hub); a nested "
                                                 "one by its dotted path (meta.body, turns.0).")
    id_field: str | None = Field(None, description="Field holding a document id, dotted for a nested one; "
                                                   "default: the row number.")
    text_mode: Literal["line", "paragraph"] = Field(
        "paragraph", description="Plain-text files: one document per line, or per block between whitespace-only "
                                 "lines; WikiText heading lines (' = Title = ') end a block and are dropped.")
    min_words: int = Field(40, ge=2, description="Documents with fewer words are dropped (counted).")
    max_words: int = Field(4000, ge=2, description="Documents with more words are dropped (counted).")

    @model_validator(mode="after")
    def _one_source(self) -> CorpusConfig:
        if self.path and self.hub_dataset:
            raise ValueError("give corpus.path or corpus.hub_dataset, not both")
        if self.min_words > self.max_words:
            raise ValueError(f"corpus.min_words ({self.min_words}) > corpus.max_words ({self.max_words})")
        return self


class CutConfig(Section):
    ratio: float = Field(0.5, gt=0, lt=1, description="Where to cut, as a share of the document's words "
                                                      "(the paper: the first half is the instruction).")
    jitter: float = Field(0.1, ge=0, lt=0.5, description="Uniform random offset added to the ratio, seeded per document.")
    snap: Literal["sentence", "word"] = Field("sentence", description="Move the cut to the nearest sentence end "
                                                                     "(falls back to a word boundary).")
    min_part_words: int = Field(15, ge=1, description="Each side of the cut keeps at least this many words.")


class JudgeConfig(Section):
    enabled: bool = Field(False, description="Ask a judge model whether a sample of user turns reads as an "
                                             "instruction (the paper did this with GPT-4); reports the share.")
    sample_size: int = Field(50, ge=1, description="User turns to label.")
    teacher: GeneratorConfig = Field(default_factory=lambda: GeneratorConfig(temperature=0.0, max_new_tokens=8),
                                   description="The judge model and backend.")


#: nift-gate's own evaluation and audit suites, checked for contamination by default (name -> prompt field).
EMBEDDED_PROMPT_SETS = {"instruction_following": "prompt", "toxicity_prompts": "prompt", "closed_book_qa": "question"}


class PromptSetRef(Section):
    name: str = Field(description="Name shown in the data card.")
    path: str = Field(description="File of evaluation or audit prompts: JSON Lines or a JSON array (AlpacaEval's "
                                  "alpaca_eval.json). A hit names a prompt by its question_id, id or key, else its "
                                  "position.")
    field: str = Field("prompt", description="Field holding the prompt text (a string or a list of turns); a nested "
                                             "one by its dotted path (ARC: question.stem).")


class FilterConfig(Section):
    exact_dedup: bool = Field(True, description="Drop documents whose normalised text repeats an earlier one.")
    near_dedup: bool = Field(True, description="Drop near-duplicates (MinHash LSH over word 5-grams).")
    near_dup_threshold: float = Field(0.8, gt=0, le=1, description="Estimated Jaccard similarity that counts as a near-duplicate.")
    instruction_rules: bool = Field(True, description="Drop documents that read as instructions, questions or "
                                                      "step lists by rule (NIFT wants non-instructional text).")
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="Optional judge labelling of a sample.")
    contamination: list[PromptSetRef] = Field(
        default_factory=lambda: [PromptSetRef(name=name, path=f"embedded:suites/{name}.jsonl", field=field)
                                 for name, field in EMBEDDED_PROMPT_SETS.items()],
        description="Evaluation/audit prompt sets (JSON Lines or a JSON array; 'embedded:' paths are nift-gate's own "
                    "suites): pairs sharing an n-gram with any of their prompts are dropped and listed.")
    ngram: int = Field(13, ge=4, description="n for the contamination n-gram overlap (13 as in GPT-3's check).")


class VariantConfig(Section):
    name: str = Field(description="Variant name; its folder under data/.")
    distill: bool = Field(True, description="True: the teacher writes the response. False: the response is the "
                                            "real second part of the document (the 'no distillation' ablation).")
    turns: int = Field(1, ge=1, le=8, description="User/assistant turns per pair. The document is cut into "
                                                  "2*turns segments at sentence ends: user turn k is segment 2k, and "
                                                  "assistant turn k is the teacher's reply to the conversation so "
                                                  "far (distill) or the real segment 2k+1 (distill: false). 1 = one "
                                                  "cut, as before.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Nested overrides of cut/teacher/filters/"
                                                                        "corpus for this variant only.")


class DataConfig(Section):
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    cut: CutConfig = Field(default_factory=CutConfig)
    teacher: GeneratorConfig = Field(default_factory=GeneratorConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    variants: list[VariantConfig] = Field(default_factory=lambda: [VariantConfig(name="nift")],
                                          description="Datasets to build from one corpus.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds cut jitter, sampling and judge sampling.")
    shard_size: int = Field(32, ge=1, description="Generations per resumable shard.")
    limit: int | None = Field(None, ge=1, description="Use only the first N documents that pass the filters.")

    @model_validator(mode="after")
    def _unique_variants(self) -> DataConfig:
        names = [v.name for v in self.variants]
        require_unique(names, "variant names")
        for name in names:
            if problem := folder_name_problem(name):
                raise ValueError(f"variant name {name!r} {problem}")
        return self


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ResolvedVariant(Section):
    """One variant with its overrides applied: everything that decides its rows."""

    name: str
    distill: bool
    # Left out of the dumped config when 1, so a one-turn variant keeps the fingerprint (and the finished
    # dataset) it had before turns existed; any other value is part of the data stage's cache key.
    turns: int = Field(1, exclude_if=lambda turns: turns == 1)
    corpus: CorpusConfig
    cut: CutConfig
    teacher: GeneratorConfig
    filters: FilterConfig
    seed: int
    shard_size: int
    limit: int | None


def resolve_variants(config: DataConfig) -> list[ResolvedVariant]:
    base = config.model_dump(exclude={"variants"})
    resolved = []
    for variant in config.variants:
        unknown = set(variant.overrides) - {"corpus", "cut", "teacher", "filters", "seed", "limit"}
        if unknown:
            raise ValueError(f"variant {variant.name!r}: cannot override {sorted(unknown)}")
        merged = deep_merge(base, variant.overrides)
        resolved.append(ResolvedVariant(name=variant.name, distill=variant.distill, turns=variant.turns, **merged))
    return resolved
