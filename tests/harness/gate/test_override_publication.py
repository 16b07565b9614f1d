"""An override PROMOTE whose publication (the MLflow export) failed is published by the next `gate` of the
candidate, under the registry lock, once; and never once a later decision or override decided."""

import importlib.util
import logging
import multiprocessing
from pathlib import Path

import pytest
from gate_records import CANDIDATE, POLICY, config_for, decide_run, override_as, standard_run, write_policy

from harness.core.store import RunStore
from harness.gate.gate import open_registry
from harness.gate.publish import PublicationError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                reason="mlflow is not installed (pip install mlflow-skinny)")

FORK = multiprocessing.get_context("fork")
STRICT = POLICY.replace("max: 0.2", "max: 0.05")  # the toxicity ceiling fails: the gate REJECTs


@pytest.fixture
def rejected(tmp_path, monkeypatch):
    """A run the gate REJECTed, with MLflow export configured (a file store)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    home = tmp_path / "runs"
    store = standard_run(home)
    uri = (tmp_path / "mlruns").as_uri()
    policy = write_policy(tmp_path, STRICT)
    config = config_for(home, policy, **{"mlflow.tracking_uri": uri})
    assert decide_run(config, store).decision == "REJECT"
    return store, config, uri


def _export_fails(monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    def unavailable(*args, **kwargs):
        raise MlflowException("503 Service Unavailable")

    monkeypatch.setattr(MlflowClient, "create_model_version", unavailable)


def _versions(uri: str) -> dict[str, dict[str, str]]:
    """Each registered version of the candidate -> its tags."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {str(v.version): dict(v.tags) for v in client.search_model_versions(f"name='{CANDIDATE}'")}


def _markers(store):
    return sorted((store.root / "gate" / CANDIDATE / "overrides").glob("*.publishing"))


def _promote_while_mlflow_is_down(config, store, monkeypatch) -> str:
    """An override PROMOTE whose export fails: exit 4, the override logged, its marker left; its record id."""
    with monkeypatch.context() as outage:
        _export_fails(outage)
        with pytest.raises(PublicationError, match=r"override gate_override-[\w-]+ \(PROMOTE\) is logged \(registry "
                                                   r"entry 2\), but publishing it failed: .*503 Service Unavailable; "
                                                   r"fix that and rerun `nift-gate gate`, which publishes it again "
                                                   r"while it holds") as failed:
            override_as(config, store, "PROMOTE", "Ada Lovelace", "the ceiling is being revised", ["production"])
    assert failed.value.exit_code == 4
    [entry] = [e for e in open_registry(config.gate, store).verify() if e["event"] == "override"]
    assert [m.name for m in _markers(store)] == [f"{entry['record_id']}.publishing"]
    return entry["record_id"]


def test_an_override_promote_whose_export_fails_exits_4_and_is_logged_unpublished(rejected, monkeypatch):
    store, config, uri = rejected
    record_id = _promote_while_mlflow_is_down(config, store, monkeypatch)
    entries = open_registry(config.gate, store).verify()
    assert [(e["event"], e["decision"]) for e in entries] == [("decision", "REJECT"), ("override", "PROMOTE")]
    assert (store.root / "gate" / CANDIDATE / "overrides" / f"{record_id}.json").exists()
    assert _versions(uri) == {}


def test_the_next_gate_publishes_a_failed_override_promote_once(rejected, monkeypatch, caplog):
    store, config, uri = rejected
    record_id = _promote_while_mlflow_is_down(config, store, monkeypatch)
    with caplog.at_level(logging.INFO, logger="nift_gate.gate"):
        decide_run(config, store)  # the same REJECT, still overridden: the override's promotion is published
    assert f"override {record_id} (registry entry 2) is logged, but its publication did not finish: publishing it " \
           f"again" in caplog.text
    [(version, tags)] = _versions(uri).items()
    assert (tags["nift_gate.record_id"], tags["nift_gate.release_manager"]) == (record_id, "Ada Lovelace")
    from mlflow import MlflowClient
    production = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(CANDIDATE, "production")
    assert str(production.version) == version
    assert _markers(store) == []
    decide_run(config, store)  # two reruns: published once
    decide_run(config, store)
    assert list(_versions(uri)) == [version]
    assert len(open_registry(config.gate, store).verify()) == 2  # and nothing logged again


