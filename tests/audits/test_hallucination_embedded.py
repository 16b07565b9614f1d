"""The hallucination audit on the embedded model (slow): real greedy answers and sampled SelfCheck answers."""

import json

import pytest

from audits.config import AuditConfig
from audits.hallucination.audit import run_hallucination_audit
from harness.core.config import ModelRef
from harness.core.store import RunStore


@pytest.mark.slow
def test_embedded_model_hallucination_audit(tiny_model):
    config = AuditConfig(hallucination={"closed_book": {"limit": 3, "max_new_tokens": 16},
                                        "selfcheck": {"limit": 2, "samples": 2}})
    record = run_hallucination_audit(config, "smollm2-135m-instruct", [ModelRef(name="tiny", model=str(tiny_model))],
                                     RunStore("r"))
    shipped = record.summaries["smollm2-135m-instruct"]
    assert shipped["hallucination.closed_book.hallucination_rate"].n == 6
    assert shipped["hallucination.closed_book.accuracy"].n == 3
    assert shipped["hallucination.selfcheck.avg_neg_logprob"].n <= 2
    assert set(record.skipped) == {"halueval", "truthfulqa"}
    rows = [json.loads(line) for line in
            (RunStore("r").stage_dir("audit", "hallucination") / "samples.jsonl").read_text().splitlines()]
    closed = [r for r in rows if r["suite"] == "closed_book" and r["model"] == "smollm2-135m-instruct"]
    assert len(closed) == 6 and all(r["output"] for r in closed)
    # the shipped model knows the capital of Japan
    assert any(r["item_id"] == "cb-001" and "Tokyo" in r["output"] for r in closed)
