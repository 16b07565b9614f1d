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


def test_without_mlflows_name_validator_the_store_refuses_the_name_at_export(tmp_path, monkeypatch):
    # the pre-check's validator is private to MLflow: an MLflow that moves it must not break the gate; the name
    # is then refused by the store at export, after the decision is logged (exit 4, retried by the next gate)
    import mlflow.utils.validation

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delattr(mlflow.utils.validation, "_validate_model_name")
    store, config, _ = _setup(tmp_path, **{"mlflow.registered_model": "team/cand:v1"})
    with pytest.raises(PublicationError, match=r"is logged \(registry entry 1\), but publishing it failed: "
                                               r"MLflow export to .*team/cand:v1") as failed:
        decide_run(config, store)
    assert failed.value.exit_code == 4
    assert [e["decision"] for e in open_registry(config.gate, store).verify()] == ["PROMOTE"]


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


class Killed(BaseException):
    """A kill -9 stand-in: no handler in the code under test catches a BaseException that is not an Exception."""


def _killed_writing(monkeypatch, folder: str):
    """Make the gate "die" at its first write of a ``<folder>/*.json`` file: after the registry append."""
    import harness.gate.gate as gate_module

    real = gate_module.atomic_write_text

    def write(path, text):
        if path.parent.name == folder and path.suffix == ".json":
            raise Killed
        return real(path, text)

    monkeypatch.setattr(gate_module, "atomic_write_text", write)


def test_a_gate_killed_between_logging_a_promote_and_writing_it_is_published_by_the_next(tmp_path, monkeypatch):
    # it used to leave a logged PROMOTE, its aliases moved, that nothing ever published: the marker that makes a
    # rerun publish was written after the decision's files
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store, config, uri = _setup(tmp_path)
    with monkeypatch.context() as kill:
        _killed_writing(kill, "decisions")
        with pytest.raises(Killed):
            decide_run(config, store)
    assert [e["decision"] for e in open_registry(config.gate, store).verify()] == ["PROMOTE"]
    assert _versions(uri) == []
    decide_run(config, store)
    assert _versions(uri) == ["1"]
    decide_run(config, store)
    assert _versions(uri) == ["1"]


def test_an_override_killed_between_logging_a_promote_and_writing_it_is_published_by_the_next_gate(tmp_path,
                                                                                                    monkeypatch):
    from gate_records import POLICY

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    home = tmp_path / "runs"
    store = standard_run(home)
    uri = (tmp_path / "mlruns").as_uri()
    config = config_for(home, write_policy(tmp_path, POLICY.replace("max: 0.2", "max: 0.05")),
                        **{"mlflow.tracking_uri": uri})
    assert decide_run(config, store).decision == "REJECT"
    with monkeypatch.context() as kill:
        _killed_writing(kill, "overrides")
        with pytest.raises(Killed):
            override_as(config, store, "PROMOTE", "Ada Lovelace", "the ceiling is being revised", ["production"])
    assert [e["event"] for e in open_registry(config.gate, store).verify()] == ["decision", "override"]
    assert _versions(uri) == []
    decide_run(config, store)  # writes the override back from the log, and publishes its promotion
    assert _versions(uri) == ["1"]
    decide_run(config, store)
    assert _versions(uri) == ["1"]


def test_a_gate_killed_before_it_logged_a_promote_publishes_nothing_for_it(tmp_path, monkeypatch):
    """The marker is written before the append: a run stopped between the two leaves a marker of a promotion the
    log does not hold, and the next run of another decision must not publish it."""
    from gate_records import POLICY

    import harness.gate.registry as registry_module

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    home = tmp_path / "runs"
    store = standard_run(home)
    uri = (tmp_path / "mlruns").as_uri()
    config = config_for(home, write_policy(tmp_path, POLICY.replace("max: 0.2", "max: 0.05")),
                        **{"mlflow.tracking_uri": uri})
    assert decide_run(config, store).decision == "REJECT"

    def killed(self, event):
        raise Killed

    with monkeypatch.context() as kill:
        kill.setattr(registry_module.RegistryWriter, "append", killed)
        with pytest.raises(Killed):
            override_as(config, store, "PROMOTE", "Ada Lovelace", "the ceiling is being revised", ["production"])
    overrides = store.root / "gate" / CANDIDATE / "overrides"
    assert len(list(overrides.glob("*.publishing"))) == 1  # left by the stopped run
    assert [e["event"] for e in open_registry(config.gate, store).verify()] == ["decision"]
    decide_run(config, store)
    assert _versions(uri) == []
    assert list(overrides.glob("*.publishing")) == []
