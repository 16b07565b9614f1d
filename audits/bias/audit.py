"""`nift-gate audit` (bias): BBQ (Parrish et al. 2022) on the candidate and each baseline, compared item by item.

Every model answers every item by loglikelihood through lm-eval's own BBQ multiple-choice task (with bench's
lm-eval settings: chat template, batch size, backend; results cached per model like bench's). Per category
and overall, for ambiguous and disambiguated contexts: accuracy, BBQ's bias score (signed in the record, its
absolute value as the gate-able metric) and the share of bias-aligned answers, with intervals and paired
deltas against each baseline. An ambiguous item answered with the stereotyped answer is flagged for review.

Output under ``<run>/audit/bias/``: record.json (BiasAuditRecord) and samples.jsonl (one
``harness.core.samples.AuditSample`` per model and item; flag ``stereotyped`` for the review queue).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from audits.bias.metrics import (
    BIAS_METRICS,
    ConditionSummary,
    ItemOutcome,
    metric_estimates,
    metric_specs,
    paired_deltas,
    summarise_model,
)
from audits.bias.suite import ANSWERS, BbqItem, load_bbq
from audits.bias.task import TASKS, outcomes_from_rows, write_task
from audits.config import AuditConfig, BiasAuditConfig
from audits.registry import AuditedModel, AuditRecord, register_audit
from harness.core.config import ModelRef
from harness.core.lmeval import (
    LmEvalSettings,
    evaluate_model,
    load_samples,
    task_manager,
)
from harness.core.log import get_logger
from harness.core.metrics import MetricSpec, MetricValue
from harness.core.models import model_name
from harness.core.runner import StageRun, stage_entry
from harness.core.samples import AuditSample
from harness.core.store import RunStore
from harness.train.record import resolve_base

NAME = "bias"
#: Bump when the shipped items, the task (audits/bias/task.py) or the scoring change (2: BCa intervals of the
#: bias scores, none below 10 items; 3: the absolute scores' intervals and their deltas' folded from BCa
#: intervals of signed scores, 'bootstrap-bca-folded').
VERSION = "3"
FLAG = "stereotyped"
ANSWERS_ASKED = {
    "bbq": "lm-eval's bbq_multiple_choice (lm_eval/tasks/bbq) asked with the item's three answers, as BBQ's paper "
           "does: the answer with the highest loglikelihood, zero-shot",
    "helm": "lm-eval's bbq_multiple_choice (lm_eval/tasks/bbq) as shipped: the answer with the highest "
            "loglikelihood among the two people and BBQ's ten unknown wordings (HELM's setup), zero-shot"}
log = get_logger(f"audit.{NAME}")

__all__ = ["BiasAuditRecord", "run_bias_audit"]


class BbqSource(BaseModel):
    path: str
    sha256: str
    items: int = Field(description="Items used from this file (after limit_per_category).")


class BiasAuditRecord(AuditRecord):
    kind: Literal["bias_audit"] = "bias_audit"
    sources: list[BbqSource] = Field(description="The BBQ files and how many of their items were asked.")
    items: int
    categories: dict[str, dict[str, int]] = Field(description="category -> context condition -> items.")
    task: dict[str, str] = Field(description="The lm-eval task that scored the answers, and how.")
    summaries: dict[str, dict[str, dict[str, ConditionSummary]]] = Field(
        description="model -> 'overall' or category -> ambig/disambig -> accuracy, signed and absolute bias "
                    "score, biased-answer rate, with counts.")
    answers: dict[str, dict[str, int]] = Field(
        description="model -> how its answers fell: biased, counter (the other person), unknown; ambiguous "
                    "contexts only (where any non-unknown answer is an assumption).")
    lm_eval_aggregates: dict[str, dict[str, float]] = Field(
        description="model -> lm-eval's own aggregates of the task (acc, amb_bias_score, disamb_bias_score), for "
                    "reference. lm-eval scores s_DIS as 0 when no answer is biased; BBQ's formula, used here, "
                    "gives -1 when non-unknown answers exist and none is biased.")

    METRICS: ClassVar[tuple[MetricSpec, ...]] = BIAS_METRICS

    def declared_metrics(self) -> list[MetricSpec]:
        """The overall metrics and those of the categories this record's items cover."""
        return metric_specs([None, *sorted(self.categories)])

    def compute_values(self) -> list[MetricValue]:
        return [MetricValue(metric=metric, model=model, **estimate.model_dump())
                for model, summaries in self.summaries.items()
                for metric, estimate in metric_estimates(summaries).items()]


def _settings(lm_eval_settings: LmEvalSettings, task: str) -> LmEvalSettings:
    """Bench's lm-eval settings (model loading, chat template, batching) for the BBQ task alone, zero-shot as
    BBQ is, on every item the audit chose."""
    return lm_eval_settings.model_copy(update={"tasks": [task], "limit": None, "num_fewshot": None,
                                               "task_dirs": []})


def _prompt(item: BbqItem) -> str:
    options = "\n".join(f"{key}: {answer}" for key, answer in zip(ANSWERS, item.answers))
    return f"{item.context}\n\nQ: {item.question}\n{options}"


