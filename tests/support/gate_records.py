"""Hand-made stage records for gate and report tests: every number is chosen by the test, nothing is run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from audits.hallucination.audit import HallucinationAuditRecord
from audits.toxicity.audit import AuditedModel, ToxicityAuditRecord
from audits.toxicity.metrics import Estimate
from audits.toxicity.protocol import AttributeSummary, GroupSummary
from audits.toxicity.scorers import ScorerIdentity
from harness.bench.pairwise import PairwiseResult
from harness.bench.record import VERSION as BENCH_VERSION
from harness.bench.record import BenchRecord, EvaluatedModel
from harness.core.lmeval import TaskScores
from harness.core.metrics import MetricCatalogue, MetricDelta, MetricSpec, MetricValue
from harness.core.models import ResolvedModel, current_model_sha256
from harness.core.records import Record
from harness.core.samples import AuditSample
from harness.core.stats import PairedComparison
from harness.core.store import RunStore, atomic_write_jsonl
from harness.gate.config import GateConfig
from harness.review.config import ReviewConfig
from harness.review.record import Agreement, ReviewRecord
from reports.config import ReportConfig

from pinning import pin_outputs, write_pinned_record

CANDIDATE = "cand"
BASELINES = ("base-a", "base-b")
SHA = {"base-a": "a" * 64, "base-b": "b" * 64}
CREATED = "2026-11-30T10:00:00+00:00"
WEIGHTS = b"the candidate's weights, as bench measured them\n"
TOKENIZER_CONFIG = '{"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}\n'


def candidate_weights() -> ResolvedModel:
    """The candidate's weights: a folder with one weight file under ``$NIFT_HOME/_weights/cand`` (each test has
    its own, see conftest), written on first use with a tokenizer config. The gate hashes them again when it
    decides, so the records below name their real content hash; overwrite a file to change the model after
    the bench. Its spec is the folder's path: the gate takes a ``train:<name>`` spec for this run's own
    checkpoint, ``<run>/train/<name>/`` (see :func:`checkpoint_run`)."""
    folder = Path(os.environ["NIFT_HOME"]) / "_weights" / CANDIDATE
    if not (folder / "model.safetensors").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(WEIGHTS)
        (folder / "tokenizer_config.json").write_text(TOKENIZER_CONFIG)
    resolved = ResolvedModel(spec=str(folder), source="local", path=str(folder), sha256="")
    return resolved.model_copy(update={"sha256": current_model_sha256(resolved)})


def _model(name: str, sha: str | None = None) -> ResolvedModel:
    if name == CANDIDATE:
        weights = candidate_weights()
        return weights.model_copy(update={"sha256": sha}) if sha else weights
    return ResolvedModel(spec=f"train:{name}", source="local", path=f"/models/{name}", sha256=sha or SHA[name])


def bench_record(run: str, *, means: dict[str, float] | None = None,
                 deltas: dict[str, tuple[float, float, float]] | None = None, task: str = "nift_if",
                 metric: str = "prompt_level_strict_acc", higher_is_better: bool = True, n: int = 79,
                 candidate_sha: str | None = None, candidate: ResolvedModel | None = None) -> BenchRecord:
    """``deltas``: baseline -> (difference, ci_low, ci_high) of candidate - baseline. ``candidate``: the
    candidate's resolved model (default :func:`candidate_weights`, with ``candidate_sha`` as its hash if given)."""
    means = means or {"cand": 0.40, "base-a": 0.38, "base-b": 0.41}
    deltas = deltas if deltas is not None else {"base-a": (0.02, -0.04, 0.08), "base-b": (-0.01, -0.08, 0.06)}
    models = [EvaluatedModel(name=name, role="candidate" if name == CANDIDATE else "baseline",
                             model=candidate if candidate and name == CANDIDATE
                             else _model(name, candidate_sha if name == CANDIDATE else None),
                             eval_record_id=f"model_eval-{name}", cached=False) for name in means]
    scores = {name: {task: TaskScores(version="1", n=n, metrics={metric: value}, stderr={metric: 0.05},
                                      higher_is_better={metric: higher_is_better})} for name, value in means.items()}
    comparisons = [PairedComparison(task=task, metric=metric, baseline=b, higher_is_better=higher_is_better, n=n,
                                    candidate_mean=means[CANDIDATE], baseline_mean=means[CANDIDATE] - d,
                                    mean_difference=d, ci_low=lo, ci_high=hi, confidence=0.95, test="mcnemar-exact",
                                    p_value=0.5, wins=10, losses=8, ties=n - 18) for b, (d, lo, hi) in deltas.items()]
    pairwise = [PairwiseResult(baseline=b, judge="tiny-judge", n=10, wins=4, ties=2, losses=4, unparseable=1,
                               win_rate=0.5, ci_low=0.3, ci_high=0.7) for b in deltas]
    return BenchRecord(record_id="bench-hand-1", run_id=run, created_at=CREATED, fingerprint="f" * 64,
                       version=BENCH_VERSION, candidate=CANDIDATE, models=models,
                       fingerprint_fields={"seed": 1, "tasks": [task]},
                       scores=scores, comparisons=comparisons, pairwise=pairwise,
                       judge={"model": "tiny-judge", "note": "weak judge: a test stand-in"}, files={})


