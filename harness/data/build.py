"""The NIFT pair builder: corpus -> filtered documents -> cut -> teacher continuation -> pairs.

One record per variant under ``<run>/data/<variant>/``. Teacher generations are written in shards to
``<run>/data/_work/`` as they finish; a killed build reruns into exactly the rows an uninterrupted one
gives, because each shard's contents and seed are a pure function of the config and the corpus.
"""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import datasets
import pandas as pd
from tqdm.auto import tqdm

from harness.core.errors import InputError, TeacherError
from harness.core.generation import (
    Generation,
    GenerationRequest,
    Generator,
    GeneratorConfig,
    make_generator,
    token_budget,
)
from harness.core.records import (
    InputRef,
    config_hash,
    new_record_id,
    stage_fingerprint,
)
from harness.core.store import (
    RECORD_FILE,
    RunStore,
    atomic_dir,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    completed_record,
)
from harness.data.card import render_card
from harness.data.config import DataConfig, ResolvedVariant, resolve_variants
from harness.data.corpus import Document, corpus_ref, load_corpus
from harness.data.cut import Cut, cut_document
from harness.data.filters import ContaminationIndex, filter_documents
from harness.data.record import STAGE, JudgeSummary, NiftDatasetRecord, NiftPair

# --- helpers ---------------------------------------------------------------------------------------------


def teacher_ref(config: GeneratorConfig) -> InputRef:
    if config.backend == "openai":
        return InputRef(kind="model", id=f"{config.base_url}#{config.model}", sha256="endpoint")
    from harness.core.models import resolve_model

    return InputRef(kind="model", id=config.model,
                    sha256=resolve_model(config.model, allow_pickle=config.allow_pickle).sha256)


def _generation_settings(config: GeneratorConfig) -> dict[str, Any]:
    keys = ("backend", "model", "base_url", "system_prompt", "max_new_tokens", "length_factor", "temperature",
            "top_p", "repetition_penalty", "batch_size")
    return {k: getattr(config, k) for k in keys}


def _shard_seed(seed: int, shard: int) -> int:
    return random.Random(f"shard:{seed}:{shard}").randrange(2**31)


class _Teachers:
    """Loads each distinct teacher once per build, shared by the variants that use it."""

    def __init__(self):
        self._loaded: dict[str, Generator] = {}

    def get(self, config: GeneratorConfig) -> Generator:
        key = config_hash(config.model_dump())
        if key not in self._loaded:
            self._loaded[key] = make_generator(config)
        return self._loaded[key]


def _generate_sharded(teacher: Generator, requests: list[GenerationRequest], variant: ResolvedVariant,
                      work_dir: Path) -> tuple[list[Generation], dict[str, Any]]:
    """Generate in shards, skipping shards already on disk. Returns generations in request order."""
    settings = _generation_settings(variant.teacher)
    size = variant.shard_size
    shards = [requests[i:i + size] for i in range(0, len(requests), size)]
    paths = []
    for index, shard in enumerate(shards):
        content = config_hash({"settings": settings, "identity": teacher.identity.get("sha256"), "seed": variant.seed,
                               "index": index, "requests": [r.model_dump() for r in shard]})
        paths.append(work_dir / f"shard-{index:05d}-{content[:16]}.json")
    done = {i for i, p in enumerate(paths) if p.exists()}
    stats = {"shards": len(shards), "resumed_shards": len(done), "seconds": 0.0}
    bar = tqdm(total=len(requests), initial=sum(len(shards[i]) for i in done), unit="rows", dynamic_ncols=True,
               desc=f"teacher [{variant.name}]")
    results: list[Generation] = []
    try:
        for index, (shard, path) in enumerate(zip(shards, paths)):
            if index in done:
                payload = _read_shard(path)
            else:
                start = time.perf_counter()
                generations = teacher.generate(shard, seed=_shard_seed(variant.seed, index), on_progress=bar.update)
                seconds = time.perf_counter() - start
                failures = [g for g in generations if g.error]
                if failures and variant.teacher.on_failure == "stop":
                    raise TeacherError(
                        f"teacher failed on {len(failures)} of {len(shard)} rows in shard {index} (first: "
                        f"{failures[0].key}: {failures[0].error}). {index} finished shards are kept in "
                        f"{work_dir}; rerun to resume, or set teacher.on_failure=record to keep going.")
                payload = {"seconds": seconds, "generations": [g.model_dump() for g in generations]}
                atomic_write_json(path, payload)
            stats["seconds"] += payload["seconds"]
            results.extend(Generation(**g) for g in payload["generations"])
    finally:
        bar.close()
    return results, stats


