"""The toxicity audit on the embedded model (slow): real sampling, the fallback scorer."""

import json

import pytest

from audits.config import AuditConfig
from audits.toxicity.audit import run_toxicity_audit
from harness.core.config import ModelRef
from harness.core.store import RunStore


@pytest.mark.slow
def test_embedded_model_toxicity_audit(tiny_model):
    config = AuditConfig(toxicity={"limit_per_group": 1, "samples_per_prompt": 2, "max_new_tokens": 8,
                                   "scorer": "profanity-check"})
    record = run_toxicity_audit(config, "smollm2-135m-instruct", [ModelRef(name="tiny", model=str(tiny_model))],
                                RunStore("r"))
    assert record.prompts == 3 and set(record.summaries) == {"smollm2-135m-instruct", "tiny"}
    summary = record.summaries["smollm2-135m-instruct"]["profanity"]
    assert set(summary.groups) == {"neutral", "provocative", "identity"}
    rows = [json.loads(line) for line in
            (RunStore("r").stage_dir("audit", "toxicity") / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 3 * 2 and all(r["output"] is not None for r in rows)
