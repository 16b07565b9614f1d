"""The gate reads evidence generically: any audit's record, with the directions the record itself declares."""

import json
import os

import pytest
from gate_records import (
    BASELINES,
    CANDIDATE,
    POLICY,
    ToyAuditRecord,
    catalogue,
    config_for,
    save,
    standard_run,
    toy_record,
    write_policy,
)

from harness.core.errors import ConfigError, InputError
from harness.gate.gate import decide

TOY_POLICY = POLICY + "  - {name: few-refusals, type: ceiling, metric: toy.refusal_rate, max: 0.2}\n"


def _decide(tmp_path, policy: str, metrics=None, store=None):
    home = tmp_path / "runs"
    store = store or standard_run(home)
    setup = config_for(home, write_policy(tmp_path, policy), metrics=metrics)
    return decide(setup.gate, store, CANDIDATE, list(BASELINES), setup.catalogue), store


def _outcome(record, rule):
    return next(o for o in record.outcomes if o.rule == rule)


def test_an_unknown_audit_is_evidence_and_its_metric_can_be_ruled_on(tmp_path):
    store = standard_run(tmp_path / "runs")
    save(store, toy_record(), "audit/toy")
    record, _ = _decide(tmp_path, TOY_POLICY, metrics=catalogue(ToyAuditRecord), store=store)
    assert {r.kind for r in record.evidence} == {"bench", "toxicity_audit", "toy_audit", "review"}
    toy = _outcome(record, "few-refusals")
    assert (toy.status, toy.value, toy.higher_is_better, toy.comparison, toy.records) == \
        ("pass", 0.1, False, "<=", ["toy_audit-hand-1"])
    assert record.decision == "PROMOTE"
    save(store, toy_record(candidate_rate=0.3), "audit/toy")
    again, _ = _decide(tmp_path, TOY_POLICY, metrics=catalogue(ToyAuditRecord), store=store)
    assert again.decision == "REJECT" and "few-refusals" in again.reason


def test_a_metric_no_stage_declares_is_refused_with_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        _decide(tmp_path, TOY_POLICY)  # the catalogue lacks the toy audit
    message = str(err.value)
    assert "policy.yaml:23: rule 'few-refusals': unknown metric 'toy.refusal_rate'" in message
    assert "toxicity.expected_max_toxicity" in message and "bench.* (" in message


def test_the_direction_is_the_one_the_stored_record_declares(tmp_path):
    # toxicity is lower-is-better: a threshold of 0.12 is a maximum and 0.10 passes it
    policy = "rules:\n  - {name: t, type: threshold, metric: toxicity.expected_max_toxicity, value: 0.12}\n"
    record, store = _decide(tmp_path, policy)
    assert (_outcome(record, "t").comparison, record.decision) == ("<=", "PROMOTE")
    # the same record, its declared direction flipped by hand: the toxicity audit's record class declares it
    # lower-is-better, so the edited record is refused rather than judged the other way
    path = store.root / "audit" / "toxicity" / "record.json"
    data = json.loads(path.read_text())
    for spec in data["metrics"]:
        if spec["name"] == "toxicity.expected_max_toxicity":
            spec["higher_is_better"] = True
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(InputError, match=r"audit/toxicity/record.json: .*declare toxicity.expected_max_toxicity "
                                         r"otherwise than a ToxicityAuditRecord does"):
        _decide(tmp_path, policy, store=store)


def test_a_value_of_an_undeclared_metric_names_the_file(tmp_path):
    store = standard_run(tmp_path / "runs")
    path = store.root / "audit" / "toxicity" / "record.json"
    data = json.loads(path.read_text())
    data["metrics"] = [m for m in data["metrics"] if m["name"] != "toxicity.toxicity_probability"]
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"audit/toxicity/record.json: record toxicity_audit-hand-1 reports "
                                         r"toxicity.toxicity_probability but does not declare it"):
        _decide(tmp_path, POLICY, store=store)


def test_an_unknown_audit_of_other_weights_is_refused_and_work_folders_are_not_evidence(tmp_path):
    store = standard_run(tmp_path / "runs")
    work = store.root / "audit" / "_work" / "record.json"
    work.parent.mkdir(parents=True)
    work.write_text("{not a record")  # an audit's resume state, not evidence
    record, _ = _decide(tmp_path, POLICY, store=store)
    assert "toy_audit" not in {r.kind for r in record.evidence} and record.decision == "PROMOTE"
    save(store, toy_record(candidate_sha="9" * 64), "audit/toy")
    with pytest.raises(InputError, match=r"audit/toy/record.json: .* audited cand with weights 999999999999"):
        _decide(tmp_path, POLICY, store=store)


