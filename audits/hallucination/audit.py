"""`nift-gate audit` (hallucination): the candidate and each baseline on four checks, compared item by item.

- closed book: the project's factual and unanswerable questions; hallucination and abstention rates;
- HaluEval QA: answer from given knowledge; does the answer hold the right or the hallucinated answer? Plus
  the discrimination variant: the model judges whether a given answer is hallucinated (both answers of each
  record; the record, not the judgement, is the item of its intervals and paired comparisons);
- SelfCheckGPT n-gram: N sampled answers to each factual question score the greedy answer's sentences;
- TruthfulQA MC1/MC2: bench's lm-eval tasks, run (or taken from bench's cache) for every model.

With a judge (``audit.hallucination.grading.judge``), the closed-book factual answers and the HaluEval QA answers
are also graded by it, SimpleQA-style (correct / incorrect / not attempted against the gold answers), and the
record reports the lexical matcher's agreement with it on the same answers.

Output under ``<run>/audit/hallucination/``: record.json (HallucinationAuditRecord) and samples.jsonl (one
``harness.core.samples.AuditSample`` per output, with flags hallucination / refusal / empty for the review queue).
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from audits.config import AuditConfig, HallucinationAuditConfig
from audits.hallucination.grading import (
    GraderAgreement,
    agreement,
    lexical_grade,
    parse_grade,
)
from audits.hallucination.matching import (
    halueval_outcome,
    holds_any,
    is_refusal,
    parse_judgement,
)
from audits.hallucination.metrics import (
    HALLUCINATION_METRICS,
    HALUEVAL_DISCRIMINATION_ACCURACY,
    HALUEVAL_QA_CORRECT_RATE,
    HALUEVAL_QA_HALLUCINATION_RATE,
    SELFCHECK_AVG_NEG_LOGPROB,
    SELFCHECK_MAX_NEG_LOGPROB,
    SELFCHECK_NLI_CONTRADICTION,
    TRUTHFULQA_TASKS,
    closed_book_item,
    judged_item,
)
from audits.hallucination.suites import (
    ClosedBookQuestion,
    HaluEvalItem,
    load_closed_book,
    load_halueval,
)
from audits.registry import AuditedModel, AuditRecord, register_audit
from audits.toxicity.metrics import Estimate
from harness.core.config import ModelRef
from harness.core.errors import ConfigError
from harness.core.generation_cache import GenerationUsage
from harness.core.lmeval import (
    LmEvalSettings,
    evaluate_model,
    load_samples,
    prepare_tasks,
    task_manager,
)
from harness.core.log import get_logger
from harness.core.metrics import (
    MetricDelta,
    MetricSpec,
    MetricValue,
    delta_from_comparison,
)
from harness.core.models import EMBEDDED_MODELS, ResolvedModel, model_name
from harness.core.runner import StageRun, stage_entry
from harness.core.samples import AuditSample
from harness.core.store import RunStore
from harness.train.record import resolve_base

NAME = "hallucination"
#: Bump when a shipped question set, a prompt, the answer matching or the scoring change (2: proportion and
#: Newcombe CIs; HaluEval discrimination per record; 3: matching of place adjectives, negation, measurements and
#: "not known"; judge-graded correctness; 4: BCa intervals, none below 10 items).
VERSION = "4"
log = get_logger(f"audit.{NAME}")
#: The packages that split and score SelfCheck's sentences, by the names they are installed under: their versions
#: are in its identity (:func:`_selfcheck_identity`), so in the fingerprint.
SELFCHECK_LIBRARIES = ("selfcheckgpt", "spacy", "en_core_web_sm")
_SPECS = {spec.name: spec for spec in HALLUCINATION_METRICS}
#: Metrics whose item is not one question, and what it is instead (stated in every record that has them).
ANALYSIS_UNITS = {HALUEVAL_DISCRIMINATION_ACCURACY.name: "HaluEval record: the mean of its two judgements (its right "
                  "and its hallucinated answer); CIs and paired comparisons resample records"}


class SuiteInfo(BaseModel):
    source: str
    sha256: str
    items: int


class HallucinationAuditRecord(AuditRecord):
    kind: Literal["hallucination_audit"] = "hallucination_audit"
    suites: dict[str, SuiteInfo] = Field(description="Checks that ran, with their data.")
    skipped: dict[str, str] = Field(default_factory=dict, description="Checks that did not run, and why.")
    summaries: dict[str, dict[str, Estimate]] = Field(description="model -> declared metric -> value, CI, n and "
                                                                  "the CI's method.")
    analysis_units: dict[str, str] = Field(
        default_factory=dict, description="Metric -> what one of its n items is, where it is not one question: "
                                          "HaluEval discrimination's item is a record (the mean of its two "
                                          "judgements), and its intervals and paired comparisons resample records.")
    outcomes: dict[str, dict[str, dict[str, int]]] = Field(
        description="model -> check -> outcome counts (correct, hallucinated, refused, empty, unparseable, ...).")
    selfcheck: dict[str, str] | None = Field(None, description="What scored self-consistency: method, sentence "
                                                               "splitter, library versions, NLI scorer (all in the "
                                                               "fingerprint).")
    grader: dict[str, str] | None = Field(None, description="The judge that graded correctness (model, backend, "
                                                            "note); None: lexical matching only.")
    grader_agreement: dict[str, dict[str, GraderAgreement]] = Field(
        default_factory=dict, description="model -> check (closed_book, halueval_qa) -> agreement of the lexical "
                                          "matcher with the judge on the answers both graded (n, share, Cohen's "
                                          "kappa, confusion). Reviewers' agreement is in the review record.")
    grader_usage: GenerationUsage | None = Field(None, description="The grading judge's calls, cache hits (answers "
                                                                   "graded before, from the runs home's generation "
                                                                   "cache), tokens and estimated cost.")

    METRICS: ClassVar[tuple[MetricSpec, ...]] = HALLUCINATION_METRICS

    def compute_values(self) -> list[MetricValue]:
        return [MetricValue(metric=metric, model=model, **estimate.model_dump())
                for model, metrics in self.summaries.items() for metric, estimate in metrics.items()]


class _ModelResults:
    """Per-item values of every metric for one model, and its sample rows."""

    def __init__(self, name: str, role: str):
        self.name, self.role = name, role
        self.values: dict[str, dict[str, float]] = {}
        self.rows: list[AuditSample] = []
        self.outcomes: dict[str, Counter] = {}

    def add(self, metric: str, item: str, value: float) -> None:
        if metric not in _SPECS:  # every number the record reports has a declared direction
            raise KeyError(f"{metric} is not in HALLUCINATION_METRICS")
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
    from tqdm.auto import tqdm

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
            results.add(HALUEVAL_QA_HALLUCINATION_RATE.name, item.id, outcome == "hallucinated")
            results.add(HALUEVAL_QA_CORRECT_RATE.name, item.id, outcome == "correct")
            results.rows.append(AuditSample(
                audit=NAME, suite="halueval_qa", model=results.name, role=results.role, item_id=item.id,
                prompt=request.prompt, output=text, reference=item.right_answer,
                scores={"correct": float(outcome == "correct")},
                flags={"hallucination": outcome == "hallucinated", "refusal": is_refusal(text),
                       "empty": outcome == "empty"}))
    if he.discrimination:
        judged: dict[str, list[bool]] = {}  # record id -> whether each of its two judgements was right
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
            judged.setdefault(item.id, []).append(right)
            results.rows.append(AuditSample(
                audit=NAME, suite="halueval_discrimination", model=results.name, role=results.role,
                item_id=request.key, prompt=request.prompt, output=generation.text,
                reference="Yes" if truth else "No", scores={"correct": float(right)},
                flags={"unparseable": verdict is None}))
        # A record's two judgements share its knowledge and question, so they are not independent items: the
        # metric's item is the record (the mean of its judgements), and every CI and paired test resamples records.
        for record_id, rights in judged.items():
            results.add(HALUEVAL_DISCRIMINATION_ACCURACY.name, record_id, sum(rights) / len(rights))


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
        results.add(SELFCHECK_AVG_NEG_LOGPROB.name, q.id, score.avg_neg_logprob)
        results.add(SELFCHECK_MAX_NEG_LOGPROB.name, q.id, score.avg_max_neg_logprob)
        scores = {"avg_neg_logprob": round(score.avg_neg_logprob, 6),
                  "max_neg_logprob": round(score.avg_max_neg_logprob, 6),
                  **{f"sentence_{i}_avg_neg_logprob": round(v, 6)
                     for i, v in enumerate(score.sentence_avg_neg_logprob)}}
        flags = {}
        if nli is not None:
            contradiction = nli.score(answers[q.id], samples)
            results.add(SELFCHECK_NLI_CONTRADICTION.name, q.id, contradiction)
            scores["nli_contradiction"] = round(contradiction, 6)
            flags["hallucination"] = contradiction >= sc.nli_threshold
        results.rows.append(AuditSample(
            audit=NAME, suite="selfcheck", model=results.name, role=results.role, item_id=q.id,
            prompt=requests[index * sc.samples].prompt, output=answers[q.id],
            reference=" || ".join(samples), scores=scores, flags=flags))


def _truthfulqa(results: dict[str, _ModelResults], resolved: dict[str, ResolvedModel], truthfulqa: _TruthfulQA,
                store: RunStore, force: bool, lms: dict[str, Any]) -> int:
    """The TruthfulQA tasks through lm-eval (results shared with bench's cache when the settings match);
    per-item accuracy kept for paired comparisons. Returns the number of questions."""
    settings = truthfulqa.settings
    manager = functools.cache(lambda: task_manager(truthfulqa.include_paths, settings.tasks))
    for name, model_results in results.items():
        _, folder, _ = evaluate_model(name, resolved[name], settings, manager, truthfulqa.refs, store.home,
                                      store.run_id, force=force, lm=lms.get(name))
        for task, spec in TRUTHFULQA_TASKS.items():
            for row in load_samples(folder, task):
                model_results.add(spec.name, row["item"], row["scores"]["acc"])
            model_results.count(task.removeprefix("nift_"), "items")
    first = next(iter(results.values()))
    return len(first.values.get(TRUTHFULQA_TASKS["nift_truthfulqa_mc1"].name, {}))


def _summaries(results: dict[str, _ModelResults], config: AuditConfig) -> dict[str, dict[str, Estimate]]:
    """Each model's mean of every metric over its items, with a CI by what the items are: a proportion
    interval over 0/1 items (rates), a BCa bootstrap over continuous ones (none below 10 items or for values that
    do not vary)."""
    from harness.core.stats import (
        mean_interval,  # scipy: seconds to import, paid only when summarising
    )

    out = {}
    for name, model_results in results.items():
        out[name] = {}
        for metric, items in sorted(model_results.values.items()):
            values = list(items.values())
            ci = mean_interval(values, iterations=config.bootstrap_iterations, confidence=config.confidence,
                               seed=config.seed, proportion_method=config.proportion_interval)
            out[name][metric] = Estimate(value=sum(values) / len(values), ci_low=ci.low, ci_high=ci.high,
                                         n=len(values), interval=ci.method)
    return out


def _deltas(results: dict[str, _ModelResults], candidate: str, config: AuditConfig) -> list[MetricDelta]:
    """Candidate minus each baseline on the items both answered, oriented by each metric's declared spec; a
    metric the baseline has no item of (e.g. every SelfCheck answer empty) has no delta."""
    from harness.core.stats import paired_comparison

    deltas = []
    for baseline, base in results.items():
        if baseline == candidate:
            continue
        for metric, items in sorted(results[candidate].values.items()):
            family, _, short = metric.rpartition(".")
            comparison = paired_comparison(items, base.values.get(metric, {}), task=family, metric=short,
                                           baseline_name=baseline, higher_is_better=_SPECS[metric].higher_is_better,
                                           iterations=config.bootstrap_iterations, confidence=config.confidence,
                                           seed=config.seed)
            if comparison is None:
                log.warning(f"{metric}: no item scored for both {candidate} and {baseline}; no delta")
                continue
            deltas.append(delta_from_comparison(metric, candidate, comparison))
    return deltas


def _grading_items(results: _ModelResults, suites: _Suites) -> list[tuple[AuditSample, str, list[str]]]:
    """(answer row, question, gold answers) of every answer the judge grades: closed-book factual, HaluEval QA."""
    questions = {q.id: q for q in suites.closed_book or []}
    halueval = {i.id: i for i in suites.halueval or []}
    items = []
    for row in results.rows:
        if row.suite == "closed_book" and row.group == "factual":
            items.append((row, questions[row.item_id].question, questions[row.item_id].answers))
        elif row.suite == "halueval_qa":
            items.append((row, halueval[row.item_id].question, [halueval[row.item_id].right_answer]))
    return items


def _grade_correctness(results: dict[str, _ModelResults], suites: _Suites, hall: HallucinationAuditConfig,
                       judge, seed: int) -> dict[str, dict[str, GraderAgreement]]:
    """The judge grades every model's closed-book and HaluEval QA answers; each grade feeds the judged metrics
    and its answer row, an unparseable reply or a failed request only the outcome counts. Returns the lexical
    matcher's agreement with the judge, per model and check."""
    from harness.core.generation import GenerationRequest, Sampling

    grading = hall.grading
    out = {}
    for name, model_results in results.items():
        items = _grading_items(model_results, suites)
        requests = [GenerationRequest(key=f"{row.suite}:{row.item_id}", max_new_tokens=grading.max_new_tokens,
                                      sampling=Sampling(temperature=0.0),
                                      prompt=grading.instruction.format(question=question, gold=" | ".join(gold),
                                                                        answer=row.output))
                    for row, question, gold in items]
        pairs: dict[str, list] = {}
        for (row, _, _), generation in zip(items, _generate(judge, requests, seed, f"{name} grading")):
            grade = None if generation.error else parse_grade(generation.text)
            model_results.count(f"{row.suite}.judged", grade or ("judge_error" if generation.error else
                                                                 "unparseable"))
            row.flags["judge_unparseable"] = grade is None
            if grade is None:
                continue
            for metric, value in judged_item(grade).items():
                model_results.add(f"hallucination.{row.suite}.{metric}", row.item_id, value)
            row.scores["judged_correct"] = float(grade == "correct")
            row.flags["judged_incorrect"] = grade == "incorrect"
            declined = row.flags.get("refusal", False) or row.flags.get("empty", False)
            pairs.setdefault(row.suite, []).append((lexical_grade(row.scores["correct"] == 1.0, declined), grade))
        out[name] = {check: agreement(pairs.get(check, [])) for check in sorted({r.suite for r, _, _ in items})}
    return out


def _grader_info(hall: HallucinationAuditConfig) -> dict[str, str]:
    judge = hall.grading.judge
    weak = judge.model in EMBEDDED_MODELS
    return {"model": judge.model, "backend": judge.backend,
            "note": "weak judge: a small embedded model grading answers; its grades only exercise the pipeline"
                    if weak else ""}


# --- the stage ---------------------------------------------------------------------------------------------


@dataclass
class _TruthfulQA:
    """TruthfulQA's lm-eval tasks made concrete for this run."""

    path: str
    sha256: str
    settings: LmEvalSettings
    include_paths: list[str]
    refs: list


@dataclass
class _Suites:
    """The checks that run and their data; ``skipped`` says why the others do not."""

    closed_book: list[ClosedBookQuestion] | None = None
    halueval: list[HaluEvalItem] | None = None
    truthfulqa: _TruthfulQA | None = None
    info: dict[str, SuiteInfo] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def generates(self) -> bool:
        """Whether any check needs the models' own answers (TruthfulQA scores lm-eval's likelihoods)."""
        return self.closed_book is not None or self.halueval is not None


def _suite_file(run: StageRun, spec: str, name: str) -> tuple[Path, str]:
    path = run.file(spec, kind="prompt_set", id=name)
    return path, run.inputs[-1].sha256


def _load_suites(run: StageRun, hall: HallucinationAuditConfig, lm_eval_settings: LmEvalSettings,
                 store: RunStore) -> _Suites:
    """Every question file through the runner (so each is hashed into the fingerprint), then read."""
    suites = _Suites()
    if hall.closed_book.enabled:
        path, sha = _suite_file(run, hall.closed_book.questions, "closed_book")
        _, suites.closed_book = load_closed_book(str(path), hall.closed_book.limit, run.read)
        suites.info["closed_book"] = SuiteInfo(source=str(path), sha256=sha, items=len(suites.closed_book))
    else:
        suites.skipped["closed_book"] = "disabled (audit.hallucination.closed_book.enabled)"
    he = hall.halueval
    if he.path and (he.qa or he.discrimination):
        path, sha = _suite_file(run, he.path, "halueval")
        _, suites.halueval = load_halueval(str(path), he.limit, run.read)
        suites.info["halueval"] = SuiteInfo(source=str(path), sha256=sha, items=len(suites.halueval))
    else:
        suites.skipped["halueval"] = "no audit.hallucination.halueval.path" if not he.path else "disabled"
    if not hall.selfcheck.enabled or suites.closed_book is None:
        suites.skipped["selfcheck"] = "disabled" if not hall.selfcheck.enabled else "needs the closed-book answers"
    tq = hall.truthfulqa
    path = tq.path or lm_eval_settings.truthfulqa_path
    if not tq.enabled:
        suites.skipped["truthfulqa"] = "disabled (audit.hallucination.truthfulqa.enabled)"
    elif path:
        limit = tq.limit if tq.limit is not None else lm_eval_settings.limit  # bench.limit, as bench runs it
        settings = lm_eval_settings.model_copy(update={"tasks": list(TRUTHFULQA_TASKS), "truthfulqa_path": path,
                                                       "limit": limit})
        before = len(run.inputs)  # the TruthfulQA file (and any task folder) become inputs of this run
        include_paths, refs = prepare_tasks(settings, store.stage_dir("audit", "_tasks"), run)
        sha = next(ref.sha256 for ref in run.inputs[before:] if ref.id == f"truthfulqa:{path}")
        suites.truthfulqa = _TruthfulQA(path=path, sha256=sha, settings=settings, include_paths=include_paths,
                                        refs=refs)
    else:
        suites.skipped["truthfulqa"] = "no audit.hallucination.truthfulqa.path or bench.truthfulqa_path"
    if not suites.info and suites.truthfulqa is None:
        raise ConfigError("audit.hallucination: every check is disabled or lacks data; enable closed_book or set "
                          "halueval.path / truthfulqa.path")
    return suites


def _self_checkers(run: StageRun, hall: HallucinationAuditConfig, suites: _Suites) -> tuple[Any, Any]:
    """SelfCheckGPT's n-gram scorer and, with a local NLI model (an input of the run), its NLI scorer."""
    if "selfcheck" in suites.skipped:
        return None, None
    from audits.hallucination.selfcheck import NgramSelfCheck, NliSelfCheck

    checker = NgramSelfCheck(hall.selfcheck.ngram)
    nli = None
    if hall.selfcheck.nli_model:
        nli = NliSelfCheck(hall.selfcheck.nli_model)
        run.model(hall.selfcheck.nli_model, resolve_base)
    return checker, nli


def _selfcheck_identity(checker, nli) -> dict[str, str] | None:
    """What scores self-consistency, as the audit's fingerprint and record name it: the method, the sentence
    splitter (spaCy's ``en_core_web_sm`` where it is installed, else a blank English sentencizer: other sentences,
    other scores), the versions of the :data:`SELFCHECK_LIBRARIES` installed, and the NLI scorer (its model's
    weights are an input of the run). Installing or upgrading any of them makes the audit score again."""
    if checker is None:
        return None
    libraries = ", ".join(f"{name} {version}" for name in SELFCHECK_LIBRARIES
                          if (version := _installed_version(name)) is not None)
    return {**checker.identity, "libraries": libraries, **({"nli": nli.identity["method"]} if nli else {})}


def _installed_version(name: str) -> str | None:
    # not cached: a pipeline installed while this process runs (a notebook, a test) is seen at the next audit
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _answer_all(results: _ModelResults, generator, suites: _Suites, checker, nli, hall: HallucinationAuditConfig,
                seed: int) -> None:
    """One model's answers to every generating check."""
    answers = {}
    if suites.closed_book is not None:
        answers = _closed_book(results, generator, suites.closed_book, hall, seed)
    if suites.halueval is not None:
        _halueval(results, generator, suites.halueval, hall, seed)
    if checker is not None:
        _selfcheck(results, generator, checker, nli, suites.closed_book, answers, hall, seed)


def _generate_per_model(run: StageRun, specs: list[tuple[str, str, str]], resolved: dict[str, ResolvedModel],
                        suites: _Suites, checker, nli, config: AuditConfig,
                        generators: dict[str, Any]) -> dict[str, _ModelResults]:
    """Every model answers in turn (one loaded at a time); a finished model's results are kept, so a crashed
    audit resumes at the next model."""
    from harness.core.generation import GeneratorConfig, make_generator

    hall = config.hallucination
    results = {name: _ModelResults(name, role) for name, role, _ in specs}
    if not suites.generates:
        return results
    progress = run.progress
    for name, _, _ in specs:
        if (saved := progress.load(name)) is not None:
            log.info(f"{name}: answers from the interrupted run ({progress.folder})")
            results[name].restore(saved)
            continue
        generator = generators.get(name) or make_generator(GeneratorConfig(
            model=resolved[name].path, temperature=0.0, repetition_penalty=1.0, batch_size=hall.batch_size,
            threads=config.threads))
        log.info(name)
        _answer_all(results[name], generator, suites, checker, nli, hall, config.seed)
        del generator  # free the model before the next one loads
        progress.save(name, results[name].dump())
    return results


@register_audit(NAME, version=VERSION, record_type=HallucinationAuditRecord, config_type=HallucinationAuditConfig)
@stage_entry
def run_hallucination_audit(config: AuditConfig, candidate: str, baselines: list[ModelRef], store: RunStore,
                            force: bool = False, lm_eval_settings: LmEvalSettings | None = None,
                            generators: dict[str, Any] | None = None,
                            lms: dict[str, Any] | None = None, judge: Any = None) -> HallucinationAuditRecord:
    """The candidate and each baseline on closed-book QA, HaluEval, SelfCheckGPT and TruthfulQA, compared
    item by item.

    ``lm_eval_settings`` is how TruthfulQA runs through lm-eval (bench's settings, so bench's cached results
    are reused; its ``truthfulqa_path`` is the default TruthfulQA file). ``generators`` (name -> object with
    ``generate(requests, seed)``), ``lms`` (name -> lm-eval LM) and ``judge`` (the correctness grader, used
    when ``grading.judge`` is set) replace real models in tests.
    """
    hall = config.hallucination
    run = StageRun(store, "audit", NAME, HallucinationAuditRecord, force=force)
    specs = [(model_name(candidate), "candidate", candidate)] + [(b.name, "baseline", b.model) for b in baselines]
    resolved = {name: run.model(spec, resolve_base) for name, _, spec in specs}
    lm_eval_settings = lm_eval_settings or LmEvalSettings()
    suites = _load_suites(run, hall, lm_eval_settings, store)
    checker, nli = _self_checkers(run, hall, suites)
    selfcheck = _selfcheck_identity(checker, nli)
    if hall.grading.judge is not None and judge is None:  # the grader's weights decide grades: an input
        from harness.core.generation import generator_input

        run.add(generator_input(hall.grading.judge, kind="judge_model"))
    settings = {"version": VERSION, **config.common(), NAME: hall.model_dump(), "candidate": candidate,
                "baselines": [b.model_dump() for b in baselines],
                "lm_eval": suites.truthfulqa.settings.model_dump() if suites.truthfulqa else None,
                "selfcheck": selfcheck}
    if (done := run.cached(settings)) is not None:
        return done
    results = _generate_per_model(run, specs, resolved, suites, checker, nli, config, dict(generators or {}))
    grader_agreement, grader_usage = {}, None
    if hall.grading.judge is not None and suites.generates:
        from harness.core.generation_cache import cached_generator

        # behind the runs home's generation cache: an answer graded once is never graded again
        judge = judge or cached_generator(hall.grading.judge, store.home)
        grader_agreement = _grade_correctness(results, suites, hall, judge, config.seed)
        grader_usage = getattr(judge, "usage", None)  # a judge injected by a test may not count
    if suites.truthfulqa is not None:
        tq = suites.truthfulqa
        questions = _truthfulqa(results, resolved, tq, store, force, lms or {})
        suites.info["truthfulqa"] = SuiteInfo(source=str(tq.path), sha256=tq.sha256, items=questions)
    record = HallucinationAuditRecord(
        **run.header(), version=VERSION,
        models=[AuditedModel(name=n, role=r, model=resolved[n]) for n, r, _ in specs],
        suites=suites.info, skipped=suites.skipped, summaries=_summaries(results, config),
        analysis_units={metric: unit for metric, unit in ANALYSIS_UNITS.items()
                        if any(metric in r.values for r in results.values())},
        deltas=_deltas(results, specs[0][0], config),
        outcomes={n: {check: dict(sorted(c.items())) for check, c in sorted(r.outcomes.items())}
                  for n, r in results.items()},
        selfcheck=selfcheck,
        grader=_grader_info(hall) if hall.grading.judge is not None else None, grader_agreement=grader_agreement,
        grader_usage=grader_usage,
        flagged_samples={n: sum(row.flags.get("hallucination", False) for row in r.rows) for n, r in results.items()},
        files={"samples": "samples.jsonl"})
    return run.commit(record, {"samples.jsonl": (row.model_dump() for r in results.values() for row in r.rows)})
