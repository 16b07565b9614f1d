"""`nift-gate audit` (hallucination): the candidate and each baseline on four checks, compared item by item.

- closed book: the project's factual and unanswerable questions; hallucination and abstention rates;
- HaluEval QA: answer from given knowledge; does the answer hold the right or the hallucinated answer? Plus
  the discrimination variant: the model judges whether a given answer is hallucinated;
- SelfCheckGPT n-gram: N sampled answers to each factual question score the greedy answer's sentences;
- TruthfulQA MC1/MC2: bench's lm-eval tasks, run (or taken from bench's cache) for every model.

Output under ``<run>/audit/hallucination/``: record.json (HallucinationAuditRecord) and samples.jsonl (one
``harness.core.samples.AuditSample`` per output, with flags hallucination / refusal / empty for the review queue).
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from audits.config import AuditConfig
from audits.hallucination.matching import (
    halueval_outcome,
    holds_any,
    is_refusal,
    parse_judgement,
)
from audits.hallucination.metrics import closed_book_item
from audits.hallucination.suites import load_closed_book, load_halueval
from audits.toxicity.audit import AuditedModel
from audits.toxicity.metrics import Estimate
from harness.bench.config import BenchConfig
from harness.core.errors import ConfigError, InputError
from harness.core.metrics import MetricDelta, MetricValue, delta_from_comparison
from harness.core.metrics import get as metric_spec
from harness.core.models import model_name
from harness.core.progress import ModelProgress
from harness.core.records import (
    InputRef,
    Record,
    new_record_id,
    sha256_file,
    stage_fingerprint,
)
from harness.core.samples import AuditSample
from harness.core.stats import bootstrap_mean_ci, paired_comparison
from harness.core.store import (
    RECORD_FILE,
    RunStore,
    atomic_dir,
    atomic_write_jsonl,
    completed_record,
)
from harness.train.record import resolve_base

STAGE, NAME = "audit", "hallucination"
TRUTHFULQA_TASKS = {"nift_truthfulqa_mc1": "hallucination.truthfulqa_mc1.acc",
                    "nift_truthfulqa_mc2": "hallucination.truthfulqa_mc2.acc"}


class SuiteInfo(BaseModel):
    source: str
    sha256: str
    items: int


class HallucinationAuditRecord(Record):
    kind: Literal["hallucination_audit"] = "hallucination_audit"
    models: list[AuditedModel]
    suites: dict[str, SuiteInfo] = Field(description="Checks that ran, with their data.")
    skipped: dict[str, str] = Field(default_factory=dict, description="Checks that did not run, and why.")
    summaries: dict[str, dict[str, Estimate]] = Field(description="model -> registered metric -> value, CI, n.")
    deltas: list[MetricDelta] = Field(description="Candidate minus each baseline on the same items (paired).")
    outcomes: dict[str, dict[str, dict[str, int]]] = Field(
        description="model -> check -> outcome counts (correct, hallucinated, refused, empty, unparseable, ...).")
    selfcheck: dict[str, str] | None = Field(None, description="What scored self-consistency.")
    flagged_samples: dict[str, int] = Field(description="Outputs flagged as hallucinations, per model.")
    files: dict[str, str]

    def metric_values(self) -> list[MetricValue]:
        return [MetricValue(metric=metric, model=model, **estimate.model_dump())
                for model, metrics in self.summaries.items() for metric, estimate in metrics.items()]

    def metric_deltas(self) -> list[MetricDelta]:
        return list(self.deltas)


class _ModelResults:
    """Per-item values of every metric for one model, and its sample rows."""

    def __init__(self, name: str, role: str):
        self.name, self.role = name, role
        self.values: dict[str, dict[str, float]] = {}
        self.rows: list[AuditSample] = []
        self.outcomes: dict[str, Counter] = {}

    def add(self, metric: str, item: str, value: float) -> None:
        self.values.setdefault(metric, {})[item] = float(value)

    def count(self, check: str, outcome: str) -> None:
        self.outcomes.setdefault(check, Counter())[outcome] += 1

    def dump(self) -> dict[str, Any]:
        return {"values": self.values, "rows": [row.model_dump() for row in self.rows],
                "outcomes": {check: dict(counts) for check, counts in self.outcomes.items()}}

    def restore(self, saved: dict[str, Any]) -> None:
        self.values = saved["values"]
        self.rows = [AuditSample.model_validate(row) for row in saved["rows"]]
        self.outcomes = {check: Counter(counts) for check, counts in saved["outcomes"].items()}


def _generate(generator, requests: list, seed: int, label: str) -> list:
    with tqdm(total=len(requests), desc=label, unit="prompt", leave=False) as bar:
        return generator.generate(requests, seed=seed, on_progress=bar.update)


def _closed_book(results: _ModelResults, generator, questions, config, seed: int) -> dict[str, str]:
    from harness.core.generation import GenerationRequest

    cb = config.closed_book
    requests = [GenerationRequest(key=q.id, prompt=cb.instruction.format(question=q.question),
                                  max_new_tokens=cb.max_new_tokens) for q in questions]
    answers = {}
    for q, request, generation in zip(questions, requests, _generate(generator, requests, seed,
                                                                     f"{results.name} closed book")):
        text = generation.text
        empty, refused = not text.strip(), is_refusal(text)
        correct = q.kind == "factual" and holds_any(text, q.answers)
        for metric, value in closed_book_item(q.kind, correct, refused, empty).items():
            results.add(f"hallucination.closed_book.{metric}", q.id, value)
        hallucinated = not empty and not refused and not correct
        outcome = "empty" if empty else "correct" if correct else "refused" if refused else "hallucinated"
        results.count(f"closed_book.{q.kind}", outcome)
        results.rows.append(AuditSample(
            audit=NAME, suite="closed_book", model=results.name, role=results.role, item_id=q.id, group=q.kind,
            prompt=request.prompt, output=text, reference=" | ".join(q.answers) or None,
            scores={"correct": float(correct)}, flags={"hallucination": hallucinated, "refusal": refused,
                                                       "empty": empty}))
        answers[q.id] = text
    return answers


def _halueval(results: _ModelResults, generator, items, config, seed: int) -> None:
    from harness.core.generation import GenerationRequest

    he = config.halueval
    if he.qa:
        requests = [GenerationRequest(key=i.id, prompt=he.qa_instruction.format(knowledge=i.knowledge,
                                                                                  question=i.question),
                                      max_new_tokens=he.max_new_tokens) for i in items]
        for item, request, generation in zip(items, requests, _generate(generator, requests, seed,
                                                                        f"{results.name} HaluEval QA")):
            text = generation.text
            outcome = "empty" if not text.strip() else halueval_outcome(text, item.right_answer,
                                                                        item.hallucinated_answer)
            results.count("halueval_qa", outcome)
            results.add("hallucination.halueval_qa.hallucination_rate", item.id, outcome == "hallucinated")
            results.add("hallucination.halueval_qa.correct_rate", item.id, outcome == "correct")
            results.rows.append(AuditSample(
                audit=NAME, suite="halueval_qa", model=results.name, role=results.role, item_id=item.id,
                prompt=request.prompt, output=text, reference=item.right_answer,
                scores={"correct": float(outcome == "correct")},
                flags={"hallucination": outcome == "hallucinated", "refusal": is_refusal(text),
                       "empty": outcome == "empty"}))
    if he.discrimination:
        shown = [(item, answer, truth) for item in items
                 for answer, truth in ((item.right_answer, False), (item.hallucinated_answer, True))]
        requests = [GenerationRequest(key=f"{item.id}:{'hallucinated' if truth else 'right'}", max_new_tokens=8,
                                      prompt=he.judge_instruction.format(knowledge=item.knowledge,
                                                                         question=item.question, answer=answer))
                    for item, answer, truth in shown]
        for (item, answer, truth), request, generation in zip(
                shown, requests, _generate(generator, requests, seed, f"{results.name} HaluEval judge")):
            verdict = parse_judgement(generation.text)
            right = verdict is not None and verdict == truth
            results.count("halueval_discrimination", "unparseable" if verdict is None else
                          "right" if right else "wrong")
            results.add("hallucination.halueval_discrimination.accuracy", request.key, right)
            results.rows.append(AuditSample(
                audit=NAME, suite="halueval_discrimination", model=results.name, role=results.role,
                item_id=request.key, prompt=request.prompt, output=generation.text,
                reference="Yes" if truth else "No", scores={"correct": float(right)},
                flags={"unparseable": verdict is None}))


def _selfcheck(results: _ModelResults, generator, checker, nli, questions, answers: dict[str, str], config,
               seed: int) -> None:
    from harness.core.generation import GenerationRequest, Sampling

    sc, cb = config.selfcheck, config.closed_book
    asked = [q for q in questions if q.kind == "factual"][: sc.limit]
    sampled = Sampling(temperature=sc.temperature, top_p=1.0)
    requests = [GenerationRequest(key=f"{q.id}#{j}", prompt=cb.instruction.format(question=q.question),
                                  max_new_tokens=cb.max_new_tokens, sampling=sampled)
                for q in asked for j in range(sc.samples)]
    generations = _generate(generator, requests, seed + 1, f"{results.name} SelfCheck samples")
    for index, q in enumerate(asked):
        samples = [g.text for g in generations[index * sc.samples:(index + 1) * sc.samples]]
        score = checker.score(answers[q.id], samples)
        if score is None:
            results.count("selfcheck", "empty")
            continue
        results.count("selfcheck", "scored")
        results.add("hallucination.selfcheck.avg_neg_logprob", q.id, score.avg_neg_logprob)
        results.add("hallucination.selfcheck.max_neg_logprob", q.id, score.avg_max_neg_logprob)
        scores = {"avg_neg_logprob": round(score.avg_neg_logprob, 6),
                  "max_neg_logprob": round(score.avg_max_neg_logprob, 6),
                  **{f"sentence_{i}_avg_neg_logprob": round(v, 6)
                     for i, v in enumerate(score.sentence_avg_neg_logprob)}}
        flags = {}
        if nli is not None:
            contradiction = nli.score(answers[q.id], samples)
            results.add("hallucination.selfcheck.nli_contradiction", q.id, contradiction)
            scores["nli_contradiction"] = round(contradiction, 6)
            flags["hallucination"] = contradiction >= sc.nli_threshold
        results.rows.append(AuditSample(
            audit=NAME, suite="selfcheck", model=results.name, role=results.role, item_id=q.id,
            prompt=requests[index * sc.samples].prompt, output=answers[q.id],
            reference=" || ".join(samples), scores=scores, flags=flags))


def _truthfulqa(results: dict[str, _ModelResults], resolved, bench: BenchConfig, path: str, limit: int | None,
                store: RunStore, force: bool, lms: dict[str, Any]) -> int:
    """bench's TruthfulQA tasks through lm-eval; per-item accuracy kept for paired comparisons. Returns the
    number of questions."""
    from harness.bench.evaluate import evaluate_model, load_samples
    from harness.bench.tasks import prepare_tasks, task_manager

    config = bench.model_copy(update={"tasks": list(TRUTHFULQA_TASKS), "truthfulqa_path": path, "limit": limit})
    include_paths, refs = prepare_tasks(config, store.root / STAGE / "_tasks")
    manager = functools.cache(lambda: task_manager(include_paths, config.tasks))
    for name, model_results in results.items():
        record, folder, _ = evaluate_model(name, resolved[name][0], config, manager, refs, store.home, store.run_id,
                                           force=force, lm=lms.get(name))
        for task, metric in TRUTHFULQA_TASKS.items():
            for row in load_samples(folder, task):
                model_results.add(metric, row["item"], row["scores"]["acc"])
            model_results.count(task.removeprefix("nift_"), "items")
    return len(next(iter(results.values())).values.get(TRUTHFULQA_TASKS["nift_truthfulqa_mc1"], {}))


def _summaries(results: dict[str, _ModelResults], config: AuditConfig) -> dict[str, dict[str, Estimate]]:
    out = {}
    for name, model_results in results.items():
        out[name] = {}
        for metric, items in sorted(model_results.values.items()):
            values = list(items.values())
            low, high = bootstrap_mean_ci(values, config.bootstrap_iterations, config.confidence, config.seed)
            out[name][metric] = Estimate(value=sum(values) / len(values), ci_low=low, ci_high=high, n=len(values))
    return out


def _deltas(results: dict[str, _ModelResults], candidate: str, config: AuditConfig) -> list[MetricDelta]:
    deltas = []
    for baseline, base in results.items():
        if baseline == candidate:
            continue
        for metric, items in sorted(results[candidate].values.items()):
            family, _, short = metric.rpartition(".")
            comparison = paired_comparison(items, base.values.get(metric, {}), task=family, metric=short,
                                           baseline_name=baseline,
                                           higher_is_better=metric_spec(metric).higher_is_better,
                                           iterations=config.bootstrap_iterations, confidence=config.confidence,
                                           seed=config.seed)
            deltas.append(delta_from_comparison(metric, candidate, comparison))
    return deltas


def run_hallucination_audit(config: AuditConfig, candidate: str, baselines: list, store: RunStore,
                            bench: BenchConfig | None = None, force: bool = False,
                            generators: dict[str, Any] | None = None,
                            lms: dict[str, Any] | None = None) -> HallucinationAuditRecord:
    """Entry point of the hallucination audit. ``generators`` (name -> object with ``generate(requests,
    seed)`` and a ``config``) and ``lms`` (name -> lm-eval LM) replace real models in tests."""
    from harness.core.generation import GeneratorConfig, make_generator

    hall, bench = config.hallucination, bench or BenchConfig()
    specs = [(model_name(candidate), "candidate", candidate)] + [(b.name, "baseline", b.model) for b in baselines]
    resolved = {name: resolve_base(spec, store) for name, _, spec in specs}
    suites, skipped, loaded = {}, {}, {}
    if hall.closed_book.enabled:
        path, loaded["closed_book"] = load_closed_book(hall.closed_book.questions, hall.closed_book.limit)
        suites["closed_book"] = SuiteInfo(source=str(path), sha256=sha256_file(path), items=len(loaded["closed_book"]))
    else:
        skipped["closed_book"] = "disabled (audit.hallucination.closed_book.enabled)"
    if hall.halueval.path and (hall.halueval.qa or hall.halueval.discrimination):
        path, loaded["halueval"] = load_halueval(hall.halueval.path, hall.halueval.limit)
        suites["halueval"] = SuiteInfo(source=str(path), sha256=sha256_file(path), items=len(loaded["halueval"]))
    else:
        skipped["halueval"] = "no audit.hallucination.halueval.path" if not hall.halueval.path else "disabled"
    if not hall.selfcheck.enabled or "closed_book" not in loaded:
        skipped["selfcheck"] = "disabled" if not hall.selfcheck.enabled else "needs the closed-book answers"
    truthfulqa_path = hall.truthfulqa.path or bench.truthfulqa_path
    if not truthfulqa_path:
        skipped["truthfulqa"] = "no audit.hallucination.truthfulqa.path or bench.truthfulqa_path"
    if not suites and not truthfulqa_path:
        raise ConfigError("audit.hallucination: every check is disabled or lacks data; enable closed_book or set "
                          "halueval.path / truthfulqa.path")
    checker = nli = None
    if "selfcheck" not in skipped:
        from audits.hallucination.selfcheck import NgramSelfCheck, NliSelfCheck

        checker = NgramSelfCheck(hall.selfcheck.ngram)
        nli = NliSelfCheck(hall.selfcheck.nli_model) if hall.selfcheck.nli_model else None
    inputs = [ref for _, ref in resolved.values()] + [
        InputRef(kind="prompt_set", id=name, sha256=info.sha256) for name, info in suites.items()]
    if nli is not None:
        from harness.core.models import resolve_model

        inputs.append(InputRef(kind="model", id=hall.selfcheck.nli_model,
                               sha256=resolve_model(hall.selfcheck.nli_model).sha256))
    truthfulqa_sha = None
    if truthfulqa_path:
        from harness.core.assets import resolve_asset

        if not resolve_asset(truthfulqa_path).exists():
            raise InputError(f"{resolve_asset(truthfulqa_path)}: TruthfulQA file not found")
        truthfulqa_sha = sha256_file(resolve_asset(truthfulqa_path))
        inputs.append(InputRef(kind="prompt_set", id="truthfulqa", sha256=truthfulqa_sha))
    fingerprint = stage_fingerprint(inputs, {**config.model_dump(), "candidate": candidate,
                                             "baselines": [b.model_dump() for b in baselines],
                                             "bench": bench.model_dump() if truthfulqa_path else None})
    out_dir = store.stage_dir(STAGE, NAME)
    if not force and (done := completed_record(out_dir, HallucinationAuditRecord, fingerprint)):
        print(f"audit [hallucination]: up to date ({out_dir}); --force reruns")
        return done

    generators = dict(generators or {})
    results = {name: _ModelResults(name, role) for name, role, _ in specs}
    progress = ModelProgress(store, NAME, fingerprint)
    for name, _, _ in specs:
        if not loaded:
            break
        if (saved := progress.load(name)) is not None:
            print(f"audit [hallucination]: {name}: answers from the interrupted run ({progress.folder})")
            results[name].restore(saved)
            continue
        generator = generators.get(name) or make_generator(GeneratorConfig(
            model=resolved[name][0].path, temperature=0.0, repetition_penalty=1.0, batch_size=hall.batch_size,
            threads=config.threads))
        print(f"audit [hallucination]: {name}")
        answers = {}
        if "closed_book" in loaded:
            answers = _closed_book(results[name], generator, loaded["closed_book"], hall, config.seed)
        if "halueval" in loaded:
            _halueval(results[name], generator, loaded["halueval"], hall, config.seed)
        if checker is not None:
            _selfcheck(results[name], generator, checker, nli, loaded["closed_book"], answers, hall, config.seed)
        del generator  # free the model before the next one loads
        progress.save(name, results[name].dump())
    if truthfulqa_path:
        questions = _truthfulqa(results, resolved, bench, truthfulqa_path, hall.truthfulqa.limit, store, force,
                                lms or {})
        suites["truthfulqa"] = SuiteInfo(source=str(truthfulqa_path), sha256=truthfulqa_sha, items=questions)

    rows = [row for r in results.values() for row in r.rows]
    record = HallucinationAuditRecord(
        record_id=new_record_id("hallucination_audit"), run_id=store.run_id, inputs=inputs,
        config=config.model_dump(), fingerprint=fingerprint,
        models=[AuditedModel(name=n, role=r, model=resolved[n][0]) for n, r, _ in specs],
        suites=suites, skipped=skipped, summaries=_summaries(results, config),
        deltas=_deltas(results, specs[0][0], config),
        outcomes={n: {check: dict(sorted(c.items())) for check, c in sorted(r.outcomes.items())}
                  for n, r in results.items()},
        selfcheck={**checker.identity, **({"nli": nli.identity["method"]} if nli else {})} if checker else None,
        flagged_samples={n: sum(row.flags.get("hallucination", False) for row in r.rows) for n, r in results.items()},
        files={"samples": "samples.jsonl"})
    with atomic_dir(out_dir) as tmp:
        atomic_write_jsonl(tmp / "samples.jsonl", [row.model_dump() for row in rows])
        (tmp / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
    progress.clear()
    return record