def test_a_gate_while_mlflow_is_still_down_fails_again_and_the_next_one_publishes_once(rejected, monkeypatch):
    store, config, uri = rejected
    record_id = _promote_while_mlflow_is_down(config, store, monkeypatch)
    with monkeypatch.context() as outage:
        _export_fails(outage)
        with pytest.raises(PublicationError, match=rf"override {record_id} \(PROMOTE\) is logged \(registry entry "
                                                   rf"2\), but publishing it failed"):
            decide_run(config, store)
    assert len(_markers(store)) == 1 and _versions(uri) == {}
    decide_run(config, store)
    decide_run(config, store)
    assert [tags["nift_gate.record_id"] for tags in _versions(uri).values()] == [record_id]


def test_a_new_override_promote_is_published_in_place_of_the_failed_one(rejected, monkeypatch, caplog):
    """The release manager records the promotion again: the new override is what holds and is published; the
    failed one, superseded by it, is dropped rather than published as well."""
    store, config, uri = rejected
    failed = _promote_while_mlflow_is_down(config, store, monkeypatch)
    with caplog.at_level(logging.INFO, logger="nift_gate.gate"):
        again = override_as(config, store, "PROMOTE", "Grace Hopper", "recorded again after the outage",
                            ["production"])
    assert f"override {failed}: its publication did not finish, and the log does not hold it now (its last word " \
           f"for the candidate is entry 3): not published" in caplog.text
    assert [(tags["nift_gate.record_id"], tags["nift_gate.release_manager"]) for tags in _versions(uri).values()] \
        == [(again.record_id, "Grace Hopper")]
    assert _markers(store) == []
    decide_run(config, store)  # two reruns: nothing more is published
    decide_run(config, store)
    assert len(_versions(uri)) == 1


def test_an_override_reject_drops_a_failed_override_promote(rejected, monkeypatch):
    store, config, uri = rejected
    _promote_while_mlflow_is_down(config, store, monkeypatch)
    override_as(config, store, "REJECT", "Grace Hopper", "not before the ceiling is revised")
    assert _markers(store) == []
    decide_run(config, store)
    assert _versions(uri) == {}  # the REJECT that holds is not published as a promotion


def test_a_later_decision_supersedes_a_failed_override_promote(rejected, monkeypatch):
    """The evidence or policy changed and the gate decided anew: that decision holds and is what is published,
    never the stale override promotion of the earlier decision."""
    store, config, uri = rejected
    failed = _promote_while_mlflow_is_down(config, store, monkeypatch)
    Path(config.gate.policy).write_text(POLICY)  # a revised policy: the gate now promotes
    record = decide_run(config, store)
    assert record.decision == "PROMOTE"
    assert [tags["nift_gate.record_id"] for tags in _versions(uri).values()] == [record.record_id]
    assert failed not in {tags["nift_gate.record_id"] for tags in _versions(uri).values()}
    assert _markers(store) == []
    decide_run(config, store)
    assert len(_versions(uri)) == 1


def _gate(home, policy, uri, barrier, results):
    barrier.wait()
    try:
        decide_run(config_for(home, policy, **{"mlflow.tracking_uri": uri}), RunStore("r1", home))
        results.put("ok")
    except Exception as exc:  # noqa: BLE001  (any failure is reported to the parent, which asserts on it)
        results.put(repr(exc))


def test_concurrent_gates_publish_a_failed_override_promote_once(rejected, monkeypatch):
    store, config, uri = rejected
    record_id = _promote_while_mlflow_is_down(config, store, monkeypatch)
    barrier, results = FORK.Barrier(3), FORK.Queue()
    workers = [FORK.Process(target=_gate, args=(store.home, config.gate.policy, uri, barrier, results))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert sorted(results.get(timeout=5) for _ in workers) == ["ok"] * 3
    assert [tags["nift_gate.record_id"] for tags in _versions(uri).values()] == [record_id]
