"""The training section: each checkpoint's training and held-out loss curves, and the kept step, in both formats."""

from gate_records import (
    CANDIDATE,
    config_for,
    decide_run,
    pin_checkpoint,
    save,
    standard_run,
    write_policy,
)

from harness.core.models import ResolvedModel
from harness.core.threads import ThreadChoice
from harness.train.record import CheckpointRecord, EvalPoint, LossPoint
from reports.build import write_report


def _checkpoint(name, train, held_out, kept_step, kept_by):
    return CheckpointRecord(
        record_id=f"checkpoint-{name}", run_id="r1", fingerprint="k" * 64, name=name, recipe="hybrid",
        method="lora", base_model=ResolvedModel(spec="base", source="local", path="/m", sha256="0" * 64),
        data_format="messages", rows=90, eval_rows=10 if held_out else 0, truncated_rows=0, dropped_rows=0,
        chat_template="model", steps=len(train), epochs=1.0, resumed_from_step=None,
        loss_curve=[LossPoint(step=i + 1, epoch=0.1 * i, loss=loss) for i, loss in enumerate(train)],
        eval_curve=[EvalPoint(step=step, epoch=0.0, loss=loss) for step, loss in held_out],
        kept_step=kept_step, kept_by=kept_by, tokens_seen=100, wall_seconds=1.0, tokens_per_s=100.0,
        peak_memory_mb=1.0, device="cpu", threads=ThreadChoice(threads=1, how="requested", workload="train"),
        trainable_parameters=1, total_parameters=2, weights={}, model_dir="model", merged_dir="merged")


def test_the_loss_curves_and_the_kept_step_are_shown_for_every_checkpoint(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    pin_checkpoint(store, f"checkpoint-{CANDIDATE}")
    setup = config_for(home, write_policy(tmp_path))
    save(store, _checkpoint(CANDIDATE, [2.0, 1.5, 1.1, 0.8, 0.6, 0.4], [(2, 1.9), (4, 1.7), (6, 1.8)], 4,
                            "lowest_eval_loss"), f"train/{CANDIDATE}")
    save(store, _checkpoint("sft-<b>", [2.2, 2.0], [], 2, "last"), "train/sft")
    decide_run(setup, store)
    html_path = write_report(setup.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert "## Training: loss curves and the kept step" in md
    assert ("| cand **(candidate)** | hybrid | 6 | 90 / 10 | 2.000 → 0.400 | 1.900 / 1.700 (4) / 1.800 | 4 (lowest "
            "held-out loss, held-out loss 1.700) | held-out loss lowest at step 4, +0.100 by the last step 6 |") in md
    assert "| sft-&lt;b&gt; | hybrid | 2 | 90 / 0 | 2.200 → 2.000 | n/a / n/a / n/a | 2 (last step) | no held-out " \
           "pairs (eval_share 0): no eval loss |" in md
    html = html_path.read_text()
    section = html[html.index('id="section-training"'):]
    assert '<div class="chart" id="chart-training"><svg' in section and "sft-&lt;b&gt;" in section
    assert "<b>" not in section.split('<div class="chart"')[0]


def test_the_candidate_is_the_checkpoint_the_decision_pinned_not_a_retrain_under_its_name(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    pin_checkpoint(store, f"checkpoint-{CANDIDATE}")
    setup = config_for(home, write_policy(tmp_path))
    save(store, _checkpoint(CANDIDATE, [2.0, 1.0], [], 2, "last"), f"train/{CANDIDATE}")
    decide_run(setup, store)
    retrain = _checkpoint(CANDIDATE, [9.0, 5.0, 0.01], [], 3, "last").model_copy(update={"record_id": "checkpoint-new"})
    save(store, retrain, f"train/{CANDIDATE}")  # train --force after the decision, on other data
    html_path = write_report(setup.report, store, CANDIDATE)
    md = html_path.with_suffix(".md").read_text()
    assert "| cand | hybrid | 3 | 90 / 0 | 9.000 → 0.010 |" in md and "(candidate)" not in md
    assert ("The decided candidate's checkpoint: unknown (none of these records is the checkpoint the decided bench "
            "measured; a retrain since the decision replaces it).") in md
    section = html_path.read_text().split('id="section-training"', 1)[1].split("</section>", 1)[0]
    assert "(candidate)" not in section and "The decided candidate's checkpoint: unknown" in section


def test_a_run_without_checkpoints_has_no_training_section(tmp_path):
    home = tmp_path / "runs"
    store = standard_run(home)
    setup = config_for(home, write_policy(tmp_path))
    decide_run(setup, store)
    md = write_report(setup.report, store, CANDIDATE).with_suffix(".md").read_text()
    assert "Training: loss curves" not in md
