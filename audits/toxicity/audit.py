"""`nift-gate audit` (toxicity): k continuations per prompt from the candidate and each baseline, scored,
summarised per attribute and per prompt group, every sample kept with its scores and flags.

Output under ``<run>/audit/toxicity/``: record.json (ToxicityAuditRecord) and samples.jsonl (one
``harness.core.samples.AuditSample`` per continuation, with its scores and the ``toxic`` flag).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from audits.config import AuditConfig, ToxicityAuditConfig
from audits.toxicity.protocol import (
    AttributeSummary,
    load_prompts,
    sample_continuations,
    score_matrix,
    summarise,
)
from audits.toxicity.scorers import DetoxifyScorer, ProfanityCheckScorer, ScorerIdentity
from harness.core.assets import resolve_asset
from harness.core.errors import ModelLoadError
from harness.core.metrics import MetricDelta, MetricValue, delta_from_comparison
from harness.core.models import ResolvedModel, model_name
from harness.core.progress import ModelProgress
from harness.core.records import Record, new_record_id, stage_fingerprint
from harness.core.samples import AuditSample
from harness.core.stats import paired_comparison
from harness.core.store import (
    RECORD_FILE,
    RunStore,
    atomic_dir,
    atomic_write_jsonl,
    completed_record,
)
from harness.train.record import resolve_base

STAGE = "audit"

class AuditedModel(BaseModel):
    name: str
    role: str
    model: ResolvedModel


class ToxicityAuditRecord(Record):
    kind: Literal["toxicity_audit"] = "toxicity_audit"
    scorer: ScorerIdentity = Field(description="Which scorer produced every number here (fallbacks say so).")
    models: list[AuditedModel]
    prompts: int
    samples_per_prompt: int
    summaries: dict[str, dict[str, AttributeSummary]] = Field(description="model -> attribute -> overall and groups.")
    flagged_samples: dict[str, int] = Field(description="Continuations at or above the threshold, per model.")
    deltas: list[MetricDelta] = Field(default_factory=list, description="Candidate minus each baseline, paired "
                                      "by prompt (per-prompt max and any-toxic indicator), per attribute.")
    files: dict[str, str]

    def metric_values(self) -> list[MetricValue]:
        values = []
        for model, attributes in self.summaries.items():
            for attribute, summary in attributes.items():
                for metric in ("expected_max_toxicity", "toxicity_probability"):
                    estimate = getattr(summary.overall, metric)
                    values.append(MetricValue(metric=f"toxicity.{metric}", model=model, attribute=attribute,
                                              **estimate.model_dump()))
        return values

    def metric_deltas(self) -> list[MetricDelta]:
        return list(self.deltas)


def make_scorer(config: ToxicityAuditConfig):
    if config.scorer == "profanity-check":
        return ProfanityCheckScorer()
    try:
        return DetoxifyScorer(config.detoxify_variant, config.checkpoint, config.config_dir, config.score_batch_size,
                              config.allow_pickle)
    except ModelLoadError as exc:
        if config.scorer == "detoxify":
            raise
        print(f"audit: detoxify unavailable ({str(exc).split('.')[0]}); using the labelled fallback scorer "
              "alt-profanity-check")
        return ProfanityCheckScorer()


def paired_deltas(matrices: dict[str, dict[str, np.ndarray]], prompt_ids: list[str], candidate: str,
                  threshold: float, config: AuditConfig) -> list[MetricDelta]:
    """Candidate minus each baseline on the same prompts: per-prompt maximum (EMT) and any-sample-toxic
    (toxicity probability), paired bootstrap CI and sign/McNemar test."""
    deltas = []
    per_prompt = {"expected_max_toxicity": lambda m: m.max(axis=1),
                  "toxicity_probability": lambda m: (m >= threshold).any(axis=1).astype(float)}
    for baseline, attributes in matrices.items():
        if baseline == candidate:
            continue
        for attribute, matrix in attributes.items():
            for metric, reduce in per_prompt.items():
                c = dict(zip(prompt_ids, reduce(matrices[candidate][attribute]).tolist()))
                b = dict(zip(prompt_ids, reduce(matrix).tolist()))
                comparison = paired_comparison(c, b, task="toxicity", metric=metric, baseline_name=baseline,
                                               higher_is_better=False, iterations=config.bootstrap_iterations,
                                               confidence=config.confidence, seed=config.seed)
                deltas.append(delta_from_comparison(f"toxicity.{metric}", candidate, comparison, attribute))
    return deltas


def run_toxicity_audit(config: AuditConfig, candidate: str, baselines: list, store: RunStore,
                       force: bool = False, scorer: Any = None, generate: Any = None) -> ToxicityAuditRecord:
    """``generate(resolved, prompts) -> list[list[str]]`` replaces real sampling in tests."""
    from harness.core.models import load_model
    from harness.core.threads import choose_threads

    tox = config.toxicity
    prompts = load_prompts(tox.prompts, tox.text_field, tox.group_field, tox.limit_per_group)
    specs = [(model_name(candidate), "candidate", candidate)] + [(b.name, "baseline", b.model) for b in baselines]
    resolved = {name: resolve_base(spec, store) for name, _, spec in specs}
    scorer = scorer or make_scorer(tox)
    inputs = [ref for _, ref in resolved.values()]
    fingerprint = stage_fingerprint(inputs, {**config.model_dump(), "candidate": candidate,
                                             "baselines": [b.model_dump() for b in baselines],
                                             "scorer": scorer.identity.model_dump()})
    out_dir = store.stage_dir(STAGE, "toxicity")
    if not force and (done := completed_record(out_dir, ToxicityAuditRecord, fingerprint)):
        print(f"audit [toxicity]: up to date ({out_dir}); --force reruns")
        return done
    threads = choose_threads("generate", config.threads)
    suite = Path(str(resolve_asset(tox.prompts))).stem
    rows, summaries, flagged, matrices = [], {}, {}, {}
    progress = ModelProgress(store, "toxicity", fingerprint)
    for name, role, _ in specs:
        model = resolved[name][0]
        if (saved := progress.load(name)) is not None:
            print(f"audit [toxicity]: {name}: continuations from the interrupted run ({progress.folder})")
            continuations = saved["continuations"]
        elif generate is not None:
            continuations = generate(model, [p.text for p in prompts])
        else:
            loaded = load_model(model)
            continuations = sample_continuations(loaded.model, loaded.tokenizer, [p.text for p in prompts],
                                                 tox.samples_per_prompt, tox.temperature, tox.max_new_tokens,
                                                 tox.batch_size, config.seed)
        progress.save(name, {"continuations": continuations})
        matrix = matrices[name] = score_matrix(scorer, continuations)
        summaries[name] = summarise(matrix, [p.group for p in prompts], tox.threshold, config.bootstrap_iterations,
                                    config.confidence, config.seed)
        flagged[name] = 0
        for i, prompt in enumerate(prompts):
            for j, text in enumerate(continuations[i]):
                scores = {a: round(float(m[i, j]), 6) for a, m in matrix.items()}
                toxic = max(scores.values()) >= tox.threshold
                flagged[name] += toxic
                rows.append(AuditSample(audit="toxicity", suite=suite, model=name, role=role, item_id=prompt.id,
                                        group=prompt.group, sample=j, prompt=prompt.text, output=text,
                                        scores=scores, flags={"toxic": toxic}, scorer=scorer.identity.name))
    deltas = paired_deltas(matrices, [p.id for p in prompts], specs[0][0], tox.threshold, config)
    record = ToxicityAuditRecord(
        record_id=new_record_id("toxicity_audit"), run_id=store.run_id, inputs=inputs,
        config={**config.model_dump(), "threads": threads.model_dump()}, fingerprint=fingerprint,
        scorer=scorer.identity, models=[AuditedModel(name=n, role=r, model=resolved[n][0]) for n, r, _ in specs],
        prompts=len(prompts), samples_per_prompt=tox.samples_per_prompt, summaries=summaries,
        flagged_samples=flagged, deltas=deltas, files={"samples": "samples.jsonl"})
    with atomic_dir(out_dir) as tmp:
        atomic_write_jsonl(tmp / "samples.jsonl", [row.model_dump() for row in rows])
        (tmp / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
    progress.clear()
    return record
