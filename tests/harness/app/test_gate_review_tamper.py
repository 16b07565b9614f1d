"""`nift-gate gate` judges the reviews as the label store holds them, whatever review/record.json says.

Every label rejects; review/record.json is then edited to say every output was approved, with its CI, strata and
``values`` made to match and its fingerprint left alone. The gate still rejects, on the store's approval, and
the file it leaves is the store's summary, with a warning naming the file it replaced.
"""

import json

import yaml
from gate_records import CANDIDATE, standard_run, write_policy

from harness.app.cli import VerdictExit, main
from harness.core.records import sha256_file
from harness.core.store import RunStore
from harness.gate.record import latest_decision
from harness.review.config import ReviewConfig
from harness.review.record import ReviewRecord
from harness.review.store import NewItem, open_store
from harness.review.summary import summarise_review

POLICY = """\
schema_version: 1
rules:
  - {name: if-non-inferior, type: non_inferiority, metric: bench.nift_if.prompt_level_strict_acc, margin: 0.10}
  - {name: reviewed, type: review_quorum, min_items: 4, min_reviewers: 2}
  - {name: approved, type: approval_rate, min: 0.7}
"""


def _rejected_run(tmp_path):
    """Run r1 (bench and toxicity records) whose four queued outputs both reviewers rejected; its config file."""
    store = standard_run(tmp_path / "runs", "r1", review=False)
    config = {
        "run": "r1",
        "bench": {"candidate": f"train:{CANDIDATE}", "baselines": [{"name": "base-a", "model": "train:base-a"},
                                                                   {"name": "base-b", "model": "train:base-b"}]},
        "gate": {"policy": str(write_policy(tmp_path, POLICY))},
        "review": {"required_reviewers": 2,
                   "reviewers": [{"name": "ann", "token": "a"}, {"name": "bob", "token": "b"}]}}
    review = open_store(ReviewConfig.model_validate(config["review"]), store)
    try:
        review.add_items([NewItem(kind="single", stratum="random", source="bench/cand", source_record_id="bench-hand-1",
                                  source_item_id=f"i{i}", task="nift_if", candidate=CANDIDATE, prompt=f"prompt {i}",
                                  content_key=f"key-{i}", model=CANDIDATE, role="candidate", output=f"output {i}")
                          for i in range(4)])
        for item_id in range(1, 5):
            for reviewer in ("ann", "bob"):
                review.add_label(item_id, reviewer, "reject", 4)
    finally:
        review.close()
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, store, ReviewConfig.model_validate(config["review"])


def _claim_full_approval(path) -> None:
    data = json.loads(path.read_text())
    data["approval_rate"], data["approval_ci"] = 1.0, [0.95, 1.0]
    for stratum in data["approval_strata"]:
        stratum.update(rate=1.0, approved=stratum["items"], ci_low=0.95, ci_high=1.0)
    data["values"] = []  # filled again from the edited fields: the gate's values check then agrees
    data["values"] = [v.model_dump(mode="json") for v in ReviewRecord.model_validate(data).values]
    path.write_text(json.dumps(data, indent=2) + "\n")


def test_an_edited_review_record_does_not_decide_the_gate(tmp_path, capsys):
    config, store, review_config = _rejected_run(tmp_path)
    assert main(["gate", "--config", str(config), "--json"]) == VerdictExit.REJECT
    capsys.readouterr()
    record_file = store.root / "review" / "record.json"
    fingerprint = json.loads(record_file.read_text())["fingerprint"]
    _claim_full_approval(record_file)

    assert main(["gate", "--config", str(config), "--json"]) == VerdictExit.REJECT
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    approved = next(r for r in shown["rules"] if r["rule"] == "approved")
    assert (shown["decision"], approved["status"], approved["value"]) == ("REJECT", "fail", 0.0)
    assert f"{record_file}: does not hold what the label store gives now" in captured.err
    # On disk: the store's summary, the one the decision pins (made again, it is the same record).
    on_disk = json.loads(record_file.read_text())
    assert (on_disk["approval_rate"], on_disk["fingerprint"]) == (0.0, fingerprint)
    assert summarise_review(review_config, RunStore("r1"), CANDIDATE).record_id == on_disk["record_id"]
    decision = latest_decision(RunStore("r1"), CANDIDATE)
    [pinned] = [ref for ref in decision.evidence if ref.path == "review/record.json"]
    assert (pinned.record_id, pinned.sha256) == (on_disk["record_id"], sha256_file(record_file))
