"""What a promotion writes outside the registry: the checkpoint's model card and, optionally, MLflow.

The model card of the model the evidence measured (the folder whose files the gate hashed), when that is a
checkpoint of the run, gets Hugging Face ``model-index`` metadata (``huggingface_hub.EvalResult``), one result per
metric the gate read for the candidate. MLflow export registers a model version with the decision as tags
and points the promoted aliases at it; it needs ``mlflow`` (or ``mlflow-skinny``) installed.
:func:`check_mlflow_export` checks, before anything is decided, what can be checked without the server.

Publishing happens after the registry logged the decision, so a failure then cannot undo it: it is a
:class:`PublicationError`, with its own exit status, and the gate retries the publication on its next run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError, NiftError
from harness.core.log import get_logger
from harness.core.metrics import MetricValue
from harness.core.store import RunStore, atomic_write_text

log = get_logger("gate")


class PublicationError(NiftError):
    """A decision is logged, but publishing it (model card, MLflow) failed: rerunning `nift-gate gate` retries."""

    exit_code = 4


def _dataset(metric: str) -> tuple[str, str]:
    """(dataset type, metric short name) of a registry metric name, e.g. bench.nift_if.acc -> (nift_if, acc)."""
    family, _, rest = metric.partition(".")
    if family == "bench":
        task, _, name = rest.partition(".")
        return task, name
    if "." in rest:
        suite, _, name = rest.rpartition(".")
        return f"{family}.{suite}", name
    return family, rest


def eval_results(candidate: str, values: list[MetricValue]):
    """One ``EvalResult`` per candidate metric value, named by its registry name."""
    from huggingface_hub import EvalResult

    results = []
    for value in sorted(values, key=lambda v: (v.metric, v.attribute or "")):
        if value.model != candidate:
            continue
        dataset, name = _dataset(value.metric)
        results.append(EvalResult(
            task_type="text-generation", dataset_type=dataset, dataset_name=dataset,
            metric_type=value.metric + (f".{value.attribute}" if value.attribute else ""),
            metric_name=name + (f" ({value.attribute})" if value.attribute else ""), metric_value=round(value.value, 6),
            metric_config=value.attribute))
    return results


def _card_folder(store: RunStore, measured: dict[str, Any]) -> Path | None:
    """The folder of the model the evidence measured, when it is a checkpoint of this run (under its ``train/``);
    None, with a warning, for any other: a copied run's records name another run's checkpoint, and the card of
    this run's own, never measured, must not say it was promoted."""
    named = measured.get("path")
    folder = Path(named).resolve() if named else None
    if folder is not None and folder.is_relative_to(store.stage_dir("train", "").resolve()) and folder.is_dir():
        return folder
    log.warning("model card not written: the model the evidence measured (%s) is not a checkpoint folder of run %s "
                "(under %s)", named or "no path", store.run_id, store.stage_dir("train", ""))
    return None


def update_model_cards(store: RunStore, candidate: str, measured: dict[str, Any], values: list[MetricValue],
                       provenance: dict[str, Any]) -> list[Path]:
    """Write the evaluation results into the model card (``README.md``, where it exists) of the model the
    evidence measured: ``measured``, the candidate's resolved model as the bench record names it, whose files the
    gate hashed. Only a checkpoint folder of this run (under ``<run>/train/``) is written: for a LoRA checkpoint
    its merged weights (``merged/``), which bench measured, not the adapter beside them. Returns the cards written.

    ``provenance`` (decision, record_id, policy_sha256, aliases) goes into the card's ``nift_gate`` metadata.
    """
    from huggingface_hub import ModelCard

    folder = _card_folder(store, measured)
    path = folder / "README.md" if folder is not None else None
    if path is None or not path.exists():
        return []
    card = ModelCard(path.read_text(encoding="utf-8"), ignore_metadata_errors=True)
    card.data.model_name = candidate
    card.data.eval_results = eval_results(candidate, values)
    tags = [t for t in (card.data.tags or []) if t != "nift-gate-promoted"]
    card.data.tags = tags + ["nift-gate-promoted"]
    card.data.nift_gate = {**provenance, "aliases": sorted(provenance.get("aliases", []))}
    text = str(card).replace("Not released: a model trained here ships only through `nift-gate gate`.",
                             f"Promoted by nift-gate ({provenance['decision']}, {provenance['record_id']}).")
    atomic_write_text(path, text)
    return [path]


def _mlflow_client(tracking_uri: str):
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ConfigError("gate.mlflow.tracking_uri is set but mlflow is not installed: "
                          "pip install mlflow-skinny (or unset gate.mlflow.tracking_uri)") from None
    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except (MlflowException, ImportError) as exc:  # e.g. MLflow 3's refusal of file://, sqlite:// without alembic
        raise ConfigError(f"gate.mlflow.tracking_uri {tracking_uri}: MLflow cannot open this store: "
                          f"{getattr(exc, 'message', exc)}") from None


def check_mlflow_export(tracking_uri: str, registered_model: str) -> None:
    """Refuse an export that cannot work, without contacting the server: mlflow importable, a client for the
    URI, a valid model name. A server that is down is only found when exporting (and retried by the next gate)."""
    from mlflow.exceptions import MlflowException

    _mlflow_client(tracking_uri)
    try:
        # The rule every MLflow store applies to a name, from a private module: an MLflow that moves it leaves
        # the name to be checked by the store at export (a refusal there is retried by the next gate).
        from mlflow.utils.validation import _validate_model_name
    except ImportError:
        return
    try:
        _validate_model_name(registered_model)
    except MlflowException as exc:
        raise ConfigError(f"gate.mlflow.registered_model: {exc.message}") from None


def export_to_mlflow(tracking_uri: str, registered_model: str, source: str, tags: dict[str, Any],
                     aliases: list[str]) -> str:
    """Register ``source`` as a new version of ``registered_model``, tag it, point ``aliases`` at it; the version."""
    from mlflow.exceptions import MlflowException

    client = _mlflow_client(tracking_uri)
    try:
        try:
            client.get_registered_model(registered_model)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            client.create_registered_model(registered_model, description="Released through nift-gate.")
        version = client.create_model_version(registered_model, source=source,
                                              tags={k: str(v) for k, v in tags.items()})
        for alias in aliases:
            client.set_registered_model_alias(registered_model, alias, version.version)
    except MlflowException as exc:
        raise ConfigError(f"MLflow export to {tracking_uri} failed: {exc.message}") from None
    return str(version.version)
