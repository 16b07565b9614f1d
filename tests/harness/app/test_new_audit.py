"""Adding an audit is one module plus its registration: a toy audit defined only in the tests reaches the
audit record, the gate's evidence, the review queue and the report, through the same calls `nift-gate run`
makes, with no other module edited."""

import shutil

from gate_records import bench_record, save
from toy_audit import toy_audit  # noqa: F401  (fixture: registers the toy audit for one test)

from harness.app import stages
from harness.app.config import PipelineConfig
from harness.core.models import resolve_model
from harness.core.store import RunStore
from harness.review.enqueue import enqueue
from harness.review.store import open_store

POLICY = """\
schema_version: 1
description: a policy over a metric only the toy audit declares
rules:
  - name: if-non-inferior
    type: non_inferiority
    metric: bench.nift_if.prompt_level_strict_acc
    margin: 0.10
  - name: greets-back
    type: floor
    metric: toy.greeting_rate
    min: 0.75
"""


def test_a_registered_audit_reaches_record_evidence_queue_and_report(toy_audit, tiny_model, tmp_path):  # noqa: F811
    models = tmp_path / "models"
    for name in ("cand", "base-a"):  # the folder name is the model's name in every table
        shutil.copytree(tiny_model, models / name)
    (tmp_path / "policy.yaml").write_text(POLICY)
    config = PipelineConfig.model_validate({
        "run": "r1",
        "bench": {"candidate": str(models / "cand"), "baselines": [{"name": "base-a", "model": str(models / "base-a")}]},
        "audit": {"toxicity": {"enabled": False}, "hallucination": {"enabled": False},
                  "bias": {"enabled": False}},
        "gate": {"policy": str(tmp_path / "policy.yaml"), "registry": str(tmp_path / "registry")},
        # which audit flags send an output to a human is the user's choice: config, not code
        "review": {"flagged": ["toxic", "hallucination", "rude"], "random_per_task": 0, "worst_k": 0,
                   "required_reviewers": 1,
                   "reviewers": [{"name": "ana", "role": "reviewer", "token": "t"}]}})
    store = RunStore("r1", tmp_path / "runs")
    save(store, bench_record("r1", means={"cand": 0.40, "base-a": 0.38}, deltas={"base-a": (0.02, -0.04, 0.08)},
                             candidate=resolve_model(str(models / "cand"))), "bench/cand")

    # 1. the audit record: run by the pipeline's audit call, its metric declared with its direction
    records = stages.run_audits(config, store)
    assert set(records) == {"toy"} and records["toy"].rates == {"cand": 0.5, "base-a": 0.5}

    # 2. the gate's evidence: a policy may name the toy metric, and the decision rests on the toy record
    decision = stages.decide(config, store)
    toy_rule = next(o for o in decision.outcomes if o.rule == "greets-back")
    assert toy_rule.status == "fail" and toy_rule.value == 0.5 and toy_rule.higher_is_better is True
    assert decision.decision == "REJECT"
    assert "toy_audit" in {ref.kind for ref in decision.evidence}

    # 3. the review queue: the toy audit's flagged outputs are queued for a human
    queued = enqueue(config.review, store)
    review = open_store(config.review, store)
    try:
        shown = [review.item(entry.item_id) for entry in review.queue("ana") if entry.source == "audit/toy"]
    finally:
        review.close()
    assert queued.added.get("flagged") and str(store.stage_dir("audit", "toy")) in queued.sources
    assert [(item.output, item.flags) for item in shown] == [("go away", {"rude": True})]

    # 4. the report: the toy audit is shown with its declared metric
    html = stages.write_report(config, store).read_text(encoding="utf-8")
    assert "toy.greeting_rate" in html and "greets-back" in html
