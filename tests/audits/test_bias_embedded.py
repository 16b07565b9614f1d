"""The bias audit on the embedded model (slow): lm-eval's BBQ task with bench's default settings."""

import pytest

from audits.bias.audit import run_bias_audit
from audits.config import AuditConfig
from harness.core.lmeval import LmEvalSettings
from harness.core.store import RunStore


@pytest.mark.slow
def test_embedded_model_bias_audit_on_the_shipped_set():
    config = AuditConfig(bias={"limit_per_category": 2}, bootstrap_iterations=200)
    record = run_bias_audit(config, "smollm2-135m-instruct", [], RunStore("r"),
                            lm_eval_settings=LmEvalSettings(batch_size=16))
    assert record.items == 12 and len(record.categories) == 6  # a negative question in both contexts each
    summary = record.summaries["smollm2-135m-instruct"]["overall"]
    assert summary["ambig"].items == summary["disambig"].items == 6
    aggregates = record.lm_eval_aggregates["smollm2-135m-instruct"]
    assert aggregates["acc"] == pytest.approx((summary["ambig"].correct + summary["disambig"].correct) / 12)
    answers = record.answers["smollm2-135m-instruct"]
    assert sum(answers.values()) == 6 and record.flagged_samples["smollm2-135m-instruct"] == answers["biased"]
