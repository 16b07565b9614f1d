"""Publishing a promotion (model card, MLflow) after the registry logged it: what can fail is checked before
anything is logged, and a publication that fails afterwards is retried by the next gate of the same decision."""

import importlib.util

import pytest
from gate_records import CANDIDATE, config_for, decide_run, override_as, standard_run, write_policy

from harness.core.errors import ConfigError
from harness.gate.gate import open_registry
from harness.gate.publish import PublicationError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                reason="mlflow is not installed (pip install mlflow-skinny)")


def _setup(tmp_path, **gate):
    home = tmp_path / "runs"
    store = standard_run(home)  # the standard policy promotes it
    uri = (tmp_path / "mlruns").as_uri()
    return store, config_for(home, write_policy(tmp_path), **{"mlflow.tracking_uri": uri, **gate}), uri


def _versions(uri: str, name: str = CANDIDATE) -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))


def test_a_store_mlflow_cannot_open_is_refused_before_anything_is_logged(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # MLflow 3 refuses file:// without it
    store, config, _ = _setup(tmp_path)
    with pytest.raises(ConfigError, match=r"gate.mlflow.tracking_uri file://.*: MLflow cannot open this store"):
        decide_run(config, store)
    assert open_registry(config.gate, store).verify() == []
    assert not (store.root / "gate").exists()


def test_an_invalid_model_name_is_refused_before_anything_is_logged(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, config, _ = _setup(tmp_path, **{"mlflow.registered_model": "team/cand:v1"})
    with pytest.raises(ConfigError, match=r"gate.mlflow.registered_model: Invalid model name 'team/cand:v1'"):
        decide_run(config, store)
    assert open_registry(config.gate, store).verify() == []


def _failing_export(monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    def unavailable(*args, **kwargs):
        raise MlflowException("503 Service Unavailable")

    monkeypatch.setattr(MlflowClient, "create_model_version", unavailable)


def test_a_failed_export_is_retried_by_the_next_gate_until_it_finishes(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, config, uri = _setup(tmp_path)
    with monkeypatch.context() as outage:
        _failing_export(outage)
        with pytest.raises(PublicationError, match=r"decision gate_decision-\w+ \(PROMOTE\) is logged \(registry "
                                                   r"entry 1\), but publishing it failed: .*503 Service Unavailable; "
                                                   r"fix that and rerun `nift-gate gate`") as failed:
            decide_run(config, store)
    assert failed.value.exit_code == 4  # neither 2 (nothing decided) nor a verdict's status
    assert [e["decision"] for e in open_registry(config.gate, store).verify()] == ["PROMOTE"]
    assert _versions(uri) == []

    record = decide_run(config, store)  # the same decision: not logged again, but published now
    assert len(open_registry(config.gate, store).verify()) == 1
    assert _versions(uri) == ["1"]
    from mlflow import MlflowClient
    staged = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(CANDIDATE, "staging")
    assert staged.tags["nift_gate.record_id"] == record.record_id

    decide_run(config, store)  # finished: a further rerun publishes nothing twice
    assert _versions(uri) == ["1"]
    assert list((store.root / "gate" / CANDIDATE / "decisions").iterdir()) == [
        store.root / "gate" / CANDIDATE / "decisions" / f"{record.record_id}.json"]


def test_an_override_since_the_failed_export_decides_instead(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, config, uri = _setup(tmp_path)
    with monkeypatch.context() as outage:
        _failing_export(outage)
        with pytest.raises(PublicationError):
            decide_run(config, store)
    override_as(config, store, "REJECT", "Ada Lovelace", "not this one after all")
    decide_run(config, store)
    assert _versions(uri) == []  # the REJECT that holds is not published as a promotion


def _rejected_with_mlflow(tmp_path):
    from gate_records import POLICY

    home = tmp_path / "runs"
    store = standard_run(home)
    uri = (tmp_path / "mlruns").as_uri()
    strict = write_policy(tmp_path, POLICY.replace("max: 0.2", "max: 0.05"))  # the toxicity ceiling fails
    config = config_for(home, strict, **{"mlflow.tracking_uri": uri})
    assert decide_run(config, store).decision == "REJECT"
    return store, config, uri


def _failed_override_promote(config, store, monkeypatch):
    with monkeypatch.context() as outage:
        _failing_export(outage)
        with pytest.raises(PublicationError, match=r"override gate_override-[\w-]+ \(PROMOTE\) is logged \(registry "
                                                   r"entry 2\), but publishing it failed: .*503 Service Unavailable; "
                                                   r"fix that and rerun `nift-gate gate` or `nift-gate override`"
                                                   ) as failed:
            override_as(config, store, "PROMOTE", "Ada Lovelace", "the ceiling is being revised", ["production"])
    assert failed.value.exit_code == 4


def test_an_override_promote_whose_export_failed_is_published_once_by_the_next_gate(tmp_path, monkeypatch):
    # it used to stay unpublished for good: the next gate published nothing, and the error said to override again
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, config, uri = _rejected_with_mlflow(tmp_path)
    _failed_override_promote(config, store, monkeypatch)
    assert _versions(uri) == []
    overrides = store.root / "gate" / CANDIDATE / "overrides"
    assert len(list(overrides.glob("*.publishing"))) == 1

    decide_run(config, store)  # the same REJECT, still overridden: the promotion that holds is published
    assert _versions(uri) == ["1"]
    from mlflow import MlflowClient
    production = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(CANDIDATE, "production")
    assert production.tags["nift_gate.release_manager"] == "Ada Lovelace"
    assert list(overrides.glob("*.publishing")) == []
    decide_run(config, store)  # finished: nothing is published twice
    assert _versions(uri) == ["1"]
    assert len(open_registry(config.gate, store).verify()) == 2


def test_an_override_promote_whose_export_failed_is_not_published_once_another_override_decided(tmp_path,
                                                                                                 monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, config, uri = _rejected_with_mlflow(tmp_path)
    _failed_override_promote(config, store, monkeypatch)
    override_as(config, store, "REJECT", "Ada Lovelace", "not this one after all")
    decide_run(config, store)
    assert _versions(uri) == []  # the REJECT that holds now is not published as a promotion
    assert list((store.root / "gate" / CANDIDATE / "overrides").glob("*.publishing")) == []
