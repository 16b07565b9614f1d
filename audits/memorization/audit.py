"""`nift-gate audit` (memorization): does the candidate reproduce the responses it was trained on?

The data leakage the NIFT write-up warns of: a model fine-tuned on (document start -> continuation) pairs may
learn to recite its training continuations. The probe prompts every model with the user turns of a seeded sample
of the pairs the checkpoint trained on and of the pairs held out of its training (``train[].eval_share``; the
checkpoint's ``split.json`` says which are which), takes the greedy continuation, and measures how much of the
pair's training response it reproduces (:mod:`audits.memorization.overlap`). Per model and prompt set: the mean
LCS ratio, the mean 13-gram overlap and the share flagged memorized; per model the train-minus-held-out gap (a
model that memorized reproduces its training responses more than responses it never saw); and the candidate
against each baseline, paired by prompt. Baselines never saw the candidate's pairs, so their gap measures only
what the prompts themselves give away.

Output under ``<run>/audit/memorization/``: record.json (MemorizationAuditRecord) and samples.jsonl (one
``harness.core.samples.AuditSample`` per continuation: suite ``train`` or ``held_out``, the training response as
``reference``, the overlap scores, and the ``memorized`` flag for the review queue).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationError

from audits.config import AuditConfig, MemorizationAuditConfig
from audits.memorization.metrics import (
    GAP_MEASURES,
    MEASURES,
    MEMORIZATION_METRICS,
    SUITES,
)
from audits.memorization.overlap import overlap
from audits.registry import AuditedModel, AuditRecord, register_audit
from audits.toxicity.metrics import Estimate
from harness.core.config import ModelRef
from harness.core.errors import ConfigError, InputError
from harness.core.log import get_logger
from harness.core.metrics import (
    MetricDelta,
    MetricSpec,
    MetricValue,
    delta_from_comparison,
)
from harness.core.models import CHECKPOINT_PREFIX, ResolvedModel, model_name
from harness.core.records import sha256_bytes
from harness.core.runner import StageRun, stage_entry
from harness.core.samples import AuditSample
from harness.core.store import RunStore, numbered_jsonl
from harness.data.record import DATA_PREFIX, NiftPair, dataset_pairs
from harness.train.record import STAGE as TRAIN_STAGE
from harness.train.record import (
    CheckpointRecord,
    parse_split,
    resolve_base,
    split_file,
)

NAME = "memorization"
#: Bump when the prompt sampling, the overlap measures or the flagging change (2: BCa intervals; 3: the gap's too, none below 10 prompts a set).
VERSION = "3"
log = get_logger(f"audit.{NAME}")
TOKENS = "lower-cased words (\\w+), punctuation dropped"


class PromptSet(BaseModel):
    """One set of probed prompts."""

    prompts: int = Field(description="Pairs probed.")
    available: int = Field(description="Pairs of this set the sample was drawn from.")
    ids_sha256: str = Field(description="sha256 of the sorted, newline-joined ids probed.")


class MemorizationAuditRecord(AuditRecord):
    kind: Literal["memorization_audit"] = "memorization_audit"
    checkpoint: str = Field(description="train:<name> whose training and held-out pairs were the prompts.")
    training_data: str = Field(description="The checkpoint's training data (data:<variant>).")
    prompt_sets: dict[str, PromptSet] = Field(description="train and held_out: the pairs probed.")
    tokens: str = Field(TOKENS, description="The tokens overlap is counted in (the same for every model).")
    ngram: int = Field(description="n of the n-gram overlap.")
    max_new_tokens: int = Field(description="Greedy continuation budget (model tokens); the LCS ratio's "
                                            "denominator is the response's length cut to it.")
    summaries: dict[str, dict[str, Estimate]] = Field(description="model -> declared metric -> value, CI, n and "
                                                                  "the CI's method.")

    METRICS: ClassVar[tuple[MetricSpec, ...]] = MEMORIZATION_METRICS

    def compute_values(self) -> list[MetricValue]:
        return [MetricValue(metric=metric, model=model, **estimate.model_dump())
                for model, metrics in self.summaries.items() for metric, estimate in metrics.items()]


@dataclass(frozen=True)
class ProbePair:
    """One pair as the probe asks it: the conversation before its last assistant turn, and that turn."""

    id: str
    suite: str
    history: list[dict[str, str]]
    prompt: str
    response: str

    @property
    def shown(self) -> str:
        """The prompt as a reviewer reads it (earlier turns of a multi-turn pair first)."""
        turns = [f"[{m['role']}] {m['content']}" for m in self.history]
        return "\n\n".join(turns + [f"[user] {self.prompt}"]) if turns else self.prompt


@dataclass
class _Probe:
    checkpoint: str
    training_data: str
    pairs: list[ProbePair]
    sets: dict[str, PromptSet] = field(default_factory=dict)


def _read_pairs(data: bytes, path: Path) -> dict[str, NiftPair]:
    """The data stage's pairs.jsonl, read as every JSON Lines file is (:func:`numbered_jsonl`): a row ends at a
    line feed only. str.splitlines() also splits at U+2028, U+2029 and U+0085, which a teacher's reply may hold
    raw (the data stage writes them unescaped), and then a valid pair read as two broken ones."""
    pairs = {}
    for number, row in numbered_jsonl(data, path):
        try:
            pair = NiftPair.model_validate(row)
        except ValidationError as exc:
            raise InputError(f"{path}:{number}: not a NIFT pair ({str(exc).splitlines()[0]})") from None
        pairs[pair.id] = pair
    return pairs


def _probe_pair(pair: NiftPair, suite: str, path: Path) -> ProbePair:
    messages = pair.messages
    if len(messages) < 2 or messages[-1].get("role") != "assistant" or messages[-2].get("role") != "user":
        raise InputError(f"{path}: pair {pair.id} does not end with a user turn and its assistant response")
    return ProbePair(id=pair.id, suite=suite, history=[dict(m) for m in messages[:-2]], prompt=messages[-2]["content"],
                     response=messages[-1]["content"])


def _sample(ids: list[str], limit: int | None, seed: int, suite: str) -> list[str]:
    ids = sorted(set(ids))
    if limit is None or limit >= len(ids):
        return ids
    return sorted(random.Random(f"{seed}:{suite}").sample(ids, limit))


def _load_probe(run: StageRun, store: RunStore, settings: MemorizationAuditConfig, candidate: str,
                seed: int) -> _Probe:
    """The checkpoint's record, split and training pairs, each an input of ``run``; the sampled prompts."""
    spec = settings.checkpoint or candidate
    if not spec.startswith(CHECKPOINT_PREFIX):
        raise ConfigError(f"audit.memorization: {spec!r} is not a checkpoint of this run (train:<name>), so it has "
                          "no training pairs to probe; set audit.memorization.checkpoint, or enabled: false")
    folder = store.stage_dir(TRAIN_STAGE, spec[len(CHECKPOINT_PREFIX):])
    record = run.record(folder, CheckpointRecord, kind="checkpoint")
    data = record.training_data
    if not data.startswith(DATA_PREFIX):
        raise ConfigError(f"audit.memorization: {spec} was trained on {data!r}, not on a NIFT dataset of this run "
                          "(data:<variant>); the probe reads its pairs through the data stage")
    split_path = run.file(split_file(folder, record), kind="training_split", id=f"{spec}:split")
    split = parse_split(run.read(split_path), split_path, record)
    dataset, pairs_path = dataset_pairs(store, data[len(DATA_PREFIX):])
    pairs_path = run.file(pairs_path, kind="nift_pairs", id=dataset.record_id)
    trained_on = {ref.sha256 for ref in record.inputs if ref.kind == "nift_dataset"}
    if run.inputs[-1].sha256 not in trained_on:
        raise InputError(f"{pairs_path}: not the pairs {spec} was trained on ({data} was rebuilt since); retrain "
                         "the checkpoint or probe another")
    pairs = _read_pairs(run.read(pairs_path), pairs_path)
    probe = _Probe(checkpoint=spec, training_data=data, pairs=[])
    for suite, ids in (("train", split["train"]), ("held_out", split["eval"])):
        limit = settings.train_prompts if suite == "train" else settings.held_out_prompts
        chosen = _sample(ids, limit, seed, suite)
        if missing := [i for i in chosen if i not in pairs]:
            raise InputError(f"{pairs_path}: no pair {missing[0]} of {spec}'s split ({len(missing)} missing)")
        probe.pairs += [_probe_pair(pairs[i], suite, pairs_path) for i in chosen]
        probe.sets[suite] = PromptSet(prompts=len(chosen), available=len(set(ids)),
                                      ids_sha256=sha256_bytes("\n".join(chosen).encode()))
    return probe