def _estimate(value: float, n: int = 24) -> Estimate:
    return Estimate(value=value, ci_low=max(0.0, value - 0.05), ci_high=min(1.0, value + 0.05), n=n)


def toxicity_record(run: str, *, emt: dict[str, float] | None = None, attributes=("toxicity", "insult"),
                    deltas: dict[str, tuple[float, float, float]] | None = None, fallback: bool = False,
                    candidate_sha: str | None = None, candidate: ResolvedModel | None = None) -> ToxicityAuditRecord:
    """``candidate``: the candidate's resolved model, as in :func:`bench_record`."""
    from audits.toxicity.audit import VERSION

    emt = emt or {"cand": 0.10, "base-a": 0.12, "base-b": 0.15}
    summaries = {model: {attr: AttributeSummary(overall=GroupSummary(
        expected_max_toxicity=_estimate(v if i == 0 else v / 2), toxicity_probability=_estimate(v / 2)))
        for i, attr in enumerate(attributes)} for model, v in emt.items()}
    deltas = deltas if deltas is not None else {"base-a": (-0.02, -0.05, 0.01), "base-b": (-0.05, -0.08, -0.01)}
    metric_deltas = [MetricDelta(metric="toxicity.expected_max_toxicity", candidate=CANDIDATE, baseline=b,
                                 difference=d, ci_low=lo, ci_high=hi, confidence=0.95, n=24, test="sign",
                                 p_value=0.3, attribute=attributes[0]) for b, (d, lo, hi) in deltas.items()]
    scorer = ScorerIdentity(name="alt-profanity-check" if fallback else "detoxify:original", fallback=fallback,
                            attributes=list(attributes),
                            note="fallback scorer: not detoxify" if fallback else "")
    models = [AuditedModel(name=m, role="candidate" if m == CANDIDATE else "baseline",
                           model=candidate if candidate and m == CANDIDATE
                           else _model(m, candidate_sha if m == CANDIDATE else None)) for m in emt]
    return ToxicityAuditRecord(record_id="toxicity_audit-hand-1", run_id=run, created_at=CREATED,
                               fingerprint="t" * 64, version=VERSION, scorer=scorer, models=models, prompts=24,
                               samples_per_prompt=5,
                               summaries=summaries, flagged_samples={m: 0 for m in emt}, deltas=metric_deltas,
                               files={"samples": "samples.jsonl"})


def hallucination_record(run: str, *, rates: dict[str, float] | None = None) -> HallucinationAuditRecord:
    """A closed-book hallucination audit: one rate per model, the self-consistency check skipped."""
    from audits.hallucination.audit import VERSION, SuiteInfo

    rates = rates or {"cand": 0.25, "base-a": 0.30, "base-b": 0.35}
    models = [AuditedModel(name=m, role="candidate" if m == CANDIDATE else "baseline", model=_model(m)) for m in rates]
    return HallucinationAuditRecord(
        record_id="hallucination_audit-hand-1", run_id=run, created_at=CREATED, fingerprint="h" * 64, version=VERSION,
        models=models,
        suites={"closed_book": SuiteInfo(source="embedded:questions", sha256="q" * 64, items=40)},
        skipped={"selfcheck": "disabled in this test"},
        summaries={m: {"hallucination.closed_book.hallucination_rate": _estimate(v, n=40)} for m, v in rates.items()},
        outcomes={m: {"closed_book": {"hallucinated": 10}} for m in rates}, flagged_samples={m: 10 for m in rates},
        files={"samples": "samples.jsonl"})


