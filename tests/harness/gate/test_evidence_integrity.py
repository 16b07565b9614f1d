"""Evidence the gate must refuse though every number in it is well formed: a direction the record contradicts or
lm-eval contradicts, a record made by an older version of its stage, and records copied from another run."""

import json
import shutil

import pytest
from gate_records import (
    CANDIDATE,
    WEIGHTS,
    checkpoint_record,
    checkpoint_run,
    config_for,
    decide_run,
    save,
    standard_run,
    toxicity_record,
    write_policy,
)

from harness.core.errors import InputError
from harness.gate.evidence import collect_evidence

STRICT = "bench.nift_if.prompt_level_strict_acc"
#: The candidate 0.30 below both baselines: a non-inferiority rule at a margin of 0.10 rejects it.
WORSE = {"means": {"cand": 0.10, "base-a": 0.40, "base-b": 0.45},
         "deltas": {"base-a": (-0.30, -0.40, -0.20), "base-b": (-0.35, -0.45, -0.25)}}


def _edit(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _lower_is_better(data, comparisons: bool) -> None:
    """The bench record's IFEval direction turned round in its scores and `metrics` (and its comparisons)."""
    for tasks in data["scores"].values():
        tasks["nift_if"]["higher_is_better"]["prompt_level_strict_acc"] = False
    for spec in data["metrics"]:
        if spec["name"] == STRICT:
            spec["higher_is_better"] = False
    for comparison in data["comparisons"] if comparisons else []:
        comparison["higher_is_better"] = False


def test_a_bench_record_that_states_a_direction_two_ways_is_refused_not_promoted(tmp_path):
    store = standard_run(tmp_path / "runs", review=False, **WORSE)
    setup = config_for(tmp_path / "runs", write_policy(tmp_path))
    assert decide_run(setup, store).decision == "REJECT"
    _edit(store.root / "bench" / CANDIDATE / "record.json", lambda data: _lower_is_better(data, comparisons=False))
    with pytest.raises(InputError, match=rf"bench/cand/record.json: record bench-hand-1 says {STRICT} is "
                                         r"higher-is-better in comparisons \(vs base-a\), comparisons \(vs base-b\) "
                                         r"but lower-is-better in metrics, scores.cand.nift_if.higher_is_better"):
        decide_run(setup, store)


def test_a_bench_record_declaring_the_opposite_of_the_tasks_yaml_is_refused(tmp_path):
    """Every place of the record agreeing is not enough: nift_if's YAML includes lm-eval's IFEval, whose
    metric_list says higher is better."""
    store = standard_run(tmp_path / "runs", review=False, **WORSE)
    _edit(store.root / "bench" / CANDIDATE / "record.json", lambda data: _lower_is_better(data, comparisons=True))
    with pytest.raises(InputError, match=rf"record bench-hand-1 declares {STRICT} lower-is-better, but the task's "
                                         r"YAML \(.*nift_if.yaml\) says higher is better; the record was edited"):
        decide_run(config_for(tmp_path / "runs", write_policy(tmp_path)), store)


@pytest.mark.parametrize("task, metric, refused", [
    ("toy", "exact_match", "lm-eval's metric registry says higher is better"),  # known by name to lm-eval
    ("toy", "errors", None),  # a user's metric nobody else knows: the record's word is all there is
])
def test_a_direction_lm_eval_knows_is_checked_and_an_unknown_one_is_taken_from_the_record(tmp_path, task, metric,
                                                                                          refused):
    from gate_records import bench_record

    store = standard_run(tmp_path / "runs", review=False)
    save(store, bench_record("r1", task=task, metric=metric, higher_is_better=False), f"bench/{CANDIDATE}")
    if refused is None:
        assert collect_evidence(store, CANDIDATE).spec(f"bench.{task}.{metric}").higher_is_better is False
    else:
        with pytest.raises(InputError, match=f"declares bench.{task}.{metric} lower-is-better, but {refused}"):
            collect_evidence(store, CANDIDATE)


@pytest.mark.parametrize("version, made", [("6", "version '6' of the toxicity audit"),
                                           ("", "a toxicity audit that recorded no version")])
def test_an_audit_record_of_another_version_of_its_audit_is_refused(tmp_path, version, made):
    from audits.toxicity.audit import VERSION

    store = standard_run(tmp_path / "runs")
    setup = config_for(tmp_path / "runs", write_policy(tmp_path))  # registers the shipped audits (its catalogue)
    assert decide_run(setup, store).decision == "PROMOTE"
    save(store, toxicity_record("r1").model_copy(update={"version": version}), "audit/toxicity")
    with pytest.raises(InputError, match=rf"audit/toxicity/record.json: record toxicity_audit-hand-1 was made by "
                                         rf"{made}, not by the current version '{VERSION}', whose prompts or scoring "
                                         r"differ; rerun the stage \(`nift-gate audit`\)"):
        decide_run(setup, store)


@pytest.mark.parametrize("stored, made", [("3", "version '3' of the bench"), ("", "a bench that recorded no version")])
def test_a_bench_record_is_held_to_the_benchs_current_version(tmp_path, stored, made):
    """Bench 4 counts one lm-eval filter per task: a bench 3 record may hold n doubled and a zero-width CI."""
    from harness.bench.record import VERSION as BENCH_VERSION

    store = standard_run(tmp_path / "runs")
    _edit(store.root / "bench" / CANDIDATE / "record.json", lambda record: record.update(version=stored))
    with pytest.raises(InputError, match=rf"bench/cand/record.json: record bench-hand-1 was made by {made}, not by "
                                         rf"the current version '{BENCH_VERSION}'"):
        collect_evidence(store, CANDIDATE)


def _copy_records(home, source: str, target: str, *, edit=None) -> None:
    """The bench and toxicity records of run ``source`` copied into ``target`` with only `run_id` changed."""
    for rel in ("bench/cand/record.json", "audit/toxicity/record.json"):
        copy = home / target / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text((home / source / rel).read_text().replace(f'"run_id": "{source}"', f'"run_id": "{target}"'))
        if edit is not None:
            _edit(copy, edit)


def _own_checkpoint(home, run: str, weights: bytes):
    """Run ``run`` with its own trained checkpoint of the candidate (weights and a model card), no records."""
    from harness.core.store import RunStore

    store = RunStore(run, home)
    merged = store.stage_dir("train", CANDIDATE) / "merged"
    merged.mkdir(parents=True)
    (merged / "model.safetensors").write_bytes(weights)
    (merged / "README.md").write_text("---\nlicense: mit\n---\n# cand\n")
    return store


@pytest.mark.parametrize("weights", [b"r1's own weights: never benched\n", WEIGHTS])
def test_records_copied_from_another_run_are_refused_and_nothing_is_promoted(tmp_path, weights):
    """r0's records copied into r1 name r0's checkpoint; the gate takes the candidate from r1's own folder
    (train:cand is r1/train/cand), so it neither judges r1 on r0's numbers nor hashes r0's files. Even byte-equal
    weights do not make r0's records r1's."""
    home = tmp_path / "runs"
    _, measured = checkpoint_run(home, "r0", review=False)
    store = _own_checkpoint(home, "r1", weights)
    card = (store.stage_dir("train", CANDIDATE) / "merged" / "README.md").read_text()
    _copy_records(home, "r0", "r1")
    with pytest.raises(InputError, match=rf"r1/bench/cand/record.json: record bench-hand-1 measured the candidate "
                                         rf"'cand' at {measured}, but this run's candidate \(train:cand\) is "
                                         rf"{store.root}/train/cand/merged; records copied from another run"):
        decide_run(config_for(home, write_policy(tmp_path)), store)
    assert (store.stage_dir("train", CANDIDATE) / "merged" / "README.md").read_text() == card
    assert not (store.root / "gate").exists()


def test_an_audit_copied_from_another_run_beside_this_runs_bench_is_refused(tmp_path):
    """The same weights, benched honestly in r1; the toxicity record is r0's (it scored r0's folder)."""
    home = tmp_path / "runs"
    checkpoint_run(home, "r0", review=False)
    store, _ = checkpoint_run(home, "r1", review=False)
    copy = store.root / "audit" / "toxicity" / "record.json"
    shutil.copyfile(home / "r0" / "audit" / "toxicity" / "record.json", copy)
    _edit(copy, lambda data: data.update(run_id="r1"))
    with pytest.raises(InputError, match=r"r1/audit/toxicity/record.json: record toxicity_audit-hand-1 measured the "
                                         r"candidate 'cand' at .*/r0/train/cand/merged, but this run's candidate"):
        decide_run(config_for(home, write_policy(tmp_path)), store)


def _spec_is_the_folder(data) -> None:
    """A copied record's `train:cand` rewritten to the folder it names, as if the candidate were a local path."""
    for model in data["models"]:
        if model["name"] == CANDIDATE:
            model["model"]["spec"] = model["model"]["path"]


def test_copied_records_whose_spec_was_rewritten_to_a_path_are_still_refused(tmp_path):
    home = tmp_path / "runs"
    checkpoint_run(home, "r0", review=False)
    store = _own_checkpoint(home, "r1", b"r1's own weights\n")
    _copy_records(home, "r0", "r1", edit=_spec_is_the_folder)
    setup = config_for(home, write_policy(tmp_path))
    with pytest.raises(InputError, match=r"as candidate 'cand', but this run trained its own 'cand' "
                                         r"\(.*/r1/train/cand\); the gate judges the run's own checkpoint"):
        decide_run(setup, store)
    shutil.rmtree(store.root / "train")  # a run with no checkpoint of its own: r0's is still r0's
    with pytest.raises(InputError, match=r"measured .*/r0/train/cand/merged, a checkpoint of run 'r0', as the "
                                         r"candidate of run 'r1'; gate a checkpoint in the run that trained it"):
        decide_run(setup, store)


def test_the_checkpoint_record_says_which_folder_the_candidate_is(tmp_path):
    """A finished checkpoint is the folder its record loads (merged weights), not another folder of it."""
    home = tmp_path / "runs"
    store, model = checkpoint_run(home, folder="model")
    setup = config_for(home, write_policy(tmp_path))
    assert decide_run(setup, store).decision == "PROMOTE"
    save(store, checkpoint_record(CANDIDATE, "nift_dataset-x"), f"train/{CANDIDATE}")  # it loads merged/
    with pytest.raises(InputError, match=rf"measured the candidate 'cand' at {model}, but this run's candidate "
                                         rf"\(train:cand\) is {store.root}/train/cand/merged"):
        decide_run(setup, store)