def _rows(name: str, role: str, items: list[BbqItem], answered: dict[str, tuple[ItemOutcome, int, str]],
          task: str) -> list[AuditSample]:
    rows = []
    for item in items:
        outcome, _, text = answered[item.id]
        stereotyped = item.context_condition == "ambig" and outcome.biased
        rows.append(AuditSample(
            audit=NAME, suite=f"bbq_{item.context_condition}", model=name, role=role, item_id=item.id,
            group=item.category, prompt=_prompt(item), output=text,
            reference=item.answers[item.label],
            scores={"correct": float(outcome.correct), "biased": float(outcome.biased),
                    "unknown": float(not outcome.non_unknown)},
            flags={FLAG: stereotyped}, scorer=f"lm-eval:{task}"))
    return rows


def _answer_counts(answered: dict[str, tuple[ItemOutcome, int, str]]) -> dict[str, int]:
    ambiguous = [outcome for outcome, _, _ in answered.values() if outcome.condition == "ambig"]
    return {"biased": sum(o.biased for o in ambiguous),
            "counter": sum(o.non_unknown and not o.biased for o in ambiguous),
            "unknown": sum(not o.non_unknown for o in ambiguous)}


@register_audit(NAME, version=VERSION, record_type=BiasAuditRecord, config_type=BiasAuditConfig)
@stage_entry
def run_bias_audit(config: AuditConfig, candidate: str, baselines: list[ModelRef], store: RunStore,
                   force: bool = False, lm_eval_settings: LmEvalSettings | None = None,
                   lms: dict[str, Any] | None = None) -> BiasAuditRecord:
    """BBQ on the candidate and each baseline through lm-eval: accuracy and bias scores per category and
    context condition, paired deltas, stereotyped answers in ambiguous contexts flagged for review.

    ``lm_eval_settings``: how lm-eval loads and batches models (bench's settings). ``lms`` (name -> lm-eval LM)
    replaces real models in tests.
    """
    bias = config.bias
    run = StageRun(store, "audit", NAME, BiasAuditRecord, force=force)
    paths = [run.file(spec, kind="prompt_set", id=f"bbq:{spec}") for spec in bias.paths]
    items = load_bbq(paths, bias.limit_per_category, read=run.read)
    specs = [(model_name(candidate), "candidate", candidate)] + [(b.name, "baseline", b.model) for b in baselines]
    resolved = {name: run.model(spec, resolve_base) for name, _, spec in specs}
    task = TASKS[bias.answers]
    settings = _settings(lm_eval_settings or LmEvalSettings(), task)
    if (done := run.cached({"version": VERSION, **config.common(), NAME: bias.model_dump(), "candidate": candidate,
                            "baselines": [b.model_dump() for b in baselines],
                            "lm_eval": settings.model_dump()})) is not None:
        return done
    include, refs = write_task(items, store.stage_dir("audit", "_tasks") / NAME, bias.answers)
    manager = functools.cache(lambda: task_manager([include], [task]))
    answered, aggregates, rows = {}, {}, []
    for name, role, _ in specs:
        evaluated, folder, _ = evaluate_model(name, resolved[name], settings, manager, refs, store.home,
                                              store.run_id, force=force, lm=(lms or {}).get(name))
        answered[name] = outcomes_from_rows(items, load_samples(folder, task), folder, bias.answers)
        aggregates[name] = dict(evaluated.tasks[task].metrics)
        rows += _rows(name, role, items, answered[name], task)
    common = {"iterations": config.bootstrap_iterations, "confidence": config.confidence, "seed": config.seed}
    outcomes = {name: [answered[name][item.id][0] for item in items] for name, _, _ in specs}
    categories: dict[str, dict[str, int]] = {}
    for item in items:
        per = categories.setdefault(item.category, {})
        per[item.context_condition] = per.get(item.context_condition, 0) + 1
    record = BiasAuditRecord(
        **run.header(), version=VERSION,
        models=[AuditedModel(name=n, role=r, model=resolved[n]) for n, r, _ in specs],
        sources=[BbqSource(path=str(path), sha256=ref.sha256, items=sum(i.source.startswith(f"{path}:")
                                                                        for i in items))
                 for path, ref in zip(paths, [r for r in run.inputs if r.kind == "prompt_set"])],
        items=len(items), categories=dict(sorted(categories.items())),
        task={"lm_eval_task": task, "answers": bias.answers, "definition": ANSWERS_ASKED[bias.answers]},
        summaries={name: summarise_model(outcomes[name], proportion_method=config.proportion_interval, **common)
                   for name in outcomes},
        answers={name: _answer_counts(answered[name]) for name in answered},
        lm_eval_aggregates=aggregates,
        deltas=paired_deltas(outcomes, specs[0][0], **common),
        flagged_samples={name: sum(r.flags[FLAG] for r in rows if r.model == name) for name, _, _ in specs},
        files={"samples": "samples.jsonl"})
    return run.commit(record, {"samples.jsonl": (row.model_dump() for row in rows)})
