"""`nift-gate gate` judges the reviews as the label store holds them, whatever review/record.json says.

Every label rejects; review/record.json is then edited to say every output was approved, with its CI, strata and
``values`` made to match and its fingerprint left alone. The gate still rejects, on the store's approval, and
the file it leaves is the store's summary, with a warning naming the file it replaced.
"""

import json

import yaml
from gate_records import (
    CANDIDATE,
    REVIEWED_POLICY,
    label_queued_outputs,
    reviewed_run_config,
    standard_run,
    write_policy,
)

from harness.app.cli import VerdictExit, main
from harness.core.records import sha256_file
from harness.core.store import RunStore
from harness.gate.record import latest_decision
from harness.review.config import ReviewConfig
from harness.review.record import ReviewRecord
from harness.review.summary import summarise_review


def _rejected_run(tmp_path):
    """Run r1 (bench and toxicity records) whose four queued outputs both reviewers rejected; its config file."""
    store = standard_run(tmp_path / "runs", "r1", review=False)
    config = reviewed_run_config(write_policy(tmp_path, REVIEWED_POLICY))
    label_queued_outputs(ReviewConfig.model_validate(config["review"]), store, "reject")
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