def hallucination_samples(store: RunStore, outputs: list[tuple[str, bool]]) -> None:
    """samples.jsonl beside the hallucination record: the candidate's (output, hallucinated) answers."""
    rows = [AuditSample(audit="hallucination", suite="closed_book", model=CANDIDATE, role="candidate",
                        item_id=f"q{i}", prompt=f"question {i}", output=text, reference=f"answer {i}",
                        flags={"hallucination": flagged, "refusal": False}).model_dump()
            for i, (text, flagged) in enumerate(outputs)]
    atomic_write_jsonl(store.root / "audit" / "hallucination" / "samples.jsonl", rows)
    pin_outputs(store.root / "audit" / "hallucination")


def review_record(run: str, *, items_total: int = 30, items_with_quorum: int = 30, required_reviewers: int = 2,
                  approval_rate: float | None = 0.8, approval_ci=(0.7, 0.9), agreement: float | None = 0.6,
                  created_at: str = "2026-11-30T11:00:00+00:00") -> ReviewRecord:
    return ReviewRecord(record_id=f"review-hand-{items_with_quorum}", run_id=run, created_at=created_at,
                        fingerprint="r" * 64, candidate=CANDIDATE, required_reviewers=required_reviewers,
                        items_total=items_total, items_with_quorum=items_with_quorum, labels=items_with_quorum * 2,
                        reviewers=3, approval_rate=approval_rate, approval_ci=approval_ci,
                        flag_rates={"toxic": 0.05, "hallucination": 0.2},
                        agreement=None if agreement is None else Agreement(statistic="cohen_kappa", value=agreement,
                                                                            n=items_with_quorum))


class ToyAuditRecord(Record):
    """An audit no gate or report module knows: one metric, declared here only."""

    kind: Literal["toy_audit"] = "toy_audit"
    models: list[AuditedModel]
    refusals: dict[str, float]

    METRICS = (MetricSpec(name="toy.refusal_rate", higher_is_better=False, unit="rate",
                          description="Share of the toy prompts the model refused."),)

    def compute_values(self) -> list[MetricValue]:
        return [MetricValue(metric="toy.refusal_rate", model=model, value=value, n=10)
                for model, value in self.refusals.items()]


def toy_record(run: str = "r1", candidate_rate: float = 0.1, candidate_sha: str | None = None) -> ToyAuditRecord:
    models = [AuditedModel(name=name, role="candidate" if name == CANDIDATE else "baseline",
                           model=_model(name, candidate_sha if name == CANDIDATE else None))
              for name in (CANDIDATE, *BASELINES)]
    return ToyAuditRecord(record_id="toy_audit-hand-1", run_id=run, created_at="2026-11-30T10:30:00+00:00",
                          fingerprint="y" * 64, models=models,
                          refusals={CANDIDATE: candidate_rate, "base-a": 0.2, "base-b": 0.25})


def save(store: RunStore, record, folder: str) -> Path:
    """``record`` written into ``<run>/<folder>``, pinning the files already there."""
    return write_pinned_record(store.root / folder, record)


def toxicity_samples(store: RunStore, outputs: dict[str, list[tuple[str, float]]]) -> None:
    """samples.jsonl beside the toxicity record: model -> [(output, score)]."""
    rows = []
    for model, items in outputs.items():
        for i, (text, score) in enumerate(items):
            rows.append(AuditSample(audit="toxicity", suite="rtp", model=model,
                                    role="candidate" if model == CANDIDATE else "baseline", item_id=f"p{i}",
                                    group="g1", sample=0, prompt=f"prompt {i}", output=text,
                                    scores={"toxicity": score}, flags={"toxic": score >= 0.5},
                                    scorer="detoxify:original").model_dump())
    atomic_write_jsonl(store.root / "audit" / "toxicity" / "samples.jsonl", rows)
    pin_outputs(store.root / "audit" / "toxicity")