# ---- the evidence is re-verified when the gate decides ---------------------------------------------------------

def test_weights_overwritten_after_the_bench_are_refused_never_promoted(tmp_path):
    from gate_records import WEIGHTS, candidate_weights, decide_run

    store = standard_run(tmp_path / "runs")
    setup = config_for(tmp_path / "runs", write_policy(tmp_path))
    weights = candidate_weights()
    # same size, mtime put back: only the content hash (not the hash cache) can tell
    file = tmp_path / "runs" / "_weights" / CANDIDATE / "model.safetensors"
    stat = file.stat()
    file.write_bytes(WEIGHTS.replace(b"bench", b"later"))
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(InputError, match=r"_weights/cand: the candidate's model files .* changed after they were "
                                         rf"measured: they hash to .*, the bench record bench-hand-1 measured "
                                         rf"{weights.sha256[:12]}"):
        decide_run(setup, store)
    assert not (store.root / "gate").exists() and not (tmp_path / "runs" / "registry" / "log.jsonl").exists()
    file.write_bytes(WEIGHTS)  # the measured weights back: the gate decides again
    assert decide_run(setup, store).decision == "PROMOTE"


def test_a_chat_template_edited_after_the_bench_is_refused_never_promoted(tmp_path):
    """The weights are not the whole model: the chat template (like the config and tokenizer) changes every
    answer, so the files beside the weights are in the hash the gate checks."""
    from gate_records import TOKENIZER_CONFIG, decide_run

    store = standard_run(tmp_path / "runs")
    setup = config_for(tmp_path / "runs", write_policy(tmp_path))
    template = tmp_path / "runs" / "_weights" / CANDIDATE / "tokenizer_config.json"
    template.write_text(TOKENIZER_CONFIG.replace("m.content", "m.role"))
    with pytest.raises(InputError, match=r"_weights/cand: the candidate's model files .* changed after they were "
                                         r"measured"):
        decide_run(setup, store)
    assert not (store.root / "gate").exists()
    template.write_text(TOKENIZER_CONFIG)
    assert decide_run(setup, store).decision == "PROMOTE"


def test_weights_that_are_gone_are_refused(tmp_path):
    import shutil

    from gate_records import decide_run

    store = standard_run(tmp_path / "runs")
    shutil.rmtree(tmp_path / "runs" / "_weights")
    with pytest.raises(InputError, match=r"bench/cand/record.json: cannot check the candidate's weights against the "
                                         r"records: .*_weights/cand: the weights of '.*_weights/cand' are gone"):
        decide_run(config_for(tmp_path / "runs", write_policy(tmp_path)), store)


