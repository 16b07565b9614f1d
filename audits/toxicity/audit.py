"""`nift-gate audit` (toxicity): k continuations per prompt from the candidate and each baseline, scored,
summarised per attribute, per prompt group and, for labelled prompts (ToxiGen's hate/neutral), per label and per
group and label, every sample kept with its scores and flags.

Output under ``<run>/audit/toxicity/``: record.json (ToxicityAuditRecord) and samples.jsonl (one
``harness.core.samples.AuditSample`` per continuation, with its scores and the ``toxic`` flag).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from audits.config import AuditConfig, ToxicityAuditConfig
from audits.registry import AuditedModel, AuditRecord, register_audit
from audits.toxicity.metrics import TOXICITY_METRICS
from audits.toxicity.protocol import (
    AttributeSummary,
    ToxicityPrompt,
    load_prompts,
    sample_continuations,
    score_matrix,
    summarise,
)
from audits.toxicity.scorers import DetoxifyScorer, ProfanityCheckScorer, ScorerIdentity
from harness.core.assets import resolve_asset
from harness.core.config import ModelRef
from harness.core.errors import ModelLoadError
from harness.core.log import get_logger
from harness.core.metrics import (
    MetricDelta,
    MetricSpec,
    MetricValue,
    delta_from_comparison,
)
from harness.core.models import model_name
from harness.core.runner import StageRun, stage_entry
from harness.core.samples import AuditSample
from harness.core.store import RunStore
from harness.train.record import resolve_base

NAME = "toxicity"
#: Bump when the prompts shipped, the sampling protocol or the scoring change (2: proportion and Newcombe CIs;
#: 3: prompt labels kept, per-label summaries, limit_per_group per group and label; 4: BCa intervals, a
#: proportion interval for 0/1 maxima; 5: group_field values false/0 are their own groups, RealToxicityPrompts'
#: prompt.text read; 6: a literal backslash-n is a line break in ToxiGen-shaped prompts only; 7: maxima or paired
#: differences that all agree get a constant-bounded interval; whole-number labels; ToxiGen's .txt prompt files).
VERSION = "7"
log = get_logger(f"audit.{NAME}")

__all__ = ["AuditedModel", "ToxicityAuditRecord", "run_toxicity_audit"]


class ToxicityAuditRecord(AuditRecord):
    kind: Literal["toxicity_audit"] = "toxicity_audit"
    scorer: ScorerIdentity = Field(description="Which scorer produced every number here (fallbacks say so).")
    prompts: int
    samples_per_prompt: int
    summaries: dict[str, dict[str, AttributeSummary]] = Field(description="model -> attribute -> overall, groups, "
                                                                          "labels and group x label.")

    METRICS: ClassVar[tuple[MetricSpec, ...]] = TOXICITY_METRICS

    def compute_values(self) -> list[MetricValue]:
        values = []
        for model, attributes in self.summaries.items():
            for attribute, summary in attributes.items():
                for spec in self.METRICS:
                    estimate = getattr(summary.overall, spec.name.removeprefix("toxicity."))
                    values.append(MetricValue(metric=spec.name, model=model, attribute=attribute,
                                              **estimate.model_dump()))
        return values


def make_scorer(config: ToxicityAuditConfig):
    if config.scorer == "profanity-check":
        return ProfanityCheckScorer()
    try:
        return DetoxifyScorer(config.detoxify_variant, config.checkpoint, config.config_dir, config.score_batch_size,
                              config.allow_pickle)
    except ModelLoadError as exc:
        if config.scorer == "detoxify":
            raise
        log.warning(f"detoxify unavailable ({str(exc).split('.')[0]}); using the labelled fallback scorer "
                    "alt-profanity-check")
        return ProfanityCheckScorer()


#: Per-prompt reduction of a prompts x k score matrix behind each metric; the paired tests compare these.
PER_PROMPT = {
    "toxicity.expected_max_toxicity": lambda matrix, threshold: matrix.max(axis=1),
    "toxicity.toxicity_probability": lambda matrix, threshold: (matrix >= threshold).any(axis=1).astype(float),
}


def paired_deltas(matrices: dict[str, dict[str, np.ndarray]], prompt_ids: list[str], candidate: str,
                  threshold: float, config: AuditConfig) -> list[MetricDelta]:
    """Candidate minus each baseline on the same prompts: per-prompt maximum (EMT: paired bootstrap CI, sign
    test) and any-sample-toxic (toxicity probability: Newcombe's paired CI, exact McNemar), oriented by each
    metric's spec."""
    from harness.core.stats import (
        paired_comparison,  # scipy: seconds to import, paid only when comparing
    )

    deltas = []
    for baseline, attributes in matrices.items():
        if baseline == candidate:
            continue
        for attribute, matrix in attributes.items():
            for spec in TOXICITY_METRICS:
                reduce = PER_PROMPT[spec.name]
                c = dict(zip(prompt_ids, reduce(matrices[candidate][attribute], threshold).tolist()))
                b = dict(zip(prompt_ids, reduce(matrix, threshold).tolist()))
                comparison = paired_comparison(c, b, task=NAME, metric=spec.name.removeprefix("toxicity."),
                                               baseline_name=baseline, higher_is_better=spec.higher_is_better,
                                               iterations=config.bootstrap_iterations,
                                               confidence=config.confidence, seed=config.seed, bounds=(0.0, 1.0))
                if comparison is not None:  # every model answers every prompt, but no delta without items
                    deltas.append(delta_from_comparison(spec.name, candidate, comparison, attribute))
    return deltas


def _continuations(run: StageRun, name: str, model, prompts: list[ToxicityPrompt], tox: ToxicityAuditConfig,
                   seed: int, generate: Any) -> list[list[str]]:
    """k continuations per prompt: from the interrupted run when this model finished, else sampled (and kept
    for a resume)."""
    progress = run.progress
    if (saved := progress.load(name)) is not None:
        log.info(f"{name}: continuations from the interrupted run ({progress.folder})")
        return saved["continuations"]
    if generate is not None:
        continuations = generate(model, [p.text for p in prompts])
    else:
        from harness.core.models import load_model

        loaded = load_model(model)
        continuations = sample_continuations(loaded.model, loaded.tokenizer, [p.text for p in prompts],
                                             tox.samples_per_prompt, tox.temperature, tox.max_new_tokens,
                                             tox.batch_size, seed)
    progress.save(name, {"continuations": continuations})
    return continuations


def _sample_rows(name: str, role: str, suite: str, prompts: list[ToxicityPrompt], continuations: list[list[str]],
                 matrix: dict[str, np.ndarray], threshold: float, scorer: str) -> list[AuditSample]:
    rows = []
    for i, prompt in enumerate(prompts):
        for j, text in enumerate(continuations[i]):
            scores = {a: round(float(m[i, j]), 6) for a, m in matrix.items()}
            group = prompt.group if prompt.label is None else f"{prompt.group}/{prompt.label}"
            rows.append(AuditSample(audit=NAME, suite=suite, model=name, role=role, item_id=prompt.id,
                                    group=group, sample=j, prompt=prompt.text, output=text, scores=scores,
                                    flags={"toxic": max(scores.values()) >= threshold}, scorer=scorer))
    return rows


@register_audit(NAME, version=VERSION, record_type=ToxicityAuditRecord, config_type=ToxicityAuditConfig)
@stage_entry
def run_toxicity_audit(config: AuditConfig, candidate: str, baselines: list[ModelRef], store: RunStore,
                       force: bool = False, scorer: Any = None, generate: Any = None) -> ToxicityAuditRecord:
    """k sampled continuations per prompt from every model, scored; HELM's metrics with paired deltas.

    ``scorer`` (an object with ``identity`` and ``score(texts)``) and ``generate(resolved, prompts) ->
    list[list[str]]`` replace detoxify and real sampling in tests.
    """
    from harness.core.threads import choose_threads

    tox = config.toxicity
    run = StageRun(store, "audit", NAME, ToxicityAuditRecord, force=force)
    # ToxiGen's prompts/ folder is one set of files (hate_<group>_1k.txt, ...), every one hashed with the run
    hashed = run.tree if resolve_asset(tox.prompts).is_dir() else run.file
    prompts_path = hashed(tox.prompts, kind="prompt_set")
    prompts = load_prompts(str(prompts_path), tox.text_field, tox.group_field, tox.limit_per_group, tox.label_field,
                           run.read)
    specs = [(model_name(candidate), "candidate", candidate)] + [(b.name, "baseline", b.model) for b in baselines]
    resolved = {name: run.model(spec, resolve_base) for name, _, spec in specs}
    if scorer is None:
        scorer = make_scorer(tox)
        if not scorer.identity.fallback and tox.checkpoint:  # a local detoxify: its files are inputs too
            run.file(tox.checkpoint, kind="scorer_checkpoint")
            run.tree(tox.config_dir, kind="scorer_config")
    if (done := run.cached({"version": VERSION, **config.common(), NAME: tox.model_dump(),
                            "candidate": candidate, "baselines": [b.model_dump() for b in baselines],
                            "scorer": scorer.identity.model_dump()})) is not None:
        return done
    threads = choose_threads("generate", config.threads)
    rows, summaries, flagged, matrices = [], {}, {}, {}
    for name, role, _ in specs:
        continuations = _continuations(run, name, resolved[name], prompts, tox, config.seed, generate)
        matrix = matrices[name] = score_matrix(scorer, continuations)
        summaries[name] = summarise(matrix, [p.group for p in prompts], tox.threshold, config.bootstrap_iterations,
                                    config.confidence, config.seed, config.proportion_interval,
                                    labels=[p.label for p in prompts])
        model_rows = _sample_rows(name, role, prompts_path.stem, prompts, continuations, matrix, tox.threshold,
                                  scorer.identity.name)
        flagged[name] = sum(row.flags["toxic"] for row in model_rows)
        rows += model_rows
    record = ToxicityAuditRecord(
        **run.header(threads=threads.model_dump()), version=VERSION, scorer=scorer.identity,
        models=[AuditedModel(name=n, role=r, model=resolved[n]) for n, r, _ in specs], prompts=len(prompts),
        samples_per_prompt=tox.samples_per_prompt, summaries=summaries, flagged_samples=flagged,
        deltas=paired_deltas(matrices, [p.id for p in prompts], specs[0][0], tox.threshold, config),
        files={"samples": "samples.jsonl"})
    return run.commit(record, {"samples.jsonl": (row.model_dump() for row in rows)})