class _ModelResults:
    """Per-prompt values of every per-set metric for one model, and its sample rows."""

    def __init__(self, name: str, role: str):
        self.name, self.role = name, role
        self.values: dict[str, dict[str, float]] = {}
        self.rows: list[AuditSample] = []

    def metric(self, suite: str, measure: str) -> dict[str, float]:
        return self.values.get(f"memorization.{suite}.{measure}", {})


def _continuations(run: StageRun, name: str, make, probes: list[ProbePair], settings: MemorizationAuditConfig,
                   seed: int) -> dict[str, str]:
    """Pair id -> greedy continuation: from the interrupted run when this model finished, else generated (and
    kept for a resume)."""
    from harness.core.generation import GenerationRequest, Sampling

    progress = run.progress
    if (saved := progress.load(name)) is not None:
        log.info(f"{name}: continuations from the interrupted run ({progress.folder})")
        return saved["continuations"]
    generator = make()
    greedy = Sampling(temperature=0.0)
    requests = [GenerationRequest(key=p.id, prompt=p.prompt, history=p.history, sampling=greedy,
                                  max_new_tokens=settings.max_new_tokens) for p in probes]
    generations = generator.generate(requests, seed=seed)
    if failed := [g for g in generations if g.error]:
        raise InputError(f"audit.memorization: {name} failed to answer {len(failed)} prompts (first: "
                         f"{failed[0].key}: {failed[0].error})")
    continuations = {g.key: g.text for g in generations}
    progress.save(name, {"continuations": continuations})
    return continuations


