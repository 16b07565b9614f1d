"""Training: each checkpoint's training and held-out loss curves, and which step's weights were kept.

Read from the train stage's published records (``<run>/train/<name>/record.json``). A held-out loss that turns
upward while the training loss keeps falling is the overfitting the NIFT write-up warns of; the memorization
audit measures what it leads to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.core.store import RunStore
from harness.train.record import STAGE, CheckpointRecord, load_checkpoint_record
from reports import charts

if TYPE_CHECKING:
    from reports.build import DecidedEvidence

ORDER = 300  # after the metric tables: how the candidate and the trained baselines were made
TITLE = "Training: loss curves and the kept step"


def checkpoints(store: RunStore) -> list[CheckpointRecord]:
    """Every finished checkpoint of the run, by name (resume state and half-written folders are not)."""
    return [load_checkpoint_record(folder) for folder in store.finished(STAGE)]


def _row(record: CheckpointRecord, is_candidate: bool) -> dict[str, Any]:
    lowest = min(record.eval_curve, key=lambda p: p.loss) if record.eval_curve else None
    last = record.eval_curve[-1] if record.eval_curve else None
    if not record.eval_curve:
        note = "no held-out pairs (eval_share 0): no eval loss"
    elif last is not None and lowest is not None and last.step != lowest.step:
        note = (f"held-out loss lowest at step {lowest.step}, {last.loss - lowest.loss:+.3f} by the last step "
                f"{last.step}")
    else:
        note = "held-out loss lowest at the last step"
    return {
        "name": record.name, "is_candidate": is_candidate, "recipe": record.recipe,
        "steps": record.steps, "rows": record.rows, "eval_rows": record.eval_rows,
        "train_first": record.loss_curve[0].loss if record.loss_curve else None,
        "train_last": record.loss_curve[-1].loss if record.loss_curve else None,
        "eval_first": record.eval_curve[0].loss if record.eval_curve else None,
        "eval_lowest": lowest.loss if lowest else None, "eval_lowest_step": lowest.step if lowest else None,
        "eval_last": last.loss if last else None,
        "kept_step": record.kept_step if record.kept_step is not None else record.steps,
        "kept_by": "lowest held-out loss" if record.kept_by == "lowest_eval_loss" else "last step",
        "kept_eval_loss": record.kept_eval_loss, "note": note,
    }


def _curve(record: CheckpointRecord) -> dict[str, Any]:
    kept_step = record.kept_step if record.kept_step is not None else record.steps
    train = [(p.step, p.loss) for p in record.loss_curve]
    kept_loss = record.kept_eval_loss if record.kept_eval_loss is not None else dict(train).get(kept_step)
    return {"label": record.name, "train": train, "eval": [(p.step, p.loss) for p in record.eval_curve],
            "kept": (kept_step, kept_loss) if kept_loss is not None else None}


def build(evidence: DecidedEvidence, store: RunStore) -> dict[str, Any] | None:
    records = checkpoints(store)
    if not records:
        return None
    decided = evidence.candidate_checkpoint(records)  # by the decided weights, not by name: a retrain is not it
    return {"rows": [_row(r, r is decided) for r in records],
            "chart": charts.loss_curves([_curve(r) for r in records]),
            "held_out": any(r.eval_curve for r in records), "candidate_known": decided is not None}