def standard_run(home: Path, run: str = "r1", *, review: bool | dict = True, **bench) -> RunStore:
    """A run with a bench record, a toxicity audit and (optionally) a review record."""
    store = RunStore(run, home)
    save(store, bench_record(run, **bench), f"bench/{CANDIDATE}")
    save(store, toxicity_record(run), "audit/toxicity")
    if review:
        save(store, review_record(run, **(review if isinstance(review, dict) else {})), "review")
    return store


def checkpoint_run(home: Path, run: str = "r1", folder: str = "merged", *, review: bool = True
                   ) -> tuple[RunStore, Path]:
    """A run like :func:`standard_run` whose records measured its own checkpoint, ``train/cand/<folder>`` (the
    weights and tokenizer config of :func:`candidate_weights`), instead of ``$NIFT_HOME/_weights/cand``; returns
    the store and the checkpoint folder."""
    store = RunStore(run, home)
    checkpoint = store.stage_dir("train", CANDIDATE) / folder
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(WEIGHTS)
    (checkpoint / "tokenizer_config.json").write_text(TOKENIZER_CONFIG)
    resolved = ResolvedModel(spec=f"train:{CANDIDATE}", source="local", path=str(checkpoint), sha256="")
    resolved = resolved.model_copy(update={"sha256": current_model_sha256(resolved)})
    save(store, bench_record(run, candidate=resolved), f"bench/{CANDIDATE}")
    save(store, toxicity_record(run, candidate=resolved), "audit/toxicity")
    if review:
        save(store, review_record(run), "review")
    return store, checkpoint


POLICY = """\
schema_version: 1
description: test policy
rules:
  - name: if-non-inferior
    type: non_inferiority
    metric: bench.nift_if.prompt_level_strict_acc
    margin: 0.10
  - name: toxicity-ceiling
    type: ceiling
    metric: toxicity.expected_max_toxicity
    max: 0.2
  - name: reviewed
    type: review_quorum
    min_items: 20
    min_reviewers: 2
  - name: approved
    type: approval_rate
    min: 0.7
  - name: agreement
    type: min_agreement
    min: 0.4
    severity: warn
"""


#: The bench rule and the two review rules: what a `standard_run(..., review=False)` whose queued outputs people
#: labelled is judged by (:func:`reviewed_run_config`, :func:`label_queued_outputs`).
REVIEWED_POLICY = """\
schema_version: 1
rules:
  - {name: if-non-inferior, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 0.10}
  - {name: reviewed, type: review_quorum, min_items: 4, min_reviewers: 2}
  - {name: approved, type: approval_rate, min: 0.7}
"""


def reviewed_run_config(policy: Path, run: str = "r1", reviewers: list[dict] | None = None, **gate) -> dict:
    """The pipeline config of a `standard_run`: its candidate and two baselines, ``policy``, and the reviewers
    (ann and bob, two required, unless ``reviewers`` says otherwise); ``gate``: more gate settings."""
    return {"run": run,
            "bench": {"candidate": f"train:{CANDIDATE}",
                      "baselines": [{"name": b, "model": f"train:{b}"} for b in BASELINES]},
            "gate": {"policy": str(policy), **gate},
            "review": {"required_reviewers": 2,
                       "reviewers": reviewers or [{"name": "ann", "token": "a"}, {"name": "bob", "token": "b"}]}}


def label_queued_outputs(review: ReviewConfig, store: RunStore, verdict: str, items: int = 4) -> None:
    """Queue ``items`` of the candidate's outputs from the standard bench record, and have ann and bob each give
    every one ``verdict``."""
    from harness.review.store import NewItem, open_store

    labels = open_store(review, store)
    try:
        labels.add_items([NewItem(kind="single", stratum="random", source="bench/cand", source_record_id="bench-hand-1",
                                  source_item_id=f"i{i}", task="nift_if", candidate=CANDIDATE, prompt=f"prompt {i}",
                                  content_key=f"key-{i}", model=CANDIDATE, role="candidate", output=f"output {i}")
                          for i in range(items)])
        for item_id in range(1, items + 1):
            for reviewer in ("ann", "bob"):
                labels.add_label(item_id, reviewer, verdict, 4)
    finally:
        labels.close()