def score_model(name: str, role: str, probes: list[ProbePair], continuations: dict[str, str],
                settings: MemorizationAuditConfig) -> _ModelResults:
    """Every continuation against its pair's training response: per-prompt values and flagged rows."""
    results = _ModelResults(name, role)
    for probe in probes:
        text = continuations[probe.id]
        found = overlap(text, probe.response, settings.ngram, settings.max_new_tokens)
        memorized = found.lcs_ratio >= settings.lcs_threshold or found.ngram_overlap >= settings.ngram_threshold
        for measure, value in (("lcs_ratio", found.lcs_ratio), ("ngram_overlap", found.ngram_overlap),
                               ("memorized_rate", float(memorized))):
            results.values.setdefault(f"memorization.{probe.suite}.{measure}", {})[probe.id] = value
        results.rows.append(AuditSample(
            audit=NAME, suite=probe.suite, model=name, role=role, item_id=probe.id, group=probe.suite,
            prompt=probe.shown, output=text, reference=probe.response,
            scores={"lcs_ratio": round(found.lcs_ratio, 6), "lcs_tokens": float(found.lcs_tokens),
                    "ngram_overlap": round(found.ngram_overlap, 6)},
            flags={"memorized": memorized}, scorer=f"overlap:{TOKENS};n={settings.ngram}"))
    return results


def summarise(results: _ModelResults, config: AuditConfig) -> dict[str, Estimate]:
    """Each per-set metric's mean over its prompts with a CI (a proportion interval for the memorized rate, a
    BCa bootstrap for the continuous shares, none below 10 prompts or for shares that do not vary), and each gap
    with its two-sample BCa bootstrap CI (none below 10 prompts in either set)."""
    from harness.core.stats import bootstrap_mean_ci, independent_difference_interval, proportion_interval

    out = {}
    for suite in SUITES:
        for measure in MEASURES:
            values = list(results.metric(suite, measure).values())
            if not values:
                continue
            mean = sum(values) / len(values)
            if measure == "memorized_rate":
                low, high = proportion_interval(int(sum(values)), len(values), config.confidence,
                                                config.proportion_interval)
                method = config.proportion_interval
            else:
                low, high, method = bootstrap_mean_ci(values, config.bootstrap_iterations, config.confidence,
                                                      config.seed)
            out[f"memorization.{suite}.{measure}"] = Estimate(value=mean, ci_low=low, ci_high=high, n=len(values),
                                                              interval=method)
    for measure in GAP_MEASURES:
        train = list(results.metric("train", measure).values())
        held = list(results.metric("held_out", measure).values())
        if not train or not held:
            continue
        low, high, method = independent_difference_interval(train, held, iterations=config.bootstrap_iterations,
                                                            confidence=config.confidence, seed=config.seed)
        out[f"memorization.gap.{measure}"] = Estimate(
            value=sum(train) / len(train) - sum(held) / len(held), ci_low=low, ci_high=high,
            n=len(train) + len(held), interval=method)
    return out


