"""The gate judges a signed record only as it was signed, and with gate.require_signed_evidence only signed ones."""

import json

import pytest
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
from harness.bench.record import BenchRecord
from harness.core.errors import ConfigError, InputError
from harness.core.signing import KEY_VARIABLE, SIGNATURE_FILE, RecordKey, signature_problem, signature_text
from harness.core.store import RECORD_FILE
from harness.gate.config import GateConfig
from harness.gate.evidence import collect_evidence
from harness.review.config import ReviewConfig

KEY = "gate-test-ci-secret-" + "s" * 24


def _sign_all(store, key=KEY):
    """Sign every evidence record as the stage runner's commit does (the fixtures write them by hand)."""
    for path in store.root.glob(f"*/**/{RECORD_FILE}"):
        path.with_name(SIGNATURE_FILE).write_text(signature_text(path.read_bytes(), RecordKey(key.encode())))


def _signed_run(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    store = standard_run(tmp_path / "runs")
    _sign_all(store)
    return store


def test_signed_records_are_judged_with_and_without_requiring_signatures(tmp_path, monkeypatch):
    store = _signed_run(tmp_path, monkeypatch)
    assert collect_evidence(store, CANDIDATE, require_signed=True).records.keys() == {"bench", "toxicity_audit",
                                                                                       "review"}
    assert collect_evidence(store, CANDIDATE).records["bench"]


def test_a_consistently_edited_signed_bench_record_is_refused_as_edited(tmp_path, monkeypatch):
    # the reproducer's edit: comparisons changed and the deltas rebuilt through BenchRecord, so that every
    # self-consistency check passes; only the signature tells
    store = _signed_run(tmp_path, monkeypatch)
    path = store.root / "bench" / CANDIDATE / RECORD_FILE
    data = json.loads(path.read_text())
    for comparison in data["comparisons"]:
        comparison.update(mean_difference=0.02, ci_low=-0.01, ci_high=0.05)
    data["deltas"] = [d.model_dump(mode="json") for d in BenchRecord.model_validate(data).compute_deltas()]
    path.write_text(json.dumps(data, indent=2) + "\n")
    monkeypatch.delenv(KEY_VARIABLE)
    assert collect_evidence(store, CANDIDATE).records["bench"]  # without the key the edit is judged, as before
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    for required in (False, True):  # a signature that is there is checked whenever the key is set
        with pytest.raises(InputError, match="does not match its signature.*edited after it was signed") as error:
            collect_evidence(store, CANDIDATE, require_signed=required)
        assert str(path) in str(error.value) and KEY not in str(error.value) and "\n" not in str(error.value)


def test_one_byte_edited_in_the_audit_record_is_refused(tmp_path, monkeypatch):
    store = _signed_run(tmp_path, monkeypatch)
    path = store.root / "audit" / "toxicity" / RECORD_FILE
    path.write_bytes(path.read_bytes().replace(b"\n}", b" \n}", 1))  # one byte, still the same JSON
    with pytest.raises(InputError, match=f"{path}: record .* does not match its signature"):
        collect_evidence(store, CANDIDATE)


def test_an_unsigned_record_is_refused_only_when_signatures_are_required(tmp_path, monkeypatch):
    store = _signed_run(tmp_path, monkeypatch)
    review = store.root / "review"
    (review / SIGNATURE_FILE).unlink()
    assert collect_evidence(store, CANDIDATE).review is not None
    with pytest.raises(InputError, match=f"{review / RECORD_FILE}: record .* has no signature"):
        collect_evidence(store, CANDIDATE, require_signed=True)


def test_records_signed_with_another_key_are_refused_naming_the_key_ids(tmp_path, monkeypatch):
    store = _signed_run(tmp_path, monkeypatch)
    other = "the key of another CI, 32 bytes or more"
    monkeypatch.setenv(KEY_VARIABLE, other)
    with pytest.raises(InputError, match="is signed with key id") as error:
        collect_evidence(store, CANDIDATE, require_signed=True)
    message = str(error.value)
    assert RecordKey(KEY.encode()).key_id in message and RecordKey(other.encode()).key_id in message
    assert KEY not in message and other not in message


def test_requiring_signatures_without_a_key_is_a_config_error(tmp_path, monkeypatch):
    store = standard_run(tmp_path / "runs")
    assert collect_evidence(store, CANDIDATE).records  # unsigned, no key: judged as before
    with pytest.raises(ConfigError, match=f"require_signed_evidence is set, but {KEY_VARIABLE} holds no key"):
        collect_evidence(store, CANDIDATE, require_signed=True)


def test_the_gate_config_has_the_field_off_by_default():
    assert GateConfig().require_signed_evidence is False
    assert GateConfig(require_signed_evidence=True).require_signed_evidence is True


def test_the_review_record_the_gate_rebuilds_is_signed_by_the_same_commit(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    store = standard_run(tmp_path / "runs", "r1", review=False)  # $NIFT_HOME (conftest)
    _sign_all(store)
    config = reviewed_run_config(write_policy(tmp_path, REVIEWED_POLICY), require_signed_evidence=True)
    label_queued_outputs(ReviewConfig.model_validate(config["review"]), store, "reject")
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["gate", "--config", str(path)]) == VerdictExit.REJECT  # judged: the review it rebuilt is signed
    folder = store.root / "review"
    assert signature_problem((folder / RECORD_FILE).read_bytes(), folder, RecordKey(KEY.encode()),
                             required=True) is None
    assert not [p for p in (tmp_path / "runs").rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]


def test_the_gate_command_with_require_signed_evidence_refuses_an_unsigned_record(tmp_path, monkeypatch, capsys):
    # gate.require_signed_evidence reaches the evidence check through `nift-gate gate`, not only collect_evidence
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    store = standard_run(tmp_path / "runs", "r1", review=False)
    _sign_all(store)
    (store.root / "bench" / CANDIDATE / "record.sig").unlink()
    config = reviewed_run_config(write_policy(tmp_path, REVIEWED_POLICY), require_signed_evidence=True)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["gate", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"bench/{CANDIDATE}/record.json: record bench-hand-1 " in err and len(err.strip().splitlines()) == 1
    config["gate"]["require_signed_evidence"] = False  # without it an unsigned record is judged as before
    path.write_text(yaml.safe_dump(config))
    assert main(["gate", "--config", str(path)]) != 2