def _read_shard(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def _judge(config: GeneratorConfig, teachers: _Teachers, pairs: list[NiftPair], sample_size: int,
           seed: int) -> tuple[JudgeSummary, list[dict[str, Any]]]:
    """Label a seeded sample of user turns as instruction-like or prose with a judge model."""
    sample = random.Random(f"judge:{seed}").sample(pairs, min(sample_size, len(pairs)))
    judge = teachers.get(config)
    template = ("Here is a text. Does it read as an instruction or a question addressed to an assistant, or as "
                "ordinary prose? Reply with one word, INSTRUCTION or PROSE.\n\nText:\n{text}")
    requests = [GenerationRequest(key=p.id, prompt=template.format(text=p.messages[0]["content"]),
                                  max_new_tokens=config.max_new_tokens) for p in sample]
    labels = []
    for generation in judge.generate(requests, seed=seed):
        # Exactly one of the two words must appear; anything else is unparseable, never a default label.
        words = set(re.findall(r"[A-Z]+", generation.text.upper()))
        said = {"instruction" for w in words if w in ("INSTRUCTION", "INSTRUCTIONS")} | \
               {"prose" for w in words if w == "PROSE"}
        label = said.pop() if len(said) == 1 else "unparseable"
        labels.append({"id": generation.key, "label": label, "reply": generation.text, "error": generation.error})
    counts = {k: sum(1 for lab in labels if lab["label"] == k) for k in ("instruction", "prose", "unparseable")}
    parsed = counts["instruction"] + counts["prose"]
    summary = JudgeSummary(model=config.model, labelled=len(labels), instruction_like=counts["instruction"],
                           prose=counts["prose"], unparseable=counts["unparseable"],
                           share_instruction_like=round(counts["instruction"] / parsed, 4) if parsed else None)
    return summary, labels


def _length_stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    stats = pd.Series(values).describe(percentiles=[0.1, 0.5, 0.9])
    return {str(k): round(float(v), 2) for k, v in stats.items()}


# --- the stage -------------------------------------------------------------------------------------------


def build_variant(variant: ResolvedVariant, store: RunStore, documents: list[Document], corpus: InputRef,
                  teachers: _Teachers, force: bool = False) -> NiftDatasetRecord:
    out_dir = store.stage_dir(STAGE, variant.name)
    contamination = ContaminationIndex.build(variant.filters.contamination, variant.filters.ngram)
    inputs = [corpus, *contamination.refs]
    if variant.distill:
        inputs.append(teacher_ref(variant.teacher))
    config = variant.model_dump()
    fingerprint = stage_fingerprint(inputs, config)
    if not force:
        if done := completed_record(out_dir, NiftDatasetRecord, fingerprint):
            print(f"data [{variant.name}]: up to date ({done.rows} pairs, {out_dir}); --force rebuilds it")
            return done
        if (out_dir / RECORD_FILE).exists():
            raise InputError(f"{out_dir} holds a dataset built from other inputs or config; pass --force to "
                             "replace it, or choose another --run")

    # 1. documents: length bounds, duplicates, instruction-likeness (before the teacher: it costs)
    outcome = filter_documents(documents, variant.filters, variant.corpus.min_words, variant.corpus.max_words)
    kept = outcome.kept[: variant.limit] if variant.limit else outcome.kept
    # 2. cut
    cuts: dict[str, Cut] = {}
    cut_too_short = 0
    for doc in kept:
        if (cut := cut_document(doc.doc_id, doc.text, variant.cut, variant.seed)) is None:
            cut_too_short += 1
        else:
            cuts[doc.doc_id] = cut
    # 3. responses
    teacher: Generator | None = None
    generations: dict[str, Generation] = {}
    budgets: dict[str, int] = {}
    gen_stats: dict[str, Any] = {"shards": 0, "resumed_shards": 0, "seconds": 0.0}
    if variant.distill and cuts:
        teacher = teachers.get(variant.teacher)
        requests = [GenerationRequest(key=doc_id, prompt=cut.prompt, max_new_tokens=token_budget(teacher, cut.reference))
                    for doc_id, cut in cuts.items()]
        work_dir = store.root / STAGE / "_work" / config_hash(_generation_settings(variant.teacher))[:12]
        results, gen_stats = _generate_sharded(teacher, requests, variant, work_dir)
        generations = {g.key: g for g in results}
        budgets = {r.key: r.max_new_tokens for r in requests}
    # 4. pairs, then contamination
    pairs, failed, contaminated, empty = [], [], [], 0
    for doc_id, cut in cuts.items():
        generation = generations.get(doc_id)
        if generation is not None and generation.error:
            failed.append({"doc_id": doc_id, "error": generation.error})
            continue
        response = generation.text if generation is not None else cut.reference
        if not response.strip():
            empty += 1
            continue
        pair = NiftPair(
            id=f"{variant.name}:{doc_id}", variant=variant.name,
            messages=[{"role": "user", "content": cut.prompt}, {"role": "assistant", "content": response}],
            reference=cut.reference,
            source={"doc_id": doc_id, "corpus": corpus.id, "cut_char": cut.cut_char, "target_ratio": cut.target_ratio,
                    "actual_ratio": cut.actual_ratio, "snapped_to": cut.snapped_to},
            teacher=teacher.identity if teacher else None,
            generation=None if generation is None else {
                **_generation_settings(variant.teacher), "seed": variant.seed, "row_token_budget": budgets[doc_id],
                "prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens,
                "finish_reason": generation.finish_reason})
        if hits := contamination.hits(cut.prompt + "\n" + response):
            contaminated.extend({"pair_id": pair.id, "prompt_set": h.prompt_set, "prompt_id": h.prompt_id,
                                 "ngram": h.ngram} for h in hits)
            continue
        pairs.append(pair)
    judge_summary, judge_labels = (None, [])
    if variant.filters.judge.enabled and pairs:
        judge_summary, judge_labels = _judge(variant.filters.judge.teacher, teachers, pairs,
                                             variant.filters.judge.sample_size, variant.seed)
    # 5. the record
    prompt_tokens = sum(g.prompt_tokens for g in generations.values())
    completion_tokens = sum(g.completion_tokens for g in generations.values())
    tc = variant.teacher
    generation_summary = {
        **gen_stats, "seconds": round(gen_stats["seconds"], 2), "requests": len(generations),
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "completion_tokens_per_s": round(completion_tokens / gen_stats["seconds"], 2) if gen_stats["seconds"] else None,
        "estimated_cost_usd": round(prompt_tokens / 1000 * tc.price_per_1k_prompt_tokens
                                    + completion_tokens / 1000 * tc.price_per_1k_completion_tokens, 4),
        "price_per_1k_prompt_tokens": tc.price_per_1k_prompt_tokens,
        "price_per_1k_completion_tokens": tc.price_per_1k_completion_tokens}
    contaminated_pairs = {c["pair_id"] for c in contaminated}
    counts = {"documents_read": len(documents),
              **{f"dropped_{name}": len(ids) for name, ids in outcome.dropped.items()},
              "documents_kept": len(outcome.kept), "documents_used": len(kept), "dropped_cut_too_short": cut_too_short,
              "teacher_failed": len(failed), "dropped_empty_response": empty,
              "dropped_contaminated": len(contaminated_pairs), "pairs": len(pairs)}
    rule_counts: dict[str, int] = {}
    for rules in outcome.dropped["instruction_like"].values():
        for rule in rules.split(","):
            rule_counts[rule] = rule_counts.get(rule, 0) + 1
    per_set = {name: {"prompts": n, "too_short": contamination.too_short[name],
                      "hits": sum(1 for c in contaminated if c["prompt_set"] == name)}
               for name, n in contamination.prompts.items()}
    files = {"pairs": "pairs.jsonl", "dataset": "dataset", "card": "card.md", "dropped": "dropped.jsonl"}
    if failed:
        files["failed"] = "failed.jsonl"
    if contaminated:
        files["contamination"] = "contamination.jsonl"
    if judge_labels:
        files["judge"] = "judge.jsonl"
    record = NiftDatasetRecord(
        record_id=new_record_id("nift_dataset"), run_id=store.run_id, inputs=inputs, config=config,
        fingerprint=fingerprint, variant=variant.name, distill=variant.distill, rows=len(pairs),
        failed_rows=len(failed), counts=counts, instruction_rules=rule_counts, judge=judge_summary,
        contamination=per_set, teacher=teacher.identity if teacher else None, generation=generation_summary,
        lengths={"user_words": _length_stats([len(p.messages[0]["content"].split()) for p in pairs]),
                 "assistant_words": _length_stats([len(p.messages[1]["content"].split()) for p in pairs]),
                 "reference_words": _length_stats([len(p.reference.split()) for p in pairs])},
        files=files)
    # 6. write everything into a temp folder, then swap it in: a crash here leaves the old folder or none
    rows = [p.model_dump() for p in pairs]
    with atomic_dir(out_dir) as tmp:
        atomic_write_jsonl(tmp / "pairs.jsonl", rows)
        dataset = datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict(
            {k: [] for k in NiftPair.model_fields})
        dataset.save_to_disk(str(tmp / "dataset"))
        atomic_write_jsonl(tmp / "dropped.jsonl", [{"doc_id": d, "filter": f, "detail": why}
                                                   for f, ids in outcome.dropped.items() for d, why in ids.items()])
        if failed:
            atomic_write_jsonl(tmp / "failed.jsonl", failed)
        if contaminated:
            atomic_write_jsonl(tmp / "contamination.jsonl", contaminated)
        if judge_labels:
            atomic_write_jsonl(tmp / "judge.jsonl", judge_labels)
        atomic_write_text(tmp / "card.md", render_card(record, pairs[:3]))
        atomic_write_text(tmp / RECORD_FILE, record.model_dump_json(indent=2) + "\n")
    return record


def build_pairs(config: DataConfig, store: RunStore, force: bool = False,
                variants: list[str] | None = None) -> list[NiftDatasetRecord]:
    """Build every configured variant (or the named ones). Entry point of `nift-gate data build`."""
    resolved = resolve_variants(config)
    if variants:
        unknown = sorted(set(variants) - {v.name for v in resolved})
        if unknown:
            raise InputError(f"unknown variant(s) {unknown}; configured: {[v.name for v in resolved]}")
        resolved = [v for v in resolved if v.name in variants]
    teachers = _Teachers()
    corpora: dict[str, tuple[list[Document], InputRef]] = {}
    records = []
    for variant in resolved:
        key = config_hash(variant.corpus.model_dump())
        if key not in corpora:  # read and validate before anything is written
            corpora[key] = (load_corpus(variant.corpus), corpus_ref(variant.corpus))
        documents, ref = corpora[key]
        records.append(build_variant(variant, store, documents, ref, teachers, force=force))
    return records
