"""The NIFT pair builder: corpus -> filtered documents -> cut -> teacher continuation -> pairs.

One record per variant under ``<run>/data/<variant>/``. Teacher generations are written in shards to
``<run>/data/_work/`` as they finish; a killed build reruns into exactly the rows an uninterrupted one
gives, because each shard's contents and seed are a pure function of the config and the corpus.

A variant of ``turns: N`` (N > 1) builds conversations: the document is cut into 2N segments, user turn k
is segment 2k, and the teacher answers turn by turn, every document's turn k in one batched round whose
requests carry the conversation so far (user turns and the teacher's own earlier replies). Each round is
sharded like a one-turn build, so a killed multi-turn build resumes too. Without distillation the
assistant turns are the real odd segments: the same conversation shape, the document in order.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    generator_input,
    make_generator,
    token_budget,
)
from harness.core.log import get_logger
from harness.core.records import InputRef, config_hash
from harness.core.runner import StageRun
from harness.core.store import RunStore, atomic_write_json
from harness.data.card import render_card
from harness.data.config import DataConfig, ResolvedVariant, resolve_variants
from harness.data.corpus import (
    SUFFIX_FORMATS,
    Document,
    load_corpus,
    open_corpus,
    unread_files,
)
from harness.data.cut import Segments, segment_document
from harness.data.filters import (
    ContaminationIndex,
    FilterOutcome,
    filter_documents,
    instruction_like_turns,
)
from harness.data.record import STAGE, JudgeSummary, NiftDatasetRecord, NiftPair

log = get_logger("data")

# --- helpers ---------------------------------------------------------------------------------------------


def _generation_settings(config: GeneratorConfig) -> dict[str, Any]:
    keys = ("backend", "model", "base_url", "system_prompt", "max_new_tokens", "length_factor", "temperature",
            "top_p", "repetition_penalty", "batch_size")
    return {k: getattr(config, k) for k in keys}


def _shard_seed(seed: int, shard: int, turn: int = 0) -> int:
    """The sampling seed of one shard; later turns of a multi-turn build get seeds of their own."""
    return random.Random(f"shard:{seed}:{shard}" + (f":turn{turn + 1}" if turn else "")).randrange(2**31)


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
                      work_dir: Path, turn: int = 0) -> tuple[list[Generation], dict[str, Any]]:
    """Generate in shards, skipping shards already on disk. Returns generations in request order.

    ``turn`` (0-based) is the round of a multi-turn build; round 0 names and seeds its shards as one-turn
    builds always have, so their shards keep their names."""
    settings = _generation_settings(variant.teacher)
    size = variant.shard_size
    shards = [requests[i:i + size] for i in range(0, len(requests), size)]
    paths = []
    for index, shard in enumerate(shards):
        content = config_hash({"settings": settings, "identity": teacher.identity.get("sha256"), "seed": variant.seed,
                               "index": index, "requests": [r.model_dump() for r in shard],
                               **({"turn": turn} if turn else {})})
        paths.append(work_dir / (f"shard-{index:05d}-turn{turn + 1}-{content[:16]}.json" if turn
                                 else f"shard-{index:05d}-{content[:16]}.json"))
    done = {i for i, p in enumerate(paths) if p.exists()}
    stats = {"shards": len(shards), "resumed_shards": len(done), "seconds": 0.0}
    which = f" turn {turn + 1}/{variant.turns}" if variant.turns > 1 else ""
    bar = tqdm(total=len(requests), initial=sum(len(shards[i]) for i in done), unit="rows", dynamic_ncols=True,
               desc=f"teacher [{variant.name}]{which}")
    results: list[Generation] = []
    try:
        for index, (shard, path) in enumerate(zip(shards, paths)):
            if index in done:
                payload = _read_shard(path)
            else:
                start = time.perf_counter()
                generations = teacher.generate(shard, seed=_shard_seed(variant.seed, index, turn),
                                               on_progress=bar.update)
                seconds = time.perf_counter() - start
                failures = [g for g in generations if g.error]
                if failures and variant.teacher.on_failure == "stop":
                    kept = f"{index} finished shards" + (f" of turn {turn + 1} (and every earlier turn's)" if turn else "")
                    raise TeacherError(
                        f"teacher failed on {len(failures)} of {len(shard)} rows in shard {index}{which} (first: "
                        f"{failures[0].key}: {failures[0].error}). {kept} are kept in "
                        f"{work_dir}; rerun to resume, or set teacher.on_failure=record to keep going.")
                payload = {"seconds": seconds, "generations": [g.model_dump() for g in generations]}
                if len(failures) < len(generations):  # a shard that failed whole (teacher unreachable) is asked again
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
           seed: int, home: Path) -> tuple[JudgeSummary, list[dict[str, Any]]]:
    """Label a seeded sample of user turns (of every turn: ``<pair id>#turn<k>`` in a multi-turn dataset) as
    instruction-like or prose with a judge model."""
    turns = [(p.id if p.turns == 1 else f"{p.id}#turn{k}", text)
             for p in pairs for k, text in enumerate(p.user_turns, 1)]
    sample = random.Random(f"judge:{seed}").sample(turns, min(sample_size, len(turns)))
    from harness.core.generation_cache import CachedGenerator, GenerationCache

    # behind the runs home's generation cache: a text labelled once is not labelled again
    judge = CachedGenerator(teachers.get(config), GenerationCache.at_home(home) if config.cache else None)
    template = ("Here is a text. Does it read as an instruction or a question addressed to an assistant, or as "
                "ordinary prose? Reply with one word, INSTRUCTION or PROSE.\n\nText:\n{text}")
    requests = [GenerationRequest(key=key, prompt=template.format(text=text), max_new_tokens=config.max_new_tokens)
                for key, text in sample]
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


def _open_inputs(variant: ResolvedVariant, run: StageRun) -> ContaminationIndex:
    """The variant's inputs besides the corpus: the contamination prompt sets, the teacher and the judge."""
    contamination = ContaminationIndex.build(variant.filters.contamination, variant.filters.ngram, run)
    if variant.distill:
        run.add(generator_input(variant.teacher))
    if variant.filters.judge.enabled:  # its labels decide which documents are dropped
        run.add(generator_input(variant.filters.judge.teacher, kind="judge_model"))
    return contamination


@dataclass
class _Segmented:
    """The kept documents cut into segments, and those set aside at the cut (doc_id -> why)."""

    segments: dict[str, Segments] = field(default_factory=dict)
    too_short: dict[str, str] = field(default_factory=dict)
    # multi-turn: doc_id -> {turn number: rules} for later user turns that open like an instruction
    instruction_like: dict[str, dict[int, list[str]]] = field(default_factory=dict)

    def dropped(self, turns: int) -> dict[str, dict[str, str]]:
        """What was set aside, per reason, as ``dropped.jsonl`` lists it."""
        out = {"cut_too_short": self.too_short}
        if turns > 1:
            out["instruction_like_turn"] = {doc_id: "; ".join(f"turn {t}: {','.join(rules)}" for t, rules in by_turn.items())
                                            for doc_id, by_turn in self.instruction_like.items()}
        return out


def _cut_documents(kept: list[Document], variant: ResolvedVariant) -> _Segmented:
    """Each kept document cut into 2 * turns segments. A multi-turn document whose later user turn opens
    like an instruction is set aside too: the document filter only saw the opening of the first."""
    out = _Segmented()
    parts, least = 2 * variant.turns, variant.cut.min_part_words
    for doc in kept:
        if (segments := segment_document(doc.doc_id, doc.text, variant.cut, variant.seed, variant.turns)) is None:
            out.too_short[doc.doc_id] = (f"{len(doc.text.split())} words; {parts} segments of at least {least} "
                                         f"words need {parts * least}")
        elif variant.turns > 1 and variant.filters.instruction_rules and \
                (rules := instruction_like_turns(segments.user_turns)):
            out.instruction_like[doc.doc_id] = rules
        else:
            out.segments[doc.doc_id] = segments
    return out


@dataclass
class _Responses:
    """The teacher's replies to the conversations, per document and turn (none when distill is off)."""

    teacher: Generator | None = None
    generations: dict[str, list[Generation]] = field(default_factory=dict)
    budgets: dict[str, list[int]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=lambda: {"shards": 0, "resumed_shards": 0, "seconds": 0.0})


def _respond(variant: ResolvedVariant, segmented: dict[str, Segments], teachers: _Teachers,
             store: RunStore) -> _Responses:
    """The teacher's reply to every user turn, one batched round per turn. A round's request for a document
    carries the conversation so far; a document whose reply failed or came back empty gets no later turn."""
    if not (variant.distill and segmented):
        return _Responses()
    teacher = teachers.get(variant.teacher)
    # Shards are named by their content, so variants with the same teacher settings share them.
    work_dir = store.root / STAGE / "_work" / config_hash(_generation_settings(variant.teacher))[:12]
    out = _Responses(teacher=teacher)
    history: dict[str, list[dict[str, str]]] = {doc_id: [] for doc_id in segmented}
    going = list(segmented)
    for turn in range(variant.turns):
        requests = [GenerationRequest(key=doc_id, prompt=segmented[doc_id].user_turns[turn], history=history[doc_id],
                                      max_new_tokens=token_budget(teacher, segmented[doc_id].references[turn]))
                    for doc_id in going]
        if not requests:
            break
        results, stats = _generate_sharded(teacher, requests, variant, work_dir, turn)
        for key in out.stats:
            out.stats[key] += stats[key]
        going = []
        for request, generation in zip(requests, results):
            out.generations.setdefault(request.key, []).append(generation)
            out.budgets.setdefault(request.key, []).append(request.max_new_tokens)
            if not generation.error and generation.text.strip():
                history[request.key] = [*request.history, {"role": "user", "content": request.prompt},
                                        {"role": "assistant", "content": generation.text}]
                going.append(request.key)
    return out


@dataclass
class _Pairs:
    kept: list[NiftPair] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    contaminated: list[dict[str, Any]] = field(default_factory=list)
    empty: int = 0


def _generation_fields(variant: ResolvedVariant, generations: list[Generation], budgets: list[int]) -> dict[str, Any]:
    """A pair's ``generation``: settings, seed and token counts summed over its turns (and, for a multi-turn
    pair, each turn's own)."""
    fields = {**_generation_settings(variant.teacher), "seed": variant.seed, "row_token_budget": sum(budgets),
              "prompt_tokens": sum(g.prompt_tokens for g in generations),
              "completion_tokens": sum(g.completion_tokens for g in generations),
              "finish_reason": generations[-1].finish_reason}
    if variant.turns > 1:
        fields["turns"] = [{"row_token_budget": budget, "prompt_tokens": g.prompt_tokens,
                            "completion_tokens": g.completion_tokens, "finish_reason": g.finish_reason}
                           for g, budget in zip(generations, budgets)]
    return fields


def _make_pairs(variant: ResolvedVariant, segmented: dict[str, Segments], responses: _Responses, corpus_id: str,
                contamination: ContaminationIndex) -> _Pairs:
    """One pair per cut document; teacher failures, empty responses and contaminated pairs set aside."""
    out = _Pairs()
    teacher = responses.teacher
    for doc_id, segments in segmented.items():
        generations = responses.generations.get(doc_id)
        if generations is not None and (failed := next((t for t, g in enumerate(generations, 1) if g.error), None)):
            out.failed.append({"doc_id": doc_id, "error": generations[failed - 1].error,
                               **({"turn": failed} if variant.turns > 1 else {})})
            continue
        replies = [g.text for g in generations] if generations is not None else segments.references
        if len(replies) < variant.turns or not all(reply.strip() for reply in replies):
            out.empty += 1
            continue
        messages = [message for user, reply in zip(segments.user_turns, replies)
                    for message in ({"role": "user", "content": user}, {"role": "assistant", "content": reply})]
        source = {"doc_id": doc_id, "corpus": corpus_id, **segments.cuts[0].source()}
        if variant.turns > 1:
            source.update(turns=variant.turns, cuts=[cut.source() for cut in segments.cuts])
        pair = NiftPair(
            id=f"{variant.name}:{doc_id}", variant=variant.name, messages=messages,
            reference=segments.references[0], references=segments.references if variant.turns > 1 else None,
            source=source, teacher=teacher.identity if teacher else None,
            generation=None if generations is None else _generation_fields(variant, generations,
                                                                           responses.budgets[doc_id]))
        # Every turn, user and assistant, is checked (and an n-gram across two turns counts too).
        if hits := contamination.hits("\n".join(m["content"] for m in messages)):
            out.contaminated.extend({"pair_id": pair.id, "prompt_set": h.prompt_set, "prompt_id": h.prompt_id,
                                     "ngram": h.ngram} for h in hits)
            continue
        out.kept.append(pair)
    return out


def _generation_summary(variant: ResolvedVariant, responses: _Responses) -> dict[str, Any]:
    """Tokens, time, throughput and estimated cost of the teacher's work (every request of every turn)."""
    generations = [g for turns in responses.generations.values() for g in turns]
    stats, tc = responses.stats, variant.teacher
    prompt_tokens = sum(g.prompt_tokens for g in generations)
    completion_tokens = sum(g.completion_tokens for g in generations)
    return {
        **stats, "seconds": round(stats["seconds"], 2), "requests": len(generations),
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "completion_tokens_per_s": round(completion_tokens / stats["seconds"], 2) if stats["seconds"] else None,
        "estimated_cost_usd": round(prompt_tokens / 1000 * tc.price_per_1k_prompt_tokens
                                    + completion_tokens / 1000 * tc.price_per_1k_completion_tokens, 4),
        "price_per_1k_prompt_tokens": tc.price_per_1k_prompt_tokens,
        "price_per_1k_completion_tokens": tc.price_per_1k_completion_tokens}


def _counts(documents: list[Document], outcome: FilterOutcome, used: int, segmented: _Segmented,
            pairs: _Pairs, turns: int) -> dict[str, int]:
    """Documents or pairs at each step, and dropped by each filter (the data card's funnel)."""
    later_turns = {"dropped_instruction_like_turn": len(segmented.instruction_like)} if turns > 1 else {}
    return {"documents_read": len(documents),
            **{f"dropped_{name}": len(ids) for name, ids in outcome.dropped.items()},
            "documents_kept": len(outcome.kept), "documents_used": used,
            "dropped_cut_too_short": len(segmented.too_short), **later_turns,
            "teacher_failed": len(pairs.failed), "dropped_empty_response": pairs.empty,
            "dropped_contaminated": len({c["pair_id"] for c in pairs.contaminated}), "pairs": len(pairs.kept)}


def _refuse_no_pairs(variant: ResolvedVariant, counts: dict[str, int], segmented: dict[str, Segments],
                     pairs: _Pairs) -> None:
    """A variant that ends with no pair is an error, not an empty dataset that training trips over later."""
    if pairs.kept:
        return
    if pairs.failed and len(pairs.failed) == len(segmented):
        first = pairs.failed[0]
        raise TeacherError(f"data [{variant.name}]: the teacher failed on all {len(segmented)} rows (first: "
                           f"{first['doc_id']}: {first['error']}); no dataset written. Check data.teacher (model, "
                           "backend, base_url) and rerun")
    lost = ", ".join(f"{step} {n}" for step, n in counts.items() if n and step.startswith(("dropped_", "teacher_")))
    shorter = f", or lower turns ({variant.turns})" if variant.turns > 1 and counts["dropped_cut_too_short"] else ""
    raise InputError(f"data [{variant.name}]: 0 pairs from {counts['documents_read']} documents ({lost or 'none used'}"
                     f"); no dataset written. Widen corpus.min_words/max_words, relax data.filters or data.cut{shorter}, "
                     "or use another corpus")


def _length_table(pairs: list[NiftPair], turns: int) -> dict[str, dict[str, float]]:
    """Word counts of every user turn, assistant turn and real response; per turn too when there are several."""
    def words(role: str, turn: int | None = None) -> list[int]:
        return [len(m["content"].split()) for p in pairs
                for k, m in enumerate(p.messages) if m["role"] == role and (turn is None or k // 2 == turn)]

    lengths = {"user_words": _length_stats(words("user")), "assistant_words": _length_stats(words("assistant")),
               "reference_words": _length_stats([len(r.split()) for p in pairs for r in p.references or [p.reference]])}
    if turns > 1:
        for turn in range(turns):
            lengths[f"turn_{turn + 1}_user_words"] = _length_stats(words("user", turn))
            lengths[f"turn_{turn + 1}_assistant_words"] = _length_stats(words("assistant", turn))
    return lengths


def _artifacts(record: NiftDatasetRecord, dropped: dict[str, dict[str, str]], pairs: _Pairs,
               judge_labels: list[dict[str, Any]]) -> dict[str, Any]:
    """The files of the variant's folder, by name, in the order they are written."""
    rows = [p.model_dump() for p in pairs.kept]

    def save_dataset(path: Path) -> None:
        dataset = datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict(
            {k: [] for k in NiftPair.model_fields})
        dataset.save_to_disk(str(path))

    files: dict[str, Any] = {
        "pairs.jsonl": rows, "dataset": save_dataset,
        "dropped.jsonl": [{"doc_id": d, "filter": f, "detail": why} for f, ids in dropped.items() for d, why in ids.items()]}
    if pairs.failed:
        files["failed.jsonl"] = pairs.failed
    if pairs.contaminated:
        files["contamination.jsonl"] = pairs.contaminated
    if judge_labels:
        files["judge.jsonl"] = judge_labels
    files["card.md"] = render_card(record, pairs.kept[:3])
    return files


def _corpus_input(run: StageRun) -> InputRef:
    return next(ref for ref in run.inputs if ref.kind == "corpus")


def build_variant(variant: ResolvedVariant, run: StageRun[NiftDatasetRecord],
                  read_corpus: Callable[[], list[Document]], teachers: _Teachers,
                  unread: Sequence[str] = ()) -> NiftDatasetRecord:
    """One variant into ``<run>/data/<variant>/``; ``run`` already holds the corpus input, which
    ``read_corpus`` reads (only when the variant is not up to date); ``unread`` lists the corpus folder's
    files of no corpus type. A variant that ends with no pair raises and writes nothing."""
    corpus_id = _corpus_input(run).id
    contamination = _open_inputs(variant, run)
    if (done := run.cached(variant)) is not None:
        return done

    documents = read_corpus()  # validated before anything is written
    # 1. documents: length bounds, duplicates, instruction-likeness (before the teacher: it costs)
    outcome = filter_documents(documents, variant.filters, variant.corpus.min_words, variant.corpus.max_words)
    kept = outcome.kept[: variant.limit] if variant.limit else outcome.kept
    # 2. cut (and, for several turns, the later user turns' openings), 3. responses, 4. pairs, contamination
    segmented = _cut_documents(kept, variant)
    responses = _respond(variant, segmented.segments, teachers, run.store)
    pairs = _make_pairs(variant, segmented.segments, responses, corpus_id, contamination)
    counts = _counts(documents, outcome, len(kept), segmented, pairs, variant.turns)
    _refuse_no_pairs(variant, counts, segmented.segments, pairs)
    judge_summary, judge_labels = (None, [])
    if variant.filters.judge.enabled and pairs.kept:
        judge_summary, judge_labels = _judge(variant.filters.judge.teacher, teachers, pairs.kept,
                                             variant.filters.judge.sample_size, variant.seed, run.store.home)
    # 5. the record
    rule_counts: dict[str, int] = {}
    later = [sorted({rule for rules in by_turn.values() for rule in rules})
             for by_turn in segmented.instruction_like.values()]
    for rules in [*(r.split(",") for r in outcome.dropped["instruction_like"].values()), *later]:
        for rule in rules:
            rule_counts[rule] = rule_counts.get(rule, 0) + 1
    per_set = {name: {"prompts": n, "too_short": contamination.too_short[name],
                      "hits": sum(1 for c in pairs.contaminated if c["prompt_set"] == name)}
               for name, n in contamination.prompts.items()}
    files = {"pairs": "pairs.jsonl", "dataset": "dataset", "card": "card.md", "dropped": "dropped.jsonl"}
    files.update({role: f"{role}.jsonl" for role, rows in (("failed", pairs.failed),
                                                           ("contamination", pairs.contaminated),
                                                           ("judge", judge_labels)) if rows})
    teacher = responses.teacher
    record = NiftDatasetRecord(
        **run.header(), variant=variant.name, distill=variant.distill, turns=variant.turns, rows=len(pairs.kept),
        failed_rows=len(pairs.failed), counts=counts, unread_files=list(unread),
        instruction_rules=rule_counts, judge=judge_summary, contamination=per_set,
        teacher=teacher.identity if teacher else None, generation=_generation_summary(variant, responses),
        lengths=_length_table(pairs.kept, variant.turns), files=files)
    dropped = {**outcome.dropped, **segmented.dropped(variant.turns)}
    # 6. everything into a temp folder, then swapped in: a crash here leaves the old folder or none
    run.commit(record, _artifacts(record, dropped, pairs, judge_labels))
    log.info(f"[{variant.name}] {record.rows} pairs" + (f" of {variant.turns} turns" if variant.turns > 1 else "")
             + f" ({run.folder})")
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
    corpora: dict[str, list[Document]] = {}
    warned: set[Path] = set()
    records = []
    for variant in resolved:
        # An existing dataset is expensive and trained on: made from other inputs, it is kept unless --force.
        run = StageRun(store, STAGE, variant.name, NiftDatasetRecord, force=force, on_change="refuse")
        root = open_corpus(variant.corpus, run)
        key = config_hash({"corpus": variant.corpus.model_dump(), "content": _corpus_input(run).sha256})
        unread = unread_files(root)
        if unread and root not in warned:
            warned.add(root)
            shown = ", ".join(unread[:5]) + (f" and {len(unread) - 5} more" if len(unread) > 5 else "")
            log.warning(f"{root}: {len(unread)} files of no corpus type ({', '.join(SUFFIX_FORMATS)}) are not read: "
                        f"{shown}")

        def read_corpus(key=key, corpus=variant.corpus, root=root, run=run) -> list[Document]:
            if key not in corpora:  # variants reading the same corpus read it once, from the bytes hashed
                corpora[key] = load_corpus(corpus, root, run.read)
            return corpora[key]

        records.append(build_variant(variant, run, read_corpus, teachers, unread))
    return records