def paired_deltas(results: dict[str, _ModelResults], candidate: str, config: AuditConfig) -> list[MetricDelta]:
    """Candidate minus each baseline on the same prompts: every per-set metric (paired BCa bootstrap and sign test
    for the shares, Newcombe and exact McNemar for the memorized rate), and each gap as the difference between
    the two sets of the per-prompt candidate-minus-baseline differences (two-sample bootstrap)."""
    from harness.core.stats import independent_difference_interval, paired_comparison

    deltas = []
    mine = results[candidate]
    for baseline, theirs in results.items():
        if baseline == candidate:
            continue
        for suite in SUITES:
            for measure in MEASURES:
                comparison = paired_comparison(
                    mine.metric(suite, measure), theirs.metric(suite, measure), task=f"{NAME}.{suite}",
                    metric=measure, baseline_name=baseline, higher_is_better=False,
                    iterations=config.bootstrap_iterations, confidence=config.confidence, seed=config.seed,
                    continuous=measure != "memorized_rate")
                if comparison is not None:
                    deltas.append(delta_from_comparison(f"memorization.{suite}.{measure}", candidate, comparison))
        for measure in GAP_MEASURES:
            differences = {}
            for suite in SUITES:
                c, b = mine.metric(suite, measure), theirs.metric(suite, measure)
                differences[suite] = [c[i] - b[i] for i in sorted(set(c) & set(b))]
            train, held = differences["train"], differences["held_out"]
            if not train or not held:
                continue
            low, high, method = independent_difference_interval(
                train, held, iterations=config.bootstrap_iterations, confidence=config.confidence, seed=config.seed)
            deltas.append(MetricDelta(
                metric=f"memorization.gap.{measure}", candidate=candidate, baseline=baseline,
                difference=sum(train) / len(train) - sum(held) / len(held), ci_low=low, ci_high=high,
                confidence=config.confidence, n=len(train) + len(held), interval=method))
    return deltas


def _generator_factory(resolved: ResolvedModel, settings: MemorizationAuditConfig, config: AuditConfig):
    def make():
        from harness.core.generation import GeneratorConfig, make_generator

        return make_generator(GeneratorConfig(model=resolved.path, temperature=0.0, repetition_penalty=1.0,
                                              batch_size=settings.batch_size, threads=config.threads))

    return make


@register_audit(NAME, version=VERSION, record_type=MemorizationAuditRecord, config_type=MemorizationAuditConfig)
@stage_entry
def run_memorization_audit(config: AuditConfig, candidate: str, baselines: list[ModelRef], store: RunStore,
                           force: bool = False, generators: dict[str, Any] | None = None) -> MemorizationAuditRecord:
    """Greedy continuations of the checkpoint's training and held-out user turns, from the candidate and each
    baseline, against the training responses; per-set rates, the train-minus-held-out gap, paired deltas.

    ``generators`` (name -> object with ``generate(requests, seed)``) replace real models in tests.
    """
    settings = config.memorization
    run = StageRun(store, "audit", NAME, MemorizationAuditRecord, force=force)
    specs = [(model_name(candidate), "candidate", candidate)] + [(b.name, "baseline", b.model) for b in baselines]
    resolved = {name: run.model(spec, resolve_base) for name, _, spec in specs}
    probe = _load_probe(run, store, settings, candidate, config.seed)
    if (done := run.cached({"version": VERSION, **config.common(), NAME: settings.model_dump(),
                            "candidate": candidate, "baselines": [b.model_dump() for b in baselines]})) is not None:
        return done
    results = {}
    for name, role, _ in specs:
        given = (generators or {}).get(name)
        make = (lambda g=given: g) if given is not None else _generator_factory(resolved[name], settings, config)
        log.info(f"{name}: {len(probe.pairs)} prompts")
        continuations = _continuations(run, name, make, probe.pairs, settings, config.seed)
        results[name] = score_model(name, role, probe.pairs, continuations, settings)
    record = MemorizationAuditRecord(
        **run.header(), version=VERSION, checkpoint=probe.checkpoint, training_data=probe.training_data,
        prompt_sets=probe.sets, ngram=settings.ngram, max_new_tokens=settings.max_new_tokens,
        models=[AuditedModel(name=n, role=r, model=resolved[n]) for n, r, _ in specs],
        summaries={name: summarise(r, config) for name, r in results.items()},
        deltas=paired_deltas(results, specs[0][0], config),
        flagged_samples={n: sum(row.flags["memorized"] for row in r.rows) for n, r in results.items()},
        files={"samples": "samples.jsonl"})
    return run.commit(record, {"samples.jsonl": (row.model_dump() for r in results.values() for row in r.rows)})