@pytest.mark.parametrize("where", ["bench/cand/record.json", "audit/toxicity/record.json"])
def test_a_record_with_a_byte_that_is_not_utf8_exits_2_naming_the_file(tmp_path, capsys, where):
    import logging

    from harness.app.cli import main

    store = standard_run(tmp_path / "runs", review=False)
    path = store.root / where
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"', b'"\xff', 1)
    path.write_bytes(b"\n".join(lines))
    logger = logging.getLogger("nift_gate")
    handlers, level = list(logger.handlers), logger.level
    try:
        code = main(["gate", "--home", str(tmp_path / "runs"), "--run", "r1", "--set", f"bench.candidate=train:{CANDIDATE}",
                     "--set", f"gate.policy={write_policy(tmp_path)}"])
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{where}:4: not UTF-8 (byte 0xff" in err
    assert not (store.root / "gate").exists()


def test_an_invalid_record_is_one_line_naming_the_field(tmp_path):
    store = standard_run(tmp_path / "runs")
    path = store.root / "review" / "record.json"
    data = json.loads(path.read_text())
    data["items_total"] = "many"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        _decide(tmp_path, POLICY, store=store)
    assert "\n" not in str(err.value)
    assert "review/record.json: not a valid ReviewRecord: items_total: Input should be a valid integer" in str(err.value)


def test_a_record_naming_weights_its_fingerprint_does_not_cover_is_refused(tmp_path):
    """Weights overwritten after the bench, and the bench record's model list edited to their new hash: the
    record's inputs still pin the measured weights, so it is not the record its fingerprint names."""
    from gate_records import bench_record, candidate_weights, decide_run

    from harness.core.records import InputRef

    store = standard_run(tmp_path / "runs")
    measured = candidate_weights().sha256
    bench = bench_record("r1").model_copy(update={"inputs": [InputRef(kind="checkpoint", id="ckpt-1", sha256=measured)]})
    save(store, bench, f"bench/{CANDIDATE}")
    setup = config_for(tmp_path / "runs", write_policy(tmp_path))
    assert decide_run(setup, store).decision == "PROMOTE"
    file = tmp_path / "runs" / "_weights" / CANDIDATE / "model.safetensors"
    file.write_bytes(b"other weights")
    for where in (f"bench/{CANDIDATE}", "audit/toxicity"):  # the model lists edited to the new weights' hash
        path = store.root / where / "record.json"
        data = json.loads(path.read_text())
        for model in data["models"]:
            model["model"]["sha256"] = candidate_weights().sha256 if model["name"] == CANDIDATE else model["model"]["sha256"]
        path.write_text(json.dumps(data, indent=2))
    with pytest.raises(InputError, match=r"bench/cand/record.json: record bench-hand-1 names weights .* but its inputs "
                                         r"\(and so its fingerprint\) pin no such model"):
        decide_run(setup, store)


def test_a_promotion_rewriting_the_model_card_leaves_the_model_hash_alone(tmp_path):
    """A PROMOTE writes the gate's results into the model card (README.md) beside the weights; the card is not
    read by loading, so the promoted model still hashes to what was measured and the gate decides again."""
    from gate_records import TOKENIZER_CONFIG, WEIGHTS, bench_record, decide_run, review_record, save, \
        toxicity_record

    from harness.core.models import ResolvedModel, current_model_sha256
    from harness.core.store import RunStore

    store = RunStore("r1", tmp_path / "runs")
    merged = store.root / "train" / CANDIDATE / "merged"
    merged.mkdir(parents=True)
    (merged / "model.safetensors").write_bytes(WEIGHTS)
    (merged / "tokenizer_config.json").write_text(TOKENIZER_CONFIG)
    (merged / "README.md").write_text("---\nlibrary_name: transformers\n---\n\n# cand\n")
    resolved = ResolvedModel(spec=f"train:{CANDIDATE}", source="local", path=str(merged), sha256="")
    resolved = resolved.model_copy(update={"sha256": current_model_sha256(resolved)})
    save(store, bench_record("r1", candidate=resolved), f"bench/{CANDIDATE}")
    save(store, toxicity_record("r1", candidate=resolved), "audit/toxicity")
    save(store, review_record("r1"), "review")
    setup = config_for(tmp_path / "runs", write_policy(tmp_path))
    card = (merged / "README.md").read_text()
    assert decide_run(setup, store).decision == "PROMOTE"
    assert (merged / "README.md").read_text() != card  # the card now carries the results
    assert current_model_sha256(resolved) == resolved.sha256
    assert decide_run(setup, store).decision == "PROMOTE"  # a CI rerun on the same evidence


@pytest.mark.parametrize("update, message", [
    ({"source_record_ids": ["bench-hand-1", "bench-OLD-weights"]},
     r"review/record.json: the review counted items of record\(s\) bench-OLD-weights, which are not among"),
    ({"candidate_model_sha256": "e" * 64}, r"review/record.json: the review counted labels on outputs of weights "
                                           r"eeeeeeeeeeee\.\.\., but the bench record measured"),
])
def test_a_review_summarised_against_other_evidence_is_refused(tmp_path, update, message):
    """Labels lend their approval only to the outputs they judged: a review record built from another bench
    run or other weights than the gate's evidence is refused, not counted."""
    from gate_records import decide_run, review_record, save

    store = standard_run(tmp_path / "runs")
    setup = config_for(tmp_path / "runs", write_policy(tmp_path))
    assert decide_run(setup, store).decision == "PROMOTE"
    save(store, review_record("r1").model_copy(update=update), "review")
    with pytest.raises(InputError, match=message):
        decide_run(setup, store)


def test_a_review_whose_every_item_is_stale_says_to_queue_this_checkpoint(tmp_path):
    from gate_records import decide_run, review_record, save

    from harness.core.errors import ConfigError

    store = standard_run(tmp_path / "runs")
    setup = config_for(tmp_path / "runs", write_policy(tmp_path))
    save(store, review_record("r1", items_total=0, items_with_quorum=0, approval_rate=None,
                              approval_ci=None, agreement=None).model_copy(update={"stale_items": 30}), "review")
    with pytest.raises(ConfigError, match=r"none of the 30 queued items is an output of the current evidence .*run "
                                          r"`nift-gate review enqueue` for this checkpoint"):
        decide_run(setup, store)
