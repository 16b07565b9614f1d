"""`nift-gate run` end to end on the embedded default (slow), at the smallest sizes that exercise every stage:
the gate waits for review, then decides from the labels added through the store API."""

import json

import pytest
import yaml

from harness.app.cli import VerdictExit, main
from harness.core.store import RunStore
from harness.gate.gate import latest_decision
from harness.review.store import ReviewStore

CONFIG = {
    "run": "e2e",
    "data": {"limit": 8, "teacher": {"max_new_tokens": 24, "batch_size": 8},
             "variants": [{"name": "nift"}]},
    "train": [
        {"name": "sft", "recipe": "sft", "base_model": "smollm2-135m-instruct",
         "data": "embedded:sft/instructions.jsonl", "max_length": 192, "batch_size": 4, "max_steps": 2},
        {"name": "cand", "recipe": "hybrid", "base_model": "smollm2-135m-instruct", "data": "data:nift",
         "max_length": 192, "batch_size": 4, "max_steps": 2},
    ],
    "bench": {"candidate": "train:cand", "baselines": [{"name": "sft", "model": "train:sft"}],
              "tasks": ["nift_if"], "limit": 6, "max_gen_toks": 24},
    "audit": {"toxicity": {"limit_per_group": 1, "samples_per_prompt": 2, "max_new_tokens": 8,
                           "scorer": "profanity-check"},
              "hallucination": {"closed_book": {"limit": 2, "max_new_tokens": 12}, "selfcheck": {"enabled": False}},
              "bias": {"limit_per_category": 2}},  # one ambiguous and one disambiguated item per category
    "review": {"required_reviewers": 2, "worst_k": 1, "random_per_task": 1, "pairwise_per_baseline": 0,
               "reviewers": [{"name": "ana", "token": "a"}, {"name": "ben", "token": "b"}]},
    "gate": {"policy": "policy.yaml"},
}
POLICY = {"schema_version": 1, "rules": [
    {"name": "if-not-much-worse", "type": "non_inferiority", "metric": "bench.nift_if.prompt_level_strict_acc",
     "margin": 1.0, "severity": "warn"},  # a margin of 1 cannot fail: the review rules decide
    {"name": "hallucination-ceiling", "type": "ceiling", "metric": "hallucination.closed_book.hallucination_rate",
     "max": 1.0, "severity": "warn"},
    {"name": "reviewed-twice", "type": "review_quorum", "min_share": 1.0, "min_reviewers": 2, "severity": "block"},
    {"name": "approved", "type": "approval_rate", "min": 0.5, "severity": "block"},
]}


def _label_everything(database: str, verdict: str) -> int:
    review = ReviewStore(database)
    try:
        count = 0
        for reviewer in ("ana", "ben"):
            for entry in review.queue(reviewer, limit=1000) if verdict == "accept" else []:
                if entry.kind == "single":
                    review.add_label(entry.item_id, reviewer, verdict, 4)
                    count += 1
            if verdict == "reject":  # corrections: a new label supersedes each earlier one
                for label in review.current_labels():
                    if label["reviewer"] == reviewer:
                        review.add_label(label["item_id"], reviewer, "reject", 1, {"hallucination": True})
                        count += 1
        return count
    finally:
        review.close()


@pytest.mark.slow
def test_run_waits_for_review_then_decides_from_the_labels(tmp_path, capsys):
    config = tmp_path / "e2e.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(POLICY))

    assert main(["run", str(config)]) == VerdictExit.PENDING_REVIEW
    out = capsys.readouterr().out
    assert "PENDING_REVIEW" in out and "nift-gate review serve --config" in out
    store = RunStore("e2e")
    for stage in ("data/nift", "train/sft", "train/cand", "bench/cand", "audit/toxicity", "audit/hallucination",
                  "audit/bias", "review", "gate/cand"):
        assert (store.root / stage / "record.json").exists(), stage
    report = (store.root / "report" / "report.md").read_text()
    assert report.startswith("# ") and "PENDING_REVIEW" in report.splitlines()[0] + report.splitlines()[2]
    assert latest_decision(store, "cand").decision == "PENDING_REVIEW"

    database = f"sqlite:///{store.root / 'review' / 'review.db'}"
    assert _label_everything(database, "accept") > 0
    assert main(["run", str(config)]) == VerdictExit.PROMOTE
    out = capsys.readouterr().out
    assert "up to date" in out  # the model stages were not redone
    assert latest_decision(store, "cand").decision == "PROMOTE"

    _label_everything(database, "reject")
    assert main(["run", str(config)]) == VerdictExit.REJECT
    decision = latest_decision(store, "cand")
    assert decision.decision == "REJECT"
    approved = next(o for o in decision.outcomes if o.rule == "approved")
    assert approved.status == "fail" and approved.value == 0.0
    log = [json.loads(line) for line in (store.home / "registry" / "log.jsonl").read_text().splitlines()]
    assert [e["decision"] for e in log] == ["PENDING_REVIEW", "PROMOTE", "REJECT"]
    assert main(["registry", "verify"]) == 0