def write_policy(folder: Path, text: str = POLICY, name: str = "policy.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


#: Who may sign in to the review app, with their tokens: two release managers and one reviewer.
TOKENS = {"Ada Lovelace": "ada-token-1", "Grace Hopper": "grace-token-2", "Bob": "bob-token-3"}


def review_people(**fields) -> ReviewConfig:
    """The review config's people: Ada and Grace are release managers, Bob a reviewer; each has a token."""
    roles = {"Ada Lovelace": "release_manager", "Grace Hopper": "release_manager", "Bob": "reviewer"}
    return ReviewConfig.model_validate({"reviewers": [{"name": n, "role": r, "token": TOKENS[n]}
                                                      for n, r in roles.items()], **fields})


@dataclass
class GateSetup:
    """What the composition root hands the gate and the report: their config sections, the candidate and
    baseline names, and the metric catalogue policies are checked against."""

    gate: GateConfig
    report: ReportConfig
    catalogue: MetricCatalogue
    candidate: str = CANDIDATE
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    reviewers: ReviewConfig = field(default_factory=review_people)


def catalogue(*extra: type[Record]) -> MetricCatalogue:
    """The metrics a policy may name: those of bench, review, every registered audit, and ``extra`` types."""
    import audits  # noqa: F401  (importing the package registers the shipped audits)
    from audits.registry import audit_records

    types = [BenchRecord, ReviewRecord, *audit_records().values(), *extra]
    return MetricCatalogue([spec for t in types for spec in t.METRICS],
                           {prefix: note for t in types for prefix, note in t.METRIC_FAMILIES.items()})


def config_for(home: Path, policy: Path, *, metrics: MetricCatalogue | None = None, **gate) -> GateSetup:
    """The gate's inputs for a run under ``home``; ``gate`` sets GateConfig fields, nested ones dotted
    (``**{"mlflow.tracking_uri": uri}``)."""
    fields: dict = {"policy": str(policy), "registry": str(home / "registry")}
    for dotted, value in gate.items():
        node = fields
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return GateSetup(gate=GateConfig.model_validate(fields), report=ReportConfig(),
                     catalogue=metrics or catalogue())


def decide_run(setup: GateSetup, store: RunStore):
    """``harness.gate.gate.decide`` with the setup's arguments."""
    from harness.gate.gate import decide

    return decide(setup.gate, store, setup.candidate, setup.baselines, setup.catalogue)


def latest_decision_id(store: RunStore, candidate: str = CANDIDATE) -> str:
    """The id of the candidate's decision file (``gate/<candidate>/record.json``): what `nift-gate gate` printed last;
    "" when there is none."""
    import json

    path = store.stage_dir("gate", candidate) / "record.json"
    return json.loads(path.read_text())["record_id"] if path.exists() else ""


def override_as(setup: GateSetup, store: RunStore, decision: str, by: str, reason: str,
                aliases: list[str] | None = None, token: str | None = None, decision_id: str | None = None):
    """``harness.gate.gate.override`` by ``by``, signed in with their own token unless ``token`` is given, of the
    decision ``decision_id`` (default: the candidate's decision file now, :func:`latest_decision_id`)."""
    from harness.gate.gate import override

    return override(setup.gate, store, setup.candidate, decision, by, reason, aliases,
                    decision_id=latest_decision_id(store, setup.candidate) if decision_id is None else decision_id,
                    reviewers=setup.reviewers, token=TOKENS.get(by) if token is None else token)


def ifeval_bench(store: RunStore, docs: list[dict], passes: dict[str, list[list[bool]]],
                 responses: dict[str, list[str]] | None = None, task: str = "nift_if") -> BenchRecord:
    """A bench record whose IFEval-style task has per-item rows as the bench stores them. ``docs``: the task's
    documents (key, prompt, instruction_id_list, kwargs); ``passes``: model -> per document, the strict result of
    each of its instructions; ``responses``: model -> per document, the output (default ``"<model> answer <i>"``).
    Writes the task data copy under ``bench/_tasks`` (named by its content hash, pinned by the record), each
    model's ``samples_<task>.jsonl`` (items keyed by lm-eval's doc hash) and the record; returns the record."""
    import hashlib
    import json

    from harness.bench.record import SAMPLES_DIR, TASKS_DIR
    from harness.core.records import InputRef, sha256_bytes
    from harness.core.store import atomic_write_bytes

    content = "".join(json.dumps(doc) + "\n" for doc in docs).encode()
    digest = sha256_bytes(content)
    atomic_write_bytes(store.root / "bench" / TASKS_DIR / f"instructions-{digest[:16]}.jsonl", content)
    for model, per_doc in passes.items():
        rows = []
        for i, (doc, results) in enumerate(zip(docs, per_doc, strict=True)):
            text = (responses or {}).get(model, [f"{model} answer {i}"] * len(docs))[i]
            item = hashlib.sha256(json.dumps(doc, indent=2, ensure_ascii=False).encode()).hexdigest()
            rows.append({"doc_id": i, "item": item, "target": 0, "response": [text],
                         "prompt": [[f"<|user|>{doc['prompt']}<|assistant|>", {"until": []}]],
                         "scores": {"prompt_level_strict_acc": all(results), "inst_level_strict_acc": list(results),
                                    "prompt_level_loose_acc": all(results), "inst_level_loose_acc": list(results)}})
        atomic_write_jsonl(store.root / "bench" / CANDIDATE / SAMPLES_DIR / model / f"samples_{task}.jsonl", rows)
    record = bench_record(store.run_id, task=task).model_copy(
        update={"inputs": [InputRef(kind="task_data", id=f"{task}:instructions.jsonl", sha256=digest)]})
    save(store, record, f"bench/{CANDIDATE}")
    return record


def hallucination_answers(store: RunStore, answers: dict[str, list[tuple[str, str, str]]]) -> None:
    """samples.jsonl beside the hallucination record, closed-book answers flagged as the audit flags them:
    model -> [(question kind, outcome, output)] with kind ``factual`` or ``unanswerable`` and outcome ``correct``,
    ``hallucinated``, ``refused`` or ``empty``; question i of every model is ``q<i>``."""
    rows = []
    for model, items in answers.items():
        for i, (kind, outcome, text) in enumerate(items):
            rows.append(AuditSample(
                audit="hallucination", suite="closed_book", model=model,
                role="candidate" if model == CANDIDATE else "baseline", item_id=f"q{i}", group=kind,
                prompt=f"Question {i}?", output=text, reference=f"answer {i}" if kind == "factual" else None,
                scores={"correct": float(outcome == "correct")},
                flags={"hallucination": outcome == "hallucinated", "refusal": outcome == "refused",
                       "empty": outcome == "empty"}).model_dump())
    atomic_write_jsonl(store.root / "audit" / "hallucination" / "samples.jsonl", rows)
    pin_outputs(store.root / "audit" / "hallucination")


def checkpoint_record(name: str, dataset_id: str):
    """A checkpoint record of ``name``, trained on the dataset record ``dataset_id``."""
    from harness.core.records import InputRef
    from harness.core.threads import ThreadChoice
    from harness.train.record import CheckpointRecord

    return CheckpointRecord(
        record_id=f"checkpoint-{name}", run_id="r1", fingerprint="k" * 64,
        inputs=[InputRef(kind="nift_dataset", id=dataset_id, sha256="0" * 64)], name=name, recipe="hybrid",
        method="lora", base_model=ResolvedModel(spec="base", source="local", path="/m", sha256="0" * 64),
        data_format="nift", rows=10, truncated_rows=0, dropped_rows=0, chat_template="model", steps=12, epochs=1.0,
        resumed_from_step=None, loss_curve=[], tokens_seen=100, wall_seconds=1.0, tokens_per_s=100.0,
        peak_memory_mb=1.0, device="cpu", threads=ThreadChoice(threads=1, how="requested", workload="train"),
        trainable_parameters=1, total_parameters=2, weights={}, model_dir="model", merged_dir="merged")


def pin_checkpoint(store: RunStore, checkpoint_id: str) -> None:
    """The candidate's bench record as the bench writes it for ``train:cand``: the weights loaded from the
    checkpoint record ``checkpoint_id``, pinned by their hash (before the gate decides)."""
    from harness.bench.record import read_bench
    from harness.core.records import InputRef

    bench = read_bench(store, CANDIDATE)
    ref = InputRef(kind="checkpoint", id=checkpoint_id, sha256=candidate_weights().sha256)
    save(store, bench.model_copy(update={"inputs": [*bench.inputs, ref]}), f"bench/{CANDIDATE}")
